/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * All-or-nothing file I/O helpers on plain file descriptors: positional
 * reads and writes that loop over short transfers and EINTR, file size and
 * allocation queries, and "make this range read as zeroes" with
 * fallocate(2) where the filesystem supports it.  Leaf code: 0 or -errno,
 * never logs.
 */
#include "config.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"

/* Zero-fill fallback writes at most this much per call. */
#define ZERO_CHUNK (1024 * 1024)

int
full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -EIO;          /* unexpected end of file */
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int
full_pread_zero(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            memset(p, 0, len);    /* past EOF reads as zeroes */
            return 0;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int
full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -EIO;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int64_t
file_size(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_size;
}

int64_t
file_allocated(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

/* Write real zero bytes over [off, off+len). */
static int
write_zeroes(int fd, uint64_t off, uint64_t len)
{
    uint8_t *zero;
    size_t n = (size_t)MIN(len, (uint64_t)ZERO_CHUNK);
    int r = 0;

    zero = calloc(1, n ? n : 1);
    if (!zero) {
        return -ENOMEM;
    }
    while (len > 0) {
        size_t step = (size_t)MIN(len, (uint64_t)n);

        r = full_pwrite(fd, zero, step, off);
        if (r < 0) {
            break;
        }
        off += step;
        len -= step;
    }
    free(zero);
    return r;
}

/* fallocate errors that just mean "not supported here, write instead". */
static bool
falloc_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL ||
           err == ENOTTY;
}

int
file_punch_zero(int fd, uint64_t off, uint64_t len, bool may_unmap)
{
    if (len == 0) {
        return 0;
    }
    if (off > INT64_MAX || len > (uint64_t)INT64_MAX - off) {
        return -EINVAL;
    }
    if (may_unmap &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) == 0) {
        return 0;
    }
    if (may_unmap && !falloc_unsupported(errno)) {
        return -errno;
    }
    /* ZERO_RANGE keeps the blocks allocated (no unmap requested). */
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) == 0) {
        return 0;
    }
    if (!falloc_unsupported(errno)) {
        return -errno;
    }
    return write_zeroes(fd, off, len);
}
