/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Argon2 (RFC 9106, version 0x13) key derivation for LUKS2 keyslots, on
 * libgcrypt's GCRY_KDF_ARGON2 (libgcrypt >= 1.10).  Leaf code: returns 0 or
 * -errno and never logs.
 *
 * The computation runs on the calling thread (no job callbacks are given to
 * gcry_kdf_compute), so a "cpus"/lanes value > 1 only changes the result,
 * not the parallelism.  Parameters are capped before libgcrypt allocates
 * (memory <= CRYPTO_ARGON2_MAX_MEMORY_KIB), since LUKS2 headers are
 * untrusted input.  The working memory (memory cost KiB, derived from the
 * passphrase) is MADV_DONTDUMP and wiped on free: crypto_kdf_scratch()
 * routes libgcrypt's ordinary allocations to safe_alloc_unlocked() while
 * the KDF runs (not mlocked: gigabytes cannot be locked).
 */
#include "config.h"

#include <errno.h>
#include <gcrypt.h>

#include "crypto/crypto-internal.h"

int
crypto_argon2(enum crypto_argon2_type type, const void *pw, size_t pwlen,
              const void *salt, size_t saltlen, const void *secret,
              size_t secretlen, const void *ad, size_t adlen,
              uint32_t t_cost, uint32_t m_cost_kib, uint32_t lanes,
              uint8_t *out, size_t outlen)
{
    static const int subalgo[] = {
        [CRYPTO_ARGON2D] = GCRY_KDF_ARGON2D,
        [CRYPTO_ARGON2I] = GCRY_KDF_ARGON2I,
        [CRYPTO_ARGON2ID] = GCRY_KDF_ARGON2ID,
    };
    unsigned long param[4];
    gcry_kdf_hd_t hd = NULL;
    gcry_error_t err;
    int r;

    if ((unsigned)type > CRYPTO_ARGON2ID || !out || outlen < 4 ||
        outlen > UINT32_MAX || (pwlen && !pw) || (saltlen && !salt) ||
        (secretlen && !secret) || (adlen && !ad) || saltlen < 8 ||
        t_cost == 0 || lanes == 0 || lanes > CRYPTO_ARGON2_MAX_LANES ||
        m_cost_kib > CRYPTO_ARGON2_MAX_MEMORY_KIB ||
        (uint64_t)m_cost_kib < 8 * (uint64_t)lanes) {
        return -EINVAL;
    }
    r = crypto_init();
    if (r < 0) {
        return r;
    }
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Keep fuzz iterations fast; results then differ, which is fine. */
    if (t_cost > 1) {
        t_cost = 1;
    }
    if (m_cost_kib > 64) {
        m_cost_kib = 64;
    }
    if (lanes > 8) {
        lanes = 8;
    }
#endif
    param[0] = outlen;
    param[1] = t_cost;
    param[2] = m_cost_kib;
    param[3] = lanes;
    /* libgcrypt takes non-const pointers; it does not modify the inputs. */
    crypto_kdf_scratch(true);
    err = gcry_kdf_open(&hd, GCRY_KDF_ARGON2, subalgo[type], param, 4,
                        pw, pwlen, salt, saltlen, (void *)secret, secretlen,
                        (void *)ad, adlen);
    if (err) {
        crypto_kdf_scratch(false);
        return gcry_err_code(err) == GPG_ERR_ENOMEM ? -ENOMEM : -EINVAL;
    }
    err = gcry_kdf_compute(hd, NULL);
    if (!err) {
        err = gcry_kdf_final(hd, outlen, out);
    }
    gcry_kdf_close(hd);
    crypto_kdf_scratch(false);
    if (err) {
        return gcry_err_code(err) == GPG_ERR_ENOMEM ? -ENOMEM : -EIO;
    }
    return 0;
}
