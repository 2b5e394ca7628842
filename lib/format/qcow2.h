/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 (docs/interop/qcow2.txt as of QEMU 7.2, versions 2 and 3): the
 * private state shared by the files of the qcow2 driver.
 *
 *   qcow2.c          header + extensions: parse, validate, write; open,
 *                    create, close, info, truncate, flush, the ops table
 *   qcow2-cluster.c  the metadata table cache (L2 tables and refcount
 *                    blocks), L1/L2 address translation, reads
 *                    (plain, zero, compressed, extended L2), writes with
 *                    copy-on-write of partial clusters, zero, block status
 *   qcow2-refcount.c refcount table and blocks, the cluster allocator
 *   qcow2-crypt.c    LUKS inside qcow2 (crypt_method 2): the FDE header
 *                    extension region, key handling, data en/decryption
 *   qcow2-datafile.c external data files: name extension, opening the
 *                    file, host offset = guest offset, data_file_raw
 *
 * Metadata write ordering (crash safety without a journal): refcount
 * blocks reach the disk (and are synced) before any L2 table that points
 * to newly allocated clusters, and L2 tables before the L1 entries that
 * point to them.  Refcounts are never decreased before the last reference
 * is gone from disk, so a crash can leak clusters but never corrupt.
 */
#ifndef VIMG_QCOW2_H
#define VIMG_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "blockcrypt/luks1.h"

struct json_object;

#define QCOW2_MAGIC 0x514649fbU

/* Header fields and limits (qemu-facts.md 1.1). */
#define QCOW2_V2_HEADER_LEN        72
#define QCOW2_V3_HEADER_LEN        104
#define QCOW2_V3_WRITTEN_LEN       112     /* what qemu 7.2 writes */
#define QCOW2_MIN_CLUSTER_BITS     9
#define QCOW2_MAX_CLUSTER_BITS     21
#define QCOW2_MAX_L1_BYTES         (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES   (8u * 1024 * 1024)
#define QCOW2_MAX_BACKING_NAME     1023

#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1fULL
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS    (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   (1ULL << 1)

#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_AES  1
#define QCOW2_CRYPT_LUKS 2

#define QCOW2_COMPRESS_ZLIB 0
#define QCOW2_COMPRESS_ZSTD 1

/* Header extension types (qemu-facts.md 1.2). */
#define QCOW2_EXT_END           0x00000000U
#define QCOW2_EXT_BACKING_FMT   0xe2792acaU
#define QCOW2_EXT_FEATURES      0x6803f857U
#define QCOW2_EXT_BITMAPS       0x23852875U
#define QCOW2_EXT_CRYPTO        0x0537be77U
#define QCOW2_EXT_DATA_FILE     0x44415441U

/* L1/L2 entry bits (qemu-facts.md 1.3). */
#define QCOW2_OFLAG_COPIED      (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED  (1ULL << 62)
#define QCOW2_OFLAG_ZERO        (1ULL << 0)
#define QCOW2_OFFSET_MASK       0x00fffffffffffe00ULL
#define QCOW2_L1_RESERVED       0x7f000000000001ffULL
#define QCOW2_L2_RESERVED       0x3f000000000001feULL
#define QCOW2_SUBCLUSTERS       32

/* Caches: number of L2 tables / refcount blocks kept in memory. */
#define QCOW2_L2_CACHE_SIZE     16
#define QCOW2_RB_CACHE_SIZE     8

/* Longest run of clusters one write request allocates or writes at once. */
#define QCOW2_RUN_BYTES         (4u * 1024 * 1024)

/* Header fields as read (native endianness). */
struct qcow2_header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
};

/* One cluster-sized metadata table held in memory. */
struct qcow2_table {
    uint64_t offset;            /* host offset; 0 = slot unused */
    uint64_t lru;               /* last-use stamp */
    bool dirty;
    uint8_t *data;              /* cluster_size bytes */
};

struct qcow2_state {
    struct qcow2_header hdr;
    uint32_t cluster_size;
    uint32_t cluster_bits;
    uint32_t l2_bits;           /* log2(entries per L2 table) */
    uint32_t l2_entry_size;     /* 8, or 16 with extended L2 */
    uint32_t subcluster_size;   /* cluster_size / 32 with extended L2 */
    bool extended_l2;
    uint32_t refcount_bits;
    uint32_t rb_entries;        /* refcounts per refcount block */
    uint64_t refcount_max;

    /* Header extensions of interest. */
    uint64_t crypto_offset;     /* FDE header region (0x0537BE77) */
    uint64_t crypto_length;
    bool has_crypto_ext;

    /* L1 table, whole, in memory; dirty entries [l1_dirty_lo, l1_dirty_hi). */
    uint64_t *l1;
    uint32_t l1_size;
    uint32_t l1_dirty_lo, l1_dirty_hi;

    /* Refcount table, whole, in memory (qemu caps it at 8 MiB). */
    uint64_t *rt;
    uint64_t rt_entries;
    bool rt_dirty;

    struct qcow2_table l2_cache[QCOW2_L2_CACHE_SIZE];
    struct qcow2_table rb_cache[QCOW2_RB_CACHE_SIZE];
    uint64_t lru_clock;
    bool rb_unsynced;           /* refblocks written since the last sync */
    uint64_t free_hint;         /* first cluster index that may be free */

    /* Compressed clusters waiting to be released once the L2 tables that
     * no longer point to them are on disk. */
    uint64_t *pending_free;     /* pairs: host offset, byte count */
    size_t pending_n, pending_cap;

    /* Decompression: the last decompressed cluster. */
    uint8_t *zbuf;              /* compressed input (2 clusters) */
    uint8_t *dbuf;              /* decompressed cluster */
    uint64_t dbuf_entry;        /* L2 descriptor of dbuf's content, 0 = none */

    uint8_t *bounce;            /* one cluster, for COW and encryption */

    /* Encryption (qcow2-crypt.c). */
    struct luks1 *luks;

    /* ---- qcow2-core additions (appended) ---- */
    char *backing_name;         /* backing file name as stored, or NULL */
    char *backing_fmt;          /* backing format extension, or NULL */
    struct vimg_image *backing; /* the open backing image, or NULL */
    uint8_t *cow;               /* one cluster of backing data for COW */
    struct qcowaes *aes;        /* legacy AES (crypt_method 1), or NULL */
    uint64_t cbyte_next;        /* next free byte for compressed data in a
                                   partly used cluster, 0 = none */
    /* Re-encryption (qcow2-reencrypt.c, reencrypt.c). */
    struct reenc *reenc;        /* unfinished vimg reencrypt, or NULL */
    bool stale;                 /* re-encrypted by this handle: reopen */

    /* ---- qcow2 write runs (qcow2-cluster.c) ---- */
    uint8_t *wbuf;              /* QCOW2_RUN_BYTES (or 2 clusters), page
                                   aligned, on demand: composed and
                                   encrypted runs */
    size_t wbuf_size;
    bool l2_unsynced;           /* L2 tables written since the last sync */
    struct qcow2_bitmaps *bitmaps; /* tracked persistent bitmaps, or NULL */

    /* ---- external data file (qcow2-datafile.c) ---- */
    char *data_file;            /* name from extension 0x44415441, or NULL */
    bool has_data_file;         /* incompatible bit 2 */
    bool data_raw;              /* autoclear bit 1, with has_data_file */
    int data_fd;                /* the open data file, -1 if none (NO_IO) */
};

/** qcow2_put_header_tail - the v3 header fields (version >= 3) into @buf;
 *  returns the offset where header extensions start. */
size_t qcow2_put_header_tail(uint8_t *buf, const struct qcow2_header *h,
                             uint32_t version);

/* ---- small helpers ---- */

static inline uint64_t
qcow2_offset_into_cluster(const struct qcow2_state *s, uint64_t off)
{
    return off & (s->cluster_size - 1);
}

static inline uint64_t
qcow2_l1_index(const struct qcow2_state *s, uint64_t off)
{
    return off >> (s->cluster_bits + s->l2_bits);
}

static inline uint64_t
qcow2_l2_index(const struct qcow2_state *s, uint64_t off)
{
    return (off >> s->cluster_bits) & ((1ULL << s->l2_bits) - 1);
}

/** qcow2_l1_entries_for - L1 entries needed for a virtual size. */
uint64_t qcow2_l1_entries_for(uint32_t cluster_bits, uint32_t l2_bits,
                              uint64_t size);

/* ---- qcow2.c ---- */

/**
 * qcow2_parse_header - decode and validate a header cluster.
 * @buf: the first @len bytes of the file (len >= 72).
 * @s: receives hdr, the derived geometry and the crypto extension.
 * @rw: the image is opened for writing (a corrupt image is refused).
 * Messages are qemu's ("Unsupported qcow2 version 4", "Header extension too
 * large", ...).  Return: 0, -EINVAL, -ENOTSUP.
 */
int qcow2_parse_header(struct qcow2_state *s, const uint8_t *buf, size_t len,
                       bool rw, struct vimg_error **errp);

/**
 * qcow2_feature_table - write the feature name table qemu writes (header
 * extension 0x6803f857, without the extension header) into @buf when @len
 * is large enough.  Return: its length in bytes.
 */
size_t qcow2_feature_table(uint8_t *buf, size_t len);

/** qcow2_compat_version - 2 for "0.10"/"v2", 3 for "1.1"/"v3", else 0. */
int qcow2_compat_version(const char *compat);

/** qcow2_sync - fdatasync the image file. */
int qcow2_sync(struct vimg_image *img, struct vimg_error **errp);

/* ---- qcow2-refcount.c ---- */

/** qcow2_refcount_init - load the refcount table (validated, capped). */
int qcow2_refcount_init(struct vimg_image *img, struct vimg_error **errp);
void qcow2_refcount_free(struct qcow2_state *s);
/** qcow2_get_refcount - refcount of the cluster at host cluster index @ci. */
int qcow2_get_refcount(struct vimg_image *img, uint64_t ci, uint64_t *out,
                       struct vimg_error **errp);
/**
 * qcow2_update_refcount - add @delta (+1/-1) to the refcounts of every
 * cluster touched by [@off, @off + @len).
 */
int qcow2_update_refcount(struct vimg_image *img, uint64_t off, uint64_t len,
                          int delta, struct vimg_error **errp);
/**
 * qcow2_alloc_clusters - find @n contiguous free clusters, set their
 * refcounts to 1 and return the host offset of the first in *@out.  The
 * file is not extended here; writers extend it by writing.
 */
int qcow2_alloc_clusters(struct vimg_image *img, uint64_t n, uint64_t *out,
                         struct vimg_error **errp);
/** qcow2_refcount_flush - write dirty refcount blocks and table, then sync. */
int qcow2_refcount_flush(struct vimg_image *img, struct vimg_error **errp);
/**
 * qcow2_change_refcount_order - rewrite the refcount table and blocks with
 * 2^@order-bit entries (amend -o refcount_bits).  The new structures are
 * written past the last used cluster and synced, then one header write
 * switches to them; the old ones are free from then on.  A count that does
 * not fit the new width is refused (qemu's message) before any write.
 */
int qcow2_change_refcount_order(struct vimg_image *img, uint32_t order,
                                struct vimg_error **errp);

/* ---- qcow2-cluster.c ---- */

/*
 * The ops of the same names (see struct vimg_format_ops): requests are in
 * range and aligned to img->alignment (512 when encrypted).  Zero keeps
 * clusters allocated and sets the v3 zero flag (or zero subcluster bits);
 * block status reports ZERO for unallocated and zero clusters, DATA|OFFSET
 * for plain data, DATA alone for compressed or encrypted data.
 */

/**
 * qcow2_cache_get - the cached table at host @offset (@l2: L2 cache, else
 * refcount-block cache).  @load: read it from disk on a miss, otherwise it
 * starts zeroed (a new table), even when the offset is still cached.  Evicting a dirty L2 table writes the
 * refcount blocks first.  The pointer is valid until the next cache call.
 */
int qcow2_cache_get(struct vimg_image *img, bool l2, uint64_t offset,
                    bool load, struct qcow2_table **out,
                    struct vimg_error **errp);
/**
 * qcow2_cache_forget - drop the cached L2 table at host @offset, if any,
 * without writing it: the cluster was freed, so nothing points to it and
 * its cached content must neither be found again nor written over
 * whatever the cluster holds next.
 */
void qcow2_cache_forget(struct qcow2_state *s, uint64_t offset);
/** qcow2_table_write - write one cached table and clear its dirty flag. */
int qcow2_table_write(struct vimg_image *img, bool l2, struct qcow2_table *t,
                      struct vimg_error **errp);

int qcow2_cluster_init(struct vimg_image *img, struct vimg_error **errp);
void qcow2_cluster_free(struct qcow2_state *s);
int qcow2_pread(struct vimg_image *img, void *buf, size_t len, uint64_t off,
                struct vimg_error **errp);
int qcow2_pwrite(struct vimg_image *img, const void *buf, size_t len,
                 uint64_t off, struct vimg_error **errp);
int qcow2_zero(struct vimg_image *img, uint64_t off, uint64_t len,
               unsigned flags, struct vimg_error **errp);
int qcow2_block_status(struct vimg_image *img, uint64_t off, uint64_t len,
                       uint64_t *pnum, unsigned *status, uint64_t *host,
                       struct vimg_error **errp);
/**
 * qcow2_metadata_flush - write every dirty metadata table in the safe
 * order (refblocks, sync, L2 tables, sync, L1, sync) and release pending
 * compressed clusters.
 */
int qcow2_metadata_flush(struct vimg_image *img, struct vimg_error **errp);
/**
 * qcow2_write_l1_at - write @n L1 entries (big-endian) at host @offset
 * (a grown L1 table); exactly n * 8 bytes, as qemu writes them.
 */
int qcow2_write_l1_at(struct vimg_image *img, const uint64_t *l1,
                      uint32_t n, uint64_t offset, struct vimg_error **errp);
/**
 * qcow2_release_from - unallocate every guest cluster from guest offset
 * @from (cluster aligned) to the end of the L1 table, then flush the
 * metadata; qcow2_make_empty() is qcow2_release_from(img, 0).
 */
int qcow2_release_from(struct vimg_image *img, uint64_t from,
                       struct vimg_error **errp);
/** qcow2_write_zeroes - write zeroes over [@off, @off + @len) of the file. */
int qcow2_write_zeroes(struct vimg_image *img, uint64_t off, uint64_t len,
                       struct vimg_error **errp);

/* ---- qcow2-crypt.c ---- */

/* Encryption requested at creation time (parsed before anything is written). */
struct qcow2_crypt_params {
    uint32_t method;                    /* QCOW2_CRYPT_NONE, _AES or _LUKS */
    struct luks1_create_params luks;
    char *pw;                           /* safe memory, NUL-terminated */
    size_t pwlen;
};

/**
 * qcow2_crypt_open - handle crypt_method and the encrypt.* open options:
 * loads the LUKS header from the FDE region and unlocks it unless
 * VIMG_OPEN_NO_IO.
 */
int qcow2_crypt_open(struct vimg_image *img, struct vimg_opts *opts,
                     struct vimg_secrets *secrets, struct vimg_error **errp);
void qcow2_crypt_close(struct qcow2_state *s);
/**
 * qcow2_crypt_parse_create_opts - take the encryption creation options
 * (encryption, encrypt.*) in qemu's order and fetch the passphrase.
 * Errors use qemu's wording ("Parameter 'encrypt.key-secret' is required
 * for cipher", ...).  Release @p with qcow2_crypt_params_clear().
 */
int qcow2_crypt_parse_create_opts(struct vimg_opts *opts,
                                  struct vimg_secrets *secrets,
                                  struct qcow2_crypt_params *p,
                                  struct vimg_error **errp);
void qcow2_crypt_params_clear(struct qcow2_crypt_params *p);
/**
 * qcow2_crypt_create - set up LUKS encryption on a freshly created image
 * (opened read-write): allocate and zero the region, point the FDE header
 * extension at it, create the LUKS header + slot 0 inside it.
 */
int qcow2_crypt_create(struct vimg_image *img,
                       const struct qcow2_crypt_params *p,
                       struct vimg_error **errp);
/** qcow2_encrypt/decrypt - in place; IV sector = @host_off / 512. */
int qcow2_encrypt(struct qcow2_state *s, uint64_t host_off, void *buf,
                  size_t len, struct vimg_error **errp);
int qcow2_decrypt(struct qcow2_state *s, uint64_t host_off, void *buf,
                  size_t len, struct vimg_error **errp);
/** qcow2_encrypt_from - from @in into @out (not overlapping). */
int qcow2_encrypt_from(struct qcow2_state *s, uint64_t host_off, void *out,
                       const void *in, size_t len, struct vimg_error **errp);
/** qcow2_crypt_info - the "encrypt" object of the format-specific data. */
int qcow2_crypt_info(struct qcow2_state *s, struct json_object **out,
                     struct vimg_error **errp);

/**
 * qcow2_rewrite_header - rewrite cluster 0 from the state (fields plus
 * extensions in qemu's order); used at creation time.
 */
int qcow2_rewrite_header(struct vimg_image *img, struct vimg_error **errp);
/* Read cluster 0 (cluster_size bytes, zero past EOF) into buf. */
int qcow2_read_header_cluster(struct vimg_image *img, uint8_t *buf,
                              struct vimg_error **errp);

/* ---- qcow2-check.c (engineer qcow2-check) ---- */

/**
 * qcow2_check - the check op (see vimg_check()): recount every reference
 * from the metadata (header, L1/L2 of the active layer and of the
 * snapshots, snapshot table, refcount table and blocks, the LUKS region,
 * bitmaps) in memory bounded by the metadata size, compare with the
 * refcounts on disk and check OFLAG_COPIED, with qemu-img's messages;
 * repair leaks and corruptions when @fix asks.  Reads the metadata from
 * the file, never decrypts: works on VIMG_OPEN_NO_IO handles.
 */
int qcow2_check(struct vimg_image *img, unsigned fix,
                struct vimg_check_result *res, vimg_check_report_fn report,
                void *opaque, struct vimg_error **errp);

/* ---- qcow2-core: backing files, legacy AES, compression (engineer qcow2-core) ---- */

struct qcowaes;

/**
 * qcow2_read_backing - read guest range [@off, @off + @len) of the backing
 * image into @buf: zeroes without a backing image and beyond its end.
 */
int qcow2_read_backing(struct vimg_image *img, void *buf, size_t len,
                       uint64_t off, struct vimg_error **errp);
/**
 * qcow2_make_empty - drop every cluster of the active layer (L2 entries
 * become unallocated, data and compressed clusters are freed), so the
 * image reads as its backing file again (qemu-img commit without -d).
 */
int qcow2_make_empty(struct vimg_image *img, struct vimg_error **errp);
/**
 * qcow2_set_backing - point the header at backing file @name (NULL or ""
 * removes it) with format extension @fmt (may be NULL), keeping the other
 * extensions; the open backing image is not changed.
 */
int qcow2_set_backing(struct vimg_image *img, const char *name,
                      const char *fmt, struct vimg_error **errp);
/**
 * qcow2_pwrite_compressed - write whole clusters compressed (zlib raw
 * deflate window 12 or zstd), falling back to a plain write for a cluster
 * that does not shrink and for parts of clusters (the last cluster of the
 * image, ending at the virtual size, counts as whole).
 */
int qcow2_pwrite_compressed(struct vimg_image *img, const void *buf,
                            size_t len, uint64_t off,
                            struct vimg_error **errp);

/* ---- qcow2-datafile.c: external data files ---- */

#define QCOW2_MAX_DATA_FILE_NAME 4095

/**
 * qcow2_dfd - the file that holds guest data: the external data file if
 * the image has one, else the image file itself.
 */
static inline int
qcow2_dfd(const struct vimg_image *img)
{
    const struct qcow2_state *s = img->priv;

    return s->has_data_file ? s->data_fd : img->fd;
}

/**
 * qcow2_l2_allocated - whether L2 descriptor @desc (standard, not
 * compressed) has a host cluster.  With a data file host offset 0 is a
 * real cluster, marked by OFLAG_COPIED (qemu's rule).
 */
static inline bool
qcow2_l2_allocated(const struct qcow2_state *s, uint64_t desc)
{
    return (desc & QCOW2_OFFSET_MASK) != 0 ||
           (s->has_data_file && (desc & QCOW2_OFLAG_COPIED));
}

/**
 * qcow2_datafile_ext - take the data file name extension (@len bytes,
 * no NUL): "Data file name too long" / "... contains a NUL byte".
 */
int qcow2_datafile_ext(struct qcow2_state *s, const uint8_t *data,
                       uint32_t len, struct vimg_error **errp);
/**
 * qcow2_datafile_open - after the header is parsed: check the bits and
 * open the data file (unless VIMG_OPEN_NO_IO) by the stored name, as
 * given (qemu 7.2 opens it relative to the working directory), or by the
 * "data-file.filename" open option.  Errors name the file.
 */
int qcow2_datafile_open(struct vimg_image *img, struct vimg_opts *opts,
                        struct vimg_error **errp);
void qcow2_datafile_close(struct qcow2_state *s);
/**
 * qcow2_datafile_alloc - host clusters for @n new data clusters from
 * guest offset @guest (cluster aligned): with a data file the host offset
 * is the guest offset and no refcounts are kept; otherwise the ordinary
 * allocator.
 */
int qcow2_datafile_alloc(struct vimg_image *img, uint64_t guest, uint64_t n,
                         uint64_t *host, struct vimg_error **errp);
/**
 * qcow2_datafile_check_host - with a data file, a data cluster must sit at
 * its guest offset (qemu: -EIO and the same complaint).
 */
int qcow2_datafile_check_host(const struct qcow2_state *s, uint64_t host,
                              uint64_t guest, struct vimg_error **errp);
/**
 * qcow2_datafile_zeroed - data_file_raw: after [@off, @off + @len) became
 * zero clusters, write zeroes there in the data file so it stays a valid
 * raw image.
 */
int qcow2_datafile_zeroed(struct vimg_image *img, uint64_t off, uint64_t len,
                          struct vimg_error **errp);
/** qcow2_datafile_truncate - grow or shrink the data file to @size. */
int qcow2_datafile_truncate(struct vimg_image *img, uint64_t size,
                            struct vimg_error **errp);
/**
 * qcow2_datafile_create - create (truncate) the data file @name of @size
 * bytes, as qemu-img create does, and record it in the state of the new
 * image; the header is rewritten by the caller.
 */
int qcow2_datafile_create(struct vimg_image *img, const char *name,
                          bool raw, uint64_t size, struct vimg_error **errp);
/** qcow2_datafile_info - "data-file"/"data-file-raw" of the qcow2 data. */
void qcow2_datafile_info(const struct qcow2_state *s,
                         struct json_object *data);

/* qemu-img amend data_file=NAME|"" and data_file_raw=off. */
struct qcow2_datafile_amend {
    bool set_name;              /* data_file given */
    const char *name;           /* the new name (borrowed), NULL: none */
    bool clear_raw;             /* data_file_raw=off on a raw image */
};

/**
 * qcow2_datafile_amend_parse - take data_file/data_file_raw from @opts
 * with qemu's rules and messages ("data-file can only be set for images
 * that use an external data file", "data-file-raw cannot be set on
 * existing images").
 */
int qcow2_datafile_amend_parse(struct vimg_image *img, struct vimg_opts *opts,
                               struct qcow2_datafile_amend *a,
                               struct vimg_error **errp);
/**
 * qcow2_datafile_amend_apply - the new name into the state (the caller
 * rewrites the header when @a->set_name) and the raw bit cleared on disk.
 */
int qcow2_datafile_amend_apply(struct vimg_image *img,
                               const struct qcow2_datafile_amend *a,
                               struct vimg_error **errp);
/**
 * qcow2_datafile_insert_ext - insert the data file name extension of the
 * state at @at of a header being built in @buf (@off: its current end,
 * @cs: cluster size).  Return: the new end, 0 if it does not fit.
 */
size_t qcow2_datafile_insert_ext(const struct qcow2_state *s, uint8_t *buf,
                                 size_t at, size_t off, size_t cs);

/* ---- qcow2-snapshot.c (engineer qcow2-snapshot) ---- */

#define QCOW2_MAX_SNAPSHOTS        65536
#define QCOW2_MAX_SNAPSHOTS_SIZE   (64u * 1024 * 1024)
#define QCOW2_MAX_SNAPSHOT_EXTRA   1024

/* One snapshot table entry as read (qemu-facts.md 1.5). */
struct qcow2_snap {
    uint64_t l1_offset;
    uint32_t l1_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;     /* the 64-bit extra field when present */
    uint64_t disk_size;         /* the image size when not recorded */
    int64_t icount;             /* -1 when not recorded */
    uint32_t extra_size;        /* extra data size as stored */
    uint8_t *extra_unknown;     /* extra bytes past the known 24, kept */
    uint32_t unknown_len;
    char *id, *name;            /* NUL-terminated copies */
};

struct qcow2_snap_table {
    struct qcow2_snap *v;
    uint32_t n;
    uint64_t bytes;             /* size of the table on disk */
};

/**
 * qcow2_snapshot_read_table - read and validate the snapshot table the
 * header points to, with qemu's limits and messages ("Snapshot table too
 * large", "Snapshot table offset invalid", "Too much extra metadata in
 * snapshot table entry N ...", "Snapshot table is too big").  Snapshot L1
 * tables are validated when used.  Free with qcow2_snapshot_table_free().
 */
int qcow2_snapshot_read_table(struct vimg_image *img,
                              struct qcow2_snap_table *t,
                              struct vimg_error **errp);
void qcow2_snapshot_table_free(struct qcow2_snap_table *t);
/** qcow2_snapshot_info - add the "snapshots" array to @info (if any). */
int qcow2_snapshot_info(struct vimg_image *img, struct json_object *info,
                        struct vimg_error **errp);
/* The snapshot ops of vimg_format_qcow2 (see struct vimg_format_ops). */
int qcow2_snapshot_list(struct vimg_image *img, struct vimg_snapshot **out,
                        size_t *n, struct vimg_error **errp);
int qcow2_snapshot_create(struct vimg_image *img, const char *name,
                          struct vimg_error **errp);
int qcow2_snapshot_delete(struct vimg_image *img, const char *id,
                          const char *name, struct vimg_error **errp);
int qcow2_snapshot_apply(struct vimg_image *img, const char *id_or_name,
                         struct vimg_error **errp);
int qcow2_snapshot_load(struct vimg_image *img, const char *id,
                        const char *name, struct vimg_error **errp);
/**
 * qcow2_snapshot_unshare_l2 - called by the write path for an active L1
 * entry without OFLAG_COPIED: copy the L2 table shared with a snapshot to
 * a new cluster (the old one loses a reference once the new L1 entry is on
 * disk) and return it in *@out, or just set the flag when the refcount is
 * 1 after all.
 */
int qcow2_snapshot_unshare_l2(struct vimg_image *img, uint32_t l1_index,
                              struct qcow2_table **out,
                              struct vimg_error **errp);
/**
 * qcow2_snapshot_cow_write - write @n bytes of @src (NULL: zeroes) at
 * guest @off inside one data cluster whose L2 entry lacks OFLAG_COPIED
 * (shared with a snapshot): the cluster is copied to a new one (decrypted
 * and re-encrypted for LUKS), the entry switched, then the write goes
 * through qcow2_pwrite()/qcow2_zero() again.
 */
int qcow2_snapshot_cow_write(struct vimg_image *img, uint64_t off,
                             const void *src, size_t n,
                             struct vimg_error **errp);
/**
 * qcow2_snapshot_cow_zero - zero [@off, @off + @n) inside one shared data
 * cluster: a whole cluster (v3) just becomes a zero entry and drops its
 * reference; a part goes through qcow2_snapshot_cow_write().
 */
int qcow2_snapshot_cow_zero(struct vimg_image *img, uint64_t off, size_t n,
                            struct vimg_error **errp);

/**
 * qcow2_aes_crypt - legacy AES (crypt_method 1) en/decryption in place;
 * IV sector = @guest / 512 (the GUEST offset, qemu-facts.md 1.7).
 */
int qcow2_aes_crypt(struct qcow2_state *s, bool enc, uint64_t guest,
                    void *buf, size_t len, struct vimg_error **errp);

/**
 * qcow2_aes_reenc_decrypt - read path of a legacy AES image whose migration
 * to LUKS is unfinished (s->reenc, s->aes and the journal's header in
 * s->luks): new key with host-offset IVs below the journal's boundary, the
 * AES key with guest-sector IVs above.  @host and @guest: where the @len
 * bytes lie in the file and in the guest.
 */
int qcow2_aes_reenc_decrypt(struct qcow2_state *s, uint64_t host,
                            uint64_t guest, void *buf, size_t len,
                            struct vimg_error **errp);

/* ---- qcow2-amend.c ---- */

/**
 * qcow2_reencrypt - the reencrypt callback (qcow2-reencrypt.c): new LUKS
 * master key for every data cluster of the image and its snapshots.
 */
int qcow2_reencrypt(struct vimg_image *img, struct vimg_opts *opts,
                    struct vimg_secrets *secrets, bool force,
                    vimg_progress_fn progress, void *opaque,
                    struct vimg_error **errp);
/**
 * qcow2_crypt_writable - 0, or the error for changing data of an image
 * whose re-encryption is unfinished (or that this handle re-encrypted).
 */
int qcow2_crypt_writable(struct vimg_image *img, struct vimg_error **errp);

/** qcow2_amend - the amend callback: the encrypt.* (LUKS key slot) options. */
int qcow2_amend(struct vimg_image *img, struct vimg_opts *opts,
                struct vimg_secrets *secrets, bool force,
                struct vimg_error **errp);

/* ---- qcow2-finish: preallocation, shrinking, measure ---- */

#define QCOW2_PREALLOC_OFF      0
#define QCOW2_PREALLOC_METADATA 1
#define QCOW2_PREALLOC_FALLOC   2
#define QCOW2_PREALLOC_FULL     3

/**
 * qcow2_preallocate - preallocate guest clusters [0, img->size) of a new
 * image as qemu's create does: metadata (L2 tables, each followed by its
 * data clusters, file extended to the end), or falloc/full (a refcount
 * area with a new table at the end of the used clusters, the data right
 * after it, fallocated or written with zeroes, then the L2 tables).
 */
int qcow2_preallocate(struct vimg_image *img, int mode,
                      struct vimg_error **errp);
/**
 * qcow2_refcount_area - write a new refcount table at @start (cluster
 * aligned, free up to the end of the file), preceded by the refcount
 * blocks missing to cover everything up to @additional clusters past the
 * new structures; the old table is freed.  *@end: the first byte after.
 */
int qcow2_refcount_area(struct vimg_image *img, uint64_t start,
                        uint64_t additional, uint64_t *end,
                        struct vimg_error **errp);
/** qcow2_last_cluster - 1 + the index of the last cluster in use, or 0. */
int qcow2_last_cluster(struct vimg_image *img, uint64_t *out,
                       struct vimg_error **errp);

/**
 * qcow2_crypt_parse_measure_opts - qcow2_crypt_parse_create_opts() for
 * measure: the same checks and messages, but no passphrase is fetched
 * (@p->pw stays NULL).
 */
int qcow2_crypt_parse_measure_opts(struct vimg_opts *opts,
                                   struct qcow2_crypt_params *p,
                                   struct vimg_error **errp);

/* ---- qcow2-bitmap.c: persistent dirty bitmaps kept valid ---- */

struct qcow2_bitmaps;

/**
 * qcow2_bitmaps_open - on a read-write open of an image with the bitmaps
 * autoclear bit: mark every bitmap in use and start tracking writes.
 * *@keep: QCOW2_AUTOCLEAR_BITMAPS when the bitmaps are followed (the bit
 * stays), 0 when vimg cannot follow them (the caller clears the bit).
 */
int qcow2_bitmaps_open(struct vimg_image *img, uint64_t *keep,
                       struct vimg_error **errp);
/** qcow2_bitmaps_note - guest range [@off, @off + @len) was changed. */
void qcow2_bitmaps_note(struct vimg_image *img, uint64_t off, uint64_t len);
/** qcow2_bitmaps_flush - set the noted ranges in the enabled bitmaps. */
int qcow2_bitmaps_flush(struct vimg_image *img, struct vimg_error **errp);
/** qcow2_bitmaps_close - clear the in-use flags if all was stored; free. */
void qcow2_bitmaps_close(struct vimg_image *img);
/**
 * qcow2_bitmaps_resize_check - before a resize: qemu's error for a bitmap
 * that was inconsistent (in use) at open, else store the noted bits.
 */
int qcow2_bitmaps_resize_check(struct vimg_image *img,
                               struct vimg_error **errp);
/**
 * qcow2_bitmaps_resize - after the image went from @old_size to img->size:
 * every bitmap gets the table size of the new size (bits past the smaller
 * size cleared, data past the new end freed), as qemu stores them.
 */
int qcow2_bitmaps_resize(struct vimg_image *img, uint64_t old_size,
                         struct vimg_error **errp);

extern const struct vimg_format_ops vimg_format_qcow2;

#endif /* VIMG_QCOW2_H */
