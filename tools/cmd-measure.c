// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg measure": how large a new image file must be, like qemu-img 7.2
 * measure, for a disk of --size N or for the content of an existing image.
 * The numbers come from vimg_measure(); this file mirrors qemu-img's
 * argument checks, their order and messages, and its two output forms
 * ("required size: N" / "fully allocated size: N", or JSON with the keys
 * "required" and "fully-allocated").
 *
 * Secrets: the layout of a luks (or LUKS-in-qcow2) target does not depend
 * on the passphrase, so vimg does not need -o key-secret where qemu-img
 * does (qemu instantiates the cipher).  If a key-secret is named, the
 * secret must exist ("No secret with id 'ID'"), as in qemu.  A source
 * image is opened metadata-only unless driver options (a key) are given.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "open-image.h"
#include "output.h"

static const char measure_help[] =
    "Print the file size a new image of format OUTPUT_FMT needs, for a "
    "disk of\nsize N or for the content of FILENAME.\n"
    "\n"
    "Options:\n"
    "  --output=FMT         'human' (default) or 'json'\n"
    "  -O OUTPUT_FMT        format of the new image (default raw)\n"
    "  -o OPTIONS           its creation options (as for create); "
    "repeatable\n"
    "  --size N             virtual size (suffixes k, M, G, T, P, E)\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT               format of FILENAME (probed by default)\n"
    "  -l SNAPSHOT          accepted for qemu-img syntax; snapshots are "
    "not supported\n"
    "  -h, --help           show this help\n"
    "\n"
    "No key is needed, for the source nor for an encrypted target.\n";

enum {
    OPT_SIZE = OPT_HELP + 1,
};

/*
 * Parse and check the -o string for @format: unknown keys and badly typed
 * values print qemu's message plus "Invalid options for file format".
 */
static int
parse_create_opts(const char *format, const char *str, struct vimg_opts **out)
{
    const struct vimg_opt_desc *desc = vimg_format_create_opts(format);
    struct vimg_opts *o = vimg_opts_new();
    struct vimg_error *err = NULL;
    size_t i, n;
    int r;

    if (!o) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    if (str) {
        r = vimg_opts_parse(o, str, NULL, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            goto bad;
        }
    }
    n = vimg_opts_count(o);
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(o, i);
        const struct vimg_opt_desc *d = cli_find_opt_desc(desc, k);

        if (!d) {
            cli_error("Invalid parameter '%s'", k);
            goto bad;
        }
        if (cli_check_opt_value(NULL, d, vimg_opts_value(o, i)) < 0) {
            goto bad;
        }
    }
    *out = o;
    return 0;

bad:
    cli_error("Invalid options for file format '%s'", format);
    vimg_opts_free(o);
    return -EINVAL;
}

/* Secrets named by "key-secret" / "encrypt.key-secret" must exist. */
static int
check_named_secrets(struct vimg_opts *o)
{
    size_t i, n = vimg_opts_count(o);

    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(o, i);
        size_t kl = strlen(k);

        if (kl >= 10 && strcmp(k + kl - 10, "key-secret") == 0 &&
            !vimg_secrets_has(cli_secrets(), vimg_opts_value(o, i))) {
            cli_error("No secret with id '%s'", vimg_opts_value(o, i));
            return -ENOENT;
        }
    }
    return 0;
}

static int
print_result(bool json, uint64_t required, uint64_t full)
{
    struct json_object *obj;
    int r;

    if (!json) {
        printf("required size: %" PRIu64 "\n", required);
        printf("fully allocated size: %" PRIu64 "\n", full);
        return 0;
    }
    obj = json_object_new_object();
    if (!obj) {
        return -ENOMEM;
    }
    json_object_object_add(obj, "required",
                           json_object_new_int64((int64_t)required));
    json_object_object_add(obj, "fully-allocated",
                           json_object_new_int64((int64_t)full));
    r = qjson_print(obj);
    json_object_put(obj);
    return r;
}

static int
run_measure(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_measure};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct vimg_opts *copts = NULL;
    const char *out_fmt = "raw", *output = "human";
    const char *snapshot = NULL, *filename = NULL;
    char *optstr = NULL;
    uint64_t size = 0, required = 0, full = 0;
    bool have_size = false, json = false;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":f:hl:o:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            if (cli_append_opts(&optstr, optarg) < 0) {
                goto out;
            }
            break;
        case 'l':
            snapshot = optarg;
            break;
        case OPT_SIZE:
            r = cli_parse_size(optarg, &size);
            if (r == -ERANGE || (r == 0 && size > INT64_MAX)) {
                cli_error("Invalid image size specified. Must be between 0 "
                          "and %" PRId64 ".",
                          INT64_MAX);
                goto out;
            } else if (r < 0) {
                cli_print_size_error("image size");
                goto out;
            }
            have_size = true;
            break;
        case OPT_OUTPUT:
            output = optarg;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    if (cli_parse_output(output, &json) < 0 ||
        cli_image_args_objects(&ia) < 0) {
        goto out;
    }
    if (argc - optind > 1) {
        cli_error("At most one filename argument is allowed.");
        goto out;
    }
    if (optind < argc) {
        filename = argv[optind];
    }
    if (!filename && (ia.image_opts || ia.format || snapshot)) {
        cli_error("--image-opts, -f, and -l require a filename argument.");
        goto out;
    }
    if (cli_image_args_check(&ia) < 0) {
        goto out;
    }
    if (filename && have_size) {
        cli_error("--size N cannot be used together with a filename.");
        goto out;
    }
    if (!filename && !have_size) {
        cli_error("Either --size N or one filename must be specified.");
        goto out;
    }

    if (filename) {
        if (cli_image_args_parse(&ia, filename, &spec) < 0 ||
            cli_image_open(&spec, cli_metadata_flags(&spec), &img) < 0) {
            goto out;
        }
        if (snapshot) {
            /* No vimg format loads internal snapshots (yet). */
            cli_error("Failed to load snapshot: Block format '%s' used by "
                      "device '' does not support temporarily loading "
                      "internal snapshots",
                      vimg_image_format(img));
            goto out;
        }
    }
    if (!vimg_format_known(out_fmt)) {
        cli_error("Unknown file format '%s'", out_fmt);
        goto out;
    }
    if (parse_create_opts(out_fmt, optstr, &copts) < 0) {
        goto out;
    }
    r = vimg_measure(out_fmt, copts, img, size, &required, &full, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        goto out;
    }
    if (check_named_secrets(copts) < 0) {
        goto out;
    }
    if (print_result(json, required, full) < 0) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    rc = 0;

out:
    vimg_opts_free(copts);
    vimg_image_close(img, NULL);
    cli_image_clear(&spec);
    free(optstr);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_measure = {
    .name = "measure",
    .run = run_measure,
    .synopsis = "measure [--output=ofmt] [-O output_fmt] [-o options] "
                "[--size N | [--object objectdef] [--image-opts] [-f fmt] "
                "[-l snapshot_param] filename]",
    .help = measure_help,
};
