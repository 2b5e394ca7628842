/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the legacy qcow AES encryption (lib/blockcrypt/qcowaes.c):
 * key derivation (password bytes up to NUL, 16 at most, zero padded), and
 * AES-128-CBC per 512-byte sector with IV = LE64(sector) || 0^8.
 *
 * The expected ciphertexts were produced independently with
 * `openssl enc -aes-128-cbc -nopad -K <key> -iv <LE64(sector)||0^8>`, and
 * two come from an image written by the real qemu-io 7.2
 * (password "123456": 0xab bytes at guest sector 2, zeroes at sector 0).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blockcrypt/qcowaes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "tap.h"

static void
test_derive(void)
{
    uint8_t key[QCOWAES_KEY_LEN], want[QCOWAES_KEY_LEN];

    memset(want, 0, sizeof(want));
    memcpy(want, "123456", 6);
    qcowaes_derive_key("123456", 6, key);
    ok_mem(key, want, sizeof(key), "\"123456\" -> 31..36 + 10 zero bytes");

    qcowaes_derive_key("0123456789abcdefGHIJ", 20, key);
    ok_mem(key, "0123456789abcdef", 16, "long password truncated to 16 bytes");

    memset(want, 0, sizeof(want));
    memcpy(want, "ab", 2);
    qcowaes_derive_key("ab\0cd", 5, key);
    ok_mem(key, want, sizeof(key), "bytes after a NUL are ignored");

    memset(want, 0, sizeof(want));
    memset(key, 0xff, sizeof(key));
    qcowaes_derive_key("", 0, key);
    ok_mem(key, want, sizeof(key), "empty password -> all-zero key");

    memset(want, 0, sizeof(want));
    memcpy(want, "abc", 3);
    qcowaes_derive_key("abcdef", 3, key);
    ok_mem(key, want, sizeof(key), "only @len bytes are used");
}

static void
test_vectors(void)
{
    struct qcowaes *h = NULL;
    struct vimg_error *err = NULL;
    uint8_t buf[1024], orig[1024], want[32], digest[32];
    size_t i;
    int r;

    r = qcowaes_new("123456", 6, &h, &err);
    ok(r == 0 && h, "qcowaes_new(\"123456\")");
    if (!h) {
        vimg_error_free(err);
        return;
    }

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 7);
    }
    memcpy(orig, buf, sizeof(buf));
    r = qcowaes_encrypt(h, 5, buf, sizeof(buf));
    ok(r == 0, "encrypt two sectors at sector 5");
    hex2bin("897c5dca68881ef71d254b0f49088eb5bcad40a212e3f9ed4cc07954c319ef83",
            want, sizeof(want));
    ok_mem(buf, want, 32, "sector 5 (IV 05 00.. 00) matches openssl");
    hex2bin("3e2d39c840d107c14f62cbfc39af9bc30db8dd8d62ce4028af518872df17bc7b",
            want, sizeof(want));
    ok_mem(buf + 512, want, 32,
           "sector 6 restarts CBC with IV 06 00.. (matches openssl)");
    crypto_hash(CRYPTO_HASH_SHA256, buf, sizeof(buf), digest);
    hex2bin("06580ad20ab7b660c69d99cd74535396b797f4d5b32b2f3ab0a05d70b552e691",
            want, sizeof(want));
    ok_mem(digest, want, 32, "sha256 of both ciphertext sectors matches");

    r = qcowaes_decrypt(h, 5, buf, sizeof(buf));
    ok(r == 0, "decrypt");
    ok_mem(buf, orig, sizeof(buf), "decrypt(encrypt(x)) == x");

    /* Sector numbers are little-endian in the IV. */
    memcpy(buf, orig, 512);
    r = qcowaes_encrypt(h, UINT64_C(0x0102030405060708), buf, 512);
    hex2bin("721113eb17f1e3fa5718351dbfc832d4824f652b6bfe97cb002bf3f7a74ca5d2",
            want, sizeof(want));
    ok(r == 0, "encrypt at a 64-bit sector number");
    ok_mem(buf, want, 32, "IV = LE64(0x0102030405060708) matches openssl");

    /* Ciphertext taken from an image written by qemu-io. */
    memset(buf, 0xab, 512);
    qcowaes_encrypt(h, 2, buf, 512);
    hex2bin("7efc22cbe3fee47eb2228fd715486e1181b39bad87c642ca7257cbc9a0105527",
            want, sizeof(want));
    ok_mem(buf, want, 32, "0xab at guest sector 2 equals qemu-io's ciphertext");
    memset(buf, 0, 512);
    qcowaes_encrypt(h, 0, buf, 512);
    hex2bin("5a0e5cce653a50cdfbdf4535f8f1f02b118f6fb5739c5cb77c02553ab8f07e55",
            want, sizeof(want));
    ok_mem(buf, want, 32,
           "zero sector 0 equals qemu's encrypted-zero COW fill");

    /* Lengths must be whole sectors. */
    ok(qcowaes_encrypt(h, 0, buf, 100) == -EINVAL,
       "encrypt of 100 bytes: -EINVAL");
    ok(qcowaes_decrypt(h, 0, buf, 513) == -EINVAL,
       "decrypt of 513 bytes: -EINVAL");
    ok(qcowaes_encrypt(h, 0, buf, 0) == 0, "empty request is fine");
    ok(qcowaes_encrypt(NULL, 0, buf, 512) == -EINVAL, "NULL handle: -EINVAL");
    qcowaes_free(h);
}

static void
test_long_password(void)
{
    struct qcowaes *a = NULL, *b = NULL;
    uint8_t x[512], y[512], want[32], digest[32];

    ok(qcowaes_new("0123456789abcdefGHIJ", 20, &a, NULL) == 0,
       "qcowaes_new with a 20-byte password");
    ok(qcowaes_new("0123456789abcdef", 16, &b, NULL) == 0,
       "qcowaes_new with its 16-byte prefix");
    if (!a || !b) {
        qcowaes_free(a);
        qcowaes_free(b);
        return;
    }
    memset(x, 0, sizeof(x));
    memset(y, 0, sizeof(y));
    qcowaes_encrypt(a, 0, x, sizeof(x));
    qcowaes_encrypt(b, 0, y, sizeof(y));
    ok_mem(x, y, sizeof(x), "only the first 16 bytes of the password count");
    hex2bin("0b9b15da4b44a0f5151dcfc4c01f35d5b9fd559d606858e71b57d622d07b2611",
            want, sizeof(want));
    ok_mem(x, want, 32, "16-byte key, zero sector 0 matches openssl");
    crypto_hash(CRYPTO_HASH_SHA256, x, sizeof(x), digest);
    hex2bin("884a5d1dbac304481b6417c72b4184bc997d78055321d134ba0ac94eab866bd4",
            want, sizeof(want));
    ok_mem(digest, want, 32, "sha256 of that sector matches openssl");
    qcowaes_free(a);
    qcowaes_free(b);

    /* A wrong password is not detected: it decrypts to garbage. */
    ok(qcowaes_new("654321", 6, &a, NULL) == 0, "any password is accepted");
    memset(x, 0xab, sizeof(x));
    qcowaes_encrypt(a, 2, x, sizeof(x));
    hex2bin("7efc22cbe3fee47eb2228fd715486e1181b39bad87c642ca7257cbc9a0105527",
            want, sizeof(want));
    ok(memcmp(x, want, 32) != 0, "a different password gives other ciphertext");
    qcowaes_free(a);
    qcowaes_free(NULL);
}

static void
test_errors(void)
{
    struct vimg_error *err = NULL;
    struct qcowaes *h = NULL;

    ok(qcowaes_new(NULL, 4, &h, &err) == -EINVAL && !h,
       "NULL password with a length: -EINVAL");
    ok(err != NULL, "... with a message");
    vimg_error_free(err);
    ok(qcowaes_new("", 0, NULL, NULL) == -EINVAL, "NULL out: -EINVAL");
}

/* The wrong-password guard of `vimg reencrypt` (legacy AES migration). */
static void
test_looks_random(void)
{
    static uint8_t buf[4096];
    struct qcowaes *right = NULL, *wrong = NULL;
    size_t i;

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)i;            /* every value 16 times */
    }
    ok(qcowaes_looks_random(buf, sizeof(buf)), "flat histogram: random");
    for (i = 0; i < 47; i++) {
        buf[1 + i * 80] = 0;            /* 0x00 now 63 times */
    }
    ok(qcowaes_looks_random(buf, sizeof(buf)), "63 equal bytes: random");
    buf[1 + 47 * 80] = 0;
    ok(!qcowaes_looks_random(buf, sizeof(buf)), "64 equal bytes: structured");

    memset(buf, 0, sizeof(buf));
    memcpy(buf + 1000, "hello", 5);
    ok(qcowaes_new("right", 5, &right, NULL) == 0 &&
       qcowaes_new("wrong", 5, &wrong, NULL) == 0, "two keys");
    qcowaes_encrypt(right, 8, buf, sizeof(buf));
    ok(qcowaes_looks_random(buf, sizeof(buf)), "ciphertext looks random");
    qcowaes_decrypt(wrong, 8, buf, sizeof(buf));
    ok(qcowaes_looks_random(buf, sizeof(buf)), "wrong key: random");
    qcowaes_encrypt(wrong, 8, buf, sizeof(buf));
    qcowaes_decrypt(right, 8, buf, sizeof(buf));
    ok(!qcowaes_looks_random(buf, sizeof(buf)) && buf[0] == 0 &&
       memcmp(buf + 1000, "hello", 5) == 0, "right key: structured");
    qcowaes_free(right);
    qcowaes_free(wrong);
}

int
main(void)
{
    test_derive();
    test_vectors();
    test_long_password();
    test_errors();
    test_looks_random();
    return tap_done();
}
