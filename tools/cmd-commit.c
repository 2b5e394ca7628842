// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg commit": write the data of an image's own layer (and of the layers
 * between it and BASE) into a backing image, like qemu-img 7.2 commit.
 *
 * The top image is opened with its backing chain; BASE is the immediate
 * backing image, or the layer named by -b (matched like qemu: by the name
 * as given, relative to the overlay's directory, or by real path).  BASE is
 * opened a second time read-write, with the "backing." driver options of
 * its depth (so an encrypted base gets the key qemu's --image-opts spelling
 * gives it: backing.encrypt.key-secret=...).  Every range allocated above
 * BASE is read through the top image and written into BASE (ranges that
 * read as zeroes become zero requests); BASE grows to the top's size when
 * it is smaller.  Then, unless -d or -b, the top layer is emptied so it
 * reads as its backing again.  "Image committed." is printed unless -q.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"
#include "progress.h"

#define COMMIT_BUF (2u * 1024 * 1024)

static const char commit_help[] =
    "Commit the changes recorded in FILENAME into its backing image.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...);\n"
    "                       keys of encrypted backing images: "
    "backing.encrypt.key-secret=ID\n"
    "  -f FMT               image format (probed by default)\n"
    "  -b BASE              commit into BASE, a deeper image of the backing "
    "chain\n"
    "                       (implies -d)\n"
    "  -d                   do not empty FILENAME after the commit\n"
    "  -p                   show progress\n"
    "  -q                   quiet\n"
    "  -t CACHE, -r RATE    accepted for compatibility, ignored\n"
    "  -h, --help           show this help\n";

static bool
same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];

    if (!a || !b) {
        return false;
    }
    if (strcmp(a, b) == 0) {
        return true;
    }
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/*
 * Whether [off, off + *pnum) is allocated in a layer above @base; *pnum
 * is shortened to the run with one answer.
 */
static int
allocated_above(struct vimg_image *top, struct vimg_image *base, uint64_t off,
                uint64_t *pnum, bool *alloc, struct vimg_error **errp)
{
    struct vimg_image *cur = top;
    uint64_t n = *pnum;

    *alloc = false;
    while (cur && cur != base) {
        uint64_t size = vimg_image_size(cur), p = 0;
        unsigned st = 0;
        int r;

        if (off >= size) {
            /* Reads as zeroes in this layer: base must read so too. */
            *alloc = true;
            break;
        }
        r = vimg_image_block_status(cur, off, n < size - off ? n : size - off,
                                    &p, &st, NULL, errp);
        if (r < 0) {
            return r;
        }
        n = p;
        if (!(st & VIMG_BLOCK_UNALLOCATED)) {
            *alloc = true;
            break;
        }
        cur = vimg_image_backing(cur);
    }
    *pnum = n;
    return 0;
}

static bool
is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The driver options of the layer at @depth: "backing." x depth removed. */
static struct vimg_opts *
layer_opts(struct vimg_opts *opts, unsigned depth)
{
    struct vimg_opts *out = vimg_opts_new();
    size_t i, n = opts ? vimg_opts_count(opts) : 0;

    if (!out) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(opts, i);
        unsigned d;

        for (d = 0; d < depth && strncmp(k, "backing.", 8) == 0; d++) {
            k += 8;
        }
        if (d == depth && strcmp(k, "driver") != 0 &&
            strcmp(k, "file.filename") != 0 &&
            vimg_opts_set(out, k, vimg_opts_value(opts, i)) < 0) {
            vimg_opts_free(out);
            return NULL;
        }
    }
    return out;
}

static int
do_commit(struct vimg_image *top, struct vimg_image *base_ro,
          struct vimg_image *base, struct cli_progress *prog)
{
    struct vimg_error *err = NULL;
    uint64_t size = vimg_image_size(top), off = 0;
    uint8_t *buf;
    int r = 0;

    if (vimg_image_size(base) < size) {
        r = vimg_image_truncate(base, size, false, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "Could not resize the base image: ");
            return r;
        }
    }
    buf = malloc(COMMIT_BUF);
    if (!buf) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    while (off < size) {
        uint64_t n = size - off;
        bool alloc;

        if (n > ((uint64_t)1 << 30)) {
            n = (uint64_t)1 << 30;
        }
        r = allocated_above(top, base_ro, off, &n, &alloc, &err);
        if (r < 0) {
            break;
        }
        if (alloc) {
            uint64_t done = 0;

            while (done < n && r == 0) {
                size_t step = n - done < COMMIT_BUF ? (size_t)(n - done)
                                                    : COMMIT_BUF;

                r = vimg_image_pread(top, buf, step, off + done, &err);
                if (r == 0 && is_zero(buf, step)) {
                    r = vimg_image_zero(base, off + done, step,
                                        VIMG_ZERO_MAY_UNMAP, &err);
                } else if (r == 0) {
                    r = vimg_image_pwrite(base, buf, step, off + done, &err);
                }
                done += step;
            }
            if (r < 0) {
                break;
            }
        }
        off += n;
        progress_cb(prog, off, size);
    }
    free(buf);
    if (r == 0) {
        r = vimg_image_flush(base, &err);
    }
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
    }
    return r;
}

static int
run_commit(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_commit};
    struct cli_image spec = {0};
    struct cli_progress prog;
    struct vimg_image *top = NULL, *base_ro = NULL, *base = NULL, *cur;
    struct vimg_opts *bopts = NULL;
    struct vimg_error *err = NULL;
    const char *base_name = NULL, *above;
    bool quiet, keep = false, progress = false;
    unsigned depth = 0;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:t:b:dr:pq", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 't':
        case 'r':
            break;
        case 'b':
            base_name = optarg;
            keep = true;        /* qemu: -b implies -d */
            break;
        case 'd':
            keep = true;
            break;
        case 'p':
            progress = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    quiet = ia.quiet;
    if (cli_expect_one_image(argc) < 0 || cli_image_args_objects(&ia) < 0 ||
        cli_image_args_open(&ia, argv[optind], keep ? 0 : VIMG_OPEN_RDWR,
                            &spec, &top) < 0) {
        goto out;
    }

    /* Find the base in the chain. */
    above = vimg_image_filename(top);
    for (cur = vimg_image_backing(top), depth = 1; cur;
         above = vimg_image_filename(cur), cur = vimg_image_backing(cur),
         depth++) {
        char *rel;
        bool match;

        if (!base_name) {
            break;
        }
        rel = cli_path_combine(above, base_name);
        match = same_file(base_name, vimg_image_filename(cur)) ||
                (rel && same_file(rel, vimg_image_filename(cur)));
        free(rel);
        if (match) {
            break;
        }
    }
    if (!cur) {
        if (base_name) {
            cli_error("Did not find '%s' in the backing chain of '%s'",
                      base_name, spec.arg);
        } else {
            cli_error("Image does not have a backing file");
        }
        goto out;
    }
    base_ro = cur;
    bopts = layer_opts(spec.opts, depth);
    if (!bopts) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    r = vimg_image_open(vimg_image_filename(base_ro),
                        vimg_image_format(base_ro), bopts, cli_secrets(),
                        VIMG_OPEN_RDWR, &base, &err);
    if (r < 0) {
        cli_error_vimg(err, r, "Could not open '%s': ",
                       vimg_image_filename(base_ro));
        goto out;
    }

    cli_warn_plaintext(top, base_ro, base, quiet);
    progress_start(&prog, progress && !quiet);
    if (do_commit(top, base_ro, base, &prog) < 0) {
        goto out;
    }
    if (cli_image_close(&base) < 0) {
        goto out;
    }
    if (!keep) {
        r = vimg_image_make_empty(top, &err);
        if (r < 0) {
            cli_error_vimg(err, r, "Could not empty %s: ", spec.arg);
            goto out;
        }
    }
    if (cli_image_close(&top) < 0) {
        goto out;
    }
    if (progress && !quiet) {
        progress_finish(&prog, false);
    }
    if (!quiet) {
        printf("Image committed.\n");
    }
    rc = 0;

out:
    vimg_image_close(base, NULL);
    vimg_image_close(top, NULL);
    vimg_opts_free(bopts);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_commit = {
    .name = "commit",
    .run = run_commit,
    .synopsis = "commit [--object objectdef] [--image-opts] [-q] [-f fmt] "
                "[-t cache] [-b base] [-r rate_limit] [-d] [-p] filename",
    .help = commit_help,
};
