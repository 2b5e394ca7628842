/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Argon2 tests: the RFC 9106 section 5 vectors (Argon2d/i/id with secret and
 * associated data), the reference implementation's "password"/"somesalt"
 * vectors for Argon2i/Argon2id (version 0x13, 64 MiB), determinism, and the
 * parameter checks that protect against hostile LUKS2 headers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tap.h"

struct vec {
    const char *what;
    enum crypto_argon2_type type;
    uint32_t t, m, p;
    const char *tag;
};

static const struct vec rfc[] = {
    { "RFC 9106 5.1 Argon2d", CRYPTO_ARGON2D, 3, 32, 4,
      "512b391b6f1162975371d30919734294f868e3be3984f3c1a13a4db9fabe4acb" },
    { "RFC 9106 5.2 Argon2i", CRYPTO_ARGON2I, 3, 32, 4,
      "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8" },
    { "RFC 9106 5.3 Argon2id", CRYPTO_ARGON2ID, 3, 32, 4,
      "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659" },
};

int
main(void)
{
    uint8_t pw[32], salt[16], secret[8], ad[12], out[32], out2[32], want[32];
    size_t i;

    memset(pw, 1, sizeof(pw));
    memset(salt, 2, sizeof(salt));
    memset(secret, 3, sizeof(secret));
    memset(ad, 4, sizeof(ad));

    for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        const struct vec *v = &rfc[i];

        hex2bin(v->tag, want, sizeof(want));
        memset(out, 0, sizeof(out));
        ok(crypto_argon2(v->type, pw, sizeof(pw), salt, sizeof(salt), secret,
                         sizeof(secret), ad, sizeof(ad), v->t, v->m, v->p,
                         out, sizeof(out)) == 0, "%s: computes", v->what);
        ok_mem(out, want, sizeof(want), v->what);
    }

    /* Reference implementation vectors: no secret, no AD, one lane. */
    hex2bin("c1628832147d9720c5bd1cfd61367078729f6dfb6f8fea9ff98158e0d7816ed0",
            want, sizeof(want));
    ok(crypto_argon2(CRYPTO_ARGON2I, "password", 8, "somesalt", 8, NULL, 0,
                     NULL, 0, 2, 65536, 1, out, 32) == 0, "argon2i ref: computes");
    ok_mem(out, want, 32, "argon2i t=2 m=64MiB p=1 password/somesalt");
    hex2bin("09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7",
            want, sizeof(want));
    ok(crypto_argon2(CRYPTO_ARGON2ID, "password", 8, "somesalt", 8, NULL, 0,
                     NULL, 0, 2, 65536, 1, out, 32) == 0, "argon2id ref: computes");
    ok_mem(out, want, 32, "argon2id t=2 m=64MiB p=1 password/somesalt");

    /* Determinism and sensitivity to every parameter. */
    crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 4,
                  1024, 2, out, 32);
    crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 4,
                  1024, 2, out2, 32);
    ok(memcmp(out, out2, 32) == 0, "same inputs, same output");
    crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 4,
                  1024, 1, out2, 32);
    ok(memcmp(out, out2, 32) != 0, "lanes change the output");
    crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 5,
                  1024, 2, out2, 32);
    ok(memcmp(out, out2, 32) != 0, "time cost changes the output");
    crypto_argon2(CRYPTO_ARGON2I, "pw", 2, salt, 16, NULL, 0, NULL, 0, 4,
                  1024, 2, out2, 32);
    ok(memcmp(out, out2, 32) != 0, "type changes the output");

    /* Parameter checks (hostile headers). */
    memcpy(out2, out, 32);
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 0,
                     1024, 1, out, 32) == -EINVAL, "t_cost 0 rejected");
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 1,
                     1024, 0, out, 32) == -EINVAL, "0 lanes rejected");
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 1,
                     1024, CRYPTO_ARGON2_MAX_LANES + 1, out, 32) == -EINVAL,
       "too many lanes rejected");
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 1,
                     15, 2, out, 32) == -EINVAL, "memory < 8*lanes rejected");
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 16, NULL, 0, NULL, 0, 1,
                     CRYPTO_ARGON2_MAX_MEMORY_KIB + 1, 1, out, 32) == -EINVAL,
       "memory above 4 GiB rejected before allocation");
    ok(crypto_argon2(CRYPTO_ARGON2ID, "pw", 2, salt, 4, NULL, 0, NULL, 0, 1,
                     64, 1, out, 32) == -EINVAL, "salt < 8 bytes rejected");
    ok(crypto_argon2((enum crypto_argon2_type)7, "pw", 2, salt, 16, NULL, 0,
                     NULL, 0, 1, 64, 1, out, 32) == -EINVAL, "bad type rejected");
    ok(memcmp(out, out2, 32) == 0, "output untouched on failure");
    return tap_done();
}
