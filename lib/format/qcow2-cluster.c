/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 guest data path: the metadata table cache, L1/L2 address
 * translation and the read, write, zero and block-status operations
 * (qcow2.txt "Cluster mapping", qemu-facts.md 1.3).
 *
 * lookup() classifies the guest bytes at an offset (unallocated, zero,
 * normal data at a host offset, compressed) for the longest run inside
 * one cluster (or one subcluster with extended L2, or a whole L2 range
 * without table); reads and block status merge consecutive runs.
 *
 * Writes into a cluster that holds no data yet allocate a new cluster and
 * write it whole: the guest bytes plus zeroes (no backing files) or the
 * decompressed old content for a compressed cluster.  With extended L2 the
 * unit of copy-on-write is the subcluster.  Encrypted images encrypt with
 * IV sector = host offset / 512 (qemu-facts.md 1.7), so every encrypted
 * write goes through a bounce buffer.  Most writes are handled a run of
 * clusters at a time (see "write runs" below: one allocation, one data
 * write and one L2 pass per run); the rest cluster by cluster.
 *
 * Metadata ordering (see qcow2.h): dirty refcount blocks are written and
 * synced before any L2 table, L2 tables (also those written by cache
 * evictions) are synced before the L1 entries are written, and the
 * clusters of overwritten compressed data are released only after that.
 * Nothing is synced per cluster or per run: only on cache eviction of a
 * dirty L2 table, on flush and at close.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

enum kind {
    K_UNALLOC,      /* reads as zeroes (no backing file) */
    K_UNALLOC_ALLOC, /* the same in an allocated cluster (extended L2):
                        "host" set, mapped by qemu */
    K_ZERO,         /* zero flag / zero subcluster */
    K_ZERO_ALLOC,   /* the same with a host cluster kept ("host" set) */
    K_NORMAL,       /* data at a host offset */
    K_COMPRESSED,   /* compressed cluster; "host" holds the descriptor */
};

/* ---- table cache ----------------------------------------------------------- */

int
qcow2_table_write(struct vimg_image *img, bool l2, struct qcow2_table *t,
                  struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r = full_pwrite(img->fd, t->data, s->cluster_size, t->offset);

    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write %s at offset %#"
                              PRIx64 ": %s",
                              l2 ? "L2 table" : "refcount block", t->offset,
                              strerror(-r));
    }
    t->dirty = false;
    if (l2) {
        s->l2_unsynced = true;  /* synced before any L1 entry is written */
    } else {
        s->rb_unsynced = true;
    }
    return 0;
}

void
qcow2_cache_forget(struct qcow2_state *s, uint64_t offset)
{
    for (size_t i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
        if (s->l2_cache[i].offset == offset) {
            s->l2_cache[i].offset = 0;
            s->l2_cache[i].dirty = false;
        }
    }
}

int
qcow2_cache_get(struct vimg_image *img, bool l2, uint64_t offset, bool load,
                struct qcow2_table **out, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_table *c = l2 ? s->l2_cache : s->rb_cache;
    size_t n = l2 ? QCOW2_L2_CACHE_SIZE : QCOW2_RB_CACHE_SIZE;
    struct qcow2_table *v = NULL;
    size_t i;
    int r;

    for (i = 0; i < n; i++) {
        if (c[i].data && c[i].offset == offset) {
            if (!load) {
                /* The caller just allocated @offset: whatever a table
                 * freed there left in the cache is stale. */
                memset(c[i].data, 0, s->cluster_size);
                c[i].dirty = false;
            }
            c[i].lru = ++s->lru_clock;
            *out = &c[i];
            return 0;
        }
    }
    for (i = 0; i < n; i++) {
        if (!c[i].data || c[i].offset == 0) {
            v = &c[i];
            break;
        }
        if (!v || c[i].lru < v->lru) {
            v = &c[i];
        }
    }
    if (v->dirty) {
        if (l2) {
            /* Refcounts of what the tables point to go first (one sync),
             * then every dirty L2 table, so later evictions are cheap. */
            r = qcow2_refcount_flush(img, errp);
            for (i = 0; r == 0 && i < n; i++) {
                if (c[i].dirty) {
                    r = qcow2_table_write(img, true, &c[i], errp);
                }
            }
        } else {
            r = qcow2_table_write(img, false, v, errp);
        }
        if (r < 0) {
            return r;
        }
    }
    if (!v->data) {
        v->data = malloc(s->cluster_size);
        if (!v->data) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    v->offset = 0;
    if (load) {
        r = full_pread(img->fd, v->data, s->cluster_size, offset);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not read %s at offset %#"
                                  PRIx64 ": %s",
                                  l2 ? "L2 table" : "refcount block", offset,
                                  strerror(-r));
        }
    } else {
        memset(v->data, 0, s->cluster_size);
    }
    v->offset = offset;
    v->dirty = false;
    v->lru = ++s->lru_clock;
    *out = v;
    return 0;
}

/* ---- setup ----------------------------------------------------------------- */

int
qcow2_cluster_init(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    if (posix_memalign((void **)&s->bounce, 4096, s->cluster_size) != 0) {
        s->bounce = NULL;
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    return 0;
}

void
qcow2_cluster_free(struct qcow2_state *s)
{
    size_t i;

    for (i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
        free(s->l2_cache[i].data);
        s->l2_cache[i].data = NULL;
    }
    for (i = 0; i < QCOW2_RB_CACHE_SIZE; i++) {
        free(s->rb_cache[i].data);
        s->rb_cache[i].data = NULL;
    }
    free(s->bounce);
    free(s->wbuf);
    s->wbuf = NULL;
    free(s->zbuf);
    free(s->dbuf);
    free(s->pending_free);
    s->bounce = s->zbuf = s->dbuf = NULL;
    s->pending_free = NULL;
}

/* ---- L1 / L2 ------------------------------------------------------------- */

static void
l2_get(const struct qcow2_state *s, const struct qcow2_table *t, uint64_t i,
       uint64_t *desc, uint64_t *bitmap)
{
    const uint8_t *p = t->data + i * s->l2_entry_size;

    *desc = ld_be64(p);
    *bitmap = s->extended_l2 ? ld_be64(p + 8) : 0;
}

static void
l2_put(const struct qcow2_state *s, struct qcow2_table *t, uint64_t i,
       uint64_t desc, uint64_t bitmap)
{
    uint8_t *p = t->data + i * s->l2_entry_size;

    st_be64(p, desc);
    if (s->extended_l2) {
        st_be64(p + 8, bitmap);
    }
    t->dirty = true;
}

static void
l1_mark_dirty(struct qcow2_state *s, uint32_t i)
{
    if (s->l1_dirty_lo >= s->l1_dirty_hi) {
        s->l1_dirty_lo = i;
        s->l1_dirty_hi = i + 1;
    } else {
        s->l1_dirty_lo = MIN(s->l1_dirty_lo, i);
        s->l1_dirty_hi = MAX(s->l1_dirty_hi, i + 1);
    }
}

/*
 * The L2 table covering guest offset @off; *t = NULL when the L1 entry is
 * empty and @alloc is false.  With @alloc an empty entry gets a new table.
 */
static int
get_l2(struct vimg_image *img, uint64_t off, bool alloc,
       struct qcow2_table **t, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t i = qcow2_l1_index(s, off), l1e, l2off;
    int r;

    *t = NULL;
    if (i >= s->l1_size) {
        return vimg_error_set(errp, -EIO, "L1 index %" PRIu64 " out of range",
                              i);
    }
    l1e = s->l1[i];
    l2off = l1e & QCOW2_OFFSET_MASK;
    if (l2off == 0) {
        if (!alloc) {
            return 0;
        }
        r = qcow2_alloc_clusters(img, 1, &l2off, errp);
        if (r < 0) {
            return r;
        }
        r = qcow2_cache_get(img, true, l2off, false, t, errp);
        if (r < 0) {
            return r;
        }
        (*t)->dirty = true;
        s->l1[i] = l2off | QCOW2_OFLAG_COPIED;
        l1_mark_dirty(s, (uint32_t)i);
        return 0;
    }
    if (qcow2_offset_into_cluster(s, l2off)) {
        return vimg_error_set(errp, -EIO,
                              "L2 table offset %#" PRIx64 " unaligned (L1 "
                              "index: %#" PRIx64 ")", l2off, i);
    }
    if (alloc && !(l1e & QCOW2_OFLAG_COPIED)) {
        return qcow2_snapshot_unshare_l2(img, (uint32_t)i, t, errp);
    }
    return qcow2_cache_get(img, true, l2off, true, t, errp);
}

/* Host byte range [*start, *start + *len) of a compressed descriptor. */
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
check_host(const struct qcow2_state *s, uint64_t host, uint64_t off,
           struct vimg_error **errp)
{
    if (qcow2_offset_into_cluster(s, host)) {
        return vimg_error_set(errp, -EIO,
                              "Cluster allocation offset %#" PRIx64
                              " unaligned (guest offset: %#" PRIx64 ")",
                              host, off);
    }
    return qcow2_datafile_check_host(s, host, off, errp);
}

/*
 * Classify guest offset @off: *kind, *host (host offset of @off for
 * K_NORMAL, the descriptor for K_COMPRESSED) and *n, the length (<= @max)
 * of the run with that state that starts at @off.
 */
static int
lookup(struct vimg_image *img, uint64_t off, uint64_t max, enum kind *kind,
       uint64_t *host, uint64_t *n, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t in = qcow2_offset_into_cluster(s, off), desc, bm, base;
    struct qcow2_table *t;
    int r;

    r = get_l2(img, off, false, &t, errp);
    if (r < 0) {
        return r;
    }
    *host = 0;
    if (!t) {
        uint64_t span = 1ULL << (s->cluster_bits + s->l2_bits);

        *kind = K_UNALLOC;
        *n = MIN(max, span - (off & (span - 1)));
        return 0;
    }
    *n = MIN(max, s->cluster_size - in);
    l2_get(s, t, qcow2_l2_index(s, off), &desc, &bm);
    if ((desc & QCOW2_OFLAG_COMPRESSED) && s->has_data_file) {
        return vimg_error_set(errp, -EIO, "Compressed cluster entry found in "
                              "image with external data file (guest "
                              "offset %#" PRIx64 ")", off);
    }
    if (desc & QCOW2_OFLAG_COMPRESSED) {
        *kind = K_COMPRESSED;
        *host = desc;
        return 0;
    }
    base = desc & QCOW2_OFFSET_MASK;
    if (s->extended_l2) {
        unsigned sc = (unsigned)(in / s->subcluster_size);
        bool a = bm & (1ULL << sc), z = bm & (1ULL << (32 + sc));

        *n = MIN(*n, (uint64_t)(sc + 1) * s->subcluster_size - in);
        if (a && z) {
            return vimg_error_set(errp, -EIO,
                                  "Invalid subcluster bitmap %#" PRIx64
                                  " at guest offset %#" PRIx64, bm, off);
        }
        if (a) {
            if (!qcow2_l2_allocated(s, desc)) {
                return vimg_error_set(errp, -EIO,
                                      "Allocated subcluster without host "
                                      "cluster at guest offset %#" PRIx64,
                                      off);
            }
            r = check_host(s, base, off, errp);
            if (r < 0) {
                return r;
            }
            *kind = K_NORMAL;
            *host = base + in;
        } else {
            *kind = z ? K_ZERO : K_UNALLOC;
            if (qcow2_l2_allocated(s, desc) &&
                check_host(s, base, off, NULL) == 0) {
                *kind = z ? K_ZERO_ALLOC : K_UNALLOC_ALLOC;
                *host = base + in;
            }
        }
        return 0;
    }
    if ((desc & QCOW2_OFLAG_ZERO) && s->hdr.version >= 3) {
        *kind = K_ZERO;
        if (qcow2_l2_allocated(s, desc) &&
            check_host(s, base, off, NULL) == 0) {
            *kind = K_ZERO_ALLOC;   /* qemu maps its offset too */
            *host = base + in;
        }
    } else if (!qcow2_l2_allocated(s, desc)) {
        *kind = K_UNALLOC;
    } else {
        r = check_host(s, base, off, errp);
        if (r < 0) {
            return r;
        }
        *kind = K_NORMAL;
        *host = base + in;
    }
    return 0;
}

/* ---- compressed clusters --------------------------------------------------- */

static int
inflate_zlib(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
    z_stream z;
    int r;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -12) != Z_OK) {
        return -ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)inlen;
    z.next_out = out;
    z.avail_out = (uInt)outlen;
    r = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if ((r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) &&
        z.avail_out == 0) {
        return 0;
    }
    return -EIO;
}

static int
inflate_zstd(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer ib = { in, inlen, 0 };
    ZSTD_outBuffer ob = { out, outlen, 0 };
    int r = 0;

    if (!d) {
        return -ENOMEM;
    }
    /* A plain frame without length prefix: stop once a cluster is out. */
    while (ob.pos < ob.size) {
        size_t ret = ZSTD_decompressStream(d, &ob, &ib);

        if (ZSTD_isError(ret)) {
            r = -EIO;
            break;
        }
        if (ret == 0 || (ib.pos == ib.size && ob.pos < ob.size)) {
            if (ob.pos < ob.size) {
                r = -EIO;
            }
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return r;
}

/* Decompress the cluster of descriptor @desc into s->dbuf. */
static int
decompress(struct vimg_image *img, uint64_t desc, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t start, len;
    int r;

    if (s->dbuf_entry == desc && s->dbuf) {
        return 0;
    }
    if (!s->zbuf) {
        s->zbuf = malloc(2 * (size_t)s->cluster_size);
        s->dbuf = malloc(s->cluster_size);
        if (!s->zbuf || !s->dbuf) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    compressed_range(s, desc, &start, &len);
    /* len <= 2^(cluster_bits-8) * 512 = 2 clusters by construction. */
    r = full_pread_zero(img->fd, s->zbuf, len, start);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not read compressed cluster "
                              "at %#" PRIx64 ": %s", start, strerror(-r));
    }
    if (s->hdr.compression_type == QCOW2_COMPRESS_ZSTD) {
        r = inflate_zstd(s->zbuf, len, s->dbuf, s->cluster_size);
    } else {
        r = inflate_zlib(s->zbuf, len, s->dbuf, s->cluster_size);
    }
    if (r < 0) {
        s->dbuf_entry = 0;
        return vimg_error_set(errp, r, "Could not decompress the cluster at "
                              "host offset %#" PRIx64, start);
    }
    s->dbuf_entry = desc;
    return 0;
}

static int
add_pending_free(struct qcow2_state *s, uint64_t desc,
                 struct vimg_error **errp)
{
    uint64_t start, len;

    if (s->pending_n + 2 > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 64;
        uint64_t *p = realloc(s->pending_free, cap * sizeof(uint64_t));

        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        s->pending_free = p;
        s->pending_cap = cap;
    }
    compressed_range(s, desc, &start, &len);
    s->pending_free[s->pending_n++] = start;
    s->pending_free[s->pending_n++] = len;
    return 0;
}

/* ---- reads ------------------------------------------------------------------ */

static int
read_host(struct vimg_image *img, void *buf, size_t len, uint64_t host,
          uint64_t guest, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r = full_pread(qcow2_dfd(img), buf, len, host);

    if (r < 0) {
        return vimg_error_set(errp, r, "Read failed at host offset %#" PRIx64
                              ": %s", host, strerror(-r));
    }
    if (s->aes && s->reenc) {
        return qcow2_aes_reenc_decrypt(s, host, guest, buf, len, errp);
    }
    if (s->luks) {
        return qcow2_decrypt(s, host, buf, len, errp);
    }
    if (s->aes) {
        return qcow2_aes_crypt(s, false, guest, buf, len, errp);
    }
    return 0;
}

int
qcow2_pread(struct vimg_image *img, void *buf, size_t len, uint64_t off,
            struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint8_t *p = buf;
    int r;

    while (len > 0) {
        enum kind k;
        uint64_t host, n;

        r = lookup(img, off, len, &k, &host, &n, errp);
        if (r < 0) {
            return r;
        }
        switch (k) {
        case K_UNALLOC:
        case K_UNALLOC_ALLOC:
            if (!s->backing) {
                memset(p, 0, n);
                break;
            }
            /* The backing image, for the whole unallocated run. */
            while (n < len) {
                enum kind k2;
                uint64_t h2, n2;

                r = lookup(img, off + n, len - n, &k2, &h2, &n2, errp);
                if (r < 0) {
                    return r;
                }
                if (k2 != K_UNALLOC && k2 != K_UNALLOC_ALLOC) {
                    break;
                }
                n += n2;
            }
            r = qcow2_read_backing(img, p, n, off, errp);
            if (r < 0) {
                return r;
            }
            break;
        case K_ZERO:
        case K_ZERO_ALLOC:
            memset(p, 0, n);
            break;
        case K_COMPRESSED:
            r = decompress(img, host, errp);
            if (r < 0) {
                return r;
            }
            memcpy(p, s->dbuf + qcow2_offset_into_cluster(s, off), n);
            break;
        case K_NORMAL:
            /* Merge following runs that continue on the host. */
            while (n < len) {
                enum kind k2;
                uint64_t h2, n2;

                r = lookup(img, off + n, len - n, &k2, &h2, &n2, errp);
                if (r < 0) {
                    return r;
                }
                if (k2 != K_NORMAL || h2 != host + n) {
                    break;
                }
                n += n2;
            }
            r = read_host(img, p, n, host, off, errp);
            if (r < 0) {
                return r;
            }
            break;
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int
qcow2_block_status(struct vimg_image *img, uint64_t off, uint64_t len,
                   uint64_t *pnum, unsigned *status, uint64_t *host,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    enum kind k;
    uint64_t h, n;
    int r;

    r = lookup(img, off, len, &k, &h, &n, errp);
    if (r < 0) {
        return r;
    }
    while (n < len) {
        enum kind k2;
        uint64_t h2, n2;
        bool same;

        r = lookup(img, off + n, len - n, &k2, &h2, &n2, errp);
        if (r < 0) {
            return r;
        }
        same = (k2 == k);
        if (!same || ((k == K_NORMAL || k == K_ZERO_ALLOC ||
                       k == K_UNALLOC_ALLOC) && h2 != h + n)) {
            break;
        }
        n += n2;
    }
    *pnum = n;
    *host = 0;
    switch (k) {
    case K_UNALLOC_ALLOC:
        if (!s->backing && !s->luks &&
            s->hdr.crypt_method == QCOW2_CRYPT_NONE) {
            *status = VIMG_BLOCK_UNALLOCATED | VIMG_BLOCK_ZERO |
                      VIMG_BLOCK_OFFSET;
            *host = h;
            break;
        }
        /* fall through */
    case K_UNALLOC:
        /* Zero too when the backing image reads as zeroes there. */
        *status = VIMG_BLOCK_UNALLOCATED | VIMG_BLOCK_ZERO;
        if (s->backing) {
            uint64_t bsize = vimg_image_size(s->backing), bn;
            unsigned bst;

            if (off < bsize) {
                r = vimg_image_block_status(s->backing, off,
                                            MIN(n, bsize - off), &bn, &bst,
                                            NULL, errp);
                if (r < 0) {
                    return r;
                }
                *pnum = bn;
                if (!(bst & VIMG_BLOCK_ZERO)) {
                    *status = VIMG_BLOCK_UNALLOCATED;
                }
            }
        }
        break;
    case K_ZERO:
        *status = VIMG_BLOCK_ZERO;
        break;
    case K_ZERO_ALLOC:
        *status = VIMG_BLOCK_ZERO;
        if (!s->luks && s->hdr.crypt_method == QCOW2_CRYPT_NONE) {
            *status |= VIMG_BLOCK_OFFSET;
            *host = h;
        }
        break;
    case K_COMPRESSED:
        *status = VIMG_BLOCK_DATA;
        break;
    case K_NORMAL:
        /* Like qemu's map: no offsets for encrypted images. */
        *status = VIMG_BLOCK_DATA;
        if (!s->luks && s->hdr.crypt_method == QCOW2_CRYPT_NONE) {
            *status |= VIMG_BLOCK_OFFSET;
            *host = h;
        }
        break;
    }
    return 0;
}

/* ---- writes ------------------------------------------------------------- */

/*
 * Write the @size-byte unit at host offset @host: @base (NULL: zeroes)
 * with @n bytes of @src (NULL: zeroes) laid over it at offset @in.
 * Encrypted images encrypt a copy with IV sector = host offset / 512.
 */
static int
write_unit(struct vimg_image *img, uint64_t host, uint64_t guest, size_t size,
           const uint8_t *base, size_t in, const uint8_t *src, size_t n,
           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const uint8_t *out;
    int r = 0;

    if (!s->luks && !s->aes && src && in == 0 && n == size) {
        out = src;              /* whole unit from the caller: no copy */
    } else {
        if (base) {
            memmove(s->bounce, base, size);
        } else {
            memset(s->bounce, 0, size);
        }
        if (src) {
            memcpy(s->bounce + in, src, n);
        } else {
            memset(s->bounce + in, 0, n);
        }
        if (s->luks) {
            r = qcow2_encrypt(s, host, s->bounce, size, errp);
        } else if (s->aes) {
            r = qcow2_aes_crypt(s, true, guest, s->bounce, size, errp);
        }
        if (r < 0) {
            return r;
        }
        out = s->bounce;
    }
    r = full_pwrite(qcow2_dfd(img), out, size, host);
    if (r < 0) {
        return vimg_error_set(errp, r, "Write failed at host offset %#"
                              PRIx64 ": %s", host, strerror(-r));
    }
    return 0;
}

/*
 * Backing data of guest range [@off, @off + @len) (inside one cluster) in
 * s->cow, for copy-on-write; *@base = NULL when there is no backing image
 * (the unwritten rest is then zeroes).
 */
static int
cow_from_backing(struct vimg_image *img, uint64_t off, size_t len,
                 const uint8_t **base, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    *base = NULL;
    if (!s->backing) {
        return 0;
    }
    if (!s->cow) {
        s->cow = malloc(s->cluster_size);
        if (!s->cow) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    *base = s->cow;
    return qcow2_read_backing(img, s->cow, len, off, errp);
}

/* Write [@off, @off + @n) inside one cluster; @src NULL writes zeroes. */
static int
write_cluster(struct vimg_image *img, uint64_t off, const uint8_t *src,
              size_t n, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t in = (size_t)qcow2_offset_into_cluster(s, off);
    uint64_t idx = qcow2_l2_index(s, off), desc, bm, host;
    struct qcow2_table *t;
    bool fresh = false;
    int r;

    r = get_l2(img, off, true, &t, errp);
    if (r < 0) {
        return r;
    }
    l2_get(s, t, idx, &desc, &bm);

    if ((desc & QCOW2_OFLAG_COMPRESSED) && s->has_data_file) {
        return vimg_error_set(errp, -EIO, "Compressed cluster entry found in "
                              "image with external data file (guest "
                              "offset %#" PRIx64 ")", off);
    }
    if (desc & QCOW2_OFLAG_COMPRESSED) {
        /* Copy-on-write: the whole cluster moves to a new place. */
        r = decompress(img, desc, errp);
        if (r < 0) {
            return r;
        }
        r = qcow2_alloc_clusters(img, 1, &host, errp);
        if (r < 0) {
            return r;
        }
        r = write_unit(img, host, off - in, s->cluster_size, s->dbuf, in, src,
                       n, errp);
        if (r < 0) {
            return r;
        }
        r = add_pending_free(s, desc, errp);
        if (r < 0) {
            return r;
        }
        /* The table pointer may be stale after the allocation. */
        r = get_l2(img, off, true, &t, errp);
        if (r < 0) {
            return r;
        }
        l2_put(s, t, idx, host | QCOW2_OFLAG_COPIED,
               s->extended_l2 ? 0xffffffffULL : 0);
        return 0;
    }

    host = desc & QCOW2_OFFSET_MASK;
    if (host && !(desc & QCOW2_OFLAG_COPIED) && !s->has_data_file) {
        return qcow2_snapshot_cow_write(img, off, src, n, errp);
    }
    if (qcow2_l2_allocated(s, desc)) {
        r = check_host(s, host, off, errp);
        if (r < 0) {
            return r;
        }
    } else {
        r = qcow2_datafile_alloc(img, off - in, 1, &host, errp);
        if (r < 0) {
            return r;
        }
        fresh = true;
        r = get_l2(img, off, true, &t, errp);
        if (r < 0) {
            return r;
        }
    }

    if (s->extended_l2) {
        uint32_t scs = s->subcluster_size;
        unsigned sc;

        for (sc = (unsigned)(in / scs); sc * scs < in + n; sc++) {
            size_t a = MAX(in, (size_t)sc * scs);
            size_t b = MIN(in + n, (size_t)(sc + 1) * scs);
            const uint8_t *piece = src ? src + (a - in) : NULL;
            const uint8_t *base = NULL;

            if (!fresh && (bm & (1ULL << sc))) {
                r = write_unit(img, host + a, off - in + a, b - a, NULL, 0,
                               piece, b - a,
                               errp);
            } else {
                if (!(bm & (1ULL << (32 + sc))) && b - a < scs) {
                    /* Unallocated subcluster: the rest from the backing. */
                    r = cow_from_backing(img, off - in + (uint64_t)sc * scs,
                                         scs, &base, errp);
                    if (r < 0) {
                        return r;
                    }
                }
                r = write_unit(img, host + (uint64_t)sc * scs,
                               off - in + (uint64_t)sc * scs, scs, base,
                               a - (size_t)sc * scs, piece, b - a, errp);
            }
            if (r < 0) {
                return r;
            }
            bm |= 1ULL << sc;
            bm &= ~(1ULL << (32 + sc));
        }
        l2_put(s, t, idx, host | QCOW2_OFLAG_COPIED, bm);
        return 0;
    }

    if (!fresh && !((desc & QCOW2_OFLAG_ZERO) && s->hdr.version >= 3)) {
        /* Data in place. */
        return write_unit(img, host + in, off, n, NULL, 0, src, n, errp);
    }
    /* New cluster: backing data (or zeroes) around the data; a zero
     * cluster: zeroes. */
    {
        const uint8_t *base = NULL;

        if (n < s->cluster_size &&
            !((desc & QCOW2_OFLAG_ZERO) && s->hdr.version >= 3)) {
            r = cow_from_backing(img, off - in, s->cluster_size, &base, errp);
            if (r < 0) {
                return r;
            }
        }
        r = write_unit(img, host, off - in, s->cluster_size, base, in, src, n,
                       errp);
    }
    if (r < 0) {
        return r;
    }
    l2_put(s, t, idx, host | QCOW2_OFLAG_COPIED, 0);
    return 0;
}

/* ---- write runs ------------------------------------------------------------ */

/*
 * The common cases of a write go through here a run of clusters at a time
 * instead of cluster by cluster: consecutive clusters (inside one L2
 * table) that either hold no data yet (unallocated, or a v3 zero cluster
 * without host cluster) or are plain data clusters continuing on the host
 * (OFLAG_COPIED, no zero flag).  A run of new clusters gets one contiguous
 * host allocation (one refcount update), its data in one write and its L2
 * entries in one table pass; the metadata reaches the disk later in the
 * usual order (refcounts, sync, L2 tables, sync, L1).  Data to encrypt, or
 * with partial clusters at the ends (copy-on-write from the backing image
 * or zeroes), is composed in s->wbuf, page aligned (the kernel copies from
 * an unaligned buffer much more slowly on some CPUs).  Everything else
 * (compressed clusters, clusters shared with snapshots, preallocated zero
 * clusters, extended L2, legacy AES) takes the per-cluster path.
 */

static int
get_wbuf(struct qcow2_state *s, struct vimg_error **errp)
{
    size_t size = MAX((size_t)QCOW2_RUN_BYTES, 2 * (size_t)s->cluster_size);

    if (!s->wbuf) {
        if (posix_memalign((void **)&s->wbuf, 4096, size) != 0) {
            s->wbuf = NULL;
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        s->wbuf_size = size;
    }
    return 0;
}

/* An L2 entry a write fills with a newly allocated cluster. */
static bool
needs_new_cluster(const struct qcow2_state *s, uint64_t desc)
{
    return desc == 0 || (desc == QCOW2_OFLAG_ZERO && s->hdr.version >= 3);
}

/*
 * Base content of the new cluster at guest offset @goff for the bytes a
 * write leaves alone, into @dst (one cluster): the backing data, or
 * zeroes (no backing image, or a zero cluster).
 */
static int
new_cluster_base(struct vimg_image *img, uint64_t desc, uint64_t goff,
                 uint8_t *dst, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    if (!s->backing || desc != 0) {
        memset(dst, 0, s->cluster_size);
        return 0;
    }
    return qcow2_read_backing(img, dst, s->cluster_size, goff, errp);
}

/* Encrypt @len bytes of s->wbuf (in pieces that stay in the CPU cache
 * while @src's bytes are copied in at @in) and write them at @host.  A
 * piece that @src covers whole is encrypted straight from @src into wbuf,
 * without the copy. */
static int
write_wbuf(struct vimg_image *img, uint64_t host, size_t len, size_t in,
           const uint8_t *src, size_t n, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const size_t piece = 128 * 1024;
    size_t pos;
    int r;

    for (pos = 0; pos < len; pos += piece) {
        size_t end = MIN(len, pos + piece);

        if (src && s->luks && in <= pos && in + n >= end) {
            r = qcow2_encrypt_from(s, host + pos, s->wbuf + pos,
                                   src + (pos - in), end - pos, errp);
            if (r < 0) {
                return r;
            }
            continue;
        }
        /* The part of [in, in + n) inside [pos, end). */
        if (src && in < end && in + n > pos) {
            size_t a = MAX(pos, in), b = MIN(end, in + n);

            memcpy(s->wbuf + a, src + (a - in), b - a);
        }
        if (s->luks) {
            r = qcow2_encrypt(s, host + pos, s->wbuf + pos, end - pos, errp);
            if (r < 0) {
                return r;
            }
        }
    }
    r = full_pwrite(qcow2_dfd(img), s->wbuf, len, host);
    if (r < 0) {
        return vimg_error_set(errp, r, "Write failed at host offset %#"
                              PRIx64 ": %s", host, strerror(-r));
    }
    return 0;
}

/*
 * Write a run starting at guest @off, at most @len bytes of @src; *@done
 * is the number of bytes written, 0 when the first cluster needs the
 * per-cluster path.
 */
static int
write_run(struct vimg_image *img, uint64_t off, const uint8_t *src,
          size_t len, size_t *done, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t cs = s->cluster_size, in = qcow2_offset_into_cluster(s, off);
    uint64_t idx = qcow2_l2_index(s, off), per_l2 = 1ULL << s->l2_bits;
    uint64_t ncl, i, desc, first_desc, last_desc, bm, host, total, n;
    struct qcow2_table *t;
    bool fresh;
    int r;

    *done = 0;
    if (s->extended_l2 || s->aes) {
        return 0;
    }
    r = get_l2(img, off, true, &t, errp);
    if (r < 0) {
        return r;
    }
    l2_get(s, t, idx, &first_desc, &bm);
    host = first_desc & QCOW2_OFFSET_MASK;
    fresh = needs_new_cluster(s, first_desc);
    if (!fresh && (first_desc != (host | QCOW2_OFLAG_COPIED) ||
                   !qcow2_l2_allocated(s, first_desc) ||
                   qcow2_offset_into_cluster(s, host) ||
                   qcow2_datafile_check_host(s, host, off, NULL) < 0)) {
        return 0;
    }
    /* Clusters the request touches, within the table and the run limit. */
    ncl = MIN(DIV_ROUND_UP(in + len, cs), per_l2 - idx);
    ncl = MIN(ncl, MAX(1, (uint64_t)QCOW2_RUN_BYTES / cs));
    last_desc = first_desc;
    for (i = 1; i < ncl; i++) {
        l2_get(s, t, idx + i, &desc, &bm);
        if (fresh ? !needs_new_cluster(s, desc)
                  : desc != ((host + i * cs) | QCOW2_OFLAG_COPIED)) {
            break;
        }
        last_desc = desc;
    }
    ncl = i;
    n = MIN((uint64_t)len, ncl * cs - in);

    if (!fresh) {
        /* Data in place: no metadata changes. */
        if (!s->luks) {
            r = full_pwrite(qcow2_dfd(img), src, (size_t)n, host + in);
            if (r < 0) {
                return vimg_error_set(errp, r, "Write failed at host offset "
                                      "%#" PRIx64 ": %s", host + in,
                                      strerror(-r));
            }
        } else {
            r = get_wbuf(s, errp);
            if (r == 0) {
                r = write_wbuf(img, host + in, (size_t)n, 0, src, (size_t)n,
                               errp);
            }
            if (r < 0) {
                return r;
            }
        }
        *done = (size_t)n;
        return 0;
    }

    total = ncl * cs;
    r = qcow2_datafile_alloc(img, off - in, ncl, &host, errp);
    if (r < 0) {
        return r;
    }
    if (!s->luks && in == 0 && n == total) {
        /* Whole clusters from the caller's buffer. */
        r = full_pwrite(qcow2_dfd(img), src, (size_t)total, host);
        if (r < 0) {
            return vimg_error_set(errp, r, "Write failed at host offset %#"
                                  PRIx64 ": %s", host, strerror(-r));
        }
    } else {
        r = get_wbuf(s, errp);
        if (r == 0 && in > 0) {
            r = new_cluster_base(img, first_desc, off - in, s->wbuf, errp);
        }
        if (r == 0 && (in + n) % cs != 0 && (ncl > 1 || in == 0)) {
            r = new_cluster_base(img, last_desc, off - in + total - cs,
                                 s->wbuf + total - cs, errp);
        }
        if (r == 0) {
            r = write_wbuf(img, host, (size_t)total, (size_t)in, src,
                           (size_t)n, errp);
        }
        if (r < 0) {
            return r;
        }
    }
    /* The allocation may have moved the table in the cache. */
    r = get_l2(img, off, true, &t, errp);
    if (r < 0) {
        return r;
    }
    for (i = 0; i < ncl; i++) {
        l2_put(s, t, idx + i, (host + i * cs) | QCOW2_OFLAG_COPIED, 0);
    }
    *done = (size_t)n;
    return 0;
}

int
qcow2_pwrite(struct vimg_image *img, const void *buf, size_t len,
             uint64_t off, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const uint8_t *p = buf;
    int r;

    while (len > 0) {
        size_t n;

        r = write_run(img, off, p, len, &n, errp);
        if (r < 0) {
            return r;
        }
        if (n == 0) {
            n = (size_t)MIN((uint64_t)len,
                            s->cluster_size -
                            qcow2_offset_into_cluster(s, off));
            r = write_cluster(img, off, p, n, errp);
            if (r < 0) {
                return r;
            }
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Make one cluster piece read as zeroes. */
static int
zero_cluster(struct vimg_image *img, uint64_t off, size_t n,
             struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t in = (size_t)qcow2_offset_into_cluster(s, off);
    uint64_t idx = qcow2_l2_index(s, off), desc, bm;
    struct qcow2_table *t;
    int r;

    /* Without a backing image a missing L2 table reads as zeroes. */
    r = get_l2(img, off, s->backing != NULL, &t, errp);
    if (r < 0 || !t) {
        return r;
    }
    if (!(s->l1[qcow2_l1_index(s, off)] & QCOW2_OFLAG_COPIED)) {
        /* An L2 table shared with a snapshot is copied first. */
        r = get_l2(img, off, true, &t, errp);
        if (r < 0) {
            return r;
        }
    }
    l2_get(s, t, idx, &desc, &bm);

    if ((desc & QCOW2_OFLAG_COMPRESSED) && s->has_data_file) {
        return vimg_error_set(errp, -EIO, "Compressed cluster entry found in "
                              "image with external data file (guest "
                              "offset %#" PRIx64 ")", off);
    }
    if (desc & QCOW2_OFLAG_COMPRESSED) {
        if (n < s->cluster_size || s->hdr.version < 3) {
            return write_cluster(img, off, NULL, n, errp);
        }
        r = add_pending_free(s, desc, errp);
        if (r < 0) {
            return r;
        }
        l2_put(s, t, idx, s->extended_l2 ? 0 : QCOW2_OFLAG_ZERO,
               s->extended_l2 ? 0xffffffff00000000ULL : 0);
        return 0;
    }
    if ((desc & QCOW2_OFLAG_COPIED) == 0 && (desc & QCOW2_OFFSET_MASK) &&
        !s->has_data_file) {
        return qcow2_snapshot_cow_zero(img, off, n, errp);
    }

    if (s->extended_l2) {
        uint32_t scs = s->subcluster_size;
        unsigned sc;

        for (sc = (unsigned)(in / scs); sc * scs < in + n; sc++) {
            size_t a = MAX(in, (size_t)sc * scs);
            size_t b = MIN(in + n, (size_t)(sc + 1) * scs);

            if ((bm & (1ULL << (32 + sc))) ||
                (!(bm & (1ULL << sc)) && !s->backing)) {
                continue;       /* reads zero already */
            }
            if (b - a == scs) {
                bm &= ~(1ULL << sc);
                bm |= 1ULL << (32 + sc);
                l2_put(s, t, idx, desc, bm);
            } else {
                r = write_cluster(img, off - in + a, NULL, b - a, errp);
                if (r < 0) {
                    return r;
                }
                /* write_cluster may have moved the cache entry. */
                r = get_l2(img, off, false, &t, errp);
                if (r < 0) {
                    return r;
                }
                l2_get(s, t, idx, &desc, &bm);
            }
        }
        return 0;
    }

    if ((desc & QCOW2_OFLAG_ZERO) && s->hdr.version >= 3) {
        return 0;
    }
    if (!qcow2_l2_allocated(s, desc)) {
        if (!s->backing) {
            return 0;
        }
        if (n == s->cluster_size && s->hdr.version >= 3) {
            l2_put(s, t, idx, QCOW2_OFLAG_ZERO, 0);
            return 0;
        }
        return write_cluster(img, off, NULL, n, errp);
    }
    if (n == s->cluster_size && s->hdr.version >= 3) {
        /* Keep the allocation, set the zero flag. */
        l2_put(s, t, idx, desc | QCOW2_OFLAG_ZERO, 0);
        return 0;
    }
    return write_cluster(img, off, NULL, n, errp);
}

int
qcow2_zero(struct vimg_image *img, uint64_t off, uint64_t len,
           unsigned flags, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t start = off, total = len;
    int r;

    while (len > 0) {
        size_t n = (size_t)MIN(len, s->cluster_size -
                               qcow2_offset_into_cluster(s, off));

        r = zero_cluster(img, off, n, errp);
        if (r < 0) {
            return r;
        }
        off += n;
        len -= n;
    }
    return qcow2_datafile_zeroed(img, start, total, errp);
}

/* ---- metadata flush ------------------------------------------------------ */

int
qcow2_write_l1_at(struct vimg_image *img, const uint64_t *l1, uint32_t n,
                  uint64_t offset, struct vimg_error **errp)
{
    /* Exactly the entries, like qemu (bytes past l1_size are ignored). */
    size_t bytes = (size_t)n * 8;
    uint8_t *buf = calloc(1, bytes ? bytes : 1);
    uint32_t i;
    int r;

    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < n; i++) {
        st_be64(buf + (size_t)i * 8, l1[i]);
    }
    r = full_pwrite(img->fd, buf, bytes, offset);
    free(buf);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the L1 table: %s",
                              strerror(-r));
    }
    return 0;
}

int
qcow2_write_zeroes(struct vimg_image *img, uint64_t off, uint64_t len,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    memset(s->bounce, 0, s->cluster_size);
    while (len > 0) {
        size_t n = (size_t)MIN(len, (uint64_t)s->cluster_size);
        int r = full_pwrite(img->fd, s->bounce, n, off);

        if (r < 0) {
            return vimg_error_set(errp, r, "Write failed at host offset %#"
                                  PRIx64 ": %s", off, strerror(-r));
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int
write_l1_dirty(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint32_t lo = s->l1_dirty_lo, hi = s->l1_dirty_hi, i;
    uint8_t *buf;
    int r;

    if (lo >= hi) {
        return 0;
    }
    buf = malloc((size_t)(hi - lo) * 8);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = lo; i < hi; i++) {
        st_be64(buf + (size_t)(i - lo) * 8, s->l1[i]);
    }
    r = full_pwrite(img->fd, buf, (size_t)(hi - lo) * 8,
                    s->hdr.l1_table_offset + (uint64_t)lo * 8);
    free(buf);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the L1 table: %s",
                              strerror(-r));
    }
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    return qcow2_sync(img, errp);
}

int
qcow2_metadata_flush(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t i;
    int r;

    r = qcow2_refcount_flush(img, errp);
    if (r < 0) {
        return r;
    }
    for (i = 0; i < QCOW2_L2_CACHE_SIZE; i++) {
        if (s->l2_cache[i].dirty) {
            r = qcow2_table_write(img, true, &s->l2_cache[i], errp);
            if (r < 0) {
                return r;
            }
        }
    }
    /* Also tables written by cache evictions since the last sync: the L1
     * entries pointing to them must not reach the disk first. */
    if (s->l2_unsynced) {
        r = qcow2_sync(img, errp);
        if (r < 0) {
            return r;
        }
        s->l2_unsynced = false;
    }
    r = write_l1_dirty(img, errp);
    if (r < 0) {
        return r;
    }
    if (s->pending_n > 0) {
        /* No table on disk points to these compressed clusters any more. */
        for (i = 0; i < s->pending_n; i += 2) {
            r = qcow2_update_refcount(img, s->pending_free[i],
                                      s->pending_free[i + 1], -1, errp);
            if (r < 0) {
                return r;
            }
        }
        s->pending_n = 0;
        s->dbuf_entry = 0;
        r = qcow2_refcount_flush(img, errp);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* ---- make empty (commit) ------------------------------------------------- */

/* Queue host range [@start, @start + @len) to be released after the next
 * L2 write-out (merged with the previous range when adjacent). */
static int
pending_push(struct qcow2_state *s, uint64_t start, uint64_t len,
             struct vimg_error **errp)
{
    if (s->pending_n >= 2 &&
        s->pending_free[s->pending_n - 2] + s->pending_free[s->pending_n - 1]
            == start &&
        qcow2_offset_into_cluster(s, start) == 0) {
        s->pending_free[s->pending_n - 1] += len;
        return 0;
    }
    if (s->pending_n + 2 > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 64;
        uint64_t *p = realloc(s->pending_free, cap * sizeof(uint64_t));

        if (!p) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        s->pending_free = p;
        s->pending_cap = cap;
    }
    s->pending_free[s->pending_n++] = start;
    s->pending_free[s->pending_n++] = len;
    return 0;
}

/* Release the storage an L2 entry points to (after the next flush). */
static int
release_entry(struct qcow2_state *s, uint64_t desc, struct vimg_error **errp)
{
    uint64_t host = desc & QCOW2_OFFSET_MASK;

    if (desc & QCOW2_OFLAG_COMPRESSED) {
        return add_pending_free(s, desc, errp);
    }
    if (host == 0 || s->has_data_file) {
        return 0;               /* data file clusters have no refcounts */
    }
    /* A cluster shared with a snapshot (no OFLAG_COPIED) just loses the
     * active layer's reference: the snapshot keeps the others. */
    return pending_push(s, host, s->cluster_size, errp);
}

int
qcow2_make_empty(struct vimg_image *img, struct vimg_error **errp)
{
    return qcow2_release_from(img, 0, errp);
}

int
qcow2_release_from(struct vimg_image *img, uint64_t from,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t entries = 1ULL << s->l2_bits, j;
    uint64_t first = from >> s->cluster_bits;
    uint32_t i;
    int r;

    for (i = (uint32_t)(first >> s->l2_bits); i < s->l1_size; i++) {
        uint64_t l2off = s->l1[i] & QCOW2_OFFSET_MASK;
        struct qcow2_table *t;

        if (l2off == 0) {
            continue;
        }
        if (qcow2_offset_into_cluster(s, l2off)) {
            return vimg_error_set(errp, -EIO,
                                  "L2 table offset %#" PRIx64 " unaligned "
                                  "(L1 index: %#" PRIx32 ")", l2off, i);
        }
        if (!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
            /* Shared with a snapshot: the active layer gets its own copy
             * first, the snapshot keeps the original. */
            r = qcow2_snapshot_unshare_l2(img, i, &t, errp);
        } else {
            r = qcow2_cache_get(img, true, l2off, true, &t, errp);
        }
        if (r < 0) {
            return r;
        }
        j = i == first >> s->l2_bits ? first & (entries - 1) : 0;
        for (; j < entries; j++) {
            uint64_t desc, bm;

            l2_get(s, t, j, &desc, &bm);
            if (desc == 0 && bm == 0) {
                continue;
            }
            r = release_entry(s, desc, errp);
            if (r < 0) {
                return r;
            }
            l2_put(s, t, j, 0, 0);
        }
    }
    return qcow2_metadata_flush(img, errp);
}

/* ---- preallocation (create) ----------------------------------------------- */

/*
 * Point the L2 entries of guest clusters [@g, @g + @n) (inside one L2
 * table) at host clusters from @host on; @host == 0 allocates them now,
 * after the L2 table (the order qemu's metadata preallocation uses).
 */
static int
prealloc_link(struct vimg_image *img, uint64_t g, uint64_t n, uint64_t host,
              uint64_t *end, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t off = g << s->cluster_bits, idx = qcow2_l2_index(s, off), j;
    struct qcow2_table *t;
    int r;

    r = get_l2(img, off, true, &t, errp);
    if (r == 0 && host == 0) {
        r = qcow2_datafile_alloc(img, off, n, &host, errp);
        if (r == 0) {
            /* The allocation may have evicted the table. */
            r = get_l2(img, off, false, &t, errp);
        }
    }
    if (r < 0) {
        return r;
    }
    for (j = 0; j < n; j++) {
        l2_put(s, t, idx + j,
               (host + (j << s->cluster_bits)) | QCOW2_OFLAG_COPIED, 0);
    }
    *end = MAX(*end, host + (n << s->cluster_bits));
    return 0;
}

int
qcow2_preallocate(struct vimg_image *img, int mode, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t nclusters = DIV_ROUND_UP(img->size, s->cluster_size);
    uint64_t per_l2 = 1ULL << s->l2_bits, g, n, start = 0, end = 0, last;
    struct stat st;
    int r;

    if (mode == QCOW2_PREALLOC_OFF || nclusters == 0) {
        return 0;
    }
    if (s->has_data_file && mode != QCOW2_PREALLOC_METADATA) {
        /* The data file gets the space; clusters map to themselves. */
        r = mode == QCOW2_PREALLOC_FALLOC
            ? file_preallocate(s->data_fd, 0, nclusters << s->cluster_bits)
            : file_punch_zero(s->data_fd, 0, nclusters << s->cluster_bits,
                              false);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not preallocate the data "
                                  "file: %s", strerror(-r));
        }
    } else if (mode != QCOW2_PREALLOC_METADATA) {
        /* Refcount structures for everything first (the table moves to
         * the end of the used area), then the data clusters right after
         * them; L2 tables come from the ordinary allocator. */
        r = qcow2_metadata_flush(img, errp);
        if (r == 0) {
            r = qcow2_last_cluster(img, &last, errp);
        }
        if (r == 0) {
            r = qcow2_refcount_area(img, last << s->cluster_bits,
                                    nclusters +
                                    DIV_ROUND_UP(nclusters, per_l2) + 1,
                                    &start, errp);
        }
        if (r == 0) {
            r = qcow2_update_refcount(img, start,
                                      nclusters << s->cluster_bits, 1, errp);
        }
        if (r < 0) {
            return r;
        }
        if (mode == QCOW2_PREALLOC_FALLOC) {
            r = posix_fallocate(img->fd, (off_t)start,
                                (off_t)(nclusters << s->cluster_bits));
            if (r != 0) {
                return vimg_error_set(errp, -r, "Could not preallocate data "
                                      "for the new file: %s", strerror(r));
            }
        } else {
            r = qcow2_write_zeroes(img, start, nclusters << s->cluster_bits,
                                   errp);
            if (r < 0) {
                return r;
            }
        }
    }
    for (g = 0; g < nclusters; g += n) {
        n = MIN(nclusters - g, per_l2 - (g & (per_l2 - 1)));
        r = prealloc_link(img, g, n,
                          start ? start + (g << s->cluster_bits) : 0, &end,
                          errp);
        if (r < 0) {
            return r;
        }
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    if (s->has_data_file) {
        return 0;               /* the data file has its size already */
    }
    /* The file reaches the end of the last data cluster. */
    if (fstat(img->fd, &st) < 0) {
        return vimg_error_set(errp, -errno, "Could not stat the image: %s",
                              strerror(errno));
    }
    if ((uint64_t)st.st_size < end && ftruncate(img->fd, (off_t)end) < 0) {
        return vimg_error_set(errp, -errno, "Could not resize the image: %s",
                              strerror(errno));
    }
    return 0;
}

/* ---- compressed writes --------------------------------------------------- */

/* Raw deflate, window 12 (qemu's); -ENOSPC when it does not fit @cap. */
static ssize_t
deflate_zlib(const uint8_t *in, size_t inlen, uint8_t *out, size_t cap)
{
    z_stream z;
    ssize_t n;
    int r;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)inlen;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    r = deflate(&z, Z_FINISH);
    n = (ssize_t)(cap - z.avail_out);
    deflateEnd(&z);
    return r == Z_STREAM_END ? n : -ENOSPC;
}

static ssize_t
deflate_zstd(const uint8_t *in, size_t inlen, uint8_t *out, size_t cap)
{
    size_t n = ZSTD_compress(out, cap, in, inlen, ZSTD_CLEVEL_DEFAULT);

    if (ZSTD_isError(n)) {
        return -ENOSPC;
    }
    return (ssize_t)n;
}

/* @size bytes (< one cluster) of file space for compressed data. */
static int
alloc_bytes(struct vimg_image *img, size_t size, uint64_t *out,
            struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t next = s->cbyte_next, in = qcow2_offset_into_cluster(s, next);
    int r;

    if (next != 0 && in != 0 && in + size <= s->cluster_size) {
        uint64_t rc;

        r = qcow2_get_refcount(img, next >> s->cluster_bits, &rc, errp);
        if (r < 0) {
            return r;
        }
        if (rc > 0 && rc < s->refcount_max) {
            r = qcow2_update_refcount(img, next - in, 1, 1, errp);
            if (r < 0) {
                return r;
            }
            *out = next;
            s->cbyte_next = next + size;
            goto done;
        }
    }
    r = qcow2_alloc_clusters(img, 1, out, errp);
    if (r < 0) {
        return r;
    }
    s->cbyte_next = *out + size;
done:
    if (qcow2_offset_into_cluster(s, s->cbyte_next) == 0) {
        s->cbyte_next = 0;
    }
    return 0;
}

int
qcow2_pwrite_compressed(struct vimg_image *img, const void *buf, size_t len,
                        uint64_t off, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const uint8_t *p = buf;
    size_t cs = s->cluster_size;
    uint8_t *pad = NULL, *out = NULL;
    int r = 0;

    if (img->encrypted) {
        return vimg_error_set(errp, -ENOTSUP, "Compression and encryption "
                              "not supported at the same time");
    }
    if (s->has_data_file) {
        return vimg_error_set(errp, -ENOTSUP, "Compression is not supported "
                              "with an external data file");
    }
    pad = malloc(cs);
    out = malloc(cs);
    if (!pad || !out) {
        free(pad);
        free(out);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    while (len > 0 && r == 0) {
        size_t n = (size_t)MIN((uint64_t)len,
                               cs - qcow2_offset_into_cluster(s, off));
        const uint8_t *in = p;
        uint64_t idx = qcow2_l2_index(s, off), desc, bm, coff, nsec;
        struct qcow2_table *t;
        unsigned x = 62 - (s->cluster_bits - 8);
        ssize_t clen;

        if (n < cs && (qcow2_offset_into_cluster(s, off) ||
                       off + n != img->size)) {
            /* Part of a cluster: written as it is. */
            r = write_cluster(img, off, p, n, errp);
            goto next;
        }
        if (n < cs) {
            memcpy(pad, p, n);
            memset(pad + n, 0, cs - n);
            in = pad;
        }
        clen = s->hdr.compression_type == QCOW2_COMPRESS_ZSTD
            ? deflate_zstd(in, cs, out, cs - 1)
            : deflate_zlib(in, cs, out, cs - 1);
        if (clen < 0) {
            /* Does not shrink: an ordinary cluster. */
            r = write_cluster(img, off, p, n, errp);
            goto next;
        }
        r = get_l2(img, off, true, &t, errp);
        if (r < 0) {
            break;
        }
        l2_get(s, t, idx, &desc, &bm);
        r = release_entry(s, desc, errp);
        if (r == 0) {
            r = alloc_bytes(img, (size_t)clen, &coff, errp);
        }
        if (r == 0) {
            r = full_pwrite(img->fd, out, (size_t)clen, coff);
            if (r < 0) {
                r = vimg_error_set(errp, r, "Write failed at host offset %#"
                                   PRIx64 ": %s", coff, strerror(-r));
            }
        }
        if (r == 0) {
            r = get_l2(img, off, true, &t, errp);
        }
        if (r < 0) {
            break;
        }
        nsec = ((coff + (uint64_t)clen - 1) >> 9) - (coff >> 9);
        l2_put(s, t, idx, QCOW2_OFLAG_COMPRESSED | (nsec << x) | coff, 0);
next:
        p += n;
        off += n;
        len -= n;
    }
    free(pad);
    free(out);
    return r;
}
