/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 internal snapshots (qcow2.txt "Snapshots", qemu-facts.md 1.5):
 * the snapshot table (parse with qemu's limits and messages, write),
 * create / delete / apply / list, loading a snapshot read-only for
 * `convert -l`, the "snapshots" member of `info`, and copy-on-write of
 * clusters and L2 tables shared with snapshots for the write path.
 *
 * Reference counting follows qemu: every L1 table (the active one and one
 * per snapshot) counts once for each L2 table it points to and, through
 * that L2 table, once for each data cluster, even when the L2 table is
 * shared.  OFLAG_COPIED marks active L1/L2 entries whose target has
 * refcount exactly 1; only those may be written in place.
 *
 * Crash safety (no journal): a crash may leak clusters but never leaves a
 * refcount lower than its references.
 *   create: L1 copy written, refcounts +1 (synced), then the L2/L1 flags,
 *           then the new table, the header (count + offset in one write),
 *           and only then the old table is freed.
 *   delete: new table and header first (the snapshot is gone), then its
 *           tree is decremented, its L1 freed, the active flags fixed.
 *   apply:  snapshot tree +1 (synced), active L1 overwritten (or a bigger
 *           one switched in through the header), then the old tree -1.
 *   COW:    the old cluster or L2 table is released only once the L1/L2
 *           tables that no longer point to it are on disk (pending_free).
 *
 * The table is read from the file whenever it is needed (every operation
 * is one-shot), so no snapshot state lives in struct qcow2_state.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <json-c/json.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

#define SN_HEADER_LEN   40
#define SN_EXTRA_KNOWN  24      /* vm_state_size_large, disk_size, icount */

/* ---- small helpers ------------------------------------------------------- */

static void
entry_get(const struct qcow2_state *s, const struct qcow2_table *t,
          uint64_t i, uint64_t *desc, uint64_t *bm)
{
    const uint8_t *p = t->data + i * s->l2_entry_size;

    *desc = ld_be64(p);
    *bm = s->extended_l2 ? ld_be64(p + 8) : 0;
}

static void
entry_put(const struct qcow2_state *s, struct qcow2_table *t, uint64_t i,
          uint64_t desc, uint64_t bm)
{
    uint8_t *p = t->data + i * s->l2_entry_size;

    st_be64(p, desc);
    if (s->extended_l2) {
        st_be64(p + 8, bm);
    }
    t->dirty = true;
}

static void
l1_dirty(struct qcow2_state *s, uint32_t lo, uint32_t hi)
{
    if (lo >= hi) {
        return;
    }
    if (s->l1_dirty_lo >= s->l1_dirty_hi) {
        s->l1_dirty_lo = lo;
        s->l1_dirty_hi = hi;
    } else {
        s->l1_dirty_lo = MIN(s->l1_dirty_lo, lo);
        s->l1_dirty_hi = MAX(s->l1_dirty_hi, hi);
    }
}

/* Release [@off, @off + @len) once the tables on disk no longer point to
 * it (qcow2_metadata_flush() does it after writing L2 tables and L1). */
static int
defer_free(struct qcow2_state *s, uint64_t off, uint64_t len,
           struct vimg_error **errp)
{
    if (s->pending_n + 2 > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 64;
        uint64_t *p = realloc(s->pending_free, cap * sizeof(uint64_t));

        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        s->pending_free = p;
        s->pending_cap = cap;
    }
    s->pending_free[s->pending_n++] = off;
    s->pending_free[s->pending_n++] = len;
    return 0;
}

static void
compressed_range(const struct qcow2_state *s, uint64_t desc, uint64_t *start,
                 uint64_t *len)
{
    unsigned x = 62 - (s->cluster_bits - 8);
    uint64_t coff = desc & ((1ULL << x) - 1);
    uint64_t nsec = (desc >> x) & ((1ULL << (s->cluster_bits - 8)) - 1);

    *start = coff;
    *len = (nsec + 1) * 512 - (coff & 511);
}

static int
refcount_of(struct vimg_image *img, uint64_t off, uint64_t *rc,
            struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    return qcow2_get_refcount(img, off >> s->cluster_bits, rc, errp);
}

/*
 * Drop every cached L2 table (after a flush, so none is dirty): tables of
 * freed trees must not be found in the cache once their clusters are
 * allocated again.
 */
static int
drop_l2_cache(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t i;
    int r;

    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    for (i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
        s->l2_cache[i].offset = 0;
        s->l2_cache[i].dirty = false;
    }
    s->dbuf_entry = 0;
    return 0;
}

/* ---- the snapshot table ---------------------------------------------------- */

void
qcow2_snapshot_table_free(struct qcow2_snap_table *t)
{
    uint32_t i;

    for (i = 0; t->v && i < t->n; i++) {
        free(t->v[i].id);
        free(t->v[i].name);
        free(t->v[i].extra_unknown);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static int
read_at(struct vimg_image *img, void *buf, size_t len, uint64_t off,
        struct vimg_error **errp)
{
    /* Like qemu, bytes past the end of the file read as zeroes, but a
     * request past qemu's largest image length (INT64_MAX rounded down to
     * 1 GiB) is an I/O error. */
    const uint64_t max_len = (uint64_t)INT64_MAX & ~((1ULL << 30) - 1);
    int r;

    if (off > max_len || len > max_len - off) {
        r = -EIO;
    } else {
        r = full_pread_zero(img->fd, buf, len, (off_t)off);
    }

    if (r < 0) {
        return vimg_error_set(errp, r, "Failed to read snapshot table: %s",
                              strerror(-r));
    }
    return 0;
}

static char *
read_string(struct vimg_image *img, uint64_t off, uint16_t len,
            struct vimg_error **errp)
{
    char *p = malloc((size_t)len + 1);

    if (!p) {
        vimg_error_set(errp, -ENOMEM, "Out of memory");
        return NULL;
    }
    if (read_at(img, p, len, off, errp) < 0) {
        free(p);
        return NULL;
    }
    p[len] = '\0';
    return p;
}

int
qcow2_snapshot_read_table(struct vimg_image *img, struct qcow2_snap_table *t,
                          struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t off = s->hdr.snapshots_offset, pos;
    uint32_t n = s->hdr.nb_snapshots, i;
    int r;

    memset(t, 0, sizeof(*t));
    if (n > QCOW2_MAX_SNAPSHOTS) {
        return vimg_error_set(errp, -EFBIG, "Snapshot table too large");
    }
    if (qcow2_offset_into_cluster(s, off) ||
        off > (uint64_t)INT64_MAX - (uint64_t)n * SN_HEADER_LEN) {
        return vimg_error_set(errp, -EINVAL, "Snapshot table offset invalid");
    }
    if (n == 0) {
        return 0;
    }
    t->v = calloc(n, sizeof(*t->v));
    if (!t->v) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    t->n = n;
    pos = off;
    for (i = 0; i < n; i++) {
        struct qcow2_snap *sn = &t->v[i];
        uint8_t h[SN_HEADER_LEN], extra[SN_EXTRA_KNOWN];
        uint16_t idlen, namelen;
        uint32_t known;

        r = read_at(img, h, sizeof(h), pos, errp);
        if (r < 0) {
            goto fail;
        }
        sn->l1_offset = ld_be64(h);
        sn->l1_size = ld_be32(h + 8);
        idlen = ld_be16(h + 12);
        namelen = ld_be16(h + 14);
        sn->date_sec = ld_be32(h + 16);
        sn->date_nsec = ld_be32(h + 20);
        sn->vm_clock_nsec = ld_be64(h + 24);
        sn->vm_state_size = ld_be32(h + 32);
        sn->extra_size = ld_be32(h + 36);
        pos += SN_HEADER_LEN;
        if (sn->extra_size > QCOW2_MAX_SNAPSHOT_EXTRA) {
            r = vimg_error_set(errp, -EFBIG, "Too much extra metadata in "
                               "snapshot table entry %u\nYou can force-remove "
                               "this extra metadata with qemu-img check -r "
                               "all", i);
            goto fail;
        }
        memset(extra, 0, sizeof(extra));
        known = MIN(sn->extra_size, (uint32_t)SN_EXTRA_KNOWN);
        r = read_at(img, extra, known, pos, errp);
        if (r < 0) {
            goto fail;
        }
        if (sn->extra_size >= 8) {
            sn->vm_state_size = ld_be64(extra);
        }
        sn->disk_size = sn->extra_size >= 16 ? ld_be64(extra + 8)
                                             : s->hdr.size;
        sn->icount = sn->extra_size >= 24 ? (int64_t)ld_be64(extra + 16) : -1;
        if (sn->extra_size > SN_EXTRA_KNOWN) {
            sn->unknown_len = sn->extra_size - SN_EXTRA_KNOWN;
            sn->extra_unknown = malloc(sn->unknown_len);
            if (!sn->extra_unknown) {
                r = vimg_error_set(errp, -ENOMEM, "Out of memory");
                goto fail;
            }
            r = read_at(img, sn->extra_unknown, sn->unknown_len,
                        pos + SN_EXTRA_KNOWN, errp);
            if (r < 0) {
                goto fail;
            }
        }
        pos += sn->extra_size;
        sn->id = read_string(img, pos, idlen, errp);
        if (!sn->id) {
            r = -EIO;
            goto fail;
        }
        pos += idlen;
        sn->name = read_string(img, pos, namelen, errp);
        if (!sn->name) {
            r = -EIO;
            goto fail;
        }
        pos += namelen;
        pos = ROUND_UP(pos, 8);
        if (pos - off > QCOW2_MAX_SNAPSHOTS_SIZE) {
            r = vimg_error_set(errp, -EFBIG, "Snapshot table is too big");
            goto fail;
        }
    }
    t->bytes = pos - off;
    return 0;

fail:
    qcow2_snapshot_table_free(t);
    return r < 0 ? r : -EIO;
}

/* Bytes one entry takes when written (extra data at least the known 24). */
static uint64_t
entry_bytes(const struct qcow2_snap *sn)
{
    return ROUND_UP(SN_HEADER_LEN + SN_EXTRA_KNOWN + (uint64_t)sn->unknown_len
                    + strlen(sn->id) + strlen(sn->name), 8);
}

static void
encode_entry(const struct qcow2_snap *sn, uint8_t *p)
{
    size_t idlen = strlen(sn->id), namelen = strlen(sn->name);
    uint8_t *q;

    memset(p, 0, entry_bytes(sn));
    st_be64(p, sn->l1_offset);
    st_be32(p + 8, sn->l1_size);
    st_be16(p + 12, (uint16_t)idlen);
    st_be16(p + 14, (uint16_t)namelen);
    st_be32(p + 16, sn->date_sec);
    st_be32(p + 20, sn->date_nsec);
    st_be64(p + 24, sn->vm_clock_nsec);
    st_be32(p + 32, (uint32_t)sn->vm_state_size);
    st_be32(p + 36, SN_EXTRA_KNOWN + sn->unknown_len);
    st_be64(p + 40, sn->vm_state_size);
    st_be64(p + 48, sn->disk_size);
    st_be64(p + 56, (uint64_t)sn->icount);
    q = p + SN_HEADER_LEN + SN_EXTRA_KNOWN;
    if (sn->unknown_len) {
        memcpy(q, sn->extra_unknown, sn->unknown_len);
        q += sn->unknown_len;
    }
    memcpy(q, sn->id, idlen);
    memcpy(q + idlen, sn->name, namelen);
}

/*
 * Make @t the image's snapshot table: write it to new clusters, point the
 * header at it (count and offset in one write), then free the old table.
 * @old_bytes: the size of the table the header points to now.
 */
static int
switch_table(struct vimg_image *img, const struct qcow2_snap_table *t,
             uint64_t old_bytes, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t bytes = 0, new_off = 0, old_off = s->hdr.snapshots_offset, p;
    uint32_t old_n = s->hdr.nb_snapshots, i;
    uint8_t hdr[12], *buf = NULL;
    int r;

    for (i = 0; i < t->n; i++) {
        bytes += entry_bytes(&t->v[i]);
    }
    if (bytes > QCOW2_MAX_SNAPSHOTS_SIZE) {
        return vimg_error_set(errp, -EFBIG, "Snapshot table is too big");
    }
    if (t->n > 0) {
        buf = malloc(bytes);
        if (!buf) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        for (i = 0, p = 0; i < t->n; i++) {
            encode_entry(&t->v[i], buf + p);
            p += entry_bytes(&t->v[i]);
        }
        r = qcow2_alloc_clusters(img, DIV_ROUND_UP(bytes, s->cluster_size),
                                 &new_off, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
        if (r == 0) {
            r = full_pwrite(img->fd, buf, bytes, new_off);
            if (r < 0) {
                r = vimg_error_set(errp, r, "Could not write the snapshot "
                                   "table: %s", strerror(-r));
            }
        }
        free(buf);
        if (r == 0) {
            r = qcow2_sync(img, errp);
        }
        if (r < 0) {
            return r;
        }
    }
    st_be32(hdr, t->n);
    st_be64(hdr + 4, new_off);
    r = full_pwrite(img->fd, hdr, sizeof(hdr), 60);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not update the qcow2 header: %s",
                              strerror(-r));
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        return r;
    }
    s->hdr.nb_snapshots = t->n;
    s->hdr.snapshots_offset = new_off;
    if (old_n > 0 && old_off != 0 && old_bytes > 0) {
        r = qcow2_update_refcount(img, old_off, old_bytes, -1, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
    }
    return r;
}

/* ---- reference counts of a whole tree ----------------------------------- */

/*
 * Add @delta (+1, -1 or 0) to the refcount of every L2 table reachable
 * from @l1 (@n entries) and of every cluster those tables point to, and
 * recompute OFLAG_COPIED in the L2 entries and in @l1 (in memory; the
 * caller writes @l1 where it belongs).  @lo and @hi receive the range of
 * changed L1 entries (lo >= hi: none).
 */
static int
update_tree(struct vimg_image *img, uint64_t *l1, uint32_t n, int delta,
            uint32_t *lo, uint32_t *hi, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t entries = 1ULL << s->l2_bits;
    uint32_t i;
    int r;

    *lo = n;
    *hi = 0;
    for (i = 0; i < n; i++) {
        uint64_t l2off = l1[i] & QCOW2_OFFSET_MASK, rc, ne, j;
        struct qcow2_table *t;

        if (l2off == 0) {
            continue;
        }
        if (qcow2_offset_into_cluster(s, l2off)) {
            return vimg_error_set(errp, -EIO, "L2 table offset %#" PRIx64
                                  " unaligned (L1 index: %#" PRIx32 ")",
                                  l2off, i);
        }
        r = qcow2_cache_get(img, true, l2off, true, &t, errp);
        if (r < 0) {
            return r;
        }
        /* Refcount updates use the refcount-block cache only: t stays. */
        for (j = 0; j < entries; j++) {
            uint64_t desc, bm, nd, host;

            entry_get(s, t, j, &desc, &bm);
            nd = desc & ~QCOW2_OFLAG_COPIED;
            if (desc & QCOW2_OFLAG_COMPRESSED) {
                uint64_t start, len;

                if (delta != 0) {
                    compressed_range(s, desc, &start, &len);
                    r = qcow2_update_refcount(img, start, len, delta, errp);
                    if (r < 0) {
                        return r;
                    }
                }
            } else if ((host = desc & QCOW2_OFFSET_MASK) != 0) {
                if (qcow2_offset_into_cluster(s, host)) {
                    return vimg_error_set(errp, -EIO, "Cluster allocation "
                                          "offset %#" PRIx64 " unaligned",
                                          host);
                }
                if (delta != 0) {
                    r = qcow2_update_refcount(img, host, s->cluster_size,
                                              delta, errp);
                    if (r < 0) {
                        return r;
                    }
                }
                r = refcount_of(img, host, &rc, errp);
                if (r < 0) {
                    return r;
                }
                if (rc == 1) {
                    nd |= QCOW2_OFLAG_COPIED;
                }
            }
            if (nd != desc) {
                entry_put(s, t, j, nd, bm);
            }
        }
        if (delta != 0) {
            r = qcow2_update_refcount(img, l2off, s->cluster_size, delta,
                                      errp);
            if (r < 0) {
                return r;
            }
        }
        r = refcount_of(img, l2off, &rc, errp);
        if (r < 0) {
            return r;
        }
        ne = l2off | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
        if (ne != l1[i]) {
            l1[i] = ne;
            *lo = MIN(*lo, i);
            *hi = MAX(*hi, i + 1);
        }
    }
    return 0;
}

/* Fix OFLAG_COPIED in the active tables. */
static int
fix_active_flags(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint32_t lo, hi;
    int r = update_tree(img, s->l1, s->l1_size, 0, &lo, &hi, errp);

    if (r == 0) {
        l1_dirty(s, lo, hi);
    }
    return r;
}

/* Read (validated) the L1 table of @sn, padded with zeroes to @want entries
 * (at least sn->l1_size). */
static int
load_snapshot_l1(struct vimg_image *img, const struct qcow2_snap *sn,
                 uint32_t want, uint64_t **out, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t bytes = (uint64_t)sn->l1_size * 8;
    uint64_t *l1;
    uint8_t *buf;
    uint32_t i;
    int r;

    *out = NULL;
    if (bytes > QCOW2_MAX_L1_BYTES) {
        return vimg_error_set(errp, -EFBIG, "Snapshot L1 table too large");
    }
    if (qcow2_offset_into_cluster(s, sn->l1_offset) ||
        sn->l1_offset > (uint64_t)INT64_MAX - bytes) {
        return vimg_error_set(errp, -EINVAL,
                              "Snapshot L1 table offset invalid");
    }
    want = MAX(want, sn->l1_size);
    l1 = calloc(want ? want : 1, sizeof(uint64_t));
    buf = malloc(bytes ? bytes : 1);
    if (!l1 || !buf) {
        free(l1);
        free(buf);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread(img->fd, buf, bytes, sn->l1_offset);
    if (r < 0) {
        free(l1);
        free(buf);
        return vimg_error_set(errp, r, "Could not read the snapshot L1 "
                              "table: %s", strerror(-r));
    }
    for (i = 0; i < sn->l1_size; i++) {
        l1[i] = ld_be64(buf + (size_t)i * 8);
        if (l1[i] & QCOW2_L1_RESERVED) {
            free(l1);
            free(buf);
            return vimg_error_set(errp, -EIO, "Snapshot L1 entry %u has "
                                  "reserved bits set", i);
        }
    }
    free(buf);
    *out = l1;
    return 0;
}

static int
need_rw(struct vimg_image *img, struct vimg_error **errp)
{
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    return 0;
}

/* Index of the snapshot matching @id and @name (NULL: any), or -1. */
static int
find_by_id_and_name(const struct qcow2_snap_table *t, const char *id,
                    const char *name)
{
    uint32_t i;

    if (!id && !name) {
        return -1;
    }
    for (i = 0; i < t->n; i++) {
        if ((!id || strcmp(t->v[i].id, id) == 0) &&
            (!name || strcmp(t->v[i].name, name) == 0)) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- ops ------------------------------------------------------------------ */

int
qcow2_snapshot_list(struct vimg_image *img, struct vimg_snapshot **out,
                    size_t *n, struct vimg_error **errp)
{
    struct qcow2_snap_table t;
    struct vimg_snapshot *v;
    uint32_t i;
    int r;

    *out = NULL;
    *n = 0;
    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0 || t.n == 0) {
        return r;
    }
    v = calloc(t.n, sizeof(*v));
    if (!v) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < t.n; i++) {
        const struct qcow2_snap *sn = &t.v[i];

        v[i].id = sn->id;
        v[i].name = sn->name;
        t.v[i].id = t.v[i].name = NULL;
        v[i].vm_state_size = sn->vm_state_size;
        v[i].date_sec = sn->date_sec;
        v[i].date_nsec = sn->date_nsec;
        v[i].vm_clock_nsec = sn->vm_clock_nsec;
        v[i].disk_size = sn->disk_size;
        v[i].icount = sn->icount;
    }
    *n = t.n;
    *out = v;
    qcow2_snapshot_table_free(&t);
    return 0;
}

int
qcow2_snapshot_create(struct vimg_image *img, const char *name,
                      struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_snap_table t;
    struct qcow2_snap *v, *sn;
    struct timeval tv;
    unsigned long max_id = 0;
    uint64_t l1_off = 0, old_bytes;
    uint32_t i, lo, hi;
    char idbuf[32];
    int r;

    r = need_rw(img, errp);
    if (r < 0) {
        return r;
    }
    if (!name || strlen(name) > UINT16_MAX) {
        return vimg_error_set(errp, -EINVAL, "Invalid snapshot name");
    }
    if (s->refcount_max < 2) {
        return vimg_error_set(errp, -ERANGE, "Snapshots need reference "
                              "counts wider than 1 bit");
    }
    if (s->has_data_file) {
        /* qemu 7.2: "-95 (Operation not supported)" */
        return vimg_error_set(errp, -ENOTSUP, "Snapshots are not supported "
                              "with an external data file");
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0) {
        return r;
    }
    old_bytes = t.bytes;
    if (t.n >= QCOW2_MAX_SNAPSHOTS) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -EFBIG, "Too many snapshots");
    }
    for (i = 0; i < t.n; i++) {
        unsigned long id = strtoul(t.v[i].id, NULL, 10);

        max_id = MAX(max_id, id);
    }
    snprintf(idbuf, sizeof(idbuf), "%lu", max_id + 1);

    v = realloc(t.v, (t.n + 1) * sizeof(*v));
    if (!v) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    t.v = v;
    sn = &t.v[t.n++];
    memset(sn, 0, sizeof(*sn));
    sn->id = strdup(idbuf);
    sn->name = strdup(name);
    if (!sn->id || !sn->name) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    gettimeofday(&tv, NULL);
    sn->date_sec = (uint32_t)tv.tv_sec;
    sn->date_nsec = (uint32_t)tv.tv_usec * 1000;
    sn->disk_size = img->size;
    sn->icount = 0;             /* what qemu-img writes */
    sn->l1_size = s->l1_size;

    /* 1. A copy of the active L1 table, flags and all (as qemu does). */
    if (s->l1_size > 0) {
        r = qcow2_alloc_clusters(img, DIV_ROUND_UP((uint64_t)s->l1_size * 8,
                                                   s->cluster_size),
                                 &l1_off, errp);
        if (r == 0) {
            r = qcow2_write_l1_at(img, s->l1, s->l1_size, l1_off, errp);
        }
        if (r < 0) {
            goto out;
        }
    }
    sn->l1_offset = l1_off;
    /* 2. Refcounts +1 and the flags of the active tables; the metadata
     *    flush writes refcounts, syncs, then L2 tables, then L1. */
    r = update_tree(img, s->l1, s->l1_size, 1, &lo, &hi, errp);
    if (r == 0) {
        l1_dirty(s, lo, hi);
        r = qcow2_metadata_flush(img, errp);
    }
    /* 3. New table, header, old table freed. */
    if (r == 0) {
        r = switch_table(img, &t, old_bytes, errp);
    }
out:
    qcow2_snapshot_table_free(&t);
    return r;
}

int
qcow2_snapshot_delete(struct vimg_image *img, const char *id,
                      const char *name, struct vimg_error **errp)
{
    struct qcow2_snap_table t;
    struct qcow2_snap sn;
    uint64_t *l1 = NULL;
    uint32_t lo, hi;
    int idx, r;

    r = need_rw(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0) {
        return r;
    }
    idx = find_by_id_and_name(&t, id, name);
    if (idx < 0) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOENT, "snapshot not found");
    }
    sn = t.v[idx];
    r = load_snapshot_l1(img, &sn, 0, &l1, errp);
    if (r < 0) {
        qcow2_snapshot_table_free(&t);
        return r;
    }
    /* 1. The snapshot leaves the table (its clusters leak on a crash). */
    memmove(&t.v[idx], &t.v[idx + 1], (t.n - (uint32_t)idx - 1) * sizeof(sn));
    t.n--;
    r = switch_table(img, &t, t.bytes, errp);
    /* 2. Its tree and L1 table are released, the active flags fixed. */
    if (r == 0) {
        r = update_tree(img, l1, sn.l1_size, -1, &lo, &hi, errp);
    }
    if (r == 0 && sn.l1_size > 0) {
        r = qcow2_update_refcount(img, sn.l1_offset,
                                  (uint64_t)sn.l1_size * 8, -1, errp);
    }
    if (r == 0) {
        r = fix_active_flags(img, errp);
    }
    if (r == 0) {
        r = drop_l2_cache(img, errp);
    }
    free(l1);
    free(sn.id);
    free(sn.name);
    free(sn.extra_unknown);
    qcow2_snapshot_table_free(&t);
    return r;
}

int
qcow2_snapshot_apply(struct vimg_image *img, const char *id_or_name,
                     struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_snap_table t;
    struct qcow2_snap *sn;
    uint64_t *nl1 = NULL, *old = NULL, size, new_off = 0, need;
    uint32_t old_size = s->l1_size, new_size, lo, hi;
    uint64_t old_off = s->hdr.l1_table_offset;
    bool moved;
    uint8_t buf[24];
    int idx, r;

    r = need_rw(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0) {
        return r;
    }
    idx = find_by_id_and_name(&t, id_or_name, NULL);
    if (idx < 0) {
        idx = find_by_id_and_name(&t, NULL, id_or_name);
    }
    if (idx < 0) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOENT, "Can't find snapshot");
    }
    sn = &t.v[idx];
    size = sn->disk_size;
    if (size > INT64_MAX) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -EFBIG, "Snapshot disk size too large");
    }
    need = qcow2_l1_entries_for(s->cluster_bits, s->l2_bits, size);
    if (need * 8 > QCOW2_MAX_L1_BYTES) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -EFBIG, "Snapshot L1 table too large");
    }
    new_size = MAX(old_size, MAX(sn->l1_size, (uint32_t)need));
    r = load_snapshot_l1(img, sn, new_size, &nl1, errp);
    if (r < 0) {
        qcow2_snapshot_table_free(&t);
        return r;
    }
    /* 1. The snapshot's tree gains a reference (refcounts synced first). */
    r = update_tree(img, nl1, new_size, 1, &lo, &hi, errp);
    if (r == 0) {
        r = qcow2_metadata_flush(img, errp);
    }
    if (r < 0) {
        goto out;
    }
    /* 2. It becomes the active L1 table: in place, or a bigger one. */
    moved = new_size > old_size;
    if (moved) {
        r = qcow2_alloc_clusters(img, DIV_ROUND_UP((uint64_t)new_size * 8,
                                                   s->cluster_size),
                                 &new_off, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
    } else {
        new_off = old_off;
    }
    if (r == 0) {
        r = qcow2_write_l1_at(img, nl1, new_size, new_off, errp);
    }
    if (r == 0) {
        r = qcow2_sync(img, errp);
    }
    if (r < 0) {
        goto out;
    }
    if (moved || size != s->hdr.size) {
        /* size, crypt_method, l1_size, l1_table_offset in one write */
        st_be64(buf, size);
        st_be32(buf + 8, s->hdr.crypt_method);
        st_be32(buf + 12, new_size);
        st_be64(buf + 16, new_off);
        r = full_pwrite(img->fd, buf, sizeof(buf), 24);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not update the qcow2 header: "
                               "%s", strerror(-r));
            goto out;
        }
        r = qcow2_sync(img, errp);
        if (r < 0) {
            goto out;
        }
    }
    old = s->l1;
    s->l1 = nl1;
    nl1 = NULL;
    s->l1_size = new_size;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    s->hdr.l1_size = new_size;
    s->hdr.l1_table_offset = new_off;
    s->hdr.size = size;
    img->size = size;
    /* 3. The old active tree loses its reference; flags are fixed. */
    r = update_tree(img, old, old_size, -1, &lo, &hi, errp);
    if (r == 0 && moved && old_size > 0) {
        r = qcow2_update_refcount(img, old_off, (uint64_t)old_size * 8, -1,
                                  errp);
    }
    if (r == 0) {
        r = fix_active_flags(img, errp);
    }
    if (r == 0) {
        r = drop_l2_cache(img, errp);
    }
out:
    free(old);
    free(nl1);
    qcow2_snapshot_table_free(&t);
    return r;
}

int
qcow2_snapshot_load(struct vimg_image *img, const char *id, const char *name,
                    struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_snap_table t;
    uint64_t *l1 = NULL, need;
    uint32_t size;
    size_t i;
    int idx, r;

    if (img->flags & VIMG_OPEN_RDWR) {
        return vimg_error_set(errp, -EINVAL, "Device is not readonly");
    }
    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0) {
        return r;
    }
    idx = find_by_id_and_name(&t, id, name);
    if (idx < 0) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOENT, "Can't find snapshot");
    }
    need = qcow2_l1_entries_for(s->cluster_bits, s->l2_bits,
                                t.v[idx].disk_size);
    if (t.v[idx].disk_size > INT64_MAX || need * 8 > QCOW2_MAX_L1_BYTES) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -EFBIG, "Snapshot L1 table too large");
    }
    size = MAX(t.v[idx].l1_size, (uint32_t)need);
    r = load_snapshot_l1(img, &t.v[idx], size, &l1, errp);
    if (r == 0) {
        free(s->l1);
        s->l1 = l1;
        s->l1_size = size;
        s->l1_dirty_lo = s->l1_dirty_hi = 0;
        img->size = t.v[idx].disk_size;
        for (i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
            s->l2_cache[i].offset = 0;
        }
        s->dbuf_entry = 0;
    }
    qcow2_snapshot_table_free(&t);
    return r;
}

/* ---- info ------------------------------------------------------------------ */

int
qcow2_snapshot_info(struct vimg_image *img, struct json_object *info,
                    struct vimg_error **errp)
{
    struct qcow2_snap_table t;
    struct json_object *arr;
    uint32_t i;
    int r;

    r = qcow2_snapshot_read_table(img, &t, errp);
    if (r < 0 || t.n == 0) {
        return r;
    }
    arr = json_object_new_array();
    if (!arr) {
        qcow2_snapshot_table_free(&t);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < t.n; i++) {
        const struct qcow2_snap *sn = &t.v[i];
        struct json_object *o = json_object_new_object();

        if (!o) {
            json_object_put(arr);
            qcow2_snapshot_table_free(&t);
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        /* Members in the order of qemu's SnapshotInfo. */
        json_object_object_add(o, "id", json_object_new_string(sn->id));
        json_object_object_add(o, "name", json_object_new_string(sn->name));
        json_object_object_add(o, "vm-state-size",
                               json_object_new_int64((int64_t)
                                                     sn->vm_state_size));
        json_object_object_add(o, "date-sec",
                               json_object_new_int64(sn->date_sec));
        json_object_object_add(o, "date-nsec",
                               json_object_new_int64(sn->date_nsec));
        json_object_object_add(o, "vm-clock-sec", json_object_new_int64(
                                   (int64_t)(sn->vm_clock_nsec /
                                             1000000000ULL)));
        json_object_object_add(o, "vm-clock-nsec", json_object_new_int64(
                                   (int64_t)(sn->vm_clock_nsec %
                                             1000000000ULL)));
        if (sn->icount != -1) {
            json_object_object_add(o, "icount",
                                   json_object_new_int64(sn->icount));
        }
        json_object_array_add(arr, o);
    }
    qcow2_snapshot_table_free(&t);
    json_object_object_add(info, "snapshots", arr);
    return 0;
}

/* ---- copy-on-write for the write path ------------------------------------ */

int
qcow2_snapshot_unshare_l2(struct vimg_image *img, uint32_t l1_index,
                          struct qcow2_table **out, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t old = s->l1[l1_index] & QCOW2_OFFSET_MASK, rc, nl2;
    struct qcow2_table *t;
    uint8_t *copy;
    int r;

    *out = NULL;
    r = refcount_of(img, old, &rc, errp);
    if (r < 0) {
        return r;
    }
    if (rc == 0) {
        return vimg_error_set(errp, -EIO, "L2 table at %#" PRIx64 " has "
                              "refcount 0 (L1 index %u)", old, l1_index);
    }
    if (rc == 1) {
        /* Not shared after all: only the flag was missing. */
        s->l1[l1_index] = old | QCOW2_OFLAG_COPIED;
        l1_dirty(s, l1_index, l1_index + 1);
        return qcow2_cache_get(img, true, old, true, out, errp);
    }
    copy = malloc(s->cluster_size);
    if (!copy) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = qcow2_alloc_clusters(img, 1, &nl2, errp);
    if (r == 0) {
        r = qcow2_cache_get(img, true, old, true, &t, errp);
    }
    if (r == 0) {
        memcpy(copy, t->data, s->cluster_size);
        r = qcow2_cache_get(img, true, nl2, false, &t, errp);
    }
    if (r == 0) {
        /* The entries keep their flags: what they point to is still
         * reached from the snapshot through the old table. */
        memcpy(t->data, copy, s->cluster_size);
        t->dirty = true;
        s->l1[l1_index] = nl2 | QCOW2_OFLAG_COPIED;
        l1_dirty(s, l1_index, l1_index + 1);
        r = defer_free(s, old, s->cluster_size, errp);
        *out = t;
    }
    free(copy);
    return r;
}

/* The (unshared) L2 table for guest offset @off, and the entry index. */
static int
active_l2(struct vimg_image *img, uint64_t off, struct qcow2_table **t,
          uint64_t *idx, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t i = qcow2_l1_index(s, off), l2off;

    *idx = qcow2_l2_index(s, off);
    if (i >= s->l1_size || !(l2off = s->l1[i] & QCOW2_OFFSET_MASK)) {
        return vimg_error_set(errp, -EIO, "No L2 table for guest offset %#"
                              PRIx64, off);
    }
    if (!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
        return qcow2_snapshot_unshare_l2(img, (uint32_t)i, t, errp);
    }
    return qcow2_cache_get(img, true, l2off, true, t, errp);
}

/* Copy the cluster at @from to @to, re-encrypting for LUKS (IV = host
 * offset); legacy AES uses the guest offset, so its bytes copy as they are. */
static int
copy_cluster(struct vimg_image *img, uint64_t from, uint64_t to,
             struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint8_t *buf = malloc(s->cluster_size);
    int r;

    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread_zero(img->fd, buf, s->cluster_size, from);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Read failed at host offset %#" PRIx64
                           ": %s", from, strerror(-r));
    }
    if (r == 0 && s->luks) {
        r = qcow2_decrypt(s, from, buf, s->cluster_size, errp);
        if (r == 0) {
            r = qcow2_encrypt(s, to, buf, s->cluster_size, errp);
        }
    }
    if (r == 0) {
        r = full_pwrite(img->fd, buf, s->cluster_size, to);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Write failed at host offset %#"
                               PRIx64 ": %s", to, strerror(-r));
        }
    }
    free(buf);
    return r;
}

/*
 * Give the active layer its own copy of the cluster at guest @off (shared
 * with a snapshot), leaving the guest view unchanged.  @whole: the caller
 * overwrites the whole cluster next, so the old content need not be
 * copied.  Return 1 when a copy was made, 0 when the cluster turned out
 * not to be shared (only its flag was fixed).
 */
static int
unshare_cluster(struct vimg_image *img, uint64_t off, bool whole,
                struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_table *t;
    uint64_t idx, desc, bm, old, rc, host;
    bool zero_flag;
    int r;

    r = active_l2(img, off, &t, &idx, errp);
    if (r < 0) {
        return r;
    }
    entry_get(s, t, idx, &desc, &bm);
    old = desc & QCOW2_OFFSET_MASK;
    if ((desc & QCOW2_OFLAG_COMPRESSED) || old == 0) {
        return vimg_error_set(errp, -EIO, "Guest offset %#" PRIx64 " is not "
                              "a shared data cluster", off);
    }
    r = refcount_of(img, old, &rc, errp);
    if (r < 0) {
        return r;
    }
    if (rc == 0) {
        return vimg_error_set(errp, -EIO, "Cluster at %#" PRIx64 " has "
                              "refcount 0 (guest offset %#" PRIx64 ")", old,
                              off);
    }
    if (rc == 1) {
        r = active_l2(img, off, &t, &idx, errp);
        if (r == 0) {
            entry_put(s, t, idx, desc | QCOW2_OFLAG_COPIED, bm);
        }
        return r;
    }
    r = qcow2_alloc_clusters(img, 1, &host, errp);
    if (r < 0) {
        return r;
    }
    zero_flag = !s->extended_l2 && s->hdr.version >= 3 &&
                (desc & QCOW2_OFLAG_ZERO);
    if (!whole && !zero_flag) {
        r = copy_cluster(img, old, host, errp);
        if (r < 0) {
            return r;
        }
    }
    /* The table may have left the cache during the allocation. */
    r = active_l2(img, off, &t, &idx, errp);
    if (r < 0) {
        return r;
    }
    entry_put(s, t, idx, host | QCOW2_OFLAG_COPIED |
              (zero_flag ? QCOW2_OFLAG_ZERO : 0), bm);
    r = defer_free(s, old, s->cluster_size, errp);
    return r < 0 ? r : 1;
}

int
qcow2_snapshot_cow_write(struct vimg_image *img, uint64_t off,
                         const void *src, size_t n, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    bool whole = src && n == s->cluster_size &&
                 qcow2_offset_into_cluster(s, off) == 0;
    int r = unshare_cluster(img, off, whole, errp);

    if (r < 0) {
        return r;
    }
    /* The cluster is private now: the normal path writes in place. */
    if (src) {
        return qcow2_pwrite(img, src, n, off, errp);
    }
    return qcow2_zero(img, off, n, 0, errp);
}

int
qcow2_snapshot_cow_zero(struct vimg_image *img, uint64_t off, size_t n,
                        struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_table *t;
    uint64_t idx, desc, bm, old, rc;
    int r;

    r = active_l2(img, off, &t, &idx, errp);
    if (r < 0) {
        return r;
    }
    entry_get(s, t, idx, &desc, &bm);
    old = desc & QCOW2_OFFSET_MASK;
    if (n == s->cluster_size && s->hdr.version >= 3 && old &&
        !(desc & QCOW2_OFLAG_COMPRESSED)) {
        r = refcount_of(img, old, &rc, errp);
        if (r < 0) {
            return r;
        }
        if (rc > 1) {
            /* Whole cluster: drop the reference, keep a zero entry. */
            r = active_l2(img, off, &t, &idx, errp);
            if (r < 0) {
                return r;
            }
            if (s->extended_l2) {
                entry_put(s, t, idx, 0, 0xffffffff00000000ULL);
            } else {
                entry_put(s, t, idx, QCOW2_OFLAG_ZERO, 0);
            }
            return defer_free(s, old, s->cluster_size, errp);
        }
    }
    return qcow2_snapshot_cow_write(img, off, NULL, n, errp);
}

/* ---- public entry points ------------------------------------------------- */
/*
 * These dispatch through the ops table like lib/format/image.c does for
 * the other operations (they may move there): the handle is checked here,
 * the format sees only valid requests.
 */

static int
snapshot_check(struct vimg_image *img, bool has_op, bool write,
               struct vimg_error **errp)
{
    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (!has_op) {
        return vimg_error_set(errp, -ENOTSUP, "Operation not supported");
    }
    if (write && !(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    return 0;
}

static int
snapshot_fail(struct vimg_error **errp, int r)
{
    if (r >= 0) {
        r = -EIO;
    }
    if (errp && !*errp) {
        vimg_error_set(errp, r, "Snapshot operation failed: %s",
                       strerror(-r));
    }
    return r;
}

int
vimg_snapshot_list(struct vimg_image *img, struct vimg_snapshot **out,
                   size_t *n, struct vimg_error **errp)
{
    int r;

    if (!out || !n) {
        return vimg_error_set(errp, -EINVAL, "Invalid snapshot list request");
    }
    *out = NULL;
    *n = 0;
    r = snapshot_check(img, img && img->ops->snapshot_list,
                       false, errp);
    if (r < 0) {
        return r;
    }
    r = img->ops->snapshot_list(img, out, n, errp);
    return r < 0 ? snapshot_fail(errp, r) : 0;
}

void
vimg_snapshot_list_free(struct vimg_snapshot *list, size_t n)
{
    size_t i;

    for (i = 0; list && i < n; i++) {
        free(list[i].id);
        free(list[i].name);
    }
    free(list);
}

int
vimg_snapshot_create(struct vimg_image *img, const char *name,
                     struct vimg_error **errp)
{
    int r = snapshot_check(img, img && img->ops->snapshot_create, true, errp);

    if (r < 0) {
        return r;
    }
    if (!name) {
        return vimg_error_set(errp, -EINVAL, "No snapshot name given");
    }
    r = img->ops->snapshot_create(img, name, errp);
    return r < 0 ? snapshot_fail(errp, r) : 0;
}

int
vimg_snapshot_delete(struct vimg_image *img, const char *id,
                     const char *name, struct vimg_error **errp)
{
    int r = snapshot_check(img, img && img->ops->snapshot_delete, true, errp);

    if (r < 0) {
        return r;
    }
    if (!id && !name) {
        return vimg_error_set(errp, -EINVAL, "No snapshot id or name given");
    }
    r = img->ops->snapshot_delete(img, id, name, errp);
    return r < 0 ? snapshot_fail(errp, r) : 0;
}

int
vimg_snapshot_apply(struct vimg_image *img, const char *id_or_name,
                    struct vimg_error **errp)
{
    int r = snapshot_check(img, img && img->ops->snapshot_apply, true, errp);

    if (r < 0) {
        return r;
    }
    if (!id_or_name) {
        return vimg_error_set(errp, -EINVAL, "No snapshot given");
    }
    r = img->ops->snapshot_apply(img, id_or_name, errp);
    return r < 0 ? snapshot_fail(errp, r) : 0;
}

int
vimg_snapshot_load(struct vimg_image *img, const char *id, const char *name,
                   struct vimg_error **errp)
{
    int r = snapshot_check(img, img && img->ops->snapshot_load,
                           false, errp);

    if (r < 0) {
        return r;
    }
    if (!id && !name) {
        return vimg_error_set(errp, -EINVAL, "No snapshot id or name given");
    }
    r = img->ops->snapshot_load(img, id, name, errp);
    return r < 0 ? snapshot_fail(errp, r) : 0;
}
