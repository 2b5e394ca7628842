/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hash and HMAC tests: the "abc" vectors of every hash (FIPS 180-4, RFC 1321,
 * the RIPEMD-160 paper), digest lengths, crypto_hash2 against a one-shot
 * hash of the concatenation, HMAC vectors from RFC 4231 (and RFC 2202 for
 * HMAC-SHA1/MD5), random bytes, and error cases.
 */
#include <errno.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tap.h"

static const struct {
    enum crypto_hash_alg h;
    size_t len;
    const char *abc;
} abc_vectors[] = {
    { CRYPTO_HASH_MD5, 16, "900150983cd24fb0d6963f7d28e17f72" },
    { CRYPTO_HASH_SHA1, 20, "a9993e364706816aba3e25717850c26c9cd0d89d" },
    { CRYPTO_HASH_SHA224, 28,
      "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7" },
    { CRYPTO_HASH_SHA256, 32,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
    { CRYPTO_HASH_SHA384, 48,
      "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
      "8086072ba1e7cc2358baeca134c825a7" },
    { CRYPTO_HASH_SHA512, 64,
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
    { CRYPTO_HASH_RIPEMD160, 20, "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc" },
};

static void
test_abc(void)
{
    for (size_t i = 0; i < sizeof(abc_vectors) / sizeof(abc_vectors[0]); i++) {
        enum crypto_hash_alg h = abc_vectors[i].h;
        uint8_t want[64], got[64];
        char what[64];
        int r;

        hex2bin(abc_vectors[i].abc, want, sizeof(want));
        ok(crypto_hash_len(h) == abc_vectors[i].len, "%s length %zu",
           crypto_hash_alg_name(h), abc_vectors[i].len);
        r = crypto_hash(h, "abc", 3, got);
        snprintf(what, sizeof(what), "%s(\"abc\")", crypto_hash_alg_name(h));
        ok(r == 0, "%s returns 0", what);
        ok_mem(got, want, abc_vectors[i].len, what);

        /* hash2 splits the input anywhere. */
        memset(got, 0, sizeof(got));
        r = crypto_hash2(h, "a", 1, "bc", 2, got);
        snprintf(what, sizeof(what), "%s(\"a\" || \"bc\")",
                 crypto_hash_alg_name(h));
        ok(r == 0, "%s returns 0", what);
        ok_mem(got, want, abc_vectors[i].len, what);
        memset(got, 0, sizeof(got));
        r = crypto_hash2(h, "abc", 3, NULL, 0, got);
        snprintf(what, sizeof(what), "%s(\"abc\" || empty)",
                 crypto_hash_alg_name(h));
        ok(r == 0, "%s returns 0", what);
        ok_mem(got, want, abc_vectors[i].len, what);
    }
}

static void
test_misc_hashes(void)
{
    uint8_t want[64], got[64], big[1000];

    /* SHA-256 of the empty string (FIPS 180-4 examples). */
    hex2bin("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            want, sizeof(want));
    ok(crypto_hash(CRYPTO_HASH_SHA256, NULL, 0, got) == 0 &&
       memcmp(got, want, 32) == 0, "sha256(\"\")");
    /* SHA-1 of the two-block message from FIPS 180-2. */
    hex2bin("84983e441c3bd26ebaae4aa1f95129e5e54670f1", want, sizeof(want));
    crypto_hash(CRYPTO_HASH_SHA1,
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                56, got);
    ok_mem(got, want, 20, "sha1 two-block message");

    /* hash2 == hash of the concatenation on a longer buffer. */
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 31 + 7);
    }
    crypto_hash(CRYPTO_HASH_SHA512, big, sizeof(big), want);
    crypto_hash2(CRYPTO_HASH_SHA512, big, 333, big + 333, sizeof(big) - 333,
                 got);
    ok_mem(got, want, 64, "sha512 hash2 split at 333 == hash");
}

static void
test_hmac(void)
{
    uint8_t key[131], want[64], got[64];
    static const char long_data[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";

    /* RFC 4231 test case 1. */
    memset(key, 0x0b, 20);
    hex2bin("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            want, sizeof(want));
    ok(crypto_hmac(CRYPTO_HASH_SHA256, key, 20, "Hi There", 8, got) == 0,
       "hmac-sha256 returns 0");
    ok_mem(got, want, 32, "RFC 4231 TC1 HMAC-SHA256");
    hex2bin("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            want, sizeof(want));
    crypto_hmac(CRYPTO_HASH_SHA512, key, 20, "Hi There", 8, got);
    ok_mem(got, want, 64, "RFC 4231 TC1 HMAC-SHA512");
    /* Test case 2: short key. */
    hex2bin("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            want, sizeof(want));
    crypto_hmac(CRYPTO_HASH_SHA256, "Jefe", 4,
                "what do ya want for nothing?", 28, got);
    ok_mem(got, want, 32, "RFC 4231 TC2 HMAC-SHA256");
    /* Test case 6: key longer than the block size is hashed first. */
    memset(key, 0xaa, sizeof(key));
    hex2bin("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            want, sizeof(want));
    crypto_hmac(CRYPTO_HASH_SHA256, key, 131, long_data,
                sizeof(long_data) - 1, got);
    ok_mem(got, want, 32, "RFC 4231 TC6 HMAC-SHA256");
    /* RFC 2202 test case 2 for HMAC-SHA1 and HMAC-MD5. */
    hex2bin("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", want, sizeof(want));
    crypto_hmac(CRYPTO_HASH_SHA1, "Jefe", 4, "what do ya want for nothing?",
                28, got);
    ok_mem(got, want, 20, "RFC 2202 TC2 HMAC-SHA1");
    hex2bin("750c783e6ab0b503eaa86e310a5db738", want, sizeof(want));
    crypto_hmac(CRYPTO_HASH_MD5, "Jefe", 4, "what do ya want for nothing?",
                28, got);
    ok_mem(got, want, 16, "RFC 2202 TC2 HMAC-MD5");
}

static void
test_random(void)
{
    uint8_t a[4096], b[4096], zero[4096] = { 0 };

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    ok(crypto_random(a, sizeof(a)) == 0, "random 4096 bytes");
    ok(crypto_random(b, sizeof(b)) == 0, "random 4096 more bytes");
    ok(memcmp(a, b, sizeof(a)) != 0, "two random buffers differ");
    ok(memcmp(a, zero, sizeof(a)) != 0, "random buffer is not all zero");
    ok(crypto_random(NULL, 0) == 0, "random of 0 bytes");
}

static void
test_errors(void)
{
    uint8_t out[64];

    ok(crypto_hash(CRYPTO_HASH__MAX, "abc", 3, out) == -EINVAL,
       "hash: bad algorithm -EINVAL");
    ok(crypto_hash(CRYPTO_HASH_SHA256, "abc", 3, NULL) == -EINVAL,
       "hash: NULL output -EINVAL");
    ok(crypto_hash(CRYPTO_HASH_SHA256, NULL, 3, out) == -EINVAL,
       "hash: NULL input with a length -EINVAL");
    ok(crypto_hmac(-1, "k", 1, "abc", 3, out) == -EINVAL,
       "hmac: bad algorithm -EINVAL");
    ok(crypto_hash_len(CRYPTO_HASH__MAX) == 0, "hash_len of bad alg is 0");
}

int
main(void)
{
    ok(crypto_init() == 0, "crypto_init");
    test_abc();
    test_misc_hashes();
    test_hmac();
    test_random();
    test_errors();
    return tap_done();
}
