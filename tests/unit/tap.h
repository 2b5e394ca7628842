/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A minimal TAP producer for the unit tests: `ok(cond, fmt, ...)`, then
 * `return tap_done();` from main.  meson runs the binaries with protocol
 * 'tap', so every assertion is counted.
 */
#ifndef VIMG_TAP_H
#define VIMG_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int __attribute__((format(printf, 2, 3)))
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    tap_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond) {
        tap_failed++;
    }
    return cond;
}

/* Compare two byte buffers, printing the first difference on failure. */
static inline int
ok_mem(const void *a, const void *b, size_t len, const char *what)
{
    const unsigned char *x = a, *y = b;
    size_t i;

    for (i = 0; i < len; i++) {
        if (x[i] != y[i]) {
            printf("# %s: first difference at byte %zu: %02x != %02x\n",
                   what, i, x[i], y[i]);
            return ok(0, "%s", what);
        }
    }
    return ok(1, "%s", what);
}

/* Compare strings. */
static inline int
ok_str(const char *got, const char *want, const char *what)
{
    int eq = got && want && strcmp(got, want) == 0;

    if (!eq) {
        printf("# %s: got '%s', want '%s'\n", what, got ? got : "(null)",
               want ? want : "(null)");
    }
    return ok(eq, "%s", what);
}

static inline int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

/* Decode a hex string (whitespace ignored) into @out; returns bytes written. */
static inline size_t
hex2bin(const char *hex, unsigned char *out, size_t max)
{
    size_t n = 0;
    int hi = -1;

    for (; *hex && n < max; hex++) {
        int v;
        if (*hex >= '0' && *hex <= '9') v = *hex - '0';
        else if (*hex >= 'a' && *hex <= 'f') v = *hex - 'a' + 10;
        else if (*hex >= 'A' && *hex <= 'F') v = *hex - 'A' + 10;
        else continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

#endif /* VIMG_TAP_H */
