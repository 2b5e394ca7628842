/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Block cipher tests: published known-answer vectors (FIPS-197 AES,
 * RFC 2144 CAST5, libgcrypt's Serpent self-test vectors, Twofish paper KATs,
 * NIST SP 800-38A CBC and CTR, IEEE 1619-2007 XTS-AES vectors 1-5 and 10),
 * encrypt/decrypt round trips for every cipher and mode, the name tables,
 * and the error cases (wrong key length, cast5+xts, bad lengths and IVs).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/crypto-internal.h"
#include "tap.h"
#include "vectors-xts.h"

/* The 512-byte plaintext of IEEE 1619 vectors 4 and 10: 00..ff twice. */
static void
fill_seq512(uint8_t *p)
{
    for (int i = 0; i < 512; i++) {
        p[i] = (uint8_t)i;
    }
}


/*
 * Encrypt @pthex (or @pt if non-NULL) and compare with @cthex, then decrypt
 * back and compare with the plaintext.
 */
static void
kat(const char *what, enum crypto_cipher_alg a, enum crypto_cipher_mode m,
    const char *keyhex, const char *ivhex, const char *pthex,
    const uint8_t *ptbin, const char *cthex)
{
    uint8_t key[64], iv[16], pt[512], ct[512], buf[512];
    size_t klen = hex2bin(keyhex, key, sizeof(key));
    size_t ivlen = ivhex ? hex2bin(ivhex, iv, sizeof(iv)) : 0;
    size_t ctlen = hex2bin(cthex, ct, sizeof(ct));
    size_t ptlen;
    struct crypto_cipher *c = NULL;
    char msg[128];
    int r;

    if (ptbin) {
        memcpy(pt, ptbin, ctlen);
        ptlen = ctlen;
    } else {
        ptlen = hex2bin(pthex, pt, sizeof(pt));
    }
    r = crypto_cipher_new(a, m, key, klen, &c);
    snprintf(msg, sizeof(msg), "%s: cipher_new", what);
    if (!ok(r == 0 && c != NULL && ptlen == ctlen, "%s (r=%d)", msg, r)) {
        return;
    }
    memcpy(buf, pt, ptlen);
    r = crypto_cipher_encrypt(c, ivlen ? iv : NULL, ivlen, buf, ptlen);
    snprintf(msg, sizeof(msg), "%s: encrypt", what);
    ok(r == 0, "%s returns 0 (r=%d)", msg, r);
    ok_mem(buf, ct, ctlen, msg);
    r = crypto_cipher_decrypt(c, ivlen ? iv : NULL, ivlen, buf, ctlen);
    snprintf(msg, sizeof(msg), "%s: decrypt", what);
    ok(r == 0, "%s returns 0 (r=%d)", msg, r);
    ok_mem(buf, pt, ptlen, msg);
    crypto_cipher_free(c);
}

static void
test_ecb_kats(void)
{
    /* FIPS-197 appendix C. */
    kat("FIPS-197 C.1 AES-128", CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB,
        "000102030405060708090a0b0c0d0e0f", NULL,
        "00112233445566778899aabbccddeeff", NULL,
        "69c4e0d86a7b0430d8cdb78070b4c55a");
    kat("FIPS-197 C.2 AES-192", CRYPTO_CIPHER_AES_192, CRYPTO_MODE_ECB,
        "000102030405060708090a0b0c0d0e0f1011121314151617", NULL,
        "00112233445566778899aabbccddeeff", NULL,
        "dda97ca4864cdfe06eaf70a0ec0d7191");
    kat("FIPS-197 C.3 AES-256", CRYPTO_CIPHER_AES_256, CRYPTO_MODE_ECB,
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        NULL, "00112233445566778899aabbccddeeff", NULL,
        "8ea2b7ca516745bfeafc49904b496089");
    /* RFC 2144 appendix B.1, 128-bit key. */
    kat("RFC 2144 B.1 CAST5-128", CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_ECB,
        "0123456712345678234567893456789a", NULL, "0123456789abcdef", NULL,
        "238b4fe5847e44b2");
    /* libgcrypt serpent.c self-test vectors. */
    kat("Serpent-128 KAT", CRYPTO_CIPHER_SERPENT_128, CRYPTO_MODE_ECB,
        "00000000000000000000000000000000", NULL,
        "d29d576fcea3a3a7ed9099f29273d78e", NULL,
        "b2288b968ae8b08648d1ce9606fd992d");
    kat("Serpent-192 KAT", CRYPTO_CIPHER_SERPENT_192, CRYPTO_MODE_ECB,
        "000000000000000000000000000000000000000000000000", NULL,
        "d29d576fceaba3a7ed9899f2927bd78e", NULL,
        "130e353e1037c22405e8faefb2c3c3e9");
    kat("Serpent-256 KAT a", CRYPTO_CIPHER_SERPENT_256, CRYPTO_MODE_ECB,
        "0000000000000000000000000000000000000000000000000000000000000000",
        NULL, "d095576fcea3e3a7ed98d9f29073d78e", NULL,
        "b90ee5862de69168f2bdd5125b45472b");
    kat("Serpent-256 KAT b", CRYPTO_CIPHER_SERPENT_256, CRYPTO_MODE_ECB,
        "0000000000000000000000000000000000000000000000000000000000000000",
        NULL, "00000000010000000200000003000000", NULL,
        "2061a42782bd52ec691ec383b03ba77c");
    /* Twofish paper, "Known Answer Test" (ECB_TBL) entries. */
    kat("Twofish-128 KAT", CRYPTO_CIPHER_TWOFISH_128, CRYPTO_MODE_ECB,
        "d491db16e7b1c39e86cb086b789f5419", NULL,
        "019f9809de1711858faac3a3ba20fbc3", NULL,
        "6363977de839486297e661c6c9d668eb");
    kat("Twofish-128 zero key", CRYPTO_CIPHER_TWOFISH_128, CRYPTO_MODE_ECB,
        "00000000000000000000000000000000", NULL,
        "00000000000000000000000000000000", NULL,
        "9f589f5cf6122c32b6bfec2f2ae8c35a");
    kat("Twofish-192 KAT", CRYPTO_CIPHER_TWOFISH_192, CRYPTO_MODE_ECB,
        "88b2b2706b105e36b446bb6d731a1e88efa71f788965bd44", NULL,
        "39da69d6ba4997d585b6dc073ca341b2", NULL,
        "182b02d81497ea45f9daacdc29193a65");
    kat("Twofish-192 paper key", CRYPTO_CIPHER_TWOFISH_192, CRYPTO_MODE_ECB,
        "0123456789abcdeffedcba98765432100011223344556677", NULL,
        "00000000000000000000000000000000", NULL,
        "cfd1d2e5a9be9cdf501f13b892bd2248");
    kat("Twofish-256 KAT", CRYPTO_CIPHER_TWOFISH_256, CRYPTO_MODE_ECB,
        "d43bb7556ea32e46f2a282b7d45b4e0d57ff739d4dc92c1bd7fc01700cc8216f",
        NULL, "90afe91bb288544f2c32dc239b2635e6", NULL,
        "6cb4561c40bf0a9705931cb6d408e7fa");
    kat("Twofish-256 paper key", CRYPTO_CIPHER_TWOFISH_256, CRYPTO_MODE_ECB,
        "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
        NULL, "00000000000000000000000000000000", NULL,
        "37527be0052334b89f0cfccae87cfa20");
}

static void
test_cbc_ctr_kats(void)
{
    static const char pt4[] =
        "6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710";

    /* NIST SP 800-38A F.2.1 CBC-AES128.Encrypt */
    kat("SP800-38A F.2.1 CBC-AES128", CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC,
        "2b7e151628aed2a6abf7158809cf4f3c",
        "000102030405060708090a0b0c0d0e0f", pt4, NULL,
        "7649abac8119b246cee98e9b12e9197d" "5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e22229516" "3ff1caa1681fac09120eca307586e1a7");
    /* F.5.1 CTR-AES128.Encrypt: the IV is the initial counter block. */
    kat("SP800-38A F.5.1 CTR-AES128", CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CTR,
        "2b7e151628aed2a6abf7158809cf4f3c",
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", pt4, NULL,
        "874d6191b620e3261bef6864990db6ce" "9806f66b7970fdff8617187bb9fffdff"
        "5ae4df3edbd5d35e5b4f09020db03eab" "1e031dda2fbe03d1792170a0f3009cee");
    /* F.5.5 CTR-AES256.Encrypt */
    kat("SP800-38A F.5.5 CTR-AES256", CRYPTO_CIPHER_AES_256, CRYPTO_MODE_CTR,
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", pt4, NULL,
        "601ec313775789a5b7a7f504bbf3d228" "f443e3ca4d62b59aca84e990cacaf5c5"
        "2b0930daa23de94ce87017ba2d84988d" "dfc9c58db67aada613c2dd08457941a6");
}

static void
test_xts_kats(void)
{
    uint8_t seq[512];

    /* IEEE 1619-2007 annex B; the IV is the data unit number as LE128. */
    kat("IEEE 1619 XTS-AES-128 vector 1", CRYPTO_CIPHER_AES_128,
        CRYPTO_MODE_XTS,
        "00000000000000000000000000000000" "00000000000000000000000000000000",
        "00000000000000000000000000000000",
        "00000000000000000000000000000000" "00000000000000000000000000000000",
        NULL,
        "917cf69ebd68b2ec9b9fe9a3eadda692" "cd43d2f59598ed858c02c2652fbf922e");
    kat("IEEE 1619 XTS-AES-128 vector 2", CRYPTO_CIPHER_AES_128,
        CRYPTO_MODE_XTS,
        "11111111111111111111111111111111" "22222222222222222222222222222222",
        "33333333330000000000000000000000",
        "44444444444444444444444444444444" "44444444444444444444444444444444",
        NULL,
        "c454185e6a16936e39334038acef838b" "fb186fff7480adc4289382ecd6d394f0");
    kat("IEEE 1619 XTS-AES-128 vector 3", CRYPTO_CIPHER_AES_128,
        CRYPTO_MODE_XTS,
        "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0" "22222222222222222222222222222222",
        "33333333330000000000000000000000",
        "44444444444444444444444444444444" "44444444444444444444444444444444",
        NULL,
        "af85336b597afc1a900b2eb21ec949d2" "92df4c047e0b21532186a5971a227a89");
    fill_seq512(seq);
    kat("IEEE 1619 XTS-AES-128 vector 4", CRYPTO_CIPHER_AES_128,
        CRYPTO_MODE_XTS,
        "27182818284590452353602874713526" "31415926535897932384626433832795",
        "00000000000000000000000000000000", NULL, seq, xts_v4_ct);
    /* Vector 5: data unit 1, plaintext = vector 4's ciphertext. */
    hex2bin(xts_v4_ct, seq, sizeof(seq));
    kat("IEEE 1619 XTS-AES-128 vector 5", CRYPTO_CIPHER_AES_128,
        CRYPTO_MODE_XTS,
        "27182818284590452353602874713526" "31415926535897932384626433832795",
        "01000000000000000000000000000000", NULL, seq, xts_v5_ct);
    fill_seq512(seq);
    kat("IEEE 1619 XTS-AES-256 vector 10", CRYPTO_CIPHER_AES_256,
        CRYPTO_MODE_XTS,
        "2718281828459045235360287471352662497757247093699959574966967627"
        "3141592653589793238462643383279502884197169399375105820974944592",
        "ff000000000000000000000000000000", NULL, seq, xts_v10_ct);
}

/* Every cipher in every mode it supports: decrypt(encrypt(x)) == x, and
 * encryption changes the data; CBC/CTR/XTS depend on the IV. */
static void
test_round_trips(void)
{
    uint8_t key[64], iv[16], iv2[16], pt[512], buf[512], buf2[512];

    for (int i = 0; i < 64; i++) {
        key[i] = (uint8_t)(i * 37 + 1);
    }
    for (int i = 0; i < 512; i++) {
        pt[i] = (uint8_t)(i * 11 + 5);
    }
    memset(iv, 0xa5, sizeof(iv));
    memcpy(iv2, iv, sizeof(iv2));
    iv2[0] ^= 1;

    for (int a = 0; a < CRYPTO_CIPHER__MAX; a++) {
        for (int m = 0; m < CRYPTO_MODE__MAX; m++) {
            struct crypto_cipher *c = NULL;
            size_t klen = crypto_cipher_key_len(a) * (m == CRYPTO_MODE_XTS ? 2 : 1);
            size_t ivlen = crypto_cipher_iv_len(a, m);
            const char *name = crypto_cipher_alg_name(a);
            const char *mode = crypto_cipher_mode_name(m);
            int r;

            if (!crypto_cipher_mode_ok(a, m)) {
                continue;
            }
            r = crypto_cipher_new(a, m, key, klen, &c);
            if (!ok(r == 0, "round trip %s-%s: new (r=%d)", name, mode, r)) {
                continue;
            }
            memcpy(buf, pt, sizeof(buf));
            r = crypto_cipher_encrypt(c, ivlen ? iv : NULL, ivlen, buf,
                                      sizeof(buf));
            ok(r == 0 && memcmp(buf, pt, sizeof(buf)) != 0,
               "round trip %s-%s: encrypt changes data", name, mode);
            if (ivlen) {
                memcpy(buf2, pt, sizeof(buf2));
                crypto_cipher_encrypt(c, iv2, ivlen, buf2, sizeof(buf2));
                ok(memcmp(buf, buf2, sizeof(buf)) != 0,
                   "round trip %s-%s: ciphertext depends on the IV", name,
                   mode);
            } else {
                /* ECB: identical plaintext blocks give identical output. */
                size_t bl = crypto_cipher_block_len(a);
                memcpy(buf2, pt, bl);
                crypto_cipher_encrypt(c, NULL, 0, buf2, bl);
                ok(memcmp(buf, buf2, bl) == 0,
                   "round trip %s-%s: ECB is stateless", name, mode);
            }
            r = crypto_cipher_decrypt(c, ivlen ? iv : NULL, ivlen, buf,
                                      sizeof(buf));
            ok(r == 0 && memcmp(buf, pt, sizeof(buf)) == 0,
               "round trip %s-%s: decrypt restores data", name, mode);
            crypto_cipher_free(c);
        }
    }
}

/*
 * Twofish-192 uses vimg's own Twofish (libgcrypt has no 192-bit keys).
 * Check that implementation against libgcrypt's Twofish-128/256 in every
 * mode, with random keys, IVs and data of several lengths.
 */
static void
test_soft_twofish(void)
{
    static const enum crypto_cipher_alg algs[] = {
        CRYPTO_CIPHER_TWOFISH_128, CRYPTO_CIPHER_TWOFISH_256,
    };
    static const size_t lens[] = { 16, 32, 48, 512, 4096 };
    static uint8_t key[64], iv[16], pt[4096], a[4096], b[4096];
    struct crypto_cipher *c = NULL;

    for (size_t i = 0; i < 2; i++) {
        for (int m = 0; m < CRYPTO_MODE__MAX; m++) {
            int bad = 0, n = 0;

            for (int round = 0; round < 4; round++) {
                struct crypto_cipher *g = NULL, *sw = NULL;
                size_t klen = crypto_cipher_key_len(algs[i]) *
                              (m == CRYPTO_MODE_XTS ? 2 : 1);
                size_t ivlen = crypto_cipher_iv_len(algs[i], m);

                crypto_random(key, sizeof(key));
                crypto_random(iv, sizeof(iv));
                crypto_random(pt, sizeof(pt));
                if (round == 0) {
                    /* CTR: the counter carries across 64-bit halves. */
                    memset(iv + 8, 0xff, 8);
                }
                if (crypto_cipher_new(algs[i], m, key, klen, &g) < 0 ||
                    crypto_cipher_new_soft(algs[i], m, key, klen, &sw) < 0) {
                    bad++;
                    crypto_cipher_free(g);
                    crypto_cipher_free(sw);
                    continue;
                }
                for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                    memcpy(a, pt, lens[l]);
                    memcpy(b, pt, lens[l]);
                    crypto_cipher_encrypt(g, ivlen ? iv : NULL, ivlen, a,
                                          lens[l]);
                    crypto_cipher_encrypt(sw, ivlen ? iv : NULL, ivlen, b,
                                          lens[l]);
                    bad += memcmp(a, b, lens[l]) != 0;
                    crypto_cipher_decrypt(sw, ivlen ? iv : NULL, ivlen, b,
                                          lens[l]);
                    bad += memcmp(b, pt, lens[l]) != 0;
                    n += 2;
                }
                crypto_cipher_free(g);
                crypto_cipher_free(sw);
            }
            ok(bad == 0, "software %s-%s == libgcrypt (%d checks)",
               crypto_cipher_alg_name(algs[i]), crypto_cipher_mode_name(m),
               n);
        }
    }
    ok(crypto_cipher_new_soft(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB, key, 16,
                              &c) == -ENOTSUP,
       "software cipher only for Twofish");
}

static void
test_properties(void)
{
    ok(crypto_cipher_key_len(CRYPTO_CIPHER_AES_256) == 32, "aes-256 key 32");
    ok(crypto_cipher_key_len(CRYPTO_CIPHER_SERPENT_192) == 24,
       "serpent-192 key 24");
    ok(crypto_cipher_key_len(CRYPTO_CIPHER_CAST5_128) == 16, "cast5 key 16");
    ok(crypto_cipher_block_len(CRYPTO_CIPHER_CAST5_128) == 8,
       "cast5 block 8");
    ok(crypto_cipher_block_len(CRYPTO_CIPHER_TWOFISH_256) == 16,
       "twofish block 16");
    ok(crypto_cipher_iv_len(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB) == 0,
       "ecb iv 0");
    ok(crypto_cipher_iv_len(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_XTS) == 16,
       "xts iv 16");
    ok(crypto_cipher_iv_len(CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_CBC) == 8,
       "cast5 cbc iv 8");
    ok(!crypto_cipher_mode_ok(CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_XTS),
       "cast5+xts not ok");
    ok(crypto_cipher_mode_ok(CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_CTR),
       "cast5+ctr ok");
}

static void
test_names(void)
{
    for (int a = 0; a < CRYPTO_CIPHER__MAX; a++) {
        const char *n = crypto_cipher_alg_name(a);
        ok(n && crypto_cipher_alg_parse(n) == a, "cipher name %s round trip",
           n ? n : "?");
        ok(crypto_cipher_alg_from_family(crypto_cipher_family(a),
                                         crypto_cipher_key_len(a)) == a,
           "cipher %s from family", n ? n : "?");
    }
    for (int m = 0; m < CRYPTO_MODE__MAX; m++) {
        const char *n = crypto_cipher_mode_name(m);
        ok(n && crypto_cipher_mode_parse(n) == m, "mode %s round trip",
           n ? n : "?");
    }
    for (int h = 0; h < CRYPTO_HASH__MAX; h++) {
        const char *n = crypto_hash_alg_name(h);
        ok(n && crypto_hash_alg_parse(n) == h, "hash %s round trip",
           n ? n : "?");
    }
    for (int g = 0; g < CRYPTO_IVGEN__MAX; g++) {
        const char *n = crypto_ivgen_alg_name(g);
        ok(n && crypto_ivgen_alg_parse(n) == g, "ivgen %s round trip",
           n ? n : "?");
    }
    ok_str(crypto_cipher_alg_name(CRYPTO_CIPHER_AES_256), "aes-256",
           "aes-256 QAPI name");
    ok_str(crypto_cipher_alg_name(CRYPTO_CIPHER_CAST5_128), "cast5-128",
           "cast5-128 QAPI name");
    ok_str(crypto_cipher_family(CRYPTO_CIPHER_TWOFISH_192), "twofish",
           "twofish family");
    ok_str(crypto_cipher_mode_name(CRYPTO_MODE_XTS), "xts", "xts name");
    ok_str(crypto_hash_alg_name(CRYPTO_HASH_RIPEMD160), "ripemd160",
           "ripemd160 name");
    ok_str(crypto_ivgen_alg_name(CRYPTO_IVGEN_PLAIN64), "plain64",
           "plain64 name");
    ok(crypto_cipher_alg_parse("aes") == -1, "'aes' is not a QAPI name");
    ok(crypto_cipher_alg_parse("sm4") == -1, "sm4 unknown");
    ok(crypto_cipher_alg_parse(NULL) == -1, "NULL cipher name");
    ok(crypto_cipher_mode_parse("gcm") == -1, "gcm unknown");
    ok(crypto_hash_alg_parse("SHA256") == -1, "hash names are lower case");
    ok(crypto_ivgen_alg_parse("benbi") == -1, "benbi unknown");
    ok(crypto_cipher_alg_from_family("aes", 64) == -1, "aes 64 bytes: none");
    ok(crypto_cipher_alg_from_family("aes", 20) == -1, "aes 20 bytes: none");
    ok(crypto_cipher_alg_from_family("cast5", 32) == -1, "cast5-256: none");
    ok(crypto_cipher_alg_from_family("des", 8) == -1, "des: none");
    ok(crypto_cipher_alg_from_family("serpent", 24) ==
       CRYPTO_CIPHER_SERPENT_192, "serpent 24 bytes");
    ok(crypto_cipher_alg_name(CRYPTO_CIPHER__MAX) == NULL,
       "out-of-range cipher has no name");
}

static void
test_errors(void)
{
    uint8_t key[64] = { 0 }, iv[16] = { 0 }, buf[64] = { 0 };
    struct crypto_cipher *c = (struct crypto_cipher *)&key;   /* sentinel */
    int r;

    r = crypto_cipher_new(CRYPTO_CIPHER_AES_256, CRYPTO_MODE_CBC, key, 16, &c);
    ok(r == -EINVAL, "aes-256 with a 16-byte key: -EINVAL (%d)", r);
    ok(c == (struct crypto_cipher *)&key, "out untouched on failure");
    r = crypto_cipher_new(CRYPTO_CIPHER_AES_256, CRYPTO_MODE_XTS, key, 32, &c);
    ok(r == -EINVAL, "aes-256-xts with a 32-byte key: -EINVAL (%d)", r);
    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB, key, 32, &c);
    ok(r == -EINVAL, "aes-128-ecb with a 32-byte key: -EINVAL (%d)", r);
    r = crypto_cipher_new(CRYPTO_CIPHER_CAST5_128, CRYPTO_MODE_XTS, key, 32,
                          &c);
    ok(r == -ENOTSUP, "cast5-128 + xts: -ENOTSUP (%d)", r);
    r = crypto_cipher_new(CRYPTO_CIPHER__MAX, CRYPTO_MODE_CBC, key, 16, &c);
    ok(r == -EINVAL, "bad cipher enum: -EINVAL (%d)", r);
    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE__MAX, key, 16,
                          &c);
    ok(r == -EINVAL, "bad mode enum: -EINVAL (%d)", r);

    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, key, 16, &c);
    ok(r == 0, "aes-128-cbc created");
    ok(crypto_cipher_encrypt(c, iv, 16, buf, 15) == -EINVAL,
       "cbc: length not a block multiple");
    ok(crypto_cipher_encrypt(c, iv, 8, buf, 16) == -EINVAL,
       "cbc: short IV");
    ok(crypto_cipher_encrypt(c, NULL, 0, buf, 16) == -EINVAL,
       "cbc: missing IV");
    ok(crypto_cipher_decrypt(c, iv, 16, buf, 17) == -EINVAL,
       "cbc decrypt: bad length");
    crypto_cipher_free(c);

    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_ECB, key, 16, &c);
    ok(r == 0, "aes-128-ecb created");
    ok(crypto_cipher_encrypt(c, iv, 16, buf, 16) == -EINVAL,
       "ecb: IV given");
    crypto_cipher_free(c);

    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_XTS, key, 32, &c);
    ok(r == 0, "aes-128-xts created (equal halves are accepted)");
    ok(crypto_cipher_encrypt(c, iv, 16, buf, 0) == 0, "xts: empty is a no-op");
    crypto_cipher_free(c);
    crypto_cipher_free(NULL);
    ok(1, "crypto_cipher_free(NULL) is a no-op");
}

int
main(void)
{
    ok(crypto_init() == 0, "crypto_init");
    ok(crypto_init() == 0, "crypto_init again");
    test_ecb_kats();
    test_cbc_ctr_kats();
    test_xts_kats();
    test_round_trips();
    test_soft_twofish();
    test_properties();
    test_names();
    test_errors();
    return tap_done();
}
