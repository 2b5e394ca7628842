/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sector encryption: a data cipher plus an IV generator applied to 512-byte
 * units (LUKS1 and qcow2 LUKS always use 512, whatever the device's sector
 * size).  The first unit of a request gets IV sector @sector, the next
 * sector+1 and so on; the number simply wraps at 2^64 (plain: at 2^32, in
 * the IV generator).
 *
 * The hot path costs one IV computation, one set-IV and one cipher call per
 * 512 bytes and never allocates.  ECB has no IV, so a whole request is one
 * cipher call.
 *
 * Thread safety: a struct crypto_sector keeps cipher state (the IV and, for
 * ESSIV, a second cipher) between calls, so one object must not be used by
 * two threads at once; give each thread its own, or serialise the calls.
 */
#include <errno.h>
#include <stdlib.h>

#include "crypto/crypto.h"

struct crypto_sector {
    struct crypto_cipher *cipher;
    struct crypto_ivgen *ivgen;
    size_t iv_len;
};

int
crypto_sector_new(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                  enum crypto_ivgen_alg g, enum crypto_hash_alg ivhash,
                  const uint8_t *key, size_t keylen,
                  struct crypto_sector **out)
{
    struct crypto_sector *s;
    int r;

    if (!out) {
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    r = crypto_cipher_new(a, m, key, keylen, &s->cipher);
    if (r == 0) {
        r = crypto_ivgen_new(g, a, m, ivhash, key, keylen, &s->ivgen);
    }
    if (r < 0) {
        crypto_sector_free(s);
        return r;
    }
    s->iv_len = crypto_cipher_iv_len(a, m);
    *out = s;
    return 0;
}

void
crypto_sector_free(struct crypto_sector *s)
{
    if (!s) {
        return;
    }
    crypto_ivgen_free(s->ivgen);
    crypto_cipher_free(s->cipher);
    free(s);
}

/* @in NULL: in place over @buf; else from @in to @buf. */
static int
sector_crypt(struct crypto_sector *s, uint64_t sector, void *buf,
             const void *in, size_t len, bool enc)
{
    uint8_t iv[CRYPTO_MAX_IV];
    uint8_t *p = buf;
    const uint8_t *q = in;
    int r;

    if (!s || (len && !buf) || len % CRYPTO_SECTOR_SIZE != 0) {
        return -EINVAL;
    }
    if (s->iv_len == 0) {
        /* ECB: no per-sector IV, one call for the whole request. */
        if (len == 0) {
            return 0;
        }
        if (in) {
            return crypto_cipher_encrypt_from(s->cipher, NULL, 0, buf, in,
                                              len);
        }
        return enc ? crypto_cipher_encrypt(s->cipher, NULL, 0, buf, len)
                   : crypto_cipher_decrypt(s->cipher, NULL, 0, buf, len);
    }
    for (size_t off = 0; off < len; off += CRYPTO_SECTOR_SIZE, sector++) {
        r = crypto_ivgen_calc(s->ivgen, sector, iv, s->iv_len);
        if (r < 0) {
            return r;
        }
        if (q) {
            r = crypto_cipher_encrypt_from(s->cipher, iv, s->iv_len, p + off,
                                           q + off, CRYPTO_SECTOR_SIZE);
        } else if (enc) {
            r = crypto_cipher_encrypt(s->cipher, iv, s->iv_len, p + off,
                                      CRYPTO_SECTOR_SIZE);
        } else {
            r = crypto_cipher_decrypt(s->cipher, iv, s->iv_len, p + off,
                                      CRYPTO_SECTOR_SIZE);
        }
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
crypto_sector_encrypt(struct crypto_sector *s, uint64_t sector, void *buf,
                      size_t len)
{
    return sector_crypt(s, sector, buf, NULL, len, true);
}

int
crypto_sector_encrypt_from(struct crypto_sector *s, uint64_t sector,
                           void *out, const void *in, size_t len)
{
    if (len && !in) {
        return -EINVAL;
    }
    return sector_crypt(s, sector, out, in, len, true);
}

int
crypto_sector_decrypt(struct crypto_sector *s, uint64_t sector, void *buf,
                      size_t len)
{
    return sector_crypt(s, sector, buf, NULL, len, false);
}
