/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crypto primitives, backend-neutral (the only backend compiled is
 * libgcrypt: backend-gcrypt.c; see docs/architecture.md for the measured
 * reason).  Leaf code: every function returns 0 or a negative errno, never
 * logs, and leaves out-parameters untouched on failure.
 *
 * Thread safety: crypto_cipher, crypto_sector and ESSIV crypto_ivgen objects
 * keep per-call state and must not be used by two threads at once; create
 * one per thread.  Twofish-192 is not offered by libgcrypt and is served by
 * a built-in implementation (twofish in backend-gcrypt.c).
 *
 * Names: the enum <-> string tables (crypto-names.c) know both LUKS1 header
 * spellings ("aes" + key bytes, "xts-plain64", "sha256") and qemu's QAPI
 * spellings ("aes-256", "xts", "plain64", "sha256").
 */
#ifndef VIMG_CRYPTO_H
#define VIMG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SECTOR_SIZE 512
#define CRYPTO_MAX_KEY 64          /* largest cipher key (XTS: both halves) */
#define CRYPTO_MAX_DIGEST 64
#define CRYPTO_MAX_IV 16

enum crypto_cipher_alg {
    CRYPTO_CIPHER_AES_128, CRYPTO_CIPHER_AES_192, CRYPTO_CIPHER_AES_256,
    CRYPTO_CIPHER_SERPENT_128, CRYPTO_CIPHER_SERPENT_192, CRYPTO_CIPHER_SERPENT_256,
    CRYPTO_CIPHER_TWOFISH_128, CRYPTO_CIPHER_TWOFISH_192, CRYPTO_CIPHER_TWOFISH_256,
    CRYPTO_CIPHER_CAST5_128,
    CRYPTO_CIPHER__MAX
};

enum crypto_cipher_mode {
    CRYPTO_MODE_ECB, CRYPTO_MODE_CBC, CRYPTO_MODE_XTS, CRYPTO_MODE_CTR,
    CRYPTO_MODE__MAX
};

enum crypto_hash_alg {
    CRYPTO_HASH_MD5, CRYPTO_HASH_SHA1, CRYPTO_HASH_SHA224, CRYPTO_HASH_SHA256,
    CRYPTO_HASH_SHA384, CRYPTO_HASH_SHA512, CRYPTO_HASH_RIPEMD160,
    CRYPTO_HASH__MAX
};

enum crypto_ivgen_alg {
    CRYPTO_IVGEN_PLAIN, CRYPTO_IVGEN_PLAIN64, CRYPTO_IVGEN_ESSIV,
    CRYPTO_IVGEN__MAX
};

/* ---- names (crypto-names.c) ---- */
/** QAPI names: "aes-128".."cast5-128"; "ecb","cbc","xts","ctr";
 *  "md5".."ripemd160"; "plain","plain64","essiv".  -1 if unknown. */
int crypto_cipher_alg_parse(const char *qapi_name);
int crypto_cipher_mode_parse(const char *name);
int crypto_hash_alg_parse(const char *name);
int crypto_ivgen_alg_parse(const char *name);
const char *crypto_cipher_alg_name(enum crypto_cipher_alg a);   /* "aes-256" */
const char *crypto_cipher_mode_name(enum crypto_cipher_mode m); /* "xts" */
const char *crypto_hash_alg_name(enum crypto_hash_alg h);       /* "sha256" */
const char *crypto_ivgen_alg_name(enum crypto_ivgen_alg g);     /* "plain64" */
/** LUKS family name of a cipher: "aes", "serpent", "twofish", "cast5". */
const char *crypto_cipher_family(enum crypto_cipher_alg a);
/** Cipher from LUKS family name + key bytes (not doubled for XTS); -1 if none. */
int crypto_cipher_alg_from_family(const char *family, size_t key_bytes);

/* ---- library ---- */
/** crypto_init - initialise the backend once (thread-safe, idempotent). */
int crypto_init(void);

/* ---- hashes ---- */
size_t crypto_hash_len(enum crypto_hash_alg h);
int crypto_hash(enum crypto_hash_alg h, const void *in, size_t len,
                uint8_t *out);
/** crypto_hash2 - hash of the concatenation a || b. */
int crypto_hash2(enum crypto_hash_alg h, const void *a, size_t alen,
                 const void *b, size_t blen, uint8_t *out);
int crypto_hmac(enum crypto_hash_alg h, const void *key, size_t keylen,
                const void *in, size_t len, uint8_t *out);
/** crypto_pbkdf2 - PBKDF2-HMAC-@h (RFC 8018); -EINVAL for 0 iterations. */
int crypto_pbkdf2(enum crypto_hash_alg h, const void *pw, size_t pwlen,
                  const void *salt, size_t saltlen, uint64_t iterations,
                  uint8_t *out, size_t outlen);
/**
 * crypto_pbkdf2_rate - iterations per second of PBKDF2-@h producing
 * @outlen bytes, measured in thread CPU time (>= 1).  Never fails randomly:
 * short or zero-time runs just lead to a longer run.
 */
int crypto_pbkdf2_rate(enum crypto_hash_alg h, size_t outlen,
                       uint64_t *iters_per_sec);

/* ---- random ---- */
/** crypto_random - CSPRNG bytes (getrandom(2)). */
int crypto_random(void *buf, size_t len);

/* ---- block ciphers ---- */
struct crypto_cipher;
/** key bytes of a cipher (AES-256: 32); block size (16, or 8 for CAST5). */
size_t crypto_cipher_key_len(enum crypto_cipher_alg a);
size_t crypto_cipher_block_len(enum crypto_cipher_alg a);
/** whether the mode works with the cipher (XTS needs a 16-byte block). */
bool crypto_cipher_mode_ok(enum crypto_cipher_alg a, enum crypto_cipher_mode m);
/** IV length the mode needs: 0 for ECB, else the block size. */
size_t crypto_cipher_iv_len(enum crypto_cipher_alg a, enum crypto_cipher_mode m);
/**
 * crypto_cipher_new - @keylen must be key_len(a), or 2*key_len(a) for XTS.
 * -EINVAL on a wrong key length, -ENOTSUP for a bad alg/mode combination.
 */
int crypto_cipher_new(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                      const uint8_t *key, size_t keylen,
                      struct crypto_cipher **out);
void crypto_cipher_free(struct crypto_cipher *c);
/**
 * crypto_cipher_encrypt/decrypt - in place, one message: @iv (ivlen =
 * crypto_cipher_iv_len, may be NULL/0 for ECB) starts the chain; @len must be
 * a multiple of the block size (XTS: >= 16).
 */
int crypto_cipher_encrypt(struct crypto_cipher *c, const uint8_t *iv,
                          size_t ivlen, void *buf, size_t len);
int crypto_cipher_decrypt(struct crypto_cipher *c, const uint8_t *iv,
                          size_t ivlen, void *buf, size_t len);
/**
 * crypto_cipher_encrypt_from - the same, from @in to @out (which must not
 * overlap): saves the copy into a bounce buffer on write paths.
 */
int crypto_cipher_encrypt_from(struct crypto_cipher *c, const uint8_t *iv,
                               size_t ivlen, void *out, const void *in,
                               size_t len);

/* ---- IV generators (ivgen.c) ---- */
struct crypto_ivgen;
/**
 * crypto_ivgen_new - @cipher/@mode are the data cipher's (they fix the IV
 * length); ESSIV hashes the whole @master_key with @hash and keys a cipher
 * of the same family whose key length equals the digest length
 * (-ENOTSUP "no such cipher" otherwise, e.g. sha1 -> 20 bytes).
 */
int crypto_ivgen_new(enum crypto_ivgen_alg g, enum crypto_cipher_alg cipher,
                     enum crypto_cipher_mode mode, enum crypto_hash_alg hash,
                     const uint8_t *master_key, size_t keylen,
                     struct crypto_ivgen **out);
void crypto_ivgen_free(struct crypto_ivgen *g);
/** crypto_ivgen_calc - IV for @sector into @iv (@ivlen bytes). */
int crypto_ivgen_calc(struct crypto_ivgen *g, uint64_t sector, uint8_t *iv,
                      size_t ivlen);

/* ---- sector encryption (sector.c): cipher + ivgen over 512-byte units ---- */
struct crypto_sector;
int crypto_sector_new(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                      enum crypto_ivgen_alg g, enum crypto_hash_alg ivhash,
                      const uint8_t *key, size_t keylen,
                      struct crypto_sector **out);
void crypto_sector_free(struct crypto_sector *s);
/**
 * crypto_sector_encrypt/decrypt - in place over @len bytes (a multiple of
 * 512); the first 512 bytes use IV sector @sector, the next sector+1, ...
 */
int crypto_sector_encrypt(struct crypto_sector *s, uint64_t sector,
                          void *buf, size_t len);
int crypto_sector_decrypt(struct crypto_sector *s, uint64_t sector,
                          void *buf, size_t len);
/** crypto_sector_encrypt_from - from @in to @out (not overlapping). */
int crypto_sector_encrypt_from(struct crypto_sector *s, uint64_t sector,
                               void *out, const void *in, size_t len);

/* ---- LUKS anti-forensic splitter (afsplit.c) ---- */
/**
 * crypto_afsplit - split @in (@blocksize bytes) into @stripes*@blocksize
 * bytes at @out (random stripes 0..n-2, diffusion with @h as in LUKS1).
 */
int crypto_afsplit(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
                   const uint8_t *in, uint8_t *out);
/** crypto_afmerge - the inverse: @in holds stripes*blocksize bytes. */
int crypto_afmerge(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
                   const uint8_t *in, uint8_t *out);

/* ---- Argon2 (argon2.c; RFC 9106, version 0x13) ---- */
enum crypto_argon2_type {
    CRYPTO_ARGON2D, CRYPTO_ARGON2I, CRYPTO_ARGON2ID
};

#define CRYPTO_ARGON2_MAX_MEMORY_KIB (4u * 1024 * 1024)   /* 4 GiB, as LUKS2 */
#define CRYPTO_ARGON2_MAX_LANES 16

/**
 * crypto_argon2 - Argon2d/i/id of @pw with @salt (>= 8 bytes), optional
 * @secret (K) and associated data @ad (X), @t_cost passes over @m_cost_kib
 * KiB in @lanes lanes, writing @outlen (>= 4) bytes to @out.
 * Return: 0; -EINVAL for parameters out of range (t_cost 0, lanes 0 or
 * > CRYPTO_ARGON2_MAX_LANES, memory < 8 * lanes or
 * > CRYPTO_ARGON2_MAX_MEMORY_KIB); -ENOMEM; -EIO on a backend failure.
 */
int crypto_argon2(enum crypto_argon2_type type, const void *pw, size_t pwlen,
                  const void *salt, size_t saltlen, const void *secret,
                  size_t secretlen, const void *ad, size_t adlen,
                  uint32_t t_cost, uint32_t m_cost_kib, uint32_t lanes,
                  uint8_t *out, size_t outlen);

#endif /* VIMG_CRYPTO_H */
