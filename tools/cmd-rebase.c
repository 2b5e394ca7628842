// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg rebase": change the backing file of an image, like qemu-img 7.2
 * rebase.
 *
 * Safe mode (default): the image is opened with its old backing chain and
 * the new backing image is opened read-only (its name relative to the
 * image's directory, as it will be resolved later).  Every range not
 * allocated in the image itself is compared sector by sector between the
 * old view and the new backing image (zeroes beyond its end); sectors that
 * differ are written into the image, so its guest content stays the same.
 * Then the header is pointed at the new file.  -b "" removes the backing
 * file (all backing data is copied in).
 *
 * Unsafe mode (-u): only the header changes; the old backing file is not
 * opened (the image is opened metadata-only, so no key is needed).
 *
 * Differences from qemu-img: a missing -F for a non-empty -b is refused
 * before anything is written (qemu copies the data, then fails with the
 * same message).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"
#include "progress.h"

#define REBASE_BUF (1024u * 1024)
#define SECTOR 512

static const char rebase_help[] =
    "Change the backing file of FILENAME to BACKING_FILE.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT               image format (probed by default)\n"
    "  -b BACKING_FILE      the new backing file (\"\" for none)\n"
    "  -F BACKING_FMT       its format (required with a backing file)\n"
    "  -u                   unsafe: only change the name, copy no data\n"
    "  -p                   show progress\n"
    "  -q                   quiet\n"
    "  -t, -T CACHE, -U     accepted for compatibility, ignored\n"
    "  -h, --help           show this help\n";

/* Read [off, off+len) of @img, zeroes beyond its end (@img may be NULL). */
static int
read_clamped(struct vimg_image *img, uint8_t *buf, size_t len, uint64_t off,
             struct vimg_error **errp)
{
    uint64_t size = img ? vimg_image_size(img) : 0;
    size_t n = 0;
    int r;

    if (off < size) {
        n = size - off < len ? (size_t)(size - off) : len;
        r = vimg_image_pread(img, buf, n, off, errp);
        if (r < 0) {
            return r;
        }
    }
    memset(buf + n, 0, len - n);
    return 0;
}

/* Write the sectors of [off, off+len) where @old and @new differ. */
static int
write_differences(struct vimg_image *img, const uint8_t *old,
                  const uint8_t *new, size_t len, uint64_t off,
                  struct vimg_error **errp)
{
    size_t pos = 0;

    while (pos < len) {
        size_t start, n;
        int r;

        n = len - pos < SECTOR ? len - pos : SECTOR;
        if (memcmp(old + pos, new + pos, n) == 0) {
            pos += n;
            continue;
        }
        start = pos;
        while (pos < len) {
            n = len - pos < SECTOR ? len - pos : SECTOR;
            if (memcmp(old + pos, new + pos, n) == 0) {
                break;
            }
            pos += n;
        }
        r = vimg_image_pwrite(img, old + start, pos - start, off + start,
                              errp);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static int
copy_differences(struct vimg_image *img, struct vimg_image *newb,
                 struct cli_progress *prog)
{
    struct vimg_error *err = NULL;
    uint64_t size = vimg_image_size(img), off = 0;
    uint8_t *a = malloc(REBASE_BUF), *b = malloc(REBASE_BUF);
    int r = 0;

    if (!a || !b) {
        free(a);
        free(b);
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    while (off < size && r == 0) {
        uint64_t n = size - off, pnum = 0;
        unsigned st = 0;

        if (n > ((uint64_t)1 << 30)) {
            n = (uint64_t)1 << 30;
        }
        r = vimg_image_block_status(img, off, n, &pnum, &st, NULL, &err);
        if (r < 0) {
            break;
        }
        if (st & VIMG_BLOCK_UNALLOCATED) {
            uint64_t done = 0;

            while (done < pnum && r == 0) {
                size_t step = pnum - done < REBASE_BUF
                                  ? (size_t)(pnum - done) : REBASE_BUF;

                r = vimg_image_pread(img, a, step, off + done, &err);
                if (r == 0) {
                    r = read_clamped(newb, b, step, off + done, &err);
                }
                if (r == 0) {
                    r = write_differences(img, a, b, step, off + done, &err);
                }
                done += step;
            }
        }
        off += pnum;
        progress_cb(prog, off, size);
    }
    free(a);
    free(b);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
    }
    return r;
}

static int
run_rebase(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_rebase};
    struct cli_image spec = {0};
    struct cli_progress prog;
    struct vimg_image *img = NULL, *newb = NULL;
    struct vimg_error *err = NULL;
    const char *bname = NULL, *bfmt = NULL;
    char *bpath = NULL;
    bool quiet, unsafe = false, progress = false;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'F':
            bfmt = optarg;
            break;
        case 'b':
            bname = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 't':
        case 'T':
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    quiet = ia.quiet;
    if (!unsafe && !bname) {
        cli_error("Must specify backing file (-b) or use unsafe mode (-u)");
        cli_try_help();
        goto out;
    }
    if (cli_expect_one_image(argc) < 0) {
        goto out;
    }
    if (!bname) {
        bname = "";
    }
    if (cli_image_args_objects(&ia) < 0 || cli_image_args_check(&ia) < 0) {
        goto out;
    }
    if (*bname && !bfmt) {
        cli_error("Could not change the backing file to '%s': backing format "
                  "must be specified", bname);
        goto out;
    }
    if (cli_image_args_open(&ia, argv[optind],
                            VIMG_OPEN_RDWR | (unsafe ? VIMG_OPEN_NO_IO : 0),
                            &spec, &img) < 0) {
        goto out;
    }

    if (!unsafe) {
        if (*bname) {
            bpath = cli_path_combine(vimg_image_filename(img), bname);
            if (!bpath) {
                cli_error("%s", strerror(ENOMEM));
                goto out;
            }
            r = vimg_image_open(bpath, bfmt, NULL, cli_secrets(), 0, &newb,
                                &err);
            if (r < 0) {
                cli_error_vimg(err, r, "Could not open new backing file "
                               "'%s': ", bpath);
                goto out;
            }
        }
        progress_start(&prog, progress && !quiet);
        if (copy_differences(img, newb, &prog) < 0) {
            goto out;
        }
    }
    r = vimg_image_set_backing(img, bname, *bname ? bfmt : NULL, &err);
    if (r < 0) {
        cli_error_vimg(err, r, "Could not change the backing file to '%s': ",
                       bname);
        goto out;
    }
    if (cli_image_close(&img) < 0) {
        goto out;
    }
    if (progress && !quiet && !unsafe) {
        progress_finish(&prog, false);
    }
    rc = 0;

out:
    vimg_image_close(newb, NULL);
    vimg_image_close(img, NULL);
    free(bpath);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_rebase = {
    .name = "rebase",
    .run = run_rebase,
    .synopsis = "rebase [--object objectdef] [--image-opts] [-U] [-q] "
                "[-f fmt] [-t cache] [-T src_cache] [-p] [-u] "
                "-b backing_file [-F backing_fmt] filename",
    .help = rebase_help,
};
