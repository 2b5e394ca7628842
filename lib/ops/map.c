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
 * There are no backing files yet, so depth is always 0.  "present" is
 * true unless the format reports the range as unallocated
 * (VIMG_BLOCK_UNALLOCATED, where the header defines it): raw and luks
 * files are allocated everywhere.
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

static void
status_to_entry(unsigned st, uint64_t host, struct vimg_map_entry *e)
{
    e->depth = 0;
    e->present = true;
#ifdef VIMG_BLOCK_UNALLOCATED
    if (st & VIMG_BLOCK_UNALLOCATED) {
        e->present = false;
    }
#endif
    e->zero = (st & VIMG_BLOCK_ZERO) != 0;
    e->data = (st & VIMG_BLOCK_DATA) != 0;
    e->has_offset = (st & VIMG_BLOCK_OFFSET) != 0;
    e->offset = e->has_offset ? host : 0;
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
        uint64_t pnum = 0, host = 0;
        unsigned st = 0;

        r = vimg_image_block_status(img, off, MIN(end - off, MAP_STEP), &pnum,
                                    &st, &host, errp);
        if (r < 0) {
            return r;
        }
        memset(&next, 0, sizeof(next));
        next.start = off;
        next.length = pnum;
        status_to_entry(st, host, &next);
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
