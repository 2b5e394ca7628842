/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS2 block encryption (LUKS2 on-disk format specification 1.1.x),
 * written from the specification and from the observed behaviour of
 * cryptsetup 2.6.1; see luks2.h for the supported subset.
 *
 * On disk: two header copies, each a 4096-byte binary header followed by
 * the JSON area (hdr_size bytes in all, 16 KiB by default).  The primary is
 * at 0 with magic "LUKS\xba\xbe", the secondary at hdr_size with magic
 * "SKUL\xba\xbe"; each has its own random salt and a checksum (checksum_alg,
 * sha256) over all hdr_size bytes with the checksum field zeroed.  The
 * copy with the higher seqid wins.  The JSON describes keyslots (pbkdf2 or
 * argon2 derived key -> raw area of AF-split key material encrypted as
 * 512-byte sectors from IV 0), digests (pbkdf2 of the volume key) binding
 * keyslots to segments, and the data segment (offset, size, iv_tweak,
 * cipher, sector size).  Numbers that may exceed 2^53 (offsets, sizes) are
 * decimal strings in the JSON.
 *
 * Observed (checked with `cryptsetup reencrypt` on plain files): with a
 * 4096-byte sector size, each 4096-byte sector is one cipher message whose
 * IV is its offset in 512-byte units (iv_large_sectors is not used).
 *
 * Hostile input: every size, offset and count from the header is range
 * checked (64-bit, overflow-checked) before use or allocation; the JSON
 * area is at most 4 MiB and must be NUL-terminated; KDF costs are capped
 * (argon2 memory <= 4 GiB, lanes <= 16).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "base64.h"
#include "bytes.h"
#include "safemem.h"
#include "blockcrypt/luks2.h"

#define LUKS2_MAGIC_1ST "LUKS\xba\xbe"
#define LUKS2_MAGIC_2ND "SKUL\xba\xbe"
#define LUKS2_MAGIC_LEN 6
#define LUKS2_LABEL_LEN 48
#define LUKS2_CSUM_ALG_LEN 32
#define LUKS2_SALT_LEN 64
#define LUKS2_UUID_LEN 40
#define LUKS2_CSUM_LEN 64
#define LUKS2_MAX_HDR_SIZE (4u * 1024 * 1024)
#define LUKS2_MAX_KEYSLOTS_SIZE (128u * 1024 * 1024)
#define LUKS2_MAX_SALT 64
#define LUKS2_MAX_DIGEST 64
#define LUKS2_MIN_ITERATIONS 1000
#define LUKS2_ARGON2_MIN_TIME 4
#define LUKS2_ARGON2_MIN_MEMORY 32
#define LUKS2_ARGON2_DEFAULT_MEMORY (1024u * 1024)
#define LUKS2_ARGON2_MAX_CPUS 4
#define LUKS2_AREA_ALIGN 4096

/* Binary header field offsets (big-endian integers). */
enum {
    OFF_MAGIC = 0, OFF_VERSION = 6, OFF_HDR_SIZE = 8, OFF_SEQID = 16,
    OFF_LABEL = 24, OFF_CSUM_ALG = 72, OFF_SALT = 104, OFF_UUID = 168,
    OFF_SUBSYSTEM = 208, OFF_HDR_OFFSET = 256, OFF_CSUM = 448,
};

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define LUKS2_FUZZ_MAX_ITERATIONS 1000
#endif

/* A dm-crypt cipher spec "<family>-<mode>[-<ivgen>[:<hash>]]". */
struct cipher_spec {
    char text[64];
    char family[32];
    enum crypto_cipher_mode mode;
    enum crypto_ivgen_alg ivgen;
    enum crypto_hash_alg ivgen_hash;
    bool has_ivgen_hash;
};

struct keyslot {
    bool present;
    bool usable;                  /* type luks2 (others are kept, skipped) */
    char type[16];
    uint32_t key_size;            /* volume key bytes */
    int priority;                 /* 0 ignore, 1 normal, 2 high */
    enum crypto_hash_alg af_hash;
    uint32_t stripes;
    uint64_t area_offset, area_size;
    struct cipher_spec area_cipher;
    enum crypto_cipher_alg area_alg;
    uint32_t area_key_size;
    enum luks2_kdf kdf;
    enum crypto_hash_alg kdf_hash;  /* pbkdf2 */
    uint32_t iterations;          /* pbkdf2 iterations or argon2 time */
    uint32_t memory, cpus;        /* argon2 */
    uint8_t salt[LUKS2_MAX_SALT];
    size_t salt_len;
    int digest;                   /* digest listing this keyslot, or -1 */
};

struct digest {
    bool present;
    enum crypto_hash_alg hash;
    uint32_t iterations;
    uint8_t salt[LUKS2_MAX_SALT];
    size_t salt_len;
    uint8_t value[LUKS2_MAX_DIGEST];
    size_t value_len;
    uint32_t keyslots;            /* bit mask */
    uint32_t segments;            /* bit mask */
};

struct segment {
    int id;
    uint64_t offset, size;
    bool dynamic;
    uint64_t iv_tweak;
    uint32_t sector_size;
    struct cipher_spec cipher;
    int digest;                   /* digest covering the segment, or -1 */
    uint32_t key_size;            /* from the bound keyslots, 0 if none */
    enum crypto_cipher_alg alg;   /* valid if key_size != 0 */
};

/* One header copy as read from disk, before it is chosen. */
struct hdr_copy {
    bool valid;
    uint64_t hdr_size, seqid;
    uint8_t bin[LUKS2_BIN_HEADER_SIZE];
    struct json_object *json;
};

struct luks2 {
    struct luks2_io io;
    uint64_t hdr_size, seqid;
    char label[LUKS2_LABEL_LEN + 1];
    char subsystem[LUKS2_LABEL_LEN + 1];
    char uuid[LUKS2_UUID_LEN + 1];
    char csum_alg[LUKS2_CSUM_ALG_LEN + 1];
    bool primary_valid, secondary_valid;
    struct json_object *json;     /* the chosen metadata (owned) */
    uint64_t keyslots_size;
    struct keyslot ks[LUKS2_NUM_KEYSLOTS];
    struct digest dg[LUKS2_NUM_KEYSLOTS];
    struct segment seg;
    uint8_t *vk;                  /* safe memory, seg.key_size; NULL if locked */
    struct crypto_sector *sector; /* sector_size 512 */
    struct crypto_cipher *cipher; /* larger sectors: one message per sector */
    struct crypto_ivgen *ivgen;
    size_t iv_len;
};

static const uint64_t hdr_sizes[] = {
    16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304,
};

/* ---- small JSON helpers ------------------------------------------------------ */

static struct json_object *
jget(struct json_object *o, const char *key, enum json_type t)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t)) {
        return NULL;
    }
    return v;
}

/* A JSON string holding a decimal uint64 (no sign, no leading zeros but "0"). */
static bool
str_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (!s || !*s || (s[0] == '0' && s[1])) {
        return false;
    }
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 20) {
            return false;
        }
        if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t)(s[i] - '0'), &v)) {
            return false;
        }
    }
    *out = v;
    return true;
}

static bool
jget_u64str(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v = jget(o, key, json_type_string);

    return v && str_u64(json_object_get_string(v), out);
}

/* A JSON integer in [min, max]. */
static bool
jget_int(struct json_object *o, const char *key, int64_t min, int64_t max,
         int64_t *out)
{
    struct json_object *v = jget(o, key, json_type_int);
    int64_t x;

    if (!v) {
        return false;
    }
    errno = 0;
    x = json_object_get_int64(v);
    if (errno || x < min || x > max) {
        return false;
    }
    *out = x;
    return true;
}

static const char *
jget_str(struct json_object *o, const char *key)
{
    struct json_object *v = jget(o, key, json_type_string);

    return v ? json_object_get_string(v) : NULL;
}

/* An object key naming a keyslot/segment/digest: decimal < limit. */
static int
parse_id(const char *s, unsigned limit)
{
    uint64_t v;

    if (!str_u64(s, &v) || v >= limit) {
        return -1;
    }
    return (int)v;
}

/* Base64 into a fixed buffer of at most @max bytes; false if bad/too long. */
static bool
jget_b64(struct json_object *o, const char *key, uint8_t *buf, size_t max,
         size_t *len)
{
    const char *s = jget_str(o, key);
    uint8_t *dec = NULL;
    size_t n = 0;

    if (!s || strlen(s) > 4 * max || base64_decode(s, strlen(s), &dec, &n) < 0) {
        return false;
    }
    if (n == 0 || n > max) {
        safe_free(dec);
        return false;
    }
    memcpy(buf, dec, n);
    safe_free(dec);             /* base64_decode uses safe memory */
    *len = n;
    return true;
}

static int
jadd(struct json_object *obj, const char *key, struct json_object *val)
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

static struct json_object *
jstr_u64(uint64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return json_object_new_string(buf);
}

static int
jadd_b64(struct json_object *obj, const char *key, const uint8_t *b, size_t n)
{
    char *s = base64_encode(b, n);
    int r;

    if (!s) {
        return -ENOMEM;
    }
    r = jadd(obj, key, json_object_new_string(s));
    free(s);
    return r;
}

/* ---- names ------------------------------------------------------------------- */

/*
 * Parse a dm-crypt cipher spec.  The key size is not known here; the
 * algorithm is resolved with resolve_alg() once it is.
 */
static int
parse_cipher(const char *spec, struct cipher_spec *c, const char *what,
             struct vimg_error **errp)
{
    char buf[64];
    char *mode, *iv, *ivhash;
    int v;

    memset(c, 0, sizeof(*c));
    if (!spec || strlen(spec) >= sizeof(c->text)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid encryption",
                              what);
    }
    memcpy(c->text, spec, strlen(spec) + 1);
    memcpy(buf, spec, strlen(spec) + 1);
    mode = strchr(buf, '-');
    if (!mode || strncmp(buf, "capi:", 5) == 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: cipher '%s' is not supported", what,
                              spec);
    }
    *mode++ = '\0';
    if (strlen(buf) >= sizeof(c->family)) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: cipher '%s' is not supported", what,
                              spec);
    }
    memcpy(c->family, buf, strlen(buf) + 1);
    iv = strchr(mode, '-');
    if (iv) {
        *iv++ = '\0';
    }
    v = crypto_cipher_mode_parse(mode);
    if (v < 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: cipher mode '%s' is not supported",
                              what, mode);
    }
    c->mode = (enum crypto_cipher_mode)v;
    c->ivgen = CRYPTO_IVGEN_PLAIN64;
    if (!iv) {
        if (c->mode != CRYPTO_MODE_ECB) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "LUKS2 %s: cipher '%s' has no IV generator",
                                  what, spec);
        }
        return 0;
    }
    ivhash = strchr(iv, ':');
    if (ivhash) {
        *ivhash++ = '\0';
        v = crypto_hash_alg_parse(ivhash);
        if (v < 0) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "LUKS2 %s: hash '%s' is not supported", what,
                                  ivhash);
        }
        c->ivgen_hash = (enum crypto_hash_alg)v;
        c->has_ivgen_hash = true;
    }
    v = crypto_ivgen_alg_parse(iv);
    if (v < 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: IV generator '%s' is not supported",
                              what, iv);
    }
    c->ivgen = (enum crypto_ivgen_alg)v;
    if (c->ivgen == CRYPTO_IVGEN_ESSIV && !c->has_ivgen_hash) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: essiv needs a hash ('%s')", what, spec);
    }
    return 0;
}

/* The cipher of @c for a @key_size-byte key (both halves for XTS). */
static int
resolve_alg(const struct cipher_spec *c, uint32_t key_size,
            enum crypto_cipher_alg *out, const char *what,
            struct vimg_error **errp)
{
    uint32_t kb = key_size;
    int v = -1;

    if (c->mode == CRYPTO_MODE_XTS) {
        kb = key_size % 2 ? 0 : key_size / 2;
    }
    if (kb > 0 && key_size <= CRYPTO_MAX_KEY) {
        v = crypto_cipher_alg_from_family(c->family, kb);
    }
    if (v < 0 || !crypto_cipher_mode_ok((enum crypto_cipher_alg)v, c->mode)) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: cipher '%s' with a %" PRIu32
                              "-byte key is not supported", what, c->text,
                              key_size);
    }
    *out = (enum crypto_cipher_alg)v;
    return 0;
}

static const char *
kdf_name(enum luks2_kdf k)
{
    switch (k) {
    case LUKS2_KDF_PBKDF2:
        return "pbkdf2";
    case LUKS2_KDF_ARGON2I:
        return "argon2i";
    case LUKS2_KDF_ARGON2ID:
        return "argon2id";
    }
    return "?";
}

/* ---- JSON metadata validation -------------------------------------------------- */

static int
parse_kdf(struct keyslot *k, struct json_object *kdf, const char *what,
          struct vimg_error **errp)
{
    const char *type = jget_str(kdf, "type");
    int64_t v;
    int h;

    if (!type) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: missing kdf type", what);
    }
    if (!jget_b64(kdf, "salt", k->salt, sizeof(k->salt), &k->salt_len)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid kdf salt", what);
    }
    if (strcmp(type, "pbkdf2") == 0) {
        k->kdf = LUKS2_KDF_PBKDF2;
        h = crypto_hash_alg_parse(jget_str(kdf, "hash") ? jget_str(kdf, "hash")
                                                         : "");
        if (h < 0) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "LUKS2 %s: kdf hash is missing or not supported",
                                  what);
        }
        k->kdf_hash = (enum crypto_hash_alg)h;
        if (!jget_int(kdf, "iterations", 1, UINT32_MAX, &v)) {
            return vimg_error_set(errp, -EINVAL,
                                  "LUKS2 %s: invalid kdf iterations", what);
        }
        k->iterations = (uint32_t)v;
        return 0;
    }
    if (strcmp(type, "argon2i") == 0) {
        k->kdf = LUKS2_KDF_ARGON2I;
    } else if (strcmp(type, "argon2id") == 0) {
        k->kdf = LUKS2_KDF_ARGON2ID;
    } else {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: kdf '%s' is not supported", what, type);
    }
    if (!jget_int(kdf, "time", 1, UINT32_MAX, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid argon2 time",
                              what);
    }
    k->iterations = (uint32_t)v;
    if (!jget_int(kdf, "cpus", 1, CRYPTO_ARGON2_MAX_LANES, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid argon2 cpus",
                              what);
    }
    k->cpus = (uint32_t)v;
    if (!jget_int(kdf, "memory", 8 * (int64_t)k->cpus,
                  CRYPTO_ARGON2_MAX_MEMORY_KIB, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid argon2 memory",
                              what);
    }
    k->memory = (uint32_t)v;
    if (k->salt_len < 8) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: argon2 salt too short",
                              what);
    }
    return 0;
}

static int
parse_keyslot(struct luks2 *l, int id, struct json_object *o,
              struct vimg_error **errp)
{
    struct keyslot *k = &l->ks[id];
    struct json_object *af, *area, *kdf;
    uint64_t end, lo, hi, need;
    const char *type, *s;
    char what[32];
    int64_t v;
    int r, h;

    snprintf(what, sizeof(what), "keyslot %d", id);
    memset(k, 0, sizeof(*k));
    k->present = true;
    k->digest = -1;
    k->priority = 1;
    type = jget_str(o, "type");
    if (!type || strlen(type) >= sizeof(k->type)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: missing type", what);
    }
    memcpy(k->type, type, strlen(type) + 1);
    if (!jget_int(o, "key_size", 1, CRYPTO_MAX_KEY, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid key_size", what);
    }
    k->key_size = (uint32_t)v;
    if (json_object_object_get_ex(o, "priority", NULL)) {
        if (!jget_int(o, "priority", 0, 2, &v)) {
            return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid priority",
                                  what);
        }
        k->priority = (int)v;
    }
    area = jget(o, "area", json_type_object);
    if (!area || !(s = jget_str(area, "type")) || strcmp(s, "raw") != 0) {
        /* Reencryption keyslots use other area types; they are refused
         * through the requirements, so this is simply malformed. */
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid area", what);
    }
    if (!jget_u64str(area, "offset", &k->area_offset) ||
        !jget_u64str(area, "size", &k->area_size)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid area offset or size",
                              what);
    }
    /* The area must lie inside the keyslots area (after both headers). */
    lo = 2 * l->hdr_size;
    hi = lo + l->keyslots_size;
    if (k->area_offset < lo || ADD_OVERFLOW(k->area_offset, k->area_size, &end) ||
        end > hi || k->area_size == 0) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: area [%" PRIu64 ", +%" PRIu64
                              ") is outside the keyslots area", what,
                              k->area_offset, k->area_size);
    }
    if (strcmp(type, "luks2") != 0) {
        return 0;      /* unknown keyslot types are kept but never used */
    }
    if (!jget_int(area, "key_size", 1, CRYPTO_MAX_KEY, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid area key_size",
                              what);
    }
    k->area_key_size = (uint32_t)v;
    r = parse_cipher(jget_str(area, "encryption"), &k->area_cipher, what, errp);
    if (r == 0) {
        r = resolve_alg(&k->area_cipher, k->area_key_size, &k->area_alg, what,
                        errp);
    }
    if (r < 0) {
        return r;
    }
    af = jget(o, "af", json_type_object);
    if (!af || !(s = jget_str(af, "type")) || strcmp(s, "luks1") != 0) {
        return vimg_error_set(errp, -ENOTSUP, "LUKS2 %s: af type is not supported",
                              what);
    }
    if (!jget_int(af, "stripes", 1, LUKS2_STRIPES, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid af stripes", what);
    }
    k->stripes = (uint32_t)v;
    h = crypto_hash_alg_parse(jget_str(af, "hash") ? jget_str(af, "hash") : "");
    if (h < 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: af hash is missing or not supported",
                              what);
    }
    k->af_hash = (enum crypto_hash_alg)h;
    /* key_size <= 64, stripes <= 4000: no overflow. */
    need = ROUND_UP((uint64_t)k->key_size * k->stripes, CRYPTO_SECTOR_SIZE);
    if (k->area_size < need) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: area size %" PRIu64 " is smaller than "
                              "the key material (%" PRIu64 ")", what,
                              k->area_size, need);
    }
    kdf = jget(o, "kdf", json_type_object);
    if (!kdf) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: missing kdf", what);
    }
    r = parse_kdf(k, kdf, what, errp);
    if (r < 0) {
        return r;
    }
    k->usable = true;
    return 0;
}

/* Bit mask from an array of id strings; each must name a present entry. */
static int
parse_id_array(struct json_object *arr, const bool *present, unsigned limit,
               uint32_t *mask)
{
    size_t i, n;

    *mask = 0;
    if (!arr) {
        return -1;
    }
    n = json_object_array_length(arr);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        int id;

        if (!json_object_is_type(e, json_type_string)) {
            return -1;
        }
        id = parse_id(json_object_get_string(e), limit);
        if (id < 0 || !present[id]) {
            return -1;
        }
        *mask |= 1u << id;
    }
    return 0;
}

static int
parse_segment(struct luks2 *l, int id, struct json_object *o,
              struct vimg_error **errp)
{
    struct segment *sg = &l->seg;
    const char *type, *size;
    char what[32];
    int64_t v;
    int r;

    snprintf(what, sizeof(what), "segment %d", id);
    memset(sg, 0, sizeof(*sg));
    sg->id = id;
    sg->digest = -1;
    type = jget_str(o, "type");
    if (!type) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: missing type", what);
    }
    if (strcmp(type, "crypt") != 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: type '%s' is not supported", what, type);
    }
    if (json_object_object_get_ex(o, "integrity", NULL)) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: integrity protection is not supported",
                              what);
    }
    if (!jget_u64str(o, "offset", &sg->offset)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid offset", what);
    }
    if (!jget_u64str(o, "iv_tweak", &sg->iv_tweak)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid iv_tweak", what);
    }
    if (!jget_int(o, "sector_size", 0, INT32_MAX, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid sector_size",
                              what);
    }
    if (v != 512 && v != 1024 && v != 2048 && v != 4096) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: sector_size %" PRId64 " is not supported",
                              what, v);
    }
    sg->sector_size = (uint32_t)v;
    size = jget_str(o, "size");
    if (size && strcmp(size, "dynamic") == 0) {
        sg->dynamic = true;
    } else if (!size || !str_u64(size, &sg->size) || sg->size % sg->sector_size) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid size", what);
    }
    if (sg->offset % CRYPTO_SECTOR_SIZE) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: offset %" PRIu64 " is not aligned to 512",
                              what, sg->offset);
    }
    /* Only a detached header's data segment may start at (typically) 0. */
    if (!l->io.detached && sg->offset < 2 * l->hdr_size + l->keyslots_size) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s: offset %" PRIu64 " overlaps the header "
                              "and keyslots area (%" PRIu64 " bytes)", what,
                              sg->offset, 2 * l->hdr_size + l->keyslots_size);
    }
    if (!sg->dynamic && sg->size > UINT64_MAX - sg->offset) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid size", what);
    }
    r = parse_cipher(jget_str(o, "encryption"), &sg->cipher, what, errp);
    return r;
}

static int
parse_digest(struct luks2 *l, int id, struct json_object *o,
             const bool *ks_present, const bool *seg_present,
             struct vimg_error **errp)
{
    struct digest *d = &l->dg[id];
    const char *type;
    char what[32];
    int64_t v;
    int h;

    snprintf(what, sizeof(what), "digest %d", id);
    memset(d, 0, sizeof(*d));
    d->present = true;
    type = jget_str(o, "type");
    if (!type || strcmp(type, "pbkdf2") != 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: type is missing or not supported", what);
    }
    if (parse_id_array(jget(o, "keyslots", json_type_array), ks_present,
                       LUKS2_NUM_KEYSLOTS, &d->keyslots) < 0) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid keyslots list",
                              what);
    }
    if (parse_id_array(jget(o, "segments", json_type_array), seg_present,
                       LUKS2_NUM_KEYSLOTS, &d->segments) < 0) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid segments list",
                              what);
    }
    h = crypto_hash_alg_parse(jget_str(o, "hash") ? jget_str(o, "hash") : "");
    if (h < 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s: hash is missing or not supported", what);
    }
    d->hash = (enum crypto_hash_alg)h;
    if (!jget_int(o, "iterations", 1, UINT32_MAX, &v)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid iterations", what);
    }
    d->iterations = (uint32_t)v;
    if (!jget_b64(o, "salt", d->salt, sizeof(d->salt), &d->salt_len)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid salt", what);
    }
    if (!jget_b64(o, "digest", d->value, sizeof(d->value), &d->value_len)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 %s: invalid digest", what);
    }
    return 0;
}

/* The "config" object and its requirements. */
static int
parse_config(struct luks2 *l, struct json_object *cfg, struct vimg_error **errp)
{
    struct json_object *req, *mand;
    uint64_t json_size;

    if (!jget_u64str(cfg, "json_size", &json_size) ||
        json_size != l->hdr_size - LUKS2_BIN_HEADER_SIZE) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 config: json_size does not match the header size");
    }
    if (!jget_u64str(cfg, "keyslots_size", &l->keyslots_size) ||
        l->keyslots_size % LUKS2_AREA_ALIGN ||
        l->keyslots_size > LUKS2_MAX_KEYSLOTS_SIZE) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 config: invalid keyslots_size");
    }
    req = jget(cfg, "requirements", json_type_object);
    mand = req ? jget(req, "mandatory", json_type_array) : NULL;
    if (mand && json_object_array_length(mand) > 0) {
        struct json_object *e = json_object_array_get_idx(mand, 0);
        const char *name = json_object_is_type(e, json_type_string)
                           ? json_object_get_string(e) : "?";

        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 requirement '%s' is not supported", name);
    }
    return 0;
}

/*
 * Validate the whole metadata tree @root and fill l->ks/dg/seg.  Needs
 * l->hdr_size.  Leaves the tree untouched.
 */
static int
parse_metadata(struct luks2 *l, struct json_object *root,
               struct vimg_error **errp)
{
    struct json_object *keyslots, *segments, *digests, *config, *tokens;
    bool ks_present[LUKS2_NUM_KEYSLOTS] = { false };
    bool seg_present[LUKS2_NUM_KEYSLOTS] = { false };
    int nseg = 0, i, j, r;

    memset(l->ks, 0, sizeof(l->ks));
    memset(l->dg, 0, sizeof(l->dg));
    memset(&l->seg, 0, sizeof(l->seg));
    if (!json_object_is_type(root, json_type_object)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 metadata is not a JSON object");
    }
    keyslots = jget(root, "keyslots", json_type_object);
    segments = jget(root, "segments", json_type_object);
    digests = jget(root, "digests", json_type_object);
    config = jget(root, "config", json_type_object);
    tokens = jget(root, "tokens", json_type_object);
    if (!keyslots || !segments || !digests || !config || !tokens) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 metadata lacks one of keyslots, segments, "
                              "digests, config, tokens");
    }
    r = parse_config(l, config, errp);
    if (r < 0) {
        return r;
    }

    json_object_object_foreach(segments, skey, sval) {
        int id = parse_id(skey, LUKS2_NUM_KEYSLOTS);

        if (id < 0 || !json_object_is_type(sval, json_type_object)) {
            return vimg_error_set(errp, -EINVAL, "LUKS2 segment '%s' is invalid",
                                  skey);
        }
        if (++nseg > 1) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "LUKS2 headers with more than one segment are "
                                  "not supported");
        }
        seg_present[id] = true;
        r = parse_segment(l, id, sval, errp);
        if (r < 0) {
            return r;
        }
    }
    if (nseg == 0) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 header has no data segment");
    }

    json_object_object_foreach(keyslots, kkey, kval) {
        int id = parse_id(kkey, LUKS2_NUM_KEYSLOTS);

        if (id < 0 || !json_object_is_type(kval, json_type_object)) {
            return vimg_error_set(errp, -EINVAL, "LUKS2 keyslot '%s' is invalid",
                                  kkey);
        }
        r = parse_keyslot(l, id, kval, errp);
        if (r < 0) {
            return r;
        }
        ks_present[id] = true;
    }
    for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
        for (j = i + 1; j < LUKS2_NUM_KEYSLOTS; j++) {
            const struct keyslot *a = &l->ks[i], *b = &l->ks[j];

            if (a->present && b->present &&
                a->area_offset < b->area_offset + b->area_size &&
                b->area_offset < a->area_offset + a->area_size) {
                return vimg_error_set(errp, -EINVAL,
                                      "LUKS2 keyslot %d area overlaps keyslot %d",
                                      j, i);
            }
        }
    }

    json_object_object_foreach(digests, dkey, dval) {
        int id = parse_id(dkey, LUKS2_NUM_KEYSLOTS);

        if (id < 0 || !json_object_is_type(dval, json_type_object)) {
            return vimg_error_set(errp, -EINVAL, "LUKS2 digest '%s' is invalid",
                                  dkey);
        }
        r = parse_digest(l, id, dval, ks_present, seg_present, errp);
        if (r < 0) {
            return r;
        }
        for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
            if (!(l->dg[id].keyslots & (1u << i))) {
                continue;
            }
            if (l->ks[i].digest >= 0) {
                return vimg_error_set(errp, -EINVAL,
                                      "LUKS2 keyslot %d is bound to two digests",
                                      i);
            }
            l->ks[i].digest = id;
        }
        if (l->dg[id].segments & (1u << l->seg.id)) {
            if (l->seg.digest >= 0) {
                return vimg_error_set(errp, -EINVAL,
                                      "LUKS2 segment %d is bound to two digests",
                                      l->seg.id);
            }
            l->seg.digest = id;
        }
    }

    /* The volume key size: that of the keyslots bound to the segment. */
    if (l->seg.digest >= 0) {
        for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
            const struct keyslot *k = &l->ks[i];

            if (!k->present || k->digest != l->seg.digest) {
                continue;
            }
            if (l->seg.key_size && l->seg.key_size != k->key_size) {
                return vimg_error_set(errp, -EINVAL,
                                      "LUKS2 keyslot %d key_size differs from "
                                      "the other keyslots of segment %d", i,
                                      l->seg.id);
            }
            l->seg.key_size = k->key_size;
        }
    }
    if (l->seg.key_size) {
        char what[32];

        snprintf(what, sizeof(what), "segment %d", l->seg.id);
        r = resolve_alg(&l->seg.cipher, l->seg.key_size, &l->seg.alg, what,
                        errp);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* ---- binary header ------------------------------------------------------------- */

static bool
hdr_size_ok(uint64_t s)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(hdr_sizes); i++) {
        if (hdr_sizes[i] == s) {
            return true;
        }
    }
    return false;
}

/* A fixed-size header string field: must be NUL-terminated. */
static bool
field_str(const uint8_t *bin, size_t off, size_t len, char *out)
{
    if (!memchr(bin + off, 0, len)) {
        return false;
    }
    memcpy(out, bin + off, len);
    out[len] = '\0';
    return true;
}

/*
 * Read and fully validate the header copy at @off (primary if @off == 0).
 * On success c->valid is set and c->json holds the parsed tree.  The
 * returned error (in @errp) explains why the copy is unusable.
 */
static int
read_copy(const struct luks2_io *io, uint64_t off, struct hdr_copy *c,
          struct vimg_error **errp)
{
    const char *magic = off == 0 ? LUKS2_MAGIC_1ST : LUKS2_MAGIC_2ND;
    const char *which = off == 0 ? "primary" : "secondary";
    char csum_alg[LUKS2_CSUM_ALG_LEN + 1];
    uint8_t stored[LUKS2_CSUM_LEN], calc[CRYPTO_MAX_DIGEST];
    struct json_tokener *tok;
    uint8_t *area = NULL;
    size_t json_len, hlen;
    uint16_t version;
    int h, r;

    memset(c, 0, sizeof(*c));
    r = io->read(io->opaque, off, c->bin, sizeof(c->bin), errp);
    if (r < 0) {
        return r;
    }
    if (memcmp(c->bin + OFF_MAGIC, magic, LUKS2_MAGIC_LEN) != 0) {
        return vimg_error_set(errp, -EINVAL, "Volume is not in LUKS format");
    }
    version = ld_be16(c->bin + OFF_VERSION);
    if (version != 2) {
        return vimg_error_set(errp, -EINVAL, "LUKS version %u is not supported",
                              (unsigned)version);
    }
    c->hdr_size = ld_be64(c->bin + OFF_HDR_SIZE);
    c->seqid = ld_be64(c->bin + OFF_SEQID);
    if (!hdr_size_ok(c->hdr_size)) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s header: invalid header size %" PRIu64,
                              which, c->hdr_size);
    }
    if (ld_be64(c->bin + OFF_HDR_OFFSET) != off ||
        (off != 0 && off != c->hdr_size)) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 %s header: wrong header offset %" PRIu64,
                              which, ld_be64(c->bin + OFF_HDR_OFFSET));
    }
    if (!field_str(c->bin, OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN, csum_alg) ||
        (h = crypto_hash_alg_parse(csum_alg)) < 0) {
        return vimg_error_set(errp, -ENOTSUP,
                              "LUKS2 %s header: checksum algorithm is not supported",
                              which);
    }

    /* Checksum over binary header (csum zeroed) + JSON area. */
    area = malloc(c->hdr_size - LUKS2_BIN_HEADER_SIZE);
    if (!area) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = io->read(io->opaque, off + LUKS2_BIN_HEADER_SIZE, area,
                 c->hdr_size - LUKS2_BIN_HEADER_SIZE, errp);
    if (r < 0) {
        goto out;
    }
    memcpy(stored, c->bin + OFF_CSUM, LUKS2_CSUM_LEN);
    memset(c->bin + OFF_CSUM, 0, LUKS2_CSUM_LEN);
    r = crypto_hash2((enum crypto_hash_alg)h, c->bin, sizeof(c->bin), area,
                     c->hdr_size - LUKS2_BIN_HEADER_SIZE, calc);
    memcpy(c->bin + OFF_CSUM, stored, LUKS2_CSUM_LEN);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to compute the LUKS2 checksum");
        goto out;
    }
    hlen = crypto_hash_len((enum crypto_hash_alg)h);
    if (hlen > LUKS2_CSUM_LEN || memcmp(calc, stored, hlen) != 0) {
        r = vimg_error_set(errp, -EINVAL, "LUKS2 %s header checksum mismatch",
                           which);
        goto out;
    }

    /* The JSON text ends with a NUL inside the area. */
    json_len = strnlen((const char *)area, c->hdr_size - LUKS2_BIN_HEADER_SIZE);
    if (json_len == c->hdr_size - LUKS2_BIN_HEADER_SIZE) {
        r = vimg_error_set(errp, -EINVAL,
                           "LUKS2 %s header: JSON area is not terminated", which);
        goto out;
    }
    tok = json_tokener_new();
    if (!tok) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    c->json = json_tokener_parse_ex(tok, (const char *)area, (int)json_len);
    if (!c->json || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != json_len) {
        json_object_put(c->json);
        c->json = NULL;
        r = vimg_error_set(errp, -EINVAL,
                           "LUKS2 %s header: JSON metadata cannot be parsed",
                           which);
    }
    json_tokener_free(tok);
    if (r == 0) {
        c->valid = true;
    }
out:
    free(area);
    return r;
}

/* Try the secondary header at @off, quietly (no error kept). */
static void
try_secondary(const struct luks2_io *io, uint64_t off, struct hdr_copy *c)
{
    struct vimg_error *err = NULL;

    if (read_copy(io, off, c, &err) < 0) {
        json_object_put(c->json);
        c->json = NULL;
        c->valid = false;
    }
    vimg_error_free(err);
}

/* Take the parsed binary fields of @c into @l. */
static void
adopt_copy(struct luks2 *l, struct hdr_copy *c)
{
    l->hdr_size = c->hdr_size;
    l->seqid = c->seqid;
    field_str(c->bin, OFF_LABEL, LUKS2_LABEL_LEN, l->label);
    field_str(c->bin, OFF_SUBSYSTEM, LUKS2_LABEL_LEN, l->subsystem);
    field_str(c->bin, OFF_UUID, LUKS2_UUID_LEN, l->uuid);
    field_str(c->bin, OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN, l->csum_alg);
    /* Unterminated label/subsystem/uuid: keep them empty. */
    l->label[LUKS2_LABEL_LEN] = '\0';
    l->subsystem[LUKS2_LABEL_LEN] = '\0';
    l->uuid[LUKS2_UUID_LEN] = '\0';
    l->json = c->json;
    c->json = NULL;
}

/* ---- public: load, free, accessors -------------------------------------------- */

void
luks2_create_params_default(struct luks2_create_params *p)
{
    memset(p, 0, sizeof(*p));
    p->cipher = CRYPTO_CIPHER_AES_256;
    p->mode = CRYPTO_MODE_XTS;
    p->ivgen = CRYPTO_IVGEN_PLAIN64;
    p->ivgen_hash = CRYPTO_HASH_SHA256;
    p->hash = CRYPTO_HASH_SHA256;
    p->kdf = LUKS2_KDF_ARGON2ID;
    p->iter_time_ms = 2000;
    p->iterations = 0;
    p->memory_kib = LUKS2_ARGON2_DEFAULT_MEMORY;
    p->parallel = 0;
    p->sector_size = 512;
    p->data_offset = 0;
    p->label = NULL;
}

int
luks2_load(const struct luks2_io *io, struct luks2 **out,
           struct vimg_error **errp)
{
    struct hdr_copy c1, c2;
    struct vimg_error *err1 = NULL;
    struct hdr_copy *best = NULL;
    struct luks2 *l;
    size_t i;
    int r1, r;

    *out = NULL;
    if (!io || !io->read) {
        return vimg_error_set(errp, -EINVAL, "LUKS header cannot be read");
    }
    r = crypto_init();
    if (r < 0) {
        return vimg_error_errno(errp, r, "Cannot initialise the crypto library");
    }
    memset(&c2, 0, sizeof(c2));
    r1 = read_copy(io, 0, &c1, &err1);
    if (r1 == -EIO || r1 == -ENOMEM) {
        r = vimg_error_set(errp, r1, "%s", vimg_error_message(err1));
        vimg_error_free(err1);
        return r;
    }
    if (c1.valid || (ld_be16(c1.bin + OFF_VERSION) == 2 &&
                     memcmp(c1.bin, LUKS2_MAGIC_1ST, LUKS2_MAGIC_LEN) == 0 &&
                     hdr_size_ok(ld_be64(c1.bin + OFF_HDR_SIZE)))) {
        /* The primary's binary header tells where the secondary is. */
        try_secondary(io, ld_be64(c1.bin + OFF_HDR_SIZE), &c2);
    }
    if (!c2.valid && !c1.valid) {
        /* Damaged primary: scan the offsets the specification allows. */
        for (i = 0; i < ARRAY_SIZE(hdr_sizes) && !c2.valid; i++) {
            try_secondary(io, hdr_sizes[i], &c2);
        }
    }
    if (c1.valid && c2.valid) {
        best = c2.seqid > c1.seqid ? &c2 : &c1;
    } else if (c1.valid) {
        best = &c1;
    } else if (c2.valid) {
        best = &c2;
    }
    if (!best) {
        r = vimg_error_set(errp, r1 < 0 ? r1 : -EINVAL, "%s",
                           err1 ? vimg_error_message(err1)
                                : "LUKS2 header is invalid");
        vimg_error_free(err1);
        return r;
    }
    vimg_error_free(err1);

    l = calloc(1, sizeof(*l));
    if (!l) {
        json_object_put(c1.json);
        json_object_put(c2.json);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    l->io = *io;
    l->primary_valid = c1.valid;
    l->secondary_valid = c2.valid;
    adopt_copy(l, best);
    json_object_put(c1.json);
    json_object_put(c2.json);
    r = parse_metadata(l, l->json, errp);
    if (r < 0) {
        luks2_free(l);
        return r;
    }
    *out = l;
    return 0;
}

static void
drop_key(struct luks2 *l)
{
    crypto_sector_free(l->sector);
    crypto_cipher_free(l->cipher);
    crypto_ivgen_free(l->ivgen);
    safe_free(l->vk);
    l->sector = NULL;
    l->cipher = NULL;
    l->ivgen = NULL;
    l->vk = NULL;
}

void
luks2_free(struct luks2 *l)
{
    if (!l) {
        return;
    }
    drop_key(l);
    json_object_put(l->json);
    safe_wipe(l->ks, sizeof(l->ks));
    safe_wipe(l->dg, sizeof(l->dg));
    free(l);
}

uint64_t
luks2_payload_offset(const struct luks2 *l)
{
    return l->seg.offset;
}

uint64_t
luks2_payload_size(const struct luks2 *l, uint64_t dev_size)
{
    if (!l->seg.dynamic) {
        return l->seg.size;
    }
    if (dev_size <= l->seg.offset) {
        return 0;
    }
    return (dev_size - l->seg.offset) / l->seg.sector_size * l->seg.sector_size;
}

uint32_t
luks2_sector_size(const struct luks2 *l)
{
    return l->seg.sector_size;
}

uint64_t
luks2_header_area_size(const struct luks2 *l)
{
    return 2 * l->hdr_size + l->keyslots_size;
}

const char *
luks2_uuid(const struct luks2 *l)
{
    return l->uuid;
}

bool
luks2_unlocked(const struct luks2 *l)
{
    return l && l->vk && (l->sector || l->cipher);
}

const uint8_t *
luks2_volume_key(const struct luks2 *l, size_t *len)
{
    if (!luks2_unlocked(l)) {
        return NULL;
    }
    *len = l->seg.key_size;
    return l->vk;
}

/* ---- unlock -------------------------------------------------------------------- */

/* Derive @outlen bytes from @pw with keyslot @k's kdf. */
static int
derive(const struct keyslot *k, const char *pw, size_t pwlen, uint8_t *out,
       size_t outlen)
{
    switch (k->kdf) {
    case LUKS2_KDF_PBKDF2:
        return crypto_pbkdf2(k->kdf_hash, pw, pwlen, k->salt, k->salt_len,
                             k->iterations, out, outlen);
    case LUKS2_KDF_ARGON2I:
    case LUKS2_KDF_ARGON2ID:
        return crypto_argon2(k->kdf == LUKS2_KDF_ARGON2I ? CRYPTO_ARGON2I
                                                         : CRYPTO_ARGON2ID,
                             pw, pwlen, k->salt, k->salt_len, NULL, 0, NULL, 0,
                             k->iterations, k->memory, k->cpus, out, outlen);
    }
    return -EINVAL;
}

/* 1 if @vk matches digest @d, 0 if not, -errno. */
static int
check_digest(const struct digest *d, const uint8_t *vk, size_t len)
{
    uint8_t *calc = safe_alloc(d->value_len);
    int r;

    if (!calc) {
        return -ENOMEM;
    }
    r = crypto_pbkdf2(d->hash, vk, len, d->salt, d->salt_len, d->iterations,
                      calc, d->value_len);
    if (r == 0) {
        r = safe_memeq(calc, d->value, d->value_len) ? 1 : 0;
    }
    safe_free(calc);
    return r;
}

/* Bytes of AF material of a keyslot, whole 512-byte sectors. */
static size_t
material_len(const struct keyslot *k)
{
    return ROUND_UP((size_t)k->key_size * k->stripes, CRYPTO_SECTOR_SIZE);
}

/*
 * Try keyslot @i: derive the area key, read and decrypt the area (512-byte
 * sectors from IV 0), AF merge into @vk.  1 if the digest matches, 0 if not,
 * -errno (+errp) on failure.
 */
static int
try_keyslot(struct luks2 *l, int i, const char *pw, size_t pwlen,
            uint8_t *vk, struct vimg_error **errp)
{
    const struct keyslot *k = &l->ks[i];
    size_t mlen = material_len(k);
    struct crypto_sector *sc = NULL;
    uint8_t *akey = NULL, *material = NULL;
    int r;

#ifdef LUKS2_FUZZ_MAX_ITERATIONS
    if (k->iterations > LUKS2_FUZZ_MAX_ITERATIONS ||
        l->dg[k->digest].iterations > LUKS2_FUZZ_MAX_ITERATIONS) {
        return 0;
    }
#endif
    akey = safe_alloc(k->area_key_size);
    material = safe_alloc(mlen);
    if (!akey || !material) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = derive(k, pw, pwlen, akey, k->area_key_size);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to derive the key of keyslot %d",
                             i);
        goto out;
    }
    r = l->io.read(l->io.opaque, k->area_offset, material, mlen, errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to read key material of keyslot %d",
                           i);
        goto out;
    }
    r = crypto_sector_new(k->area_alg, k->area_cipher.mode, k->area_cipher.ivgen,
                          k->area_cipher.ivgen_hash, akey, k->area_key_size, &sc);
    if (r == 0) {
        r = crypto_sector_decrypt(sc, 0, material, mlen);
    }
    if (r == 0) {
        r = crypto_afmerge(k->af_hash, k->key_size, k->stripes, material, vk);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to decrypt keyslot %d", i);
        goto out;
    }
    r = check_digest(&l->dg[k->digest], vk, k->key_size);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to verify the volume key");
    }
out:
    crypto_sector_free(sc);
    safe_free(material);
    safe_free(akey);
    return r;
}

/* Set up the data cipher for @vk (taking ownership of it). */
static int
install_key(struct luks2 *l, uint8_t *vk, struct vimg_error **errp)
{
    const struct cipher_spec *c = &l->seg.cipher;
    int r;

    drop_key(l);
    l->vk = vk;
    if (l->seg.sector_size == CRYPTO_SECTOR_SIZE) {
        r = crypto_sector_new(l->seg.alg, c->mode, c->ivgen, c->ivgen_hash, vk,
                              l->seg.key_size, &l->sector);
    } else {
        r = crypto_cipher_new(l->seg.alg, c->mode, vk, l->seg.key_size,
                              &l->cipher);
        l->iv_len = crypto_cipher_iv_len(l->seg.alg, c->mode);
        if (r == 0 && l->iv_len) {
            r = crypto_ivgen_new(c->ivgen, l->seg.alg, c->mode, c->ivgen_hash,
                                 vk, l->seg.key_size, &l->ivgen);
        }
    }
    if (r < 0) {
        drop_key(l);
        return vimg_error_errno(errp, r, "Unable to set up the payload cipher");
    }
    return 0;
}

int
luks2_unlock(struct luks2 *l, const char *pw, size_t pwlen,
             struct vimg_error **errp)
{
    uint8_t *vk;
    int prio, i, r;

    if (!l || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    if (l->seg.digest < 0 || l->seg.key_size == 0) {
        return vimg_error_set(errp, -EPERM,
                              "Invalid password, cannot unlock any keyslot");
    }
    vk = safe_alloc(l->seg.key_size);
    if (!vk) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (prio = 2; prio >= 1; prio--) {
        for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
            const struct keyslot *k = &l->ks[i];

            if (!k->usable || k->priority != prio ||
                k->digest != l->seg.digest) {
                continue;
            }
            r = try_keyslot(l, i, pw ? pw : "", pwlen, vk, errp);
            if (r < 0) {
                safe_free(vk);
                return r;
            }
            if (r == 1) {
                r = install_key(l, vk, errp);
                return r < 0 ? r : i;
            }
        }
    }
    safe_free(vk);
    return vimg_error_set(errp, -EPERM,
                          "Invalid password, cannot unlock any keyslot");
}

/* ---- payload ------------------------------------------------------------------- */

/* @in NULL: in place over @buf; else encrypt from @in to @buf. */
static int
crypt_data(struct luks2 *l, uint64_t sector, void *buf, const void *in,
           size_t len, bool enc)
{
    uint32_t ss = l->seg.sector_size;
    uint64_t per = ss / CRYPTO_SECTOR_SIZE;
    uint8_t iv[CRYPTO_MAX_IV];
    uint8_t *p = buf;
    const uint8_t *q = in;
    size_t off;
    int r;

    if (!luks2_unlocked(l)) {
        return -EACCES;
    }
    if (len % ss || sector % per) {
        return -EINVAL;
    }
    /* IVs count 512-byte units from iv_tweak (wrapping like dm-crypt). */
    if (l->sector) {
        if (in) {
            return crypto_sector_encrypt_from(l->sector,
                                              sector + l->seg.iv_tweak, buf,
                                              in, len);
        }
        return enc ? crypto_sector_encrypt(l->sector, sector + l->seg.iv_tweak,
                                           buf, len)
                   : crypto_sector_decrypt(l->sector, sector + l->seg.iv_tweak,
                                           buf, len);
    }
    for (off = 0; off < len; off += ss, sector += per) {
        if (l->ivgen) {
            r = crypto_ivgen_calc(l->ivgen, sector + l->seg.iv_tweak, iv,
                                  l->iv_len);
            if (r < 0) {
                return r;
            }
        }
        if (q) {
            r = crypto_cipher_encrypt_from(l->cipher, l->ivgen ? iv : NULL,
                                           l->iv_len, p + off, q + off, ss);
        } else if (enc) {
            r = crypto_cipher_encrypt(l->cipher, l->ivgen ? iv : NULL,
                                      l->iv_len, p + off, ss);
        } else {
            r = crypto_cipher_decrypt(l->cipher, l->ivgen ? iv : NULL,
                                      l->iv_len, p + off, ss);
        }
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
luks2_encrypt(struct luks2 *l, uint64_t sector, void *buf, size_t len)
{
    return crypt_data(l, sector, buf, NULL, len, true);
}

int
luks2_encrypt_from(struct luks2 *l, uint64_t sector, void *out,
                   const void *in, size_t len)
{
    if (len && !in) {
        return -EINVAL;
    }
    return crypt_data(l, sector, out, in, len, true);
}

int
luks2_decrypt(struct luks2 *l, uint64_t sector, void *buf, size_t len)
{
    return crypt_data(l, sector, buf, NULL, len, false);
}

/* ---- writing headers ------------------------------------------------------------ */

/*
 * Write both header copies from l->json with seqid l->seqid: secondary
 * first, so that a crash leaves at least one copy with the old or the new
 * metadata intact.
 */
static int
write_headers(struct luks2 *l, struct vimg_error **errp)
{
    size_t area_len = l->hdr_size - LUKS2_BIN_HEADER_SIZE;
    const char *text;
    uint8_t *buf;
    size_t tlen;
    int copy, r = 0;

    text = json_object_to_json_string_ext(l->json, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    tlen = strlen(text);
    if (tlen >= area_len) {
        return vimg_error_set(errp, -ENOSPC,
                              "LUKS2 metadata does not fit the JSON area");
    }
    buf = calloc(1, l->hdr_size);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (copy = 1; copy >= 0 && r == 0; copy--) {
        uint64_t off = copy ? l->hdr_size : 0;

        memset(buf, 0, l->hdr_size);
        memcpy(buf + OFF_MAGIC, copy ? LUKS2_MAGIC_2ND : LUKS2_MAGIC_1ST,
               LUKS2_MAGIC_LEN);
        st_be16(buf + OFF_VERSION, 2);
        st_be64(buf + OFF_HDR_SIZE, l->hdr_size);
        st_be64(buf + OFF_SEQID, l->seqid);
        memcpy(buf + OFF_LABEL, l->label, strnlen(l->label, LUKS2_LABEL_LEN - 1));
        memcpy(buf + OFF_CSUM_ALG, "sha256", 6);
        memcpy(buf + OFF_UUID, l->uuid, strnlen(l->uuid, LUKS2_UUID_LEN - 1));
        memcpy(buf + OFF_SUBSYSTEM, l->subsystem,
               strnlen(l->subsystem, LUKS2_LABEL_LEN - 1));
        st_be64(buf + OFF_HDR_OFFSET, off);
        memcpy(buf + LUKS2_BIN_HEADER_SIZE, text, tlen);
        r = crypto_random(buf + OFF_SALT, LUKS2_SALT_LEN);
        if (r == 0) {
            r = crypto_hash(CRYPTO_HASH_SHA256, buf, l->hdr_size, buf + OFF_CSUM);
        }
        if (r < 0) {
            r = vimg_error_errno(errp, r, "Unable to build the LUKS2 header");
            break;
        }
        r = l->io.write(l->io.opaque, off, buf, l->hdr_size, errp);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Unable to write the LUKS2 %s header",
                               copy ? "secondary" : "primary");
        }
    }
    free(buf);
    if (r == 0) {
        snprintf(l->csum_alg, sizeof(l->csum_alg), "sha256");
        l->primary_valid = l->secondary_valid = true;
    }
    return r;
}

/* ---- create ---------------------------------------------------------------------- */

static int
check_params(const struct luks2_create_params *p, size_t *key_bytes,
             struct vimg_error **errp)
{
    if ((unsigned)p->cipher >= CRYPTO_CIPHER__MAX ||
        (unsigned)p->mode >= CRYPTO_MODE__MAX ||
        (unsigned)p->ivgen >= CRYPTO_IVGEN__MAX ||
        (unsigned)p->ivgen_hash >= CRYPTO_HASH__MAX ||
        (unsigned)p->hash >= CRYPTO_HASH__MAX ||
        (unsigned)p->kdf > LUKS2_KDF_ARGON2ID) {
        return vimg_error_set(errp, -EINVAL, "Invalid LUKS parameters");
    }
    if (!crypto_cipher_mode_ok(p->cipher, p->mode)) {
        return vimg_error_set(errp, -EINVAL, "Unsupported cipher mode %s",
                              crypto_cipher_mode_name(p->mode));
    }
    if (p->sector_size != 512 && p->sector_size != 1024 &&
        p->sector_size != 2048 && p->sector_size != 4096) {
        return vimg_error_set(errp, -EINVAL,
                              "Unsupported encryption sector size %" PRIu32
                              " (512, 1024, 2048 or 4096)", p->sector_size);
    }
    if (p->label && strlen(p->label) >= LUKS2_LABEL_LEN) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 label is too long (max %d)",
                              LUKS2_LABEL_LEN - 1);
    }
    if (p->kdf != LUKS2_KDF_PBKDF2 && p->iterations &&
        (p->memory_kib < LUKS2_ARGON2_MIN_MEMORY ||
         p->memory_kib > CRYPTO_ARGON2_MAX_MEMORY_KIB ||
         p->parallel > LUKS2_ARGON2_MAX_CPUS)) {
        return vimg_error_set(errp, -EINVAL, "Invalid argon2 parameters");
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

/* Bytes of keyslot area for a @kb-byte key, 4096-aligned as cryptsetup. */
static uint64_t
area_len(size_t kb)
{
    return ROUND_UP((uint64_t)kb * LUKS2_STRIPES, LUKS2_AREA_ALIGN);
}

int
luks2_payload_bytes(const struct luks2_create_params *p, uint64_t *out,
                    struct vimg_error **errp)
{
    uint64_t off;
    size_t kb = 0;
    int r;

    r = check_params(p, &kb, errp);
    if (r < 0) {
        return r;
    }
    off = p->data_offset ? p->data_offset : LUKS2_DATA_OFFSET_DEFAULT;
    if (off % LUKS2_AREA_ALIGN || off % p->sector_size ||
        off < 2 * LUKS2_HDR_SIZE_DEFAULT + area_len(kb)) {
        return vimg_error_set(errp, -EINVAL,
                              "LUKS2 data offset %" PRIu64 " is too small or "
                              "not aligned to 4096", off);
    }
    *out = off;
    return 0;
}

/* CPU time of the calling thread in ms. */
static double
cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/*
 * Argon2 cost for p->iter_time_ms: one probe run (time 1 over at most
 * 32 MiB) gives the cost of a KiB-pass; then keep the requested memory (at
 * most half the RAM) and scale the time cost to the target, or, if even
 * LUKS2_ARGON2_MIN_TIME passes over it are too slow, lower the memory.
 */
static int
calibrate_argon2(const struct luks2_create_params *p, uint32_t cpus,
                 uint32_t *t_out, uint32_t *m_out, struct vimg_error **errp)
{
    uint8_t salt[32] = { 0 }, out[32];
    uint64_t m = p->memory_kib ? p->memory_kib : LUKS2_ARGON2_DEFAULT_MEMORY;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    uint64_t probe_m, t;
    double t0, per_kib_pass, target = (double)MAX(p->iter_time_ms, 1);
    int r;

    if (pages > 0 && psize > 0 &&
        m > (uint64_t)pages / 2 * (uint64_t)psize / 1024) {
        m = (uint64_t)pages / 2 * (uint64_t)psize / 1024;
    }
    m = MAX(MIN(m, (uint64_t)CRYPTO_ARGON2_MAX_MEMORY_KIB),
            MAX((uint64_t)LUKS2_ARGON2_MIN_MEMORY, 8 * (uint64_t)cpus));
    probe_m = MIN(m, (uint64_t)32 * 1024);
    t0 = cpu_ms();
    r = crypto_argon2(p->kdf == LUKS2_KDF_ARGON2I ? CRYPTO_ARGON2I
                                                  : CRYPTO_ARGON2ID,
                      "vimg", 4, salt, sizeof(salt), NULL, 0, NULL, 0, 1,
                      (uint32_t)probe_m, cpus, out, sizeof(out));
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to benchmark argon2");
    }
    per_kib_pass = MAX(cpu_ms() - t0, 0.001) / (double)probe_m;
    if (per_kib_pass * (double)m * LUKS2_ARGON2_MIN_TIME > target) {
        m = (uint64_t)(target / (per_kib_pass * LUKS2_ARGON2_MIN_TIME));
        m = MAX(m, MAX((uint64_t)LUKS2_ARGON2_MIN_MEMORY, 8 * (uint64_t)cpus));
        t = LUKS2_ARGON2_MIN_TIME;
    } else {
        t = (uint64_t)(target / (per_kib_pass * (double)m));
    }
    *t_out = (uint32_t)MIN(MAX(t, (uint64_t)LUKS2_ARGON2_MIN_TIME),
                           (uint64_t)UINT32_MAX);
    *m_out = (uint32_t)m;
    return 0;
}

static int
calibrate_pbkdf2(enum crypto_hash_alg h, size_t outlen, int64_t ms,
                 uint32_t *out, struct vimg_error **errp)
{
    uint64_t rate, it;
    int r;

    if (ms <= 0) {
        *out = LUKS2_MIN_ITERATIONS;
        return 0;
    }
    r = crypto_pbkdf2_rate(h, outlen, &rate);
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to measure the PBKDF2 speed");
    }
    if (rate > UINT64_MAX / (uint64_t)ms) {
        return vimg_error_set(errp, -ERANGE, "PBKDF iterations too large");
    }
    it = rate * (uint64_t)ms / 1000;
    if (it > UINT32_MAX) {
        return vimg_error_set(errp, -ERANGE,
                              "PBKDF iterations %" PRIu64 " larger than %" PRIu32,
                              it, UINT32_MAX);
    }
    *out = MAX((uint32_t)it, (uint32_t)LUKS2_MIN_ITERATIONS);
    return 0;
}

static int
make_uuid(char *out, size_t size)
{
    uint8_t b[16];
    int r;

    r = crypto_random(b, sizeof(b));
    if (r < 0) {
        return r;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, size,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

static void
cipher_text(char *buf, size_t size, enum crypto_cipher_alg a,
            enum crypto_cipher_mode m, enum crypto_ivgen_alg g,
            enum crypto_hash_alg gh)
{
    if (m == CRYPTO_MODE_ECB) {
        snprintf(buf, size, "%s-ecb", crypto_cipher_family(a));
    } else if (g == CRYPTO_IVGEN_ESSIV) {
        snprintf(buf, size, "%s-%s-essiv:%s", crypto_cipher_family(a),
                 crypto_cipher_mode_name(m), crypto_hash_alg_name(gh));
    } else {
        snprintf(buf, size, "%s-%s-%s", crypto_cipher_family(a),
                 crypto_cipher_mode_name(m), crypto_ivgen_alg_name(g));
    }
}

/*
 * Build the JSON of a new keyslot with the volume key of @l: random salt,
 * derived area key, AF split, encryption, material written at @area_off.
 * The cipher of the area is the segment's, as cryptsetup does.
 */
static int
new_keyslot(struct luks2 *l, const struct luks2_create_params *p,
            uint64_t area_off, const char *pw, size_t pwlen,
            struct json_object **out, struct vimg_error **errp)
{
    size_t kb = l->seg.key_size;
    uint64_t alen = area_len(kb);
    size_t mlen = ROUND_UP(kb * LUKS2_STRIPES, CRYPTO_SECTOR_SIZE);
    struct json_object *o = NULL, *af, *area, *kdf;
    struct crypto_sector *sc = NULL;
    uint8_t *akey = NULL, *material = NULL;
    struct keyslot k;
    uint32_t cpus;
    long ncpu;
    int r;

    memset(&k, 0, sizeof(k));
    k.kdf = p->kdf;
    k.kdf_hash = p->hash;
    k.salt_len = 32;
    if (p->kdf == LUKS2_KDF_PBKDF2) {
        k.iterations = p->iterations;
        if (!k.iterations) {
            r = calibrate_pbkdf2(p->hash, kb, p->iter_time_ms, &k.iterations,
                                 errp);
            if (r < 0) {
                return r;
            }
        }
    } else {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = p->parallel ? p->parallel
                           : (uint32_t)MIN(MAX(ncpu, 1L),
                                           (long)LUKS2_ARGON2_MAX_CPUS);
        k.cpus = cpus;
        if (p->iterations) {
            k.iterations = p->iterations;
            k.memory = p->memory_kib;
        } else {
            r = calibrate_argon2(p, cpus, &k.iterations, &k.memory, errp);
            if (r < 0) {
                return r;
            }
        }
        if (k.memory < 8 * k.cpus) {
            return vimg_error_set(errp, -EINVAL, "Invalid argon2 parameters");
        }
    }

    akey = safe_alloc(kb);
    material = safe_alloc(mlen);     /* zeroed padding after the stripes */
    if (!akey || !material) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = crypto_random(k.salt, k.salt_len);
    if (r == 0) {
        r = derive(&k, pw, pwlen, akey, kb);
    }
    if (r == 0) {
        r = crypto_afsplit(p->hash, kb, LUKS2_STRIPES, l->vk, material);
    }
    if (r == 0) {
        r = crypto_sector_new(l->seg.alg, l->seg.cipher.mode, l->seg.cipher.ivgen,
                              l->seg.cipher.ivgen_hash, akey, kb, &sc);
    }
    if (r == 0) {
        r = crypto_sector_encrypt(sc, 0, material, mlen);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to create the keyslot");
        goto out;
    }
    r = l->io.write(l->io.opaque, area_off, material, mlen, errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to write keyslot material");
        goto out;
    }

    r = -ENOMEM;
    o = json_object_new_object();
    af = json_object_new_object();
    area = json_object_new_object();
    kdf = json_object_new_object();
    if (!o || !af || !area || !kdf) {
        json_object_put(af);
        json_object_put(area);
        json_object_put(kdf);
        goto jfail;
    }
    if (jadd(af, "type", json_object_new_string("luks1")) ||
        jadd(af, "stripes", json_object_new_int(LUKS2_STRIPES)) ||
        jadd(af, "hash", json_object_new_string(crypto_hash_alg_name(p->hash))) ||
        jadd(area, "type", json_object_new_string("raw")) ||
        jadd(area, "offset", jstr_u64(area_off)) ||
        jadd(area, "size", jstr_u64(alen)) ||
        jadd(area, "encryption", json_object_new_string(l->seg.cipher.text)) ||
        jadd(area, "key_size", json_object_new_int((int)kb)) ||
        jadd(kdf, "type", json_object_new_string(kdf_name(k.kdf)))) {
        json_object_put(af);
        json_object_put(area);
        json_object_put(kdf);
        goto jfail;
    }
    if (k.kdf == LUKS2_KDF_PBKDF2) {
        if (jadd(kdf, "hash", json_object_new_string(crypto_hash_alg_name(p->hash))) ||
            jadd(kdf, "iterations", json_object_new_int64(k.iterations))) {
            goto kfail;
        }
    } else if (jadd(kdf, "time", json_object_new_int64(k.iterations)) ||
               jadd(kdf, "memory", json_object_new_int64(k.memory)) ||
               jadd(kdf, "cpus", json_object_new_int64(k.cpus))) {
        goto kfail;
    }
    if (jadd_b64(kdf, "salt", k.salt, k.salt_len)) {
        goto kfail;
    }
    if (jadd(o, "type", json_object_new_string("luks2")) ||
        jadd(o, "key_size", json_object_new_int((int)kb))) {
        goto kfail;
    }
    if (jadd(o, "af", af)) {
        af = NULL;
        goto kfail;
    }
    af = NULL;
    if (jadd(o, "area", area)) {
        area = NULL;
        goto kfail;
    }
    area = NULL;
    if (jadd(o, "kdf", kdf)) {
        kdf = NULL;
        goto jfail;
    }
    *out = o;
    o = NULL;
    r = 0;
    goto out;
kfail:
    json_object_put(af);
    json_object_put(area);
    json_object_put(kdf);
jfail:
    json_object_put(o);
    r = vimg_error_set(errp, -ENOMEM, "Out of memory");
out:
    safe_wipe(&k, sizeof(k));
    crypto_sector_free(sc);
    safe_free(material);
    safe_free(akey);
    return r;
}

/* The pbkdf2 digest object of the volume key in @l. */
static int
new_digest(struct luks2 *l, enum crypto_hash_alg h, uint32_t iterations,
           struct json_object **out, struct vimg_error **errp)
{
    uint8_t salt[32], dg[CRYPTO_MAX_DIGEST];
    size_t dlen = crypto_hash_len(h);
    struct json_object *o, *ks, *sg;
    int r;

    r = crypto_random(salt, sizeof(salt));
    if (r == 0) {
        r = crypto_pbkdf2(h, l->vk, l->seg.key_size, salt, sizeof(salt),
                          iterations, dg, dlen);
    }
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to compute the volume key digest");
    }
    o = json_object_new_object();
    ks = json_object_new_array();
    sg = json_object_new_array();
    if (!o || !ks || !sg ||
        json_object_array_add(ks, json_object_new_string("0")) ||
        json_object_array_add(sg, json_object_new_string("0"))) {
        json_object_put(o);
        json_object_put(ks);
        json_object_put(sg);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = jadd(o, "type", json_object_new_string("pbkdf2"));
    r |= jadd(o, "keyslots", ks);
    r |= jadd(o, "segments", sg);
    r |= jadd(o, "hash", json_object_new_string(crypto_hash_alg_name(h)));
    r |= jadd(o, "iterations", json_object_new_int64(iterations));
    r |= jadd_b64(o, "salt", salt, sizeof(salt));
    r |= jadd_b64(o, "digest", dg, dlen);
    safe_wipe(dg, sizeof(dg));
    if (r) {
        json_object_put(o);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    *out = o;
    return 0;
}

int
luks2_create(const struct luks2_io *io, const struct luks2_create_params *p,
             const char *pw, size_t pwlen, struct luks2 **out,
             struct vimg_error **errp)
{
    struct json_object *root = NULL, *keyslots, *segments, *digests, *config,
                       *tokens, *seg, *ks = NULL, *dg = NULL;
    struct luks2 *l = NULL;
    uint64_t data_off = 0;
    uint32_t dg_iters;
    size_t kb = 0;
    uint8_t *vk;
    int r;

    *out = NULL;
    if (!io || !io->write || !io->read || !p || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    r = crypto_init();
    if (r < 0) {
        return vimg_error_errno(errp, r, "Cannot initialise the crypto library");
    }
    r = luks2_payload_bytes(p, &data_off, errp);
    if (r < 0) {
        return r;
    }
    (void)check_params(p, &kb, NULL);

    l = calloc(1, sizeof(*l));
    if (!l) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    l->io = *io;
    l->hdr_size = LUKS2_HDR_SIZE_DEFAULT;
    l->seqid = 1;
    l->keyslots_size = MIN(data_off - 2 * l->hdr_size,
                           (uint64_t)LUKS2_MAX_KEYSLOTS_SIZE);
    l->keyslots_size -= l->keyslots_size % LUKS2_AREA_ALIGN;
    if (p->label) {
        snprintf(l->label, sizeof(l->label), "%s", p->label);
    }
    r = make_uuid(l->uuid, sizeof(l->uuid));
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to generate a UUID");
        goto fail;
    }

    /* The segment first: the keyslot code uses its cipher. */
    l->seg.id = 0;
    l->seg.offset = data_off;
    l->seg.dynamic = true;
    l->seg.sector_size = p->sector_size;
    l->seg.key_size = (uint32_t)kb;
    l->seg.alg = p->cipher;
    l->seg.cipher.mode = p->mode;
    l->seg.cipher.ivgen = p->ivgen;
    l->seg.cipher.ivgen_hash = p->ivgen_hash;
    cipher_text(l->seg.cipher.text, sizeof(l->seg.cipher.text), p->cipher,
                p->mode, p->ivgen, p->ivgen_hash);

    vk = safe_alloc(kb);
    if (!vk) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    r = crypto_random(vk, kb);
    if (r < 0) {
        safe_free(vk);
        r = vimg_error_errno(errp, r, "Unable to generate the volume key");
        goto fail;
    }
    r = install_key(l, vk, errp);       /* takes vk */
    if (r < 0) {
        goto fail;
    }

    /* Digest iterations: 1/16 of the keyslot time (125 ms by default). */
    if (p->iterations || p->iter_time_ms <= 0) {
        dg_iters = LUKS2_MIN_ITERATIONS;
    } else {
        r = calibrate_pbkdf2(p->hash, crypto_hash_len(p->hash),
                             p->iter_time_ms / 16, &dg_iters, errp);
        if (r < 0) {
            goto fail;
        }
    }
    r = new_keyslot(l, p, 2 * l->hdr_size, pw ? pw : "", pwlen, &ks, errp);
    if (r == 0) {
        r = new_digest(l, p->hash, dg_iters, &dg, errp);
    }
    if (r < 0) {
        goto fail;
    }

    r = -ENOMEM;
    root = json_object_new_object();
    keyslots = json_object_new_object();
    tokens = json_object_new_object();
    segments = json_object_new_object();
    digests = json_object_new_object();
    config = json_object_new_object();
    seg = json_object_new_object();
    if (!root || jadd(root, "keyslots", keyslots) || jadd(root, "tokens", tokens) ||
        jadd(root, "segments", segments) || jadd(root, "digests", digests) ||
        jadd(root, "config", config) || !seg) {
        json_object_put(seg);
        goto nomem;
    }
    if (jadd(keyslots, "0", ks)) {
        ks = NULL;
        json_object_put(seg);
        goto nomem;
    }
    ks = NULL;
    if (jadd(digests, "0", dg)) {
        dg = NULL;
        json_object_put(seg);
        goto nomem;
    }
    dg = NULL;
    if (jadd(seg, "type", json_object_new_string("crypt")) ||
        jadd(seg, "offset", jstr_u64(io->detached ? 0 : data_off)) ||
        jadd(seg, "size", json_object_new_string("dynamic")) ||
        jadd(seg, "iv_tweak", json_object_new_string("0")) ||
        jadd(seg, "encryption", json_object_new_string(l->seg.cipher.text)) ||
        jadd(seg, "sector_size", json_object_new_int((int)p->sector_size))) {
        json_object_put(seg);
        goto nomem;
    }
    if (jadd(segments, "0", seg) ||
        jadd(config, "json_size", jstr_u64(l->hdr_size - LUKS2_BIN_HEADER_SIZE)) ||
        jadd(config, "keyslots_size", jstr_u64(l->keyslots_size))) {
        goto nomem;
    }
    l->json = root;
    root = NULL;

    /* Re-validate what we built (same code path as load), then write. */
    vk = l->vk;
    l->vk = NULL;
    r = parse_metadata(l, l->json, errp);
    if (r == 0) {
        r = install_key(l, vk, errp);
    } else {
        safe_free(vk);
    }
    if (r == 0) {
        r = write_headers(l, errp);
    }
    if (r < 0) {
        goto fail;
    }
    *out = l;
    return 0;

nomem:
    r = vimg_error_set(errp, -ENOMEM, "Out of memory");
fail:
    json_object_put(root);
    json_object_put(ks);
    json_object_put(dg);
    luks2_free(l);
    return r;
}

/* ---- add key ----------------------------------------------------------------------- */

/* The lowest 4096-aligned offset in the keyslots area with @len free bytes. */
static int
find_area(const struct luks2 *l, uint64_t len, uint64_t *out)
{
    uint64_t lo = 2 * l->hdr_size, hi = lo + l->keyslots_size, off = lo;
    bool moved = true;
    int i;

    while (moved) {
        moved = false;
        for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
            const struct keyslot *k = &l->ks[i];

            if (k->present && off < k->area_offset + k->area_size &&
                k->area_offset < off + len) {
                off = ROUND_UP(k->area_offset + k->area_size, LUKS2_AREA_ALIGN);
                moved = true;
            }
        }
    }
    if (off + len > hi) {
        return -ENOSPC;
    }
    *out = off;
    return 0;
}

int
luks2_add_key(struct luks2 *l, int slot, const struct luks2_create_params *p,
              const char *pw, size_t pwlen, struct vimg_error **errp)
{
    struct luks2_create_params def;
    struct json_object *keyslots, *digests, *dg, *arr, *ks = NULL;
    uint64_t off = 0;
    char id[8], did[8];
    uint8_t *vk;
    int i, r;

    if (!luks2_unlocked(l)) {
        return vimg_error_set(errp, -EACCES, "LUKS2 volume is locked");
    }
    if (!l->io.write || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    if (!p) {
        luks2_create_params_default(&def);
        def.kdf = LUKS2_KDF_PBKDF2;
        p = &def;
    }
    if (slot < 0) {
        for (i = 0; i < LUKS2_NUM_KEYSLOTS && l->ks[i].present; i++) {
        }
        slot = i;
    }
    if (slot >= LUKS2_NUM_KEYSLOTS) {
        return vimg_error_set(errp, -ENOSPC, "All LUKS2 keyslots are in use");
    }
    if (l->ks[slot].present) {
        return vimg_error_set(errp, -EEXIST, "LUKS2 keyslot %d is in use", slot);
    }
    if (find_area(l, area_len(l->seg.key_size), &off) < 0) {
        return vimg_error_set(errp, -ENOSPC,
                              "No space for a new keyslot in the keyslots area");
    }
    r = new_keyslot(l, p, off, pw ? pw : "", pwlen, &ks, errp);
    if (r < 0) {
        return r;
    }
    snprintf(id, sizeof(id), "%d", slot);
    snprintf(did, sizeof(did), "%d", l->seg.digest);
    keyslots = jget(l->json, "keyslots", json_type_object);
    digests = jget(l->json, "digests", json_type_object);
    dg = digests ? jget(digests, did, json_type_object) : NULL;
    arr = dg ? jget(dg, "keyslots", json_type_array) : NULL;
    if (!keyslots || !arr) {
        json_object_put(ks);
        return vimg_error_set(errp, -EINVAL, "LUKS2 metadata is inconsistent");
    }
    if (jadd(keyslots, id, ks) ||
        json_object_array_add(arr, json_object_new_string(id))) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    /* Re-parse (the key stays), then commit with the next seqid. */
    vk = l->vk;
    l->vk = NULL;
    r = parse_metadata(l, l->json, errp);
    if (r == 0) {
        r = install_key(l, vk, errp);
    } else {
        safe_free(vk);
    }
    if (r < 0) {
        return r;
    }
    l->seqid++;
    r = write_headers(l, errp);
    return r < 0 ? r : slot;
}

/* ---- keyslot check and erase --------------------------------------------------- */

bool
luks2_keyslot_present(const struct luks2 *l, int slot)
{
    return slot >= 0 && slot < LUKS2_NUM_KEYSLOTS && l->ks[slot].present;
}

int
luks2_keyslot_check(struct luks2 *l, int slot, const char *pw, size_t pwlen,
                    struct vimg_error **errp)
{
    const struct keyslot *k;
    uint8_t *vk;
    int r;

    if (!luks2_unlocked(l)) {
        return vimg_error_set(errp, -EACCES, "LUKS2 volume is locked");
    }
    if (slot < 0 || slot >= LUKS2_NUM_KEYSLOTS || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    k = &l->ks[slot];
    if (!k->usable || k->digest != l->seg.digest ||
        k->key_size != l->seg.key_size) {
        return 0;
    }
    vk = safe_alloc(k->key_size);
    if (!vk) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = try_keyslot(l, slot, pw ? pw : "", pwlen, vk, errp);
    if (r == 1 && memcmp(vk, l->vk, k->key_size) != 0) {
        r = 0;
    }
    safe_free(vk);
    return r;
}

/* Remove the string @id from the JSON array @arr (if it is one). */
static void
array_drop_id(struct json_object *arr, const char *id)
{
    size_t i;

    if (!arr || !json_object_is_type(arr, json_type_array)) {
        return;
    }
    for (i = json_object_array_length(arr); i-- > 0;) {
        struct json_object *e = json_object_array_get_idx(arr, i);

        if (json_object_is_type(e, json_type_string) &&
            strcmp(json_object_get_string(e), id) == 0) {
            json_object_array_del_idx(arr, i, 1);
        }
    }
}

int
luks2_keyslot_erase(struct luks2 *l, int slot,
                    int (*flush)(void *opaque, struct vimg_error **errp),
                    void *flush_opaque, struct vimg_error **errp)
{
    struct json_object *keyslots, *digests, *tokens;
    uint64_t off, len;
    uint8_t *junk;
    char id[8];
    uint8_t *vk;
    int r;

    if (!l->io.write) {
        return vimg_error_set(errp, -EBADF, "The image is opened read-only");
    }
    if (!luks2_keyslot_present(l, slot)) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 keyslot %d is not in use",
                              slot);
    }
    off = l->ks[slot].area_offset;
    len = l->ks[slot].area_size;
    snprintf(id, sizeof(id), "%d", slot);
    keyslots = jget(l->json, "keyslots", json_type_object);
    digests = jget(l->json, "digests", json_type_object);
    tokens = jget(l->json, "tokens", json_type_object);
    if (!keyslots || !digests || !tokens) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 metadata is inconsistent");
    }
    /* 1. The metadata no longer names the keyslot: digests and tokens
     *    forget it, then both header copies are committed (seqid + 1,
     *    secondary first) and flushed.  A crash before the primary is
     *    written leaves the secondary's newer metadata or both old ones. */
    json_object_object_del(keyslots, id);
    json_object_object_foreach(digests, dkey, dval) {
        (void)dkey;
        array_drop_id(jget(dval, "keyslots", json_type_array), id);
    }
    json_object_object_foreach(tokens, tkey, tval) {
        (void)tkey;
        array_drop_id(jget(tval, "keyslots", json_type_array), id);
    }
    vk = l->vk;
    l->vk = NULL;
    r = parse_metadata(l, l->json, errp);
    if (r == 0 && vk && l->seg.key_size) {
        r = install_key(l, vk, errp);
        vk = NULL;
    }
    safe_free(vk);               /* the last keyslot went: locked now */
    if (r < 0) {
        return r;
    }
    l->seqid++;
    r = write_headers(l, errp);
    if (r == 0 && flush) {
        r = flush(flush_opaque, errp);
    }
    if (r < 0) {
        return r;
    }
    /* 2. Only then the key material is overwritten with random bytes. */
    if (len > LUKS2_MAX_KEYSLOTS_SIZE) {
        return vimg_error_set(errp, -EINVAL, "LUKS2 keyslot area too large");
    }
    junk = malloc(len);
    if (!junk) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = crypto_random(junk, len);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to wipe keyslot %d", slot);
    } else {
        r = l->io.write(l->io.opaque, off, junk, len, errp);
    }
    free(junk);
    if (r == 0 && flush) {
        r = flush(flush_opaque, errp);
    }
    return r;
}

/* ---- info ----------------------------------------------------------------------------- */

static struct json_object *
id_list(uint32_t mask)
{
    struct json_object *a = json_object_new_array();
    int i;

    for (i = 0; a && i < LUKS2_NUM_KEYSLOTS; i++) {
        if (mask & (1u << i)) {
            json_object_array_add(a, json_object_new_int(i));
        }
    }
    return a;
}

int
luks2_info(const struct luks2 *l, struct json_object *obj,
           struct vimg_error **errp)
{
    static const char *const prio[] = { "ignore", "normal", "high" };
    const struct segment *sg = &l->seg;
    struct json_object *arr, *o, *kdf;
    int r = 0, i;

    r |= jadd(obj, "format", json_object_new_string("luks2"));
    r |= jadd(obj, "version", json_object_new_int(2));
    r |= jadd(obj, "uuid", json_object_new_string(l->uuid));
    r |= jadd(obj, "label", json_object_new_string(l->label));
    r |= jadd(obj, "subsystem", json_object_new_string(l->subsystem));
    r |= jadd(obj, "seqid", json_object_new_int64((int64_t)l->seqid));
    r |= jadd(obj, "hdr-size", json_object_new_int64((int64_t)l->hdr_size));
    r |= jadd(obj, "primary-header-valid", json_object_new_boolean(l->primary_valid));
    r |= jadd(obj, "secondary-header-valid",
              json_object_new_boolean(l->secondary_valid));
    r |= jadd(obj, "payload-offset", json_object_new_int64((int64_t)sg->offset));
    r |= jadd(obj, "sector-size", json_object_new_int((int)sg->sector_size));
    r |= jadd(obj, "cipher", json_object_new_string(sg->cipher.text));
    if (sg->key_size) {
        r |= jadd(obj, "cipher-alg",
                  json_object_new_string(crypto_cipher_alg_name(sg->alg)));
    }
    r |= jadd(obj, "cipher-mode",
              json_object_new_string(crypto_cipher_mode_name(sg->cipher.mode)));
    if (sg->cipher.mode != CRYPTO_MODE_ECB) {
        r |= jadd(obj, "ivgen-alg",
                  json_object_new_string(crypto_ivgen_alg_name(sg->cipher.ivgen)));
        if (sg->cipher.ivgen == CRYPTO_IVGEN_ESSIV) {
            r |= jadd(obj, "ivgen-hash-alg",
                      json_object_new_string(
                          crypto_hash_alg_name(sg->cipher.ivgen_hash)));
        }
    }

    arr = json_object_new_array();
    for (i = 0; arr && i < LUKS2_NUM_KEYSLOTS; i++) {
        const struct keyslot *k = &l->ks[i];

        if (!k->present) {
            continue;
        }
        o = json_object_new_object();
        if (!o) {
            r = -ENOMEM;
            break;
        }
        r |= jadd(o, "id", json_object_new_int(i));
        r |= jadd(o, "type", json_object_new_string(k->type));
        r |= jadd(o, "key-size", json_object_new_int((int)k->key_size));
        r |= jadd(o, "priority", json_object_new_string(prio[k->priority]));
        r |= jadd(o, "area-offset", json_object_new_int64((int64_t)k->area_offset));
        r |= jadd(o, "area-size", json_object_new_int64((int64_t)k->area_size));
        if (k->usable) {
            r |= jadd(o, "encryption", json_object_new_string(k->area_cipher.text));
            r |= jadd(o, "af-stripes", json_object_new_int((int)k->stripes));
            r |= jadd(o, "af-hash",
                      json_object_new_string(crypto_hash_alg_name(k->af_hash)));
            kdf = json_object_new_object();
            if (kdf) {
                r |= jadd(kdf, "type", json_object_new_string(kdf_name(k->kdf)));
                if (k->kdf == LUKS2_KDF_PBKDF2) {
                    r |= jadd(kdf, "hash", json_object_new_string(
                                  crypto_hash_alg_name(k->kdf_hash)));
                    r |= jadd(kdf, "iterations",
                              json_object_new_int64(k->iterations));
                } else {
                    r |= jadd(kdf, "time", json_object_new_int64(k->iterations));
                    r |= jadd(kdf, "memory", json_object_new_int64(k->memory));
                    r |= jadd(kdf, "cpus", json_object_new_int64(k->cpus));
                }
            }
            r |= jadd(o, "kdf", kdf);
        }
        if (k->digest >= 0) {
            r |= jadd(o, "digest", json_object_new_int(k->digest));
        }
        if (json_object_array_add(arr, o) < 0) {
            json_object_put(o);
            r = -ENOMEM;
        }
    }
    r |= jadd(obj, "keyslots", arr);

    arr = json_object_new_array();
    o = json_object_new_object();
    if (arr && o) {
        r |= jadd(o, "id", json_object_new_int(sg->id));
        r |= jadd(o, "type", json_object_new_string("crypt"));
        r |= jadd(o, "offset", json_object_new_int64((int64_t)sg->offset));
        r |= jadd(o, "size", sg->dynamic ? json_object_new_string("dynamic")
                                          : json_object_new_int64((int64_t)sg->size));
        r |= jadd(o, "iv-tweak", json_object_new_int64((int64_t)sg->iv_tweak));
        r |= jadd(o, "encryption", json_object_new_string(sg->cipher.text));
        r |= jadd(o, "sector-size", json_object_new_int((int)sg->sector_size));
        if (json_object_array_add(arr, o) < 0) {
            json_object_put(o);
            r = -ENOMEM;
        }
    } else {
        json_object_put(o);
        r = -ENOMEM;
    }
    r |= jadd(obj, "segments", arr);

    arr = json_object_new_array();
    for (i = 0; arr && i < LUKS2_NUM_KEYSLOTS; i++) {
        const struct digest *d = &l->dg[i];

        if (!d->present) {
            continue;
        }
        o = json_object_new_object();
        if (!o) {
            r = -ENOMEM;
            break;
        }
        r |= jadd(o, "id", json_object_new_int(i));
        r |= jadd(o, "type", json_object_new_string("pbkdf2"));
        r |= jadd(o, "hash", json_object_new_string(crypto_hash_alg_name(d->hash)));
        r |= jadd(o, "iterations", json_object_new_int64(d->iterations));
        r |= jadd(o, "keyslots", id_list(d->keyslots));
        r |= jadd(o, "segments", id_list(d->segments));
        if (json_object_array_add(arr, o) < 0) {
            json_object_put(o);
            r = -ENOMEM;
        }
    }
    r |= jadd(obj, "digests", arr);
    if (r) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    return 0;
}
