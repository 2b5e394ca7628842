/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * All-or-nothing file I/O helpers on plain file descriptors: positional
 * reads and writes that loop over short transfers and EINTR, file size and
 * allocation queries, and "make this range read as zeroes" with
 * fallocate(2) where the filesystem supports it.  Leaf code: 0 or -errno,
 * never logs.
 *
 * Every helper that changes a file (full_pwrite, file_punch_zero,
 * file_flush, file_truncate, file_discard, file_preallocate) first calls
 * failpoint_hit() with its kind, so crash-consistency tests can kill the
 * process or inject an error right before the Nth such call (failpoint.h).
 * Formats must change files only through these helpers.
 */
#include "config.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "failpoint.h"
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

/*
 * The pwrite loop of full_pwrite() without the failpoint: the zero-filling
 * fallback of file_punch_zero() uses it, so that one call counts once, as
 * "zero".
 */
static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
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

int
full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    int r;

    if (len == 0) {
        return 0;
    }
    r = failpoint_hit(FAILPOINT_WRITE);
    if (r < 0) {
        return r;
    }
    return pwrite_all(fd, buf, len, off);
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

        r = pwrite_all(fd, zero, step, off);
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
    int r;

    if (len == 0) {
        return 0;
    }
    if (off > INT64_MAX || len > (uint64_t)INT64_MAX - off) {
        return -EINVAL;
    }
    r = failpoint_hit(FAILPOINT_ZERO);
    if (r < 0) {
        return r;
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

int
file_flush(int fd)
{
    int r = failpoint_hit(FAILPOINT_FLUSH);

    if (r < 0) {
        return r;
    }
    while (fdatasync(fd) < 0) {
        if (errno == EINTR) {
            continue;
        }
        /* Not syncable (pipe, character device, read-only mount). */
        if (errno == EINVAL || errno == EROFS) {
            return 0;
        }
        return -errno;
    }
    return 0;
}

int
file_truncate(int fd, uint64_t size)
{
    int r;

    if (size > INT64_MAX) {
        return -EFBIG;
    }
    r = failpoint_hit(FAILPOINT_TRUNCATE);
    if (r < 0) {
        return r;
    }
    while (ftruncate(fd, (off_t)size) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

int
file_discard(int fd, uint64_t off, uint64_t len)
{
    int r;

    if (len == 0) {
        return 0;
    }
    if (off > INT64_MAX || len > (uint64_t)INT64_MAX - off) {
        return -EINVAL;
    }
    r = failpoint_hit(FAILPOINT_DISCARD);
    if (r < 0) {
        return r;
    }
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) < 0) {
        /* Discard is only a hint: no hole punching here is fine. */
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
            return 0;
        }
        return -errno;
    }
    return 0;
}

int
file_preallocate(int fd, uint64_t off, uint64_t len)
{
    int r;

    if (len == 0) {
        return 0;
    }
    if (off > INT64_MAX || len > (uint64_t)INT64_MAX - off) {
        return -EFBIG;
    }
    r = failpoint_hit(FAILPOINT_ALLOC);
    if (r < 0) {
        return r;
    }
    r = posix_fallocate(fd, (off_t)off, (off_t)len);
    return r ? -r : 0;
}
