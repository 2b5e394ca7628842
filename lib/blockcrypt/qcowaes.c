/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Legacy qcow AES encryption: key derivation (the password is the key) and
 * AES-128-CBC per 512-byte sector with a plain64 IV.  See qcowaes.h for the
 * scheme and its weaknesses.
 *
 * The handle lives in safe memory (it holds the key); the backend cipher
 * object keeps its own copy of the key schedule and is destroyed on free.
 * One handle must not be used by two threads at once (the cipher object
 * keeps per-call IV state).
 */
#include <errno.h>
#include <string.h>

#include "blockcrypt/qcowaes.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "safemem.h"

struct qcowaes {
    uint8_t key[QCOWAES_KEY_LEN];
    struct crypto_cipher *cipher;
};

void
qcowaes_derive_key(const char *password, size_t len, uint8_t *key)
{
    size_t n = 0;

    /* Bytes up to the first NUL, at most 16 of them, then zeros. */
    while (n < len && n < QCOWAES_KEY_LEN && password[n] != '\0') {
        n++;
    }
    memset(key, 0, QCOWAES_KEY_LEN);
    if (n > 0) {
        memcpy(key, password, n);
    }
}

int
qcowaes_new(const char *password, size_t len, struct qcowaes **out,
            struct vimg_error **errp)
{
    struct qcowaes *h;
    int r;

    if (!out || (!password && len > 0)) {
        return vimg_error_set(errp, -EINVAL, "Invalid AES key request");
    }
    r = crypto_init();
    if (r < 0) {
        return vimg_error_errno(errp, r, "Could not initialise the crypto "
                                "library");
    }
    h = safe_alloc(sizeof(*h));
    if (!h) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    qcowaes_derive_key(password, len, h->key);
    r = crypto_cipher_new(CRYPTO_CIPHER_AES_128, CRYPTO_MODE_CBC, h->key,
                          sizeof(h->key), &h->cipher);
    if (r < 0) {
        qcowaes_free(h);
        return vimg_error_errno(errp, r, "Could not create the AES-128-CBC "
                                "cipher");
    }
    *out = h;
    return 0;
}

static int
sector_crypt(struct qcowaes *h, uint64_t sector, void *buf, size_t len,
             bool enc)
{
    uint8_t iv[16];
    uint8_t *p = buf;
    size_t off;
    int r;

    if (!h || (len && !buf) || len % QCOWAES_SECTOR_SIZE != 0) {
        return -EINVAL;
    }
    memset(iv, 0, sizeof(iv));
    for (off = 0; off < len; off += QCOWAES_SECTOR_SIZE, sector++) {
        st_le64(iv, sector);
        if (enc) {
            r = crypto_cipher_encrypt(h->cipher, iv, sizeof(iv), p + off,
                                      QCOWAES_SECTOR_SIZE);
        } else {
            r = crypto_cipher_decrypt(h->cipher, iv, sizeof(iv), p + off,
                                      QCOWAES_SECTOR_SIZE);
        }
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
qcowaes_encrypt(struct qcowaes *h, uint64_t sector, void *buf, size_t len)
{
    return sector_crypt(h, sector, buf, len, true);
}

int
qcowaes_decrypt(struct qcowaes *h, uint64_t sector, void *buf, size_t len)
{
    return sector_crypt(h, sector, buf, len, false);
}

bool
qcowaes_looks_random(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t count[256] = {0};
    size_t i;

    for (i = 0; i < len; i++) {
        if (++count[p[i]] >= QCOWAES_STRUCTURED_MIN) {
            return false;
        }
    }
    return true;
}

void
qcowaes_free(struct qcowaes *h)
{
    if (!h) {
        return;
    }
    crypto_cipher_free(h->cipher);
    safe_free(h);                /* wipes the key */
}
