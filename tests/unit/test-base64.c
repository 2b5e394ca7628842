/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of common/base64.c: the RFC 4648 section 10 vectors both ways,
 * binary round trips, the strict decoder's rejections, and that decoded
 * output lives in safe memory.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "base64.h"
#include "safemem.h"
#include "tap.h"

static const struct {
    const char *plain, *b64;
} rfc4648[] = {
    { "", "" },
    { "f", "Zg==" },
    { "fo", "Zm8=" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" },
    { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" },
};

static int
dec(const char *s, uint8_t **out, size_t *len)
{
    return base64_decode(s, strlen(s), out, len);
}

int
main(void)
{
    uint8_t *out;
    size_t len, i;
    char *enc;

    for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *p = rfc4648[i].plain, *b = rfc4648[i].b64;

        enc = base64_encode((const uint8_t *)p, strlen(p));
        ok_str(enc, b, "encode RFC 4648 vector");
        free(enc);

        out = NULL;
        len = 99;
        ok(dec(b, &out, &len) == 0 && len == strlen(p),
           "decode '%s' length %zu", b, strlen(p));
        ok(out && memcmp(out, p, len) == 0, "decode '%s' content", b);
        ok(out && safe_len(out) == len, "decoded buffer is safe memory");
        safe_free(out);
    }

    /* All 256 byte values, every length 0..40, round trip. */
    {
        uint8_t bin[256];
        int good = 1;
        size_t n;

        for (i = 0; i < 256; i++) {
            bin[i] = (uint8_t)(255 - i * 7);
        }
        for (n = 0; n <= 40; n++) {
            enc = base64_encode(bin + 3, n);
            if (!enc || strlen(enc) != (n + 2) / 3 * 4 ||
                dec(enc, &out, &len) != 0 || len != n ||
                memcmp(out, bin + 3, n) != 0) {
                good = 0;
            } else {
                safe_free(out);
            }
            free(enc);
        }
        ok(good, "binary round trip for lengths 0..40");
        enc = base64_encode(bin, 256);
        ok(enc && dec(enc, &out, &len) == 0 && len == 256 &&
           memcmp(out, bin, 256) == 0, "256-byte round trip");
        safe_free(out);
        free(enc);
    }

    /* '+' and '/' of the standard alphabet (not URL-safe '-' '_'). */
    {
        const uint8_t b[3] = { 0xfb, 0xff, 0xbf };

        enc = base64_encode(b, 3);
        ok_str(enc, "+/+/", "encode uses '+' and '/'");
        free(enc);
        ok(dec("+/+/", &out, &len) == 0 && len == 3 &&
           memcmp(out, b, 3) == 0, "decode '+' and '/'");
        safe_free(out);
    }

    /* qemu's iv: 16 zero bytes. */
    ok(dec("AAAAAAAAAAAAAAAAAAAAAA==", &out, &len) == 0 && len == 16,
       "16-byte iv decodes to 16 bytes");
    safe_free(out);

    /* Strict rejections. */
    {
        static const char *const bad[] = {
            "@@@@", "Zm9v\n", "Zm 9v", "Zm9", "Z", "Zg", "Zg=", "====",
            "Z===", "Zg==Zg==", "Zm=v", "Zm9-", "Zm9_", "Zg==\n", " Zg==",
        };

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            out = (uint8_t *)"untouched";
            len = 77;
            ok(dec(bad[i], &out, &len) == -EINVAL && len == 77 &&
               strcmp((char *)out, "untouched") == 0,
               "reject bad input #%zu (%.*s...) with -EINVAL, outputs "
               "untouched", i, (int)strcspn(bad[i], "\n"), bad[i]);
        }
    }
    /* An embedded NUL is an invalid character, not a terminator. */
    ok(base64_decode("Zg\0=", 4, &out, &len) == -EINVAL,
       "reject embedded NUL");

    return tap_done();
}
