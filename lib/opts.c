/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Option lists in qemu's QemuOpts syntax ("k=v,k2=v2"), as qemu-img -o,
 * --image-opts and --object take them:
 * - a doubled comma ",," inside a value is a literal comma;
 * - a leading element without '=' is the value of the implied key, if the
 *   caller names one ("secret,id=s0" -> qom-type=secret);
 * - any other bare word is a boolean flag: "key" means key=on and "nokey"
 *   means key=off (qemu 7.2's deprecated shorthand, kept for compatibility);
 * - a later duplicate key replaces the earlier value; a trailing comma is
 *   ignored.
 * Each entry remembers whether a consumer took it, so that unknown keys can
 * be reported with qemu's "Parameter 'K' is unexpected".  The typed
 * opts_take_* helpers parse values like qemu: numbers with base prefixes,
 * booleans on/off/yes/no/true/false/y/n and sizes with binary suffixes.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

struct opt_entry {
    char *key;
    char *value;
    bool used;
};

struct vimg_opts {
    struct opt_entry *v;
    size_t n, cap;
};

struct vimg_opts *
vimg_opts_new(void)
{
    return calloc(1, sizeof(struct vimg_opts));
}

void
vimg_opts_free(struct vimg_opts *opts)
{
    size_t i;

    if (!opts) {
        return;
    }
    for (i = 0; i < opts->n; i++) {
        free(opts->v[i].key);
        free(opts->v[i].value);
    }
    free(opts->v);
    free(opts);
}

static struct opt_entry *
find(const struct vimg_opts *opts, const char *key)
{
    size_t i;

    if (!opts || !key) {
        return NULL;
    }
    for (i = 0; i < opts->n; i++) {
        if (strcmp(opts->v[i].key, key) == 0) {
            return &opts->v[i];
        }
    }
    return NULL;
}

int
vimg_opts_set(struct vimg_opts *opts, const char *key, const char *value)
{
    struct opt_entry *e = find(opts, key);
    char *nv;

    if (!opts || !key || !value) {
        return -EINVAL;
    }
    nv = strdup(value);
    if (!nv) {
        return -ENOMEM;
    }
    if (e) {
        /* A new value is a new request: it must be consumed again. */
        free(e->value);
        e->value = nv;
        e->used = false;
        return 0;
    }
    if (opts->n == opts->cap) {
        size_t ncap = opts->cap ? opts->cap * 2 : 8;
        struct opt_entry *nvec = reallocarray(opts->v, ncap, sizeof(*nvec));

        if (!nvec) {
            free(nv);
            return -ENOMEM;
        }
        opts->v = nvec;
        opts->cap = ncap;
    }
    e = &opts->v[opts->n];
    e->key = strdup(key);
    if (!e->key) {
        free(nv);
        return -ENOMEM;
    }
    e->value = nv;
    e->used = false;
    opts->n++;
    return 0;
}

/*
 * Copy a value starting at *pp up to the next single ',' (or the end),
 * turning ",," into ','.  *pp is left on the terminating ',' or NUL.
 */
static char *
take_value(const char **pp)
{
    const char *p = *pp;
    size_t n = 0;
    char *out, *o;

    out = malloc(strlen(p) + 1);
    if (!out) {
        return NULL;
    }
    o = out;
    while (*p) {
        if (*p == ',') {
            if (p[1] != ',') {
                break;
            }
            p++;            /* ",," -> ',' */
        }
        o[n++] = *p++;
    }
    o[n] = '\0';
    *pp = p;
    return out;
}

int
vimg_opts_parse(struct vimg_opts *opts, const char *str,
                const char *implied_key, struct vimg_error **errp)
{
    struct vimg_opts *tmp;
    const char *p = str;
    bool first = true;
    int r = 0;
    size_t i;

    if (!opts || !str) {
        return vimg_error_set(errp, -EINVAL, "Invalid option list");
    }
    /* Parse into a scratch list so that a syntax error changes nothing. */
    tmp = vimg_opts_new();
    if (!tmp) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    while (*p) {
        size_t klen = strcspn(p, "=,");
        CLEANUP_FREE char *key = NULL;
        CLEANUP_FREE char *value = NULL;

        if (klen == 0) {
            r = vimg_error_set(errp, -EINVAL, "Invalid parameter ''");
            goto out;
        } else if (p[klen] != '=' && first && implied_key) {
            key = strdup(implied_key);
            value = take_value(&p);
        } else if (p[klen] == '=') {
            key = strndup(p, klen);
            p += klen + 1;
            value = take_value(&p);
        } else if (klen > 2 && strncmp(p, "no", 2) == 0) {
            key = strndup(p + 2, klen - 2);
            value = strdup("off");
            p += klen;
        } else {
            key = strndup(p, klen);
            value = strdup("on");
            p += klen;
        }
        if (!key || !value) {
            r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            goto out;
        }
        r = vimg_opts_set(tmp, key, value);
        if (r < 0) {
            vimg_error_set(errp, r, "Out of memory");
            goto out;
        }
        first = false;
        if (*p == ',') {
            p++;            /* a trailing comma simply ends the list */
        }
    }
    for (i = 0; i < tmp->n; i++) {
        r = vimg_opts_set(opts, tmp->v[i].key, tmp->v[i].value);
        if (r < 0) {
            vimg_error_set(errp, r, "Out of memory");
            goto out;
        }
    }
out:
    vimg_opts_free(tmp);
    return r;
}

const char *
vimg_opts_get(const struct vimg_opts *opts, const char *key)
{
    struct opt_entry *e = find(opts, key);

    return e ? e->value : NULL;
}

const char *
vimg_opts_take(struct vimg_opts *opts, const char *key)
{
    struct opt_entry *e = find(opts, key);

    if (!e) {
        return NULL;
    }
    e->used = true;
    return e->value;
}

size_t
vimg_opts_count(const struct vimg_opts *opts)
{
    return opts ? opts->n : 0;
}

const char *
vimg_opts_key(const struct vimg_opts *opts, size_t i)
{
    return opts && i < opts->n ? opts->v[i].key : NULL;
}

const char *
vimg_opts_value(const struct vimg_opts *opts, size_t i)
{
    return opts && i < opts->n ? opts->v[i].value : NULL;
}

int
vimg_opts_check_unused(const struct vimg_opts *opts, struct vimg_error **errp)
{
    size_t i;

    for (i = 0; opts && i < opts->n; i++) {
        if (!opts->v[i].used) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter '%s' is unexpected",
                                  opts->v[i].key);
        }
    }
    return 0;
}

/* ---- typed accessors ---------------------------------------------------- */

int
opts_take_bool(struct vimg_opts *o, const char *key, bool *out,
               struct vimg_error **errp)
{
    const char *v = vimg_opts_take(o, key);

    if (!v) {
        return 0;
    }
    /* qemu's spellings (case-sensitive): on/yes/true/y, off/no/false/n */
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") ||
        !strcmp(v, "y")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") ||
               !strcmp(v, "n")) {
        *out = false;
    } else {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter '%s' expects 'on' or 'off'", key);
    }
    return 0;
}

/*
 * Whole-string strtoull/strtoll with base prefixes (0x.., 0..), as qemu's
 * number options.  Like qemu, an unsigned value may be written negative and
 * wraps.  Return 0, -EINVAL (no digits or trailing junk) or -ERANGE.
 */
static int
parse_u64(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (end == s || *end != '\0') {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static int
parse_i64(const char *s, int64_t *out)
{
    long long v;
    char *end;

    errno = 0;
    v = strtoll(s, &end, 0);
    if (end == s || *end != '\0') {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

/* qemu's messages for a number option @key=@v that did not parse (@r). */
static int
number_error(int r, const char *v, const char *key, struct vimg_error **errp)
{
    if (r == -ERANGE) {
        return vimg_error_set(errp, r,
                              "Value '%s' is too large for parameter '%s'",
                              v, key);
    }
    return vimg_error_set(errp, r, "Parameter '%s' expects a number", key);
}

int
opts_take_u64(struct vimg_opts *o, const char *key, uint64_t *out,
              struct vimg_error **errp)
{
    const char *v = vimg_opts_take(o, key);
    int r;

    if (!v) {
        return 0;
    }
    r = parse_u64(v, out);
    return r < 0 ? number_error(r, v, key, errp) : 0;
}

int
opts_take_i64(struct vimg_opts *o, const char *key, int64_t *out,
              struct vimg_error **errp)
{
    const char *v = vimg_opts_take(o, key);
    int r;

    if (!v) {
        return 0;
    }
    r = parse_i64(v, out);
    return r < 0 ? number_error(r, v, key, errp) : 0;
}

int
opts_take_size(struct vimg_opts *o, const char *key, uint64_t *out,
               struct vimg_error **errp)
{
    const char *v = vimg_opts_take(o, key);
    int r;

    if (!v) {
        return 0;
    }
    r = parse_size(v, out);
    if (r == -ERANGE) {
        return vimg_error_set(errp, r,
                              "Value '%s' is out of range for parameter '%s'",
                              v, key);
    }
    if (r < 0) {
        return vimg_error_set(errp, r,
            "Parameter '%s' expects a non-negative number below 2^64\n"
            "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
            "tera-, peta-\nand exabytes, respectively.", key);
    }
    return 0;
}

/* Power of 1024 for a size suffix, -1 if @c is not one. */
static int
suffix_shift(char c)
{
    switch (c) {
    case 'b': case 'B': return 0;
    case 'k': case 'K': return 10;
    case 'm': case 'M': return 20;
    case 'g': case 'G': return 30;
    case 't': case 'T': return 40;
    case 'p': case 'P': return 50;
    case 'e': case 'E': return 60;
    default: return -1;
    }
}

/*
 * Sizes as qemu 7.2 reads them (observed with qemu-img -o size=...):
 * leading blanks and '+' allowed, no sign '-'; decimal, or hex with 0x (no
 * fraction then); a decimal fraction needs a k..E suffix unless it is zero
 * ("1.5k" = 1536, "1.k" = 1024, "1.0" = 1, "1.5" and "1.5b" are errors) and
 * is rounded to the nearest byte; nothing may follow the suffix.
 */
int
parse_size(const char *s, uint64_t *out)
{
    const char *p = s;
    uint64_t val, mul, frac_bytes = 0;
    double frac = 0.0;
    bool hex = false;
    int shift;
    char *end;

    if (!s) {
        return -EINVAL;
    }
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '+') {
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        if (!isxdigit((unsigned char)p[2])) {
            return -EINVAL;
        }
        hex = true;
    } else if (!isdigit((unsigned char)*p)) {
        return -EINVAL;
    }
    errno = 0;
    val = strtoull(p, &end, hex ? 16 : 10);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    p = end;
    if (*p == '.') {
        char digits[48] = "0.";
        size_t nd = 2;

        if (hex) {
            return -EINVAL;
        }
        for (p++; isdigit((unsigned char)*p); p++) {
            if (nd < sizeof(digits) - 1) {
                digits[nd++] = *p;
            }
        }
        digits[nd] = '\0';
        frac = strtod(digits, NULL);
    }
    shift = suffix_shift(*p);
    if (shift >= 0) {
        p++;
    } else {
        shift = 0;
    }
    if (*p != '\0') {
        return -EINVAL;
    }
    mul = (uint64_t)1 << shift;
    if (frac != 0.0) {
        if (mul == 1) {
            return -EINVAL;
        }
        /* frac < 1, so the product stays below mul <= 2^60. */
        frac_bytes = (uint64_t)(frac * (double)mul + 0.5);
    }
    if (MUL_OVERFLOW(val, mul, &val) || ADD_OVERFLOW(val, frac_bytes, &val)) {
        return -ERANGE;
    }
    *out = val;
    return 0;
}
