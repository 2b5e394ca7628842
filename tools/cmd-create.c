// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg create": make a new image like qemu-img create.  Validates the -o
 * list against the format's creation options, prints qemu's
 * "Formatting 'F', fmt=FMT ..." line (options in description order, set
 * values or defaults, size in bytes) and calls vimg_image_create().  With
 * -b (and no -u) the backing file is opened first, metadata only, as qemu
 * does: it must open, and it gives the size when none was given.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"

static const char create_help[] =
    "Create a new disk image FILENAME of SIZE bytes.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  -f FMT               image format (default raw)\n"
    "  -o OPTIONS           format options, e.g. key-secret=sec0,"
    "iter-time=2000;\n"
    "                       '-o help' lists the options of FMT\n"
    "  -b BACKING_FILE      backing file (formats with backing files only)\n"
    "  -F BACKING_FMT       format of the backing file\n"
    "  -u                   do not open the backing file\n"
    "  -q                   quiet\n"
    "  -h, --help           show this help\n"
    "\n"
    "SIZE accepts the suffixes k, M, G, T, P and E (powers of 1024).\n";

/* Print the "Formatting ..." line. */
static void
print_formatting(const char *filename, const char *fmt, uint64_t size,
                 const struct vimg_opt_desc *desc, struct vimg_opts *opts)
{
    printf("Formatting '%s', fmt=%s", filename, fmt);
    for (; desc && desc->name; desc++) {
        const char *v;

        if (strcmp(desc->name, "size") == 0) {
            printf(" size=%" PRIu64, size);
            continue;
        }
        if (strcmp(desc->name, VIMG_CREATE_OPT_BACKING_UNSAFE) == 0) {
            continue;
        }
        v = vimg_opts_get(opts, desc->name);
        if (v) {
            uint64_t n;

            if (desc->type == VIMG_OPT_SIZE && cli_parse_size(v, &n) == 0) {
                printf(" %s=%" PRIu64, desc->name, n);
            } else {
                printf(" %s=%s", desc->name, v);
            }
        } else if (desc->def) {
            printf(" %s=%s", desc->name, desc->def);
        }
    }
    printf("\n");
    fflush(stdout);
}

/*
 * The backing file's name as opened: relative names are taken from the
 * directory of the new image (qemu's path_combine).
 */
static char *
backing_path(const char *filename, const char *backing)
{
    const char *slash = strrchr(filename, '/');
    char *out;

    if (backing[0] == '/' || !slash) {
        return strdup(backing);
    }
    if (asprintf(&out, "%.*s/%s", (int)(slash - filename), filename,
                 backing) < 0) {
        return NULL;
    }
    return out;
}

/*
 * Open the backing file metadata-only before anything is printed, as
 * qemu-img create does without -u: report why it cannot be used, and take
 * its size (rounded up to 512 bytes) into *@size when !@have_size.
 * Return: 0, or -errno after printing the error.
 */
static int
probe_backing(const char *filename, const char *backing,
              const char *backing_fmt, bool have_size, uint64_t *size)
{
    struct vimg_image *b = NULL;
    struct vimg_error *err = NULL;
    uint64_t bsize;
    char *path;
    int r;

    path = backing_path(filename, backing);
    if (!path) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    r = vimg_image_open(path, backing_fmt, NULL, cli_secrets(),
                        VIMG_OPEN_NO_IO, &b, &err);
    free(path);
    if (r < 0) {
        cli_error_vimg(err, r, "%s: ", filename);
        fputs("Could not open backing image.\n", stderr);
        return r;
    }
    if (!backing_fmt) {
        cli_error("%s: Backing file specified without backing format",
                  filename);
        fprintf(stderr, "Detected format of %s.\n", vimg_image_format(b));
        vimg_image_close(b, NULL);
        return -EINVAL;
    }
    bsize = vimg_image_size(b);
    vimg_image_close(b, NULL);
    if (!have_size) {
        *size = bsize > INT64_MAX - 511 ? bsize : (bsize + 511) & ~511ULL;
    }
    return 0;
}

static int
run_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, OPT_OBJECT},
        {NULL, 0, NULL, 0},
    };
    const struct vimg_opt_desc *desc;
    struct vimg_opts *parsed = NULL, *create_opts = NULL;
    struct vimg_error *err = NULL;
    const char *fmt = "raw", *backing = NULL, *backing_fmt = NULL;
    const char *filename, *size_str = NULL, *osize;
    char *optstr = NULL, *prefix = NULL;
    struct cli_image_args ia = {.cmd = &cmd_create};
    size_t i, n;
    bool quiet, have_size = false, unsafe = false;
    uint64_t size = 0;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":ho:qf:b:F:u", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'o':
            if (cli_append_opts(&optstr, optarg) < 0) {
                goto out;
            }
            break;
        case 'b':
            backing = optarg;
            break;
        case 'F':
            backing_fmt = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    quiet = ia.quiet;
    if (cli_image_args_objects(&ia) < 0) {
        goto out;
    }

    if (optstr && cli_is_help_option(optstr)) {
        if (!vimg_format_known(fmt)) {
            cli_error("Unknown file format '%s'", fmt);
            goto out;
        }
        cli_print_create_help(fmt, optind < argc);
        rc = 0;
        goto out;
    }

    if (optind >= argc) {
        cli_error("Expecting image file name");
        cli_try_help();
        goto out;
    }
    filename = argv[optind++];
    if (optind < argc) {
        size_str = argv[optind++];
    }
    if (optind < argc) {
        cli_error("Unexpected argument: %s", argv[optind]);
        cli_try_help();
        goto out;
    }

    if (size_str) {
        r = cli_parse_size(size_str, &size);
        if (r == -ERANGE || (r == 0 && size > INT64_MAX)) {
            cli_error("Invalid image size specified. Must be between 0 and "
                      "%" PRId64 ".",
                      INT64_MAX);
            goto out;
        } else if (r < 0) {
            cli_print_size_error("image size");
            goto out;
        }
        have_size = true;
    }

    if (!vimg_format_known(fmt)) {
        cli_error("%s: Unknown file format '%s'", filename, fmt);
        goto out;
    }
    desc = vimg_format_create_opts(fmt);

    parsed = vimg_opts_new();
    create_opts = vimg_opts_new();
    if (!parsed || !create_opts) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    if (optstr) {
        r = vimg_opts_parse(parsed, optstr, NULL, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "%s: ", filename);
            goto out;
        }
    }
    /* Like qemu, in -o order: unknown names, then typed values. */
    if (asprintf(&prefix, "%s: ", filename) < 0) {
        prefix = NULL;
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    n = vimg_opts_count(parsed);
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(parsed, i);
        const struct vimg_opt_desc *d = cli_find_opt_desc(desc, k);

        if (!d) {
            cli_error("%s: Invalid parameter '%s'", filename, k);
            goto out;
        }
        if (cli_check_opt_value(prefix, d, vimg_opts_value(parsed, i)) < 0) {
            goto out;
        }
    }

    osize = vimg_opts_get(parsed, "size");
    if (osize) {
        if (have_size) {
            cli_error("%s: The image size must be specified only once",
                      filename);
            goto out;
        }
        r = cli_parse_size(osize, &size);
        if (r == -ERANGE) {
            cli_error("%s: Value '%s' is out of range for parameter 'size'",
                      filename, osize);
            goto out;
        }
        if (r < 0 || size > INT64_MAX) {
            /* qemu's hint lines follow the error, without a prefix. */
            cli_error("%s: Parameter 'size' expects a non-negative number "
                      "below 2^64",
                      filename);
            fputs("Optional suffix k, M, G, T, P or E means kilo-, mega-, "
                  "giga-, tera-, peta-\nand exabytes, respectively.\n",
                  stderr);
            goto out;
        }
        have_size = true;
    }

    if (backing) {
        if (!cli_find_opt_desc(desc, "backing_file")) {
            cli_error("%s: Backing file not supported for file format '%s'",
                      filename, fmt);
            goto out;
        }
        if (vimg_opts_set(parsed, "backing_file", backing) < 0 ||
            (backing_fmt &&
             vimg_opts_set(parsed, "backing_fmt", backing_fmt) < 0)) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
        if (unsafe && vimg_opts_set(parsed, VIMG_CREATE_OPT_BACKING_UNSAFE,
                                    "on") < 0) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    }
    if (!have_size && (!backing || unsafe)) {
        cli_error("%s: Image creation needs a size parameter", filename);
        goto out;
    }

    /* Creation options without "size", which travels as an argument. */
    n = vimg_opts_count(parsed);
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(parsed, i);

        if (strcmp(k, "size") != 0 &&
            vimg_opts_set(create_opts, k, vimg_opts_value(parsed, i)) < 0) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    }

    if (backing && !unsafe &&
        probe_backing(filename, backing, backing_fmt, have_size, &size) < 0) {
        goto out;
    }

    {
        /* qcow2-core: the legacy AES warning. */
        const char *ef = vimg_opts_get(parsed, "encrypt.format");
        const char *eo = vimg_opts_get(parsed, "encryption");

        if ((ef && strcmp(ef, "aes") == 0) ||
            (eo && strcmp(eo, "off") && strcmp(eo, "no") &&
             strcmp(eo, "false"))) {
            fprintf(stderr, CLI_NAME ": warning: AES-CBC encryption "
                    "(encrypt.format=aes) is insecure and only supported for "
                    "compatibility; use encrypt.format=luks\n");
        }
    }
    if (!quiet) {
        print_formatting(filename, fmt, size, desc, parsed);
    }
    r = vimg_image_create(filename, fmt, size, create_opts, cli_secrets(),
                          &err);
    if (r < 0) {
        cli_error_vimg(err, r, "%s: ", filename);
        goto out;
    }
    rc = 0;

out:
    vimg_opts_free(parsed);
    vimg_opts_free(create_opts);
    free(optstr);
    free(prefix);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_create = {
    .name = "create",
    .run = run_create,
    .synopsis = "create [--object objectdef] [-q] [-f fmt] "
                "[-b backing_file [-F backing_fmt]] [-u] [-o options] "
                "filename [size]",
    .help = create_help,
};
