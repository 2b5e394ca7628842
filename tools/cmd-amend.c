// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg amend": change image options like qemu-img 7.2 amend: LUKS key
 * slots on raw luks images with the options state, new-secret, old-secret,
 * keyslot, iter-time (and vimg's iter-count), on qcow2 with the same names
 * prefixed "encrypt."; on qcow2 also compat, lazy_refcounts and size
 * (lib/format/qcow2-amend.c).  The image is opened
 * read-write with its key (key-secret / encrypt.key-secret through
 * --image-opts), exactly as qemu-img needs it, then the options go to
 * vimg_image_amend().  Nothing is printed on success; refusals use
 * qemu-img's messages and exit status 1.
 *
 * "-o help" prints the amend options of the format: with -f and no image
 * directly, otherwise after opening the image (as qemu-img does).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "open-image.h"
#include "progress.h"

static const char amend_help[] =
    "Change options of an existing image.  For LUKS encryption (raw luks,\n"
    "or qcow2 with the \"encrypt.\" prefix) these manage key slots: add a\n"
    "passphrase, or erase slots by keyslot and/or old-secret (LUKS1 slots\n"
    "0-7; raw LUKS2 keyslots 0-31, never overwritten).  qcow2 also takes\n"
    "compat=0.10|1.1, lazy_refcounts=on|off, refcount_bits=N and size=SIZE.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF       define a secret (repeatable); see vimg(1)\n"
    "  --image-opts             FILENAME is an option string "
    "(driver=...,file.filename=...,\n"
    "                           key-secret=ID): the image is opened with "
    "its key\n"
    "  -f FMT                   image format (probed by default)\n"
    "  -o OPTIONS               amend options ('-o help' lists them):\n"
    "                           state=active|inactive, new-secret=ID,\n"
    "                           old-secret=ID, keyslot=N, iter-time=MS,\n"
    "                           iter-count=N (vimg: explicit PBKDF2 "
    "iterations);\n"
    "                           qcow2: compat=, lazy_refcounts=,\n"
    "                           refcount_bits=, size=\n"
    "  --force                  allow overwriting an active key slot and "
    "erasing the\n"
    "                           last active one(s): the data becomes "
    "unreadable\n"
    "  -t CACHE                 accepted for qemu-img compatibility "
    "(ignored)\n"
    "  -p                       show progress\n"
    "  -q                       quiet\n"
    "  -h, --help               show this help\n";

enum {
    OPT_FORCE = OPT_HELP + 1,
};

struct amend_opt_help {
    const char *name;
    const char *help;
};

/* The LUKS amend options in qemu's listing order, plus vimg's iter-count. */
static const struct amend_opt_help luks_amend_opts[] = {
    { "iter-time=<num>", "Time to spend in PBKDF in milliseconds" },
    { "keyslot=<num>", "Select a single keyslot to modify explicitly" },
    { "new-secret=<str>",
      "New secret to set in the matching keyslots. Empty string to erase" },
    { "old-secret=<str>", "Select all keyslots that match this password" },
    { "state=<str>",
      "Select new state of affected keyslots (active/inactive)" },
    { "iter-count=<num>",
      "PBKDF iterations of an added key slot (overrides iter-time; vimg "
      "only)" },
};

/* qcow2's own amend options, in qemu's (alphabetical) listing; "encrypt."
 * sorts between data_file_raw and lazy_refcounts. */
static const struct amend_opt_help qcow2_amend_before[] = {
    { "backing_file=<str>", "File name of a base image" },
    { "backing_fmt=<str>", "Image format of the base image" },
    { "compat=<str>", "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "data_file=<str>", "File name of an external data file" },
    { "data_file_raw=<bool (on/off)>",
      "The external data file must stay valid as a raw image" },
};
static const struct amend_opt_help qcow2_amend_after[] = {
    { "lazy_refcounts=<bool (on/off)>", "Postpone refcount updates" },
    { "refcount_bits=<num>", "Width of a reference count entry in bits" },
    { "size=<size>", "Virtual disk size" },
};

static void
print_opts(const struct amend_opt_help *o, size_t n, const char *prefix)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char left[64];

        snprintf(left, sizeof(left), "%s%s", prefix, o[i].name);
        printf("  %-22s - %s\n", left, o[i].help);
    }
}

/* Print "-o help" for @format; 0, or 1 after an error message. */
static int
print_amend_help(const char *format)
{
    const char *prefix;

    if (strcmp(format, "luks") == 0) {
        prefix = "";
    } else if (strcmp(format, "qcow2") == 0) {
        prefix = "encrypt.";
    } else if (vimg_format_known(format)) {
        cli_error("Format driver '%s' does not support option amendment",
                  format);
        return 1;
    } else {
        cli_error("Unknown file format '%s'", format);
        return 1;
    }
    printf("Amend options for '%s':\n", format);
    if (*prefix) {
        print_opts(qcow2_amend_before, ARRAY_SIZE(qcow2_amend_before), "");
    }
    /* qemu lists the LUKS options without vimg's iter-count; it ends the
     * list. */
    print_opts(luks_amend_opts, ARRAY_SIZE(luks_amend_opts) - 1, prefix);
    if (*prefix) {
        print_opts(qcow2_amend_after, ARRAY_SIZE(qcow2_amend_after), "");
    }
    print_opts(luks_amend_opts + ARRAY_SIZE(luks_amend_opts) - 1, 1, prefix);
    return 0;
}

/* qemu's check of an -o argument: not empty, no dangling final comma. */
static bool
valid_option_list(const char *s)
{
    size_t n = strlen(s), commas = 0;

    if (n == 0) {
        return false;
    }
    while (commas < n && s[n - 1 - commas] == ',') {
        commas++;
    }
    return commas % 2 == 0;
}

static int
run_amend(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"force", no_argument, NULL, OPT_FORCE},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_amend};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_opts *opts = NULL;
    struct vimg_error *err = NULL;
    struct cli_progress prog;
    char *options = NULL;
    bool progress = false, force = false;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":ho:f:t:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!valid_option_list(optarg)) {
                cli_error("Invalid option list: %s", optarg);
                goto out;
            }
            if (cli_append_opts(&options, optarg) < 0) {
                goto out;
            }
            break;
        case 't':
            break;              /* cache mode: no meaning for vimg */
        case 'p':
            progress = true;
            break;
        case OPT_FORCE:
            force = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    if (ia.quiet) {
        progress = false;
    }
    if (!options) {
        cli_error("Must specify options (-o)");
        cli_try_help();
        goto out;
    }
    if (cli_image_args_objects(&ia) < 0) {
        goto out;
    }
    if (ia.format && cli_is_help_option(options)) {
        rc = print_amend_help(ia.format);
        goto out;
    }
    if (optind != argc - 1) {
        cli_error("Expecting one image file name");
        goto out;
    }
    if (cli_image_args_open(&ia, argv[optind], VIMG_OPEN_RDWR, &spec,
                            &img) < 0) {
        goto out;
    }
    if (cli_is_help_option(options)) {
        rc = print_amend_help(vimg_image_format(img));
        goto out;
    }
    opts = vimg_opts_new();
    if (!opts) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    r = vimg_opts_parse(opts, options, NULL, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        goto out;
    }

    progress_start(&prog, progress);
    r = vimg_image_amend(img, opts, cli_secrets(), force, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        goto out;
    }
    if (cli_image_close(&img) < 0) {
        goto out;
    }
    progress_finish(&prog, false);
    rc = 0;

out:
    vimg_image_close(img, NULL);
    vimg_opts_free(opts);
    cli_image_clear(&spec);
    free(options);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_amend = {
    .name = "amend",
    .run = run_amend,
    .synopsis = "amend [--object objectdef] [--image-opts] [-p] [-q] "
                "[-f fmt] [-t cache] [--force] -o options filename",
    .help = amend_help,
};
