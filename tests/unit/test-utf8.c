/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of common/utf8.c: valid sequences at every length boundary, and
 * the strict rejections (overlongs, surrogates, > U+10FFFF, stray
 * continuation bytes, truncation), following the classic UTF-8 decoder
 * stress cases.
 */
#include "config.h"

#include "tap.h"
#include "utf8.h"

static int
valid_hex(const char *hex)
{
    unsigned char b[64];
    size_t n = hex2bin(hex, b, sizeof(b));

    return utf8_valid((const char *)b, n);
}

int
main(void)
{
    static const struct {
        const char *hex, *what;
    } good[] = {
        { "", "empty" },
        { "61 62 63", "ASCII" },
        { "00", "NUL is a valid character" },
        { "7f", "U+007F" },
        { "c2 80", "U+0080 (first 2-byte)" },
        { "df bf", "U+07FF (last 2-byte)" },
        { "e0 a0 80", "U+0800 (first 3-byte)" },
        { "ed 9f bf", "U+D7FF (before surrogates)" },
        { "ee 80 80", "U+E000 (after surrogates)" },
        { "ef bf bd", "U+FFFD" },
        { "ef bf bf", "U+FFFF" },
        { "f0 90 80 80", "U+10000 (first 4-byte)" },
        { "f4 8f bf bf", "U+10FFFF (last code point)" },
        { "70 c3 a4 73 73 77 c3 b6 72 74", "p\u00e4sswort" },
        { "e2 82 ac 31 30", "euro sign then digits" },
        { "f0 9f 94 91", "emoji U+1F511" },
    };
    static const struct {
        const char *hex, *what;
    } bad[] = {
        { "80", "lone continuation byte" },
        { "bf", "lone continuation byte 0xbf" },
        { "c0 80", "overlong NUL (c0 80)" },
        { "c1 bf", "overlong U+007F" },
        { "e0 80 80", "overlong 3-byte NUL" },
        { "e0 9f bf", "overlong U+07FF in 3 bytes" },
        { "f0 80 80 80", "overlong 4-byte NUL" },
        { "f0 8f bf bf", "overlong U+FFFF in 4 bytes" },
        { "ed a0 80", "high surrogate U+D800" },
        { "ed bf bf", "low surrogate U+DFFF" },
        { "ed a0 bd ed b2 a9", "surrogate pair (CESU-8)" },
        { "f4 90 80 80", "U+110000" },
        { "f5 80 80 80", "lead byte f5" },
        { "f8 88 80 80 80", "5-byte form" },
        { "fc 84 80 80 80 80", "6-byte form" },
        { "fe", "byte fe" },
        { "ff", "byte ff" },
        { "c2", "truncated 2-byte" },
        { "e2 82", "truncated 3-byte" },
        { "f0 9f 94", "truncated 4-byte" },
        { "61 e2 82", "truncated at the end after ASCII" },
        { "c2 41", "continuation replaced by ASCII" },
        { "e2 28 a1", "bad 2nd byte of 3-byte" },
        { "e2 82 28", "bad 3rd byte of 3-byte" },
        { "f0 9f 28 91", "bad 3rd byte of 4-byte" },
        { "f0 9f 94 c0", "bad 4th byte of 4-byte" },
        { "ff 61 62", "invalid lead followed by ASCII" },
    };
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(valid_hex(good[i].hex), "valid: %s", good[i].what);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!valid_hex(bad[i].hex), "invalid: %s", bad[i].what);
    }
    /* The length is honoured: a valid prefix of an invalid buffer. */
    ok(utf8_valid("ab\xff", 2), "length limits the check");
    ok(!utf8_valid("ab\xff", 3), "byte inside the length is checked");
    ok(!utf8_valid("\xe2\x82\xac", 2), "sequence cut by the length");
    return tap_done();
}
