/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 anti-forensic splitter tests: split -> merge round trips for
 * several key sizes, stripe counts and hashes (including digest sizes that
 * leave a short last chunk), fixed-stripe merge vectors computed with an
 * independent Python implementation of the LUKS1 1.2.1 spec, the property
 * that every stripe matters, and argument errors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tap.h"

static void
test_round_trips(void)
{
    static const size_t keys[] = { 16, 24, 32, 45, 48, 64 };
    static const uint32_t stripes[] = { 1, 2, 3, 4000 };

    for (int h = 0; h < CRYPTO_HASH__MAX; h++) {
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            for (size_t s = 0; s < sizeof(stripes) / sizeof(stripes[0]); s++) {
                size_t bs = keys[k];
                uint32_t n = stripes[s];
                uint8_t key[64], back[64];
                uint8_t *buf = malloc(bs * n);
                int r1, r2;

                /* 4000 stripes only with sha256/sha1, to keep it quick. */
                if (n == 4000 && h != CRYPTO_HASH_SHA256 &&
                    h != CRYPTO_HASH_SHA1) {
                    free(buf);
                    continue;
                }
                crypto_random(key, bs);
                memset(back, 0, sizeof(back));
                r1 = crypto_afsplit(h, bs, n, key, buf);
                r2 = crypto_afmerge(h, bs, n, buf, back);
                ok(r1 == 0 && r2 == 0 && memcmp(key, back, bs) == 0,
                   "split/merge %s key %zu stripes %u",
                   crypto_hash_alg_name(h), bs, n);
                if (n == 1) {
                    /* One stripe: no diffusion, the stripe is the key. */
                    ok(memcmp(buf, key, bs) == 0,
                       "one stripe holds the key itself (%s, %zu)",
                       crypto_hash_alg_name(h), bs);
                }
                free(buf);
            }
        }
    }
}

static void
test_split_random(void)
{
    uint8_t key[32] = { 0 }, a[32 * 4], b[32 * 4], back[32];

    crypto_afsplit(CRYPTO_HASH_SHA256, 32, 4, key, a);
    crypto_afsplit(CRYPTO_HASH_SHA256, 32, 4, key, b);
    ok(memcmp(a, b, sizeof(a)) != 0, "two splits of one key differ");
    crypto_afmerge(CRYPTO_HASH_SHA256, 32, 4, b, back);
    ok(memcmp(back, key, 32) == 0, "the second split still merges");
    /* Every stripe matters: flip one bit in stripe 1. */
    b[32 + 5] ^= 0x10;
    crypto_afmerge(CRYPTO_HASH_SHA256, 32, 4, b, back);
    ok(memcmp(back, key, 32) != 0, "a damaged stripe loses the key");
}

static void
merge_vector(const char *what, enum crypto_hash_alg h, size_t bs,
             uint32_t n, unsigned mul, unsigned add, const char *want_hex)
{
    uint8_t *buf = malloc(bs * n), want[64], got[64];
    int r;

    for (size_t i = 0; i < bs * n; i++) {
        buf[i] = (uint8_t)(i * mul + add);
    }
    hex2bin(want_hex, want, sizeof(want));
    r = crypto_afmerge(h, bs, n, buf, got);
    ok(r == 0, "%s returns 0", what);
    ok_mem(got, want, bs, what);
    free(buf);
}

static void
test_vectors(void)
{
    /* stripe bytes are (i * mul + add) & 0xff over the whole buffer. */
    merge_vector("merge sha256 45 bytes x 3 (short last chunk)",
                 CRYPTO_HASH_SHA256, 45, 3, 7, 3,
                 "80bb0ed375aae95ca848671768e0685357fb5ac11fbf34a358885198"
                 "3b04240b0b787992b3e22d40b2a8b05383");
    merge_vector("merge sha1 32 bytes x 4", CRYPTO_HASH_SHA1, 32, 4, 13, 1,
                 "130154e9e35ce6b7627c2048ce5633c5027b598ee65df42be7eb9631"
                 "508853a4");
    merge_vector("merge sha256 64 bytes x 4000 (LUKS default geometry)",
                 CRYPTO_HASH_SHA256, 64, 4000, 5, 11,
                 "453cf5d36bc8d5f96de66700225092358ccf3edd6d318c0134473"
                 "1bcdb353cb273f1b531f389c57cb11fd4a209192cabb714476ccc91"
                 "33a26f16e17b1b5d2db0");
}

static void
test_errors(void)
{
    uint8_t key[32] = { 0 }, buf[64], out[32];

    ok(crypto_afsplit(CRYPTO_HASH_SHA256, 32, 0, key, buf) == -EINVAL,
       "split with 0 stripes: -EINVAL");
    ok(crypto_afmerge(CRYPTO_HASH_SHA256, 0, 2, buf, out) == -EINVAL,
       "merge with block size 0: -EINVAL");
    ok(crypto_afmerge(CRYPTO_HASH__MAX, 32, 2, buf, out) == -EINVAL,
       "merge with a bad hash: -EINVAL");
    ok(crypto_afmerge(CRYPTO_HASH_SHA256, 32, 2, NULL, out) == -EINVAL,
       "merge with NULL input: -EINVAL");
    ok(crypto_afmerge(CRYPTO_HASH_SHA256, SIZE_MAX / 2, 4, buf, out) ==
       -EINVAL, "merge with an overflowing size: -EINVAL");
}

int
main(void)
{
    ok(crypto_init() == 0, "crypto_init");
    test_round_trips();
    test_split_random();
    test_vectors();
    test_errors();
    return tap_done();
}
