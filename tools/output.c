// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * qemu-compatible output for the vimg tool.
 *
 * QEMU 7.2 keeps a dictionary in a 512-bucket hash table and prints it by
 * walking the buckets in order; a bucket holds its keys newest first.  To
 * print byte-identical JSON we therefore reorder every json-c object by that
 * rule (json-c keeps insertion order, which stands in for qemu's insertion
 * order).  Strings are escaped as qemu does: only '"', '\\' and control
 * characters use short escapes, every non-ASCII character becomes \uXXXX
 * (upper-case hex, surrogate pairs above U+FFFF) and invalid UTF-8 becomes
 * \uFFFD.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "output.h"

unsigned
qdict_bucket(const char *key)
{
    size_t len = strlen(key), i;
    uint32_t v = 0x238F13AFu * (uint32_t)len;

    for (i = 0; i < len; i++) {
        v += (uint32_t)(unsigned char)key[i] << ((i * 5) % 24);
    }
    v = 1103515243u * v + 12345u;
    return v % 512;
}

struct ordered_key {
    const char *key;
    unsigned bucket;
    size_t seq;
};

static int
cmp_ordered_key(const void *a, const void *b)
{
    const struct ordered_key *x = a, *y = b;

    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    /* Same bucket: the later insertion is printed first. */
    return x->seq > y->seq ? -1 : (x->seq < y->seq ? 1 : 0);
}

const char **
qdict_order(struct json_object *obj, size_t *n)
{
    struct ordered_key *tmp;
    const char **keys;
    size_t count = (size_t)json_object_object_length(obj), i = 0;

    *n = 0;
    if (count == 0) {
        return NULL;
    }
    tmp = calloc(count, sizeof(*tmp));
    keys = calloc(count, sizeof(*keys));
    if (!tmp || !keys) {
        free(tmp);
        free(keys);
        return NULL;
    }
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        tmp[i].key = key;
        tmp[i].bucket = qdict_bucket(key);
        tmp[i].seq = i;
        i++;
    }
    qsort(tmp, count, sizeof(*tmp), cmp_ordered_key);
    for (i = 0; i < count; i++) {
        keys[i] = tmp[i].key;
    }
    free(tmp);
    *n = count;
    return keys;
}

/* A growable string buffer; on allocation failure @failed sticks. */
struct sbuf {
    char *s;
    size_t len, cap;
    bool failed;
};

static void
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void
sbuf_str(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

static void
sbuf_indent(struct sbuf *b, int level)
{
    int i;

    for (i = 0; i < level; i++) {
        sbuf_add(b, "    ", 4);
    }
}

/*
 * Decode one UTF-8 sequence at @s (at most @len bytes).  Returns its length
 * and the code point in *cp, or 0 for an invalid sequence.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n, i;
    uint32_t c, min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        c = s[0] & 0x1F;
        min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        c = s[0] & 0x0F;
        min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        c = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return n;
}

static void
sbuf_json_string(struct sbuf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), i = 0;
    char tmp[16];

    sbuf_add(b, "\"", 1);
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);

        if (n == 0) {
            /* Invalid byte: qemu substitutes U+FFFD and moves on. */
            cp = 0xFFFD;
            n = 1;
        }
        i += n;
        switch (cp) {
        case '"':
            sbuf_str(b, "\\\"");
            continue;
        case '\\':
            sbuf_str(b, "\\\\");
            continue;
        case '\b':
            sbuf_str(b, "\\b");
            continue;
        case '\f':
            sbuf_str(b, "\\f");
            continue;
        case '\n':
            sbuf_str(b, "\\n");
            continue;
        case '\r':
            sbuf_str(b, "\\r");
            continue;
        case '\t':
            sbuf_str(b, "\\t");
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp < 0x7F) {
            char c = (char)cp;

            sbuf_add(b, &c, 1);
        } else if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;

            snprintf(tmp, sizeof(tmp), "\\u%04X\\u%04X",
                     (unsigned)(0xD800 | (v >> 10)),
                     (unsigned)(0xDC00 | (v & 0x3FF)));
            sbuf_str(b, tmp);
        } else {
            snprintf(tmp, sizeof(tmp), "\\u%04X", (unsigned)cp);
            sbuf_str(b, tmp);
        }
    }
    sbuf_add(b, "\"", 1);
}

static void
sbuf_json(struct sbuf *b, struct json_object *obj, bool pretty, int level)
{
    char tmp[64];
    size_t i, n;

    switch (json_object_get_type(obj)) {
    case json_type_null:
        sbuf_str(b, "null");
        break;
    case json_type_boolean:
        sbuf_str(b, json_object_get_boolean(obj) ? "true" : "false");
        break;
    case json_type_int:
        snprintf(tmp, sizeof(tmp), "%" PRId64, json_object_get_int64(obj));
        sbuf_str(b, tmp);
        break;
    case json_type_double:
        snprintf(tmp, sizeof(tmp), "%.17g", json_object_get_double(obj));
        sbuf_str(b, tmp);
        break;
    case json_type_string:
        sbuf_json_string(b, json_object_get_string(obj));
        break;
    case json_type_array:
        n = json_object_array_length(obj);
        sbuf_str(b, "[");
        for (i = 0; i < n; i++) {
            if (i) {
                sbuf_str(b, ",");
            }
            if (pretty) {
                sbuf_str(b, "\n");
                sbuf_indent(b, level + 1);
            } else if (i) {
                sbuf_str(b, " ");
            }
            sbuf_json(b, json_object_array_get_idx(obj, i), pretty, level + 1);
        }
        if (pretty && n) {
            sbuf_str(b, "\n");
            sbuf_indent(b, level);
        }
        sbuf_str(b, "]");
        break;
    case json_type_object: {
        const char **keys = qdict_order(obj, &n);

        if (n && !keys) {
            b->failed = true;
            break;
        }
        sbuf_str(b, "{");
        for (i = 0; i < n; i++) {
            if (i) {
                sbuf_str(b, ",");
            }
            if (pretty) {
                sbuf_str(b, "\n");
                sbuf_indent(b, level + 1);
            } else if (i) {
                sbuf_str(b, " ");
            }
            sbuf_json_string(b, keys[i]);
            sbuf_str(b, ": ");
            sbuf_json(b, json_object_object_get(obj, keys[i]), pretty,
                      level + 1);
        }
        if (pretty && n) {
            sbuf_str(b, "\n");
            sbuf_indent(b, level);
        }
        sbuf_str(b, "}");
        free(keys);
        break;
    }
    }
}

char *
qjson_to_string(struct json_object *obj, bool pretty)
{
    struct sbuf b = {0};

    sbuf_json(&b, obj, pretty, 0);
    if (b.failed || !b.s) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int
qjson_print(struct json_object *obj)
{
    char *s = qjson_to_string(obj, true);

    if (!s) {
        return -ENOMEM;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

char *
size_to_str(char *buf, size_t len, uint64_t val)
{
    static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    unsigned i = 0;

    /* Move to the next unit once the value is >= 1000 of the current one,
     * i.e. val >= 1000 * 1024^i selects unit i + 1. */
    while (i + 1 < sizeof(units) / sizeof(units[0]) &&
           (double)val >= 1000.0 * (double)(1ULL << (10 * i))) {
        i++;
    }
    snprintf(buf, len, "%0.3g %sB", (double)val / (double)(1ULL << (10 * i)),
             units[i]);
    return buf;
}

/* Print a key with '-' shown as ' ', as qemu's human dump does. */
static void
print_key(FILE *f, const char *key)
{
    for (; *key; key++) {
        fputc(*key == '-' ? ' ' : *key, f);
    }
}

static void dump_object(FILE *f, struct json_object *obj, int level);
static void dump_array(FILE *f, struct json_object *arr, int level);

static void
dump_scalar(FILE *f, struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        fputs(json_object_get_boolean(v) ? "true" : "false", f);
        break;
    case json_type_int:
        fprintf(f, "%" PRId64, json_object_get_int64(v));
        break;
    case json_type_null:
        fputs("null", f);
        break;
    default:
        fputs(json_object_get_string(v), f);
        break;
    }
}

static bool
is_container(struct json_object *v)
{
    return json_object_is_type(v, json_type_object) ||
           json_object_is_type(v, json_type_array);
}

static void
indent(FILE *f, int level)
{
    fprintf(f, "%*s", level * 4, "");
}

static void
dump_array(FILE *f, struct json_object *arr, int level)
{
    size_t i, n = json_object_array_length(arr);

    for (i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);

        indent(f, level);
        if (is_container(v)) {
            fprintf(f, "[%zu]:\n", i);
            if (json_object_is_type(v, json_type_object)) {
                dump_object(f, v, level + 1);
            } else {
                dump_array(f, v, level + 1);
            }
        } else {
            fprintf(f, "[%zu]: ", i);
            dump_scalar(f, v);
            fputc('\n', f);
        }
    }
}

static void
dump_object(FILE *f, struct json_object *obj, int level)
{
    size_t i, n;
    const char **keys = qdict_order(obj, &n);

    for (i = 0; i < n; i++) {
        struct json_object *v = json_object_object_get(obj, keys[i]);

        indent(f, level);
        print_key(f, keys[i]);
        if (is_container(v)) {
            fputs(":\n", f);
            if (json_object_is_type(v, json_type_object)) {
                dump_object(f, v, level + 1);
            } else {
                dump_array(f, v, level + 1);
            }
        } else {
            fputs(": ", f);
            dump_scalar(f, v);
            fputc('\n', f);
        }
    }
    free(keys);
}

static struct json_object *
get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;

    if (obj && json_object_object_get_ex(obj, key, &v)) {
        return v;
    }
    return NULL;
}

/* ---- "Snapshot list:" table ---- */

void
print_snapshot_row(FILE *f, const char *id, const char *name,
                   uint64_t vm_state, int64_t date_sec, uint64_t clock_nsec,
                   int64_t icount)
{
    char sz[32], date[32], clk[48], ic[32] = "";
    uint64_t secs = clock_nsec / 1000000000ULL;
    time_t t = (time_t)date_sec;
    struct tm tm;

    size_to_str(sz, sizeof(sz), vm_state);
    if (localtime_r(&t, &tm)) {
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    } else {
        date[0] = '\0';
    }
    snprintf(clk, sizeof(clk), "%02" PRIu64 ":%02u:%02u.%03u", secs / 3600,
             (unsigned)((secs / 60) % 60), (unsigned)(secs % 60),
             (unsigned)((clock_nsec / 1000000ULL) % 1000));
    if (icount != -1) {
        snprintf(ic, sizeof(ic), "%" PRId64, icount);
    }
    fprintf(f, "%-9s %-16s %8s%20s%13s%11s\n", id, name, sz, date, clk, ic);
}

void
print_snapshot_header(FILE *f)
{
    fprintf(f, "Snapshot list:\n");
    fprintf(f, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE",
            "VM CLOCK", "ICOUNT");
}

static int64_t
sn_member_i64(struct json_object *o, const char *key, int64_t def)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
                                                 : def;
}

static const char *
sn_member_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v)
                                                 : "";
}

void
print_snapshot_table(FILE *f, struct json_object *snapshots)
{
    size_t i, n;

    if (!snapshots || !json_object_is_type(snapshots, json_type_array)) {
        return;
    }
    n = json_object_array_length(snapshots);
    if (n == 0) {
        return;
    }
    print_snapshot_header(f);
    for (i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(snapshots, i);
        uint64_t clk = (uint64_t)sn_member_i64(o, "vm-clock-sec", 0) *
                       1000000000ULL +
                       (uint64_t)sn_member_i64(o, "vm-clock-nsec", 0);

        print_snapshot_row(f, sn_member_str(o, "id"),
                           sn_member_str(o, "name"),
                           (uint64_t)sn_member_i64(o, "vm-state-size", 0),
                           sn_member_i64(o, "date-sec", 0), clk,
                           sn_member_i64(o, "icount", -1));
    }
}

void
print_info_human(FILE *f, struct json_object *info, const char *name)
{
    struct json_object *v;
    char sz[32];
    uint64_t vsize = 0;

    fprintf(f, "image: %s\n", name);
    v = get(info, "format");
    fprintf(f, "file format: %s\n", v ? json_object_get_string(v) : "");
    v = get(info, "virtual-size");
    if (v) {
        vsize = (uint64_t)json_object_get_int64(v);
    }
    fprintf(f, "virtual size: %s (%" PRIu64 " bytes)\n",
            size_to_str(sz, sizeof(sz), vsize), vsize);
    v = get(info, "actual-size");
    if (v) {
        fprintf(
            f, "disk size: %s\n",
            size_to_str(sz, sizeof(sz), (uint64_t)json_object_get_int64(v)));
    } else {
        fprintf(f, "disk size: unavailable\n");
    }
    v = get(info, "encrypted");
    if (v && json_object_get_boolean(v)) {
        fprintf(f, "encrypted: yes\n");
    }
    v = get(info, "cluster-size");
    if (v) {
        fprintf(f, "cluster_size: %" PRId64 "\n", json_object_get_int64(v));
    }
    v = get(info, "dirty-flag");
    if (v && json_object_get_boolean(v)) {
        fprintf(f, "cleanly shut down: no\n");
    }
    v = get(info, "backing-filename");
    if (v) {
        struct json_object *full = get(info, "full-backing-filename");
        const char *b = json_object_get_string(v);

        fprintf(f, "backing file: %s", b);
        if (!full) {
            fprintf(f, " (cannot determine actual path)");
        } else if (strcmp(json_object_get_string(full), b) != 0) {
            fprintf(f, " (actual path: %s)", json_object_get_string(full));
        }
        fputc('\n', f);
    }
    v = get(info, "backing-filename-format");
    if (v) {
        fprintf(f, "backing file format: %s\n", json_object_get_string(v));
    }
    print_snapshot_table(f, get(info, "snapshots"));
    print_info_format_specific(f, info);
}

void
print_info_format_specific(FILE *f, struct json_object *info)
{
    struct json_object *spec = get(get(info, "format-specific"), "data");

    if (spec && json_object_is_type(spec, json_type_object) &&
        json_object_object_length(spec) > 0) {
        fprintf(f, "Format specific information:\n");
        dump_object(f, spec, 1);
    }
}
