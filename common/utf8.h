/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VIMG_UTF8_H
#define VIMG_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/** utf8_valid - strict UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

#endif /* VIMG_UTF8_H */
