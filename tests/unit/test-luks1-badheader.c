/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 header validation: a table of header mutations, each of which must
 * make luks1_load fail with -EINVAL and exactly one message.  The expected
 * messages and their order were checked against `qemu-img info -f luks`
 * (QEMU 7.2) on the same mutations, except where marked "vimg": there QEMU
 * either wraps 32-bit arithmetic or only fails later, and vimg is stricter.
 * Also: headers QEMU accepts must load, random mutations must never crash,
 * luks1_probe, and read errors.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "internal.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "blockcrypt/luks1.h"

#define PW "pw"

/* ---- the base volume: aes-256 xts-plain64 sha256, 64-byte key ---------- */

static uint8_t *img;
static size_t img_size;
static uint8_t hdr[LUKS1_HEADER_SIZE];   /* the mutated header */
static bool fail_reads;

static int
mem_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    if (fail_reads) {
        return vimg_error_set(errp, -EIO, "injected read error");
    }
    /* the header comes from the mutated copy, the rest from the image */
    for (size_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        if (o < LUKS1_HEADER_SIZE) {
            ((uint8_t *)buf)[i] = hdr[o];
        } else if (o < img_size) {
            ((uint8_t *)buf)[i] = img[o];
        } else {
            return vimg_error_set(errp, -EIO, "read beyond the end");
        }
    }
    return 0;
}

static int
mem_write(void *opaque, uint64_t off, const void *buf, size_t len,
          struct vimg_error **errp)
{
    if (off + len > img_size) {
        uint8_t *p = realloc(img, off + len);
        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "oom");
        }
        memset(p + img_size, 0, off + len - img_size);
        img = p;
        img_size = off + len;
    }
    memcpy(img + off, buf, len);
    return 0;
}

static const struct luks1_io io = { NULL, mem_read, mem_write, false };

/* ---- mutations ----------------------------------------------------------- */

enum kind { END, U32, U16, BYTE, STR, FILL, LAYOUT };

struct edit {
    enum kind kind;
    size_t off;        /* header offset */
    uint32_t val;      /* U32/U16/BYTE value; FILL byte; LAYOUT key bytes */
    const char *str;   /* STR: written NUL-padded into 32 bytes */
};

#define E(kind, off, val) { (kind), (off), (val), NULL }
#define ES(off, s) { STR, (off), 0, (s) }
#define SLOT(i, f) (208 + 48 * (i) + (f))
#define S_ACTIVE 0
#define S_ITERS 4
#define S_OFFSET 40
#define S_STRIPES 44

struct mutation {
    const char *what;
    const char *want;  /* NULL: must load */
    struct edit e[4];
};

static const struct mutation table[] = {
    { "bad magic", "Volume is not in LUKS format", { E(BYTE, 0, 'M') } },
    { "bad magic and version 2", "Volume is not in LUKS format",
      { E(BYTE, 5, 0), E(U16, 6, 2) } },
    { "version 2", "LUKS version 2 is not supported", { E(U16, 6, 2) } },
    { "version 0x0101", "LUKS version 257 is not supported", { E(U16, 6, 0x101) } },
    { "version 0", "LUKS version 0 is not supported", { E(U16, 6, 0) } },
    { "cipher name not terminated", "LUKS header cipher name is not NUL terminated",
      { E(FILL, 8, 'a') } },
    { "cipher mode not terminated", "LUKS header cipher mode is not NUL terminated",
      { E(FILL, 40, 'x') } },
    { "hash spec not terminated", "LUKS header hash spec is not NUL terminated",
      { E(FILL, 72, 's') } },
    { "payload 0", "LUKS payload is overlapping with the header", { E(U32, 104, 0) } },
    { "payload 7", "LUKS payload is overlapping with the header", { E(U32, 104, 7) } },
    { "payload 7 + slot 0 offset 0", "LUKS payload is overlapping with the header",
      { E(U32, 104, 7), E(U32, SLOT(0, S_OFFSET), 0) } },
    { "payload 8", "Keyslot 0 is overlapping with the encrypted payload",
      { E(U32, 104, 8) } },
    { "payload 4039", "Keyslot 7 is overlapping with the encrypted payload",
      { E(U32, 104, 4039) } },
    { "mk iterations 0", "LUKS key iteration count is zero", { E(U32, 164, 0) } },
    { "stripes 3999 on slot 3", "Keyslot 3 is corrupted (stripes 3999 != 4000)",
      { E(U32, SLOT(3, S_STRIPES), 3999) } },
    { "stripes 0 on slot 0", "Keyslot 0 is corrupted (stripes 0 != 4000)",
      { E(U32, SLOT(0, S_STRIPES), 0) } },
    { "stripes 65536 on slot 1", "Keyslot 1 is corrupted (stripes 65536 != 4000)",
      { E(U32, SLOT(1, S_STRIPES), 65536), E(U32, SLOT(1, S_OFFSET), 3000) } },
    { "slot 3 state 1", "Keyslot 3 state (active/disable) is corrupted",
      { E(U32, SLOT(3, S_ACTIVE), 1) } },
    { "slot 0 state 0", "Keyslot 0 state (active/disable) is corrupted",
      { E(U32, SLOT(0, S_ACTIVE), 0) } },
    { "slot 0 active, 0 iterations", "Keyslot 0 iteration count is zero",
      { E(U32, SLOT(0, S_ITERS), 0) } },
    { "slot 3 active, 0 iterations", "Keyslot 3 iteration count is zero",
      { E(U32, SLOT(3, S_ACTIVE), 0x00AC71F3) } },
    { "slot 0 key offset 0", "Keyslot 0 is overlapping with the LUKS header",
      { E(U32, SLOT(0, S_OFFSET), 0) } },
    { "slot 0 key offset 7", "Keyslot 0 is overlapping with the LUKS header",
      { E(U32, SLOT(0, S_OFFSET), 7) } },
    /* qemu compares slot pairs before it gets to slot 3's own checks */
    { "slot 3 key offset 0", "Keyslots 0 and 3 are overlapping in the header",
      { E(U32, SLOT(3, S_OFFSET), 0) } },
    { "slot 7 overlapping the payload",
      "Keyslot 7 is overlapping with the encrypted payload",
      { E(U32, SLOT(7, S_OFFSET), 3537) } },
    { "slot 2 at slot 1's offset", "Keyslots 1 and 2 are overlapping in the header",
      { E(U32, SLOT(2, S_OFFSET), 512) } },
    { "slot 5 at slot 1's offset", "Keyslots 1 and 5 are overlapping in the header",
      { E(U32, SLOT(5, S_OFFSET), 512) } },
    { "slot 1 one sector early (4 KiB slot areas)",
      "Keyslots 0 and 1 are overlapping in the header",
      { E(U32, SLOT(1, S_OFFSET), 511) } },
    { "overlap found before a later slot's stripes",
      "Keyslots 0 and 1 are overlapping in the header",
      { E(U32, SLOT(3, S_STRIPES), 3999), E(U32, SLOT(1, S_OFFSET), 0) } },
    { "slot 0 payload overlap found before slot 1's stripes",
      "Keyslot 0 is overlapping with the encrypted payload",
      { E(U32, SLOT(0, S_OFFSET), 3537), E(U32, SLOT(1, S_STRIPES), 1) } },
    /* vimg: qemu wraps offset + length in 32 bits and accepts this */
    { "slot 3 key offset 0xfffffff0 (vimg)",
      "Keyslot 3 is overlapping with the encrypted payload",
      { E(U32, SLOT(3, S_OFFSET), 0xfffffff0) } },
    { "key bytes 0", "Algorithm 'aes' with key size 0 bytes not supported",
      { E(U32, 108, 0) } },
    { "key bytes 65", "Keyslots 0 and 1 are overlapping in the header",
      { E(U32, 108, 65) } },
    { "key bytes 128", "Keyslots 0 and 1 are overlapping in the header",
      { E(U32, 108, 128) } },
    { "key bytes 0xffffffff", "Keyslot 0 is overlapping with the encrypted payload",
      { E(U32, 108, 0xffffffff) } },
    /* vimg: qemu's 32-bit key material length wraps to 0 for this one */
    { "key bytes 0x40000000 (vimg)",
      "Keyslot 0 is overlapping with the encrypted payload",
      { E(U32, 108, 0x40000000) } },
    /* a consistent layout for an 80-byte key: stops at the cipher lookup */
    { "key bytes 80 xts, laid out", "Algorithm 'aes' with key size 40 bytes not supported",
      { E(LAYOUT, 0, 80) } },
    { "key bytes 80 cbc, laid out", "Algorithm 'aes' with key size 80 bytes not supported",
      { E(LAYOUT, 0, 80), ES(40, "cbc-plain64") } },
    { "key bytes 72 cbc, laid out", "Algorithm 'aes' with key size 72 bytes not supported",
      { E(LAYOUT, 0, 72), ES(40, "cbc-plain64") } },
    /* vimg: qemu loads this and fails when it builds the XTS cipher */
    { "xts with odd key length 33", "XTS cipher key length should be a multiple of 2",
      { E(U32, 108, 33) } },
    { "xts with key length 40", "Algorithm 'aes' with key size 20 bytes not supported",
      { E(U32, 108, 40) } },
    { "unknown cipher des", "Algorithm 'des' with key size 32 bytes not supported",
      { ES(8, "des") } },
    { "cipher name upper case", "Algorithm 'AES' with key size 32 bytes not supported",
      { ES(8, "AES") } },
    { "empty cipher name", "Algorithm '' with key size 32 bytes not supported",
      { ES(8, "") } },
    { "mode without ivgen", "Unexpected cipher mode string format 'xtsplain64'",
      { ES(40, "xtsplain64") } },
    { "empty mode string", "Unexpected cipher mode string format ''",
      { ES(40, "") } },
    { "unknown mode gcm", "Cipher mode 'gcm' not supported",
      { ES(40, "gcm-plain64") } },
    { "mode upper case", "Cipher mode 'XTS' not supported",
      { ES(40, "XTS-plain64") } },
    { "unknown ivgen", "IV generator 'foo' not supported",
      { ES(40, "xts-foo") } },
    { "empty ivgen", "IV generator '' not supported", { ES(40, "xts-") } },
    { "second dash", "IV generator 'plain-64' not supported",
      { ES(40, "xts-plain-64") } },
    { "unknown ivgen hash", "Hash algorithm 'foo' not supported",
      { ES(40, "xts-plain64:foo") } },
    { "empty ivgen hash", "Hash algorithm '' not supported",
      { ES(40, "xts-essiv:") } },
    { "two colons", "Hash algorithm 'sha256:x' not supported",
      { ES(40, "xts-essiv:sha256:x") } },
    { "unknown hash spec", "Hash algorithm 'foo' not supported",
      { ES(72, "foo") } },
    { "hash spec upper case", "Hash algorithm 'SHA256' not supported",
      { ES(72, "SHA256") } },
    { "essiv without hash", "Missing IV generator hash specification",
      { ES(40, "xts-essiv") } },
    { "essiv sha1 with aes", "No AES cipher with key size 20 available",
      { ES(40, "xts-essiv:sha1") } },
    { "essiv sha1 with serpent", "No Serpent cipher with key size 20 available",
      { ES(8, "serpent"), ES(40, "cbc-essiv:sha1"), E(U32, 108, 16) } },
    { "essiv sha512 with twofish", "No Twofish cipher with key size 64 available",
      { ES(8, "twofish"), ES(40, "cbc-essiv:sha512"), E(U32, 108, 16) } },
    { "essiv sha256 with cast5", "Cipher cast5-128 not supported with essiv",
      { ES(8, "cast5"), ES(40, "cbc-essiv:sha256"), E(U32, 108, 16) } },
    /* parse order: ivgen hash, mode, cipher, hash spec, ivgen */
    { "bad ivgen hash before bad mode", "Hash algorithm 'foo' not supported",
      { ES(40, "gcm-plain64:foo") } },
    { "bad mode before bad cipher", "Cipher mode 'gcm' not supported",
      { ES(40, "gcm-plain64"), ES(8, "des") } },
    { "bad cipher before bad hash", "Algorithm 'des' with key size 32 bytes not supported",
      { ES(8, "des"), ES(72, "foo") } },
    { "bad hash before bad ivgen", "Hash algorithm 'foo' not supported",
      { ES(72, "foo"), ES(40, "xts-foo") } },
    { "essiv sha1 with cbc: cipher lookup first",
      "Algorithm 'aes' with key size 64 bytes not supported",
      { ES(40, "cbc-essiv:sha1") } },

    /* headers QEMU accepts */
    { "unterminated uuid", NULL, { E(FILL, 168, 'u') } },
    { "inactive slot with iterations", NULL, { E(U32, SLOT(3, S_ITERS), 5) } },
    { "plain64 with an ivgen hash", NULL, { ES(40, "xts-plain64:sha1") } },
    { "ecb with essiv", NULL, { ES(40, "ecb-essiv:sha256"), E(U32, 108, 32) } },
    { "cast5 cbc-essiv:md5", NULL,
      { ES(8, "cast5"), ES(40, "cbc-essiv:md5"), E(U32, 108, 16) } },
    { "cast5 xts (fails only at unlock)", NULL,
      { ES(8, "cast5"), E(U32, 108, 32) } },
    { "payload far away", NULL, { E(U32, 104, 0xffffffff) } },
};

static void
apply(const struct edit *e)
{
    switch (e->kind) {
    case U32:
        st_be32(hdr + e->off, e->val);
        break;
    case U16:
        st_be16(hdr + e->off, (uint16_t)e->val);
        break;
    case BYTE:
        hdr[e->off] = (uint8_t)e->val;
        break;
    case STR:
        memset(hdr + e->off, 0, 32);
        memcpy(hdr + e->off, e->str, strlen(e->str));
        break;
    case FILL:
        memset(hdr + e->off, (int)e->val, e->off == 168 ? 40 : 32);
        break;
    case LAYOUT: {
        uint32_t area = (uint32_t)ROUND_UP(DIV_ROUND_UP(e->val * 4000, 512), 8);
        st_be32(hdr + 108, e->val);
        for (int i = 0; i < 8; i++) {
            st_be32(hdr + SLOT(i, S_OFFSET), 8 + i * area);
        }
        st_be32(hdr + 104, 8 + 8 * area);
        break;
    }
    case END:
        break;
    }
}

static void
test_table(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
        const struct mutation *m = &table[i];
        struct luks1 *l = (struct luks1 *)&l;   /* must be reset to NULL */
        struct vimg_error *err = NULL;
        int r;

        memcpy(hdr, img, sizeof(hdr));
        for (size_t j = 0; j < ARRAY_SIZE(m->e) && m->e[j].kind != END; j++) {
            apply(&m->e[j]);
        }
        r = luks1_load(&io, &l, &err);
        if (m->want) {
            ok(r == -EINVAL && l == NULL, "%s: -EINVAL (r=%d)", m->what, r);
            ok_str(err ? vimg_error_message(err) : NULL, m->want, m->what);
            ok(err && vimg_error_code(err) == -EINVAL, "%s: error code", m->what);
        } else {
            ok(r == 0 && l != NULL, "%s: loads (%s)", m->what,
               err ? vimg_error_message(err) : "ok");
        }
        if (r == 0) {
            luks1_free(l);
        }
        vimg_error_free(err);
    }
}

/* Headers that load but cannot unlock as such. */
static void
test_unlock_failures(void)
{
    struct luks1 *l = NULL;
    struct vimg_error *err = NULL;
    int r;

    /* cast5 with xts: qemu's words at open time */
    memcpy(hdr, img, sizeof(hdr));
    memset(hdr + 8, 0, 32);
    memcpy(hdr + 8, "cast5", 5);
    st_be32(hdr + 108, 32);
    r = luks1_load(&io, &l, NULL);
    ok(r == 0, "cast5 xts header loads");
    r = l ? luks1_unlock(l, PW, 2, &err) : -1;
    ok(r == -ENOTSUP, "cast5 xts unlock -> -ENOTSUP");
    ok_str(err ? vimg_error_message(err) : NULL, "Unsupported cipher mode xts",
           "cast5 xts unlock message");
    vimg_error_free(err);
    err = NULL;
    luks1_free(l);
    l = NULL;

    /* a wrong master-key digest: the right password no longer verifies */
    memcpy(hdr, img, sizeof(hdr));
    hdr[112] ^= 1;
    r = luks1_load(&io, &l, NULL);
    r = r == 0 ? luks1_unlock(l, PW, 2, &err) : r;
    ok(r == -EPERM, "corrupted mk digest -> -EPERM");
    ok_str(err ? vimg_error_message(err) : NULL,
           "Invalid password, cannot unlock any keyslot", "digest mismatch message");
    vimg_error_free(err);
    err = NULL;
    luks1_free(l);
    l = NULL;

    /* no active slot at all */
    memcpy(hdr, img, sizeof(hdr));
    st_be32(hdr + SLOT(0, S_ACTIVE), 0xDEAD);
    r = luks1_load(&io, &l, NULL);
    r = r == 0 ? luks1_unlock(l, PW, 2, &err) : r;
    ok(r == -EPERM, "no active slot -> -EPERM");
    vimg_error_free(err);
    err = NULL;
    luks1_free(l);
    l = NULL;

    /* key material beyond the end of the volume: the read error comes up */
    memcpy(hdr, img, sizeof(hdr));
    st_be32(hdr + 104, 0x100000);
    st_be32(hdr + SLOT(0, S_OFFSET), 0x80000);
    r = luks1_load(&io, &l, NULL);
    r = r == 0 ? luks1_unlock(l, PW, 2, &err) : r;
    ok(r == -EIO && err, "unreadable key material -> -EIO (%s)",
       err ? vimg_error_message(err) : "");
    vimg_error_free(err);
    err = NULL;
    luks1_free(l);
    l = NULL;

    /* the unmodified header unlocks (the table's base is sound) */
    memcpy(hdr, img, sizeof(hdr));
    r = luks1_load(&io, &l, NULL);
    ok(r == 0 && luks1_unlock(l, PW, 2, NULL) == 0, "base header unlocks");
    luks1_free(l);
}

/* Random corruption: load returns 0 or -EINVAL, never crashes. */
static void
test_random(void)
{
    unsigned seed = 12345, bad = 0, loaded = 0;

    for (int n = 0; n < 20000; n++) {
        struct luks1 *l = NULL;
        struct vimg_error *err = NULL;
        int r, edits;

        memcpy(hdr, img, sizeof(hdr));
        edits = 1 + (int)(rand_r(&seed) % 8);
        for (int k = 0; k < edits; k++) {
            /* bias towards the integer fields and names */
            size_t off = (size_t)(rand_r(&seed) % LUKS1_HEADER_SIZE);
            hdr[off] = (uint8_t)rand_r(&seed);
        }
        r = luks1_load(&io, &l, &err);
        if (r == 0) {
            loaded++;
            luks1_free(l);
        } else if (r != -EINVAL || !err || l != NULL) {
            bad++;
        }
        vimg_error_free(err);
    }
    ok(bad == 0, "20000 random corruptions: %u loaded, none misbehaved", loaded);
}

static void
test_probe_and_io(void)
{
    uint8_t b[8];
    struct luks1 *l = NULL;
    struct vimg_error *err = NULL;
    int r;

    memcpy(b, img, 8);
    ok(luks1_probe(b, 8) == 1, "probe: LUKS version 1");
    ok(luks1_probe(b, 7) == 0, "probe: too short");
    b[7] = 2;
    ok(luks1_probe(b, 8) == 2, "probe: LUKS version 2 reported as 2");
    b[0] = 'l';
    ok(luks1_probe(b, 8) == 0, "probe: wrong magic");

    memcpy(hdr, img, sizeof(hdr));
    fail_reads = true;
    r = luks1_load(&io, &l, &err);
    fail_reads = false;
    ok(r == -EIO && l == NULL, "read error -> -EIO");
    ok_str(err ? vimg_error_message(err) : NULL, "injected read error",
           "the callback's message is kept");
    vimg_error_free(err);
}

int
main(void)
{
    struct luks1_create_params p;
    struct luks1 *l = NULL;
    int r;

    luks1_create_params_default(&p);
    p.iterations = 1000;
    r = luks1_create(&io, &p, PW, 2, &l, NULL);
    ok(r == 0 && img_size >= LUKS1_HEADER_SIZE, "base volume created");
    if (r < 0) {
        return tap_done();
    }
    luks1_free(l);
    memcpy(hdr, img, sizeof(hdr));
    ok(ld_be32(img + 104) == 4040 && ld_be32(img + 108) == 64,
       "base: payload 4040 sectors, 64-byte key (qemu's default layout)");

    test_table();
    test_unlock_failures();
    test_random();
    test_probe_and_io();
    free(img);
    return tap_done();
}
