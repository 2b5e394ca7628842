/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-memory read/write callbacks of the LUKS fuzz targets (struct
 * luks1_io and struct luks2_io have the same callback types): reads past
 * the end of the input fail with -EIO, like a short file; writes are only
 * allowed while @writable is set (loading and unlocking must never write)
 * and fail with -EIO past the end.  Include after "internal.h".
 */
#ifndef VIMG_FUZZ_BUFIO_H
#define VIMG_FUZZ_BUFIO_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"

struct fuzz_buf {
    uint8_t *data;
    size_t size;
    bool writable;
};

static inline int
fuzz_buf_read(void *opaque, uint64_t off, void *buf, size_t len,
              struct vimg_error **errp)
{
    struct fuzz_buf *b = opaque;

    if (off > b->size || len > b->size - off) {
        return vimg_error_set(errp, -EIO, "Read beyond the end of the input");
    }
    memcpy(buf, b->data + off, len);
    return 0;
}

static inline int
fuzz_buf_write(void *opaque, uint64_t off, const void *buf, size_t len,
               struct vimg_error **errp)
{
    struct fuzz_buf *b = opaque;

    FUZZ_CHECK(b->writable);
    if (off > b->size || len > b->size - off) {
        return vimg_error_set(errp, -EIO, "Write beyond the end of the input");
    }
    memcpy(b->data + off, buf, len);
    return 0;
}

#endif /* VIMG_FUZZ_BUFIO_H */
