// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg resize": change the virtual size of an image like qemu-img 7.2
 * resize, through vimg_image_truncate() (so every format with a truncate
 * callback is covered): absolute sizes or +/- deltas, --shrink required to
 * make an image smaller, "Image resized." on success, qemu's messages and
 * their order for every refusal.
 *
 * As in qemu-img, the last argument is always the size and is taken off
 * before option parsing, so "-1M" is not mistaken for an option.
 *
 * Keys: changing the size is a metadata operation (a raw luks file becomes
 * payload offset + new size; the new sectors hold no valid ciphertext,
 * exactly as after qemu-img resize).  So, unlike qemu-img, vimg does not
 * need the key: without driver options the image is opened metadata-only.
 * When driver options are given (e.g. key-secret) the image is opened
 * normally, so a wrong key is refused as in qemu.
 *
 * --preallocation=falloc|full writes zeroes through the image over the new
 * range (for encrypted images: encrypted zeroes, so the new range reads as
 * zeroes); that needs data access, hence the key.  "metadata" is refused
 * like qemu refuses it for raw and luks.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"

/* qemu's largest image length: INT64_MAX aligned down to 1 GiB. */
#define RESIZE_MAX_LENGTH ((uint64_t)INT64_MAX - (((uint64_t)1 << 30) - 1))
#define RESIZE_ZERO_CHUNK (1024 * 1024)

static const char resize_help[] =
    "Change the virtual size of FILENAME to SIZE, or by +SIZE / -SIZE.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF       define a secret (repeatable); see vimg(1)\n"
    "  --image-opts             FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT                   image format (probed by default)\n"
    "  --preallocation=MODE     off (default), falloc or full: write "
    "zeroes over the\n"
    "                           new range (needs the key of encrypted "
    "images)\n"
    "  --shrink                 allow making the image smaller (data "
    "beyond the new end\n"
    "                           is lost)\n"
    "  -q                       quiet\n"
    "  -h, --help               show this help\n"
    "\n"
    "No key is needed unless driver options are given (then they are "
    "checked) or\n--preallocation asks for zeroes to be written.\n";

enum {
    OPT_PREALLOCATION = OPT_HELP + 1,
    OPT_SHRINK,
};

enum prealloc {
    PREALLOC_OFF,
    PREALLOC_METADATA,
    PREALLOC_FALLOC,
    PREALLOC_FULL,
};

static int
parse_prealloc(const char *s, enum prealloc *out)
{
    static const char *const names[] = {"off", "metadata", "falloc", "full"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum prealloc)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Write zeroes over [from, to) through the image (preallocation). */
static int
write_zeroes(struct vimg_image *img, uint64_t from, uint64_t to)
{
    struct vimg_error *err = NULL;
    uint8_t *zero = calloc(1, RESIZE_ZERO_CHUNK);
    int r = 0;

    if (!zero) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    while (from < to) {
        size_t n = (to - from) < RESIZE_ZERO_CHUNK ? (size_t)(to - from)
                                                   : RESIZE_ZERO_CHUNK;

        r = vimg_image_pwrite(img, zero, n, from, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "Could not preallocate new data: ");
            break;
        }
        from += n;
    }
    free(zero);
    return r;
}

static int
run_resize(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"preallocation", required_argument, NULL, OPT_PREALLOCATION},
        {"shrink", no_argument, NULL, OPT_SHRINK},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_resize};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    const char *size_arg, *num;
    enum prealloc prealloc = PREALLOC_OFF;
    uint64_t cur, delta = 0, new_size;
    bool shrink = false;
    int sign = 0, c, rc = 1, r;

    if (argc == 2 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_print_command_help(&cmd_resize);
        return 0;
    }
    if (argc < 3) {
        cli_error("Not enough arguments");
        cli_try_help();
        return 1;
    }
    /* The size is always last; hide it from getopt ("-1G" is no option). */
    size_arg = argv[--argc];

    optind = 1;
    while ((c = getopt_long(argc, argv, ":f:hq", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SHRINK:
            shrink = true;
            break;
        case OPT_PREALLOCATION:
            if (parse_prealloc(optarg, &prealloc) < 0) {
                cli_error("Invalid preallocation mode '%s'", optarg);
                goto out;
            }
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    if (optind != argc - 1) {
        cli_error("Expecting image file name and size");
        cli_try_help();
        goto out;
    }
    if (cli_image_args_objects(&ia) < 0) {
        goto out;
    }

    num = size_arg;
    if (*num == '+' || *num == '-') {
        sign = *num == '+' ? 1 : -1;
        num++;
    }
    r = cli_parse_size(num, &delta);
    if (r == -ERANGE) {
        cli_error("Value '%s' is out of range for parameter 'size'", num);
        goto out;
    } else if (r < 0) {
        cli_error("Parameter 'size' expects a non-negative number below 2^64");
        fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, "
                        "mega-, giga-, tera-, peta-\n"
                        "and exabytes, respectively.\n");
        goto out;
    }

    if (cli_image_args_parse(&ia, argv[optind], &spec) < 0) {
        goto out;
    }
    if (prealloc == PREALLOC_METADATA) {
        cli_error("Unsupported preallocation mode: metadata");
        goto out;
    }
    /* Metadata-only (no key) unless a key was given or zeroes are to be
     * written. */
    if (cli_image_open(
            &spec,
            VIMG_OPEN_RDWR |
                (prealloc != PREALLOC_OFF ? 0 : cli_metadata_flags(&spec)),
            &img) < 0) {
        goto out;
    }
    cur = vimg_image_size(img);

    /* qemu computes in int64: anything not in (0, INT64_MAX] is refused. */
    if (sign > 0) {
        if (delta > (uint64_t)INT64_MAX - cur) {
            cli_error("New image size must be positive");
            goto out;
        }
        new_size = cur + delta;
    } else if (sign < 0) {
        if (delta >= cur) {
            cli_error("New image size must be positive");
            goto out;
        }
        new_size = cur - delta;
    } else {
        if (delta == 0 || delta > INT64_MAX) {
            cli_error("New image size must be positive");
            goto out;
        }
        new_size = delta;
    }
    if (new_size == 0) {
        cli_error("New image size must be positive");
        goto out;
    }
    if (prealloc != PREALLOC_OFF && new_size < cur) {
        cli_error("Preallocation can only be used for growing images");
        goto out;
    }
    if (new_size < cur && !shrink) {
        cli_error("Use the --shrink option to perform a shrink operation.");
        cli_error("warning: Shrinking an image will delete all data beyond "
                  "the shrunken image's end. Before performing such an "
                  "operation, make sure there is no important data there.");
        goto out;
    }
    if (new_size > RESIZE_MAX_LENGTH) {
        cli_error("offset(%" PRIu64 ") exceeds maximum(%" PRIu64 ")", new_size,
                  RESIZE_MAX_LENGTH);
        goto out;
    }

    r = vimg_image_truncate(img, new_size, shrink, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        goto out;
    }
    if (prealloc != PREALLOC_OFF) {
        /*
         * Up to the size asked for (in whole requests of the image): a raw
         * file ends exactly there, as with qemu, even though its disk size
         * counts whole sectors.
         */
        uint64_t a = vimg_image_alignment(img);
        uint64_t end = (new_size + a - 1) / a * a;  /* <= INT64_MAX */

        if (end > vimg_image_size(img)) {
            end = vimg_image_size(img);
        }
        if (end > cur && write_zeroes(img, cur, end) < 0) {
            goto out;
        }
    }
    if (cli_image_close(&img) < 0) {
        goto out;
    }
    if (!ia.quiet) {
        printf("Image resized.\n");
    }
    rc = 0;

out:
    vimg_image_close(img, NULL);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_resize = {
    .name = "resize",
    .run = run_resize,
    .synopsis = "resize [--object objectdef] [--image-opts] [-f fmt] "
                "[--preallocation=prealloc] [-q] [--shrink] filename "
                "[+ | -]size",
    .help = resize_help,
};
