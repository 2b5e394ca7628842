/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 block encryption (LUKS on-disk format specification 1.2.x), written
 * to interoperate with QEMU 7.2 (crypto/block-luks) and cryptsetup 2.6.
 *
 * The pipeline is: read the 592-byte header, byte-swap a copy, validate
 * every field in QEMU's order with QEMU's messages, parse the algorithm
 * names; then unlock (PBKDF2 slot key -> decrypt key material -> AF merge
 * -> verify the master-key digest); then per-sector encryption of the
 * payload.  create writes a fresh header and key slot 0.
 *
 * Deliberate differences from QEMU 7.2:
 * - Key material whose length is not a multiple of 512 (24-byte keys:
 *   96000 bytes) is rounded up to whole sectors and padded, as cryptsetup
 *   does; QEMU 7.2 aborts on an assertion instead.
 * - Slot ranges are computed in 64 bits, so a slot offset near 2^32 is
 *   reported as overlapping the payload instead of wrapping around.
 * - An XTS header with an odd key length is rejected at load time (QEMU
 *   only notices when it builds the cipher).
 *
 * All I/O goes through the caller's callbacks (struct luks1_io).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"
#include "bytes.h"
#include "safemem.h"
#include "blockcrypt/luks1.h"
#include "blockcrypt/luks1-disk.h"
#include "blockcrypt/luks1-priv.h"

#define LUKS1_MIN_ITERATIONS 1000

/*
 * Fuzzing builds cap the PBKDF2 work a header can ask for (up to 2^32-1
 * iterations per slot otherwise); slots above the cap simply do not match.
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define LUKS1_FUZZ_MAX_ITERATIONS 1000
#endif

/* ---- geometry ------------------------------------------------------------ */

/* Sectors of AF-split key material: ceil(key_bytes * 4000 / 512). */
static uint64_t
material_sectors(uint64_t key_bytes)
{
    return DIV_ROUND_UP(key_bytes * LUKS1_STRIPES, CRYPTO_SECTOR_SIZE);
}

/*
 * Sectors reserved per key slot: the material rounded up to 4096 bytes.
 * QEMU uses this (not the bare material length) in its overlap checks, so
 * we do the same.
 */
static uint64_t
slot_area_sectors(uint64_t key_bytes)
{
    return ROUND_UP(material_sectors(key_bytes), LUKS1_SLOT_ALIGN);
}

/* ---- names ----------------------------------------------------------------- */

/* Family spelling used in QEMU's ESSIV error messages. */
static const char *
family_display(enum crypto_cipher_alg a)
{
    const char *f = crypto_cipher_family(a);

    if (!f) {
        return "?";
    }
    if (strcmp(f, "aes") == 0) {
        return "AES";
    }
    if (strcmp(f, "serpent") == 0) {
        return "Serpent";
    }
    if (strcmp(f, "twofish") == 0) {
        return "Twofish";
    }
    return f;
}

/*
 * The ESSIV cipher must be of the data cipher's family with a key as long
 * as the ivgen digest (aes-128 + sha256 -> AES-256).  Families without
 * several key sizes (cast5) only work if the digest length happens to be
 * their key length.  Same rule and wording as QEMU.
 */
static int
check_essiv(enum crypto_cipher_alg cipher, enum crypto_hash_alg h,
            struct vimg_error **errp)
{
    size_t dlen = crypto_hash_len(h);
    const char *fam = crypto_cipher_family(cipher);
    bool multi = fam && (strcmp(fam, "aes") == 0 ||
                         strcmp(fam, "serpent") == 0 ||
                         strcmp(fam, "twofish") == 0);

    if (multi) {
        if (crypto_cipher_alg_from_family(fam, dlen) < 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "No %s cipher with key size %zu available",
                                  family_display(cipher), dlen);
        }
        return 0;
    }
    if (dlen != crypto_cipher_key_len(cipher)) {
        return vimg_error_set(errp, -EINVAL,
                              "Cipher %s not supported with essiv",
                              crypto_cipher_alg_name(cipher));
    }
    return 0;
}

/* ---- header validation and parsing ------------------------------------------ */

static int
check_header(const struct luks1_disk_header *h, bool detached,
             struct vimg_error **errp)
{
    uint64_t area;
    size_t i, j;

    if (memcmp(h->magic, LUKS1_MAGIC, LUKS1_MAGIC_LEN) != 0) {
        return vimg_error_set(errp, -EINVAL, "Volume is not in LUKS format");
    }
    if (h->version != 1) {
        return vimg_error_set(errp, -EINVAL, "LUKS version %u is not supported",
                              (unsigned)h->version);
    }
    if (!memchr(h->cipher_name, 0, sizeof(h->cipher_name))) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS header cipher name is not NUL terminated");
    }
    if (!memchr(h->cipher_mode, 0, sizeof(h->cipher_mode))) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS header cipher mode is not NUL terminated");
    }
    if (!memchr(h->hash_spec, 0, sizeof(h->hash_spec))) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS header hash spec is not NUL terminated");
    }
    /* A detached header (data in another file) may say any payload
     * offset, 0 typically: nothing of the header lies before it. */
    if (!detached && h->payload_offset < LUKS1_FIRST_SLOT_SECTOR) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS payload is overlapping with the header");
    }
    if (h->mk_iterations == 0) {
        return vimg_error_set(errp, -EINVAL, "LUKS key iteration count is zero");
    }

    /*
     * 64-bit arithmetic: key_bytes <= 2^32-1, times 4000, cannot overflow,
     * and neither can offset + area below.  Nothing is allocated here; the
     * key length is capped later by the cipher lookup (<= 64 bytes).
     */
    area = slot_area_sectors(h->key_bytes);
    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        const struct luks1_disk_slot *s = &h->slots[i];

        if (s->stripes != LUKS1_STRIPES) {
            return vimg_error_set(errp, -EINVAL,
                                  "Keyslot %zu is corrupted (stripes %" PRId32
                                  " != %d)", i, (int32_t)s->stripes,
                                  LUKS1_STRIPES);   /* qemu prints it signed */
        }
        if (s->active != LUKS1_SLOT_ACTIVE && s->active != LUKS1_SLOT_INACTIVE) {
            return vimg_error_set(errp, -EINVAL,
                                  "Keyslot %zu state (active/disable) is corrupted",
                                  i);
        }
        if (s->active == LUKS1_SLOT_ACTIVE && s->iterations == 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "Keyslot %zu iteration count is zero", i);
        }
        if (s->key_offset < LUKS1_FIRST_SLOT_SECTOR) {
            return vimg_error_set(errp, -EINVAL,
                                  "Keyslot %zu is overlapping with the LUKS header",
                                  i);
        }
        if (!detached && (uint64_t)s->key_offset + area > h->payload_offset) {
            return vimg_error_set(errp, -EINVAL,
                                  "Keyslot %zu is overlapping with the encrypted payload",
                                  i);
        }
        for (j = i + 1; j < LUKS1_NUM_SLOTS; j++) {
            uint64_t a = s->key_offset, b = h->slots[j].key_offset;

            if (a < b + area && b < a + area) {
                return vimg_error_set(errp, -EINVAL,
                                      "Keyslots %zu and %zu are overlapping in the header",
                                      i, j);
            }
        }
    }
    return 0;
}

/*
 * Parse "<mode>-<ivgen>[:<ivhash>]", the cipher name + key length and the
 * hash spec, in QEMU's order: ivgen hash, mode, cipher, hash, ivgen, ESSIV.
 */
static int
parse_header(struct luks1 *l, struct vimg_error **errp)
{
    const struct luks1_disk_header *h = &l->hdr;
    char mode[LUKS1_NAME_LEN];
    char *ivgen_name, *ivhash_name;
    uint32_t cipher_key_bytes;
    int v;

    /* check_header made sure the strings are terminated. */
    memcpy(mode, h->cipher_mode, sizeof(mode));
    ivgen_name = strchr(mode, '-');
    if (!ivgen_name) {
        return vimg_error_set(errp, -EINVAL,
                              "Unexpected cipher mode string format '%s'",
                              h->cipher_mode);
    }
    *ivgen_name++ = '\0';
    ivhash_name = strchr(ivgen_name, ':');
    l->has_ivgen_hash = false;
    if (ivhash_name) {
        *ivhash_name++ = '\0';
        v = crypto_hash_alg_parse(ivhash_name);
        if (v < 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "Hash algorithm '%s' not supported",
                                  ivhash_name);
        }
        l->ivgen_hash = (enum crypto_hash_alg)v;
        l->has_ivgen_hash = true;
    }

    v = crypto_cipher_mode_parse(mode);
    if (v < 0) {
        return vimg_error_set(errp, -EINVAL, "Cipher mode '%s' not supported",
                              mode);
    }
    l->mode = (enum crypto_cipher_mode)v;

    cipher_key_bytes = h->key_bytes;
    if (l->mode == CRYPTO_MODE_XTS) {
        if (cipher_key_bytes % 2) {
            return vimg_error_set(errp, -EINVAL,
                                  "XTS cipher key length should be a multiple of 2");
        }
        cipher_key_bytes /= 2;
    }
    v = -1;
    if (h->key_bytes > 0 && h->key_bytes <= CRYPTO_MAX_KEY) {
        v = crypto_cipher_alg_from_family(h->cipher_name, cipher_key_bytes);
    }
    if (v < 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Algorithm '%s' with key size %" PRIu32
                              " bytes not supported",
                              h->cipher_name, cipher_key_bytes);
    }
    l->cipher = (enum crypto_cipher_alg)v;

    v = crypto_hash_alg_parse(h->hash_spec);
    if (v < 0) {
        return vimg_error_set(errp, -EINVAL, "Hash algorithm '%s' not supported",
                              h->hash_spec);
    }
    l->hash = (enum crypto_hash_alg)v;

    v = crypto_ivgen_alg_parse(ivgen_name);
    if (v < 0) {
        return vimg_error_set(errp, -EINVAL, "IV generator '%s' not supported",
                              ivgen_name);
    }
    l->ivgen = (enum crypto_ivgen_alg)v;

    if (l->ivgen == CRYPTO_IVGEN_ESSIV) {
        if (!l->has_ivgen_hash) {
            return vimg_error_set(errp, -EINVAL,
                                  "Missing IV generator hash specification");
        }
        return check_essiv(l->cipher, l->ivgen_hash, errp);
    }
    return 0;
}

/* ---- public: probe, load, free ------------------------------------------------ */

int
luks1_probe(const uint8_t *buf, size_t len)
{
    if (!buf || len < 8 || memcmp(buf, LUKS1_MAGIC, LUKS1_MAGIC_LEN) != 0) {
        return 0;
    }
    return ld_be16(buf + 6);
}

void
luks1_create_params_default(struct luks1_create_params *p)
{
    memset(p, 0, sizeof(*p));
    p->cipher = CRYPTO_CIPHER_AES_256;
    p->mode = CRYPTO_MODE_XTS;
    p->ivgen = CRYPTO_IVGEN_PLAIN64;
    p->ivgen_hash = CRYPTO_HASH_SHA256;
    p->ivgen_hash_set = false;
    p->hash = CRYPTO_HASH_SHA256;
    p->iter_time_ms = 2000;
    p->iterations = 0;
    p->mk_iterations = 0;
}

void
luks1_params_from(const struct luks1 *l, struct luks1_create_params *p)
{
    luks1_create_params_default(p);
    p->cipher = l->cipher;
    p->mode = l->mode;
    p->ivgen = l->ivgen;
    p->ivgen_hash_set = l->has_ivgen_hash;
    if (l->has_ivgen_hash) {
        p->ivgen_hash = l->ivgen_hash;
    }
    p->hash = l->hash;
}

int
luks1_active_slots(const struct luks1 *l)
{
    int i, n = 0;

    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        n += l->hdr.slots[i].active == LUKS1_SLOT_ACTIVE;
    }
    return n;
}

int
luks1_load(const struct luks1_io *io, struct luks1 **out,
           struct vimg_error **errp)
{
    struct luks1_disk_header disk;
    struct luks1 *l;
    int r;

    *out = NULL;
    if (!io || !io->read) {
        return vimg_error_set(errp, -EINVAL, "LUKS header cannot be read");
    }
    r = crypto_init();
    if (r < 0) {
        return vimg_error_errno(errp, r, "Cannot initialise the crypto library");
    }
    r = io->read(io->opaque, 0, &disk, sizeof(disk), errp);
    if (r < 0) {
        return vimg_error_set(errp, r, "Unable to read LUKS header");
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    l->io = *io;
    luks1_header_from_disk(&disk, &l->hdr);

    r = check_header(&l->hdr, io->detached, errp);
    if (r == 0) {
        r = parse_header(l, errp);
    }
    if (r < 0) {
        luks1_free(l);
        return r;
    }
    *out = l;
    return 0;
}

void
luks1_free(struct luks1 *l)
{
    if (!l) {
        return;
    }
    crypto_sector_free(l->sector);
    safe_free(l->master_key);
    safe_wipe(&l->hdr, sizeof(l->hdr));
    free(l);
}

uint64_t
luks1_payload_offset(const struct luks1 *l)
{
    return (uint64_t)l->hdr.payload_offset * CRYPTO_SECTOR_SIZE;
}

uint64_t
luks1_header_area_size(const struct luks1 *l)
{
    uint64_t end = 0, area = slot_area_sectors(l->hdr.key_bytes);
    size_t i;

    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        end = MAX(end, (uint64_t)l->hdr.slots[i].key_offset + area);
    }
    end = ROUND_UP(end * CRYPTO_SECTOR_SIZE, 4096);
    return MAX(end, luks1_payload_offset(l));
}

void
luks1_uuid(const struct luks1 *l, char out[41])
{
    memcpy(out, l->hdr.uuid, LUKS1_UUID_LEN);
    out[LUKS1_UUID_LEN] = '\0';
    out[strnlen(out, LUKS1_UUID_LEN)] = '\0';
}

bool
luks1_unlocked(const struct luks1 *l)
{
    return l && l->master_key && l->sector;
}

/* ---- unlock ----------------------------------------------------------------- */

/*
 * Verify a candidate master key against the header digest:
 * PBKDF2(mk, mk salt, mk iterations, 20) compared in constant time.
 * Returns 1 on match, 0 on mismatch, -errno on failure.
 */
static int
verify_master_key(const struct luks1 *l, const uint8_t *mk)
{
    uint8_t *digest = safe_alloc(LUKS1_DIGEST_LEN);
    int r;

    if (!digest) {
        return -ENOMEM;
    }
    r = crypto_pbkdf2(l->hash, mk, l->hdr.key_bytes, l->hdr.mk_salt,
                      LUKS1_SALT_LEN, l->hdr.mk_iterations, digest,
                      LUKS1_DIGEST_LEN);
    if (r == 0) {
        r = safe_memeq(digest, l->hdr.mk_digest, LUKS1_DIGEST_LEN) ? 1 : 0;
    }
    safe_free(digest);
    return r;
}

/*
 * Try one active slot: derive the slot key, read and decrypt the key
 * material (whole sectors, IV sector 0 at its start), AF-merge it into
 * @mk.  Returns 1 if @mk verifies, 0 if not, -errno (+errp) on failure.
 */
static int
try_slot(struct luks1 *l, size_t i, const char *pw, size_t pwlen,
         uint8_t *mk, struct vimg_error **errp)
{
    const struct luks1_disk_slot *s = &l->hdr.slots[i];
    size_t kb = l->hdr.key_bytes;
    size_t mlen = (size_t)material_sectors(kb) * CRYPTO_SECTOR_SIZE;
    struct crypto_sector *sc = NULL;
    uint8_t *slot_key = NULL, *material = NULL;
    int r;

#ifdef LUKS1_FUZZ_MAX_ITERATIONS
    if (s->iterations > LUKS1_FUZZ_MAX_ITERATIONS ||
        l->hdr.mk_iterations > LUKS1_FUZZ_MAX_ITERATIONS) {
        return 0;
    }
#endif
    slot_key = safe_alloc(kb);
    material = safe_alloc(mlen);
    if (!slot_key || !material) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = crypto_pbkdf2(l->hash, pw, pwlen, s->salt, LUKS1_SALT_LEN,
                      s->iterations, slot_key, kb);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to derive the key of keyslot %zu",
                             i);
        goto out;
    }
    r = l->io.read(l->io.opaque, (uint64_t)s->key_offset * CRYPTO_SECTOR_SIZE,
                   material, mlen, errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to read key material of keyslot %zu",
                           i);
        goto out;
    }
    r = crypto_sector_new(l->cipher, l->mode, l->ivgen, l->ivgen_hash,
                          slot_key, kb, &sc);
    if (r == 0) {
        r = crypto_sector_decrypt(sc, 0, material, mlen);
    }
    if (r == 0) {
        r = crypto_afmerge(l->hash, kb, LUKS1_STRIPES, material, mk);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to decrypt keyslot %zu", i);
        goto out;
    }
    r = verify_master_key(l, mk);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to verify the master key");
    }
out:
    crypto_sector_free(sc);
    safe_free(material);
    safe_free(slot_key);
    return r;
}

/* Set up the payload cipher for @mk (taking ownership of @mk). */
static int
install_master_key(struct luks1 *l, uint8_t *mk, struct vimg_error **errp)
{
    struct crypto_sector *sc = NULL;
    int r;

    r = crypto_sector_new(l->cipher, l->mode, l->ivgen, l->ivgen_hash, mk,
                          l->hdr.key_bytes, &sc);
    if (r < 0) {
        safe_free(mk);
        return vimg_error_errno(errp, r, "Unable to set up the payload cipher");
    }
    crypto_sector_free(l->sector);
    safe_free(l->master_key);
    l->sector = sc;
    l->master_key = mk;
    return 0;
}

int
luks1_unlock(struct luks1 *l, const char *pw, size_t pwlen,
             struct vimg_error **errp)
{
    uint8_t *mk;
    size_t i;
    int r;

    if (!l || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    if (!l->io.read) {
        return vimg_error_set(errp, -EINVAL, "LUKS header cannot be read");
    }
    if (!crypto_cipher_mode_ok(l->cipher, l->mode)) {
        return vimg_error_set(errp, -ENOTSUP, "Unsupported cipher mode %s",
                              crypto_cipher_mode_name(l->mode));
    }
    mk = safe_alloc(l->hdr.key_bytes);
    if (!mk) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        if (l->hdr.slots[i].active != LUKS1_SLOT_ACTIVE) {
            continue;
        }
        r = try_slot(l, i, pw ? pw : "", pwlen, mk, errp);
        if (r < 0) {
            safe_free(mk);
            return r;
        }
        if (r == 1) {
            r = install_master_key(l, mk, errp);
            return r < 0 ? r : (int)i;
        }
    }
    safe_free(mk);
    return vimg_error_set(errp, -EPERM,
                          "Invalid password, cannot unlock any keyslot");
}

/* ---- payload ---------------------------------------------------------------- */

int
luks1_encrypt(struct luks1 *l, uint64_t sector, void *buf, size_t len)
{
    if (!luks1_unlocked(l)) {
        return -EACCES;
    }
    if (len % CRYPTO_SECTOR_SIZE) {
        return -EINVAL;
    }
    return crypto_sector_encrypt(l->sector, sector, buf, len);
}

int
luks1_encrypt_from(struct luks1 *l, uint64_t sector, void *out,
                   const void *in, size_t len)
{
    if (!luks1_unlocked(l)) {
        return -EACCES;
    }
    if (len % CRYPTO_SECTOR_SIZE) {
        return -EINVAL;
    }
    return crypto_sector_encrypt_from(l->sector, sector, out, in, len);
}

int
luks1_decrypt(struct luks1 *l, uint64_t sector, void *buf, size_t len)
{
    if (!luks1_unlocked(l)) {
        return -EACCES;
    }
    if (len % CRYPTO_SECTOR_SIZE) {
        return -EINVAL;
    }
    return crypto_sector_decrypt(l->sector, sector, buf, len);
}

/* ---- create ------------------------------------------------------------------ */

/*
 * Check the parameters and reject impossible combinations in QEMU's order
 * (ESSIV cipher first, then the mode).  Sets *key_bytes (doubled for XTS).
 */
static int
check_params(const struct luks1_create_params *p, size_t *key_bytes,
             struct vimg_error **errp)
{
    if ((unsigned)p->cipher >= CRYPTO_CIPHER__MAX ||
        (unsigned)p->mode >= CRYPTO_MODE__MAX ||
        (unsigned)p->ivgen >= CRYPTO_IVGEN__MAX ||
        (unsigned)p->ivgen_hash >= CRYPTO_HASH__MAX ||
        (unsigned)p->hash >= CRYPTO_HASH__MAX) {
        return vimg_error_set(errp, -EINVAL, "Invalid LUKS parameters");
    }
    if (p->ivgen == CRYPTO_IVGEN_ESSIV) {
        int r = check_essiv(p->cipher, p->ivgen_hash, errp);
        if (r < 0) {
            return r;
        }
    }
    if (!crypto_cipher_mode_ok(p->cipher, p->mode)) {
        return vimg_error_set(errp, -EINVAL, "Unsupported cipher mode %s",
                              crypto_cipher_mode_name(p->mode));
    }
    *key_bytes = crypto_cipher_key_len(p->cipher);
    if (p->mode == CRYPTO_MODE_XTS) {
        *key_bytes *= 2;
    }
    if (*key_bytes == 0 || *key_bytes > CRYPTO_MAX_KEY) {
        return vimg_error_set(errp, -EINVAL, "Invalid LUKS key length %zu",
                              *key_bytes);
    }
    return 0;
}

int
luks1_payload_bytes(const struct luks1_create_params *p, uint64_t *out,
                    struct vimg_error **errp)
{
    size_t kb = 0;      /* set by check_params(); -O3 cannot tell */
    int r;

    r = check_params(p, &kb, errp);
    if (r < 0) {
        return r;
    }
    *out = (LUKS1_FIRST_SLOT_SECTOR + LUKS1_NUM_SLOTS * slot_area_sectors(kb)) *
           CRYPTO_SECTOR_SIZE;
    return 0;
}

/*
 * PBKDF2 iterations for @iter_time_ms, QEMU's way: measure the rate
 * (iterations/s producing @outlen bytes), scale by the time, divide by
 * @div (8 for the master-key digest), refuse what does not fit 32 bits,
 * and never go below 1000.
 */
static int
calibrate(enum crypto_hash_alg h, size_t outlen, int64_t iter_time_ms,
          unsigned div, uint32_t *out, struct vimg_error **errp)
{
    uint64_t rate, iters;
    int r;

    if (iter_time_ms == 0) {
        *out = LUKS1_MIN_ITERATIONS;
        return 0;
    }
    r = crypto_pbkdf2_rate(h, outlen, &rate);
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to measure the PBKDF2 speed");
    }
    if (iter_time_ms < 0 || rate > UINT64_MAX / (uint64_t)iter_time_ms) {
        return vimg_error_set(errp, -ERANGE,
                              "PBKDF iterations %" PRIu64
                              " too large to scale: %s", rate, strerror(ERANGE));
    }
    iters = rate * (uint64_t)iter_time_ms / 1000 / div;
    if (iters > UINT32_MAX) {
        return vimg_error_set(errp, -ERANGE,
                              "PBKDF iterations %" PRIu64 " larger than %" PRIu32
                              ": %s", iters, UINT32_MAX, strerror(ERANGE));
    }
    *out = MAX((uint32_t)iters, (uint32_t)LUKS1_MIN_ITERATIONS);
    return 0;
}

/* A random version-4 UUID, 36 lowercase characters plus NUL. */
static int
make_uuid(char out[LUKS1_UUID_LEN])
{
    uint8_t b[16];
    int r;

    r = crypto_random(b, sizeof(b));
    if (r < 0) {
        return r;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    memset(out, 0, LUKS1_UUID_LEN);
    snprintf(out, LUKS1_UUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

/*
 * Fill key slot @i of @l with @pw: random salt, PBKDF2 slot key, AF split
 * of the master key, encryption (padded to whole sectors) and write-out of
 * the key material.  The header itself is not written.
 */
static int
write_slot(struct luks1 *l, size_t i, uint32_t iterations, const char *pw,
           size_t pwlen, struct vimg_error **errp)
{
    struct luks1_disk_slot *s = &l->hdr.slots[i];
    size_t kb = l->hdr.key_bytes;
    size_t mlen = (size_t)material_sectors(kb) * CRYPTO_SECTOR_SIZE;
    struct crypto_sector *sc = NULL;
    uint8_t *slot_key = NULL, *material = NULL;
    int r;

    slot_key = safe_alloc(kb);
    material = safe_alloc(mlen);      /* zeroed: the pad after the stripes */
    if (!slot_key || !material) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = crypto_random(s->salt, sizeof(s->salt));
    if (r == 0) {
        r = crypto_pbkdf2(l->hash, pw, pwlen, s->salt, LUKS1_SALT_LEN,
                          iterations, slot_key, kb);
    }
    if (r == 0) {
        r = crypto_afsplit(l->hash, kb, LUKS1_STRIPES, l->master_key, material);
    }
    if (r == 0) {
        r = crypto_sector_new(l->cipher, l->mode, l->ivgen, l->ivgen_hash,
                              slot_key, kb, &sc);
    }
    if (r == 0) {
        r = crypto_sector_encrypt(sc, 0, material, mlen);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to create keyslot %zu", i);
        goto out;
    }
    r = l->io.write(l->io.opaque, (uint64_t)s->key_offset * CRYPTO_SECTOR_SIZE,
                    material, mlen, errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to write key material of keyslot %zu",
                           i);
        goto out;
    }
    s->active = LUKS1_SLOT_ACTIVE;
    s->iterations = iterations;
out:
    crypto_sector_free(sc);
    safe_free(material);
    safe_free(slot_key);
    return r;
}

/* Copy @s into a fixed-size NUL-padded header field. */
static void
set_name(char *field, size_t size, const char *s)
{
    size_t n = s ? strnlen(s, size - 1) : 0;

    memset(field, 0, size);
    memcpy(field, s ? s : "", n);
}

int
luks1_create(const struct luks1_io *io, const struct luks1_create_params *p,
             const char *pw, size_t pwlen, struct luks1 **out,
             struct vimg_error **errp)
{
    struct luks1_disk_header disk;
    struct luks1 *l = NULL;
    struct luks1_disk_header *h;
    uint32_t slot_iters, mk_iters;
    uint64_t area;
    size_t kb = 0, i;   /* kb: set by check_params() */
    char mode[LUKS1_NAME_LEN];
    uint8_t *mk = NULL;
    int r;

    *out = NULL;
    if (!io || !io->write || !io->read || !p || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    r = crypto_init();
    if (r < 0) {
        return vimg_error_errno(errp, r, "Cannot initialise the crypto library");
    }
    r = check_params(p, &kb, errp);
    if (r < 0) {
        return r;
    }

    /* Iterations: explicit (vimg extension) or calibrated (MK first). */
    if (p->iterations) {
        slot_iters = p->iterations;
        mk_iters = p->mk_iterations ? p->mk_iterations
                                    : MAX(LUKS1_MIN_ITERATIONS,
                                          p->iterations / 8);
    } else {
        r = calibrate(p->hash, LUKS1_DIGEST_LEN, p->iter_time_ms, 8, &mk_iters,
                      errp);
        if (r == 0) {
            r = calibrate(p->hash, kb, p->iter_time_ms, 1, &slot_iters, errp);
        }
        if (r < 0) {
            return r;
        }
    }

    l = calloc(1, sizeof(*l));
    if (!l) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    l->io = *io;
    l->cipher = p->cipher;
    l->mode = p->mode;
    l->ivgen = p->ivgen;
    l->hash = p->hash;
    l->ivgen_hash = p->ivgen_hash;
    l->has_ivgen_hash = p->ivgen == CRYPTO_IVGEN_ESSIV || p->ivgen_hash_set;

    /* The header, in host order. */
    h = &l->hdr;
    memcpy(h->magic, LUKS1_MAGIC, LUKS1_MAGIC_LEN);
    h->version = 1;
    set_name(h->cipher_name, sizeof(h->cipher_name),
             crypto_cipher_family(p->cipher));
    if (l->has_ivgen_hash) {
        snprintf(mode, sizeof(mode), "%s-%s:%s", crypto_cipher_mode_name(p->mode),
                 crypto_ivgen_alg_name(p->ivgen),
                 crypto_hash_alg_name(p->ivgen_hash));
    } else {
        snprintf(mode, sizeof(mode), "%s-%s", crypto_cipher_mode_name(p->mode),
                 crypto_ivgen_alg_name(p->ivgen));
    }
    set_name(h->cipher_mode, sizeof(h->cipher_mode), mode);
    set_name(h->hash_spec, sizeof(h->hash_spec), crypto_hash_alg_name(p->hash));
    area = slot_area_sectors(kb);
    /* A detached header's payload starts the data file (cryptsetup's
     * luksFormat --header and qemu 9's detached-header both write 0). */
    h->payload_offset = io->detached ? 0 : (uint32_t)(LUKS1_FIRST_SLOT_SECTOR +
                                                      LUKS1_NUM_SLOTS * area);
    h->key_bytes = (uint32_t)kb;
    h->mk_iterations = mk_iters;
    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        h->slots[i].active = LUKS1_SLOT_INACTIVE;
        h->slots[i].iterations = 0;
        h->slots[i].key_offset = (uint32_t)(LUKS1_FIRST_SLOT_SECTOR + i * area);
        h->slots[i].stripes = LUKS1_STRIPES;
    }
    r = make_uuid(h->uuid);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to generate a UUID");
        goto fail;
    }

    /* Master key, its salt and digest. */
    mk = safe_alloc(kb);
    if (!mk) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    r = crypto_random(mk, kb);
    if (r == 0) {
        r = crypto_random(h->mk_salt, sizeof(h->mk_salt));
    }
    if (r == 0) {
        r = crypto_pbkdf2(p->hash, mk, kb, h->mk_salt, LUKS1_SALT_LEN, mk_iters,
                          h->mk_digest, LUKS1_DIGEST_LEN);
    }
    if (r < 0) {
        safe_free(mk);
        r = vimg_error_errno(errp, r, "Unable to generate the master key");
        goto fail;
    }
    r = install_master_key(l, mk, errp);   /* takes mk */
    if (r < 0) {
        goto fail;
    }

    /* Key material of slot 0 first, then the header that points at it. */
    r = write_slot(l, 0, slot_iters, pw ? pw : "", pwlen, errp);
    if (r < 0) {
        goto fail;
    }
    luks1_header_to_disk(h, &disk);
    r = io->write(io->opaque, 0, &disk, sizeof(disk), errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to write LUKS header");
        goto fail;
    }
    *out = l;
    return 0;

fail:
    luks1_free(l);
    return r;
}

/* ---- info ---------------------------------------------------------------------- */

static int
add(struct json_object *obj, const char *key, struct json_object *val)
{
    if (!val) {
        return -ENOMEM;
    }
    if (json_object_object_add(obj, key, val) < 0) {
        json_object_put(val);
        return -ENOMEM;
    }
    return 0;
}

int
luks1_info(const struct luks1 *l, struct json_object *obj,
           struct vimg_error **errp)
{
    const struct luks1_disk_header *h = &l->hdr;
    struct json_object *slots, *slot;
    char uuid[LUKS1_UUID_LEN + 1];
    int r = 0;
    size_t i;

    memcpy(uuid, h->uuid, LUKS1_UUID_LEN);
    uuid[LUKS1_UUID_LEN] = '\0';

    r |= add(obj, "ivgen-alg",
             json_object_new_string(crypto_ivgen_alg_name(l->ivgen)));
    if (l->ivgen == CRYPTO_IVGEN_ESSIV) {
        r |= add(obj, "ivgen-hash-alg",
                 json_object_new_string(crypto_hash_alg_name(l->ivgen_hash)));
    }
    r |= add(obj, "hash-alg", json_object_new_string(crypto_hash_alg_name(l->hash)));
    r |= add(obj, "cipher-alg",
             json_object_new_string(crypto_cipher_alg_name(l->cipher)));
    r |= add(obj, "uuid", json_object_new_string(uuid));
    r |= add(obj, "cipher-mode",
             json_object_new_string(crypto_cipher_mode_name(l->mode)));

    slots = json_object_new_array();
    if (!slots) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        const struct luks1_disk_slot *s = &h->slots[i];
        bool active = s->active == LUKS1_SLOT_ACTIVE;

        slot = json_object_new_object();
        if (!slot) {
            r = -ENOMEM;
            break;
        }
        r |= add(slot, "active", json_object_new_boolean(active));
        if (active) {
            r |= add(slot, "iters", json_object_new_int64(s->iterations));
        }
        r |= add(slot, "key-offset",
                 json_object_new_int64((int64_t)s->key_offset *
                                       CRYPTO_SECTOR_SIZE));
        if (active) {
            r |= add(slot, "stripes", json_object_new_int64(s->stripes));
        }
        if (json_object_array_add(slots, slot) < 0) {
            json_object_put(slot);
            r = -ENOMEM;
        }
    }
    r |= add(obj, "slots", slots);
    r |= add(obj, "payload-offset",
             json_object_new_int64((int64_t)luks1_payload_offset(l)));
    r |= add(obj, "master-key-iters", json_object_new_int64(h->mk_iterations));
    if (r) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    return 0;
}
