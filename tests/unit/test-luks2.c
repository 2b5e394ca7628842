/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS2 tests on memory buffers:
 * - cryptsetup 2.6.1 fixtures (tests/images/luks2, made by regen.sh with
 *   `cryptsetup reencrypt --encrypt`): unlock with each keyslot (pbkdf2 with
 *   sha256/sha512/sha1, argon2id, argon2i), the volume key equals
 *   cryptsetup's --dump-master-key, the payload decrypts to the known
 *   plaintext (512- and 4096-byte sectors, xts-plain64 and cbc-essiv),
 *   re-encryption gives cryptsetup's ciphertext back;
 * - wrong password -EPERM, locked handle -EACCES, misaligned I/O -EINVAL;
 * - a damaged primary header falls back to the secondary (also found by
 *   scanning when the primary's size field is garbage), the higher seqid
 *   wins, both damaged fails;
 * - hostile JSON (rewritten with a valid checksum) fails with the expected
 *   message and never crashes;
 * - create (pbkdf2 and argon2id, 512/4096 sectors) + load + unlock round
 *   trips, add_key, and info.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"
#include "bytes.h"
#include "blockcrypt/luks2.h"
#include "tap.h"

struct membuf {
    uint8_t *data;
    size_t len;
};

static int
mem_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    struct membuf *m = opaque;

    memset(buf, 0, len);
    if (off < m->len) {
        memcpy(buf, m->data + off, MIN(len, m->len - off));
    }
    (void)errp;
    return 0;
}

static int
mem_write(void *opaque, uint64_t off, const void *buf, size_t len,
          struct vimg_error **errp)
{
    struct membuf *m = opaque;

    if (off + len > m->len) {
        uint8_t *p = realloc(m->data, off + len);
        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "oom");
        }
        memset(p + m->len, 0, off + len - m->len);
        m->data = p;
        m->len = off + len;
    }
    memcpy(m->data + off, buf, len);
    return 0;
}

static struct luks2_io
mem_io(struct membuf *m)
{
    struct luks2_io io = { .opaque = m, .read = mem_read, .write = mem_write };
    return io;
}

static const char *images_dir;

static int
slurp_cmd(const char *cmd, struct membuf *m)
{
    FILE *f = popen(cmd, "r");
    size_t cap = 0, n;

    m->data = NULL;
    m->len = 0;
    if (!f) {
        return -1;
    }
    for (;;) {
        if (m->len + 65536 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            m->data = realloc(m->data, cap);
        }
        n = fread(m->data + m->len, 1, cap - m->len, f);
        if (n == 0) {
            break;
        }
        m->len += n;
    }
    return pclose(f) == 0 && m->len ? 0 : -1;
}

static int
load_fixture(const char *name, struct membuf *m, uint8_t *key, size_t *keylen)
{
    char cmd[1024], path[1024], hex[300];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "xz -dc '%s/luks2/%s.img.xz'", images_dir, name);
    if (slurp_cmd(cmd, m) < 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/luks2/%s.key", images_dir, name);
    f = fopen(path, "r");
    if (!f || !fgets(hex, sizeof(hex), f)) {
        if (f) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    *keylen = hex2bin(hex, key, 64);
    return 0;
}

/* The plaintext pattern of regen.sh. */
static uint8_t
pattern(uint64_t x)
{
    return (uint8_t)((x + 3 * (x >> 9)) & 0xff);
}

static const char *
msg(struct vimg_error *e)
{
    return e ? vimg_error_message(e) : "(none)";
}

static void
test_fixture(const char *name, int nslots, uint32_t sector_size)
{
    struct membuf m = { 0 };
    struct luks2_io io = mem_io(&m);
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL;
    uint8_t key[64], *buf, *orig;
    const uint8_t *vk;
    size_t keylen = 0, vklen = 0, len = 64 * 1024, i;
    uint64_t off;
    bool same = true;
    int r, s;

    if (load_fixture(name, &m, key, &keylen) < 0) {
        ok(0, "%s: fixture readable", name);
        return;
    }
    r = luks2_load(&io, &l, &err);
    ok(r == 0, "%s: load (%s)", name, msg(err));
    if (r < 0) {
        goto out;
    }
    ok(luks2_sector_size(l) == sector_size, "%s: sector size %u", name,
       luks2_sector_size(l));
    ok(luks2_payload_offset(l) == 1048576, "%s: payload offset 1 MiB", name);
    ok(luks2_payload_size(l, m.len) == len, "%s: payload size 64 KiB", name);
    ok(!luks2_unlocked(l), "%s: locked after load", name);
    buf = malloc(len);
    ok(luks2_decrypt(l, 0, buf, sector_size) == -EACCES,
       "%s: decrypt while locked -> -EACCES", name);

    r = luks2_unlock(l, "wrong", 5, &err);
    ok(r == -EPERM, "%s: wrong password -> -EPERM", name);
    ok_str(msg(err), "Invalid password, cannot unlock any keyslot",
           "wrong password message");
    vimg_error_free(err);
    err = NULL;

    for (s = 0; s < nslots; s++) {
        const char *pw = s == 0 ? "vimg-pw1" : "vimg-pw2";

        r = luks2_unlock(l, pw, 8, &err);
        ok(r == s, "%s: password %d unlocks keyslot %d (got %d, %s)", name,
           s + 1, s, r, msg(err));
        vk = luks2_volume_key(l, &vklen);
        ok(vk && vklen == keylen && memcmp(vk, key, keylen) == 0,
           "%s: volume key equals cryptsetup's --dump-master-key", name);
    }

    /* Payload: cryptsetup's ciphertext decrypts to the pattern. */
    off = luks2_payload_offset(l);
    orig = malloc(len);
    memcpy(orig, m.data + off, len);
    memcpy(buf, orig, len);
    ok(luks2_decrypt(l, 0, buf, len) == 0, "%s: decrypt payload", name);
    for (i = 0; i < len; i++) {
        if (buf[i] != pattern(i)) {
            same = false;
            printf("# first difference at %zu\n", i);
            break;
        }
    }
    ok(same, "%s: payload equals the plaintext cryptsetup encrypted", name);
    ok(luks2_encrypt(l, 0, buf, len) == 0 && memcmp(buf, orig, len) == 0,
       "%s: re-encryption gives cryptsetup's ciphertext", name);
    /* A single sector in the middle, by its own IV. */
    memcpy(buf, orig + 8 * sector_size, sector_size);
    luks2_decrypt(l, 8 * sector_size / 512, buf, sector_size);
    ok(buf[0] == pattern(8 * sector_size) &&
       buf[sector_size - 1] == pattern(9 * sector_size - 1),
       "%s: sector 8 alone decrypts", name);
    if (sector_size > 512) {
        ok(luks2_decrypt(l, 1, buf, sector_size) == -EINVAL,
           "%s: misaligned sector -> -EINVAL", name);
        ok(luks2_decrypt(l, 0, buf, 512) == -EINVAL,
           "%s: partial sector -> -EINVAL", name);
    }
    free(orig);
    free(buf);
out:
    vimg_error_free(err);
    luks2_free(l);
    free(m.data);
}

/* Rewrite the checksum of the header copy at @off after a change. */
static void
fix_csum(struct membuf *m, uint64_t off)
{
    uint64_t hs = ld_be64(m->data + off + 8);

    memset(m->data + off + 448, 0, 64);
    crypto_hash(CRYPTO_HASH_SHA256, m->data + off, hs, m->data + off + 448);
}

/* Replace the JSON of both copies with @json (checksums fixed). */
static void
set_json(struct membuf *m, const char *json)
{
    uint64_t hs = ld_be64(m->data + 8);
    uint64_t offs[2] = { 0, hs };
    int c;

    for (c = 0; c < 2; c++) {
        memset(m->data + offs[c] + 4096, 0, hs - 4096);
        memcpy(m->data + offs[c] + 4096, json, MIN(strlen(json), hs - 4096));
        fix_csum(m, offs[c]);
    }
}

static int
try_load(struct membuf *m, char *out, size_t outlen)
{
    struct luks2_io io = mem_io(m);
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL;
    int r;

    r = luks2_load(&io, &l, &err);
    snprintf(out, outlen, "%s", msg(err));
    vimg_error_free(err);
    luks2_free(l);
    return r;
}

/* Replace the first occurrence of @from in @json by @to (static buffer). */
static const char *
subst(const char *json, const char *from, const char *to)
{
    static char buf[16384];
    const char *p = strstr(json, from);

    if (!p) {
        return NULL;
    }
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - json), json, to,
             p + strlen(from));
    return buf;
}

static void
test_headers(void)
{
    struct membuf m = { 0 }, base = { 0 };
    struct luks2_io io;
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL;
    char got[512], json[12288];
    uint8_t key[64];
    size_t keylen;
    int r;

    if (load_fixture("cs-pbkdf2-xts256-s4096", &base, key, &keylen) < 0) {
        ok(0, "fixture readable");
        return;
    }
    memcpy(json, base.data + 4096, sizeof(json));
    json[sizeof(json) - 1] = '\0';
#define RESET() do { m.len = base.len; memcpy(m.data, base.data, base.len); } while (0)
    m.data = malloc(base.len);
    RESET();

    /* Primary damaged: the secondary is used. */
    m.data[4096 + 10] ^= 1;
    r = try_load(&m, got, sizeof(got));
    ok(r == 0, "corrupted primary JSON: falls back to the secondary (%s)", got);
    io = mem_io(&m);
    r = luks2_load(&io, &l, &err);
    if (r == 0) {
        struct json_object *o = json_object_new_object();

        luks2_info(l, o, NULL);
        ok(!json_object_get_boolean(json_object_object_get(o, "primary-header-valid")) &&
           json_object_get_boolean(json_object_object_get(o, "secondary-header-valid")),
           "info reports the primary damaged, the secondary valid");
        json_object_put(o);
        ok(luks2_unlock(l, "vimg-pw1", 8, &err) == 0, "unlock via the secondary");
    }
    luks2_free(l);
    l = NULL;
    RESET();
    memset(m.data, 0, 4096);            /* primary binary header wiped */
    r = try_load(&m, got, sizeof(got));
    ok(r == 0, "wiped primary: secondary found by scanning (%s)", got);
    RESET();
    memset(m.data, 0, 4096);
    memset(m.data + 16384, 0, 4096);
    r = try_load(&m, got, sizeof(got));
    ok(r == -EINVAL, "both copies wiped: -EINVAL");
    ok_str(got, "Volume is not in LUKS format", "both wiped: message");
    RESET();
    m.data[16384 + 4096 + 10] ^= 1;     /* only the secondary damaged */
    ok(try_load(&m, got, sizeof(got)) == 0, "corrupted secondary: primary used");
    RESET();
    m.data[4096 + 10] ^= 1;
    m.data[16384 + 4096 + 10] ^= 1;
    r = try_load(&m, got, sizeof(got));
    ok(r == -EINVAL, "both checksums bad: -EINVAL");
    ok_str(got, "LUKS2 primary header checksum mismatch", "both bad: message");

    /* Higher seqid wins: make the secondary newer with a different label. */
    RESET();
    st_be64(m.data + 16384 + 16, ld_be64(m.data + 16) + 1);
    memcpy(m.data + 16384 + 24, "newer", 6);
    fix_csum(&m, 16384);
    io = mem_io(&m);
    r = luks2_load(&io, &l, &err);
    if (r == 0) {
        struct json_object *o = json_object_new_object();

        luks2_info(l, o, NULL);
        ok_str(json_object_get_string(json_object_object_get(o, "label")), "newer",
               "the copy with the higher seqid wins");
        json_object_put(o);
    } else {
        ok(0, "seqid test loads (%s)", msg(err));
    }
    luks2_free(l);
    l = NULL;

    /* LUKS1 and unknown versions. */
    RESET();
    st_be16(m.data + 6, 1);
    memset(m.data + 16384, 0, 4096);
    r = try_load(&m, got, sizeof(got));
    ok(r == -EINVAL, "version 1 header refused by luks2_load");
    ok_str(got, "LUKS version 1 is not supported", "version 1 message");
    RESET();
    st_be64(m.data + 8, 12345);
    fix_csum(&m, 0);
    memset(m.data + 16384, 0, 4096);
    r = try_load(&m, got, sizeof(got));
    ok(r == -EINVAL, "bad hdr_size refused (%s)", got);

    /* Hostile JSON, rewritten in both copies with valid checksums. */
    {
        static const struct {
            const char *from, *to, *want;
            int code;
        } cases[] = {
            { "\"sector_size\":4096", "\"sector_size\":768",
              "LUKS2 segment 0: sector_size 768 is not supported", -EINVAL },
            { "\"sector_size\":4096", "\"sector_size\":\"4096\"",
              "LUKS2 segment 0: invalid sector_size", -EINVAL },
            { "\"offset\":\"1048576\"", "\"offset\":\"4096\"",
              "LUKS2 segment 0: offset 4096 overlaps the header and keyslots "
              "area (1048576 bytes)", -EINVAL },
            { "\"offset\":\"1048576\"", "\"offset\":\"99999999999999999999999\"",
              "LUKS2 segment 0: invalid offset", -EINVAL },
            { "\"offset\":\"32768\"", "\"offset\":\"18446744073709547520\"",
              "LUKS2 keyslot 0: area [18446744073709547520, +131072) is "
              "outside the keyslots area", -EINVAL },
            { "\"size\":\"131072\"", "\"size\":\"4096\"",
              "LUKS2 keyslot 0: area size 4096 is smaller than the key "
              "material (128000)", -EINVAL },
            { "\"stripes\":4000", "\"stripes\":4000000",
              "LUKS2 keyslot 0: invalid af stripes", -EINVAL },
            { "\"key_size\":32", "\"key_size\":1000000",
              "LUKS2 keyslot 0: invalid key_size", -EINVAL },
            { "\"iterations\":1000", "\"iterations\":0",
              "LUKS2 keyslot 0: invalid kdf iterations", -EINVAL },
            { "\"type\":\"pbkdf2\"", "\"type\":\"scrypt\"",
              "LUKS2 keyslot 0: kdf 'scrypt' is not supported", -ENOTSUP },
            { "aes-xts-plain64", "aes-xts-lmk",
              "LUKS2 keyslot 0: IV generator 'lmk' is not supported", -ENOTSUP },
            { "\"json_size\":\"12288\"", "\"json_size\":\"12289\"",
              "LUKS2 config: json_size does not match the header size",
              -EINVAL },
            { "\"keyslots_size\":\"1015808\"",
              "\"keyslots_size\":\"1015808\",\"requirements\":{\"mandatory\":"
              "[\"online-reencrypt-v2\"]}",
              "LUKS2 requirement 'online-reencrypt-v2' is not supported",
              -ENOTSUP },
            { "\"keyslots\":[\"0\"]", "\"keyslots\":[\"7\"]",
              "LUKS2 digest 0: invalid keyslots list", -EINVAL },
            { "\"segments\":[\"0\"]", "\"segments\":[0]",
              "LUKS2 digest 0: invalid segments list", -EINVAL },
            { "\"salt\":\"", "\"salt\":\"!!",
              "LUKS2 keyslot 0: invalid kdf salt", -EINVAL },
            { "\"type\":\"crypt\"", "\"type\":\"linear\"",
              "LUKS2 segment 0: type 'linear' is not supported", -ENOTSUP },
            { "\"iv_tweak\":\"0\"", "\"iv_tweak\":\"0\",\"integrity\":{}",
              "LUKS2 segment 0: integrity protection is not supported",
              -ENOTSUP },
            { "\"tokens\":{}", "\"tokens\":[]",
              "LUKS2 metadata lacks one of keyslots, segments, digests, "
              "config, tokens", -EINVAL },
            { "{\"keyslots\":{\"0\"", "{\"keyslots\":{\"32\"",
              "LUKS2 keyslot '32' is invalid", -EINVAL },
            { "\"segments\":{\"0\":{", "\"segments\":{\"1\":{\"type\":\"crypt\"},\"0\":{",
              "LUKS2 segment 1: invalid offset", -EINVAL },
            { "{\"keyslots\"", "[{\"keyslots\"",
              "LUKS2 primary header: JSON metadata cannot be parsed", -EINVAL },
        };
        size_t i;

        for (i = 0; i < ARRAY_SIZE(cases); i++) {
            const char *j = subst(json, cases[i].from, cases[i].to);

            if (!j) {
                ok(0, "hostile case %zu: pattern '%s' found", i, cases[i].from);
                continue;
            }
            RESET();
            set_json(&m, j);
            r = try_load(&m, got, sizeof(got));
            ok(r == cases[i].code, "hostile %zu: code %d (got %d)", i,
               cases[i].code, r);
            ok_str(got, cases[i].want, "hostile JSON message");
        }
    }

    /* Overlapping keyslot areas: copy keyslot 0 as keyslot 1. */
    {
        char two[12288];
        const char *ks = strstr(json, "\"0\":{\"type\":\"luks2\"");
        const char *end = strstr(json, "},\"tokens\"");

        if (ks && end) {
            snprintf(two, sizeof(two), "%.*s,\"1\":%.*s%s", (int)(end - json), json,
                     (int)(end - ks - 4), ks + 4, end);
            RESET();
            set_json(&m, two);
            r = try_load(&m, got, sizeof(got));
            ok(r == -EINVAL, "overlapping keyslot areas refused");
            ok_str(got, "LUKS2 keyslot 1 area overlaps keyslot 0",
                   "overlap message");
        } else {
            ok(0, "fixture JSON has the expected shape");
        }
    }

    /* JSON without a NUL in the area. */
    RESET();
    memset(m.data + 4096, ' ', 12288);
    fix_csum(&m, 0);
    memset(m.data + 16384, 0, 4096);
    r = try_load(&m, got, sizeof(got));
    ok(r == -EINVAL, "unterminated JSON area refused");
    ok_str(got, "LUKS2 primary header: JSON area is not terminated",
           "unterminated JSON message");

    /* Random garbage in the JSON area never crashes. */
    {
        unsigned seed = 1;
        int k, fails = 0;

        for (k = 0; k < 300; k++) {
            size_t pos, n;

            RESET();
            for (n = 0; n < 4; n++) {
                seed = seed * 1103515245 + 12345;
                pos = 4096 + (seed >> 8) % 1100;
                seed = seed * 1103515245 + 12345;
                m.data[pos] = (uint8_t)(" {}[]\":,0123456789aeflnrstu-"[(seed >> 8) % 28]);
            }
            fix_csum(&m, 0);
            memset(m.data + 16384, 0, 4096);
            if (try_load(&m, got, sizeof(got)) < 0) {
                fails++;
            }
        }
        ok(fails > 0, "300 mutated JSON areas: no crash (%d refused)", fails);
    }
    free(m.data);
    free(base.data);
}

static void
test_create(enum luks2_kdf kdf, uint32_t sector_size,
            enum crypto_cipher_mode mode, enum crypto_ivgen_alg ivgen)
{
    struct luks2_create_params p;
    struct membuf m = { 0 };
    struct luks2_io io = mem_io(&m);
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL, *l2 = NULL;
    struct json_object *info;
    uint8_t vk[64], buf[8192], plain[8192];
    const uint8_t *k;
    size_t klen = 0, i;
    uint64_t off = 0;
    const char *what = kdf == LUKS2_KDF_PBKDF2 ? "pbkdf2" : "argon2id";
    int r;

    luks2_create_params_default(&p);
    p.kdf = kdf;
    p.iterations = kdf == LUKS2_KDF_PBKDF2 ? 1000 : 4;
    p.memory_kib = 1024;
    p.parallel = 2;
    p.sector_size = sector_size;
    p.mode = mode;
    p.ivgen = ivgen;
    p.data_offset = 2 * 1024 * 1024;
    p.label = "vimg-test";
    ok(luks2_payload_bytes(&p, &off, NULL) == 0 && off == 2097152,
       "create %s/%u: payload offset 2 MiB", what, sector_size);
    r = luks2_create(&io, &p, "secret", 6, &l, &err);
    ok(r == 0, "create %s/%u (%s)", what, sector_size, msg(err));
    if (r < 0) {
        goto out;
    }
    k = luks2_volume_key(l, &klen);
    memcpy(vk, k, klen);
    for (i = 0; i < sizeof(plain); i++) {
        plain[i] = (uint8_t)(i * 7);
    }
    memcpy(buf, plain, sizeof(buf));
    ok(luks2_encrypt(l, 16, buf, sizeof(buf)) == 0, "encrypt with the new key");
    mem_write(&m, off + 8192, buf, sizeof(buf), NULL);
    luks2_free(l);
    l = NULL;

    ok(luks2_load(&io, &l2, &err) == 0, "created header loads (%s)", msg(err));
    if (!l2) {
        goto out;
    }
    ok(luks2_unlock(l2, "secrex", 6, NULL) == -EPERM, "wrong password -EPERM");
    ok(luks2_unlock(l2, "secret", 6, &err) == 0, "unlock keyslot 0 (%s)",
       msg(err));
    k = luks2_volume_key(l2, &klen);
    ok(k && klen == (mode == CRYPTO_MODE_XTS ? 64u : 32u) &&
       memcmp(k, vk, klen) == 0, "same volume key after reload");
    memcpy(buf, m.data + off + 8192, sizeof(buf));
    luks2_decrypt(l2, 16, buf, sizeof(buf));
    ok(memcmp(buf, plain, sizeof(buf)) == 0, "data round trip");

    p.kdf = LUKS2_KDF_PBKDF2;       /* the second keyslot: pbkdf2, sha512 */
    p.hash = CRYPTO_HASH_SHA512;
    p.iterations = 1000;
    r = luks2_add_key(l2, -1, &p, "second", 6, &err);
    ok(r == 1, "add_key -> keyslot 1 (%d, %s)", r, msg(err));
    luks2_free(l2);
    l2 = NULL;
    ok(luks2_load(&io, &l2, &err) == 0, "reload after add_key");
    if (l2) {
        ok(luks2_unlock(l2, "second", 6, &err) == 1, "new password opens keyslot 1");
        ok(luks2_unlock(l2, "secret", 6, &err) == 0, "old password still works");
        info = json_object_new_object();
        ok(luks2_info(l2, info, &err) == 0, "info");
        ok_str(json_object_get_string(json_object_object_get(info, "format")),
               "luks2", "info format");
        ok(json_object_get_int(json_object_object_get(info, "seqid")) == 2,
           "seqid incremented by add_key");
        ok(json_object_array_length(json_object_object_get(info, "keyslots")) == 2,
           "info lists 2 keyslots");
        ok_str(json_object_get_string(json_object_object_get(info, "label")),
               "vimg-test", "label");
        json_object_put(info);
    }
out:
    vimg_error_free(err);
    luks2_free(l);
    luks2_free(l2);
    free(m.data);
}

int
main(void)
{
    images_dir = getenv("VIMG_TEST_IMAGES");
    if (!images_dir) {
        images_dir = "tests/images";
    }
    test_fixture("cs-pbkdf2-xts256-s4096", 1, 4096);
    test_fixture("cs-argon2id-xts256-s512", 2, 512);
    test_fixture("cs-pbkdf2-cbc-essiv-s4096", 2, 4096);
    test_headers();
    test_create(LUKS2_KDF_PBKDF2, 512, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64);
    test_create(LUKS2_KDF_ARGON2ID, 4096, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64);
    test_create(LUKS2_KDF_PBKDF2, 4096, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV);
    return tap_done();
}
