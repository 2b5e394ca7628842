/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_compare: qemu-img compare semantics over the public image API
 * (qemu-facts.md 7.4).
 *
 * - The common part of both images must be equal byte for byte.
 * - Non-strict: the part of the larger image beyond the smaller one's end
 *   must read as zeroes (the smaller image counts as zero-extended).
 * - Strict: images of different sizes are different.  For raw and luks
 *   every block is allocated in both images, so qemu's strict block-status
 *   comparison never finds a difference and is not repeated here.
 * - The reported offset is that of the first differing 512-byte sector,
 *   counted like qemu from the start of the chunk being compared: chunks
 *   are runs of one block status in both images (at most 2 MiB), so a
 *   difference at byte 1000 is reported at 512, but one right after a
 *   file's unaligned end (a raw file of 500000 bytes is a disk of 500224
 *   whose status changes at 500000) at the exact end, 500000 and so on.
 *
 * Runs that block status reports as zero in both images are not read.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

#define CMP_BUF (2 * 1024 * 1024)
#define CMP_SECTOR 512

/* Offset of the first byte where @a and @b differ; @len if none. */
static size_t
first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;

    /* memcmp finds a difference fast; then locate it in 4 KiB steps. */
    if (memcmp(a, b, len) == 0) {
        return len;
    }
    while (i + 4096 <= len && memcmp(a + i, b + i, 4096) == 0) {
        i += 4096;
    }
    while (i < len && a[i] == b[i]) {
        i++;
    }
    return i;
}

static size_t
first_nonzero(const uint8_t *p, size_t len)
{
    size_t i = 0;

    if (len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0)) {
        return len;
    }
    while (p[i] == 0) {
        i++;
    }
    return i;
}

/* The sector of byte @i of the chunk at @chunk, as qemu reports it. */
static uint64_t
chunk_sector(uint64_t chunk, size_t i)
{
    return chunk + (uint64_t)(i / CMP_SECTOR * CMP_SECTOR);
}

/* Check that [off, end) of @img reads as zeroes. 0 yes, 1 no, <0 error. */
static int
check_zero_tail(struct vimg_image *img, uint64_t off, uint64_t end,
                uint8_t *buf, uint64_t *mismatch, vimg_progress_fn progress,
                void *opaque, uint64_t total, struct vimg_error **errp)
{
    while (off < end) {
        uint64_t pnum;
        unsigned st;
        int r;

        r = vimg_image_block_status(img, off, end - off, &pnum, &st, NULL,
                                    errp);
        if (r < 0) {
            return r;
        }
        if (!(st & VIMG_BLOCK_ZERO)) {
            size_t n = (size_t)MIN(pnum, (uint64_t)CMP_BUF), i;

            pnum = n;
            r = vimg_image_pread(img, buf, n, off, errp);
            if (r < 0) {
                return r;
            }
            i = first_nonzero(buf, n);
            if (i < n) {
                *mismatch = chunk_sector(off, i);
                return 1;
            }
        }
        off += pnum;
        if (progress && progress(opaque, off, total)) {
            return vimg_error_set(errp, -ECANCELED, "Operation cancelled");
        }
    }
    return 0;
}

int
vimg_compare(struct vimg_image *a, struct vimg_image *b, bool strict,
             uint64_t *mismatch_offset, vimg_progress_fn progress,
             void *progress_opaque, struct vimg_error **errp)
{
    uint64_t sa, sb, common, total, off = 0, dummy;
    uint8_t *ba = NULL, *bb = NULL;
    int r = 0;

    if (!a || !b) {
        return vimg_error_set(errp, -EINVAL, "No image to compare");
    }
    if (!mismatch_offset) {
        mismatch_offset = &dummy;
    }
    sa = vimg_image_size(a);
    sb = vimg_image_size(b);
    common = MIN(sa, sb);
    total = MAX(sa, sb);
    if (strict && sa != sb) {
        /* The caller tells this case apart by comparing the sizes. */
        *mismatch_offset = common;
        return 1;
    }
    ba = malloc(CMP_BUF);
    bb = malloc(CMP_BUF);
    if (!ba || !bb) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    if (progress && progress(progress_opaque, 0, total)) {
        r = vimg_error_set(errp, -ECANCELED, "Operation cancelled");
        goto out;
    }

    while (off < common) {
        uint64_t pa, pb, n;
        unsigned sta, stb;
        size_t i;

        r = vimg_image_block_status(a, off, common - off, &pa, &sta, NULL,
                                    errp);
        if (r < 0) {
            goto out;
        }
        r = vimg_image_block_status(b, off, common - off, &pb, &stb, NULL,
                                    errp);
        if (r < 0) {
            goto out;
        }
        n = MIN(pa, pb);
        if ((sta & VIMG_BLOCK_ZERO) && (stb & VIMG_BLOCK_ZERO)) {
            off += n;               /* both read as zeroes */
        } else {
            n = MIN(n, (uint64_t)CMP_BUF);
            if (sta & VIMG_BLOCK_ZERO) {
                memset(ba, 0, (size_t)n);
            } else {
                r = vimg_image_pread(a, ba, (size_t)n, off, errp);
                if (r < 0) {
                    goto out;
                }
            }
            if (stb & VIMG_BLOCK_ZERO) {
                memset(bb, 0, (size_t)n);
            } else {
                r = vimg_image_pread(b, bb, (size_t)n, off, errp);
                if (r < 0) {
                    goto out;
                }
            }
            i = first_diff(ba, bb, (size_t)n);
            if (i < n) {
                *mismatch_offset = chunk_sector(off, i);
                r = 1;
                goto out;
            }
            off += n;
        }
        if (progress && progress(progress_opaque, off, total)) {
            r = vimg_error_set(errp, -ECANCELED, "Operation cancelled");
            goto out;
        }
    }

    /* The larger image's extra part must read as zeroes. */
    if (sa != sb) {
        r = check_zero_tail(sa > sb ? a : b, common, total, ba,
                            mismatch_offset, progress, progress_opaque, total,
                            errp);
    }
out:
    free(ba);
    free(bb);
    return r;
}
