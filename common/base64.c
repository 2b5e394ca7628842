/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RFC 4648 base64 with the standard alphabet and '=' padding.  Decoding is
 * strict: only alphabet characters, a length that is a multiple of four and
 * at most two '=' at the very end are accepted (no whitespace, no missing
 * padding).  qemu only rejects characters outside the alphabet and lets
 * glib silently drop a trailing partial group; inputs that qemu would have
 * truncated are an error here instead.  Decoded bytes go to safe_alloc()
 * memory because they are usually secrets.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "base64.h"
#include "safemem.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of one alphabet character, -1 for '=' or anything else. */
static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int
base64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    size_t pad = 0, n, i, o = 0;
    uint8_t *buf;

    if (inlen % 4 != 0) {
        return -EINVAL;
    }
    if (inlen >= 1 && in[inlen - 1] == '=') {
        pad++;
        if (in[inlen - 2] == '=') {
            pad++;
        }
    }
    /* Every character before the padding must be in the alphabet. */
    for (i = 0; i < inlen - pad; i++) {
        if (b64_value((unsigned char)in[i]) < 0) {
            return -EINVAL;
        }
    }
    n = inlen / 4 * 3 - pad;
    buf = safe_alloc(n);
    if (!buf) {
        return -ENOMEM;
    }
    for (i = 0; i < inlen; i += 4) {
        uint32_t v = 0;
        size_t j;

        for (j = 0; j < 4; j++) {
            int c = b64_value((unsigned char)in[i + j]);

            v = v << 6 | (uint32_t)(c < 0 ? 0 : c);
        }
        buf[o++] = (uint8_t)(v >> 16);
        if (o < n) {
            buf[o++] = (uint8_t)(v >> 8);
        }
        if (o < n) {
            buf[o++] = (uint8_t)v;
        }
    }
    *out = buf;
    *outlen = n;
    return 0;
}

char *
base64_encode(const uint8_t *in, size_t len)
{
    size_t groups = len / 3 + (len % 3 != 0);
    size_t i, o = 0;
    char *s;

    if (groups > (SIZE_MAX - 1) / 4) {
        return NULL;
    }
    s = malloc(groups * 4 + 1);
    if (!s) {
        return NULL;
    }
    for (i = 0; i < len; i += 3) {
        size_t rest = len - i;
        uint32_t v = (uint32_t)in[i] << 16;

        if (rest > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (rest > 2) {
            v |= in[i + 2];
        }
        s[o++] = b64_alphabet[v >> 18 & 63];
        s[o++] = b64_alphabet[v >> 12 & 63];
        s[o++] = rest > 1 ? b64_alphabet[v >> 6 & 63] : '=';
        s[o++] = rest > 2 ? b64_alphabet[v & 63] : '=';
    }
    s[o] = '\0';
    return s;
}
