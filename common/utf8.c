/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strict UTF-8 validation (RFC 3629 / Unicode "well-formed" sequences):
 * no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF and no truncated sequences.  NUL bytes are valid characters; the
 * caller decides what a NUL means.
 */
#include "config.h"

#include <stdint.h>

#include "utf8.h"

static bool
is_cont(uint8_t c)
{
    return (c & 0xc0) == 0x80;
}

bool
utf8_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;   /* allowed range of the 2nd byte */

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) {
                lo = 0xa0;              /* overlong below U+0800 */
            } else if (c == 0xed) {
                hi = 0x9f;              /* surrogates */
            }
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) {
                lo = 0x90;              /* overlong below U+10000 */
            } else if (c == 0xf4) {
                hi = 0x8f;              /* above U+10FFFF */
            }
        } else {
            return false;               /* 0x80..0xc1, 0xf5..0xff */
        }
        if (len - i - 1 < need) {
            return false;
        }
        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= need; k++) {
            if (!is_cont(p[i + k])) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
}
