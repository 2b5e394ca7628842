/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Persistent dirty bitmaps (qcow2 header extension 0x23852875, autoclear
 * bit 0; qemu-facts.md 1.2) kept valid while vimg writes, as qemu does:
 *
 * Directory entry: table offset (8), table entries (4), flags (4), type
 * (1, 1 = dirty tracking), granularity bits (1), name size (2), extra data
 * size (4), then extra data and name, padded to 8 bytes.
 *
 * - a read-write open marks every bitmap "in use" (flag bit 0) in the
 *   bitmap directory and keeps the autoclear bit, so a crash leaves the
 *   bitmaps flagged inconsistent, exactly as qemu leaves them;
 * - guest writes, zeroes and discards are noted as byte ranges;
 * - a flush sets the bits of those ranges in every enabled ("auto", flag
 *   bit 1) bitmap: a bitmap data cluster that is all zeroes on disk (table
 *   entry 0) gets a new cluster, an all-ones entry (1) stays; data
 *   clusters and refcounts reach the disk before the table entries that
 *   point to them;
 * - closing after a successful flush clears the "in use" flags again,
 *   except on bitmaps that were already in use (inconsistent) at open:
 *   those stay in use and are not tracked, as in qemu;
 * - a resize (qcow2_bitmaps_resize) gives every bitmap the table size of
 *   the new image size, as qemu stores its resized in-memory bitmaps: the
 *   bits past the smaller of the two sizes are cleared, data clusters past
 *   the new end are freed, a table that needs more clusters moves.  An
 *   inconsistent bitmap makes the resize fail (qemu's message).
 *
 * Bit i of a bitmap covers guest bytes [i << granularity_bits, ...), bit i
 * of a data cluster being bit (i % 8) of byte i / 8 (LSB first).  An
 * extension or directory vimg cannot follow (bounds, sizes) makes the open
 * fall back to clearing the autoclear bit (qemu then ignores the bitmaps).
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

#define BME_IN_USE         (1U << 0)
#define BME_AUTO           (1U << 1)
#define BM_MAX_DIR         (64u * 1024 * 1024)
#define BM_MAX_TABLE_BYTES (64u * 1024 * 1024)

struct qcow2_bitmaps {
    uint64_t dir_off, dir_size;
    uint32_t nb;
    uint8_t *dir;
    bool *stale;                /* per bitmap: in use already at open */
    uint64_t *ranges;           /* pairs: start, end (exclusive) */
    size_t n, cap;
    bool clean;                 /* the last flush stored everything */
};

static int
write_dir(struct vimg_image *img, struct qcow2_bitmaps *b, bool in_use,
          struct vimg_error **errp)
{
    uint64_t pos;
    uint32_t i;
    int r;

    for (i = 0, pos = 0; i < b->nb; i++) {
        uint8_t *e = b->dir + pos;
        uint32_t flags = ld_be32(e + 12);

        st_be32(e + 12, in_use || b->stale[i] ? flags | BME_IN_USE
                                              : flags & ~BME_IN_USE);
        pos += ROUND_UP(24 + (uint64_t)ld_be32(e + 20) + ld_be16(e + 18), 8);
    }
    r = full_pwrite(img->fd, b->dir, b->dir_size, b->dir_off);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the bitmap "
                              "directory: %s", strerror(-r));
    }
    return qcow2_sync(img, errp);
}

/* Find and check the extension and directory; 0 = usable. */
static int
load(struct vimg_image *img, struct qcow2_bitmaps *b)
{
    struct qcow2_state *s = img->priv;
    const struct qcow2_header *h = &s->hdr;
    uint64_t off = h->header_length, end, pos, fsize;
    uint8_t *hdr = malloc(s->cluster_size);
    bool found = false;
    uint32_t i;
    int64_t fs = file_size(img->fd);

    if (!hdr || fs < 0 || full_pread_zero(img->fd, hdr, s->cluster_size, 0)) {
        free(hdr);
        return -1;
    }
    fsize = (uint64_t)fs;
    end = h->backing_file_offset ? MIN(h->backing_file_offset,
                                       (uint64_t)s->cluster_size)
                                 : s->cluster_size;
    while (off + 8 <= end) {
        uint32_t type = ld_be32(hdr + off), len = ld_be32(hdr + off + 4);

        if (type == QCOW2_EXT_END || len > end - off - 8) {
            break;
        }
        if (type == QCOW2_EXT_BITMAPS && len == 24) {
            b->nb = ld_be32(hdr + off + 8);
            b->dir_size = ld_be64(hdr + off + 16);
            b->dir_off = ld_be64(hdr + off + 24);
            found = true;
        }
        off += 8 + ROUND_UP((uint64_t)len, 8);
    }
    free(hdr);
    if (!found || b->nb == 0 || b->dir_size > BM_MAX_DIR ||
        b->dir_off > fsize || b->dir_size > fsize - b->dir_off) {
        return -1;
    }
    b->dir = malloc(b->dir_size ? b->dir_size : 1);
    b->stale = calloc(b->nb, sizeof(bool));
    if (!b->dir || !b->stale ||
        full_pread(img->fd, b->dir, b->dir_size, b->dir_off)) {
        return -1;
    }
    for (i = 0, pos = 0; i < b->nb; i++) {
        uint8_t *e = b->dir + pos;
        uint64_t t_size;

        if (pos + 24 > b->dir_size) {
            return -1;
        }
        t_size = (uint64_t)ld_be32(e + 8) * 8;
        pos += ROUND_UP(24 + (uint64_t)ld_be32(e + 20) + ld_be16(e + 18), 8);
        if (pos > b->dir_size || e[17] > 63 || t_size > BM_MAX_TABLE_BYTES ||
            ld_be64(e) > fsize || t_size > fsize - ld_be64(e)) {
            return -1;
        }
        b->stale[i] = (ld_be32(e + 12) & BME_IN_USE) != 0;
    }
    return 0;
}

int
qcow2_bitmaps_open(struct vimg_image *img, uint64_t *keep,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b;

    *keep = 0;
    if (!(s->hdr.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        return 0;
    }
    b = calloc(1, sizeof(*b));
    if (!b) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (load(img, b) < 0) {
        free(b->dir);
        free(b->stale);
        free(b);
        return 0;               /* not followed: the bit gets cleared */
    }
    s->bitmaps = b;
    *keep = QCOW2_AUTOCLEAR_BITMAPS;
    return write_dir(img, b, true, errp);
}

void
qcow2_bitmaps_note(struct vimg_image *img, uint64_t off, uint64_t len)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b = s->bitmaps;

    if (!b || len == 0) {
        return;
    }
    b->clean = false;
    if (b->n >= 2 && b->ranges[b->n - 1] >= off &&
        b->ranges[b->n - 2] <= off + len) {
        b->ranges[b->n - 2] = MIN(b->ranges[b->n - 2], off);
        b->ranges[b->n - 1] = MAX(b->ranges[b->n - 1], off + len);
        return;
    }
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint64_t *p = realloc(b->ranges, cap * sizeof(uint64_t));

        if (!p) {
            /* Out of memory: cover everything from the lowest start. */
            b->ranges[0] = 0;
            b->ranges[1] = UINT64_MAX;
            b->n = 2;
            return;
        }
        b->ranges = p;
        b->cap = cap;
    }
    b->ranges[b->n++] = off;
    b->ranges[b->n++] = off + len;
}

/* Set bits [@first, @last] of one bitmap whose table is @tab. */
static int
set_bits(struct vimg_image *img, uint8_t *tab, uint64_t t_entries,
         uint64_t first, uint64_t last, uint8_t *buf, bool *tab_dirty,
         struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t per = (uint64_t)s->cluster_size * 8, k;
    int r;

    for (k = first / per; k <= last / per && k < t_entries; k++) {
        uint64_t e = ld_be64(tab + k * 8), host = e & QCOW2_OFFSET_MASK;
        uint64_t lo = MAX(first, k * per) - k * per;
        uint64_t hi = MIN(last, k * per + per - 1) - k * per, i;

        if (host == 0 && (e & 1)) {
            continue;           /* all ones already */
        }
        if (host == 0) {
            memset(buf, 0, s->cluster_size);
            r = qcow2_alloc_clusters(img, 1, &host, errp);
            if (r < 0) {
                return r;
            }
        } else {
            r = full_pread(img->fd, buf, s->cluster_size, host);
            if (r < 0) {
                return vimg_error_set(errp, r, "Could not read bitmap data: "
                                      "%s", strerror(-r));
            }
        }
        for (i = lo; i <= hi; i++) {
            buf[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        r = full_pwrite(img->fd, buf, s->cluster_size, host);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not write bitmap data: %s",
                                  strerror(-r));
        }
        if ((e & QCOW2_OFFSET_MASK) == 0) {
            st_be64(tab + k * 8, host);
            *tab_dirty = true;
        }
    }
    return 0;
}

int
qcow2_bitmaps_flush(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b = s->bitmaps;
    uint8_t *buf = NULL, *tab = NULL;
    uint64_t pos;
    uint32_t i;
    int r = 0;

    if (!b || b->n == 0) {
        if (b) {
            b->clean = true;
        }
        return 0;
    }
    buf = malloc(s->cluster_size);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0, pos = 0; r == 0 && i < b->nb; i++) {
        const uint8_t *e = b->dir + pos;
        uint64_t t_off = ld_be64(e), t_entries = ld_be32(e + 8);
        uint32_t flags = ld_be32(e + 12);
        unsigned g = e[17];
        bool dirty = false;
        size_t k;

        pos += ROUND_UP(24 + (uint64_t)ld_be32(e + 20) + ld_be16(e + 18), 8);
        if (!(flags & BME_AUTO) || e[16] != 1 || t_entries == 0 ||
            b->stale[i]) {
            continue;
        }
        free(tab);
        tab = malloc(t_entries * 8);
        if (!tab) {
            r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            break;
        }
        r = full_pread(img->fd, tab, t_entries * 8, t_off);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not read a bitmap table: %s",
                               strerror(-r));
            break;
        }
        for (k = 0; r == 0 && k < b->n; k += 2) {
            uint64_t end = MIN(b->ranges[k + 1], img->size);

            if (b->ranges[k] >= end) {
                continue;
            }
            r = set_bits(img, tab, t_entries, b->ranges[k] >> g,
                         (end - 1) >> g, buf, &dirty, errp);
        }
        if (r == 0 && dirty) {
            /* Data clusters and their refcounts before the table. */
            r = qcow2_refcount_flush(img, errp);
            if (r == 0) {
                r = full_pwrite(img->fd, tab, t_entries * 8, t_off);
                if (r < 0) {
                    r = vimg_error_set(errp, r, "Could not write a bitmap "
                                       "table: %s", strerror(-r));
                }
            }
        }
    }
    if (r == 0) {
        r = qcow2_sync(img, errp);
    }
    if (r == 0) {
        b->n = 0;
        b->clean = true;
    }
    free(tab);
    free(buf);
    return r;
}

void
qcow2_bitmaps_close(struct vimg_image *img)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b = s->bitmaps;

    if (!b) {
        return;
    }
    if (b->clean && b->n == 0) {
        /* Everything is stored: the bitmaps are consistent again. */
        (void)write_dir(img, b, false, NULL);
    }
    free(b->dir);
    free(b->stale);
    free(b->ranges);
    free(b);
    s->bitmaps = NULL;
}

/* ---- resize ---- */

int
qcow2_bitmaps_resize_check(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b = s->bitmaps;
    uint64_t pos;
    uint32_t i;

    if (!b) {
        return 0;
    }
    for (i = 0, pos = 0; i < b->nb; i++) {
        const uint8_t *e = b->dir + pos;
        uint32_t elen = ld_be32(e + 20);
        uint16_t nlen = ld_be16(e + 18);

        pos += ROUND_UP(24 + (uint64_t)elen + nlen, 8);
        if (pos > b->dir_size) {
            break;
        }
        if (b->stale[i]) {
            return vimg_error_set(errp, -EINVAL, "Bitmap '%.*s' is "
                                  "inconsistent and cannot be used\nTry "
                                  "block-dirty-bitmap-remove to delete this "
                                  "bitmap from disk", (int)nlen,
                                  (const char *)e + 24 + elen);
        }
    }
    /* The bits noted so far, against the old size. */
    return qcow2_bitmaps_flush(img, errp);
}

/* Ranges of clusters to free once the directory no longer needs them. */
struct free_list {
    uint64_t *v;                /* pairs: host offset, byte count */
    size_t n, cap;
};

static int
free_list_add(struct free_list *f, uint64_t off, uint64_t len,
              struct vimg_error **errp)
{
    if (len == 0 || off == 0) {
        return 0;
    }
    if (f->n + 2 > f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 32;
        uint64_t *p = realloc(f->v, cap * sizeof(uint64_t));

        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n++] = off;
    f->v[f->n++] = len;
    return 0;
}

/*
 * Clear bits [@keep, per) of data cluster entry @k of @tab (@keep > 0): a
 * stored cluster is rewritten in place, an all-ones entry becomes a new
 * cluster with the first @keep bits set.
 */
static int
trim_cluster(struct vimg_image *img, uint8_t *tab, uint64_t k, uint64_t keep,
             uint8_t *buf, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t e = ld_be64(tab + k * 8), host = e & QCOW2_OFFSET_MASK, i;
    uint64_t per = (uint64_t)s->cluster_size * 8;
    int r;

    if (host == 0 && !(e & 1)) {
        return 0;               /* all zeroes */
    }
    if (host == 0) {
        memset(buf, 0, s->cluster_size);
        for (i = 0; i < keep; i++) {
            buf[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        r = qcow2_alloc_clusters(img, 1, &host, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
        if (r < 0) {
            return r;
        }
        st_be64(tab + k * 8, host);
    } else {
        r = full_pread(img->fd, buf, s->cluster_size, host);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not read bitmap data: %s",
                                  strerror(-r));
        }
        for (i = keep; i < per; i++) {
            buf[i / 8] &= (uint8_t)~(1u << (i % 8));
        }
    }
    r = full_pwrite(img->fd, buf, s->cluster_size, host);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write bitmap data: %s",
                              strerror(-r));
    }
    return 0;
}

/* One bitmap (directory entry @e) to the new size; frees go to @f. */
static int
resize_one(struct vimg_image *img, uint8_t *e, uint64_t old_size,
           uint64_t size, struct free_list *f, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t cs = s->cluster_size, per = cs * 8, g = 1ULL << e[17];
    uint64_t t_off = ld_be64(e), t_entries = ld_be32(e + 8), k;
    uint64_t old_bits = DIV_ROUND_UP(old_size, g);
    uint64_t bits = DIV_ROUND_UP(size, g), m = MIN(old_bits, bits);
    uint64_t nt = DIV_ROUND_UP(bits, per);
    uint64_t tc_old = DIV_ROUND_UP(t_entries * 8, cs);
    uint64_t tc_new = DIV_ROUND_UP(nt * 8, cs), n_off = t_off;
    uint8_t *tab, *buf;
    int r;

    if (nt * 8 > BM_MAX_TABLE_BYTES) {
        return vimg_error_set(errp, -EFBIG, "Bitmap table too large for "
                              "the new size");
    }
    tab = calloc(MAX(tc_old, tc_new) ? MAX(tc_old, tc_new) : 1, cs);
    buf = malloc(cs);
    if (!tab || !buf) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = full_pread(img->fd, tab, t_entries * 8, t_off);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not read a bitmap table: %s",
                           strerror(-r));
        goto out;
    }
    /* No bit past the smaller size; no data cluster past the new end. */
    if (m % per && m / per < t_entries) {
        r = trim_cluster(img, tab, m / per, m % per, buf, errp);
        if (r < 0) {
            goto out;
        }
    }
    for (k = nt; k < t_entries; k++) {
        r = free_list_add(f, ld_be64(tab + k * 8) & QCOW2_OFFSET_MASK, cs,
                          errp);
        if (r < 0) {
            goto out;
        }
        st_be64(tab + k * 8, 0);
    }
    if (tc_new > tc_old) {
        r = qcow2_alloc_clusters(img, tc_new, &n_off, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
        if (r == 0) {
            r = free_list_add(f, t_off, tc_old * cs, errp);
        }
    } else if (tc_new < tc_old) {
        r = free_list_add(f, t_off + tc_new * cs, (tc_old - tc_new) * cs,
                          errp);
    }
    if (r == 0 && tc_new > 0) {
        r = full_pwrite(img->fd, tab, tc_new * cs, n_off);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not write a bitmap table: %s",
                               strerror(-r));
        }
    }
    if (r == 0) {
        st_be64(e, tc_new > 0 ? n_off : 0);
        st_be32(e + 8, (uint32_t)nt);
    }

out:
    free(tab);
    free(buf);
    return r;
}

int
qcow2_bitmaps_resize(struct vimg_image *img, uint64_t old_size,
                     struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_bitmaps *b = s->bitmaps;
    struct free_list f = { 0 };
    uint64_t pos;
    size_t k;
    uint32_t i;
    int r = 0;

    if (!b || old_size == img->size) {
        return 0;
    }
    for (i = 0, pos = 0; r == 0 && i < b->nb; i++) {
        uint8_t *e = b->dir + pos;

        pos += ROUND_UP(24 + (uint64_t)ld_be32(e + 20) + ld_be16(e + 18), 8);
        if (e[16] == 1) {
            r = resize_one(img, e, old_size, img->size, &f, errp);
        }
    }
    /* Tables and data on disk before the directory that points to them;
     * the old clusters are freed after it. */
    if (r == 0) {
        r = qcow2_sync(img, errp);
    }
    if (r == 0) {
        r = write_dir(img, b, true, errp);
    }
    for (k = 0; r == 0 && k < f.n; k += 2) {
        r = qcow2_update_refcount(img, f.v[k], f.v[k + 1], -1, errp);
    }
    if (r == 0) {
        r = qcow2_refcount_flush(img, errp);
    }
    free(f.v);
    return r;
}
