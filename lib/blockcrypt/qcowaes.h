/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Legacy qcow AES block encryption (qcow version 1, and qcow2 with
 * crypt_method 1), as QEMU 7.2 reads and writes it (qemu-facts.md section 2).
 *
 * The key is the secret itself: its bytes up to the first NUL, truncated to
 * 16 bytes and zero-padded.  Data is AES-128-CBC over 512-byte sectors; the
 * CBC chain restarts every sector with IV = LE64(sector) || 8 zero bytes,
 * where "sector" is the guest (virtual) offset / 512.
 *
 * There is no key check: a wrong password is not detected and simply
 * decrypts to garbage.  The scheme is weak (tiny key space, predictable
 * IVs, no integrity) and only kept for reading and converting old images.
 *
 * Like the other block-encryption code this does no I/O of its own.
 */
#ifndef VIMG_QCOWAES_H
#define VIMG_QCOWAES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vimg.h"

#define QCOWAES_KEY_LEN     16
#define QCOWAES_SECTOR_SIZE 512

struct qcowaes;

/**
 * qcowaes_derive_key - the 16-byte AES key for @password (@len bytes, which
 * may contain a NUL: only the bytes before it count).
 * @key: receives QCOWAES_KEY_LEN bytes.
 */
void qcowaes_derive_key(const char *password, size_t len, uint8_t *key);

/**
 * qcowaes_new - set up the cipher for @password (see qcowaes_derive_key).
 * The key is held in safe memory and wiped by qcowaes_free().
 * @out: receives the handle.
 * Return: 0, or -ENOMEM / -EINVAL (with a message in @errp).  Never -EPERM:
 * the format has no way to tell a wrong password.
 */
int qcowaes_new(const char *password, size_t len, struct qcowaes **out,
                struct vimg_error **errp);

/**
 * qcowaes_encrypt - encrypt @buf in place.
 * @sector: IV sector of the first 512 bytes (guest offset / 512); the next
 *   unit uses sector+1 and so on.
 * @len: a multiple of 512.
 * Return: 0, -EINVAL for a bad length, or a backend error.
 */
int qcowaes_encrypt(struct qcowaes *h, uint64_t sector, void *buf, size_t len);

/** qcowaes_decrypt - the inverse of qcowaes_encrypt (same rules). */
int qcowaes_decrypt(struct qcowaes *h, uint64_t sector, void *buf, size_t len);

/*
 * Legacy AES has no key check: a wrong password decrypts every sector to
 * uniformly random bytes.  A block of real data almost always has some
 * byte value far more frequent than chance (zeroes, padding, text).
 * QCOWAES_STRUCTURED_MIN is the count that proves it: in 4096 random bytes
 * each value appears 16 times on average, and 64 or more with probability
 * about 1e-19 (Poisson tail), so even 64 wrong-key blocks of 256 values
 * each pass with probability below 1e-14; real data needs only 64 equal
 * bytes in one block (1.6%, e.g. a short run of zeroes).
 */
#define QCOWAES_STRUCTURED_MIN 64

/**
 * qcowaes_looks_random - whether @buf (@len bytes) has no byte value that
 * occurs QCOWAES_STRUCTURED_MIN times or more, i.e. could be what a wrong
 * password decrypts to.
 */
bool qcowaes_looks_random(const void *buf, size_t len);

/** qcowaes_free - wipe the key and release @h (NULL is a no-op). */
void qcowaes_free(struct qcowaes *h);

#endif /* VIMG_QCOWAES_H */
