/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 reference counts and the cluster allocator (qcow2.txt "Host cluster
 * management", qemu-facts.md 1.4).
 *
 * The refcount table is kept whole in memory (qemu caps it at 8 MiB);
 * refcount blocks go through the small table cache of qcow2-cluster.c.
 * Entries are refcount_bits wide (1..64), big-endian for whole bytes and
 * LSB-first inside a byte for narrower widths.
 *
 * Allocation scans for a run of clusters with refcount 0 starting at a
 * hint (a missing refcount block means all its refcounts are 0).  Blocks
 * missing for the run are placed right after it (the run is extended by
 * as many free clusters as needed); a full refcount table is
 * replaced by a bigger one placed at the end of the covered area together
 * with the new blocks that describe it, and the old table is freed only
 * after the header points to the new one.  Refcount blocks may be written
 * at any time: refcounts only go down after the references are gone from
 * disk (see qcow2.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

int
qcow2_refcount_init(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t bytes = (uint64_t)s->hdr.refcount_table_clusters * s->cluster_size;
    uint64_t i;
    uint8_t *buf;
    int r;

    /* Geometry and the table's position were validated by the header
     * parser; the size cap keeps the allocation below 8 MiB. */
    s->rt_entries = bytes / 8;
    s->rt = calloc(s->rt_entries ? s->rt_entries : 1, sizeof(uint64_t));
    buf = malloc(bytes ? bytes : 1);
    if (!s->rt || !buf) {
        free(buf);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread_zero(img->fd, buf, bytes, s->hdr.refcount_table_offset);
    if (r < 0) {
        free(buf);
        return vimg_error_set(errp, r, "Could not read the refcount table: %s",
                              strerror(-r));
    }
    for (i = 0; i < s->rt_entries; i++) {
        s->rt[i] = ld_be64(buf + i * 8);
    }
    free(buf);
    return 0;
}

void
qcow2_refcount_free(struct qcow2_state *s)
{
    free(s->rt);
    s->rt = NULL;
}

/* Entry @i of a refcount block of @bits-wide entries. */
static uint64_t
rc_get(uint32_t bits, const uint8_t *blk, uint64_t i)
{
    if (bits >= 8) {
        const uint8_t *p = blk + i * (bits / 8);

        switch (bits) {
        case 8:
            return p[0];
        case 16:
            return ld_be16(p);
        case 32:
            return ld_be32(p);
        default:
            return ld_be64(p);
        }
    }
    return (blk[i * bits / 8] >> ((i * bits) % 8)) & ((1u << bits) - 1);
}

static void
rc_set(uint32_t bits, uint8_t *blk, uint64_t i, uint64_t v)
{
    if (bits >= 8) {
        uint8_t *p = blk + i * (bits / 8);

        switch (bits) {
        case 8:
            p[0] = (uint8_t)v;
            break;
        case 16:
            st_be16(p, (uint16_t)v);
            break;
        case 32:
            st_be32(p, (uint32_t)v);
            break;
        default:
            st_be64(p, v);
            break;
        }
        return;
    }
    {
        unsigned shift = (unsigned)((i * bits) % 8);
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        uint8_t *p = &blk[i * bits / 8];

        *p = (uint8_t)((*p & ~mask) | ((v << shift) & mask));
    }
}

static uint64_t
rb_get(const struct qcow2_state *s, const uint8_t *blk, uint64_t i)
{
    return rc_get(s->refcount_bits, blk, i);
}

static void
rb_set(const struct qcow2_state *s, uint8_t *blk, uint64_t i, uint64_t v)
{
    rc_set(s->refcount_bits, blk, i, v);
}

/* The refcount block for table index @bi, or NULL (via *out) if none. */
static int
get_block(struct vimg_image *img, uint64_t bi, struct qcow2_table **out,
          struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t off;

    *out = NULL;
    if (bi >= s->rt_entries) {
        return 0;
    }
    off = s->rt[bi] & ~(uint64_t)0x1ff;
    if (s->rt[bi] & 0x1ff) {
        return vimg_error_set(errp, -EIO,
                              "Refcount table entry %" PRIu64 " has reserved "
                              "bits set", bi);
    }
    if (off == 0) {
        return 0;
    }
    if (qcow2_offset_into_cluster(s, off)) {
        return vimg_error_set(errp, -EIO,
                              "Refblock offset %#" PRIx64 " unaligned "
                              "(reftable index: %#" PRIx64 ")", off, bi);
    }
    return qcow2_cache_get(img, false, off, true, out, errp);
}

int
qcow2_get_refcount(struct vimg_image *img, uint64_t ci, uint64_t *out,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_table *t;
    int r;

    r = get_block(img, ci / s->rb_entries, &t, errp);
    if (r < 0) {
        return r;
    }
    *out = t ? rb_get(s, t->data, ci % s->rb_entries) : 0;
    return 0;
}

int
qcow2_update_refcount(struct vimg_image *img, uint64_t off, uint64_t len,
                      int delta, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t first, last, ci;

    if (len == 0) {
        return 0;
    }
    first = off >> s->cluster_bits;
    last = (off + len - 1) >> s->cluster_bits;
    for (ci = first; ci <= last; ci++) {
        struct qcow2_table *t;
        uint64_t v;
        int r = get_block(img, ci / s->rb_entries, &t, errp);

        if (r < 0) {
            return r;
        }
        if (!t) {
            return vimg_error_set(errp, -EIO,
                                  "No refcount block for cluster %" PRIu64, ci);
        }
        v = rb_get(s, t->data, ci % s->rb_entries);
        if ((delta < 0 && v == 0) || (delta > 0 && v >= s->refcount_max)) {
            return vimg_error_set(errp, -EIO,
                                  "Refcount of cluster %" PRIu64 " would %s",
                                  ci, delta < 0 ? "underflow" : "overflow");
        }
        v = delta < 0 ? v - 1 : v + 1;
        if (delta < 0) {
            /* A cluster may become free: never append compressed data to
             * a partly used cluster that was not just allocated. */
            s->cbyte_next = 0;
        }
        rb_set(s, t->data, ci % s->rb_entries, v);
        t->dirty = true;
        if (v == 0) {
            qcow2_cache_forget(s, ci << s->cluster_bits);
            if (ci < s->free_hint) {
                s->free_hint = ci;
            }
        }
    }
    return 0;
}

/*
 * Replace the refcount table by one with at least @min_entries entries.
 * The new blocks and the new table go right after the area the old table
 * covers (everything there is free), blocks first.
 */
static int
grow_table(struct vimg_image *img, uint64_t min_entries,
           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t old_entries = s->rt_entries;
    uint64_t old_off = s->hdr.refcount_table_offset;
    uint64_t old_clusters = s->hdr.refcount_table_clusters;
    uint64_t area = old_entries * s->rb_entries;   /* first cluster index */
    uint64_t entries, tclusters, nblocks, prev, i, ci;
    uint64_t *nrt;
    uint8_t *buf = NULL, hdrbuf[12];
    int r;

    entries = MAX(old_entries * 2, min_entries);
    for (;;) {
        entries = ROUND_UP(entries, s->cluster_size / 8);
        tclusters = entries * 8 / s->cluster_size;
        nblocks = 0;
        do {
            prev = nblocks;
            nblocks = DIV_ROUND_UP(tclusters + nblocks, s->rb_entries);
        } while (nblocks != prev);
        if (old_entries + nblocks <= entries) {
            break;
        }
        entries = old_entries + nblocks;
    }
    if (entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
        return vimg_error_set(errp, -EFBIG, "Refcount table too large");
    }
    /* Blocks referenced by the new table must be on disk before it. */
    r = qcow2_refcount_flush(img, errp);
    if (r < 0) {
        return r;
    }
    nrt = calloc(entries, sizeof(uint64_t));
    buf = calloc(1, s->cluster_size);
    if (!nrt || !buf) {
        free(nrt);
        free(buf);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    memcpy(nrt, s->rt, old_entries * sizeof(uint64_t));
    for (i = 0; i < nblocks; i++) {
        uint64_t base = (old_entries + i) * s->rb_entries;

        memset(buf, 0, s->cluster_size);
        for (ci = area; ci < area + nblocks + tclusters; ci++) {
            if (ci >= base && ci < base + s->rb_entries) {
                rb_set(s, buf, ci - base, 1);
            }
        }
        nrt[old_entries + i] = (area + i) << s->cluster_bits;
        r = full_pwrite(img->fd, buf, s->cluster_size,
                        (area + i) << s->cluster_bits);
        if (r < 0) {
            goto io_fail;
        }
    }
    free(buf);
    buf = calloc(1, tclusters * s->cluster_size);
    if (!buf) {
        free(nrt);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < entries; i++) {
        st_be64(buf + i * 8, nrt[i]);
    }
    r = full_pwrite(img->fd, buf, tclusters * s->cluster_size,
                    (area + nblocks) << s->cluster_bits);
    if (r < 0) {
        goto io_fail;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto fail;
    }
    /* Switch the header to the new table: offset and cluster count. */
    st_be64(hdrbuf, (area + nblocks) << s->cluster_bits);
    st_be32(hdrbuf + 8, (uint32_t)tclusters);
    r = full_pwrite(img->fd, hdrbuf, 12, 48);
    if (r < 0) {
        goto io_fail;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto fail;
    }
    free(buf);
    free(s->rt);
    s->rt = nrt;
    s->rt_entries = entries;
    s->rt_dirty = false;
    s->hdr.refcount_table_offset = (area + nblocks) << s->cluster_bits;
    s->hdr.refcount_table_clusters = (uint32_t)tclusters;
    /* Now nothing refers to the old table any more. */
    return qcow2_update_refcount(img, old_off,
                                 old_clusters << s->cluster_bits, -1, errp);

io_fail:
    r = vimg_error_set(errp, r, "Could not write the refcount table: %s",
                       strerror(-r));
fail:
    free(nrt);
    free(buf);
    return r;
}

/* Refcount of cluster @ci where a missing block counts as all zeroes. */
static int
peek_refcount(struct vimg_image *img, uint64_t ci, uint64_t *out,
              struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t bi = ci / s->rb_entries;

    if (bi >= s->rt_entries || s->rt[bi] == 0) {
        *out = 0;
        return 0;
    }
    return qcow2_get_refcount(img, ci, out, errp);
}

/* Number of refcount blocks missing for clusters [first, first + n). */
static uint64_t
missing_blocks(const struct qcow2_state *s, uint64_t first, uint64_t n,
               uint64_t *max_bi)
{
    uint64_t bi, k = 0, last = (first + n - 1) / s->rb_entries;

    for (bi = first / s->rb_entries; bi <= last; bi++) {
        if (bi >= s->rt_entries || s->rt[bi] == 0) {
            k++;
        }
    }
    *max_bi = last;
    return k;
}

/*
 * Create the missing refcount blocks for [@first, @first + @n) in the
 * @k clusters at @at (free, inside that range).  The new blocks are
 * written zeroed before the table points to them; their own refcounts are
 * then counted like any other cluster.
 */
static int
create_blocks(struct vimg_image *img, uint64_t first, uint64_t n,
              uint64_t at, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t bi, last = (first + n - 1) / s->rb_entries, placed = 0;
    uint8_t *zero;
    int r = 0;

    zero = calloc(1, s->cluster_size);
    if (!zero) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (bi = first / s->rb_entries; bi <= last && r == 0; bi++) {
        uint64_t off;

        if (s->rt[bi] != 0) {
            continue;
        }
        off = (at + placed++) << s->cluster_bits;
        r = full_pwrite(img->fd, zero, s->cluster_size, off);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not write a refcount block: "
                               "%s", strerror(-r));
            break;
        }
        s->rt[bi] = off;
        s->rt_dirty = true;
        s->rb_unsynced = true;
    }
    free(zero);
    if (r == 0 && placed > 0) {
        r = qcow2_update_refcount(img, at << s->cluster_bits,
                                  placed << s->cluster_bits, 1, errp);
    }
    return r;
}

int
qcow2_alloc_clusters(struct vimg_image *img, uint64_t n, uint64_t *out,
                     struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t limit = (uint64_t)INT64_MAX >> s->cluster_bits;
    uint64_t start = s->free_hint, len = 0, k = 0, first_free = UINT64_MAX;
    int r;

    if (n == 0) {
        return vimg_error_set(errp, -EINVAL, "Empty cluster allocation");
    }
    for (;;) {
        uint64_t k2, max_bi;

        /* A run of n + k free clusters: the data plus k new blocks. */
        while (len < n + k) {
            uint64_t ci = start + len, rc;

            if (ci >= limit) {
                return vimg_error_set(errp, -EFBIG, "Image file too large");
            }
            r = peek_refcount(img, ci, &rc, errp);
            if (r < 0) {
                return r;
            }
            if (rc != 0) {
                start = ci + 1;
                len = 0;
                continue;
            }
            first_free = MIN(first_free, ci);
            len++;
        }
        k2 = missing_blocks(s, start, n + k, &max_bi);
        if (max_bi >= s->rt_entries) {
            /* The new table lands at the end of the old coverage. */
            r = grow_table(img, max_bi + 1, errp);
            if (r < 0) {
                return r;
            }
            len = 0;
            k = 0;
            continue;
        }
        if (k2 <= k) {
            break;
        }
        k = k2;
    }
    if (k > 0) {
        r = create_blocks(img, start, n + k, start + n, errp);
        if (r < 0) {
            return r;
        }
    }
    r = qcow2_update_refcount(img, start << s->cluster_bits,
                              n << s->cluster_bits, 1, errp);
    if (r < 0) {
        return r;
    }
    s->free_hint = (first_free >= start) ? start + n + k : first_free;
    *out = start << s->cluster_bits;
    return 0;
}

int
qcow2_refcount_area(struct vimg_image *img, uint64_t start,
                    uint64_t additional, uint64_t *end,
                    struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t sc = start >> s->cluster_bits, used = 0, blocks = 0, nnew = 0;
    uint64_t tcl = 0, entries, prev_new, prev_tcl, i, k, ci, tab_off;
    uint64_t old_off = s->hdr.refcount_table_offset;
    uint64_t old_clusters = s->hdr.refcount_table_clusters;
    uint64_t *nrt = NULL;
    uint8_t *buf = NULL, hdrbuf[12];
    int r;

    if (qcow2_offset_into_cluster(s, start)) {
        return vimg_error_set(errp, -EINVAL, "Unaligned refcount area");
    }
    for (i = 0; i < s->rt_entries; i++) {
        if (s->rt[i]) {
            used = i + 1;
        }
    }
    /* Blocks for everything up to the end of the area, the area's own new
     * blocks and table included (a fixed point). */
    do {
        uint64_t total;

        prev_new = nnew;
        prev_tcl = tcl;
        if (additional > UINT64_MAX / 2 - sc - nnew - tcl) {
            return vimg_error_set(errp, -EFBIG, "Image file too large");
        }
        total = sc + additional + nnew + tcl;
        blocks = DIV_ROUND_UP(total, s->rb_entries);
        nnew = 0;
        for (i = 0; i < blocks; i++) {
            if (i >= s->rt_entries || s->rt[i] == 0) {
                nnew++;
            }
        }
        entries = MAX(blocks, used);
        tcl = DIV_ROUND_UP(entries * 8, s->cluster_size);
    } while (nnew != prev_new || tcl != prev_tcl);
    if (tcl * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
        return vimg_error_set(errp, -EFBIG, "Refcount table too large");
    }
    entries = tcl * s->cluster_size / 8;
    r = qcow2_refcount_flush(img, errp);
    if (r < 0) {
        return r;
    }
    nrt = calloc(entries, sizeof(uint64_t));
    buf = calloc(1, s->cluster_size);
    if (!nrt || !buf) {
        free(nrt);
        free(buf);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    memcpy(nrt, s->rt, MIN(s->rt_entries, entries) * sizeof(uint64_t));
    /* The new blocks, in table order, then the table. */
    for (i = 0, k = 0; i < blocks; i++) {
        uint64_t base = i * s->rb_entries, off;

        if (nrt[i] != 0) {
            continue;
        }
        memset(buf, 0, s->cluster_size);
        for (ci = sc; ci < sc + nnew + tcl; ci++) {
            if (ci >= base && ci < base + s->rb_entries) {
                rb_set(s, buf, ci - base, 1);
            }
        }
        off = (sc + k++) << s->cluster_bits;
        nrt[i] = off;
        r = full_pwrite(img->fd, buf, s->cluster_size, off);
        if (r < 0) {
            goto io_fail;
        }
    }
    tab_off = (sc + nnew) << s->cluster_bits;
    free(buf);
    buf = calloc(tcl, s->cluster_size);
    if (!buf) {
        free(nrt);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < entries; i++) {
        st_be64(buf + i * 8, nrt[i]);
    }
    r = full_pwrite(img->fd, buf, tcl * s->cluster_size, tab_off);
    if (r < 0) {
        goto io_fail;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto fail;
    }
    st_be64(hdrbuf, tab_off);
    st_be32(hdrbuf + 8, (uint32_t)tcl);
    r = full_pwrite(img->fd, hdrbuf, 12, 48);
    if (r < 0) {
        goto io_fail;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto fail;
    }
    free(buf);
    buf = NULL;
    /* Area clusters described by blocks that existed before. */
    for (ci = sc; ci < sc + nnew + tcl; ci++) {
        uint64_t bi = ci / s->rb_entries;

        if (bi < s->rt_entries && s->rt[bi] != 0) {
            r = qcow2_update_refcount(img, ci << s->cluster_bits, 1, 1, errp);
            if (r < 0) {
                free(nrt);
                return r;
            }
        }
    }
    free(s->rt);
    s->rt = nrt;
    s->rt_entries = entries;
    s->rt_dirty = false;
    s->hdr.refcount_table_offset = tab_off;
    s->hdr.refcount_table_clusters = (uint32_t)tcl;
    *end = tab_off + tcl * s->cluster_size;
    r = qcow2_update_refcount(img, old_off, old_clusters << s->cluster_bits,
                              -1, errp);
    return r < 0 ? r : qcow2_refcount_flush(img, errp);

io_fail:
    r = vimg_error_set(errp, r, "Could not write the refcount table: %s",
                       strerror(-r));
fail:
    free(nrt);
    free(buf);
    return r;
}

int
qcow2_last_cluster(struct vimg_image *img, uint64_t *out,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t ci = s->rt_entries * s->rb_entries, rc;
    int r;

    while (ci > 0) {
        ci--;
        if (s->rt[ci / s->rb_entries] == 0) {
            ci -= ci % s->rb_entries;
            continue;
        }
        r = qcow2_get_refcount(img, ci, &rc, errp);
        if (r < 0) {
            return r;
        }
        if (rc != 0) {
            *out = ci + 1;
            return 0;
        }
    }
    *out = 0;
    return 0;
}

int
qcow2_refcount_flush(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t i;
    int r;

    for (i = 0; i < QCOW2_RB_CACHE_SIZE; i++) {
        if (s->rb_cache[i].dirty) {
            r = qcow2_table_write(img, false, &s->rb_cache[i], errp);
            if (r < 0) {
                return r;
            }
        }
    }
    if (s->rt_dirty) {
        uint64_t bytes = s->rt_entries * 8;
        uint8_t *buf = malloc(bytes);

        if (!buf) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        if (s->rb_unsynced) {
            r = qcow2_sync(img, errp);
            if (r < 0) {
                free(buf);
                return r;
            }
            s->rb_unsynced = false;
        }
        for (i = 0; i < s->rt_entries; i++) {
            st_be64(buf + i * 8, s->rt[i]);
        }
        r = full_pwrite(img->fd, buf, bytes, s->hdr.refcount_table_offset);
        free(buf);
        if (r < 0) {
            return vimg_error_set(errp, r,
                                  "Could not write the refcount table: %s",
                                  strerror(-r));
        }
        s->rt_dirty = false;
        s->rb_unsynced = true;
    }
    if (s->rb_unsynced) {
        r = qcow2_sync(img, errp);
        if (r < 0) {
            return r;
        }
        s->rb_unsynced = false;
    }
    return 0;
}

/* ---- changing the refcount width (amend -o refcount_bits=N) ---- */

/*
 * The cluster indices of the old refcount structures (table clusters and
 * blocks), sorted, walked in step with an increasing cluster index.
 */
struct old_set {
    uint64_t *v;
    size_t n, pos;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static bool
old_set_has(struct old_set *o, uint64_t ci)
{
    while (o->pos < o->n && o->v[o->pos] < ci) {
        o->pos++;
    }
    return o->pos < o->n && o->v[o->pos] == ci;
}

/*
 * The refcount of cluster *@ci as it will be once the header points to the
 * new structures: the old count, 0 for the old structures themselves.
 * Where no old block exists, *@ci moves to the last cluster it would
 * cover (all 0), so the caller's loop continues after it.
 */
static int
future_refcount(struct vimg_image *img, struct old_set *o, uint64_t *ci,
                uint64_t *out, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r;

    if (s->rt[*ci / s->rb_entries] == 0) {
        *ci += s->rb_entries - 1 - *ci % s->rb_entries;
        *out = 0;
        return 0;
    }
    r = peek_refcount(img, *ci, out, errp);
    if (r == 0 && old_set_has(o, *ci)) {
        *out = 0;
    }
    return r;
}

/* Whether new block @i (of @nrbe entries) has counts: old ones (@used,
 * @nblk flags) or part of the new area [@last, @area_end). */
static bool
new_block_needed(const bool *used, uint64_t nblk, uint64_t i, uint64_t nrbe,
                 uint64_t last, uint64_t area_end)
{
    return (i < nblk && used[i]) ||
           (i * nrbe < area_end && (i + 1) * nrbe > last);
}

int
qcow2_change_refcount_order(struct vimg_image *img, uint32_t order,
                            struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint32_t bits = 1u << order, cb = s->cluster_bits;
    uint64_t cs = s->cluster_size, nrbe = cs * 8 / bits;
    uint64_t new_max = bits == 64 ? UINT64_MAX : (1ULL << bits) - 1;
    uint64_t last, ci, i, k, nb = 0, tcl = 0, entries, nblk, prev_nb, prev_tcl;
    uint64_t area_end, tab_off, *nrt = NULL;
    struct old_set o = { 0 };
    bool *used = NULL;
    uint8_t *buf = NULL, hdr[52];
    int64_t old_fsize;
    bool written = false;
    int r;

    if (bits == s->refcount_bits) {
        return 0;
    }
    r = qcow2_metadata_flush(img, errp);
    if (r == 0) {
        r = qcow2_last_cluster(img, &last, errp);
    }
    if (r < 0) {
        return r;
    }
    old_fsize = file_size(img->fd);
    if (old_fsize < 0) {
        return vimg_error_set(errp, (int)old_fsize, "Could not get the size "
                              "of '%s': %s", img->filename,
                              strerror((int)-old_fsize));
    }
    o.v = malloc((s->rt_entries + s->hdr.refcount_table_clusters + 1) *
                 sizeof(uint64_t));
    /* One flag per new block index up to the end of the used area; the
     * new structures may need at most as many again (see below). */
    nblk = DIV_ROUND_UP(last, nrbe) + 1;
    used = calloc(nblk, sizeof(bool));
    if (!o.v || !used) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    for (i = 0; i < s->rt_entries; i++) {
        if (s->rt[i]) {
            o.v[o.n++] = s->rt[i] >> cb;
        }
    }
    for (i = 0; i < s->hdr.refcount_table_clusters; i++) {
        o.v[o.n++] = (s->hdr.refcount_table_offset >> cb) + i;
    }
    qsort(o.v, o.n, sizeof(uint64_t), cmp_u64);

    /* Pass 1: every count must fit the new width (qemu's message, for the
     * first cluster that does not); which new blocks have counts. */
    for (ci = 0; ci < last; ci++) {
        uint64_t rc;

        r = future_refcount(img, &o, &ci, &rc, errp);
        if (r < 0) {
            goto out;
        }
        if (rc > new_max) {
            r = vimg_error_set(errp, -EINVAL, "Cannot decrease refcount "
                               "entry width to %u bits: Cluster at offset "
                               "%#" PRIx64 " has a refcount of %" PRIu64,
                               bits, ci << cb, rc);
            goto out;
        }
        if (rc) {
            used[ci / nrbe] = true;
        }
    }

    /*
     * The new blocks and table go at cluster @last, where nothing is in
     * use: until the header points to them they are invisible, and they
     * already count themselves and no longer count the old structures
     * (free from the moment of the switch).  A fixed point: the area's
     * own clusters may need blocks, and the table covers them all.
     */
    do {
        uint64_t nentries;

        prev_nb = nb;
        prev_tcl = tcl;
        area_end = last + nb + tcl;
        nentries = DIV_ROUND_UP(area_end ? area_end : 1, nrbe);
        nb = 0;
        for (i = 0; i < nentries; i++) {
            nb += new_block_needed(used, nblk, i, nrbe, last, area_end);
        }
        tcl = DIV_ROUND_UP(nentries * 8, cs);
    } while (nb != prev_nb || tcl != prev_tcl);
    if (tcl * cs > QCOW2_MAX_REFTABLE_BYTES) {
        r = vimg_error_set(errp, -EFBIG, "Refcount table too large");
        goto out;
    }
    entries = tcl * cs / 8;
    nrt = calloc(entries, sizeof(uint64_t));
    buf = malloc(MAX(cs, tcl * cs));
    if (!nrt || !buf) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }

    /* Pass 2: the blocks, in table order, then the table; then sync. */
    o.pos = 0;
    for (i = 0, k = 0; i * nrbe < area_end; i++) {
        uint64_t base = i * nrbe, end = MIN(base + nrbe, last);

        if (!new_block_needed(used, nblk, i, nrbe, last, area_end)) {
            continue;
        }
        memset(buf, 0, cs);
        for (ci = base; ci < end; ci++) {
            uint64_t rc;

            r = future_refcount(img, &o, &ci, &rc, errp);
            if (r < 0) {
                goto out;
            }
            if (rc) {
                rc_set(bits, buf, ci - base, rc);
            }
        }
        for (ci = MAX(base, last); ci < MIN(base + nrbe, area_end); ci++) {
            rc_set(bits, buf, ci - base, 1);
        }
        nrt[i] = (last + k++) << cb;
        written = true;
        r = full_pwrite(img->fd, buf, cs, nrt[i]);
        if (r < 0) {
            goto io_fail;
        }
    }
    tab_off = (last + nb) << cb;
    memset(buf, 0, tcl * cs);
    for (i = 0; i < entries; i++) {
        st_be64(buf + i * 8, nrt[i]);
    }
    r = full_pwrite(img->fd, buf, tcl * cs, tab_off);
    if (r < 0) {
        goto io_fail;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto out;
    }

    /* The switch: table offset, table clusters and refcount order in one
     * write of the header, then sync. */
    r = full_pread_zero(img->fd, hdr, sizeof(hdr), 48);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not read the qcow2 header: %s",
                           strerror(-r));
        goto out;
    }
    st_be64(hdr, tab_off);
    st_be32(hdr + 8, (uint32_t)tcl);
    st_be32(hdr + 48, order);
    r = full_pwrite(img->fd, hdr, sizeof(hdr), 48);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not update the qcow2 header: %s",
                           strerror(-r));
        goto out;
    }
    written = false;            /* from here on the new structures count */
    r = qcow2_sync(img, errp);

    /* The state follows the file whatever the sync said. */
    for (i = 0; i < QCOW2_RB_CACHE_SIZE; i++) {
        s->rb_cache[i].offset = 0;
        s->rb_cache[i].dirty = false;
    }
    free(s->rt);
    s->rt = nrt;
    nrt = NULL;
    s->rt_entries = entries;
    s->rt_dirty = false;
    s->rb_unsynced = false;
    s->hdr.refcount_table_offset = tab_off;
    s->hdr.refcount_table_clusters = (uint32_t)tcl;
    s->hdr.refcount_order = order;
    s->refcount_bits = bits;
    s->rb_entries = (uint32_t)nrbe;
    s->refcount_max = new_max;
    s->free_hint = 0;
    s->cbyte_next = 0;
    goto out;

io_fail:
    r = vimg_error_set(errp, r, "Could not write the new refcount "
                       "structures: %s", strerror(-r));
out:
    if (r < 0 && written) {
        /* Nothing refers to what was written: the old size again. */
        (void)file_truncate(img->fd, (uint64_t)old_fsize);
    }
    free(o.v);
    free(used);
    free(nrt);
    free(buf);
    return r;
}
