/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PBKDF2 tests: RFC 6070 PBKDF2-HMAC-SHA1 vectors (the 16777216-iteration
 * one only with VIMG_SLOW_TESTS set), RFC 7914 section 11 PBKDF2-HMAC-SHA256
 * vectors and other published SHA-256/SHA-512 vectors, the empty-password
 * and empty-salt edge cases, argument errors and the CPU-time rate
 * calibration (a sane, repeatable value).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "crypto/crypto-internal.h"
#include "tap.h"

struct vec {
    const char *what;
    enum crypto_hash_alg h;
    const char *pw;
    size_t pwlen;
    const char *salt;
    size_t saltlen;
    uint64_t iter;
    const char *dk;
};

static const struct vec vectors[] = {
    { "RFC 6070 #1", CRYPTO_HASH_SHA1, "password", 8, "salt", 4, 1,
      "0c60c80f961f0e71f3a9b524af6012062fe037a6" },
    { "RFC 6070 #2", CRYPTO_HASH_SHA1, "password", 8, "salt", 4, 2,
      "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957" },
    { "RFC 6070 #3", CRYPTO_HASH_SHA1, "password", 8, "salt", 4, 4096,
      "4b007901b765489abead49d926f721d065a429c1" },
    { "RFC 6070 #5", CRYPTO_HASH_SHA1, "passwordPASSWORDpassword", 24,
      "saltSALTsaltSALTsaltSALTsaltSALTsalt", 36, 4096,
      "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038" },
    { "RFC 6070 #6 (embedded NULs)", CRYPTO_HASH_SHA1, "pass\0word", 9,
      "sa\0lt", 5, 4096, "56fa6aa75548099dcc37d7f03425e0c3" },
    { "RFC 7914 11 #1", CRYPTO_HASH_SHA256, "passwd", 6, "salt", 4, 1,
      "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
      "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783" },
    { "RFC 7914 11 #2", CRYPTO_HASH_SHA256, "Password", 8, "NaCl", 4, 80000,
      "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
      "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d" },
    { "SHA-256 c=1", CRYPTO_HASH_SHA256, "password", 8, "salt", 4, 1,
      "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b" },
    { "SHA-256 c=4096", CRYPTO_HASH_SHA256, "password", 8, "salt", 4, 4096,
      "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a" },
    { "SHA-512 c=1000", CRYPTO_HASH_SHA512, "password", 8, "salt", 4, 1000,
      "afe6c5530785b6cc6b1c6453384731bd5ee432ee549fd42fb6695779ad8a1c5b"
      "f59de69c48f774efc4007d5298f9033c0241d5ab69305e7b64eceeb8d834cfec" },
    /* Expected values computed with Python's hashlib.pbkdf2_hmac. */
    { "RIPEMD-160 c=100, 2 blocks", CRYPTO_HASH_RIPEMD160, "password", 8,
      "salt", 4, 100,
      "d22022689f0cc2e6f621b5e49801c99b08b73293221b996f92a12610efddb89d"
      "5d78fbbbe3be7215" },
    { "SHA-256 empty password", CRYPTO_HASH_SHA256, "", 0, "salt", 4, 10,
      "4c9d748ae0f9043b42a414cc80500da37a3ed69977ca443c31516f585f6449c5" },
    { "SHA-256 empty salt", CRYPTO_HASH_SHA256, "pw", 2, "", 0, 10,
      "d7e962f955477df55d477d94c74c0cd8b8d55f9ac826033985b2b8f49ba6b07c" },
};

static void
test_vectors(void)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vec *v = &vectors[i];
        uint8_t want[128], got[128];
        size_t n = hex2bin(v->dk, want, sizeof(want));
        int r;

        memset(got, 0, sizeof(got));
        r = crypto_pbkdf2(v->h, v->pw, v->pwlen, v->salt, v->saltlen, v->iter,
                          got, n);
        ok(r == 0, "%s returns 0 (r=%d)", v->what, r);
        ok_mem(got, want, n, v->what);
    }

    if (getenv("VIMG_SLOW_TESTS")) {
        uint8_t want[20], got[20];

        hex2bin("eefe3d61cd4da4e4e9945b3d6ba2158c2634e984", want, sizeof(want));
        crypto_pbkdf2(CRYPTO_HASH_SHA1, "password", 8, "salt", 4, 16777216,
                      got, 20);
        ok_mem(got, want, 20, "RFC 6070 #4 (16777216 iterations)");
    } else {
        printf("# RFC 6070 #4 (16777216 iterations) skipped; "
               "set VIMG_SLOW_TESTS=1\n");
    }
}

/*
 * crypto_pbkdf2 (SHA-NI fast path for SHA-256 where the CPU has it) must
 * agree with the libgcrypt-only path for every shape of input: passwords
 * around the 64-byte HMAC block, empty and long salts, outputs of 1, 2, 3
 * and partial blocks, 1 to 50 iterations.
 */
static void
test_fast_vs_portable(void)
{
    static const size_t pwlens[] = { 0, 5, 63, 64, 65, 200 };
    static const size_t saltlens[] = { 0, 1, 32, 100 };
    static const size_t outlens[] = { 1, 20, 32, 33, 64, 65, 96, 100 };
    static const uint64_t iters[] = { 1, 2, 3, 50 };
    uint8_t pw[200], salt[100], a[100], b[100];
    int checked = 0, bad = 0;

    crypto_random(pw, sizeof(pw));
    crypto_random(salt, sizeof(salt));
    for (size_t i = 0; i < sizeof(pwlens) / sizeof(pwlens[0]); i++) {
        for (size_t j = 0; j < sizeof(saltlens) / sizeof(saltlens[0]); j++) {
            for (size_t k = 0; k < sizeof(outlens) / sizeof(outlens[0]); k++) {
                for (size_t l = 0; l < sizeof(iters) / sizeof(iters[0]); l++) {
                    int r1, r2;

                    memset(a, 0, sizeof(a));
                    memset(b, 1, sizeof(b));
                    r1 = crypto_pbkdf2(CRYPTO_HASH_SHA256, pw, pwlens[i], salt,
                                       saltlens[j], iters[l], a, outlens[k]);
                    r2 = crypto_pbkdf2_portable(CRYPTO_HASH_SHA256, pw,
                                                pwlens[i], salt, saltlens[j],
                                                iters[l], b, outlens[k]);
                    checked++;
                    if (r1 != 0 || r2 != 0 || memcmp(a, b, outlens[k]) != 0) {
                        bad++;
                        printf("# mismatch: pw %zu salt %zu out %zu iter %llu\n",
                               pwlens[i], saltlens[j], outlens[k],
                               (unsigned long long)iters[l]);
                    }
                }
            }
        }
    }
    ok(bad == 0, "fast and portable PBKDF2-SHA256 agree (%d cases, %d bad)",
       checked, bad);
    /* And on a LUKS-sized run. */
    crypto_pbkdf2(CRYPTO_HASH_SHA256, "secret", 6, salt, 32, 100000, a, 64);
    crypto_pbkdf2_portable(CRYPTO_HASH_SHA256, "secret", 6, salt, 32, 100000,
                           b, 64);
    ok_mem(a, b, 64, "fast == portable, 100000 iterations, 64 bytes");
}

static void
test_errors(void)
{
    uint8_t out[32];

    ok(crypto_pbkdf2(CRYPTO_HASH_SHA256, "pw", 2, "salt", 4, 0, out, 32) ==
       -EINVAL, "0 iterations: -EINVAL");
    ok(crypto_pbkdf2(CRYPTO_HASH__MAX, "pw", 2, "salt", 4, 1, out, 32) ==
       -EINVAL, "bad hash: -EINVAL");
    ok(crypto_pbkdf2(CRYPTO_HASH_SHA256, "pw", 2, "salt", 4, 1, out, 0) ==
       -EINVAL, "0 output bytes: -EINVAL");
    ok(crypto_pbkdf2(CRYPTO_HASH_SHA256, "pw", 2, "salt", 4, 1, NULL, 32) ==
       -EINVAL, "NULL output: -EINVAL");
    ok(crypto_pbkdf2(CRYPTO_HASH_SHA256, NULL, 2, "salt", 4, 1, out, 32) ==
       -EINVAL, "NULL password with a length: -EINVAL");
}

static double
now_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
test_rate(void)
{
    uint64_t r20 = 0, r64 = 0, iters;
    uint8_t out[64];
    double t0, t;
    int r;

    r = crypto_pbkdf2_rate(CRYPTO_HASH_SHA256, 20, &r20);
    ok(r == 0, "rate(sha256, 20) returns 0 (r=%d)", r);
    printf("# pbkdf2-hmac-sha256 rate, 20-byte output: %llu it/s\n",
           (unsigned long long)r20);
    /* Any machine this runs on does between 10k and 100M iterations/s. */
    ok(r20 >= 10000 && r20 <= 100000000, "rate(20) is sane: %llu",
       (unsigned long long)r20);
    r = crypto_pbkdf2_rate(CRYPTO_HASH_SHA256, 64, &r64);
    ok(r == 0, "rate(sha256, 64) returns 0 (r=%d)", r);
    printf("# pbkdf2-hmac-sha256 rate, 64-byte output: %llu it/s\n",
           (unsigned long long)r64);
    /*
     * 64 bytes need two SHA-256 output blocks: half the rate of 20 bytes
     * when computed one after the other, up to nearly the same rate with
     * the two-way SHA-NI path.  Never more.
     */
    ok(r64 * 10 >= r20 * 3 && r64 <= r20 + r20 / 20,
       "rate(64) is between 0.3x and 1x rate(20): %llu vs %llu",
       (unsigned long long)r64, (unsigned long long)r20);

    /* The rate predicts the run time: r20/10 iterations take ~100 ms. */
    iters = r20 / 10;
    t0 = now_cpu();
    crypto_pbkdf2(CRYPTO_HASH_SHA256, "pw", 2, "saltsalt", 8, iters, out, 20);
    t = now_cpu() - t0;
    printf("# %llu iterations took %.1f ms of CPU time\n",
           (unsigned long long)iters, t * 1000);
    ok(t > 0.04 && t < 0.25, "rate/10 iterations take ~100 ms (%.1f ms)",
       t * 1000);

    ok(crypto_pbkdf2_rate(CRYPTO_HASH_SHA256, 0, &r20) == -EINVAL,
       "rate with 0 output bytes: -EINVAL");
    ok(crypto_pbkdf2_rate(CRYPTO_HASH__MAX, 20, &r20) == -EINVAL,
       "rate with a bad hash: -EINVAL");
}

int
main(void)
{
    ok(crypto_init() == 0, "crypto_init");
    test_vectors();
    test_fast_vs_portable();
    test_errors();
    test_rate();
    return tap_done();
}
