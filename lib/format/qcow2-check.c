/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 consistency check and repair, the behaviour of `qemu-img check`
 * for qcow2 in QEMU 7.2 (qemu-facts.md 1.4, 1.5, 1.8 and 7.3).
 *
 * One pass recounts every reference the metadata makes: the header
 * cluster, the active L1 table with its L2 tables and data clusters, the
 * L1/L2 tables and data of every internal snapshot, the snapshot table,
 * the refcount table and its blocks, the LUKS header region of the FDE
 * extension (metadata with one reference, not "allocated") and, when the
 * bitmaps autoclear bit is set, the bitmap directory, tables and data.
 * The expected counts live in a sparse map of 1024-cluster pages, so the
 * memory follows the metadata (the clusters something points to), never
 * the virtual size: a sparse 1 TiB image checks in a few hundred KiB.
 * Then the counts are compared with the refcounts on disk, cluster by
 * cluster in ascending order but only where either side can be non-zero
 * (pages of the map, ranges of existing refcount blocks):
 *   on-disk < expected  "ERROR cluster N refcount=R reference=F"
 *   on-disk > expected  "Leaked cluster N refcount=R reference=F"
 * and the OFLAG_COPIED bits of the active L1/L2 entries against the
 * on-disk refcounts (set exactly when the refcount is 1).
 *
 * Repair (qemu's rules):
 * - leaks (FIX_LEAKS) and too-low non-zero refcounts (FIX_ERRORS) are
 *   corrected in place in their refcount blocks;
 * - a referenced cluster with refcount 0, or a broken refcount table
 *   entry or block, needs a rebuild, only done with FIX_ERRORS (with
 *   FIX_LEAKS alone it is "ERROR need to rebuild refcount structures" and
 *   -EIO): a complete new refcount table and blocks are written after the
 *   last used cluster, synced, and only then does the header point to
 *   them, so a crash leaves either the old or the new structure in force;
 *   the old table and blocks simply become free;
 * - OFLAG_COPIED is fixed after the refcounts (FIX_ERRORS, or FIX_LEAKS
 *   when nothing else is left to repair).
 * Refcounts are fixed and synced before any table flag is rewritten.  The
 * clusters of the LUKS region are references like any other, so they are
 * never freed.
 *
 * All metadata is read from the file (after flushing the image's caches);
 * nothing is decrypted, so a VIMG_OPEN_NO_IO handle is enough.  After a
 * repair the driver's cached tables are dropped and its refcount table is
 * reloaded.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

#define PAGE_BITS 10
#define PAGE_CLUSTERS (1u << PAGE_BITS)

/* qemu's limits for tables only the checker reads. */
#define MAX_SNAPSHOT_TABLE   (64u * 1024 * 1024)
#define MAX_SNAPSHOT_EXTRA   1024
#define MAX_BITMAP_DIR       (64u * 1024 * 1024)
#define MAX_BITMAP_TABLE     (64u * 1024 * 1024)

#define RT_RESERVED          0x1ffULL

/* ---- sparse map of expected reference counts ------------------------------ */

struct refmap {
    uint64_t *keys;     /* page index + 1; 0 = empty slot */
    uint32_t **pages;   /* PAGE_CLUSTERS counters each */
    size_t cap;         /* slots, a power of two */
    size_t n;           /* pages in use */
};

static size_t
slot_of(const struct refmap *m, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 17) & (m->cap - 1);
}

static int
refmap_grow(struct refmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64, i;
    uint64_t *nkeys = calloc(ncap, sizeof(*nkeys));
    uint32_t **npages = calloc(ncap, sizeof(*npages));
    struct refmap nm = { nkeys, npages, ncap, m->n };

    if (!nkeys || !npages) {
        free(nkeys);
        free(npages);
        return -ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        size_t j;

        if (!m->keys[i]) {
            continue;
        }
        for (j = slot_of(&nm, m->keys[i]); nkeys[j]; j = (j + 1) & (ncap - 1)) {
        }
        nkeys[j] = m->keys[i];
        npages[j] = m->pages[i];
    }
    free(m->keys);
    free(m->pages);
    *m = nm;
    return 0;
}

/* The page of cluster page index @pi, or NULL; created on demand. */
static uint32_t *
refmap_page(struct refmap *m, uint64_t pi, bool create, int *err)
{
    uint64_t key = pi + 1;
    size_t j;

    *err = 0;
    if (m->cap) {
        for (j = slot_of(m, key); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
            if (m->keys[j] == key) {
                return m->pages[j];
            }
        }
    }
    if (!create) {
        return NULL;
    }
    if ((m->n + 1) * 2 > m->cap && refmap_grow(m) < 0) {
        *err = -ENOMEM;
        return NULL;
    }
    for (j = slot_of(m, key); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
    }
    m->pages[j] = calloc(PAGE_CLUSTERS, sizeof(uint32_t));
    if (!m->pages[j]) {
        *err = -ENOMEM;
        return NULL;
    }
    m->keys[j] = key;
    m->n++;
    return m->pages[j];
}

static uint32_t
refmap_get(struct refmap *m, uint64_t ci)
{
    int err;
    uint32_t *p = refmap_page(m, ci >> PAGE_BITS, false, &err);

    return p ? p[ci & (PAGE_CLUSTERS - 1)] : 0;
}

static int
refmap_set(struct refmap *m, uint64_t ci, uint32_t v)
{
    int err;
    uint32_t *p = refmap_page(m, ci >> PAGE_BITS, v != 0, &err);

    if (p) {
        p[ci & (PAGE_CLUSTERS - 1)] = v;
    }
    return err;
}

static void
refmap_free(struct refmap *m)
{
    size_t i;

    for (i = 0; i < m->cap; i++) {
        free(m->pages[i]);
    }
    free(m->keys);
    free(m->pages);
    memset(m, 0, sizeof(*m));
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The page indices in use, ascending (malloc'd; *n entries). */
static uint64_t *
refmap_sorted_pages(const struct refmap *m, size_t *n)
{
    uint64_t *v = malloc((m->n ? m->n : 1) * sizeof(*v));
    size_t i, k = 0;

    if (!v) {
        return NULL;
    }
    for (i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            v[k++] = m->keys[i] - 1;
        }
    }
    qsort(v, k, sizeof(*v), cmp_u64);
    *n = k;
    return v;
}

/* ---- check state ----------------------------------------------------------- */

struct ck {
    struct vimg_image *img;
    struct qcow2_state *s;
    unsigned fix;
    struct vimg_check_result *res;
    vimg_check_report_fn report;
    void *opaque;
    bool quiet;
    bool quiet_compare;         /* recount after a rebuild */
    uint64_t *freed;            /* old refcount structure, freed by it */
    size_t n_freed;

    uint32_t cs;                /* cluster size */
    uint32_t bits;              /* cluster bits */
    uint64_t file_len;
    uint64_t nb_clusters;       /* clusters compared (qemu's array size) */
    uint32_t cap;               /* largest count the map holds */
    struct refmap map;
    struct vimg_check_result pre;   /* the result before comparing */
    bool rebuild;
    bool wrote;                 /* metadata was changed on disk */

    /* The refcount structure on disk. */
    uint64_t *rt;
    uint64_t rt_entries;
    uint8_t *rb;                /* one refcount block */
    uint64_t rb_index;          /* which (UINT64_MAX: none) */
    uint64_t rb_off;
    bool rb_dirty;

    uint8_t *buf;               /* one cluster (L2 tables) */
};

static void
say(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(struct ck *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (!c->report || c->quiet) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->report(c->opaque, line);
}

/* Refcount entry @i of a block, for every width (LSB first below 8 bits). */
static uint64_t
entry_get(const struct ck *c, const uint8_t *blk, uint64_t i)
{
    uint32_t w = c->s->refcount_bits;

    switch (w) {
    case 8:
        return blk[i];
    case 16:
        return ld_be16(blk + i * 2);
    case 32:
        return ld_be32(blk + i * 4);
    case 64:
        return ld_be64(blk + i * 8);
    default:
        return (blk[i * w / 8] >> ((i * w) % 8)) & ((1u << w) - 1);
    }
}

static void
entry_set(const struct ck *c, uint8_t *blk, uint64_t i, uint64_t v)
{
    uint32_t w = c->s->refcount_bits;

    switch (w) {
    case 8:
        blk[i] = (uint8_t)v;
        break;
    case 16:
        st_be16(blk + i * 2, (uint16_t)v);
        break;
    case 32:
        st_be32(blk + i * 4, (uint32_t)v);
        break;
    case 64:
        st_be64(blk + i * 8, v);
        break;
    default: {
        unsigned sh = (unsigned)((i * w) % 8);
        uint8_t mask = (uint8_t)(((1u << w) - 1) << sh);
        uint8_t *p = &blk[i * w / 8];

        *p = (uint8_t)((*p & ~mask) | ((v << sh) & mask));
        break;
    }
    }
}

static int
load_rt(struct ck *c, struct vimg_error **errp)
{
    uint64_t bytes = (uint64_t)c->s->hdr.refcount_table_clusters * c->cs, i;
    uint8_t *raw;
    int r;

    free(c->rt);
    c->rt_entries = bytes / 8;
    c->rt = calloc(c->rt_entries ? c->rt_entries : 1, sizeof(uint64_t));
    raw = malloc(bytes ? bytes : 1);
    if (!c->rt || !raw) {
        free(raw);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread_zero(c->img->fd, raw, bytes,
                        c->s->hdr.refcount_table_offset);
    if (r < 0) {
        free(raw);
        return vimg_error_set(errp, r, "Could not read the refcount table: "
                              "%s", strerror(-r));
    }
    for (i = 0; i < c->rt_entries; i++) {
        c->rt[i] = ld_be64(raw + i * 8);
    }
    free(raw);
    c->rb_index = UINT64_MAX;
    c->rb_dirty = false;
    return 0;
}

static int
rb_flush(struct ck *c)
{
    int r;

    if (!c->rb_dirty) {
        return 0;
    }
    r = full_pwrite(c->img->fd, c->rb, c->cs, c->rb_off);
    if (r < 0) {
        return r;
    }
    c->rb_dirty = false;
    c->wrote = true;
    return 0;
}

/*
 * The refcount on disk of cluster @ci and, via *@blk, whether a block
 * holds it (loaded into c->rb).  A missing block or table entry means 0;
 * a broken table entry is -EIO, as qemu reports it.
 */
static int
disk_refcount(struct ck *c, uint64_t ci, uint64_t *out, bool *blk)
{
    uint64_t bi = ci / c->s->rb_entries, e, off;
    int r;

    *out = 0;
    if (blk) {
        *blk = false;
    }
    if (bi >= c->rt_entries || c->rt[bi] == 0) {
        return 0;
    }
    e = c->rt[bi];
    off = e & ~RT_RESERVED;     /* qemu ignores the reserved bits here */
    if (off & (c->cs - 1)) {
        return -EIO;
    }
    if (off == 0) {
        return 0;
    }
    if (c->rb_index != bi) {
        r = rb_flush(c);
        if (r < 0) {
            return r;
        }
        r = full_pread_zero(c->img->fd, c->rb, c->cs, off);
        if (r < 0) {
            c->rb_index = UINT64_MAX;
            return r;
        }
        c->rb_index = bi;
        c->rb_off = off;
    }
    if (blk) {
        *blk = true;
    }
    *out = entry_get(c, c->rb, ci % c->s->rb_entries);
    return 0;
}

/* ---- counting references --------------------------------------------------- */

/*
 * One reference to every cluster touched by [@off, @off + @size).  Like
 * qemu, a region reaching a cluster or more past the end of the file is a
 * corruption and not counted; one ending less than a cluster past it
 * (a truncated last cluster) is counted and widens the compared range.
 */
static int
inc_refs(struct ck *c, uint64_t off, uint64_t size)
{
    uint64_t k, last;
    int r;

    if (size == 0) {
        return 0;
    }
    if (off > INT64_MAX - size ||
        (off + size > c->file_len && off + size - c->file_len >= c->cs)) {
        say(c, "ERROR: counting reference for region exceeding the end of "
            "the file by one cluster or more: offset 0x%" PRIx64 " size 0x%"
            PRIx64, off, size);
        c->res->corruptions++;
        return 0;
    }
    last = (off + size - 1) >> c->bits;
    for (k = off >> c->bits; k <= last; k++) {
        uint32_t v = refmap_get(&c->map, k);

        if (k >= c->nb_clusters) {
            c->nb_clusters = k + 1;
        }
        if (v >= c->cap) {
            say(c, "ERROR: overflow cluster offset=0x%" PRIx64, k << c->bits);
            say(c, "Use qemu-img amend to increase the refcount entry width "
                "or qemu-img convert to create a clean copy if the image "
                "cannot be opened for writing");
            c->res->corruptions++;
            continue;
        }
        r = refmap_set(&c->map, k, v + 1);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static void
compressed_extent(const struct ck *c, uint64_t e, uint64_t *off, uint64_t *len)
{
    unsigned x = 62 - (c->bits - 8);
    uint64_t nsec = (e >> x) & ((1ULL << (c->bits - 8)) - 1);

    *off = e & ((1ULL << x) - 1);
    *len = (nsec + 1) * 512 - (*off & 511);
}

static int
write_table(struct ck *c, uint64_t off, const void *data, size_t len)
{
    int r = full_pwrite(c->img->fd, data, len, off);

    if (r == 0) {
        c->wrote = true;
    }
    return r;
}

/* The entries of one L2 table; @active: of the active layer (statistics). */
static int
check_l2(struct ck *c, uint64_t l2_off, bool active)
{
    struct qcow2_state *s = c->s;
    struct vimg_check_result *res = c->res;
    uint32_t esz = s->l2_entry_size, n = c->cs / esz, i;
    uint64_t next = 0;
    bool dirty = false;
    int r;

    r = full_pread_zero(c->img->fd, c->buf, c->cs, l2_off);
    if (r < 0) {
        say(c, "ERROR: I/O error in check_refcounts_l2");
        res->check_errors++;
        return 0;
    }
    for (i = 0; i < n; i++) {
        uint8_t *p = c->buf + (size_t)i * esz;
        uint64_t e = ld_be64(p), bm = s->extended_l2 ? ld_be64(p + 8) : 0;
        uint64_t off;

        if ((e & QCOW2_OFLAG_COMPRESSED) && s->has_data_file) {
            /* Impossible with a data file (qemu's message). */
            say(c, "ERROR compressed cluster %u with data file, "
                "entry=0x%" PRIx64, i, e);
            res->corruptions++;
            continue;
        }
        if (e & QCOW2_OFLAG_COMPRESSED) {
            uint64_t coff, clen;

            if (e & QCOW2_OFLAG_COPIED) {
                compressed_extent(c, e & ~QCOW2_OFLAG_COPIED, &coff, &clen);
                say(c, "ERROR: coffset=0x%" PRIx64 ": copied flag must never "
                    "be set for compressed clusters", coff);
                e &= ~QCOW2_OFLAG_COPIED;
                res->corruptions++;
            }
            if (bm) {
                say(c, "ERROR compressed cluster %u with non-zero subcluster "
                    "allocation bitmap, entry=0x%" PRIx64, i, e);
                res->corruptions++;
                continue;
            }
            compressed_extent(c, e & ~QCOW2_OFLAG_COMPRESSED, &coff, &clen);
            r = inc_refs(c, coff, clen);
            if (r < 0) {
                return r;
            }
            if (active) {
                res->allocated_clusters++;
                res->compressed_clusters++;
                /* Compressed clusters are fragmented by nature. */
                res->fragmented_clusters++;
            }
            continue;
        }
        if (e & QCOW2_L2_RESERVED) {
            say(c, "ERROR found l2 entry with reserved bits set: %" PRIx64, e);
            res->corruptions++;
        }
        off = e & QCOW2_OFFSET_MASK;
        if (!qcow2_l2_allocated(s, e)) {
            if (s->extended_l2 && (bm & 0xffffffffULL)) {
                say(c, "ERROR: Unallocated cluster has non-zero subcluster "
                    "allocation map");
                res->corruptions++;
            }
            continue;
        }
        if (s->extended_l2 && ((bm >> 32) & bm)) {
            say(c, "ERROR offset=%" PRIx64 ": Allocated cluster has "
                "corrupted subcluster allocation bitmap", off);
            res->corruptions++;
        }
        if (off & (c->cs - 1)) {
            bool data = s->extended_l2 ? (bm & 0xffffffffULL) != 0
                                       : !(e & QCOW2_OFLAG_ZERO);
            bool fix = (c->fix & VIMG_CHECK_FIX_ERRORS) && !data;

            res->corruptions++;
            if (data) {
                say(c, "ERROR offset=%" PRIx64 ": Data cluster is not "
                    "properly aligned; L2 entry corrupted.", off);
            } else {
                say(c, "%s offset=%" PRIx64 ": Preallocated cluster is not "
                    "properly aligned; L2 entry corrupted.",
                    fix ? "Repairing" : "ERROR", off);
            }
            if (fix) {
                /* Nothing to keep: make it a plain zero cluster. */
                if (s->extended_l2) {
                    st_be64(p, 0);
                    st_be64(p + 8, 0xffffffff00000000ULL);
                } else {
                    st_be64(p, QCOW2_OFLAG_ZERO);
                }
                dirty = true;
                res->corruptions--;
                res->corruptions_fixed++;
                continue;
            }
        }
        if (active) {
            res->allocated_clusters++;
            if (next && off != next) {
                res->fragmented_clusters++;
            }
            next = off + c->cs;
        }
        if (s->has_data_file) {
            continue;           /* data file clusters have no refcounts */
        }
        r = inc_refs(c, off, c->cs);
        if (r < 0) {
            return r;
        }
    }
    if (dirty) {
        r = write_table(c, l2_off, c->buf, c->cs);
        if (r < 0) {
            say(c, "ERROR: Could not write L2 table: %s", strerror(-r));
            res->check_errors++;
        }
    }
    return 0;
}

static int
read_l1(struct ck *c, uint64_t off, uint32_t n, uint64_t **out)
{
    uint64_t *l1 = calloc(n ? n : 1, sizeof(uint64_t));
    uint8_t *raw = malloc(n ? (size_t)n * 8 : 1);
    uint32_t i;
    int r;

    if (!l1 || !raw) {
        free(l1);
        free(raw);
        return -ENOMEM;
    }
    r = full_pread_zero(c->img->fd, raw, (size_t)n * 8, off);
    for (i = 0; r == 0 && i < n; i++) {
        l1[i] = ld_be64(raw + (size_t)i * 8);
    }
    free(raw);
    if (r < 0) {
        free(l1);
        return r;
    }
    *out = l1;
    return 0;
}

static int
check_l1(struct ck *c, uint64_t l1_off, uint32_t l1_size, bool active)
{
    uint64_t *l1 = NULL;
    uint32_t i;
    int r;

    if (l1_size == 0) {
        return 0;
    }
    r = inc_refs(c, l1_off, (uint64_t)l1_size * 8);
    if (r < 0) {
        return r;
    }
    r = read_l1(c, l1_off, l1_size, &l1);
    if (r == -ENOMEM) {
        return r;
    }
    if (r < 0) {
        say(c, "ERROR: I/O error in check_refcounts_l1");
        c->res->check_errors++;
        return 0;
    }
    for (i = 0; i < l1_size; i++) {
        uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;

        if (l1[i] & QCOW2_L1_RESERVED) {
            say(c, "ERROR found L1 entry with reserved bits set: %" PRIx64,
                l1[i]);
            c->res->corruptions++;
        }
        if (l2 == 0) {
            continue;
        }
        r = inc_refs(c, l2, c->cs);
        if (r < 0) {
            break;
        }
        if (l2 & (c->cs - 1)) {
            say(c, "ERROR l2_offset=%" PRIx64 ": Table is not cluster "
                "aligned; L1 entry corrupted", l2);
            c->res->corruptions++;
            continue;
        }
        r = check_l2(c, l2, active);
        if (r < 0) {
            break;
        }
    }
    free(l1);
    return r;
}

/* Internal snapshots: their L1/L2 tables and data, and the table itself. */
static int
check_snapshots(struct ck *c)
{
    const struct qcow2_header *h = &c->s->hdr;
    uint64_t pos = 0;
    uint32_t i;
    int r;

    for (i = 0; i < h->nb_snapshots; i++) {
        uint8_t e[40];
        char id[64], name[64];
        uint8_t *var;
        uint64_t l1_off;
        uint32_t l1_size, extra, idl, nml, esz;

        r = full_pread_zero(c->img->fd, e, sizeof(e),
                            h->snapshots_offset + pos);
        if (r < 0) {
            say(c, "ERROR: Failed to read the snapshot table: %s",
                strerror(-r));
            c->res->check_errors++;
            return 0;
        }
        l1_off = ld_be64(e);
        l1_size = ld_be32(e + 8);
        idl = ld_be16(e + 12);
        nml = ld_be16(e + 14);
        extra = ld_be32(e + 36);
        if (extra > MAX_SNAPSHOT_EXTRA) {
            say(c, "ERROR snapshot table entry %u: extra data too large", i);
            c->res->corruptions++;
            return 0;
        }
        esz = (uint32_t)ROUND_UP(40 + extra + idl + nml, 8);
        if (pos + esz > MAX_SNAPSHOT_TABLE) {
            say(c, "ERROR snapshot table too large");
            c->res->corruptions++;
            return 0;
        }
        var = malloc((size_t)idl + nml + 1);
        if (!var) {
            return -ENOMEM;
        }
        r = full_pread_zero(c->img->fd, var, (size_t)idl + nml,
                            h->snapshots_offset + pos + 40 + extra);
        if (r < 0) {
            memset(var, 0, (size_t)idl + nml);
        }
        snprintf(id, sizeof(id), "%.*s", (int)MIN(idl, 63u), (char *)var);
        snprintf(name, sizeof(name), "%.*s", (int)MIN(nml, 63u),
                 (char *)var + idl);
        free(var);
        pos += esz;

        if (l1_off & (c->cs - 1)) {
            say(c, "ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": L1 table is "
                "not cluster aligned; snapshot table entry corrupted", id,
                name, l1_off);
            c->res->corruptions++;
            continue;
        }
        if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES) {
            say(c, "ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is "
                "too large; snapshot table entry corrupted", id, name,
                l1_size);
            c->res->corruptions++;
            continue;
        }
        r = check_l1(c, l1_off, l1_size, false);
        if (r < 0) {
            return r;
        }
    }
    return inc_refs(c, h->snapshots_offset, pos);
}

/*
 * Bitmaps (autoclear bit 0 set and the 0x23852875 extension): directory,
 * bitmap tables and their data clusters.
 */
static int
check_bitmaps(struct ck *c)
{
    const struct qcow2_header *h = &c->s->hdr;
    uint8_t *hdr = NULL, *dir = NULL;
    uint64_t off, end, dir_off = 0, dir_size = 0, pos;
    uint32_t nb = 0, i;
    bool found = false;
    int r = 0;

    if (h->version < 3 || !(h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        return 0;
    }
    hdr = malloc(c->cs);
    if (!hdr) {
        return -ENOMEM;
    }
    if (full_pread_zero(c->img->fd, hdr, c->cs, 0) < 0) {
        goto out;
    }
    off = h->header_length;
    end = h->backing_file_offset ? h->backing_file_offset : c->cs;
    while (off + 8 <= end) {
        uint32_t type = ld_be32(hdr + off), len = ld_be32(hdr + off + 4);

        if (type == QCOW2_EXT_END || len > end - off - 8) {
            break;
        }
        if (type == QCOW2_EXT_BITMAPS && len == 24) {
            nb = ld_be32(hdr + off + 8);
            dir_size = ld_be64(hdr + off + 16);
            dir_off = ld_be64(hdr + off + 24);
            found = true;
        }
        off += 8 + ROUND_UP((uint64_t)len, 8);
    }
    if (!found || nb == 0) {
        goto out;
    }
    r = inc_refs(c, dir_off, dir_size);
    if (r < 0 || dir_size > MAX_BITMAP_DIR) {
        goto out;
    }
    dir = malloc(dir_size ? dir_size : 1);
    if (!dir) {
        r = -ENOMEM;
        goto out;
    }
    if (full_pread_zero(c->img->fd, dir, dir_size, dir_off) < 0) {
        goto out;
    }
    for (i = 0, pos = 0; i < nb && pos + 24 <= dir_size; i++) {
        uint64_t t_off = ld_be64(dir + pos), j;
        uint32_t t_size = ld_be32(dir + pos + 8);
        /* entry: table offset, size, flags, type, granularity, name size,
         * extra data size; then extra data and name, padded to 8. */
        uint32_t name = ld_be16(dir + pos + 18), extra = ld_be32(dir + pos + 20);
        uint8_t *tab;

        pos += ROUND_UP(24 + (uint64_t)extra + name, 8);
        r = inc_refs(c, t_off, (uint64_t)t_size * 8);
        if (r < 0) {
            goto out;
        }
        if ((uint64_t)t_size * 8 > MAX_BITMAP_TABLE) {
            continue;
        }
        tab = malloc(t_size ? (size_t)t_size * 8 : 1);
        if (!tab) {
            r = -ENOMEM;
            goto out;
        }
        if (full_pread_zero(c->img->fd, tab, (size_t)t_size * 8, t_off) == 0) {
            for (j = 0; r == 0 && j < t_size; j++) {
                uint64_t d = ld_be64(tab + j * 8) & QCOW2_OFFSET_MASK;

                if (d) {
                    r = inc_refs(c, d, c->cs);
                }
            }
        }
        free(tab);
        if (r < 0) {
            goto out;
        }
    }
out:
    free(dir);
    free(hdr);
    return r;
}

/* The refcount table's entries: each block is metadata with one reference. */
static int
check_refblocks(struct ck *c)
{
    uint64_t i;
    int r;

    for (i = 0; i < c->rt_entries; i++) {
        uint64_t e = c->rt[i], off = e & ~RT_RESERVED, v;

        if (e == 0) {
            continue;
        }
        if (e & RT_RESERVED) {
            /* Not counted (so its cluster shows as leaked), yet qemu reads
             * refcounts through it with the reserved bits masked. */
            say(c, "ERROR refcount table entry %" PRIu64 " has reserved bits "
                "set", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (off & (c->cs - 1)) {
            say(c, "ERROR refcount block %" PRIu64 " is not cluster aligned; "
                "refcount table entry corrupted", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if ((off >> c->bits) >= c->nb_clusters) {
            say(c, "ERROR refcount block %" PRIu64 " is outside image", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        r = inc_refs(c, off, c->cs);
        if (r < 0) {
            return r;
        }
        v = refmap_get(&c->map, off >> c->bits);
        if (v != 1) {
            say(c, "ERROR refcount block %" PRIu64 " refcount=%" PRIu64, i, v);
            c->res->corruptions++;
            c->rebuild = true;
        }
    }
    return 0;
}

/* Every reference the metadata makes, into c->map. */
static int
calculate(struct ck *c)
{
    struct qcow2_state *s = c->s;
    int r;

    c->nb_clusters = DIV_ROUND_UP(c->file_len, c->cs);
    c->rebuild = false;
    c->res->total_clusters = (int64_t)DIV_ROUND_UP(s->hdr.size, c->cs);

    r = inc_refs(c, 0, c->cs);
    if (r == 0) {
        r = check_l1(c, s->hdr.l1_table_offset, s->hdr.l1_size, true);
    }
    if (r == 0) {
        r = check_snapshots(c);
    }
    if (r == 0) {
        r = inc_refs(c, s->hdr.refcount_table_offset,
                     (uint64_t)s->hdr.refcount_table_clusters * c->cs);
    }
    if (r == 0 && s->has_crypto_ext) {
        r = inc_refs(c, s->crypto_offset, s->crypto_length);
    }
    if (r == 0) {
        r = check_bitmaps(c);
    }
    if (r == 0) {
        r = check_refblocks(c);
    }
    return r;
}

/* ---- comparing -------------------------------------------------------------- */

struct range {
    uint64_t start, end;
};

static int
cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

/* The cluster ranges where a refcount or a reference can be non-zero. */
static struct range *
compare_ranges(struct ck *c, size_t *n)
{
    size_t np = 0, k = 0, i, m;
    uint64_t *pages = refmap_sorted_pages(&c->map, &np);
    struct range *v;

    if (!pages) {
        return NULL;
    }
    v = malloc((np + c->rt_entries + 1) * sizeof(*v));
    if (!v) {
        free(pages);
        return NULL;
    }
    for (i = 0; i < np; i++) {
        v[k].start = pages[i] << PAGE_BITS;
        v[k].end = MIN(v[k].start + PAGE_CLUSTERS, c->nb_clusters);
        if (v[k].start < v[k].end) {
            k++;
        }
    }
    free(pages);
    for (i = 0; i < c->rt_entries; i++) {
        uint64_t rbe = c->s->rb_entries;

        if (c->rt[i] == 0 || i * rbe >= c->nb_clusters) {
            continue;
        }
        v[k].start = i * rbe;
        v[k].end = MIN(v[k].start + rbe, c->nb_clusters);
        k++;
    }
    qsort(v, k, sizeof(*v), cmp_range);
    for (i = 0, m = 0; i < k; i++) {
        if (m && v[i].start <= v[m - 1].end) {
            v[m - 1].end = MAX(v[m - 1].end, v[i].end);
        } else {
            v[m++] = v[i];
        }
    }
    *n = m;
    return v;
}

static int
compare(struct ck *c, unsigned fix)
{
    struct vimg_check_result *res = c->res;
    uint64_t highest = 0, ci;
    size_t n = 0, i;
    struct range *v = compare_ranges(c, &n);
    int r = 0;

    if (!v) {
        return -ENOMEM;
    }
    for (i = 0; i < n; i++) {
        for (ci = v[i].start; ci < v[i].end; ci++) {
            uint64_t r1, r2 = refmap_get(&c->map, ci);
            int64_t *fixed = NULL;
            bool blk;

            r = disk_refcount(c, ci, &r1, &blk);
            if (r < 0) {
                say(c, "Can't get refcount for cluster %" PRIu64 ": %s", ci,
                    strerror(-r));
                res->check_errors++;
                r = 0;
                continue;
            }
            if (r1 || r2) {
                highest = ci;
            }
            if (r1 == r2) {
                continue;
            }
            if (r1 == 0) {
                c->rebuild = true;
            } else if (r1 > r2 && (fix & VIMG_CHECK_FIX_LEAKS)) {
                fixed = &res->leaks_fixed;
            } else if (r1 < r2 && (fix & VIMG_CHECK_FIX_ERRORS)) {
                fixed = &res->corruptions_fixed;
            }
            say(c, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%"
                PRIu64, fixed ? "Repairing" : r1 < r2 ? "ERROR" : "Leaked",
                ci, r1, r2);
            if (fixed && blk) {
                entry_set(c, c->rb, ci % c->s->rb_entries, r2);
                c->rb_dirty = true;
                (*fixed)++;
                continue;
            }
            if (r1 < r2) {
                res->corruptions++;
            } else {
                res->leaks++;
            }
        }
    }
    free(v);
    res->image_end_offset = (int64_t)((highest + 1) << c->bits);
    r = rb_flush(c);
    if (r < 0) {
        say(c, "ERROR: Could not write refcount block: %s", strerror(-r));
        res->check_errors++;
    }
    return 0;
}

/* ---- OFLAG_COPIED --------------------------------------------------------- */

static int
check_oflag_copied(struct ck *c)
{
    struct qcow2_state *s = c->s;
    struct vimg_check_result *res = c->res;
    bool repair;
    uint64_t *l1 = NULL, rc;
    uint32_t i, j, n = c->cs / s->l2_entry_size;
    int r;

    if (c->fix & VIMG_CHECK_FIX_ERRORS) {
        repair = true;
    } else if (c->fix & VIMG_CHECK_FIX_LEAKS) {
        /* Only when the refcounts were fixed and nothing else is wrong. */
        repair = !res->check_errors && !res->corruptions && !res->leaks;
    } else {
        repair = false;
    }
    r = read_l1(c, s->hdr.l1_table_offset, s->hdr.l1_size, &l1);
    if (r < 0) {
        say(c, "ERROR: Could not read L1 table: %s", strerror(-r));
        res->check_errors++;
        return r == -ENOMEM ? r : 0;
    }
    for (i = 0; i < s->hdr.l1_size; i++) {
        uint64_t e = l1[i], l2 = e & QCOW2_OFFSET_MASK;
        unsigned dirty = 0;

        if (l2 == 0 || disk_refcount(c, l2 >> c->bits, &rc, NULL) < 0) {
            continue;
        }
        if ((rc == 1) != ((e & QCOW2_OFLAG_COPIED) != 0)) {
            res->corruptions++;
            say(c, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%" PRIx64
                " refcount=%" PRIu64, repair ? "Repairing" : "ERROR", i, e,
                rc);
            if (repair) {
                uint8_t be[8];

                e = rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
                st_be64(be, e);
                r = write_table(c, s->hdr.l1_table_offset + (uint64_t)i * 8,
                                be, 8);
                if (r < 0) {
                    say(c, "ERROR: Could not write L1 table: %s",
                        strerror(-r));
                    res->check_errors++;
                    break;
                }
                if (i < s->l1_size) {
                    s->l1[i] = e;
                }
                res->corruptions--;
                res->corruptions_fixed++;
            }
        }
        if (l2 & (c->cs - 1)) {
            continue;
        }
        r = full_pread_zero(c->img->fd, c->buf, c->cs, l2);
        if (r < 0) {
            say(c, "ERROR: Could not read L2 table: %s", strerror(-r));
            res->check_errors++;
            break;
        }
        for (j = 0; j < n; j++) {
            uint8_t *p = c->buf + (size_t)j * s->l2_entry_size;
            uint64_t e2 = ld_be64(p), d = e2 & QCOW2_OFFSET_MASK;

            if ((e2 & QCOW2_OFLAG_COMPRESSED) || !qcow2_l2_allocated(s, e2)) {
                continue;
            }
            if (s->has_data_file) {
                rc = 1;         /* data file clusters count as owned */
            } else if (disk_refcount(c, d >> c->bits, &rc, NULL) < 0) {
                continue;
            }
            if ((rc == 1) != ((e2 & QCOW2_OFLAG_COPIED) != 0)) {
                res->corruptions++;
                say(c, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                    " refcount=%" PRIu64, repair ? "Repairing" : "ERROR", e2,
                    rc);
                if (repair) {
                    st_be64(p, rc == 1 ? e2 | QCOW2_OFLAG_COPIED
                                       : e2 & ~QCOW2_OFLAG_COPIED);
                    dirty++;
                }
            }
        }
        if (dirty) {
            r = write_table(c, l2, c->buf, c->cs);
            if (r < 0) {
                say(c, "ERROR: Could not write L2 table: %s", strerror(-r));
                res->check_errors++;
                break;
            }
            res->corruptions -= dirty;
            res->corruptions_fixed += dirty;
        }
    }
    free(l1);
    return 0;
}

/* ---- rebuilding the refcount structure ------------------------------------- */

/*
 * Write a new refcount table and blocks after everything in use, holding
 * the expected counts; the old table and blocks are not counted, so they
 * are free once the header points to the new table.
 */
static int
rebuild_refcounts(struct ck *c, struct vimg_error **errp)
{
    struct qcow2_state *s = c->s;
    uint64_t rbe = s->rb_entries, start, k = 0, ci, i, nb = 0, maxb = 0;
    uint64_t tab_clusters = 0, *blocks = NULL, *pages = NULL;
    size_t np = 0, p, cap = 0;
    uint8_t *tab = NULL, *blk = NULL, hb[12];
    int r;

    /* 1. Place the new structure after every used cluster. */
    pages = refmap_sorted_pages(&c->map, &np);
    if (!pages) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    start = c->nb_clusters;
    for (p = 0; p < np; p++) {
        uint32_t *pg = refmap_page(&c->map, pages[p], false, &r);

        for (ci = 0; pg && ci < PAGE_CLUSTERS; ci++) {
            if (pg[ci]) {
                start = MAX(start, (pages[p] << PAGE_BITS) + ci + 1);
            }
        }
    }
    /* 2. The old structure is not referenced any more. */
    c->freed = calloc(c->rt_entries + s->hdr.refcount_table_clusters + 1,
                      sizeof(uint64_t));
    if (!c->freed) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    c->n_freed = 0;
    for (i = 0; i < s->hdr.refcount_table_clusters; i++) {
        c->freed[c->n_freed++] = (s->hdr.refcount_table_offset >> c->bits) + i;
    }
    for (i = 0; i < c->rt_entries; i++) {
        uint64_t off = c->rt[i];

        if (off && !(off & RT_RESERVED) && !(off & (c->cs - 1)) &&
            (off >> c->bits) < c->nb_clusters) {
            uint32_t v = refmap_get(&c->map, off >> c->bits);

            c->freed[c->n_freed++] = off >> c->bits;
            if (v) {
                refmap_set(&c->map, off >> c->bits, v - 1);
            }
        }
    }
    for (i = 0; i < s->hdr.refcount_table_clusters; i++) {
        ci = (s->hdr.refcount_table_offset >> c->bits) + i;
        if (ci < c->nb_clusters && refmap_get(&c->map, ci)) {
            refmap_set(&c->map, ci, refmap_get(&c->map, ci) - 1);
        }
    }
    qsort(c->freed, c->n_freed, sizeof(uint64_t), cmp_u64);
    for (i = 0, p = 0; i < c->n_freed; i++) {
        if (p == 0 || c->freed[p - 1] != c->freed[i]) {
            c->freed[p++] = c->freed[i];
        }
    }
    c->n_freed = p;
    /* 3. Blocks needed for the non-zero counts, ascending. */
    for (p = 0; p < np; p++) {
        uint32_t *pg = refmap_page(&c->map, pages[p], false, &r);

        for (ci = 0; pg && ci < PAGE_CLUSTERS; ci++) {
            uint64_t b = ((pages[p] << PAGE_BITS) + ci) / rbe;

            if (!pg[ci] || (nb && blocks[nb - 1] == b)) {
                continue;
            }
            if (nb == cap) {
                uint64_t *nbk;

                cap = cap ? cap * 2 : 64;
                nbk = realloc(blocks, cap * sizeof(*blocks));
                if (!nbk) {
                    r = vimg_error_set(errp, -ENOMEM, "Out of memory");
                    goto out;
                }
                blocks = nbk;
            }
            blocks[nb++] = b;
        }
    }
    /* 4. Size the new clusters: blocks (also covering themselves) and table. */
    for (;;) {
        uint64_t extra = 0, b, last = nb ? blocks[nb - 1] : 0, knew;

        for (b = start / rbe; b <= (start + MAX(k, 1) - 1) / rbe; b++) {
            if (!nb || b > last) {
                extra++;
            }
        }
        maxb = MAX(last, (start + MAX(k, 1) - 1) / rbe);
        tab_clusters = DIV_ROUND_UP((maxb + 1) * 8, c->cs);
        knew = nb + extra + tab_clusters;
        if (knew <= k) {
            break;
        }
        k = knew;
    }
    if (tab_clusters * c->cs > QCOW2_MAX_REFTABLE_BYTES) {
        r = vimg_error_set(errp, -EFBIG, "Reference count table too large");
        goto out;
    }
    /* The block list, extended by the blocks of the new clusters. */
    {
        uint64_t b, last = nb ? blocks[nb - 1] : 0;
        uint64_t want = nb + (start + k - 1) / rbe - start / rbe + 1;
        uint64_t *nbk = realloc(blocks, want * sizeof(*blocks));

        if (!nbk) {
            r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            goto out;
        }
        blocks = nbk;
        for (b = start / rbe; b <= (start + k - 1) / rbe; b++) {
            if (!nb || b > last) {
                blocks[nb++] = b;
            }
        }
    }
    for (ci = start; ci < start + k; ci++) {
        r = refmap_set(&c->map, ci, 1);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Out of memory");
            goto out;
        }
    }
    /* 5. Blocks at start.., then the table; sync; then the header. */
    tab = calloc(tab_clusters, c->cs);
    blk = malloc(c->cs);
    if (!tab || !blk) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    for (i = 0; i < nb; i++) {
        uint64_t off = (start + i) << c->bits;

        memset(blk, 0, c->cs);
        for (ci = 0; ci < rbe; ci++) {
            uint32_t v = refmap_get(&c->map, blocks[i] * rbe + ci);

            if (v) {
                entry_set(c, blk, ci, MIN((uint64_t)v, s->refcount_max));
            }
        }
        r = write_table(c, off, blk, c->cs);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not write refcount block: %s",
                               strerror(-r));
            goto out;
        }
        st_be64(tab + blocks[i] * 8, off);
    }
    r = write_table(c, (start + nb) << c->bits, tab, tab_clusters * c->cs);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not write refcount table: %s",
                           strerror(-r));
        goto out;
    }
    r = qcow2_sync(c->img, errp);
    if (r < 0) {
        goto out;
    }
    st_be64(hb, (start + nb) << c->bits);
    st_be32(hb + 8, (uint32_t)tab_clusters);
    r = full_pwrite(c->img->fd, hb, sizeof(hb), 48);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not update the qcow2 header: %s",
                           strerror(-r));
        goto out;
    }
    r = qcow2_sync(c->img, errp);
    if (r < 0) {
        goto out;
    }
    s->hdr.refcount_table_offset = (start + nb) << c->bits;
    s->hdr.refcount_table_clusters = (uint32_t)tab_clusters;
    qcow2_refcount_free(s);
    r = qcow2_refcount_init(c->img, errp);

out:
    free(pages);
    free(blocks);
    free(tab);
    free(blk);
    return r;
}

/* ---- the check ------------------------------------------------------------- */

/* Forget everything the driver cached: the metadata changed under it. */
static void
drop_caches(struct qcow2_state *s)
{
    size_t i;

    for (i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
        s->l2_cache[i].offset = 0;
        s->l2_cache[i].dirty = false;
    }
    for (i = 0; i < QCOW2_RB_CACHE_SIZE; i++) {
        s->rb_cache[i].offset = 0;
        s->rb_cache[i].dirty = false;
    }
    s->dbuf_entry = 0;
    s->free_hint = 0;
}

/* A fresh count: calculate + compare without repairs into a clean result. */
static int
recount(struct ck *c, struct vimg_error **errp)
{
    int64_t size = file_size(c->img->fd);
    int r;

    if (size < 0) {
        return vimg_error_set(errp, (int)size, "Could not get the file size");
    }
    c->file_len = (uint64_t)size;
    refmap_free(&c->map);
    memset(c->res, 0, sizeof(*c->res));
    r = load_rt(c, errp);
    if (r < 0) {
        return r;
    }
    r = calculate(c);
    if (r == 0) {
        bool quiet = c->quiet;

        c->pre = *c->res;
        c->quiet = quiet || c->quiet_compare;
        r = compare(c, 0);
        c->quiet = quiet;
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Check failed: %s", strerror(-r));
    }
    return 0;
}

static int
run_check(struct ck *c, struct vimg_error **errp)
{
    struct vimg_check_result *res = c->res, old;
    struct qcow2_state *s = c->s;
    int r;

    r = recount(c, errp);
    if (r < 0 || !c->fix) {
        goto oflag;
    }
    if (c->rebuild && (c->fix & VIMG_CHECK_FIX_ERRORS)) {
        say(c, "Rebuilding refcount structure");
        old = *res;
        r = rebuild_refcounts(c, errp);
        if (r < 0) {
            res->check_errors++;
            return r;
        }
        c->quiet_compare = true;
        r = recount(c, errp);
        c->quiet_compare = false;
        if (r < 0) {
            return r;
        }
        /* qemu frees the old structure as leaks of the new one. */
        for (size_t i = 0; i < c->n_freed; i++) {
            if (refmap_get(&c->map, c->freed[i]) == 0) {
                say(c, "Repairing cluster %" PRIu64 " refcount=1 reference=0",
                    c->freed[i]);
            }
        }
        if (res->corruptions < old.corruptions) {
            res->corruptions_fixed += old.corruptions - res->corruptions;
        }
        if (res->leaks < old.leaks) {
            res->leaks_fixed += old.leaks - res->leaks;
        }
    } else {
        if (c->rebuild) {
            say(c, "ERROR need to rebuild refcount structures");
            res->check_errors++;
            return vimg_error_set(errp, -EIO, "Check failed: %s",
                                  strerror(EIO));
        }
        if (res->leaks || res->corruptions) {
            /* Compare again from the counted state, repairing this time. */
            *res = c->pre;
            r = compare(c, c->fix);
            if (r < 0) {
                return vimg_error_set(errp, r, "Check failed: %s",
                                      strerror(-r));
            }
        }
    }
    if (c->wrote) {
        r = qcow2_sync(c->img, errp);
        if (r < 0) {
            return r;
        }
    }

oflag:
    if (r < 0) {
        return r;
    }
    r = check_oflag_copied(c);
    if (r < 0) {
        return vimg_error_set(errp, r, "Check failed: %s", strerror(-r));
    }
    if (c->wrote) {
        r = qcow2_sync(c->img, errp);
        if (r < 0) {
            return r;
        }
    }
    if (c->fix && !res->check_errors && !res->corruptions &&
        s->hdr.version >= 3 &&
        (s->hdr.incompatible_features &
         (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT))) {
        uint8_t be[8];

        /* Repaired: the image is clean and consistent again. */
        s->hdr.incompatible_features &=
            ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT);
        st_be64(be, s->hdr.incompatible_features);
        r = full_pwrite(c->img->fd, be, 8, 72);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not update the qcow2 "
                                  "header: %s", strerror(-r));
        }
        r = qcow2_sync(c->img, errp);
    }
    return r;
}

int
qcow2_check(struct vimg_image *img, unsigned fix,
            struct vimg_check_result *res, vimg_check_report_fn report,
            void *opaque, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct ck c = {
        .img = img,
        .s = s,
        .fix = fix,
        .res = res,
        .report = report,
        .opaque = opaque,
        .cs = s->cluster_size,
        .bits = s->cluster_bits,
        .rb_index = UINT64_MAX,
    };
    int r;

    /*
     * A metadata-only open accepts a LUKS image without its FDE extension
     * (so info can show it); the check reports it as qemu's open does.
     */
    if (s->hdr.crypt_method == QCOW2_CRYPT_LUKS && !s->has_crypto_ext) {
        return vimg_error_set(errp, -EINVAL,
                              "Missing CRYPTO header for crypt method 2");
    }
    c.cap = s->refcount_max > UINT32_MAX ? UINT32_MAX
                                         : (uint32_t)s->refcount_max;
    if (img->flags & VIMG_OPEN_RDWR) {
        /* The checker reads the file: put the cached metadata there. */
        r = qcow2_metadata_flush(img, errp);
        if (r < 0) {
            return r;
        }
    }
    c.buf = malloc(c.cs);
    c.rb = malloc(c.cs);
    if (!c.buf || !c.rb) {
        free(c.buf);
        free(c.rb);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = run_check(&c, errp);
    if (c.wrote) {
        drop_caches(s);
    }
    refmap_free(&c.map);
    free(c.freed);
    free(c.rt);
    free(c.rb);
    free(c.buf);
    return r;
}
