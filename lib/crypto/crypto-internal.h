/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internals of lib/crypto shared with the unit tests and benchmarks (not
 * used by the rest of the library).
 */
#ifndef VIMG_CRYPTO_INTERNAL_H
#define VIMG_CRYPTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

/**
 * crypto_pbkdf2_portable - PBKDF2 through libgcrypt only, bypassing the
 * SHA-extension fast path that crypto_pbkdf2() takes for SHA-256 on CPUs
 * that have it (and without the fuzzing iteration cap).
 * @h: hash; @pw, @pwlen: password; @salt, @saltlen: salt (may be empty);
 * @iterations: >= 1; @out, @outlen: derived key.
 *
 * Lets tests cross-check the two implementations and the benchmark time
 * both.  Return: 0, or -EINVAL for bad arguments, -ENOMEM, -EIO.
 */
int crypto_pbkdf2_portable(enum crypto_hash_alg h, const void *pw,
                           size_t pwlen, const void *salt, size_t saltlen,
                           uint64_t iterations, uint8_t *out, size_t outlen);

/**
 * crypto_cipher_new_soft - like crypto_cipher_new(), but with the built-in
 * software Twofish (the one Twofish-192 always uses, since libgcrypt lacks
 * that key size) for any Twofish key size, so tests can check it against
 * libgcrypt's Twofish-128/256.  -ENOTSUP for other ciphers.
 */
int crypto_cipher_new_soft(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                           const uint8_t *key, size_t keylen,
                           struct crypto_cipher **out);

/**
 * crypto_kdf_scratch - while on (per thread), libgcrypt's ordinary
 * allocations come from safe_alloc_unlocked() (MADV_DONTDUMP, wiped on
 * free, not mlocked); crypto_argon2() turns it on around the KDF so its
 * working memory never reaches a core dump.  No effect if the application
 * initialised libgcrypt itself.
 */
void crypto_kdf_scratch(bool on);

#endif /* VIMG_CRYPTO_INTERNAL_H */
