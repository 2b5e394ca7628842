/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The qcow version 1 image format, as QEMU 7.2's "qcow" driver reads and
 * writes it (qemu-facts.md section 3), with legacy AES encryption from
 * lib/blockcrypt/qcowaes.c (section 2).
 *
 * Layout: a 48-byte big-endian header, an optional backing file name, the
 * L1 table (l1_size big-endian 64-bit offsets of L2 tables), L2 tables of
 * 2^l2_bits entries and data clusters of 2^cluster_bits bytes.  Entries are
 * plain byte offsets (0 = unallocated); an L2 entry with bit 63 set is a
 * compressed cluster whose byte length sits in the cluster_bits bits below
 * bit 63 (raw deflate, window 12, never encrypted).  There are no
 * refcounts: new L2 tables and data clusters are appended at the end of the
 * file, rounded up to the cluster size, and nothing is ever freed.
 *
 * Encrypted images use AES-128-CBC per 512-byte sector with IV = guest
 * sector, so they need 512-byte requests (img->alignment = 512).  When a
 * new cluster is only partly written, the rest of it is stored as
 * encrypted zeroes (an unencrypted hole would decrypt to garbage).  There
 * is no password check: a wrong key reads garbage, exactly like qemu.
 *
 * Backing files: the name follows the header (no format is stored, so the
 * backing image is probed, as qemu does); unallocated clusters read from
 * it (zeroes past its end), a partly written new cluster is filled from it
 * first, and zeroing writes zeroes.  Images created with a backing file
 * use 512-byte clusters and 4096-entry L2 tables, as qemu-img makes them.
 *
 * Compressed writes (convert -c) deflate each whole cluster (raw deflate,
 * window 12, as qemu) and append it at the end of the file rounded up to
 * a sector (qemu sees the length in whole sectors); a
 * cluster that does not shrink, or one already allocated, is written
 * plainly.  Encrypted images refuse compression: qcow stores compressed
 * clusters unencrypted.
 *
 * Deliberate limits: resize is refused as qemu refuses it ("Image format
 * driver does not support resize": no truncate callback); rebase (safe
 * and -u) fails as qemu's does, "Could not change the backing file to
 * 'NAME': Operation not supported" (no set_backing; a safe rebase has
 * written the differing clusters by then, as qemu's has).  commit empties
 * the image as qemu's qcow driver does (qcow_make_empty below).
 *
 * Write ordering: a new L2 table is written (zeroed) before the L1 entry
 * that points to it; data is written before the L2 entries that point to
 * it (L2 entries are collected in the cache and written once per request).
 */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zlib.h>

#include "blockcrypt/qcowaes.h"
#include "bytes.h"
#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"

#define QCOW_MAGIC            "QFI\xfb"
#define QCOW_VERSION          1
#define QCOW_HEADER_SIZE      48
#define QCOW_CRYPT_NONE       0
#define QCOW_CRYPT_AES        1
#define QCOW_COMPRESSED       (UINT64_C(1) << 63)
#define QCOW_MAX_BACKING_NAME 1023
#define QCOW_SECTOR           512
/* qemu refuses L1 tables of more than INT_MAX / 8 entries. */
#define QCOW_MAX_L1_ENTRIES   ((uint64_t)INT_MAX / sizeof(uint64_t))
/*
 * An L1 table larger than this must lie inside the file, so a hostile
 * header cannot make us allocate more than the file's size (qemu created
 * images always contain their whole L1 table).
 */
#define QCOW_L1_UNCHECKED_MAX (32u * 1024 * 1024)
#define QCOW_L2_CACHE         16
#define QCOW_RUN_MAX          (1024 * 1024)   /* en/decryption chunk */

/* Creation geometry (qemu-img create without a backing file). */
#define QCOW_CREATE_CLUSTER_BITS 12
#define QCOW_CREATE_L2_BITS      9
/* ... and with one (small clusters: less copying from the backing file). */
#define QCOW_BACKED_CLUSTER_BITS 9
#define QCOW_BACKED_L2_BITS      12

struct qcow_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t mtime;
    uint64_t size;
    uint8_t cluster_bits;
    uint8_t l2_bits;
    uint32_t crypt_method;
    uint64_t l1_table_offset;
};

struct qcow_l2 {
    uint64_t offset;            /* file offset of the table, 0 = free slot */
    uint64_t *entries;          /* host byte order */
    uint64_t used;              /* LRU stamp */
    uint32_t dirty_lo;          /* dirty entries [lo, hi); lo == hi: clean */
    uint32_t dirty_hi;
};

struct qcow_state {
    struct qcow_header hdr;
    uint32_t cluster_size;
    uint32_t l2_entries;
    uint64_t l1_size;
    uint64_t *l1;               /* host byte order */
    struct qcow_l2 l2[QCOW_L2_CACHE];
    uint64_t l2_clock;
    uint64_t file_end;          /* next allocation, before rounding up */
    struct qcowaes *aes;        /* NULL if plain or opened without a key */
    char *backing;              /* backing file name, or NULL */
    struct vimg_image *backing_img; /* the open backing image, or NULL */
    uint8_t *bounce;            /* QCOW_RUN_MAX bytes, on demand */
    uint8_t *zbuf;              /* compressed input, cluster_size bytes */
    uint8_t *cluster_cache;     /* last decompressed cluster */
    uint64_t cluster_cache_entry; /* its L2 entry, 0 = empty */
};

/* What a guest cluster maps to. */
enum qcow_kind {
    QCOW_UNALLOCATED,
    QCOW_DATA,
    QCOW_COMPRESSED_CLUSTER,
};

/* ---- header ------------------------------------------------------------- */

static void
header_decode(const uint8_t *b, struct qcow_header *h)
{
    h->version = ld_be32(b + 4);
    h->backing_file_offset = ld_be64(b + 8);
    h->backing_file_size = ld_be32(b + 16);
    h->mtime = ld_be32(b + 20);
    h->size = ld_be64(b + 24);
    h->cluster_bits = b[32];
    h->l2_bits = b[33];
    h->crypt_method = ld_be32(b + 36);
    h->l1_table_offset = ld_be64(b + 40);
}

static void
header_encode(const struct qcow_header *h, uint8_t *b)
{
    memset(b, 0, QCOW_HEADER_SIZE);
    memcpy(b, QCOW_MAGIC, 4);
    st_be32(b + 4, h->version);
    st_be64(b + 8, h->backing_file_offset);
    st_be32(b + 16, h->backing_file_size);
    st_be32(b + 20, h->mtime);
    st_be64(b + 24, h->size);
    b[32] = h->cluster_bits;
    b[33] = h->l2_bits;
    st_be32(b + 36, h->crypt_method);
    st_be64(b + 40, h->l1_table_offset);
}

static int
qcow_probe(const uint8_t *buf, size_t len, const char *filename)
{
    if (len >= 8 && memcmp(buf, QCOW_MAGIC, 4) == 0 &&
        ld_be32(buf + 4) == QCOW_VERSION) {
        return 100;
    }
    return 0;
}

/*
 * Check the header fields in qemu's order, with qemu's messages.
 * On success *l1_size is the number of L1 entries.
 */
static int
header_check(const struct qcow_header *h, uint64_t *l1_size,
             struct vimg_error **errp)
{
    uint64_t span, l1;
    unsigned shift;

    if (h->version != QCOW_VERSION) {
        if (h->version == 2 || h->version == 3) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "qcow (v1) does not support qcow version %"
                                  PRIu32 "\nTry the 'qcow2' driver instead.",
                                  h->version);
        }
        return vimg_error_set(errp, -ENOTSUP,
                              "qcow (v1) does not support qcow version %"
                              PRIu32, h->version);
    }
    if (h->size <= 1) {
        return vimg_error_set(errp, -EINVAL, "Image size is too small (must "
                              "be at least 2 bytes)");
    }
    if (h->cluster_bits < 9 || h->cluster_bits > 16) {
        return vimg_error_set(errp, -EINVAL,
                              "Cluster size must be between 512 and 64k");
    }
    /* The L2 table is 2^(l2_bits + 3) bytes. */
    if (h->l2_bits < 6 || h->l2_bits > 13) {
        return vimg_error_set(errp, -EINVAL,
                              "L2 table size must be between 512 and 64k");
    }
    if (h->crypt_method > QCOW_CRYPT_AES) {
        return vimg_error_set(errp, -EINVAL,
                              "invalid encryption method in qcow header");
    }
    shift = (unsigned)h->cluster_bits + h->l2_bits;    /* 15..29 */
    span = UINT64_C(1) << shift;
    if (h->size > UINT64_MAX - span) {
        return vimg_error_set(errp, -EINVAL, "Image too large");
    }
    l1 = (h->size + span - 1) >> shift;
    if (l1 > QCOW_MAX_L1_ENTRIES) {
        return vimg_error_set(errp, -EINVAL, "Image too large");
    }
    *l1_size = l1;
    return 0;
}

/* ---- option handling ---------------------------------------------------- */

/*
 * The "encrypt.*" open options.  qemu accepts "format" (must agree with
 * the header) and "key-secret"; other encrypt.* keys are refused on
 * encrypted images and silently ignored on plain ones (as qemu 7.2 does).
 * *key_id receives the secret id or NULL.
 */
static int
take_encrypt_opts(struct vimg_opts *opts, bool encrypted, const char **key_id,
                  struct vimg_error **errp)
{
    const char *fmt = vimg_opts_take(opts, "encrypt.format");
    size_t i, n;

    *key_id = vimg_opts_take(opts, "encrypt.key-secret");
    if (fmt) {
        if (!encrypted) {
            return vimg_error_set(errp, -EINVAL,
                                  "No encryption in image header, but options "
                                  "specified format '%s'", fmt);
        }
        if (strcmp(fmt, "aes") != 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "Header reported 'aes' encryption format but "
                                  "options specify '%s'", fmt);
        }
    }
    n = vimg_opts_count(opts);
    for (i = 0; i < n; i++) {
        const char *key = vimg_opts_key(opts, i);

        if (strncmp(key, "encrypt.", 8) != 0) {
            continue;
        }
        if (encrypted && strcmp(key, "encrypt.format") != 0 &&
            strcmp(key, "encrypt.key-secret") != 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter '%s' is unexpected", key + 8);
        }
        vimg_opts_take(opts, key);
    }
    return 0;
}

/* Build the AES handle from secret @id. */
static int
aes_from_secret(struct vimg_secrets *secrets, const char *id,
                struct qcowaes **out, struct vimg_error **errp)
{
    char *pw = NULL;
    size_t pwlen = 0;
    int r;

    if (!secrets) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'", id);
    }
    r = secret_get_password(secrets, id, &pw, &pwlen, errp);
    if (r < 0) {
        return r;
    }
    r = qcowaes_new(pw, pwlen, out, errp);
    safe_free(pw);
    return r;
}

/* ---- L2 cache ----------------------------------------------------------- */

static size_t
l2_bytes(const struct qcow_state *s)
{
    return (size_t)s->l2_entries * sizeof(uint64_t);
}

static int
io_error(struct vimg_error **errp, int r, const char *what, uint64_t off)
{
    return vimg_error_set(errp, r, "Could not %s at offset %" PRIu64 ": %s",
                          what, off, strerror(-r));
}

/* Whether [off, off + len) is a representable file range. */
static bool
file_range_ok(uint64_t off, uint64_t len)
{
    uint64_t end;

    return !ADD_OVERFLOW(off, len, &end) && end <= INT64_MAX;
}

/* Write the dirty entries of one cached table. */
static int
l2_writeback(struct vimg_image *img, struct qcow_l2 *t,
             struct vimg_error **errp)
{
    uint32_t lo = t->dirty_lo, hi = t->dirty_hi, i;
    uint64_t be[512];
    int r;

    while (lo < hi) {
        uint32_t n = MIN(hi - lo, (uint32_t)ARRAY_SIZE(be));

        for (i = 0; i < n; i++) {
            st_be64(&be[i], t->entries[lo + i]);
        }
        r = full_pwrite(img->fd, be, n * sizeof(uint64_t),
                        t->offset + (uint64_t)lo * sizeof(uint64_t));
        if (r < 0) {
            return io_error(errp, r, "write L2 table",
                            t->offset + (uint64_t)lo * sizeof(uint64_t));
        }
        lo += n;
    }
    t->dirty_lo = t->dirty_hi = 0;
    return 0;
}

static int
l2_flush_all(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    size_t i;
    int r;

    for (i = 0; i < QCOW_L2_CACHE; i++) {
        if (s->l2[i].offset && s->l2[i].dirty_lo < s->l2[i].dirty_hi) {
            r = l2_writeback(img, &s->l2[i], errp);
            if (r < 0) {
                return r;
            }
        }
    }
    return 0;
}

/* Forget every cached table (after a failed write: drop unwritten entries). */
static void
l2_drop_all(struct qcow_state *s)
{
    size_t i;

    for (i = 0; i < QCOW_L2_CACHE; i++) {
        s->l2[i].offset = 0;
        s->l2[i].dirty_lo = s->l2[i].dirty_hi = 0;
    }
}

/*
 * The cached table at file offset @off, loading it if needed.  @fresh: the
 * table was just created and is known to be all zero (no read).
 */
static int
l2_get(struct vimg_image *img, uint64_t off, bool fresh, struct qcow_l2 **out,
       struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    struct qcow_l2 *victim = NULL;
    size_t i, bytes = l2_bytes(s);
    int r;

    for (i = 0; i < QCOW_L2_CACHE; i++) {
        struct qcow_l2 *c = &s->l2[i];

        if (c->offset == off) {
            c->used = ++s->l2_clock;
            *out = c;
            return 0;
        }
        /* Victim: a free slot, else the least recently used table. */
        if (!victim || (victim->offset != 0 &&
                        (c->offset == 0 || c->used < victim->used))) {
            victim = c;
        }
    }
    if (!file_range_ok(off, bytes)) {
        return vimg_error_set(errp, -EIO, "L2 table offset %" PRIu64
                              " is out of range", off);
    }
    if (victim->offset && victim->dirty_lo < victim->dirty_hi) {
        r = l2_writeback(img, victim, errp);
        if (r < 0) {
            return r;
        }
    }
    victim->offset = 0;
    if (!victim->entries) {
        victim->entries = malloc(bytes);
        if (!victim->entries) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    if (fresh) {
        memset(victim->entries, 0, bytes);
    } else {
        r = full_pread_zero(img->fd, victim->entries, bytes, off);
        if (r < 0) {
            return io_error(errp, r, "read L2 table", off);
        }
        for (i = 0; i < s->l2_entries; i++) {
            victim->entries[i] = ld_be64(&victim->entries[i]);
        }
    }
    victim->offset = off;
    victim->dirty_lo = victim->dirty_hi = 0;
    victim->used = ++s->l2_clock;
    *out = victim;
    return 0;
}

static void
l2_set(struct qcow_l2 *t, uint32_t idx, uint64_t val)
{
    t->entries[idx] = val;
    if (t->dirty_lo == t->dirty_hi) {
        t->dirty_lo = idx;
        t->dirty_hi = idx + 1;
    } else {
        t->dirty_lo = MIN(t->dirty_lo, idx);
        t->dirty_hi = MAX(t->dirty_hi, idx + 1);
    }
}

/* Reserve @len bytes at the end of the file, cluster aligned. */
static int
alloc_space(struct vimg_image *img, uint64_t len, uint64_t *out,
            struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t off = ROUND_UP(s->file_end, (uint64_t)s->cluster_size);

    if (off < s->file_end || !file_range_ok(off, len)) {
        return vimg_error_set(errp, -EFBIG, "Image file is too large");
    }
    *out = off;
    s->file_end = off + len;
    return 0;
}

/* ---- mapping ------------------------------------------------------------ */

/*
 * Map the guest cluster containing @off.  With @alloc_l2 a missing L2
 * table is created.  Returns the table (NULL if unallocated and !alloc_l2)
 * and the entry index.
 */
static int
map_l2(struct vimg_image *img, uint64_t off, bool alloc_l2,
       struct qcow_l2 **table, uint32_t *idx, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    unsigned cb = s->hdr.cluster_bits;
    uint64_t l1i = off >> (cb + s->hdr.l2_bits);
    uint64_t l2off, be;
    int r;

    *table = NULL;
    *idx = (uint32_t)((off >> cb) & (s->l2_entries - 1));
    if (l1i >= s->l1_size) {
        /* Only the sub-sector tail of a size that is not a multiple of
         * 512 can get here; qemu's virtual size excludes it. */
        return vimg_error_set(errp, -EIO, "Offset %" PRIu64 " is beyond the "
                              "L1 table", off);
    }
    l2off = s->l1[l1i];
    if (l2off == 0) {
        if (!alloc_l2) {
            return 0;
        }
        r = alloc_space(img, l2_bytes(s), &l2off, errp);
        if (r < 0) {
            return r;
        }
        /* A zeroed table first, then the L1 entry that points to it. */
        {
            uint8_t *z = calloc(1, l2_bytes(s));

            if (!z) {
                return vimg_error_set(errp, -ENOMEM, "Out of memory");
            }
            r = full_pwrite(img->fd, z, l2_bytes(s), l2off);
            free(z);
        }
        if (r < 0) {
            return io_error(errp, r, "write L2 table", l2off);
        }
        st_be64(&be, l2off);
        r = full_pwrite(img->fd, &be, sizeof(be),
                        s->hdr.l1_table_offset + l1i * sizeof(uint64_t));
        if (r < 0) {
            return io_error(errp, r, "write L1 table",
                            s->hdr.l1_table_offset + l1i * sizeof(uint64_t));
        }
        s->l1[l1i] = l2off;
        return l2_get(img, l2off, true, table, errp);
    }
    return l2_get(img, l2off, false, table, errp);
}

/* Classify an L2 entry. */
static enum qcow_kind
entry_kind(uint64_t e)
{
    if (e == 0) {
        return QCOW_UNALLOCATED;
    }
    return (e & QCOW_COMPRESSED) ? QCOW_COMPRESSED_CLUSTER : QCOW_DATA;
}

/* Look up the entry of the cluster containing @off (0 if unallocated). */
static int
lookup(struct vimg_image *img, uint64_t off, uint64_t *entry,
       struct vimg_error **errp)
{
    struct qcow_l2 *t;
    uint32_t idx;
    int r;

    r = map_l2(img, off, false, &t, &idx, errp);
    if (r < 0) {
        return r;
    }
    *entry = t ? t->entries[idx] : 0;
    return 0;
}

/* The host offset of a data entry; qemu needs it sector aligned. */
static int
data_offset(uint64_t e, uint64_t *host, struct vimg_error **errp)
{
    if (e % QCOW_SECTOR != 0) {
        return vimg_error_set(errp, -EIO, "Data cluster offset %#" PRIx64
                              " is not sector aligned", e);
    }
    *host = e;
    return 0;
}

/* ---- compressed clusters ------------------------------------------------ */

/* Decompress the cluster of entry @e into s->cluster_cache. */
static int
load_compressed(struct vimg_image *img, uint64_t e, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    unsigned cb = s->hdr.cluster_bits;
    uint64_t off = e & ((UINT64_C(1) << (63 - cb)) - 1);
    size_t csize = (size_t)((e >> (63 - cb)) & (s->cluster_size - 1));
    z_stream zs;
    int r, zr;

    if (s->cluster_cache_entry == e && s->cluster_cache) {
        return 0;
    }
    if (!s->zbuf) {
        s->zbuf = malloc(s->cluster_size);
        if (!s->zbuf) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    if (!s->cluster_cache) {
        s->cluster_cache = malloc(s->cluster_size);
        if (!s->cluster_cache) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    s->cluster_cache_entry = 0;
    if (!file_range_ok(off, csize)) {
        return vimg_error_set(errp, -EIO, "Compressed cluster offset %" PRIu64
                              " is out of range", off);
    }
    r = full_pread_zero(img->fd, s->zbuf, csize, off);
    if (r < 0) {
        return io_error(errp, r, "read compressed cluster", off);
    }
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -12) != Z_OK) {
        return vimg_error_set(errp, -ENOMEM, "Could not initialise zlib");
    }
    zs.next_in = s->zbuf;
    zs.avail_in = (uInt)csize;
    zs.next_out = s->cluster_cache;
    zs.avail_out = s->cluster_size;
    zr = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    /* The stream must fill exactly one cluster. */
    if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || zs.avail_out != 0) {
        return vimg_error_set(errp, -EIO, "Could not decompress the cluster "
                              "at offset %" PRIu64, off);
    }
    s->cluster_cache_entry = e;
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

static void
qcow_close(struct vimg_image *img)
{
    struct qcow_state *s = img->priv;
    size_t i;

    if (!s) {
        return;
    }
    for (i = 0; i < QCOW_L2_CACHE; i++) {
        free(s->l2[i].entries);
    }
    qcowaes_free(s->aes);
    free(s->l1);
    free(s->backing);
    if (s->backing_img) {
        vimg_image_close(s->backing_img, NULL);
    }
    free(s->bounce);
    free(s->zbuf);
    free(s->cluster_cache);
    free(s);
    img->priv = NULL;
}

static int
read_backing_name(struct vimg_image *img, struct qcow_state *s,
                  struct vimg_error **errp)
{
    uint64_t off = s->hdr.backing_file_offset;
    uint32_t len = s->hdr.backing_file_size;
    int r;

    if (off == 0) {
        return 0;
    }
    if (len > QCOW_MAX_BACKING_NAME) {
        return vimg_error_set(errp, -EINVAL, "Backing file name too long");
    }
    if (!file_range_ok(off, len)) {
        return vimg_error_set(errp, -EIO, "Could not read the backing file "
                              "name: offset %" PRIu64 " is out of range", off);
    }
    if (len == 0) {
        return 0;
    }
    s->backing = calloc(1, (size_t)len + 1);
    if (!s->backing) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread_zero(img->fd, s->backing, len, off);
    if (r < 0) {
        return io_error(errp, r, "read the backing file name", off);
    }
    if (s->backing[0] == '\0') {
        free(s->backing);
        s->backing = NULL;
    }
    return 0;
}

static int
qcow_open(struct vimg_image *img, struct vimg_opts *opts,
          struct vimg_secrets *secrets, struct vimg_error **errp)
{
    bool no_io = img->flags & VIMG_OPEN_NO_IO;
    uint8_t buf[QCOW_HEADER_SIZE];
    struct qcow_state *s;
    const char *key_id = NULL;
    uint64_t l1_bytes, i;
    int64_t fsize;
    int r;

    r = full_pread_zero(img->fd, buf, sizeof(buf), 0);
    if (r < 0) {
        return io_error(errp, r, "read the qcow header", 0);
    }
    if (memcmp(buf, QCOW_MAGIC, 4) != 0) {
        return vimg_error_set(errp, -EINVAL, "Image not in qcow format");
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    img->priv = s;
    header_decode(buf, &s->hdr);
    r = header_check(&s->hdr, &s->l1_size, errp);
    if (r < 0) {
        goto fail;
    }
    s->cluster_size = UINT32_C(1) << s->hdr.cluster_bits;
    s->l2_entries = UINT32_C(1) << s->hdr.l2_bits;
    img->encrypted = s->hdr.crypt_method == QCOW_CRYPT_AES;

    r = take_encrypt_opts(opts, img->encrypted, &key_id, errp);
    if (r < 0) {
        goto fail;
    }
    if (img->encrypted && !no_io && !key_id) {
        r = vimg_error_set(errp, -EINVAL, "Parameter 'encrypt.key-secret' is "
                           "required for cipher");
        goto fail;
    }

    /* L1 table: capped, overflow-checked; bytes past EOF read as zero. */
    fsize = file_size(img->fd);
    if (fsize < 0) {
        r = vimg_error_errno(errp, (int)fsize, "Could not stat '%s'",
                             img->filename);
        goto fail;
    }
    s->file_end = (uint64_t)fsize;
    l1_bytes = s->l1_size * sizeof(uint64_t);
    if (!file_range_ok(s->hdr.l1_table_offset, l1_bytes)) {
        r = vimg_error_set(errp, -EIO, "L1 table offset %" PRIu64 " is out "
                           "of range", s->hdr.l1_table_offset);
        goto fail;
    }
    if (l1_bytes > QCOW_L1_UNCHECKED_MAX &&
        s->hdr.l1_table_offset + l1_bytes > (uint64_t)fsize) {
        r = vimg_error_set(errp, -EIO, "L1 table (%" PRIu64 " bytes at offset %"
                           PRIu64 ") is beyond the end of the file",
                           l1_bytes, s->hdr.l1_table_offset);
        goto fail;
    }
    s->l1 = malloc(l1_bytes ? (size_t)l1_bytes : 1);
    if (!s->l1) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    r = full_pread_zero(img->fd, s->l1, (size_t)l1_bytes,
                        s->hdr.l1_table_offset);
    if (r < 0) {
        r = io_error(errp, r, "read L1 table", s->hdr.l1_table_offset);
        goto fail;
    }
    for (i = 0; i < s->l1_size; i++) {
        s->l1[i] = ld_be64(&s->l1[i]);
    }

    r = read_backing_name(img, s, errp);
    if (r < 0) {
        goto fail;
    }
    if (s->backing && (img->flags & VIMG_OPEN_NO_EXTERNAL)) {
        r = vimg_error_set(errp, -EPERM, "The image names a backing file; "
                           "only self-contained images are opened here");
        goto fail;
    }
    if (s->backing) {
        /* Read-only; metadata only when the overlay is, and then a missing
         * backing file is no error (info still works). */
        struct vimg_error *err = NULL;
        char *path = vimg_backing_path(img->filename, s->backing);

        r = path ? vimg_backing_open(path, NULL, opts, secrets,
                                     no_io ? VIMG_OPEN_NO_IO : 0,
                                     &s->backing_img, no_io ? &err : errp)
                 : vimg_error_set(errp, -ENOMEM, "Out of memory");
        free(path);
        vimg_error_free(err);
        if (r < 0 && !no_io) {
            vimg_error_prefix(errp, "Could not open backing file");
            goto fail;
        }
        r = 0;
    }

    if (img->encrypted && !no_io) {
        r = aes_from_secret(secrets, key_id, &s->aes, errp);
        if (r < 0) {
            goto fail;
        }
    }
    /* qemu: total_sectors = size / 512. */
    img->size = s->hdr.size / QCOW_SECTOR * QCOW_SECTOR;
    img->alignment = img->encrypted ? QCOW_SECTOR : 1;
    return 0;

fail:
    qcow_close(img);
    return r;
}

/* ---- data path ---------------------------------------------------------- */

static int
get_bounce(struct qcow_state *s, struct vimg_error **errp)
{
    if (!s->bounce) {
        s->bounce = malloc(QCOW_RUN_MAX);
        if (!s->bounce) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    return 0;
}

/* Read @len bytes of allocated data at @host (guest offset @guest). */
static int
read_data(struct vimg_image *img, uint8_t *buf, size_t len, uint64_t host,
          uint64_t guest, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    int r;

    if (!file_range_ok(host, len)) {
        return vimg_error_set(errp, -EIO, "Data offset %" PRIu64 " is out of "
                              "range", host);
    }
    r = full_pread_zero(img->fd, buf, len, host);
    if (r < 0) {
        return io_error(errp, r, "read data", host);
    }
    if (s->aes) {
        r = qcowaes_decrypt(s->aes, guest / QCOW_SECTOR, buf, len);
        if (r < 0) {
            return vimg_error_errno(errp, r, "Could not decrypt data at "
                                    "offset %" PRIu64, guest);
        }
    }
    return 0;
}

/*
 * Write @len bytes (@src, or zeroes if NULL) at @host for guest offset
 * @guest, encrypting through the bounce buffer if needed.
 */
static int
write_data(struct vimg_image *img, const uint8_t *src, size_t len,
           uint64_t host, uint64_t guest, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    int r;

    if (!file_range_ok(host, len)) {
        return vimg_error_set(errp, -EIO, "Data offset %" PRIu64 " is out of "
                              "range", host);
    }
    if (!s->aes && src) {
        r = full_pwrite(img->fd, src, len, host);
        return r < 0 ? io_error(errp, r, "write data", host) : 0;
    }
    r = get_bounce(s, errp);
    if (r < 0) {
        return r;
    }
    while (len > 0) {
        size_t n = MIN(len, (size_t)QCOW_RUN_MAX);

        if (src) {
            memcpy(s->bounce, src, n);
            src += n;
        } else {
            memset(s->bounce, 0, n);
        }
        if (s->aes) {
            r = qcowaes_encrypt(s->aes, guest / QCOW_SECTOR, s->bounce, n);
            if (r < 0) {
                return vimg_error_errno(errp, r, "Could not encrypt data at "
                                        "offset %" PRIu64, guest);
            }
        }
        r = full_pwrite(img->fd, s->bounce, n, host);
        if (r < 0) {
            return io_error(errp, r, "write data", host);
        }
        host += n;
        guest += n;
        len -= n;
    }
    return 0;
}

static int
qcow_pread(struct vimg_image *img, void *buf, size_t len, uint64_t off,
           struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t cs = s->cluster_size;
    uint8_t *p = buf;
    int r;

    while (len > 0) {
        uint64_t e, host = 0, in = off & (cs - 1);
        size_t n = (size_t)MIN((uint64_t)len, cs - in);
        enum qcow_kind kind;

        r = lookup(img, off, &e, errp);
        if (r < 0) {
            return r;
        }
        kind = entry_kind(e);
        if (kind == QCOW_DATA) {
            r = data_offset(e, &host, errp);
            if (r < 0) {
                return r;
            }
            host += in;
            /* Extend over following clusters that are contiguous on disk. */
            while (n < len && n < QCOW_RUN_MAX) {
                uint64_t e2;

                r = lookup(img, off + n, &e2, errp);
                if (r < 0) {
                    return r;
                }
                if (entry_kind(e2) != QCOW_DATA || e2 != host + n) {
                    break;
                }
                n += (size_t)MIN((uint64_t)(len - n), cs);
            }
            r = read_data(img, p, n, host, off, errp);
            if (r < 0) {
                return r;
            }
        } else if (kind == QCOW_COMPRESSED_CLUSTER) {
            r = load_compressed(img, e, errp);
            if (r < 0) {
                return r;
            }
            memcpy(p, s->cluster_cache + in, n);
        } else {
            r = vimg_backing_pread(s->backing_img, p, n, off, errp);
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

/*
 * Put @n bytes of @src (zeroes if NULL) at @in of the cluster image @full,
 * then write all of it to a new cluster (*@host) for guest @cstart.
 */
static int
write_merged(struct vimg_image *img, uint8_t *full, const uint8_t *src,
             uint64_t in, size_t n, uint64_t cstart, uint64_t *host,
             struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    int r;

    if (src) {
        memcpy(full + in, src, n);
    } else {
        memset(full + in, 0, n);
    }
    r = alloc_space(img, s->cluster_size, host, errp);
    return r < 0 ? r : write_data(img, full, s->cluster_size, *host, cstart,
                                  errp);
}

/*
 * Write one piece inside a single cluster: [@off, @off + @n), @src or
 * zeroes (NULL).  Allocates the L2 table and the cluster if needed.
 */
static int
write_piece(struct vimg_image *img, const uint8_t *src, size_t n,
            uint64_t off, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t cs = s->cluster_size;
    uint64_t in = off & (cs - 1), cstart = off - in, host = 0, e;
    struct qcow_l2 *t;
    uint32_t idx;
    int r;

    r = map_l2(img, off, true, &t, &idx, errp);
    if (r < 0) {
        return r;
    }
    e = t->entries[idx];
    if (entry_kind(e) == QCOW_DATA) {
        r = data_offset(e, &host, errp);
        if (r < 0) {
            return r;
        }
        return write_data(img, src, n, host + in, off, errp);
    }

    /* A new cluster (replacing a compressed one keeps its other bytes). */
    if (entry_kind(e) == QCOW_COMPRESSED_CLUSTER && n < cs) {
        uint8_t *full;

        r = load_compressed(img, e, errp);
        if (r < 0) {
            return r;
        }
        full = malloc(cs);
        if (!full) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        memcpy(full, s->cluster_cache, cs);
        r = write_merged(img, full, src, in, n, cstart, &host, errp);
        free(full);
        if (r < 0) {
            return r;
        }
    } else if (n < cs && s->backing_img) {
        /* Copy-on-write: the rest of the cluster comes from the backing
         * image. */
        uint8_t *full = malloc(cs);

        if (!full) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        r = vimg_backing_pread(s->backing_img, full, cs, cstart, errp);
        if (r == 0) {
            r = write_merged(img, full, src, in, n, cstart, &host, errp);
        }
        free(full);
        if (r < 0) {
            return r;
        }
    } else if (n == cs || !s->aes) {
        r = alloc_space(img, cs, &host, errp);
        if (r < 0) {
            return r;
        }
        if (n < cs && ftruncate(img->fd, (off_t)(host + cs)) < 0) {
            /* The rest of a partly written plain cluster is a hole. */
            return vimg_error_set(errp, -errno, "Could not extend '%s': %s",
                                  img->filename, strerror(errno));
        }
        r = write_data(img, src, n, host + in, off, errp);
        if (r < 0) {
            return r;
        }
    } else {
        /* Encrypted and partial: the rest is stored as encrypted zeroes. */
        uint8_t *full = calloc(1, cs);

        if (!full) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        if (src) {
            memcpy(full + in, src, n);
        }
        r = alloc_space(img, cs, &host, errp);
        if (r == 0) {
            r = write_data(img, full, cs, host, cstart, errp);
        }
        free(full);
        if (r < 0) {
            return r;
        }
    }
    if (s->cluster_cache_entry == e) {
        s->cluster_cache_entry = 0;
    }
    l2_set(t, idx, host);
    return 0;
}

/*
 * The write loop: runs of whole clusters that are newly allocated (or
 * already allocated) and contiguous on disk are written with one call.
 */
static int
do_write(struct vimg_image *img, const uint8_t *src, uint64_t len,
         uint64_t off, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    unsigned l1_shift = (unsigned)s->hdr.cluster_bits + s->hdr.l2_bits;
    uint64_t cs = s->cluster_size;
    int r = 0;

    while (len > 0) {
        uint64_t in = off & (cs - 1);
        size_t n = (size_t)MIN(len, cs - in);
        uint64_t host, e, run_host, run_len;
        struct qcow_l2 *t;
        uint32_t idx;

        r = map_l2(img, off, true, &t, &idx, errp);
        if (r < 0) {
            break;
        }
        e = t->entries[idx];
        if (n < cs || entry_kind(e) == QCOW_COMPRESSED_CLUSTER) {
            r = write_piece(img, src, n, off, errp);
            if (r < 0) {
                break;
            }
            if (src) {
                src += n;
            }
            off += n;
            len -= n;
            continue;
        }
        /* Whole cluster(s): gather a run that is contiguous on disk. */
        run_len = 0;
        run_host = 0;
        while (len - run_len >= cs && run_len < QCOW_RUN_MAX) {
            uint64_t goff = off + run_len;

            /* Stay inside one L2 table: mapping another one could evict
             * (and write back) entries of this run before its data. */
            if (run_len && (goff >> l1_shift) != (off >> l1_shift)) {
                break;
            }
            r = map_l2(img, goff, true, &t, &idx, errp);
            if (r < 0) {
                break;
            }
            e = t->entries[idx];
            if (entry_kind(e) == QCOW_COMPRESSED_CLUSTER) {
                break;
            }
            if (entry_kind(e) == QCOW_DATA) {
                r = data_offset(e, &host, errp);
                if (r < 0) {
                    break;
                }
            } else {
                /* Only extend the run if the new cluster follows it. */
                host = ROUND_UP(s->file_end, cs);
                if (run_len && host != run_host + run_len) {
                    break;
                }
                r = alloc_space(img, cs, &host, errp);
                if (r < 0) {
                    break;
                }
                l2_set(t, idx, host);
            }
            if (run_len == 0) {
                run_host = host;
            } else if (host != run_host + run_len) {
                /* An allocated cluster elsewhere: the next run starts here. */
                break;
            }
            run_len += cs;
        }
        if (r < 0) {
            break;
        }
        r = write_data(img, src, (size_t)run_len, run_host, off, errp);
        if (r < 0) {
            break;
        }
        if (src) {
            src += run_len;
        }
        off += run_len;
        len -= run_len;
    }
    if (r < 0) {
        /* Do not let unwritten clusters become visible. */
        l2_drop_all(s);
        return r;
    }
    return l2_flush_all(img, errp);
}

static int
qcow_pwrite(struct vimg_image *img, const void *buf, size_t len, uint64_t off,
            struct vimg_error **errp)
{
    return do_write(img, buf, len, off, errp);
}

/* Zeroing: unallocated clusters already read as zero without a backing
 * file; with one, zeroes are written. */
static int
qcow_zero(struct vimg_image *img, uint64_t off, uint64_t len, unsigned flags,
          struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t cs = s->cluster_size;
    int r;

    while (len > 0) {
        uint64_t in = off & (cs - 1), e;
        uint64_t n = MIN(len, cs - in);

        r = lookup(img, off, &e, errp);
        if (r < 0) {
            return r;
        }
        if (e != 0 || s->backing_img) {
            r = do_write(img, NULL, n, off, errp);
            if (r < 0) {
                return r;
            }
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int
qcow_flush(struct vimg_image *img, struct vimg_error **errp)
{
    int r = l2_flush_all(img, errp);

    if (r < 0) {
        return r;
    }
    r = file_flush(img->fd);   /* counted by the failpoints */
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not flush '%s': %s",
                              img->filename, strerror(-r));
    }
    return 0;
}

/*
 * make_empty (commit without -d), with qemu's result: the L1 table is
 * written zeroed and synced, then the file ends right after it, so every
 * L2 table and data cluster is gone (a crash in between leaves unused
 * clusters behind, never a reference to a missing one).
 */
static int
qcow_make_empty(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t bytes = s->l1_size * sizeof(uint64_t);
    uint64_t end = s->hdr.l1_table_offset + bytes;
    uint8_t *zero = calloc(1, bytes ? bytes : 1);
    size_t i;
    int r;

    if (!zero) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    /* The cached tables go with the clusters they describe. */
    for (i = 0; i < QCOW_L2_CACHE; i++) {
        s->l2[i].offset = 0;
        s->l2[i].dirty_lo = s->l2[i].dirty_hi = 0;
    }
    s->cluster_cache_entry = 0;
    r = full_pwrite(img->fd, zero, bytes, s->hdr.l1_table_offset);
    free(zero);
    if (r < 0) {
        return io_error(errp, r, "write L1 table", s->hdr.l1_table_offset);
    }
    memset(s->l1, 0, bytes);
    r = file_flush(img->fd);
    if (r == 0) {
        r = file_truncate(img->fd, end);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not empty '%s': %s",
                              img->filename, strerror(-r));
    }
    s->file_end = end;
    return 0;
}

static int
qcow_block_status(struct vimg_image *img, uint64_t off, uint64_t len,
                  uint64_t *pnum, unsigned *status, uint64_t *host_offset,
                  struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    uint64_t cs = s->cluster_size, done = 0, first_host = 0;
    unsigned st = 0;
    int r;

    while (done < len) {
        uint64_t goff = off + done, in = goff & (cs - 1), e, host = 0;
        uint64_t n = MIN(len - done, cs - in);
        unsigned cur;

        r = lookup(img, goff, &e, errp);
        if (r < 0) {
            return r;
        }
        switch (entry_kind(e)) {
        case QCOW_UNALLOCATED:
            /* qemu map: "present": false (not allocated in this layer);
             * zero unless a backing image may hold data there (the
             * chain walk in map/convert asks the backing image). */
            cur = VIMG_BLOCK_UNALLOCATED;
            if (!s->backing_img ||
                goff >= vimg_image_size(s->backing_img)) {
                cur |= VIMG_BLOCK_ZERO;
            }
            break;
        case QCOW_COMPRESSED_CLUSTER:
            cur = VIMG_BLOCK_DATA;
            break;
        default:
            cur = VIMG_BLOCK_DATA;
            if (!img->encrypted && e % QCOW_SECTOR == 0) {
                cur |= VIMG_BLOCK_OFFSET;
                host = e + in;
            }
            break;
        }
        if (done == 0) {
            st = cur;
            first_host = host;
        } else if (cur != st ||
                   ((cur & VIMG_BLOCK_OFFSET) && host != first_host + done)) {
            break;
        }
        done += n;
    }
    *pnum = done;
    *status = st;
    *host_offset = first_host;
    return 0;
}

static int
qcow_info(struct vimg_image *img, struct json_object *info,
          struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    struct json_object *v;

    v = json_object_new_int64(s->cluster_size);
    if (!v || json_object_object_add(info, "cluster-size", v) < 0) {
        json_object_put(v);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (s->backing) {
        char *full = vimg_backing_path(img->filename, s->backing);

        v = full ? json_object_new_string(full) : NULL;
        free(full);
        if (!v ||
            json_object_object_add(info, "full-backing-filename", v) < 0) {
            json_object_put(v);
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        v = json_object_new_string(s->backing);
        if (!v || json_object_object_add(info, "backing-filename", v) < 0) {
            json_object_put(v);
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    return 0;
}

/* ---- compressed writes ---------------------------------------------------- */

/* Raw deflate of one cluster as qemu's qcow driver makes it; 0 and the
 * length, or 1 when the cluster does not shrink. */
static int
deflate_cluster(const uint8_t *in, size_t len, uint8_t *out, size_t *olen)
{
    z_stream zs;
    int zr;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -ENOMEM;
    }
    zs.next_in = (uint8_t *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)len;
    zr = deflate(&zs, Z_FINISH);
    *olen = len - zs.avail_out;
    deflateEnd(&zs);
    return zr == Z_STREAM_END && *olen < len ? 0 : 1;
}

static int
qcow_pwrite_compressed(struct vimg_image *img, const void *buf, size_t len,
                       uint64_t off, struct vimg_error **errp)
{
    struct qcow_state *s = img->priv;
    size_t cs = s->cluster_size, clen;
    const uint8_t *src = buf;
    uint8_t *in = NULL, *out = NULL;
    int r = 0;

    if (s->aes) {
        return vimg_error_set(errp, -ENOTSUP, "Compression is not supported "
                              "for encrypted qcow images (the clusters "
                              "would be stored unencrypted)");
    }
    in = malloc(cs);
    out = malloc(cs);
    if (!in || !out) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    while (r == 0 && len > 0) {
        size_t n = MIN(len, cs);
        struct qcow_l2 *t;
        uint32_t idx;
        uint64_t host;

        memcpy(in, src, n);
        memset(in + n, 0, cs - n);
        r = map_l2(img, off, true, &t, &idx, errp);
        if (r < 0) {
            break;
        }
        if (t->entries[idx] != 0) {
            /* Already allocated: overwrite in place. */
            r = do_write(img, in, n, off, errp);
        } else {
            r = deflate_cluster(in, cs, out, &clen);
            if (r < 0) {
                r = vimg_error_set(errp, r, "Could not initialise zlib");
            } else if (r == 1) {
                r = do_write(img, in, n, off, errp);
            } else {
                /* qemu sees the file length in whole sectors. */
                host = ROUND_UP(s->file_end, (uint64_t)QCOW_SECTOR);
                if (!file_range_ok(host, clen) ||
                    host >= (UINT64_C(1) << (63 - s->hdr.cluster_bits))) {
                    r = vimg_error_set(errp, -EFBIG, "Image file is too "
                                       "large");
                    break;
                }
                r = full_pwrite(img->fd, out, clen, host);
                if (r < 0) {
                    r = io_error(errp, r, "write compressed data", host);
                    break;
                }
                s->file_end = host + clen;
                l2_set(t, idx, host | QCOW_COMPRESSED |
                       ((uint64_t)clen << (63 - s->hdr.cluster_bits)));
                r = l2_flush_all(img, errp);
            }
        }
        src += n;
        off += n;
        len -= n;
    }

out:
    free(in);
    free(out);
    return r;
}

static struct vimg_image *
qcow_backing(struct vimg_image *img)
{
    struct qcow_state *s = img->priv;

    return s->backing_img;
}

/* ---- create ------------------------------------------------------------- */

/* Format names qemu 7.2 knows, for validating backing_fmt. */
static bool
known_qemu_format(const char *name)
{
    static const char *const names[] = {
        "raw", "qcow", "qcow2", "qed", "luks", "vmdk", "vdi", "vpc", "vhdx",
        "parallels", "bochs", "cloop", "dmg", "vvfat", "file", "host_device",
        "host_cdrom", "nbd", "blkdebug", "blkverify", "null-co", "null-aio",
        "throttle", "copy-on-read", "preallocate", "compress", "quorum",
        "ftp", "ftps", "http", "https", "ssh", "nfs", "iscsi", "rbd",
        "gluster",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return vimg_format_known(name);
}

static int
qcow_create(int fd, const char *filename, uint64_t size,
            struct vimg_opts *opts, struct vimg_secrets *secrets,
            struct vimg_error **errp)
{
    const char *backing, *backing_fmt, *fmt, *key_id, *enc_str;
    uint8_t hdrbuf[QCOW_HEADER_SIZE];
    struct qcow_header h;
    struct qcowaes *aes = NULL;
    uint64_t l1_size, l1_bytes, done;
    bool encryption = false;
    uint8_t *zero;
    unsigned shift;
    int r;

    backing = vimg_opts_take(opts, "backing_file");
    backing_fmt = vimg_opts_take(opts, "backing_fmt");
    enc_str = vimg_opts_get(opts, "encryption");
    r = opts_take_bool(opts, "encryption", &encryption, errp);
    if (r < 0) {
        return r;
    }
    fmt = vimg_opts_take(opts, "encrypt.format");
    key_id = vimg_opts_take(opts, "encrypt.key-secret");

    if (backing && !*backing) {
        backing = NULL;
    }
    if (backing && strlen(backing) > QCOW_MAX_BACKING_NAME) {
        return vimg_error_set(errp, -EINVAL, "Backing file name too long");
    }
    if (size == 0) {
        return vimg_error_set(errp, -EINVAL, "Image size is too small, "
                              "cannot be zero length");
    }
    if (enc_str && fmt) {
        return vimg_error_set(errp, -EINVAL, "'encrypt.format' and its alias "
                              "'encryption' can't be used at the same time");
    }
    if (encryption) {
        fmt = "aes";
    }
    if (fmt && strcmp(fmt, "aes") != 0) {
        return vimg_error_set(errp, -EINVAL, "Unsupported encryption format");
    }
    if (!fmt && key_id) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'encrypt.format' is "
                              "missing");
    }
    if (fmt && !key_id) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'encrypt.key-secret' "
                              "is required for cipher");
    }
    if (backing_fmt && !known_qemu_format(backing_fmt)) {
        return vimg_error_set(errp, -EINVAL, "unrecognized backing format "
                              "'%s'", backing_fmt);
    }

    memset(&h, 0, sizeof(h));
    h.cluster_bits = backing ? QCOW_BACKED_CLUSTER_BITS
                             : QCOW_CREATE_CLUSTER_BITS;
    h.l2_bits = backing ? QCOW_BACKED_L2_BITS : QCOW_CREATE_L2_BITS;
    shift = (unsigned)h.cluster_bits + h.l2_bits;
    if (size > UINT64_MAX - (UINT64_C(1) << shift)) {
        return vimg_error_set(errp, -EINVAL, "Image too large");
    }
    l1_size = (size + (UINT64_C(1) << shift) - 1) >> shift;
    /* qemu-img writes such an image but cannot open it again. */
    if (l1_size > QCOW_MAX_L1_ENTRIES) {
        return vimg_error_set(errp, -EINVAL, "Image too large");
    }
    if (fmt) {
        /* Check the secret now (exists, UTF-8), as qemu does. */
        r = aes_from_secret(secrets, key_id, &aes, errp);
        qcowaes_free(aes);
        if (r < 0) {
            return r;
        }
    }

    h.version = QCOW_VERSION;
    h.size = size;
    h.crypt_method = fmt ? QCOW_CRYPT_AES : QCOW_CRYPT_NONE;
    /* Header, backing file name, L1 table at the next multiple of 8. */
    h.l1_table_offset = QCOW_HEADER_SIZE;
    if (backing) {
        h.backing_file_offset = QCOW_HEADER_SIZE;
        h.backing_file_size = (uint32_t)strlen(backing);
        h.l1_table_offset = ROUND_UP(QCOW_HEADER_SIZE + h.backing_file_size,
                                     8);
    }
    header_encode(&h, hdrbuf);
    r = full_pwrite(fd, hdrbuf, sizeof(hdrbuf), 0);
    if (r == 0 && backing) {
        r = full_pwrite(fd, backing, h.backing_file_size, QCOW_HEADER_SIZE);
    }
    if (r < 0) {
        return vimg_error_errno(errp, r, "Could not write the qcow header");
    }

    /* The L1 table, zero-filled in whole 512-byte sectors. */
    l1_bytes = ROUND_UP(l1_size * sizeof(uint64_t), (uint64_t)QCOW_SECTOR);
    zero = calloc(1, (size_t)MIN(l1_bytes, (uint64_t)QCOW_RUN_MAX));
    if (!zero) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (done = 0; done < l1_bytes;) {
        size_t n = (size_t)MIN(l1_bytes - done, (uint64_t)QCOW_RUN_MAX);

        r = full_pwrite(fd, zero, n, h.l1_table_offset + done);
        if (r < 0) {
            free(zero);
            return vimg_error_errno(errp, r, "Could not write the L1 table");
        }
        done += n;
    }
    free(zero);
    return 0;
}

/*
 * qemu-img create -f qcow -o help, in creation-description order (the
 * order of qemu's "Formatting ..." line).
 */
static const struct vimg_opt_desc qcow_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "backing_file", VIMG_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", VIMG_OPT_STRING, "Format of the backing image", NULL },
    { "encryption", VIMG_OPT_BOOL, "Encrypt the image with format 'aes'. "
      "(Deprecated in favor of encrypt.format=aes)", NULL },
    { "encrypt.format", VIMG_OPT_STRING,
      "Encrypt the image, format choices: 'aes'", NULL },
    { "encrypt.key-secret", VIMG_OPT_STRING,
      "ID of the secret that provides the AES encryption key", NULL },
    { NULL, 0, NULL, NULL },
};

const struct vimg_format_ops vimg_format_qcow = {
    .name = "qcow",
    .probe = qcow_probe,
    .open = qcow_open,
    .close = qcow_close,
    .create = qcow_create,
    .create_opts = qcow_create_opts,
    .pread = qcow_pread,
    .pwrite = qcow_pwrite,
    .zero = qcow_zero,
    .flush = qcow_flush,
    .block_status = qcow_block_status,
    .info = qcow_info,
    .backing = qcow_backing,
    .pwrite_compressed = qcow_pwrite_compressed,
    .make_empty = qcow_make_empty,
};
