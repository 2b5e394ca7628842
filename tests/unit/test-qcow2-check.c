/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of vimg_check() on qcow2 (lib/ops/check.c and
 * lib/format/qcow2-check.c), through the public API on images vimg makes:
 *  - a clean image: no findings, qemu's statistics (allocated, total,
 *    image end offset);
 *  - a leak made by a byte edit (refcount 2 for one reference): reported
 *    with qemu's line, repaired by VIMG_CHECK_FIX_LEAKS, clean afterwards;
 *  - a zeroed refcount of a data cluster: a corruption that needs a
 *    rebuild: -EIO with FIX_LEAKS only, rebuilt with FIX_ERRORS, the data
 *    still reads back identically;
 *  - repairs on a read-only handle (-EBADF), formats without a checker
 *    (-ENOTSUP with qemu's message);
 *  - a sparse 1 TiB image with data at both ends checks clean.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"
#include "tap.h"

static char dir[64];

struct lines {
    int n;
    char last[256];
    char all[4096];
};

static void
collect(void *opaque, const char *line)
{
    struct lines *l = opaque;

    l->n++;
    snprintf(l->last, sizeof(l->last), "%s", line);
    strncat(l->all, line, sizeof(l->all) - strlen(l->all) - 2);
    strcat(l->all, "\n");
}

static char *
path(const char *name)
{
    static char buf[160];

    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static int
check(const char *file, unsigned flags, unsigned fix,
      struct vimg_check_result *res, struct lines *l)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    int r;

    memset(l, 0, sizeof(*l));
    r = vimg_image_open(file, "qcow2", NULL, NULL, flags, &img, &err);
    if (r < 0) {
        printf("# open: %s\n", vimg_error_message(err));
        vimg_error_free(err);
        return r;
    }
    r = vimg_check(img, fix, res, collect, l, &err);
    if (r < 0) {
        printf("# check: %s\n", vimg_error_message(err));
        vimg_error_free(err);
    }
    vimg_image_close(img, NULL);
    return r;
}

static void
poke(const char *file, uint64_t off, const void *data, size_t len)
{
    int fd = open(file, O_RDWR);

    if (fd < 0 || full_pwrite(fd, data, len, off) < 0) {
        abort();
    }
    close(fd);
}

static uint64_t
peek64(const char *file, uint64_t off)
{
    uint8_t b[8] = {0};
    int fd = open(file, O_RDONLY);

    if (fd < 0 || full_pread(fd, b, 8, off) < 0) {
        abort();
    }
    close(fd);
    return ld_be64(b);
}

static int
write_data(const char *file, uint64_t off, size_t len, int byte)
{
    struct vimg_image *img = NULL;
    uint8_t *buf = malloc(len);
    int r;

    memset(buf, byte, len);
    r = vimg_image_open(file, "qcow2", NULL, NULL, VIMG_OPEN_RDWR, &img,
                        NULL);
    if (r == 0) {
        r = vimg_image_pwrite(img, buf, len, off, NULL);
    }
    if (r == 0) {
        r = vimg_image_close(img, NULL);
    } else {
        vimg_image_close(img, NULL);
    }
    free(buf);
    return r;
}

static int
read_back(const char *file, uint64_t off, size_t len, int byte)
{
    struct vimg_image *img = NULL;
    uint8_t *buf = malloc(len), *want = malloc(len);
    int r;

    memset(want, byte, len);
    r = vimg_image_open(file, "qcow2", NULL, NULL, 0, &img, NULL);
    if (r == 0) {
        r = vimg_image_pread(img, buf, len, off, NULL);
    }
    vimg_image_close(img, NULL);
    if (r == 0 && memcmp(buf, want, len) != 0) {
        r = 1;
    }
    free(buf);
    free(want);
    return r;
}

int
main(void)
{
    struct vimg_check_result res;
    struct lines l;
    uint8_t be[2];
    const char *f;
    uint64_t rb;
    int r;

    snprintf(dir, sizeof(dir), "/tmp/test-qcow2-check.XXXXXX");
    if (!mkdtemp(dir)) {
        return 1;
    }

    /* Clean: header, reftable, refblock, L1, L2, data 5..7. */
    f = strdup(path("a.qcow2"));
    ok(vimg_image_create(f, "qcow2", 64 << 20, NULL, NULL, NULL) == 0,
       "create");
    ok(write_data(f, 0, 128 << 10, 0xaa) == 0, "write 128k at 0");
    ok(write_data(f, 1 << 20, 64 << 10, 0x11) == 0, "write 64k at 1M");
    r = check(f, VIMG_OPEN_NO_IO, 0, &res, &l);
    ok(r == 0 && res.corruptions == 0 && res.leaks == 0 &&
       res.check_errors == 0 && l.n == 0, "clean image: no findings");
    ok(res.allocated_clusters == 3 && res.total_clusters == 1024 &&
       res.fragmented_clusters == 0 && res.compressed_clusters == 0,
       "clean image: 3/1024 allocated");
    ok(res.image_end_offset == 8 * 65536, "image end offset %lld",
       (long long)res.image_end_offset);

    /* Leak: cluster 6 gets refcount 2. */
    rb = peek64(f, 65536);
    ok(rb == 2 * 65536, "refcount block at cluster 2");
    st_be16(be, 2);
    poke(f, rb + 12, be, 2);
    r = check(f, VIMG_OPEN_NO_IO, 0, &res, &l);
    ok(r == 0 && res.leaks == 1 && res.corruptions == 1,
       "leak: 1 leak, 1 OFLAG_COPIED corruption");
    ok(strstr(l.all, "Leaked cluster 6 refcount=2 reference=1\n") != NULL,
       "leak line");
    ok(strstr(l.all, "ERROR OFLAG_COPIED data cluster: "
              "l2_entry=8000000000060000 refcount=2\n") != NULL,
       "OFLAG_COPIED line");
    r = check(f, VIMG_OPEN_NO_IO, VIMG_CHECK_FIX_LEAKS, &res, &l);
    ok(r == -EBADF, "repair on a read-only handle: -EBADF");
    r = check(f, VIMG_OPEN_NO_IO | VIMG_OPEN_RDWR, VIMG_CHECK_FIX_LEAKS, &res,
              &l);
    ok(r == 0 && res.leaks_fixed == 1 && res.leaks == 0 &&
       res.corruptions == 0, "-r leaks: 1 leak fixed, nothing left");
    ok(strstr(l.all, "Repairing cluster 6 refcount=2 reference=1\n") != NULL,
       "repair line");
    r = check(f, VIMG_OPEN_NO_IO, 0, &res, &l);
    ok(r == 0 && l.n == 0 && res.leaks == 0 && res.corruptions == 0,
       "clean after -r leaks");

    /* Corruption: cluster 5 (data) gets refcount 0. */
    st_be16(be, 0);
    poke(f, rb + 10, be, 2);
    r = check(f, VIMG_OPEN_NO_IO, 0, &res, &l);
    ok(r == 0 && res.corruptions == 2 && res.leaks == 0,
       "zeroed refcount: 2 corruptions");
    ok(strstr(l.all, "ERROR cluster 5 refcount=0 reference=1\n") != NULL,
       "corruption line");
    r = check(f, VIMG_OPEN_RDWR, VIMG_CHECK_FIX_LEAKS, &res, &l);
    ok(r == -EIO && res.check_errors == 1 &&
       strstr(l.all, "ERROR need to rebuild refcount structures\n"),
       "-r leaks cannot rebuild: -EIO");
    r = check(f, VIMG_OPEN_RDWR, VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS,
              &res, &l);
    ok(r == 0 && res.corruptions_fixed == 1 && res.corruptions == 0 &&
       strstr(l.all, "Rebuilding refcount structure\n"),
       "-r all rebuilds the refcounts");
    r = check(f, VIMG_OPEN_NO_IO, 0, &res, &l);
    ok(r == 0 && l.n == 0 && res.corruptions == 0 && res.leaks == 0,
       "clean after the rebuild");
    ok(peek64(f, 48) != 65536, "the header points to a new refcount table");
    ok(read_back(f, 0, 128 << 10, 0xaa) == 0 &&
       read_back(f, 1 << 20, 64 << 10, 0x11) == 0, "data intact");
    ok(write_data(f, 4 << 20, 64 << 10, 0x22) == 0 &&
       check(f, 0, 0, &res, &l) == 0 && l.n == 0 &&
       res.allocated_clusters == 4, "writable and clean after the rebuild");

    /* No checker. */
    {
        struct vimg_image *img = NULL;
        struct vimg_error *err = NULL;
        const char *raw = strdup(path("r.raw"));

        ok(vimg_image_create(raw, "raw", 1 << 20, NULL, NULL, NULL) == 0,
           "create raw");
        ok(vimg_image_open(raw, "raw", NULL, NULL, 0, &img, NULL) == 0,
           "open raw");
        r = vimg_check(img, 0, &res, NULL, NULL, &err);
        ok(r == -ENOTSUP && err &&
           strcmp(vimg_error_message(err),
                  "This image format does not support checks") == 0,
           "raw: -ENOTSUP");
        vimg_error_free(err);
        vimg_image_close(img, NULL);
        unlink(raw);
        free((char *)raw);
    }

    /* A sparse 1 TiB image. */
    {
        const char *big = strdup(path("big.qcow2"));

        ok(vimg_image_create(big, "qcow2", 1ULL << 40, NULL, NULL, NULL) == 0,
           "create 1 TiB");
        ok(write_data(big, (1ULL << 40) - 65536, 65536, 1) == 0 &&
           write_data(big, 0, 4096, 2) == 0, "write at both ends");
        r = check(big, VIMG_OPEN_NO_IO, 0, &res, &l);
        ok(r == 0 && l.n == 0 && res.allocated_clusters == 2 &&
           res.total_clusters == 1 << 24, "1 TiB: clean, 2/16777216");
        unlink(big);
        free((char *)big);
    }

    unlink(f);
    free((char *)f);
    rmdir(dir);
    return tap_done();
}
