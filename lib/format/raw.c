/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw format: the file is the disk, byte for byte.  Requests pass
 * straight through (alignment 1); "zero" punches holes or uses
 * FALLOC_FL_ZERO_RANGE where the filesystem allows it; block status comes
 * from SEEK_DATA/SEEK_HOLE (holes read as zero, data has its file offset).
 *
 * Like qemu, the virtual size is the file size rounded up to whole 512-byte
 * sectors: a 1000-byte file is a 1024-byte disk whose last 24 bytes read
 * as zeroes (they lie past EOF) and are created by writes there.  Resizing
 * sets the file to exactly the size asked for; the disk is that rounded up.
 * All file changes go through lib/io.c (so failpoints see them).
 *
 * Creation options are those of qemu's raw driver on a file
 * (`qemu-img create -f raw -o help FILE`): size, nocow, preallocation
 * (off, falloc, full) and extent_size_hint (accepted and ignored: the hint
 * only applies to XFS and qemu ignores failures to set it too).
 * The luks format reuses this create to size and preallocate its file.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"

#define RAW_ZERO_CHUNK (1024 * 1024)

static int
raw_probe(const uint8_t *buf, size_t len, const char *filename)
{
    return 1;                   /* anything is a raw image, as a last resort */
}

static int
raw_open(struct vimg_image *img, struct vimg_opts *opts,
         struct vimg_secrets *secrets, struct vimg_error **errp)
{
    off_t end = lseek(img->fd, 0, SEEK_END);

    if (end < 0) {
        return vimg_error_set(errp, -errno,
                              "Could not determine the size of '%s': %s",
                              img->filename, strerror(errno));
    }
    if ((uint64_t)end > INT64_MAX - 511) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    img->size = ROUND_UP((uint64_t)end, 512);
    img->encrypted = false;
    img->alignment = 1;
    return 0;
}

static void
raw_close(struct vimg_image *img)
{
}

static int
raw_pread(struct vimg_image *img, void *buf, size_t len, uint64_t off,
          struct vimg_error **errp)
{
    /* The tail of the last sector may lie past EOF: it reads as zeroes. */
    int r = full_pread_zero(img->fd, buf, len, off);

    if (r < 0) {
        return vimg_error_set(errp, r, "Read failed at offset %" PRIu64 ": %s",
                              off, strerror(-r));
    }
    return 0;
}

static int
raw_pwrite(struct vimg_image *img, const void *buf, size_t len, uint64_t off,
           struct vimg_error **errp)
{
    int r = full_pwrite(img->fd, buf, len, off);

    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Write failed at offset %" PRIu64 ": %s", off,
                              strerror(-r));
    }
    return 0;
}

static int
raw_zero(struct vimg_image *img, uint64_t off, uint64_t len, unsigned flags,
         struct vimg_error **errp)
{
    int r = file_punch_zero(img->fd, off, len, flags & VIMG_ZERO_MAY_UNMAP);

    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Zeroing failed at offset %" PRIu64 ": %s", off,
                              strerror(-r));
    }
    return 0;
}

static int
raw_discard(struct vimg_image *img, uint64_t off, uint64_t len,
            struct vimg_error **errp)
{
    /* Discard is only a hint: file_discard ignores "unsupported". */
    int r = file_discard(img->fd, off, len);

    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Discard failed at offset %" PRIu64 ": %s", off,
                              strerror(-r));
    }
    return 0;
}

static int
raw_flush(struct vimg_image *img, struct vimg_error **errp)
{
    int r = file_flush(img->fd);

    if (r < 0) {
        return vimg_error_set(errp, r, "Could not flush '%s': %s",
                              img->filename, strerror(-r));
    }
    return 0;
}

static int
raw_truncate(struct vimg_image *img, uint64_t size, bool shrink,
             struct vimg_error **errp)
{
    int r;

    if (size > INT64_MAX - 511) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    /* qemu sets the file to the exact size; the disk counts whole sectors. */
    r = file_truncate(img->fd, size);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not resize file: %s",
                              strerror(-r));
    }
    img->size = ROUND_UP(size, 512);
    return 0;
}

static int
raw_block_status(struct vimg_image *img, uint64_t off, uint64_t len,
                 uint64_t *pnum, unsigned *status, uint64_t *host_offset,
                 struct vimg_error **errp)
{
    uint64_t end = off + len;
    off_t data, hole;

    *host_offset = off;
    data = lseek(img->fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* No data after @off: the rest is a hole (or past EOF). */
            *pnum = len;
            *status = VIMG_BLOCK_ZERO | VIMG_BLOCK_OFFSET;
            return 0;
        }
        /* SEEK_DATA unsupported: everything is data. */
        *pnum = len;
        *status = VIMG_BLOCK_DATA | VIMG_BLOCK_OFFSET;
        return 0;
    }
    if ((uint64_t)data > off) {
        *pnum = MIN((uint64_t)data, end) - off;
        *status = VIMG_BLOCK_ZERO | VIMG_BLOCK_OFFSET;
        return 0;
    }
    hole = lseek(img->fd, (off_t)off, SEEK_HOLE);
    if (hole < 0 || (uint64_t)hole <= off) {
        hole = (off_t)end;      /* cannot tell: treat as data */
    }
    *pnum = MIN((uint64_t)hole, end) - off;
    *status = VIMG_BLOCK_DATA | VIMG_BLOCK_OFFSET;
    return 0;
}

/*
 * measure: a raw file is the disk itself, so both figures are the virtual
 * size in whole sectors; qemu ignores the source's sparseness and the
 * preallocation mode.
 */
static int
raw_measure(struct vimg_opts *opts, struct vimg_image *src, uint64_t size,
            uint64_t *required, uint64_t *fully_allocated,
            struct vimg_error **errp)
{
    if (size > INT64_MAX - 511) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    *required = ROUND_UP(size, 512);
    *fully_allocated = *required;
    return 0;
}

/* Write zero bytes over [0, size) of a new file ("full" preallocation). */
static int
write_zero_file(int fd, uint64_t size)
{
    uint8_t *zero = calloc(1, RAW_ZERO_CHUNK);
    uint64_t off = 0;
    int r = 0;

    if (!zero) {
        return -ENOMEM;
    }
    while (off < size) {
        size_t n = (size_t)MIN(size - off, (uint64_t)RAW_ZERO_CHUNK);

        r = full_pwrite(fd, zero, n, off);
        if (r < 0) {
            break;
        }
        off += n;
    }
    free(zero);
    return r;
}

static int
raw_create(int fd, const char *filename, uint64_t size,
           struct vimg_opts *opts, struct vimg_secrets *secrets,
           struct vimg_error **errp)
{
    const char *prealloc = vimg_opts_take(opts, "preallocation");
    uint64_t hint = 0;
    bool nocow = false;
    int r;

    r = opts_take_bool(opts, "nocow", &nocow, errp);
    if (r < 0) {
        return r;
    }
    r = opts_take_size(opts, "extent_size_hint", &hint, errp);
    if (r < 0) {
        return r;
    }
    if (prealloc && strcmp(prealloc, "off") != 0 &&
        strcmp(prealloc, "falloc") != 0 && strcmp(prealloc, "full") != 0) {
        if (strcmp(prealloc, "metadata") == 0) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "Unsupported preallocation mode: %s",
                                  prealloc);
        }
        return vimg_error_set(errp, -EINVAL, "invalid parameter value: %s",
                              prealloc);
    }
    if (size > INT64_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    if (nocow) {
        /* Best effort, like qemu: only btrfs knows this flag. */
        int attr = 0;

        if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
            attr |= FS_NOCOW_FL;
            (void)ioctl(fd, FS_IOC_SETFLAGS, &attr);
        }
    }
    r = file_truncate(fd, size);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not resize file: %s",
                              strerror(-r));
    }
    if (prealloc && strcmp(prealloc, "falloc") == 0 && size > 0) {
        r = file_preallocate(fd, 0, size);
        if (r < 0) {
            return vimg_error_set(errp, r,
                                  "Could not preallocate new data: %s",
                                  strerror(-r));
        }
    } else if (prealloc && strcmp(prealloc, "full") == 0) {
        r = write_zero_file(fd, size);
        if (r < 0) {
            return vimg_error_set(errp, r,
                                  "Could not write zeros for preallocation: %s",
                                  strerror(-r));
        }
    }
    return 0;
}

/* qemu-img create -f raw -o help FILE, in creation-description order. */
static const struct vimg_opt_desc raw_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "nocow", VIMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)",
      NULL },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)", NULL },
    { "extent_size_hint", VIMG_OPT_SIZE,
      "Extent size hint for the image file, 0 to disable", NULL },
    { NULL, 0, NULL, NULL },
};

const struct vimg_format_ops vimg_format_raw = {
    .name = "raw",
    .probe = raw_probe,
    .open = raw_open,
    .close = raw_close,
    .create = raw_create,
    .create_opts = raw_create_opts,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .zero = raw_zero,
    .discard = raw_discard,
    .flush = raw_flush,
    .truncate = raw_truncate,
    .block_status = raw_block_status,
    .info = NULL,
    .measure = raw_measure,
};
