/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for lib/opts.c, the parser of qemu's "k=v,k2=v2" option lists
 * (qemu-img -o, --image-opts, --object).
 *
 * Input layout: byte 0 selects the mode (bits 0-1: implied key none /
 * "qom-type" / "driver" / "size"; bit 2: take every key before
 * check_unused; bits 3-5: rotation of the typed accessors), the rest is
 * split at NUL bytes into up to four option strings parsed one after the
 * other into the same list.
 *
 * Besides memory errors (found by the sanitizers) it checks invariants:
 * a failed parse sets an error with the returned code and leaves the list
 * unchanged; keys are unique, non-empty and free of '=' and ','; printing
 * the list back with ",," escapes and parsing it again gives the same
 * list; check_unused names exactly the first key that was not taken; the
 * typed accessors agree with parse_size() and fail with messages naming
 * the key; parse_size() round-trips through decimal and K notation.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz.h"

#define MAX_STRINGS 4
#define MAX_CHECKED 64     /* entries examined by the O(n^2) checks */

/* A deep copy of the key/value list, to compare before and after. */
struct snapshot {
    size_t n;
    char **kv;
};

static void
snap_take(const struct vimg_opts *o, struct snapshot *s)
{
    size_t i;

    s->n = vimg_opts_count(o);
    s->kv = calloc(2 * s->n + 1, sizeof(char *));
    FUZZ_CHECK(s->kv);
    for (i = 0; i < s->n; i++) {
        s->kv[2 * i] = strdup(vimg_opts_key(o, i));
        s->kv[2 * i + 1] = strdup(vimg_opts_value(o, i));
        FUZZ_CHECK(s->kv[2 * i] && s->kv[2 * i + 1]);
    }
}

static bool
snap_equal(const struct vimg_opts *o, const struct snapshot *s)
{
    size_t i;

    if (vimg_opts_count(o) != s->n) {
        return false;
    }
    for (i = 0; i < s->n; i++) {
        if (strcmp(vimg_opts_key(o, i), s->kv[2 * i]) != 0 ||
            strcmp(vimg_opts_value(o, i), s->kv[2 * i + 1]) != 0) {
            return false;
        }
    }
    return true;
}

static void
snap_free(struct snapshot *s)
{
    size_t i;

    for (i = 0; i < 2 * s->n; i++) {
        free(s->kv[i]);
    }
    free(s->kv);
}

static void
check_error(int r, struct vimg_error *err)
{
    FUZZ_CHECK(err != NULL);
    FUZZ_CHECK(vimg_error_code(err) == r);
    FUZZ_CHECK(vimg_error_message(err) != NULL);
    FUZZ_CHECK(vimg_error_message(err)[0] != '\0');
}

/* Append @s to @out, doubling commas; returns the new length. */
static size_t
append_escaped(char *out, size_t len, const char *s)
{
    for (; *s; s++) {
        out[len++] = *s;
        if (*s == ',') {
            out[len++] = ',';
        }
    }
    return len;
}

static void
check_list(const struct vimg_opts *o)
{
    size_t n = vimg_opts_count(o), i, j;

    FUZZ_CHECK(vimg_opts_key(o, n) == NULL);
    FUZZ_CHECK(vimg_opts_value(o, n) == NULL);
    for (i = 0; i < n && i < MAX_CHECKED; i++) {
        const char *k = vimg_opts_key(o, i), *v = vimg_opts_value(o, i);

        FUZZ_CHECK(k && v);
        FUZZ_CHECK(k[0] != '\0');
        FUZZ_CHECK(strpbrk(k, "=,") == NULL);
        FUZZ_CHECK(vimg_opts_get(o, k) == v);
        for (j = i + 1; j < n && j < MAX_CHECKED; j++) {
            FUZZ_CHECK(strcmp(k, vimg_opts_key(o, j)) != 0);
        }
    }
}

/* Print the list as "k=v,..." with escapes and parse it again. */
static void
check_roundtrip(const struct vimg_opts *o)
{
    size_t n = vimg_opts_count(o), i, total = 1, len = 0;
    struct vimg_opts *o2;
    struct vimg_error *err = NULL;
    struct snapshot s;
    char *str;
    int r;

    for (i = 0; i < n; i++) {
        total += strlen(vimg_opts_key(o, i)) +
                 2 * strlen(vimg_opts_value(o, i)) + 2;
    }
    str = malloc(total);
    FUZZ_CHECK(str);
    for (i = 0; i < n; i++) {
        if (i) {
            str[len++] = ',';
        }
        len = append_escaped(str, len, vimg_opts_key(o, i));
        str[len++] = '=';
        len = append_escaped(str, len, vimg_opts_value(o, i));
    }
    str[len] = '\0';

    o2 = vimg_opts_new();
    FUZZ_CHECK(o2);
    r = vimg_opts_parse(o2, str, NULL, &err);
    if (n == 0) {
        FUZZ_CHECK(r == 0 && vimg_opts_count(o2) == 0);
    }
    FUZZ_CHECK(r == 0 && err == NULL);
    snap_take(o, &s);
    FUZZ_CHECK(snap_equal(o2, &s));
    snap_free(&s);
    vimg_opts_free(o2);
    free(str);
}

/* parse_size results must survive printing in decimal and in K units. */
static void
check_size_roundtrip(uint64_t v)
{
    char buf[32];
    uint64_t w = 0;

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    FUZZ_CHECK(parse_size(buf, &w) == 0 && w == v);
    if (v % 1024 == 0) {
        snprintf(buf, sizeof(buf), "%" PRIu64 "K", v / 1024);
        FUZZ_CHECK(parse_size(buf, &w) == 0 && w == v);
    }
    snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
    FUZZ_CHECK(parse_size(buf, &w) == 0 && w == v);
}

/* The error of a typed accessor must name its key in quotes. */
static void
check_typed_error(int r, struct vimg_error *err, const char *key)
{
    char *want;

    check_error(r, err);
    FUZZ_CHECK(asprintf(&want, "'%s'", key) > 0);
    FUZZ_CHECK(strstr(vimg_error_message(err), want) != NULL);
    free(want);
}

static void
take_typed(struct vimg_opts *o, size_t i, unsigned rot)
{
    struct vimg_error *err = NULL;
    const char *key = vimg_opts_key(o, i);
    const char *val = vimg_opts_value(o, i);
    uint64_t u = 0, ps = 0;
    int64_t s = 0;
    bool b = false;
    int r, rs;

    switch ((i + rot) % 5) {
    case 0:
        r = opts_take_bool(o, key, &b, &err);
        if (r == 0) {
            /* qemu's true spellings include "y" (found by the fuzzer). */
            FUZZ_CHECK(b == (!strcmp(val, "on") || !strcmp(val, "yes") ||
                             !strcmp(val, "true") || !strcmp(val, "y")));
        }
        break;
    case 1:
        r = opts_take_u64(o, key, &u, &err);
        break;
    case 2:
        r = opts_take_i64(o, key, &s, &err);
        break;
    case 3:
        rs = parse_size(val, &ps);
        r = opts_take_size(o, key, &u, &err);
        FUZZ_CHECK(r == rs);
        if (r == 0) {
            FUZZ_CHECK(u == ps);
            check_size_roundtrip(u);
        }
        break;
    default:
        r = vimg_opts_take(o, key) == val ? 0 : -EFAULT;
        FUZZ_CHECK(r == 0);
        break;
    }
    if (r < 0) {
        check_typed_error(r, err, key);
    } else {
        FUZZ_CHECK(err == NULL);
    }
    vimg_error_free(err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const implied[] = { NULL, "qom-type", "driver", "size" };
    struct vimg_opts *o;
    struct vimg_error *err = NULL;
    const char *first_untaken = NULL;
    const char *ik;
    unsigned mode, rot;
    size_t pos, n, i, nstr = 0;
    char *text;
    int r;

    if (size < 1 || size > 65536) {
        return 0;
    }
    mode = data[0];
    ik = implied[mode & 3];
    rot = (mode >> 3) & 7;
    /* A NUL-terminated copy: libFuzzer's buffer has no terminator. */
    text = malloc(size);
    FUZZ_CHECK(text);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    o = vimg_opts_new();
    FUZZ_CHECK(o);
    for (pos = 0; pos < size && nstr < MAX_STRINGS; nstr++) {
        const char *s = text + pos;
        struct snapshot before;
        struct vimg_opts *fresh;

        pos += strlen(s) + 1;
        snap_take(o, &before);
        r = vimg_opts_parse(o, s, nstr == 0 ? ik : NULL, &err);
        if (r < 0) {
            check_error(r, err);
            /* A syntax error must leave the list as it was. */
            FUZZ_CHECK(snap_equal(o, &before));
            vimg_error_free(err);
            err = NULL;
        } else {
            FUZZ_CHECK(r == 0 && err == NULL);
            /* Everything parsed from @s is now in the list (later wins). */
            fresh = vimg_opts_new();
            FUZZ_CHECK(fresh);
            FUZZ_CHECK(vimg_opts_parse(fresh, s, nstr == 0 ? ik : NULL,
                                       NULL) == 0);
            for (i = 0; i < vimg_opts_count(fresh) && i < MAX_CHECKED; i++) {
                const char *v = vimg_opts_get(o, vimg_opts_key(fresh, i));

                FUZZ_CHECK(v && strcmp(v, vimg_opts_value(fresh, i)) == 0);
            }
            vimg_opts_free(fresh);
        }
        snap_free(&before);
    }
    /* NULL arguments are refused, not crashed on. */
    FUZZ_CHECK(vimg_opts_parse(o, NULL, NULL, NULL) == -EINVAL);

    check_list(o);
    check_roundtrip(o);

    /* Take all keys, or every other one; then check_unused. */
    n = vimg_opts_count(o);
    for (i = 0; i < n; i++) {
        if ((mode & 4) || i % 2 == 0) {
            take_typed(o, i, rot);
        } else if (!first_untaken) {
            first_untaken = vimg_opts_key(o, i);
        }
    }
    r = vimg_opts_check_unused(o, &err);
    if (first_untaken) {
        char *want;

        check_error(r, err);
        FUZZ_CHECK(r == -EINVAL);
        FUZZ_CHECK(asprintf(&want, "Parameter '%s' is unexpected",
                            first_untaken) > 0);
        FUZZ_CHECK(strcmp(vimg_error_message(err), want) == 0);
        free(want);
    } else {
        FUZZ_CHECK(r == 0 && err == NULL);
    }
    vimg_error_free(err);

    /* Setting a key again makes it a new, unconsumed request. */
    if (n) {
        const char *k0 = vimg_opts_key(o, 0);
        char *key = strdup(k0);

        FUZZ_CHECK(key);
        vimg_opts_take(o, key);
        FUZZ_CHECK(vimg_opts_set(o, key, "x") == 0);
        FUZZ_CHECK(vimg_opts_count(o) == n);
        err = NULL;
        FUZZ_CHECK(vimg_opts_check_unused(o, &err) == -EINVAL);
        vimg_error_free(err);
        free(key);
    }

    vimg_opts_free(o);
    free(text);
    return 0;
}
