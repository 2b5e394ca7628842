/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RFC 4648 base64 (standard alphabet, '=' padding), as glib decodes it for
 * qemu's secrets: whitespace is not accepted. */
#ifndef VIMG_BASE64_H
#define VIMG_BASE64_H

#include <stddef.h>
#include <stdint.h>

/**
 * base64_decode - decode @in (length @inlen) into a new buffer from
 * safe_alloc (it may hold secrets); *out and *outlen set on success.
 * Return: 0, -EINVAL (invalid characters or length), -ENOMEM.
 */
int base64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen);
/** base64_encode - malloc'd NUL-terminated encoding, NULL on ENOMEM. */
char *base64_encode(const uint8_t *in, size_t len);

#endif /* VIMG_BASE64_H */
