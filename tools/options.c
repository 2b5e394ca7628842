// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Shared option handling of the vimg tool: error printing in qemu-img's
 * format, size parsing with qemu's suffix rules, the process-wide secret
 * store fed by --object, and image arguments (plain names, --image-opts
 * strings and json:{...} pseudo-filenames, the latter flattened to the same
 * dotted keys as --image-opts).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "options.h"
#include "output.h"

static struct vimg_secrets *secrets;

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_error_vimg(struct vimg_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_NAME ": ", stderr);
    if (fmt) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    if (err) {
        fputs(vimg_error_message(err), stderr);
    } else {
        fputs(strerror(code < 0 ? -code : code), stderr);
    }
    fputc('\n', stderr);
    vimg_error_free(err);
}

void
cli_try_help(void)
{
    fputs("Try '" CLI_NAME " --help' for more information\n", stderr);
}

int
cli_getopt_error(int c, char **argv)
{
    const char *arg = argv[optind - 1];

    if (c == ':') {
        if (arg && strncmp(arg, "--", 2) == 0) {
            cli_error("missing argument for option '%.*s'",
                      (int)strcspn(arg, "="), arg);
        } else {
            cli_error("missing argument for option '-%c'", optopt);
        }
    } else if (optopt) {
        cli_error("unrecognized option '-%c'", optopt);
    } else {
        cli_error("unrecognized option '%.*s'", (int)strcspn(arg, "="), arg);
    }
    cli_try_help();
    return 1;
}

void
cli_print_command_help(const struct cli_command *cmd)
{
    printf("usage: " CLI_NAME " %s\n\n%s", cmd->synopsis, cmd->help);
}

/* Multiplier of a size suffix character, 0 if it is not one. */
static uint64_t
suffix_mult(char c)
{
    switch (tolower((unsigned char)c)) {
    case 'b':
        return 1;
    case 'k':
        return 1ULL << 10;
    case 'm':
        return 1ULL << 20;
    case 'g':
        return 1ULL << 30;
    case 't':
        return 1ULL << 40;
    case 'p':
        return 1ULL << 50;
    case 'e':
        return 1ULL << 60;
    default:
        return 0;
    }
}

int
cli_parse_size(const char *str, uint64_t *out)
{
    const char *p = str;
    uint64_t ip = 0, mult = 1, val;
    double frac = 0.0;
    bool hex = false, have_frac = false, any = false;

    while (isspace((unsigned char)*p)) {
        p++;
    }
    /* One '+' may precede the digits, as with strtoull(); '-' may not. */
    if (*p == '+') {
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        isxdigit((unsigned char)p[2])) {
        hex = true;
        p += 2;
    }
    for (; hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p);
         p++) {
        unsigned d = isdigit((unsigned char)*p)
                         ? (unsigned)(*p - '0')
                         : (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
        uint64_t base = hex ? 16 : 10;

        if (ip > (UINT64_MAX - d) / base) {
            return -ERANGE;
        }
        ip = ip * base + d;
        any = true;
    }
    if (!any) {
        return -EINVAL;
    }
    if (!hex && *p == '.') {
        double scale = 0.1;

        p++;
        if (!isdigit((unsigned char)*p)) {
            return -EINVAL;
        }
        for (; isdigit((unsigned char)*p); p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
        have_frac = frac > 0.0;
    }
    if (*p) {
        mult = suffix_mult(*p);
        if (!mult || p[1]) {
            return -EINVAL;
        }
    }
    if (have_frac && mult == 1) {
        return -EINVAL;
    }
    if (ip > UINT64_MAX / mult) {
        return -ERANGE;
    }
    val = ip * mult;
    if (have_frac) {
        uint64_t f = (uint64_t)(frac * (double)mult);

        if (val > UINT64_MAX - f) {
            return -ERANGE;
        }
        val += f;
    }
    *out = val;
    return 0;
}

void
cli_print_size_error(const char *what)
{
    cli_error("Invalid %s specified. You may use k, M, G, T, P or E "
              "suffixes for",
              what);
    cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
              "exabytes.");
}

struct vimg_secrets *
cli_secrets(void)
{
    if (!secrets) {
        secrets = vimg_secrets_new();
    }
    return secrets;
}

void
cli_secrets_release(void)
{
    vimg_secrets_free(secrets);
    secrets = NULL;
}

/*
 * Overwrite the value of every data= element of the keyval string @spec
 * with '*' ("a,,b" is an escaped comma inside a value, so it is masked
 * too).  The argv strings are the memory /proc/PID/cmdline reads.
 */
static void
scrub_inline_data(char *spec)
{
    char *p = spec;

    while (*p) {
        char *end = p;

        while (*end && (*end != ',' || end[1] == ',')) {
            end += *end == ',' ? 2 : 1;
        }
        if (strncmp(p, "data=", 5) == 0) {
            memset(p + 5, '*', (size_t)(end - p - 5));
        }
        p = *end ? end + 1 : end;
    }
}

int
cli_add_object(char *spec, bool quiet)
{
    struct vimg_secrets *s = cli_secrets();
    struct vimg_error *err = NULL;
    unsigned flags = 0;
    int r;

    if (!s) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    r = vimg_secrets_add_object(s, spec, &flags, &err);
    if (r < 0) {
        scrub_inline_data(spec);
        cli_error_vimg(err, r, NULL);
        return r;
    }
    if ((flags & VIMG_SECRET_INLINE_DATA) && !quiet) {
        struct vimg_opts *o = vimg_opts_new();
        const char *id = NULL;

        if (o && vimg_opts_parse(o, spec, "qom-type", NULL) == 0) {
            id = vimg_opts_get(o, "id");
        }
        fprintf(stderr,
                CLI_NAME
                ": warning: secret '%s' is passed on the command "
                "line (data=), where other users can read it; use file= or "
                "secret_keyring instead\n",
                id ? id : "?");
        vimg_opts_free(o);
    }
    scrub_inline_data(spec);
    return 0;
}

/* Append the leaves of a json:{} object as dotted "key=value" options. */
static int
flatten_json(struct json_object *obj, const char *prefix,
             struct vimg_opts *opts)
{
    json_object_object_foreach(obj, key, val)
    {
        char *name;
        const char *str;
        int r = 0;

        if (asprintf(&name, "%s%s%s", prefix, *prefix ? "." : "", key) < 0) {
            return -ENOMEM;
        }
        switch (json_object_get_type(val)) {
        case json_type_object:
            r = flatten_json(val, name, opts);
            break;
        case json_type_boolean:
            r = vimg_opts_set(opts, name,
                              json_object_get_boolean(val) ? "on" : "off");
            break;
        case json_type_string:
        case json_type_int:
        case json_type_double:
            str = json_object_get_string(val);
            r = vimg_opts_set(opts, name, str);
            break;
        default:
            r = -EINVAL;
            cli_error("Invalid JSON value for option '%s'", name);
            break;
        }
        free(name);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
cli_check_opt_value(const char *prefix, const struct vimg_opt_desc *d,
                    const char *v)
{
    static const char *const bools[] = {
        "on", "yes", "true", "y", "off", "no", "false", "n",
    };
    const char *pre = prefix ? prefix : "";
    uint64_t size;
    char *end;
    size_t i;
    int r;

    switch (d->type) {
    case VIMG_OPT_BOOL:
        for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
            if (strcmp(v, bools[i]) == 0) {
                return 0;
            }
        }
        cli_error("%sParameter '%s' expects 'on' or 'off'", pre, d->name);
        return -EINVAL;
    case VIMG_OPT_NUMBER:
        errno = 0;
        (void)strtoull(v, &end, 0);
        if (errno == ERANGE) {
            cli_error("%sValue '%s' is too large for parameter '%s'", pre, v,
                      d->name);
            return -EINVAL;
        }
        if (end == v || *end != '\0') {
            cli_error("%sParameter '%s' expects a number", pre, d->name);
            return -EINVAL;
        }
        return 0;
    case VIMG_OPT_SIZE:
        r = cli_parse_size(v, &size);
        if (r == -ERANGE) {
            cli_error("%sValue '%s' is out of range for parameter '%s'", pre,
                      v, d->name);
            return -EINVAL;
        }
        if (r < 0) {
            cli_error("%sParameter '%s' expects a non-negative number below "
                      "2^64",
                      pre, d->name);
            fputs("Optional suffix k, M, G, T, P or E means kilo-, mega-, "
                  "giga-, tera-, peta-\nand exabytes, respectively.\n",
                  stderr);
            return -EINVAL;
        }
        return 0;
    case VIMG_OPT_STRING:
    default:
        return 0;
    }
}

int
cli_image_parse(const char *arg, bool image_opts, const char *format,
                struct cli_image *img)
{
    struct vimg_opts *all = NULL;
    struct vimg_error *err = NULL;
    size_t i, n;
    int r = 0;

    memset(img, 0, sizeof(*img));
    img->arg = arg;
    if (!image_opts && strncmp(arg, "json:", 5) != 0) {
        img->path = strdup(arg);
        img->format = format ? strdup(format) : NULL;
        if (!img->path || (format && !img->format)) {
            cli_error("%s", strerror(ENOMEM));
            cli_image_clear(img);
            return -ENOMEM;
        }
        return 0;
    }

    img->structured = true;
    all = vimg_opts_new();
    if (!all) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    if (image_opts) {
        /* qemu parses --image-opts with "file" as the implied key. */
        r = vimg_opts_parse(all, arg, "file", &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            goto out;
        }
    } else {
        struct json_tokener *tok = json_tokener_new();
        struct json_object *root = NULL;

        if (tok) {
            root = json_tokener_parse_ex(tok, arg + 5, (int)strlen(arg + 5));
            if (root && json_tokener_get_parse_end(tok) != strlen(arg + 5)) {
                json_object_put(root);
                root = NULL;
            }
            json_tokener_free(tok);
        }
        if (!root || !json_object_is_type(root, json_type_object)) {
            cli_error("Could not open '%s': Could not parse JSON filename",
                      arg);
            json_object_put(root);
            r = -EINVAL;
            goto out;
        }
        r = flatten_json(root, "", all);
        json_object_put(root);
        if (r < 0) {
            goto out;
        }
    }

    img->opts = vimg_opts_new();
    if (!img->opts) {
        r = -ENOMEM;
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    n = vimg_opts_count(all);
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(all, i);
        const char *v = vimg_opts_value(all, i);
        char **slot = NULL;

        if (strcmp(k, "driver") == 0) {
            slot = &img->format;
        } else if (strcmp(k, "file.filename") == 0) {
            slot = &img->path;
        } else if (strcmp(k, "file") == 0) {
            /* A plain string "file" names a block node, which vimg has not. */
            cli_error("Could not open '%s': Cannot find device='%s' nor "
                      "node-name='%s'",
                      arg, v, v);
            r = -ENOENT;
            goto out;
        } else if (strcmp(k, "file.driver") == 0) {
            if (strcmp(v, "file") != 0) {
                cli_error("Could not open '%s': Unknown protocol driver '%s'",
                          arg, v);
                r = -ENOTSUP;
                goto out;
            }
            continue;
        } else {
            r = vimg_opts_set(img->opts, k, v);
            if (r < 0) {
                cli_error("%s", strerror(-r));
                goto out;
            }
            continue;
        }
        free(*slot);
        *slot = strdup(v);
        if (!*slot) {
            r = -ENOMEM;
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    }
    if (!img->format && format) {
        img->format = strdup(format);
    }
    if (!img->path) {
        cli_error("Could not open '%s': A block device must be specified "
                  "for \"file\"",
                  arg);
        r = -EINVAL;
        goto out;
    }
    if (vimg_opts_count(img->opts) == 0) {
        vimg_opts_free(img->opts);
        img->opts = NULL;
    }

out:
    vimg_opts_free(all);
    if (r < 0) {
        cli_image_clear(img);
    }
    return r;
}

void
cli_image_clear(struct cli_image *img)
{
    free(img->path);
    free(img->format);
    vimg_opts_free(img->opts);
    img->path = NULL;
    img->format = NULL;
    img->opts = NULL;
}

int
cli_image_open(struct cli_image *img, unsigned flags, struct vimg_image **out)
{
    struct vimg_error *err = NULL;
    int r;

    r = vimg_image_open(img->path, img->format, img->opts, cli_secrets(), flags,
                        out, &err);
    if (r < 0) {
        cli_error_vimg(err, r, "Could not open '%s': ", img->arg);
    }
    return r;
}

bool
cli_warn_plaintext(const struct vimg_image *src, const struct vimg_image *stop,
                   const struct vimg_image *dst, bool quiet)
{
    const struct vimg_image *cur;

    if (vimg_image_encrypted(dst)) {
        return false;
    }
    for (cur = src; cur && cur != stop;
         cur = vimg_image_backing((struct vimg_image *)cur)) {
        if (vimg_image_encrypted(cur)) {
            if (!quiet) {
                fprintf(stderr, CLI_NAME ": warning: writing decrypted data "
                        "of encrypted image '%s' into unencrypted image "
                        "'%s'\n", vimg_image_filename(cur),
                        vimg_image_filename(dst));
            }
            return true;
        }
    }
    return false;
}

char *
cli_image_display_name(const struct cli_image *img, const char *format)
{
    struct json_object *root, *file;
    char *s = NULL;
    size_t i, n, shown = 0;

    /* Options of the data-file child (qcow2) are not shown, as qemu. */
    n = img->opts ? vimg_opts_count(img->opts) : 0;
    for (i = 0; i < n; i++) {
        shown += strncmp(vimg_opts_key(img->opts, i), "data-file.", 10) != 0;
    }
    if (shown == 0) {
        return strdup(img->path);
    }
    /* The json: form qemu uses: driver, the protocol node, then every
     * driver option as given (flat), printed in QDict order. */
    root = json_object_new_object();
    file = json_object_new_object();
    if (!root || !file) {
        json_object_put(root);
        json_object_put(file);
        return NULL;
    }
    json_object_object_add(root, "driver",
                           json_object_new_string(format ? format : "raw"));
    json_object_object_add(file, "driver", json_object_new_string("file"));
    json_object_object_add(file, "filename", json_object_new_string(img->path));
    json_object_object_add(root, "file", file);
    for (i = 0; i < n; i++) {
        if (strncmp(vimg_opts_key(img->opts, i), "data-file.", 10) == 0) {
            continue;
        }
        json_object_object_add(
            root, vimg_opts_key(img->opts, i),
            json_object_new_string(vimg_opts_value(img->opts, i)));
    }
    s = qjson_to_string(root, false);
    json_object_put(root);
    if (s) {
        char *name;

        if (asprintf(&name, "json:%s", s) < 0) {
            name = NULL;
        }
        free(s);
        return name;
    }
    return NULL;
}

const struct vimg_opt_desc *
cli_find_opt_desc(const struct vimg_opt_desc *desc, const char *name)
{
    for (; desc && desc->name; desc++) {
        if (strcmp(desc->name, name) == 0) {
            return desc;
        }
    }
    return NULL;
}

bool
cli_is_help_option(const char *opts)
{
    const char *p = opts;

    while (p && *p) {
        size_t len = strcspn(p, ",");

        if ((len == 4 && strncmp(p, "help", 4) == 0) ||
            (len == 1 && *p == '?')) {
            return true;
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return false;
}

static const char *
opt_type_name(enum vimg_opt_type t)
{
    switch (t) {
    case VIMG_OPT_BOOL:
        return "bool (on/off)";
    case VIMG_OPT_NUMBER:
        return "num";
    case VIMG_OPT_SIZE:
        return "size";
    case VIMG_OPT_STRING:
    default:
        return "str";
    }
}

static int
cmp_desc(const void *a, const void *b)
{
    const struct vimg_opt_desc *const *x = a, *const *y = b;

    return strcmp((*x)->name, (*y)->name);
}

/*
 * qemu lists the options of the "file" protocol (extent_size_hint, nocow and,
 * for formats that do not preallocate themselves, preallocation) only when a
 * target filename is given; the library merges them into the format's list.
 */
static bool
is_protocol_option(const char *format, const char *name)
{
    if (strcmp(name, "extent_size_hint") == 0 || strcmp(name, "nocow") == 0) {
        return true;
    }
    return strcmp(name, "preallocation") == 0 &&
           (strcmp(format, "raw") == 0 || strcmp(format, "luks") == 0);
}

void
cli_print_create_help(const char *format, bool with_filename)
{
    const struct vimg_opt_desc *desc = vimg_format_create_opts(format);
    const struct vimg_opt_desc **sorted;
    size_t n = 0, i;

    while (desc && desc[n].name) {
        n++;
    }
    sorted = calloc(n ? n : 1, sizeof(*sorted));
    if (!sorted) {
        return;
    }
    for (i = 0; i < n; i++) {
        sorted[i] = &desc[i];
    }
    if (!with_filename) {
        size_t k = 0;

        for (i = 0; i < n; i++) {
            if (!is_protocol_option(format, sorted[i]->name)) {
                sorted[k++] = sorted[i];
            }
        }
        n = k;
    }
    qsort(sorted, n, sizeof(*sorted), cmp_desc);
    if (with_filename) {
        printf("Supported options:\n");
    } else {
        printf("Supported %s options:\n", format);
    }
    for (i = 0; i < n; i++) {
        char *left;

        if (asprintf(&left, "%s=<%s>", sorted[i]->name,
                     opt_type_name(sorted[i]->type)) < 0) {
            break;
        }
        printf("  %-22s - %s\n", left, sorted[i]->help ? sorted[i]->help : "");
        free(left);
    }
    if (!with_filename) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    free(sorted);
}

int
cli_append_opts(char **dst, const char *more)
{
    char *s;

    if (!*dst) {
        s = strdup(more);
    } else if (asprintf(&s, "%s,%s", *dst, more) < 0) {
        s = NULL;
    }
    if (!s) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    free(*dst);
    *dst = s;
    return 0;
}

int
cli_collect_object(char ***objects, size_t *n_objects, char *arg)
{
    char **p = realloc(*objects, (*n_objects + 1) * sizeof(**objects));

    if (!p) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    *objects = p;
    p[(*n_objects)++] = arg;
    return 0;
}
