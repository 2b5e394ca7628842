/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IV generator and sector encryption tests.  plain/plain64 vectors are
 * written out by hand; the ESSIV vectors were computed independently with
 * the openssl CLI (`openssl dgst -sha256` of the master key, then
 * `openssl enc -aes-256-ecb -nopad -K <H>` of LE64(sector) || zeros; cast5
 * with `-provider legacy`).  crypto_sector is checked against IEEE 1619 XTS
 * vectors 4, 5 and 10 (plain64 IV = data unit number) and against an
 * aes-128-cbc-essiv:sha256 sector encrypted by `openssl enc -aes-128-cbc`.
 */
#include <errno.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tap.h"
#include "vectors-xts.h"


static void
iv_check(struct crypto_ivgen *g, uint64_t sector, size_t ivlen,
         const char *hex, const char *what)
{
    uint8_t want[32], got[32];
    int r;

    memset(got, 0xee, sizeof(got));
    hex2bin(hex, want, sizeof(want));
    r = crypto_ivgen_calc(g, sector, got, ivlen);
    ok(r == 0, "%s returns 0 (r=%d)", what, r);
    ok_mem(got, want, ivlen, what);
}

static void
test_plain(void)
{
    uint8_t key[32] = { 0 };
    struct crypto_ivgen *g = NULL;
    int r;

    r = crypto_ivgen_new(CRYPTO_IVGEN_PLAIN, CRYPTO_CIPHER_AES_256,
                         CRYPTO_MODE_XTS, CRYPTO_HASH_SHA256, key, 32, &g);
    ok(r == 0, "plain ivgen created");
    iv_check(g, 0, 16, "00000000000000000000000000000000", "plain sector 0");
    iv_check(g, 1, 16, "01000000000000000000000000000000", "plain sector 1");
    iv_check(g, 0x12345678, 16, "78563412000000000000000000000000",
             "plain sector 0x12345678");
    iv_check(g, 0x0123456789abcdefULL, 16,
             "efcdab89000000000000000000000000",
             "plain truncates to 32 bits");
    iv_check(g, 0x100000005ULL, 16, "05000000000000000000000000000000",
             "plain wraps at 2^32");
    iv_check(g, 0x01020304, 8, "0403020100000000", "plain 8-byte IV");
    crypto_ivgen_free(g);

    g = NULL;
    r = crypto_ivgen_new(CRYPTO_IVGEN_PLAIN64, CRYPTO_CIPHER_AES_256,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_SHA256, key, 32, &g);
    ok(r == 0, "plain64 ivgen created");
    iv_check(g, 0, 16, "00000000000000000000000000000000", "plain64 sector 0");
    iv_check(g, 0x0123456789abcdefULL, 16,
             "efcdab89674523010000000000000000", "plain64 64-bit sector");
    iv_check(g, 0x100000005ULL, 16, "05000000010000000000000000000000",
             "plain64 does not wrap at 2^32");
    iv_check(g, UINT64_MAX, 16, "ffffffffffffffff0000000000000000",
             "plain64 max sector");
    crypto_ivgen_free(g);
}

static void
test_essiv(void)
{
    uint8_t key[64];
    struct crypto_ivgen *g = NULL;
    int r;

    /* aes-128-cbc-essiv:sha256: ESSIV cipher is AES-256 (digest length). */
    hex2bin("000102030405060708090a0b0c0d0e0f", key, sizeof(key));
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_AES_128,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_SHA256, key, 16, &g);
    ok(r == 0, "essiv:sha256 for aes-128-cbc created (r=%d)", r);
    iv_check(g, 0, 16, "ae0e4eeac063684505721b0643b24ae3", "essiv sector 0");
    iv_check(g, 1, 16, "c10509c8cf7d6eee55d7205db7845a6f", "essiv sector 1");
    iv_check(g, 5, 16, "95cb2429690590ef31fec63972e51424", "essiv sector 5");
    iv_check(g, 0x0123456789abcdefULL, 16,
             "d4b2a9a4115063c105f68b76215c3af6", "essiv 64-bit sector");
    crypto_ivgen_free(g);

    /* aes-256-xts-essiv:sha256 hashes the whole 64-byte key. */
    for (int i = 0; i < 64; i++) {
        key[i] = (uint8_t)(0x40 + i);
    }
    g = NULL;
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_AES_256,
                         CRYPTO_MODE_XTS, CRYPTO_HASH_SHA256, key, 64, &g);
    ok(r == 0, "essiv:sha256 for aes-256-xts created (r=%d)", r);
    iv_check(g, 7, 16, "d2f8937d0ac33dd70272e53e375afc93",
             "essiv over both XTS key halves, sector 7");
    crypto_ivgen_free(g);

    /* cast5-128-cbc-essiv:md5: 16-byte digest keys CAST5-128, 8-byte IV. */
    hex2bin("000102030405060708090a0b0c0d0e0f", key, sizeof(key));
    g = NULL;
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_CAST5_128,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_MD5, key, 16, &g);
    ok(r == 0, "essiv:md5 for cast5-128-cbc created (r=%d)", r);
    iv_check(g, 3, 8, "f0833388730d788d", "cast5 essiv:md5 sector 3");
    crypto_ivgen_free(g);

    /* sha1 gives a 20-byte key: no AES of that size. */
    g = (struct crypto_ivgen *)&key;
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_AES_128,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_SHA1, key, 16, &g);
    ok(r == -ENOTSUP, "essiv:sha1 with aes: -ENOTSUP (r=%d)", r);
    ok(g == (struct crypto_ivgen *)&key, "out untouched on failure");
    /* sha512: 64 bytes, no AES-512 either; md5 gives AES-128. */
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_AES_256,
                         CRYPTO_MODE_XTS, CRYPTO_HASH_SHA512, key, 64, &g);
    ok(r == -ENOTSUP, "essiv:sha512 with aes: -ENOTSUP (r=%d)", r);
    g = NULL;
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_SERPENT_256,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_MD5, key, 32, &g);
    ok(r == 0, "essiv:md5 with serpent (serpent-128) works (r=%d)", r);
    crypto_ivgen_free(g);
    r = crypto_ivgen_new(CRYPTO_IVGEN_ESSIV, CRYPTO_CIPHER_CAST5_128,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_SHA256, key, 16, &g);
    ok(r == -ENOTSUP, "essiv:sha256 with cast5: -ENOTSUP (r=%d)", r);
    r = crypto_ivgen_new(CRYPTO_IVGEN_PLAIN64, CRYPTO_CIPHER_CAST5_128,
                         CRYPTO_MODE_XTS, CRYPTO_HASH_SHA256, key, 16, &g);
    ok(r == -ENOTSUP, "ivgen for cast5+xts: -ENOTSUP (r=%d)", r);
    r = crypto_ivgen_new(CRYPTO_IVGEN__MAX, CRYPTO_CIPHER_AES_128,
                         CRYPTO_MODE_CBC, CRYPTO_HASH_SHA256, key, 16, &g);
    ok(r == -EINVAL, "bad ivgen enum: -EINVAL (r=%d)", r);
}

static void
fill_seq512(uint8_t *p)
{
    for (int i = 0; i < 512; i++) {
        p[i] = (uint8_t)i;
    }
}

static void
sector_kat(const char *what, enum crypto_cipher_alg a, const char *keyhex,
           uint64_t sector, const uint8_t *pt, const char *cthex)
{
    uint8_t key[64], ct[512], buf[512];
    size_t klen = hex2bin(keyhex, key, sizeof(key));
    struct crypto_sector *s = NULL;
    int r;

    hex2bin(cthex, ct, sizeof(ct));
    r = crypto_sector_new(a, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64,
                          CRYPTO_HASH_SHA256, key, klen, &s);
    if (!ok(r == 0, "%s: sector_new (r=%d)", what, r)) {
        return;
    }
    memcpy(buf, pt, 512);
    ok(crypto_sector_encrypt(s, sector, buf, 512) == 0, "%s: encrypt", what);
    ok_mem(buf, ct, 512, what);
    ok(crypto_sector_decrypt(s, sector, buf, 512) == 0 &&
       memcmp(buf, pt, 512) == 0, "%s: decrypt", what);
    crypto_sector_free(s);
}

static void
test_sector_xts(void)
{
    uint8_t pt[512];
    static const char k128[] =
        "2718281828459045235360287471352631415926535897932384626433832795";
    static const char k256[] =
        "2718281828459045235360287471352662497757247093699959574966967627"
        "3141592653589793238462643383279502884197169399375105820974944592";

    fill_seq512(pt);
    sector_kat("sector xts-plain64: IEEE 1619 vector 4", CRYPTO_CIPHER_AES_128,
               k128, 0, pt, xts_v4_ct);
    hex2bin(xts_v4_ct, pt, sizeof(pt));
    sector_kat("sector xts-plain64: IEEE 1619 vector 5", CRYPTO_CIPHER_AES_128,
               k128, 1, pt, xts_v5_ct);
    fill_seq512(pt);
    sector_kat("sector xts-plain64: IEEE 1619 vector 10",
               CRYPTO_CIPHER_AES_256, k256, 0xff, pt, xts_v10_ct);
}

/* Multi-sector requests equal per-sector requests with consecutive IVs. */
static void
test_sector_multi(void)
{
    static const struct {
        enum crypto_cipher_alg a;
        enum crypto_cipher_mode m;
        enum crypto_ivgen_alg g;
        enum crypto_hash_alg h;
    } cfg[] = {
        { CRYPTO_CIPHER_AES_256, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64,
          CRYPTO_HASH_SHA256 },
        { CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_SHA256 },
        { CRYPTO_CIPHER_SERPENT_256, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN,
          CRYPTO_HASH_SHA1 },
        { CRYPTO_CIPHER_TWOFISH_128, CRYPTO_MODE_CTR, CRYPTO_IVGEN_PLAIN64,
          CRYPTO_HASH_SHA256 },
        { CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_CBC, CRYPTO_IVGEN_ESSIV,
          CRYPTO_HASH_MD5 },
        { CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB, CRYPTO_IVGEN_PLAIN,
          CRYPTO_HASH_SHA256 },
        /* vimg's own Twofish-192 (libgcrypt has none). */
        { CRYPTO_CIPHER_TWOFISH_192, CRYPTO_MODE_XTS, CRYPTO_IVGEN_PLAIN64,
          CRYPTO_HASH_SHA256 },
    };
    static uint8_t pt[4 * 512], whole[4 * 512], single[4 * 512],
                   from[4 * 512], src[4 * 512];
    uint8_t key[64];

    for (int i = 0; i < 64; i++) {
        key[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t i = 0; i < sizeof(pt); i++) {
        pt[i] = (uint8_t)(i * 13 + 1);
    }
    for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
        struct crypto_sector *s = NULL;
        size_t klen = crypto_cipher_key_len(cfg[c].a) *
                      (cfg[c].m == CRYPTO_MODE_XTS ? 2 : 1);
        char name[64];
        int r;

        snprintf(name, sizeof(name), "%s-%s-%s",
                 crypto_cipher_alg_name(cfg[c].a),
                 crypto_cipher_mode_name(cfg[c].m),
                 crypto_ivgen_alg_name(cfg[c].g));
        r = crypto_sector_new(cfg[c].a, cfg[c].m, cfg[c].g, cfg[c].h, key,
                              klen, &s);
        if (!ok(r == 0, "%s: sector_new (r=%d)", name, r)) {
            continue;
        }
        memcpy(whole, pt, sizeof(pt));
        r = crypto_sector_encrypt(s, 1000, whole, sizeof(whole));
        ok(r == 0 && memcmp(whole, pt, sizeof(pt)) != 0,
           "%s: 4-sector encrypt", name);
        memcpy(single, pt, sizeof(pt));
        for (int i = 0; i < 4; i++) {
            crypto_sector_encrypt(s, 1000 + i, single + i * 512, 512);
        }
        ok(memcmp(whole, single, sizeof(whole)) == 0,
           "%s: equals 4 single-sector calls", name);
        /* Out of place (the write paths' copy-free variant). */
        memcpy(src, pt, sizeof(pt));
        memset(from, 0xee, sizeof(from));
        r = crypto_sector_encrypt_from(s, 1000, from, src, sizeof(src));
        ok(r == 0 && memcmp(from, whole, sizeof(whole)) == 0 &&
           memcmp(src, pt, sizeof(pt)) == 0,
           "%s: encrypt_from equals in-place, source untouched (r=%d)", name,
           r);
        ok(crypto_sector_encrypt_from(s, 0, from, NULL, 512) == -EINVAL,
           "%s: encrypt_from without a source: -EINVAL", name);
        if (cfg[c].m != CRYPTO_MODE_ECB) {
            memcpy(single, pt, 512);
            crypto_sector_encrypt(s, 1001, single, 512);
            ok(memcmp(single, whole, 512) != 0,
               "%s: the IV sector changes the ciphertext", name);
        }
        r = crypto_sector_decrypt(s, 1000, whole, sizeof(whole));
        ok(r == 0 && memcmp(whole, pt, sizeof(pt)) == 0,
           "%s: decrypt restores", name);
        ok(crypto_sector_encrypt(s, 0, whole, 100) == -EINVAL,
           "%s: length not a multiple of 512: -EINVAL", name);
        crypto_sector_free(s);
    }
}

/* aes-128-cbc-essiv:sha256, sector 5 (the LUKS1 qemu case verified in the
 * spec); expected SHA-256 of the ciphertext from `openssl enc -aes-128-cbc
 * -nopad -K 000102..0f -iv <essiv IV of sector 5>`. */
static void
test_sector_essiv_openssl(void)
{
    uint8_t key[16], buf[512], digest[32], want[32];
    struct crypto_sector *s = NULL;
    int r;

    hex2bin("000102030405060708090a0b0c0d0e0f", key, sizeof(key));
    fill_seq512(buf);
    r = crypto_sector_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC,
                          CRYPTO_IVGEN_ESSIV, CRYPTO_HASH_SHA256, key, 16, &s);
    ok(r == 0, "aes-128-cbc-essiv:sha256 sector object (r=%d)", r);
    crypto_sector_encrypt(s, 5, buf, sizeof(buf));
    crypto_hash(CRYPTO_HASH_SHA256, buf, sizeof(buf), digest);
    hex2bin("800bc7ac24b9ee7fd073b8ab9d4263cc915e952211938126a782c8d32f749e42",
            want, sizeof(want));
    ok_mem(digest, want, 32, "cbc-essiv:sha256 sector 5 matches openssl");
    crypto_sector_free(s);

    r = crypto_sector_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC,
                          CRYPTO_IVGEN_ESSIV, CRYPTO_HASH_SHA1, key, 16, &s);
    ok(r == -ENOTSUP, "sector with essiv:sha1 on aes: -ENOTSUP (r=%d)", r);
    r = crypto_sector_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC,
                          CRYPTO_IVGEN_PLAIN64, CRYPTO_HASH_SHA256, key, 15,
                          &s);
    ok(r == -EINVAL, "sector with a 15-byte key: -EINVAL (r=%d)", r);
    crypto_sector_free(NULL);
    crypto_ivgen_free(NULL);
}

int
main(void)
{
    ok(crypto_init() == 0, "crypto_init");
    test_plain();
    test_essiv();
    test_sector_xts();
    test_sector_multi();
    test_sector_essiv_openssl();
    return tap_done();
}
