/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IV generators of dm-crypt / LUKS1 as qemu implements them, one IV per
 * 512-byte sector:
 *   plain    low 32 bits of the sector number, little-endian, zero-padded
 *   plain64  the 64-bit sector number, little-endian, zero-padded
 *   essiv    E_s(LE64(sector) || zeros) with s = hash(master key) and E the
 *            data cipher's family keyed with s in ECB mode
 * The IV length is fixed by the data cipher and mode (0 for ECB).
 *
 * qemu compatibility: the ESSIV key is the hash of the *whole* master key
 * (both halves for XTS), and the ESSIV cipher's key length is the digest
 * length, not the data cipher's (aes-128 + sha256 -> AES-256).  A digest
 * length with no cipher of that family (sha1: 20 bytes) is -ENOTSUP.
 *
 * An ESSIV generator owns a cipher handle and is therefore not thread-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crypto/crypto.h"
#include "safemem.h"

struct crypto_ivgen {
    enum crypto_ivgen_alg alg;
    size_t iv_len;                 /* the data cipher's IV length */
    struct crypto_cipher *essiv;   /* ESSIV only: ECB cipher keyed with H */
    size_t essiv_block;
};

int
crypto_ivgen_new(enum crypto_ivgen_alg g, enum crypto_cipher_alg cipher,
                 enum crypto_cipher_mode mode, enum crypto_hash_alg hash,
                 const uint8_t *master_key, size_t keylen,
                 struct crypto_ivgen **out)
{
    struct crypto_ivgen *ig;
    int r;

    if ((unsigned)g >= CRYPTO_IVGEN__MAX ||
        (unsigned)cipher >= CRYPTO_CIPHER__MAX ||
        (unsigned)mode >= CRYPTO_MODE__MAX || !out) {
        return -EINVAL;
    }
    if (!crypto_cipher_mode_ok(cipher, mode)) {
        return -ENOTSUP;
    }
    ig = calloc(1, sizeof(*ig));
    if (!ig) {
        return -ENOMEM;
    }
    ig->alg = g;
    ig->iv_len = crypto_cipher_iv_len(cipher, mode);

    if (g == CRYPTO_IVGEN_ESSIV) {
        size_t hlen = crypto_hash_len(hash);
        uint8_t *h;
        int ealg;

        if (hlen == 0 || !master_key || keylen == 0) {
            r = -EINVAL;
            goto fail;
        }
        ealg = crypto_cipher_alg_from_family(crypto_cipher_family(cipher),
                                             hlen);
        if (ealg < 0) {
            r = -ENOTSUP;   /* e.g. "No AES cipher with key size 20" */
            goto fail;
        }
        h = safe_alloc(hlen);
        if (!h) {
            r = -ENOMEM;
            goto fail;
        }
        r = crypto_hash(hash, master_key, keylen, h);
        if (r == 0) {
            r = crypto_cipher_new(ealg, CRYPTO_MODE_ECB, h, hlen, &ig->essiv);
        }
        safe_free(h);
        if (r < 0) {
            goto fail;
        }
        ig->essiv_block = crypto_cipher_block_len(ealg);
    }
    *out = ig;
    return 0;

fail:
    crypto_ivgen_free(ig);
    return r;
}

void
crypto_ivgen_free(struct crypto_ivgen *g)
{
    if (!g) {
        return;
    }
    crypto_cipher_free(g->essiv);
    free(g);
}

int
crypto_ivgen_calc(struct crypto_ivgen *g, uint64_t sector, uint8_t *iv,
                  size_t ivlen)
{
    uint8_t block[CRYPTO_MAX_IV];
    int r;

    if (!g || (ivlen && !iv)) {
        return -EINVAL;
    }
    switch (g->alg) {
    case CRYPTO_IVGEN_PLAIN:
        /* The sector number is truncated to 32 bits, then zero padded. */
        memset(block, 0, sizeof(block));
        st_le32(block, (uint32_t)sector);
        break;
    case CRYPTO_IVGEN_PLAIN64:
        memset(block, 0, sizeof(block));
        st_le64(block, sector);
        break;
    case CRYPTO_IVGEN_ESSIV:
        memset(block, 0, sizeof(block));
        st_le64(block, sector);
        r = crypto_cipher_encrypt(g->essiv, NULL, 0, block, g->essiv_block);
        if (r < 0) {
            return r;
        }
        /* Beyond the ESSIV cipher's block the IV is zero padded. */
        if (g->essiv_block < sizeof(block)) {
            memset(block + g->essiv_block, 0, sizeof(block) - g->essiv_block);
        }
        break;
    default:
        return -EINVAL;
    }
    if (ivlen <= sizeof(block)) {
        memcpy(iv, block, ivlen);
    } else {
        memcpy(iv, block, sizeof(block));
        memset(iv + sizeof(block), 0, ivlen - sizeof(block));
    }
    return 0;
}
