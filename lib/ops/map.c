/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_map: the allocation map of an image as `qemu-img map` reports it
 * (qemu-facts.md 7.4), built on vimg_image_block_status only, so every
 * format gets it through its block_status callback.
 *
 * Block status runs become entries {start, length, depth, present, zero,
 * data, offset}; consecutive entries are merged while depth, present, zero,
 * data and the presence of a file offset are equal and, when there is an
 * offset, the file offsets continue each other (qemu's merge rule: a hole
 * followed by data is two entries, two data runs stored apart are two
 * entries).  Encrypted formats report no file offsets at all, as qemu.
 *
 * Backing chains follow qemu's walk: a range that a layer reports as
 * unallocated (VIMG_BLOCK_UNALLOCATED) is asked of its backing image, one
 * level deeper, clamped to the backing image's size.  Where no layer has it
 * (no backing image, or beyond the backing image's end) the entry is not
 * present and reads as zeroes, at the depth of the last layer asked.  Raw
 * and luks files are allocated everywhere.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

/* Longest range asked of block status at once (qemu asks 1 GiB too). */
#define MAP_STEP ((uint64_t)1 << 30)

static bool
mergeable(const struct vimg_map_entry *a, const struct vimg_map_entry *b)
{
    if (a->depth != b->depth || a->present != b->present ||
        a->zero != b->zero || a->data != b->data ||
        a->has_offset != b->has_offset) {
        return false;
    }
    if (a->start + a->length != b->start) {
        return false;
    }
    return !a->has_offset || a->offset + a->length == b->offset;
}

/*
 * The status of the guest range at @off (at most @len bytes) through the
 * backing chain of @img: fills @e and its length (> 0).
 */
static int
chain_status(struct vimg_image *img, uint64_t off, uint64_t len,
             struct vimg_map_entry *e, struct vimg_error **errp)
{
    int depth = 0;

    for (;;) {
        struct vimg_image *b;
        uint64_t pnum = 0, host = 0, bsize;
        unsigned st = 0;
        int r;

        r = vimg_image_block_status(img, off, len, &pnum, &st, &host, errp);
        if (r < 0) {
            return r;
        }
        if (pnum == 0 || pnum > len) {
            return vimg_error_set(errp, -EIO, "Invalid block status");
        }
        memset(e, 0, sizeof(*e));
        e->start = off;
        e->length = pnum;
        e->depth = depth;
        if (!(st & VIMG_BLOCK_UNALLOCATED)) {
            e->present = true;
            e->zero = (st & VIMG_BLOCK_ZERO) != 0;
            e->data = (st & VIMG_BLOCK_DATA) != 0;
            e->has_offset = (st & VIMG_BLOCK_OFFSET) != 0;
            e->offset = e->has_offset ? host : 0;
            return 0;
        }
        b = vimg_image_backing(img);
        bsize = b ? vimg_image_size(b) : 0;
        if (!b || off >= bsize) {
            /* Nowhere in the chain: reads as zeroes, not present; qemu
             * still maps an unallocated part of an allocated cluster
             * (qcow2 extended L2) of this last layer. */
            e->zero = true;
            e->has_offset = (st & VIMG_BLOCK_OFFSET) != 0;
            e->offset = e->has_offset ? host : 0;
            return 0;
        }
        img = b;
        len = MIN(pnum, bsize - off);
        depth++;
    }
}

int
vimg_map(struct vimg_image *img, uint64_t start, uint64_t len, vimg_map_fn fn,
         void *opaque, struct vimg_error **errp)
{
    struct vimg_map_entry cur, next;
    uint64_t size, end, off;
    bool have = false;
    int r;

    if (!img || !fn) {
        return vimg_error_set(errp, -EINVAL, "Invalid map request");
    }
    size = vimg_image_size(img);
    if (start >= size || len == 0) {
        return 0;
    }
    end = (len > size - start) ? size : start + len;

    for (off = start; off < end; off += next.length) {
        r = chain_status(img, off, MIN(end - off, MAP_STEP), &next, errp);
        if (r < 0) {
            return r;
        }
        if (have && mergeable(&cur, &next)) {
            cur.length += next.length;
            continue;
        }
        if (have) {
            r = fn(opaque, &cur);
            if (r < 0) {
                return r;
            }
        }
        cur = next;
        have = true;
    }
    if (have) {
        r = fn(opaque, &cur);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}
