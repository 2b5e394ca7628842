/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of lib/opts.c: QemuOpts parsing (",," escapes, implied key,
 * flags, duplicates, errors), take/unused bookkeeping and the typed
 * accessors.  Expected size values and messages were taken from
 * `qemu-img create -f raw -o size=...` and qcow2 -o options of QEMU 7.2.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "tap.h"

static const char size_msg[] =
    "Parameter 'size' expects a non-negative number below 2^64\n"
    "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, "
    "peta-\nand exabytes, respectively.";

static struct vimg_opts *
parse(const char *s, const char *implied, int *r, struct vimg_error **err)
{
    struct vimg_opts *o = vimg_opts_new();

    *r = vimg_opts_parse(o, s, implied, err);
    return o;
}

static void
test_parse(void)
{
    struct vimg_error *err = NULL;
    struct vimg_opts *o;
    int r;

    o = parse("a=1,b=two,c=", NULL, &r, &err);
    ok(r == 0 && vimg_opts_count(o) == 3, "three keys");
    ok_str(vimg_opts_get(o, "a"), "1", "a=1");
    ok_str(vimg_opts_get(o, "b"), "two", "b=two");
    ok_str(vimg_opts_get(o, "c"), "", "empty value");
    ok(vimg_opts_get(o, "d") == NULL, "absent key is NULL");
    ok_str(vimg_opts_key(o, 1), "b", "key by index keeps order");
    ok_str(vimg_opts_value(o, 2), "", "value by index");
    ok(vimg_opts_key(o, 3) == NULL && vimg_opts_value(o, 3) == NULL,
       "index out of range");
    vimg_opts_free(o);

    o = parse("data=a,,b,,,,c,id=x", NULL, &r, &err);
    ok_str(vimg_opts_get(o, "data"), "a,b,,c", "',,' is a literal comma");
    ok_str(vimg_opts_get(o, "id"), "x", "key after escaped commas");
    vimg_opts_free(o);

    o = parse("compat=1.1,,foo=bar", NULL, &r, &err);
    ok(r == 0 && vimg_opts_count(o) == 1, "escaped comma hides '=' too");
    ok_str(vimg_opts_get(o, "compat"), "1.1,foo=bar", "qemu's example");
    vimg_opts_free(o);

    o = parse("x=a=b", NULL, &r, &err);
    ok_str(vimg_opts_get(o, "x"), "a=b", "'=' inside a value");
    vimg_opts_free(o);

    o = parse("secret,id=s0,data=pw", "qom-type", &r, &err);
    ok(r == 0, "implied key parses");
    ok_str(vimg_opts_get(o, "qom-type"), "secret", "implied key value");
    ok_str(vimg_opts_get(o, "id"), "s0", "id after implied key");
    vimg_opts_free(o);

    o = parse("qom-type=secret,id=s0", "qom-type", &r, &err);
    ok_str(vimg_opts_get(o, "qom-type"), "secret",
           "implied key may be spelled out");
    vimg_opts_free(o);

    o = parse("lazy_refcounts,nocow,nonocow,id=1", NULL, &r, &err);
    ok(r == 0, "bare words parse");
    ok_str(vimg_opts_get(o, "lazy_refcounts"), "on", "bare key means on");
    ok_str(vimg_opts_get(o, "cow"), "off", "noKEY means KEY=off (qemu)");
    ok_str(vimg_opts_get(o, "nocow"), "off", "nonoKEY means noKEY=off");
    vimg_opts_free(o);

    o = parse("size=1k,size=2k", NULL, &r, &err);
    ok(r == 0 && vimg_opts_count(o) == 1, "duplicate key kept once");
    ok_str(vimg_opts_get(o, "size"), "2k", "later duplicate wins");
    vimg_opts_free(o);

    o = parse("a=1,", NULL, &r, &err);
    ok(r == 0 && vimg_opts_count(o) == 1, "trailing comma ignored");
    vimg_opts_free(o);

    o = parse("", NULL, &r, &err);
    ok(r == 0 && vimg_opts_count(o) == 0, "empty string is an empty list");
    vimg_opts_free(o);

    /* Errors; the list stays unchanged. */
    o = vimg_opts_new();
    vimg_opts_set(o, "keep", "me");
    r = vimg_opts_parse(o, "a=1,=5", NULL, &err);
    ok(r == -EINVAL, "empty key is -EINVAL");
    ok_str(vimg_error_message(err), "Invalid parameter ''", "qemu's text");
    ok(vimg_opts_count(o) == 1 && vimg_opts_get(o, "a") == NULL,
       "failed parse adds nothing");
    vimg_error_free(err);
    err = NULL;
    r = vimg_opts_parse(o, ",id=a", "qom-type", &err);
    ok(r == -EINVAL && err, "leading comma is an empty key");
    vimg_error_free(err);
    err = NULL;

    /* Appending to an existing list; set() replaces. */
    r = vimg_opts_parse(o, "k2=v2", NULL, &err);
    ok(r == 0 && vimg_opts_count(o) == 2, "parse appends");
    ok(vimg_opts_set(o, "keep", "new") == 0, "set existing");
    ok_str(vimg_opts_get(o, "keep"), "new", "set replaces the value");
    ok(vimg_opts_count(o) == 2, "set existing does not grow the list");
    vimg_opts_free(o);
    vimg_opts_free(NULL);
}

static void
test_unused(void)
{
    struct vimg_error *err = NULL;
    struct vimg_opts *o;
    int r;

    o = parse("key-secret=sec0,bogus=1,iter-time=10", NULL, &r, &err);
    ok_str(vimg_opts_take(o, "key-secret"), "sec0", "take returns value");
    ok(vimg_opts_take(o, "missing") == NULL, "take of an absent key");
    r = vimg_opts_check_unused(o, &err);
    ok(r == -EINVAL, "unused key is -EINVAL");
    ok_str(vimg_error_message(err), "Parameter 'bogus' is unexpected",
           "first unused key reported");
    vimg_error_free(err);
    err = NULL;

    vimg_opts_get(o, "bogus");
    ok(vimg_opts_check_unused(o, NULL) == -EINVAL, "get does not consume");
    vimg_opts_take(o, "bogus");
    r = vimg_opts_check_unused(o, &err);
    ok(r == -EINVAL && err, "iter-time still unused");
    ok_str(vimg_error_message(err), "Parameter 'iter-time' is unexpected",
           "next unused key reported");
    vimg_error_free(err);
    err = NULL;
    vimg_opts_take(o, "iter-time");
    ok(vimg_opts_check_unused(o, &err) == 0 && err == NULL,
       "all taken: no error");

    /* Re-setting a taken key makes it pending again. */
    vimg_opts_set(o, "bogus", "2");
    ok(vimg_opts_check_unused(o, NULL) == -EINVAL, "reset key is unused");
    vimg_opts_free(o);

    ok(vimg_opts_check_unused(NULL, NULL) == 0, "NULL list has no unused");
}

static void
test_bool(void)
{
    static const struct {
        const char *v;
        int want;   /* 1 true, 0 false, -1 error */
    } cases[] = {
        { "on", 1 }, { "yes", 1 }, { "true", 1 },
        { "off", 0 }, { "no", 0 }, { "false", 0 },
        /* qemu-img 7.2 takes y/n too (an invariant of fuzz-opts missed it) */
        { "y", 1 }, { "n", 0 }, { "Y", -1 },
        { "ON", -1 }, { "1", -1 }, { "", -1 }, { "foo", -1 },
    };
    struct vimg_error *err = NULL;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vimg_opts *o = vimg_opts_new();
        bool b = cases[i].want == 0;     /* opposite of the expectation */
        int r;

        vimg_opts_set(o, "lazy_refcounts", cases[i].v);
        r = opts_take_bool(o, "lazy_refcounts", &b, &err);
        if (cases[i].want < 0) {
            ok(r == -EINVAL && err &&
               strcmp(vimg_error_message(err),
                      "Parameter 'lazy_refcounts' expects 'on' or 'off'") == 0,
               "bool '%s' rejected with qemu's text", cases[i].v);
        } else {
            ok(r == 0 && b == (cases[i].want == 1), "bool '%s'", cases[i].v);
        }
        ok(vimg_opts_check_unused(o, NULL) == 0, "bool '%s' consumed",
           cases[i].v);
        vimg_error_free(err);
        err = NULL;
        vimg_opts_free(o);
    }
    {
        struct vimg_opts *o = vimg_opts_new();
        bool b = true;

        ok(opts_take_bool(o, "absent", &b, NULL) == 0 && b,
           "absent bool leaves *out unchanged");
        vimg_opts_free(o);
    }
}

static void
test_numbers(void)
{
    static const struct {
        const char *v;
        int r;
        uint64_t want;
    } u[] = {
        { "16", 0, 16 }, { "0x10", 0, 16 }, { "010", 0, 8 }, { " 16", 0, 16 },
        { "-1", 0, UINT64_MAX }, { "18446744073709551615", 0, UINT64_MAX },
        { "18446744073709551616", -ERANGE, 0 }, { "", -EINVAL, 0 },
        { "abc", -EINVAL, 0 }, { "16k", -EINVAL, 0 }, { "16 ", -EINVAL, 0 },
    };
    struct vimg_error *err = NULL;
    size_t i;

    for (i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        struct vimg_opts *o = vimg_opts_new();
        uint64_t v = 12345;
        int r;

        vimg_opts_set(o, "refcount_bits", u[i].v);
        r = opts_take_u64(o, "refcount_bits", &v, &err);
        if (u[i].r == 0) {
            ok(r == 0 && v == u[i].want, "u64 '%s' = %llu", u[i].v,
               (unsigned long long)u[i].want);
        } else if (u[i].r == -ERANGE) {
            ok(r == -ERANGE && v == 12345 &&
               strcmp(vimg_error_message(err),
                      "Value '18446744073709551616' is too large for "
                      "parameter 'refcount_bits'") == 0,
               "u64 '%s' too large", u[i].v);
        } else {
            ok(r == -EINVAL && v == 12345 &&
               strcmp(vimg_error_message(err),
                      "Parameter 'refcount_bits' expects a number") == 0,
               "u64 '%s' rejected", u[i].v);
        }
        vimg_error_free(err);
        err = NULL;
        vimg_opts_free(o);
    }
    {
        struct vimg_opts *o = vimg_opts_new();
        int64_t v = 0;

        vimg_opts_set(o, "a", "-42");
        vimg_opts_set(o, "b", "0x7fffffffffffffff");
        vimg_opts_set(o, "c", "9223372036854775808");
        vimg_opts_set(o, "d", "4x");
        ok(opts_take_i64(o, "a", &v, NULL) == 0 && v == -42, "i64 -42");
        ok(opts_take_i64(o, "b", &v, NULL) == 0 && v == INT64_MAX,
           "i64 max in hex");
        ok(opts_take_i64(o, "c", &v, NULL) == -ERANGE, "i64 overflow");
        ok(opts_take_i64(o, "d", &v, &err) == -EINVAL, "i64 junk");
        ok_str(vimg_error_message(err), "Parameter 'd' expects a number",
               "i64 junk message");
        vimg_error_free(err);
        vimg_opts_free(o);
    }
}

static void
test_sizes(void)
{
    /* Expected values observed with qemu-img 7.2 -o size=... */
    static const struct {
        const char *v;
        int r;
        uint64_t want;
    } s[] = {
        { "0", 0, 0 }, { "512", 0, 512 }, { "1k", 0, 1024 },
        { "1K", 0, 1024 }, { "5m", 0, 5242880 }, { "64M", 0, 67108864 },
        { "1.5G", 0, 1610612736 }, { "5t", 0, 5497558138880ULL },
        { "5p", 0, 5629499534213120ULL }, { "5e", 0, 5764607523034234880ULL },
        { "1.5E", 0, 1729382256910270464ULL }, { "1.1E", 0, 1268213655067531680ULL },
        { "15.99999999999999E", 0, 18446744073709540096ULL },
        { "5b", 0, 5 }, { "1B", 0, 1 }, { "0x10", 0, 16 }, { "0X10", 0, 16 },
        { "0x10k", 0, 16384 }, { "0x1b", 0, 27 }, { "0x1E", 0, 30 }, { "010", 0, 10 }, { " 5", 0, 5 },
        { "+5k", 0, 5120 }, { "1.k", 0, 1024 }, { "1.0", 0, 1 },
        { "1.0b", 0, 1 }, { "0.5k", 0, 512 }, { "1.0004k", 0, 1024 },
        { "1.0006k", 0, 1025 }, { "1.00049k", 0, 1025 },
        { "1.0000000001k", 0, 1024 }, { "0.0001k", 0, 0 },
        { "18446744073709551615", 0, UINT64_MAX },
        { "0xffffffffffffffff", 0, UINT64_MAX },
        { "16E", -ERANGE, 0 }, { "16.0E", -ERANGE, 0 },
        { "18446744073709551616", -ERANGE, 0 },
        { "0x10000000000000000", -ERANGE, 0 },
        { "12Q", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "1e3", -EINVAL, 0 },
        { "1.5", -EINVAL, 0 }, { "1.5b", -EINVAL, 0 }, { "0.5b", -EINVAL, 0 },
        { "", -EINVAL, 0 }, { "5 ", -EINVAL, 0 }, { "1kk", -EINVAL, 0 },
        { ".5k", -EINVAL, 0 }, { "0x", -EINVAL, 0 }, { "0x1.8k", -EINVAL, 0 },
        { "0x10.k", -EINVAL, 0 }, { "00x10", -EINVAL, 0 },
        { "1.5e3k", -EINVAL, 0 }, { "1.5Ek", -EINVAL, 0 },
        { "1. k", -EINVAL, 0 }, { "1_000", -EINVAL, 0 }, { "k", -EINVAL, 0 },
    };
    struct vimg_error *err = NULL;
    size_t i;

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        uint64_t v = 777;
        int r = parse_size(s[i].v, &v);

        if (s[i].r == 0) {
            ok(r == 0 && v == s[i].want, "size '%s' = %llu (got %llu, r=%d)",
               s[i].v, (unsigned long long)s[i].want,
               (unsigned long long)v, r);
        } else {
            ok(r == s[i].r && v == 777, "size '%s' fails with %d (got %d)",
               s[i].v, s[i].r, r);
        }
    }

    {
        struct vimg_opts *o = vimg_opts_new();
        uint64_t v = 0;

        vimg_opts_set(o, "size", "64M");
        ok(opts_take_size(o, "size", &v, NULL) == 0 && v == 64 << 20,
           "opts_take_size 64M");
        vimg_opts_set(o, "size", "12Q");
        ok(opts_take_size(o, "size", &v, &err) == -EINVAL, "size 12Q");
        ok_str(vimg_error_message(err), size_msg, "size syntax message");
        vimg_error_free(err);
        err = NULL;
        vimg_opts_set(o, "size", "16E");
        ok(opts_take_size(o, "size", &v, &err) == -ERANGE, "size 16E");
        ok_str(vimg_error_message(err),
               "Value '16E' is out of range for parameter 'size'",
               "size range message");
        vimg_error_free(err);
        ok(vimg_opts_check_unused(o, NULL) == 0, "size was consumed");
        vimg_opts_free(o);
    }
}

int
main(void)
{
    test_parse();
    test_unused();
    test_bool();
    test_numbers();
    test_sizes();
    return tap_done();
}
