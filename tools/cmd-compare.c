// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg compare": compare the guest content of two images like qemu-img
 * compare.  Exit status 0 = identical, 1 = different, 2 = error (1 for
 * command-line usage errors, as qemu-img does).  Without -s
 * the shorter image counts as zero-extended (with a warning); with -s a size
 * difference is itself a mismatch.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"
#include "progress.h"

static const char compare_help[] =
    "Compare the contents of FILENAME1 and FILENAME2.\n"
    "Exit status: 0 identical, 1 different, 2 error.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         the names are option strings "
    "(driver=...,file.filename=...)\n"
    "  -f FMT               format of the first image (probed by default)\n"
    "  -F FMT               format of the second image\n"
    "  -s                   strict: images of different sizes differ\n"
    "  -p                   show progress\n"
    "  -q                   quiet\n"
    "  -T CACHE             accepted and ignored\n"
    "  -U, --force-share    accepted\n"
    "  -h, --help           show this help\n";

static int
run_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_compare};
    struct cli_image spec1 = {0}, spec2 = {0};
    struct vimg_image *a = NULL, *b = NULL;
    struct vimg_error *err = NULL;
    struct cli_progress prog = {0};
    const char *fmt2 = NULL;
    bool quiet, strict = false, progress = false;
    uint64_t size1, size2, mismatch = 0;
    int c, rc = 2, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            break;
        case 'p':
            progress = true;
            break;
        case 's':
            strict = true;
            break;
        default:
            /* Usage errors exit 1 even here, as in qemu-img. */
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    quiet = ia.quiet;
    if (argc - optind != 2) {
        cli_error("Expecting two image file names");
        cli_try_help();
        rc = 1;
        goto out;
    }
    if (cli_image_args_objects(&ia) < 0 ||
        cli_image_args_open(&ia, argv[optind], 0, &spec1, &a) < 0) {
        goto out;
    }
    /* qemu opens the first image before it looks at the second's -F. */
    ia.format = fmt2;
    if (cli_image_args_open(&ia, argv[optind + 1], 0, &spec2, &b) < 0) {
        goto out;
    }
    size1 = vimg_image_size(a);
    size2 = vimg_image_size(b);

    progress_start(&prog, progress && !quiet);
    if (strict && size1 != size2) {
        progress_complete(&prog);
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        progress_finish(&prog, false);
        rc = 1;
        goto out;
    }

    r = vimg_compare(a, b, strict, &mismatch, progress_cb, &prog, &err);
    if (r < 0) {
        progress_finish(&prog, false);
        cli_error_vimg(err, r, NULL);
        rc = 2;
        goto out;
    }
    progress_complete(&prog);
    if (!quiet) {
        uint64_t common = size1 < size2 ? size1 : size2;

        if (size1 != size2 && (r == 0 || mismatch >= common)) {
            printf("Warning: Image size mismatch!\n");
        }
        if (r == 0) {
            printf("Images are identical.\n");
        } else {
            printf("Content mismatch at offset %" PRIu64 "!\n", mismatch);
        }
    }
    progress_finish(&prog, false);
    rc = r == 0 ? 0 : 1;

out:
    vimg_image_close(a, NULL);
    vimg_image_close(b, NULL);
    cli_image_clear(&spec1);
    cli_image_clear(&spec2);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_compare = {
    .name = "compare",
    .run = run_compare,
    .synopsis = "compare [--object objectdef] [--image-opts] [-f fmt] "
                "[-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] "
                "filename1 filename2",
    .help = compare_help,
};
