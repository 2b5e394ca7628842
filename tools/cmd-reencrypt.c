// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg reencrypt": re-encrypt an image in place with a new master key
 * (docs/reencrypt.md), a vimg feature qemu-img does not have.  The key
 * secret is named in -o like at creation (key-secret=ID for raw luks,
 * encrypt.key-secret=ID for qcow2); the other -o options choose the new
 * header's algorithms and PBKDF2 cost.  The image is opened read-write
 * with that key, then vimg_image_reencrypt() does the work.  An
 * interrupted run is resumed by running the same command again.  qcow v1
 * images are replaced by a qcow2 + LUKS copy (reencrypt-qcow1.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"
#include "progress.h"
#include "reencrypt-qcow1.h"

static const char reencrypt_help[] =
    "Re-encrypt an image in place with a new master key (a vimg feature).\n"
    "Raw LUKS1 volumes and qcow2 images with LUKS encryption are supported;\n"
    "an unencrypted qcow2 image is encrypted in place, and a qcow2 image\n"
    "with legacy AES encryption is migrated in place, to qcow2 with LUKS\n"
    "(the AES passphrase becomes the LUKS passphrase; AES has no key check,\n"
    "so a sample of the data is decrypted first and the run refused if it\n"
    "all looks random, as with a wrong passphrase).\n"
    "A qcow (version 1) image, plain or AES, is replaced by a new qcow2\n"
    "with LUKS under the same name (FILENAME.reenc-new, synced, renamed\n"
    "over it; a kill leaves the original; the backing file is kept).\n"
    "Progress is journaled in FILENAME.reenc: after an interruption (even\n"
    "kill -9 or a power cut) run the same command again to finish.  Until\n"
    "then vimg reads the image correctly and refuses to open it read-write\n"
    "(writes, snapshots, resize, amend, check -r, rebase, commit).\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF       define a secret (repeatable); see vimg(1)\n"
    "  -f FMT                   image format: luks, qcow2 or qcow\n"
    "                           (probed by default)\n"
    "  -o OPTIONS               key-secret=ID (qcow2: encrypt.key-secret=ID),"
    " the\n"
    "                           passphrase of the image, which becomes the "
    "only key\n"
    "                           slot of the new header; and optionally for "
    "the new\n"
    "                           header (qcow2 with the \"encrypt.\" prefix):\n"
    "                           cipher-alg, cipher-mode, ivgen-alg, "
    "ivgen-hash-alg,\n"
    "                           hash-alg, iter-time=MS, iter-count=N\n"
    "  --force                  drop key slots other than the one opened;\n"
    "                           legacy AES (qcow2 or qcow): migrate even "
    "if the\n"
    "                           data looks random\n"
    "  -p                       show progress\n"
    "  -q                       quiet\n"
    "  -h, --help               show this help\n";

enum {
    OPT_FORCE = OPT_HELP + 1,
};

/*
 * The format of @path: -f, or probed from the content (not by opening the
 * image: a header half replaced by an interrupted run only opens through
 * the journal, with the key).  malloc'd; NULL after an error message.
 */
static char *
image_format(const char *path, const char *fmt)
{
    struct vimg_error *err = NULL;
    const char *probed = fmt;
    char *name;
    int r;

    if (!fmt) {
        r = vimg_probe(path, &probed, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            return NULL;
        }
    }
    name = strdup(probed);
    if (!name) {
        cli_error("%s", strerror(ENOMEM));
    }
    return name;
}

static int
run_reencrypt(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, OPT_OBJECT},
        {"force", no_argument, NULL, OPT_FORCE},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_reencrypt};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_opts *opts = NULL;
    struct vimg_error *err = NULL;
    struct cli_progress prog;
    const char *key_opt, *key_id;
    char *options = NULL, *format = NULL;
    bool progress = false, force = false;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":ho:f:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (cli_append_opts(&options, optarg) < 0) {
                goto out;
            }
            break;
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
    if (cli_image_args_objects(&ia) < 0 || cli_expect_one_image(argc) < 0) {
        goto out;
    }
    opts = vimg_opts_new();
    if (!opts) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    if (options) {
        r = vimg_opts_parse(opts, options, NULL, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            goto out;
        }
    }
    format = image_format(argv[optind], ia.format);
    if (!format) {
        goto out;
    }
    if (strcmp(format, "qcow") == 0) {
        /* qcow v1 has no LUKS: replaced by a qcow2 + LUKS copy. */
        rc = reencrypt_qcow1(argv[optind], opts, progress, ia.quiet,
                             force) < 0;
        goto out;
    }
    key_opt = strcmp(format, "qcow2") == 0 ? "encrypt.key-secret"
                                           : "key-secret";
    key_id = vimg_opts_get(opts, key_opt);
    if (cli_image_parse(argv[optind], false, format, &spec) < 0) {
        goto out;
    }
    if (key_id) {
        if (!spec.opts) {
            spec.opts = vimg_opts_new();
        }
        if (!spec.opts || vimg_opts_set(spec.opts, key_opt, key_id) < 0) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    }
    /* The one writer allowed while a journal exists: it resumes it. */
    if (cli_image_open(&spec, VIMG_OPEN_RDWR | VIMG_OPEN_REENCRYPT,
                       &img) < 0) {
        goto out;
    }

    progress_start(&prog, progress);
    r = vimg_image_reencrypt(img, opts, cli_secrets(), force,
                             progress ? progress_cb : NULL, &prog, &err);
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
    free(format);
    free(options);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_reencrypt = {
    .name = "reencrypt",
    .run = run_reencrypt,
    .synopsis = "reencrypt [--object objectdef] [-p] [-q] [-f fmt] [--force] "
                "-o options filename",
    .help = reencrypt_help,
};
