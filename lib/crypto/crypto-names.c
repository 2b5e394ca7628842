/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Algorithm tables of the crypto layer: the enum <-> string mappings for
 * qemu's QAPI spellings ("aes-256", "xts", "plain64", "sha256") and the LUKS1
 * header spellings (cipher family "aes" + key bytes), plus the static
 * properties of each algorithm (key, block, digest and IV lengths).  Nothing
 * here depends on the backend; backend-gcrypt.c maps the enums to libgcrypt.
 */
#include <string.h>

#include "crypto/crypto.h"

struct cipher_info {
    const char *qapi;      /* "aes-256" */
    const char *family;    /* "aes" (LUKS cipher name) */
    size_t key_len;        /* bytes, for one key (not doubled for XTS) */
    size_t block_len;
};

static const struct cipher_info ciphers[CRYPTO_CIPHER__MAX] = {
    [CRYPTO_CIPHER_AES_128] = { "aes-128", "aes", 16, 16 },
    [CRYPTO_CIPHER_AES_192] = { "aes-192", "aes", 24, 16 },
    [CRYPTO_CIPHER_AES_256] = { "aes-256", "aes", 32, 16 },
    [CRYPTO_CIPHER_SERPENT_128] = { "serpent-128", "serpent", 16, 16 },
    [CRYPTO_CIPHER_SERPENT_192] = { "serpent-192", "serpent", 24, 16 },
    [CRYPTO_CIPHER_SERPENT_256] = { "serpent-256", "serpent", 32, 16 },
    [CRYPTO_CIPHER_TWOFISH_128] = { "twofish-128", "twofish", 16, 16 },
    [CRYPTO_CIPHER_TWOFISH_192] = { "twofish-192", "twofish", 24, 16 },
    [CRYPTO_CIPHER_TWOFISH_256] = { "twofish-256", "twofish", 32, 16 },
    [CRYPTO_CIPHER_CAST5_128] = { "cast5-128", "cast5", 16, 8 },
};

static const char *const mode_names[CRYPTO_MODE__MAX] = {
    [CRYPTO_MODE_ECB] = "ecb",
    [CRYPTO_MODE_CBC] = "cbc",
    [CRYPTO_MODE_XTS] = "xts",
    [CRYPTO_MODE_CTR] = "ctr",
};

struct hash_info {
    const char *name;
    size_t len;
};

static const struct hash_info hashes[CRYPTO_HASH__MAX] = {
    [CRYPTO_HASH_MD5] = { "md5", 16 },
    [CRYPTO_HASH_SHA1] = { "sha1", 20 },
    [CRYPTO_HASH_SHA224] = { "sha224", 28 },
    [CRYPTO_HASH_SHA256] = { "sha256", 32 },
    [CRYPTO_HASH_SHA384] = { "sha384", 48 },
    [CRYPTO_HASH_SHA512] = { "sha512", 64 },
    [CRYPTO_HASH_RIPEMD160] = { "ripemd160", 20 },
};

static const char *const ivgen_names[CRYPTO_IVGEN__MAX] = {
    [CRYPTO_IVGEN_PLAIN] = "plain",
    [CRYPTO_IVGEN_PLAIN64] = "plain64",
    [CRYPTO_IVGEN_ESSIV] = "essiv",
};

/* ---- parsing ---- */

int
crypto_cipher_alg_parse(const char *qapi_name)
{
    if (!qapi_name) {
        return -1;
    }
    for (int i = 0; i < CRYPTO_CIPHER__MAX; i++) {
        if (strcmp(ciphers[i].qapi, qapi_name) == 0) {
            return i;
        }
    }
    return -1;
}

static int
parse_name(const char *const *names, int n, const char *name)
{
    if (!name) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

int
crypto_cipher_mode_parse(const char *name)
{
    return parse_name(mode_names, CRYPTO_MODE__MAX, name);
}

int
crypto_hash_alg_parse(const char *name)
{
    if (!name) {
        return -1;
    }
    for (int i = 0; i < CRYPTO_HASH__MAX; i++) {
        if (strcmp(hashes[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

int
crypto_ivgen_alg_parse(const char *name)
{
    return parse_name(ivgen_names, CRYPTO_IVGEN__MAX, name);
}

/* ---- names ---- */

const char *
crypto_cipher_alg_name(enum crypto_cipher_alg a)
{
    return (unsigned)a < CRYPTO_CIPHER__MAX ? ciphers[a].qapi : NULL;
}

const char *
crypto_cipher_mode_name(enum crypto_cipher_mode m)
{
    return (unsigned)m < CRYPTO_MODE__MAX ? mode_names[m] : NULL;
}

const char *
crypto_hash_alg_name(enum crypto_hash_alg h)
{
    return (unsigned)h < CRYPTO_HASH__MAX ? hashes[h].name : NULL;
}

const char *
crypto_ivgen_alg_name(enum crypto_ivgen_alg g)
{
    return (unsigned)g < CRYPTO_IVGEN__MAX ? ivgen_names[g] : NULL;
}

const char *
crypto_cipher_family(enum crypto_cipher_alg a)
{
    return (unsigned)a < CRYPTO_CIPHER__MAX ? ciphers[a].family : NULL;
}

int
crypto_cipher_alg_from_family(const char *family, size_t key_bytes)
{
    if (!family) {
        return -1;
    }
    for (int i = 0; i < CRYPTO_CIPHER__MAX; i++) {
        if (strcmp(ciphers[i].family, family) == 0 &&
            ciphers[i].key_len == key_bytes) {
            return i;
        }
    }
    return -1;
}

/* ---- static properties ---- */

size_t
crypto_hash_len(enum crypto_hash_alg h)
{
    return (unsigned)h < CRYPTO_HASH__MAX ? hashes[h].len : 0;
}

size_t
crypto_cipher_key_len(enum crypto_cipher_alg a)
{
    return (unsigned)a < CRYPTO_CIPHER__MAX ? ciphers[a].key_len : 0;
}

size_t
crypto_cipher_block_len(enum crypto_cipher_alg a)
{
    return (unsigned)a < CRYPTO_CIPHER__MAX ? ciphers[a].block_len : 0;
}

bool
crypto_cipher_mode_ok(enum crypto_cipher_alg a, enum crypto_cipher_mode m)
{
    if ((unsigned)a >= CRYPTO_CIPHER__MAX || (unsigned)m >= CRYPTO_MODE__MAX) {
        return false;
    }
    /* XTS is defined over 128-bit blocks only (IEEE 1619). */
    if (m == CRYPTO_MODE_XTS && ciphers[a].block_len != 16) {
        return false;
    }
    return true;
}

size_t
crypto_cipher_iv_len(enum crypto_cipher_alg a, enum crypto_cipher_mode m)
{
    if (!crypto_cipher_mode_ok(a, m) || m == CRYPTO_MODE_ECB) {
        return 0;
    }
    return ciphers[a].block_len;
}
