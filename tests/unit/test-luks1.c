/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 format tests over in-memory I/O callbacks:
 * - payload geometry (qemu-facts 5.2) for 16/32/48/64-byte keys;
 * - create -> load -> unlock round trips for every cipher / mode / ivgen
 *   combination (hashes rotated), wrong passwords, the created header
 *   bytes, impossible combinations and calibration errors;
 * - fixture images made by qemu-img and cryptsetup (tests/images/NAME.img.xz,
 *   see regen.sh there): unlock with the known password, decrypt the
 *   payload written by qemu-io / nbdkit / openssl, re-encrypt it bit for
 *   bit, cross-check the master key cryptsetup reports, and compare
 *   luks1_info with `qemu-img info --output=json`;
 * - if cryptsetup is installed: it accepts a vimg-made aes-192-cbc volume
 *   and reports the same master key (the 24-byte key QEMU 7.2 aborts on).
 */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tap.h"
#include "internal.h"
#include "bytes.h"
#include "safemem.h"
#include "crypto/crypto.h"
#include "blockcrypt/luks1.h"
#include "blockcrypt/luks1-disk.h"

#define PW "vimg-fixture"
#define MEM_CAP (8u << 20)

/* ---- in-memory I/O ------------------------------------------------------ */

struct membuf {
    uint8_t *data;
    size_t size;
};

static int
mem_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    struct membuf *m = opaque;

    if (off > m->size || len > m->size - off) {
        return vimg_error_set(errp, -EIO, "read beyond the end");
    }
    memcpy(buf, m->data + off, len);
    return 0;
}

static int
mem_write(void *opaque, uint64_t off, const void *buf, size_t len,
          struct vimg_error **errp)
{
    struct membuf *m = opaque;

    if (off > MEM_CAP || len > MEM_CAP - off) {
        return vimg_error_set(errp, -EFBIG, "write beyond the cap");
    }
    if (off + len > m->size) {
        uint8_t *p = realloc(m->data, off + len);
        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "oom");
        }
        memset(p + m->size, 0, off + len - m->size);
        m->data = p;
        m->size = off + len;
    }
    memcpy(m->data + off, buf, len);
    return 0;
}

static struct luks1_io
mem_io(struct membuf *m)
{
    struct luks1_io io = { .opaque = m, .read = mem_read, .write = mem_write };
    return io;
}

static const char *
msg(struct vimg_error *e)
{
    return e ? vimg_error_message(e) : "(no error)";
}

/* ---- geometry ------------------------------------------------------------ */

static void
test_geometry(void)
{
    static const struct {
        enum crypto_cipher_alg cipher;
        enum crypto_cipher_mode mode;
        uint32_t key_bytes, area, payload;
        uint64_t bytes;
    } t[] = {
        { CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, 16, 128, 1032, 528384 },
        { CRYPTO_CIPHER_AES_256, CRYPTO_MODE_CBC, 32, 256, 2056, 1052672 },
        { CRYPTO_CIPHER_AES_128, CRYPTO_MODE_XTS, 32, 256, 2056, 1052672 },
        { CRYPTO_CIPHER_AES_192, CRYPTO_MODE_XTS, 48, 376, 3016, 1544192 },
        { CRYPTO_CIPHER_AES_256, CRYPTO_MODE_XTS, 64, 504, 4040, 2068480 },
        { CRYPTO_CIPHER_AES_192, CRYPTO_MODE_CBC, 24, 192, 1544, 790528 },
    };

    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct luks1_create_params p;
        struct membuf m = { 0 };
        struct luks1_io io = mem_io(&m);
        struct luks1_disk_header h;
        struct luks1 *l = NULL;
        struct vimg_error *err = NULL;
        uint64_t bytes = 0;
        bool offsets_ok = true;
        int r;

        luks1_create_params_default(&p);
        p.cipher = t[i].cipher;
        p.mode = t[i].mode;
        p.iterations = 1000;
        r = luks1_payload_bytes(&p, &bytes, NULL);
        ok(r == 0 && bytes == t[i].bytes,
           "geometry %u-byte key: payload %llu bytes (want %llu)",
           t[i].key_bytes, (unsigned long long)bytes,
           (unsigned long long)t[i].bytes);

        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == 0, "create %u-byte key (%s)", t[i].key_bytes, msg(err));
        if (r < 0) {
            vimg_error_free(err);
            free(m.data);
            continue;
        }
        luks1_header_from_disk((const void *)m.data, &h);
        for (size_t s = 0; s < LUKS1_NUM_SLOTS; s++) {
            if (h.slots[s].key_offset != 8 + s * t[i].area ||
                h.slots[s].stripes != 4000) {
                offsets_ok = false;
            }
        }
        ok(h.key_bytes == t[i].key_bytes && h.payload_offset == t[i].payload &&
           offsets_ok && luks1_payload_offset(l) == t[i].bytes,
           "header %u-byte key: slots 8+i*%u, payload %u sectors",
           t[i].key_bytes, t[i].area, t[i].payload);
        /* only slot 0 material + header were written */
        ok(m.size == (8 + DIV_ROUND_UP(t[i].key_bytes * 4000, 512)) * 512,
           "create wrote up to the end of slot 0 (%zu bytes)", m.size);
        luks1_free(l);
        free(m.data);
    }
}

/* ---- round trips -------------------------------------------------------- */

static int roundtrips, roundtrip_failures;

/* Create, check the header, reload, unlock, cross-decrypt, wrong password. */
static void
roundtrip(enum crypto_cipher_alg c, enum crypto_cipher_mode mo,
          enum crypto_ivgen_alg g, enum crypto_hash_alg ivh,
          enum crypto_hash_alg h)
{
    struct luks1_create_params p;
    struct membuf m = { 0 };
    struct luks1_io io = mem_io(&m);
    struct luks1 *a = NULL, *b = NULL;
    struct vimg_error *err = NULL;
    struct luks1_disk_header hdr;
    uint8_t plain[1536], buf[1536];
    char want_mode[64], label[160];
    bool good = true;
    int r;

    snprintf(label, sizeof(label), "%s %s-%s:%s %s", crypto_cipher_alg_name(c),
             crypto_cipher_mode_name(mo), crypto_ivgen_alg_name(g),
             crypto_hash_alg_name(ivh), crypto_hash_alg_name(h));
    luks1_create_params_default(&p);
    p.cipher = c;
    p.mode = mo;
    p.ivgen = g;
    p.ivgen_hash = ivh;
    p.hash = h;
    p.iterations = 1000;

    r = luks1_create(&io, &p, PW, strlen(PW), &a, &err);
    if (r < 0) {
        ok(0, "%s: create: %s", label, msg(err));
        goto out;
    }
    luks1_header_from_disk((const void *)m.data, &hdr);
    if (g == CRYPTO_IVGEN_ESSIV) {
        snprintf(want_mode, sizeof(want_mode), "%s-essiv:%s",
                 crypto_cipher_mode_name(mo), crypto_hash_alg_name(ivh));
    } else {
        snprintf(want_mode, sizeof(want_mode), "%s-%s",
                 crypto_cipher_mode_name(mo), crypto_ivgen_alg_name(g));
    }
    good &= strcmp(hdr.cipher_name, crypto_cipher_family(c)) == 0;
    good &= strcmp(hdr.cipher_mode, want_mode) == 0;
    good &= strcmp(hdr.hash_spec, crypto_hash_alg_name(h)) == 0;
    good &= hdr.slots[0].active == LUKS1_SLOT_ACTIVE &&
            hdr.slots[0].iterations == 1000 && hdr.mk_iterations == 1000;
    for (int s = 1; s < 8; s++) {
        static const uint8_t zero[32];
        good &= hdr.slots[s].active == LUKS1_SLOT_INACTIVE &&
                hdr.slots[s].iterations == 0 &&
                memcmp(hdr.slots[s].salt, zero, 32) == 0;
    }
    good &= strlen(hdr.uuid) == 36 && hdr.uuid[14] == '4' &&
            hdr.uuid[8] == '-' && hdr.uuid[13] == '-' && hdr.uuid[18] == '-' &&
            hdr.uuid[23] == '-' && strchr("89ab", hdr.uuid[19]) != NULL;
    if (!good) {
        ok(0, "%s: header fields (mode '%s' want '%s')", label, hdr.cipher_mode,
           want_mode);
        goto out;
    }

    r = luks1_load(&io, &b, &err);
    if (r == 0) {
        ok(!luks1_unlocked(b) && luks1_decrypt(b, 0, buf, 512) == -EACCES,
           "%s: locked handle refuses I/O", label);
        r = luks1_unlock(b, "wrong", 5, &err);
        good = r == -EPERM &&
               strcmp(msg(err), "Invalid password, cannot unlock any keyslot") == 0;
        vimg_error_free(err);
        err = NULL;
        r = luks1_unlock(b, PW, strlen(PW), &err);
    }
    if (r != 0 || !good) {
        ok(0, "%s: load/unlock r=%d wrong-pw-ok=%d: %s", label, r, good,
           msg(err));
        goto out;
    }
    for (size_t i = 0; i < sizeof(plain); i++) {
        plain[i] = (uint8_t)(i * 7 + 3);
    }
    memcpy(buf, plain, sizeof(buf));
    r = luks1_encrypt(a, 77, buf, sizeof(buf));
    /* sectors 1 and 2 hold equal plaintext; only ECB encrypts them alike */
    good = r == 0 && memcmp(buf, plain, 512) != 0 &&
           (memcmp(buf + 512, buf + 1024, 512) != 0) == (mo != CRYPTO_MODE_ECB);
    r = luks1_decrypt(b, 77, buf, sizeof(buf));
    good &= r == 0 && memcmp(buf, plain, sizeof(buf)) == 0;
    /* the wrong IV sector must not decrypt (ECB has no IV, skip) */
    if (mo != CRYPTO_MODE_ECB) {
        luks1_encrypt(a, 77, buf, sizeof(buf));
        luks1_decrypt(b, 78, buf, sizeof(buf));
        good &= memcmp(buf, plain, 512) != 0;
    }
    ok(good, "%s: create/load/unlock round trip", label);
    roundtrips++;
    if (!good) {
        roundtrip_failures++;
    }
out:
    vimg_error_free(err);
    luks1_free(a);
    luks1_free(b);
    free(m.data);
}

static void
test_roundtrips(void)
{
    int n = 0;

    for (int c = 0; c < CRYPTO_CIPHER__MAX; c++) {
        for (int mo = 0; mo < CRYPTO_MODE__MAX; mo++) {
            if (!crypto_cipher_mode_ok(c, mo)) {
                continue;
            }
            for (int g = 0; g < CRYPTO_IVGEN__MAX; g++) {
                enum crypto_hash_alg ivh = CRYPTO_HASH_SHA256;

                if (g == CRYPTO_IVGEN_ESSIV && c == CRYPTO_CIPHER_CAST5_128) {
                    ivh = CRYPTO_HASH_MD5;       /* 16-byte digest = cast5 key */
                } else if (g == CRYPTO_IVGEN_ESSIV && n % 2) {
                    ivh = CRYPTO_HASH_MD5;       /* -> the 128-bit cipher */
                }
                roundtrip(c, mo, g, ivh, (enum crypto_hash_alg)(n++ % CRYPTO_HASH__MAX));
            }
        }
    }
    ok(roundtrips > 90 && roundtrip_failures == 0,
       "%d round trips, %d failures", roundtrips, roundtrip_failures);
}

/* ivgen-hash-alg given with plain64 is written ("xts-plain64:sha1"). */
static void
test_plain_with_hash(void)
{
    struct luks1_create_params p;
    struct membuf m = { 0 };
    struct luks1_io io = mem_io(&m);
    struct luks1 *a = NULL, *b = NULL;
    struct json_object *info = json_object_new_object();
    int r;

    luks1_create_params_default(&p);
    p.ivgen_hash = CRYPTO_HASH_SHA1;
    p.ivgen_hash_set = true;
    p.iterations = 1000;
    r = luks1_create(&io, &p, PW, strlen(PW), &a, NULL);
    ok(r == 0 && strcmp((char *)m.data + 40, "xts-plain64:sha1") == 0,
       "explicit ivgen hash with plain64 writes 'xts-plain64:sha1'");
    r = luks1_load(&io, &b, NULL);
    ok(r == 0 && luks1_unlock(b, PW, strlen(PW), NULL) == 0,
       "'xts-plain64:sha1' loads and unlocks");
    ok(b && luks1_info(b, info, NULL) == 0 &&
       !json_object_object_get_ex(info, "ivgen-hash-alg", NULL),
       "info has no ivgen-hash-alg without essiv");
    json_object_put(info);
    luks1_free(a);
    luks1_free(b);
    free(m.data);
}

/* Passwords may be empty, and only the exact bytes unlock. */
static void
test_passwords(void)
{
    struct luks1_create_params p;
    struct membuf m = { 0 };
    struct luks1_io io = mem_io(&m);
    struct luks1 *a = NULL, *b = NULL;
    struct vimg_error *err = NULL;
    int r;

    luks1_create_params_default(&p);
    p.cipher = CRYPTO_CIPHER_AES_128;
    p.iterations = 1000;
    p.mk_iterations = 1234;
    r = luks1_create(&io, &p, "", 0, &a, NULL);
    ok(r == 0 && ld_be32(m.data + 164) == 1234,
       "create with an empty password, explicit mk iterations 1234");
    r = luks1_load(&io, &b, NULL);
    ok(r == 0 && luks1_unlock(b, "", 0, NULL) == 0, "empty password unlocks");
    r = b ? luks1_unlock(b, "x", 1, &err) : -1;
    ok(r == -EPERM && strcmp(msg(err), "Invalid password, cannot unlock any keyslot") == 0,
       "one-byte password fails with -EPERM");
    vimg_error_free(err);
    luks1_free(a);
    luks1_free(b);
    free(m.data);
}

/* A password is tried on every active slot, first match wins. */
static void
test_second_slot(void)
{
    struct luks1_create_params p;
    struct membuf m1 = { 0 }, m2 = { 0 };
    struct luks1_io io1 = mem_io(&m1), io2 = mem_io(&m2);
    struct luks1 *a = NULL, *b = NULL, *c = NULL;
    uint8_t x[512] = { 1 }, y[512] = { 1 };
    int r;

    /*
     * Two volumes with the same cipher but different master keys: moving
     * volume 2's slot 0 into volume 1's slot 3 must not unlock (digest
     * mismatch), moving a copy of volume 1's slot 0 there (active) must.
     */
    luks1_create_params_default(&p);
    p.cipher = CRYPTO_CIPHER_AES_128;
    p.mode = CRYPTO_MODE_CBC;
    p.iterations = 1000;
    r = luks1_create(&io1, &p, "one", 3, &a, NULL);
    r |= luks1_create(&io2, &p, "two", 3, &b, NULL);
    ok(r == 0, "two volumes created");
    if (r) {
        goto out;
    }
    {
        const size_t slot3 = 208 + 3 * 48, off3 = (8 + 3 * 128) * 512;
        const size_t len = 125 * 512;

        /* slot 3 := volume 2's slot 0 (other master key) */
        memcpy(m1.data + slot3, m2.data + 208, 40);
        if (m1.size < off3 + len) {
            mem_write(&m1, off3 + len - 1, "", 1, NULL);
        }
        memcpy(m1.data + off3, m2.data + 8 * 512, len);
        r = luks1_load(&io1, &c, NULL);
        ok(r == 0 && luks1_unlock(c, "two", 3, NULL) == -EPERM,
             "a slot holding another volume's key does not verify");
        luks1_free(c);
        c = NULL;
        /* slot 3 := a copy of slot 0, password "one"; slot 0 disabled */
        memcpy(m1.data + slot3, m1.data + 208, 40);
        memcpy(m1.data + off3, m1.data + 8 * 512, len);
        st_be32(m1.data + 208, LUKS1_SLOT_INACTIVE);
        r = luks1_load(&io1, &c, NULL);
        ok(r == 0 && luks1_unlock(c, "one", 3, NULL) == 3, "unlocked by slot 3");
        luks1_encrypt(a, 9, x, sizeof(x));
        ok(luks1_decrypt(c, 9, x, sizeof(x)) == 0 && memcmp(x, y, 512) == 0,
           "slot 3 yields the same master key");
    }
out:
    luks1_free(a);
    luks1_free(b);
    luks1_free(c);
    free(m1.data);
    free(m2.data);
}

/* Impossible combinations and bad calibration inputs, with qemu's words. */
static void
test_create_errors(void)
{
    static const struct {
        enum crypto_cipher_alg c;
        enum crypto_cipher_mode mo;
        enum crypto_ivgen_alg g;
        enum crypto_hash_alg ivh;
        const char *want;
    } t[] = {
        { CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64,
          CRYPTO_HASH_SHA256, "Unsupported cipher mode xts" },
        { CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA1, "No AES cipher with key size 20 available" },
        { CRYPTO_CIPHER_SERPENT_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA1, "No Serpent cipher with key size 20 available" },
        { CRYPTO_CIPHER_TWOFISH_256, CRYPTO_MODE_XTS, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA512, "No Twofish cipher with key size 64 available" },
        { CRYPTO_CIPHER_AES_256, CRYPTO_MODE_XTS, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA384, "No AES cipher with key size 48 available" },
        { CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA256, "Cipher cast5-128 not supported with essiv" },
        /* qemu checks ESSIV before the mode */
        { CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_XTS, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA1, "Cipher cast5-128 not supported with essiv" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct luks1_create_params p;
        struct membuf m = { 0 };
        struct luks1_io io = mem_io(&m);
        struct luks1 *l = NULL;
        struct vimg_error *err = NULL;
        uint64_t bytes;
        int r;

        luks1_create_params_default(&p);
        p.cipher = t[i].c;
        p.mode = t[i].mo;
        p.ivgen = t[i].g;
        p.ivgen_hash = t[i].ivh;
        p.iterations = 1000;
        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == -EINVAL && l == NULL && m.size == 0,
           "create refused: %s", t[i].want);
        ok_str(msg(err), t[i].want, "create error message");
        vimg_error_free(err);
        ok(luks1_payload_bytes(&p, &bytes, NULL) == -EINVAL,
           "payload_bytes refuses it too");
        free(m.data);
    }

    /* calibration: negative and huge iteration times */
    {
        struct luks1_create_params p;
        struct membuf m = { 0 };
        struct luks1_io io = mem_io(&m);
        struct luks1 *l = NULL;
        struct vimg_error *err = NULL;
        int r;

        luks1_create_params_default(&p);
        p.iter_time_ms = -1000;
        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == -ERANGE && strncmp(msg(err), "PBKDF iterations ", 17) == 0 &&
           strstr(msg(err), " too large to scale: Numerical result out of range"),
           "negative iter-time: '%s'", msg(err));
        vimg_error_free(err);
        err = NULL;
        p.iter_time_ms = 4000000000LL;
        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == -ERANGE &&
           strstr(msg(err), " larger than 4294967295: Numerical result out of range"),
           "huge iter-time: '%s'", msg(err));
        vimg_error_free(err);
        err = NULL;
        ok(m.size == 0, "nothing written on calibration errors");

        /* iter-time 0 gives 1000/1000 without a benchmark */
        p.iter_time_ms = 0;
        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == 0 && ld_be32(m.data + 164) == 1000 &&
           ld_be32(m.data + 208 + 4) == 1000, "iter-time 0 -> 1000 iterations");
        luks1_free(l);
        l = NULL;
        free(m.data);
        m.data = NULL;
        m.size = 0;

        /* a short real calibration: both counts >= 1000, slot > mk */
        p.iter_time_ms = 50;
        r = luks1_create(&io, &p, PW, strlen(PW), &l, &err);
        ok(r == 0 && ld_be32(m.data + 164) >= 1000 &&
           ld_be32(m.data + 212) > ld_be32(m.data + 164),
           "iter-time 50: mk %u, slot %u iterations", r ? 0 : ld_be32(m.data + 164),
           r ? 0 : ld_be32(m.data + 212));
        luks1_free(l);
        vimg_error_free(err);
        free(m.data);
    }
}

/* ---- fixtures made by qemu-img and cryptsetup --------------------------- */

static char images_dir[PATH_MAX];

/* tests/images next to this source file, found from the build tree. */
static bool
find_images(void)
{
    const char *env = getenv("VIMG_TEST_IMAGES");
    char exe[PATH_MAX], src[PATH_MAX * 2], *d;
    ssize_t n;

    if (env) {
        snprintf(images_dir, sizeof(images_dir), "%s", env);
        return access(images_dir, R_OK) == 0;
    }
    if (__FILE__[0] == '/') {
        snprintf(src, sizeof(src), "%s", __FILE__);
    } else {
        /* meson compiles with paths relative to the build root, which is
         * two levels above this binary (BUILD/tests/test-luks1). */
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0) {
            return false;
        }
        exe[n] = '\0';
        d = dirname(dirname(exe));
        snprintf(src, sizeof(src), "%s/%s", d, __FILE__);
    }
    d = dirname(dirname(src));        /* .../tests */
    snprintf(images_dir, sizeof(images_dir), "%s/images", d);
    return access(images_dir, R_OK) == 0;
}

static bool
slurp_cmd(const char *cmd, struct membuf *m)
{
    FILE *f = popen(cmd, "r");
    uint8_t chunk[65536];
    size_t n;

    if (!f) {
        return false;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (mem_write(m, m->size, chunk, n, NULL) < 0) {
            pclose(f);
            return false;
        }
    }
    return pclose(f) == 0;
}

static char *
slurp_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t cap = 0;
    ssize_t n;

    if (!f) {
        return NULL;
    }
    n = getdelim(&s, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void
pattern(uint8_t *p)
{
    memset(p, 0xab, 4096);
    memset(p + 4096, 0, 4096);
    memset(p + 8192, 0x5c, 4096);
}

static void
test_fixture(const char *name, const char *cipher_alg, int key_bytes)
{
    char path[PATH_MAX + 64], cmd[PATH_MAX + 128];
    struct membuf m = { 0 };
    struct luks1_io io = mem_io(&m);
    struct luks1 *l = NULL;
    struct vimg_error *err = NULL;
    struct json_object *info = NULL, *want = NULL, *v;
    uint8_t want_plain[12288], buf[12288];
    uint64_t off;
    char *text;
    int r;

    snprintf(cmd, sizeof(cmd), "xz -dc '%s/%s.img.xz'", images_dir, name);
    if (!slurp_cmd(cmd, &m)) {
        ok(0, "%s: decompress fixture", name);
        free(m.data);
        return;
    }
    r = luks1_load(&io, &l, &err);
    ok(r == 0, "%s: load (%s)", name, msg(err));
    if (r < 0) {
        goto out;
    }
    ok(ld_be32(m.data + 108) == (uint32_t)key_bytes, "%s: %d-byte master key",
       name, key_bytes);

    /* info must equal qemu-img's format-specific data */
    info = json_object_new_object();
    r = luks1_info(l, info, &err);
    snprintf(path, sizeof(path), "%s/%s.info.json", images_dir, name);
    text = slurp_text(path);
    want = text ? json_tokener_parse(text) : NULL;
    free(text);
    ok(r == 0 && want && json_object_equal(info, want),
       "%s: luks1_info equals qemu-img info --output=json", name);
    if (want && !json_object_equal(info, want)) {
        printf("# ours: %s\n", json_object_to_json_string(info));
    }
    ok(json_object_object_get_ex(info, "cipher-alg", &v) &&
       strcmp(json_object_get_string(v), cipher_alg) == 0,
       "%s: cipher-alg %s", name, cipher_alg);

    r = luks1_unlock(l, "vimg-fixturE", strlen(PW), &err);
    ok(r == -EPERM, "%s: wrong password -> -EPERM", name);
    vimg_error_free(err);
    err = NULL;
    r = luks1_unlock(l, PW, strlen(PW), &err);
    ok(r == 0, "%s: unlocked slot 0 (%s)", name, msg(err));
    if (r < 0) {
        goto out;
    }

    off = luks1_payload_offset(l);
    if (off + sizeof(buf) > m.size) {
        ok(0, "%s: payload present", name);
        goto out;
    }
    pattern(want_plain);
    memcpy(buf, m.data + off, sizeof(buf));
    ok(luks1_decrypt(l, 0, buf, sizeof(buf)) == 0 &&
       memcmp(buf, want_plain, sizeof(buf)) == 0,
       "%s: payload sectors 0..23 decrypt to what the real tool wrote", name);
    ok(luks1_encrypt(l, 0, buf, sizeof(buf)) == 0 &&
       memcmp(buf, m.data + off, sizeof(buf)) == 0,
       "%s: re-encryption is bit-for-bit identical", name);
    /* sector 17 alone, with its own IV sector number */
    memcpy(buf, m.data + off + 17 * 512, 512);
    ok(luks1_decrypt(l, 17, buf, 512) == 0 && memcmp(buf, want_plain + 17 * 512, 512) == 0,
       "%s: single sector 17", name);

    /* the master key cryptsetup reports gives the same plaintext */
    snprintf(path, sizeof(path), "%s/%s.mk", images_dir, name);
    text = slurp_text(path);
    if (text) {
        uint8_t mk[64];
        size_t mklen = hex2bin(text, mk, sizeof(mk));
        struct crypto_sector *sc = NULL;
        const char *mode = (const char *)m.data + 40;
        enum crypto_ivgen_alg g = strstr(mode, "essiv") ? CRYPTO_IVGEN_ESSIV :
                                  strstr(mode, "plain64") ? CRYPTO_IVGEN_PLAIN64 :
                                  CRYPTO_IVGEN_PLAIN;
        char modename[8] = { 0 };

        memcpy(modename, mode, 3);
        free(text);
        r = crypto_sector_new(crypto_cipher_alg_parse(cipher_alg),
                              crypto_cipher_mode_parse(modename), g,
                              CRYPTO_HASH_SHA256, mk, mklen, &sc);
        memcpy(buf, m.data + off, sizeof(buf));
        ok(r == 0 && mklen == (size_t)key_bytes &&
           crypto_sector_decrypt(sc, 0, buf, sizeof(buf)) == 0 &&
           memcmp(buf, want_plain, sizeof(buf)) == 0,
           "%s: cryptsetup's master key matches", name);
        crypto_sector_free(sc);
        safe_wipe(mk, sizeof(mk));
    }
out:
    json_object_put(info);
    json_object_put(want);
    vimg_error_free(err);
    luks1_free(l);
    free(m.data);
}

static void
test_fixtures(void)
{
    static const struct {
        const char *name, *cipher_alg;
        int key_bytes;
    } t[] = {
        { "qemu-aes256-xts-plain64-sha256", "aes-256", 64 },
        { "qemu-aes128-cbc-essiv-sha256", "aes-128", 16 },
        { "qemu-twofish128-ctr-plain64-sha1", "twofish-128", 16 },
        { "qemu-serpent128-xts-plain64-sha512", "serpent-128", 32 },
        { "qemu-cast5-cbc-plain-ripemd160", "cast5-128", 16 },
        { "cs-aes-xts-plain64-sha256", "aes-128", 32 },
        { "cs-aes192-cbc-essiv-sha256", "aes-192", 24 },
        { "cs-aes128-cbc-plain-sha512", "aes-128", 16 },
    };

    if (!find_images()) {
        ok(0, "fixture folder tests/images found");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        test_fixture(t[i].name, t[i].cipher_alg, t[i].key_bytes);
    }
}

/* ---- cryptsetup reads what vimg writes (24-byte key) --------------------- */

static void
test_cryptsetup_reads_vimg(void)
{
    struct luks1_create_params p;
    struct membuf m = { 0 };
    struct luks1_io io = mem_io(&m);
    struct luks1 *l = NULL;
    char dir[] = "/tmp/vimg-luks1-XXXXXX", img[64], key[64], cmd[512];
    uint8_t buf[512] = { 0 }, mk[64], sector[512] = { 0 };
    struct crypto_sector *sc = NULL;
    struct membuf out = { 0 };
    FILE *f;
    int r;

    if (system("cryptsetup --version >/dev/null 2>&1") != 0 || !mkdtemp(dir)) {
        printf("# cryptsetup not available, interop check skipped\n");
        return;
    }
    luks1_create_params_default(&p);
    p.cipher = CRYPTO_CIPHER_AES_192;
    p.mode = CRYPTO_MODE_CBC;
    p.ivgen = CRYPTO_IVGEN_ESSIV;
    p.iterations = 1000;
    r = luks1_create(&io, &p, PW, strlen(PW), &l, NULL);
    ok(r == 0, "create aes-192-cbc-essiv:sha256");
    if (r < 0) {
        goto out;
    }
    mem_write(&m, luks1_payload_offset(l) + 512 * 8 - 1, "", 1, NULL);
    snprintf(img, sizeof(img), "%s/v.img", dir);
    snprintf(key, sizeof(key), "%s/key", dir);
    f = fopen(img, "wb");
    fwrite(m.data, 1, m.size, f);
    fclose(f);
    f = fopen(key, "wb");
    fputs(PW, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "cryptsetup luksDump --dump-master-key --batch-mode --key-file %s %s 2>&1 |"
             " awk '/^MK dump:/ {on=1; sub(/^MK dump:/, \"\"); print; next}"
             " on && /^[ \\t]/ {print; next} {on=0}'", key, img);
    ok(slurp_cmd(cmd, &out) && out.size > 0, "cryptsetup unlocks the vimg volume");
    mem_write(&out, out.size, "", 1, NULL);
    r = (int)hex2bin(out.data ? (char *)out.data : "", mk, sizeof(mk));
    ok(r == 24, "cryptsetup reports a 24-byte master key");
    luks1_encrypt(l, 3, buf, sizeof(buf));
    if (r == 24 && crypto_sector_new(CRYPTO_CIPHER_AES_192, CRYPTO_MODE_CBC,
                                     CRYPTO_IVGEN_ESSIV, CRYPTO_HASH_SHA256,
                                     mk, 24, &sc) == 0) {
        crypto_sector_decrypt(sc, 3, buf, sizeof(buf));
    }
    ok(sc && memcmp(buf, sector, 512) == 0,
       "cryptsetup's master key equals vimg's");
out:
    crypto_sector_free(sc);
    luks1_free(l);
    free(m.data);
    free(out.data);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
}

int
main(void)
{
    test_geometry();
    test_roundtrips();
    test_plain_with_hash();
    test_passwords();
    test_second_slot();
    test_create_errors();
    test_fixtures();
    test_cryptsetup_reads_vimg();
    return tap_done();
}
