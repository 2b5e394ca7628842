// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg dd": dd-style copy like qemu-img dd.  The output image is created
 * with size min(count * bs, input size) - skip * bs, exactly as qemu-img 7.2
 * computes it, and the byte range [skip * bs, ...) of the input is copied to
 * its start.  The copy is done in multiples of bs for speed; the result is
 * the same as copying one block at a time.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"

static const char dd_help[] =
    "Copy from the image IN to a new image OUT, dd style.\n"
    "\n"
    "Operands:\n"
    "  if=IN                input image\n"
    "  of=OUT               output image (created; its size is what is "
    "copied)\n"
    "  bs=BYTES             block size (default 512; suffixes k, M, ...)\n"
    "  count=N              copy only N blocks\n"
    "  skip=N               skip N blocks at the start of the input\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         IN is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT               input format (probed by default)\n"
    "  -O OUTPUT_FMT        output format (default raw)\n"
    "  -U, --force-share    accepted\n"
    "  -h, --help           show this help\n";

#define DD_CHUNK (1u << 20)

/*
 * parse_operand - parse the size operand @what=@v as qemu-img dd does: a
 * syntax error gives the two-line suffix hint, a value outside
 * [@min, @max] "Invalid WHAT specified. Must be between MIN and MAX.".
 * Return: 0, or -EINVAL after printing the error.
 */
static int
parse_operand(const char *what, const char *v, uint64_t min, uint64_t max,
              uint64_t *out)
{
    uint64_t val;
    int r = cli_parse_size_plus(v, &val);

    if (r == -EINVAL) {
        cli_print_size_error(what);
        return -EINVAL;
    }
    if (r < 0 || val < min || val > max) {
        cli_error("Invalid %s specified. Must be between %" PRIu64 " and %"
                  PRIu64 ".", what, min, max);
        return -EINVAL;
    }
    *out = val;
    return 0;
}

static int
run_dd(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_dd};
    struct cli_image in_spec = {0}, out_spec = {0};
    struct vimg_image *in = NULL, *out = NULL;
    struct vimg_error *err = NULL;
    const char *out_fmt = "raw", *in_name = NULL;
    const char *out_name = NULL;
    unsigned char *buf = NULL;
    size_t chunk;
    bool have_count = false;
    uint64_t bs = 512, count = 0, skip = 0, size, offset, pos;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'O':
            out_fmt = optarg;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }

    for (; optind < argc; optind++) {
        const char *a = argv[optind];
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a) : strlen(a);
        const char *v = eq ? eq + 1 : "";

        if (eq && kl == 2 && strncmp(a, "bs", 2) == 0) {
            if (parse_operand("bs", v, 1, INT_MAX, &bs) < 0) {
                goto out;
            }
        } else if (eq && kl == 5 && strncmp(a, "count", 5) == 0) {
            if (parse_operand("count", v, 0, INT64_MAX, &count) < 0) {
                goto out;
            }
            have_count = true;
        } else if (eq && kl == 4 && strncmp(a, "skip", 4) == 0) {
            if (parse_operand("skip", v, 0, INT64_MAX, &skip) < 0) {
                goto out;
            }
        } else if (eq && kl == 2 && strncmp(a, "if", 2) == 0) {
            in_name = v;
        } else if (eq && kl == 2 && strncmp(a, "of", 2) == 0) {
            out_name = v;
        } else {
            cli_error("unrecognized operand %.*s", (int)kl, a);
            goto out;
        }
    }
    if (!in_name || !out_name || !*in_name || !*out_name) {
        cli_error("Must specify both input and output files");
        goto out;
    }
    if (cli_image_args_objects(&ia) < 0 || cli_image_args_check(&ia) < 0) {
        goto out;
    }
    if (!vimg_format_known(out_fmt)) {
        /* qemu-img dd's wording (without the name). */
        cli_error("Unknown file format");
        goto out;
    }

    if (cli_image_args_open(&ia, in_name, 0, &in_spec, &in) < 0) {
        goto out;
    }

    size = vimg_image_size(in);
    if (have_count && count <= size / bs && count * bs < size) {
        size = count * bs;
    }
    offset = skip <= UINT64_MAX / bs ? skip * bs : UINT64_MAX;

    r = vimg_image_create(out_name, out_fmt, offset > size ? 0 : size - offset,
                          NULL, cli_secrets(), &err);
    if (r < 0) {
        cli_error_vimg(err, r,
                       "%s: error while creating output image: ", out_name);
        goto out;
    }
    if (offset > size) {
        /*
         * qemu-img 7.2 prints this, leaves the empty output file and still
         * exits 0; scripts may rely on that status, so mirror it.
         */
        cli_error("%s: cannot skip to specified offset", in_name);
        rc = 0;
        goto out;
    }

    if (cli_image_parse(out_name, false, out_fmt, &out_spec) < 0 ||
        cli_image_open(&out_spec, VIMG_OPEN_RDWR, &out) < 0) {
        goto out;
    }

    chunk = bs >= DD_CHUNK ? (size_t)bs : (size_t)(DD_CHUNK / bs * bs);
    buf = malloc(chunk);
    if (!buf) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    for (pos = offset; pos < size;) {
        size_t n = size - pos < chunk ? (size_t)(size - pos) : chunk;

        r = vimg_image_pread(in, buf, n, pos, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "%s: error while reading: ", in_name);
            goto out;
        }
        r = vimg_image_pwrite(out, buf, n, pos - offset, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "%s: error while writing: ", out_name);
            goto out;
        }
        pos += n;
    }
    r = vimg_image_close(out, &err);
    out = NULL;
    if (r < 0) {
        cli_error_vimg(err, r, "%s: ", out_name);
        goto out;
    }
    rc = 0;

out:
    free(buf);
    vimg_image_close(in, NULL);
    vimg_image_close(out, NULL);
    cli_image_clear(&in_spec);
    cli_image_clear(&out_spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_dd = {
    .name = "dd",
    .run = run_dd,
    .synopsis = "dd [--object objectdef] [--image-opts] [-U] [-f fmt] "
                "[-O output_fmt] [bs=block_size] [count=blocks] "
                "[skip=blocks] if=input of=output",
    .help = dd_help,
};
