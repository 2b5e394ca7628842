/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of vimg_copy and vimg_compare: raw -> luks -> raw round trips,
 * sparseness of raw targets (holes and -S zero detection), targets without
 * zero init, small buffers (ring wrap), progress and cancellation, and the
 * qemu-img compare cases (identical, mismatch offset rounded down to the
 * sector, size differences strict and non-strict).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define SIZE (8u << 20)

static char dir[64];
static struct vimg_secrets *secrets;

static char *
path(const char *name)
{
    static char buf[4][128];
    static int n;
    char *p = buf[n++ % 4];

    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static struct vimg_image *
mkimg(const char *name, const char *fmt, uint64_t size, const char *copts)
{
    struct vimg_opts *o = vimg_opts_new(), *oo = vimg_opts_new();
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;

    if (copts) {
        vimg_opts_parse(o, copts, NULL, NULL);
    }
    if (vimg_image_create(path(name), fmt, size, o, secrets, &err) < 0) {
        printf("# create %s: %s\n", name, vimg_error_message(err));
    } else {
        if (strcmp(fmt, "luks") == 0) {
            vimg_opts_set(oo, "key-secret", "s0");
        }
        if (vimg_image_open(path(name), fmt, oo, secrets, VIMG_OPEN_RDWR,
                            &img, &err) < 0) {
            printf("# open %s: %s\n", name, vimg_error_message(err));
        }
    }
    vimg_error_free(err);
    vimg_opts_free(o);
    vimg_opts_free(oo);
    return img;
}

static int64_t
allocated(const char *name)
{
    struct stat sb;

    return stat(path(name), &sb) == 0 ? (int64_t)sb.st_blocks * 512 : -1;
}

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 13 + seed * 101 + (i >> 12) + 1);
    }
}

struct progress_log {
    uint64_t last, total;
    unsigned calls;
    bool monotonic;
    unsigned cancel_after;     /* 0: never */
};

static int
progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct progress_log *l = opaque;

    if (done < l->last) {
        l->monotonic = false;
    }
    l->last = done;
    l->total = total;
    l->calls++;
    return l->cancel_after && l->calls >= l->cancel_after;
}

static int
compare(struct vimg_image *a, struct vimg_image *b, bool strict,
        uint64_t *off)
{
    struct vimg_error *err = NULL;
    int r = vimg_compare(a, b, strict, off, NULL, NULL, &err);

    if (r < 0) {
        printf("# compare: %s\n", vimg_error_message(err));
    }
    vimg_error_free(err);
    return r;
}

int
main(void)
{
    struct vimg_image *src, *luks, *raw2, *raw3, *raw4, *big;
    struct vimg_copy_params p;
    struct vimg_error *err = NULL;
    struct progress_log log;
    uint8_t *buf = malloc(1 << 20), *ff = malloc(SIZE), *zero;
    uint64_t off = 0, pnum;
    unsigned st;
    char cmd[128];
    int r;

    strcpy(dir, "/tmp/vimg-test-copy-XXXXXX");
    if (!mkdtemp(dir) || !buf || !ff) {
        return 99;
    }
    secrets = vimg_secrets_new();
    vimg_secrets_add(secrets, "s0", "copy-pass", 9, NULL);

    /* Sparse raw source: data islands, one explicitly written zero run. */
    src = mkimg("src.raw", "raw", SIZE, NULL);
    ok(src != NULL, "source created");
    if (!src) {
        return tap_done();
    }
    fill(buf, 1 << 20, 1);
    r = vimg_image_pwrite(src, buf, 100000, 0, NULL);
    r |= vimg_image_pwrite(src, buf + 5, 700000, (3 << 20) + 100, NULL);
    r |= vimg_image_pwrite(src, buf + 9, 1000, SIZE - 1000, NULL);
    zero = calloc(1, 256 << 10);
    r |= vimg_image_pwrite(src, zero, 256 << 10, 5 << 20, NULL);
    free(zero);
    ok(r == 0, "source written");

    /* raw -> luks: no zero init, encrypted zeroes must be written. */
    luks = mkimg("dst.luks", "luks", SIZE, "key-secret=s0,iter-count=1000");
    ok(luks != NULL, "luks target created");
    memset(&p, 0, sizeof(p));
    memset(&log, 0, sizeof(log));
    log.monotonic = true;
    p.sparse_size = 4096;
    p.progress = progress_cb;
    p.progress_opaque = &log;
    r = vimg_copy(src, luks, &p, &err);
    ok(r == 0, "copy raw -> luks (%s)", err ? vimg_error_message(err) : "ok");
    ok(log.calls >= 2 && log.monotonic && log.last == SIZE &&
       log.total == SIZE, "progress: %u calls, monotonic, ends at total",
       log.calls);
    ok(compare(src, luks, false, &off) == 0, "luks copy equals source");
    ok(compare(src, luks, true, &off) == 0, "strict compare equal too");

    /* luks -> raw with zero init: stays sparse. */
    raw2 = mkimg("dst2.raw", "raw", SIZE, NULL);
    memset(&p, 0, sizeof(p));
    p.sparse_size = 4096;
    p.target_has_zero_init = true;
    r = vimg_copy(luks, raw2, &p, &err);
    ok(r == 0, "copy luks -> raw");
    ok(compare(raw2, src, false, &off) == 0, "raw copy equals source");
    vimg_image_flush(raw2, NULL);
    ok(allocated("dst2.raw") > 0 && allocated("dst2.raw") <= 1200 << 10,
       "raw target is sparse (%lld bytes allocated of %u)",
       (long long)allocated("dst2.raw"), SIZE);
    r = vimg_image_block_status(raw2, 5 << 20, 256 << 10, &pnum, &st, NULL,
                                NULL);
    ok(r == 0 && (st & VIMG_BLOCK_ZERO) && pnum == 256 << 10,
       "-S: explicit zero run in the source became a hole");

    /* raw -> raw, -S 0: fully allocated. */
    raw3 = mkimg("dst3.raw", "raw", SIZE, NULL);
    memset(&p, 0, sizeof(p));
    p.target_has_zero_init = true;
    r = vimg_copy(src, raw3, &p, &err);
    vimg_image_flush(raw3, NULL);
    ok(r == 0 && compare(raw3, src, false, &off) == 0, "copy with -S 0");
    ok(allocated("dst3.raw") >= SIZE, "-S 0 target fully allocated (%lld)",
       (long long)allocated("dst3.raw"));

    /* Target with garbage and no zero init (convert -n): holes are zeroed;
     * a small buffer makes the reader wrap around the ring many times. */
    raw4 = mkimg("dst4.raw", "raw", SIZE, NULL);
    memset(ff, 0xff, SIZE);
    ok(vimg_image_pwrite(raw4, ff, SIZE, 0, NULL) == 0, "garbage target");
    memset(&p, 0, sizeof(p));
    p.sparse_size = 4096;
    p.buf_size = 65536 + 1;        /* rounded to the alignment */
    r = vimg_copy(src, raw4, &p, &err);
    ok(r == 0 && compare(raw4, src, false, &off) == 0,
       "copy onto non-zero target with 64 KiB buffers");

    /* luks -> luks (different handles, both encrypted). */
    {
        struct vimg_image *l2 = mkimg("dst2.luks", "luks", SIZE,
                                      "key-secret=s0,iter-count=1000");

        memset(&p, 0, sizeof(p));
        p.sparse_size = 4096;
        r = vimg_copy(luks, l2, &p, &err);
        ok(r == 0 && compare(l2, src, false, &off) == 0, "copy luks -> luks");
        vimg_image_close(l2, NULL);
    }

    /* Cancellation via progress. */
    memset(&p, 0, sizeof(p));
    memset(&log, 0, sizeof(log));
    p.buf_size = 65536;
    p.progress = progress_cb;
    p.progress_opaque = &log;
    log.cancel_after = 3;
    r = vimg_copy(src, raw4, &p, &err);
    ok(r == -ECANCELED && err, "progress can cancel (%d)", r);
    vimg_error_free(err);
    err = NULL;

    r = vimg_copy(src, src, NULL, &err);
    ok(r == -EINVAL && err, "copy onto the same handle refused");
    vimg_error_free(err);
    err = NULL;

    /* Target too small. */
    big = mkimg("big.raw", "raw", SIZE + 4096, NULL);
    r = vimg_copy(big, src, NULL, &err);
    ok(r == -EINVAL && err && strstr(vimg_error_message(err), "smaller"),
       "target smaller than source refused");
    vimg_error_free(err);
    err = NULL;

    /* A larger target is fine (convert into a bigger image). */
    memset(&p, 0, sizeof(p));
    p.sparse_size = 4096;
    p.target_has_zero_init = true;
    ok(vimg_copy(src, big, &p, NULL) == 0, "copy into a larger target");

    /* ---- compare ---- */
    ok(compare(src, big, false, &off) == 0,
       "size differs, zero tail: identical (non-strict)");
    ok(compare(src, big, true, &off) == 1 && off == SIZE,
       "strict: size mismatch is a difference (offset = smaller size)");
    r = vimg_image_pwrite(big, "x", 1, SIZE + 1000, NULL);
    ok(r == 0 && compare(src, big, false, &off) == 1 && off == SIZE + 512,
       "non-zero tail in the larger image: mismatch at its sector");
    ok(compare(big, src, false, &off) == 1 && off == SIZE + 512,
       "same with the larger image first");

    r = vimg_image_pwrite(raw2, "\x42", 1, 5000000, NULL);
    r = r == 0 ? compare(src, raw2, false, &off) : -1;
    ok(r == 1 && off == 4999680,
       "mismatch offset rounded down to the sector (%llu)",
       (unsigned long long)off);
    r = vimg_image_pwrite(raw2, "\x00", 1, 5000000, NULL);
    ok(r == 0 && compare(src, raw2, false, &off) == 0,
       "identical again after undoing the change");
    r = vimg_image_pwrite(luks, "\x01", 1, 1000, NULL);
    ok(r == 0 && compare(luks, src, false, &off) == 1 && off == 512,
       "luks vs raw mismatch at byte 1000 reported at 512");
    /* A difference in a hole of one image only. */
    r = vimg_image_pwrite(raw4, "\x07", 1, 2 << 20, NULL);
    ok(r == 0 && compare(src, raw4, false, &off) == 1 && off == 2 << 20,
       "mismatch against a hole");

    {
        struct progress_log cl = { .monotonic = true };

        r = vimg_compare(src, raw2, false, &off, progress_cb, &cl, NULL);
        ok(r == 0 && cl.calls >= 2 && cl.monotonic && cl.last == SIZE,
           "compare progress reaches the total");
    }

    vimg_image_close(src, NULL);
    vimg_image_close(luks, NULL);
    vimg_image_close(raw2, NULL);
    vimg_image_close(raw3, NULL);
    vimg_image_close(raw4, NULL);
    vimg_image_close(big, NULL);
    vimg_secrets_free(secrets);
    free(buf);
    free(ff);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
    return tap_done();
}
