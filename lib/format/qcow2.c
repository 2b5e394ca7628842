/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 image format, versions 2 and 3 (docs/interop/qcow2.txt of QEMU 7.2;
 * qemu-facts.md section 1): header and header extensions (parse, validate
 * with qemu's messages, write), open, create, close, truncate, flush, info
 * and the ops table.  The data path lives in qcow2-cluster.c, reference
 * counts in qcow2-refcount.c, encryption in qcow2-crypt.c.
 *
 * Existing images are never rewritten wholesale: header changes after
 * creation patch single fields in place (size, L1, refcount table,
 * autoclear bits), so unknown extensions and header bytes survive.
 *
 * Creation follows qemu 7.2's sequence so the files match byte for byte in
 * layout: header (cluster 0), refcount table (1), refcount block (2); then
 * the image is opened and grown to its size, which puts the L1 table at
 * cluster 3; LUKS encryption is set up last (region at cluster 4).
 * External data files live in qcow2-datafile.c.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

/* Feature name table qemu writes (qemu-facts.md 1.2), in its order. */
static const struct {
    uint8_t type, bit;
    const char *name;
} feature_names[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};
#define FEATURE_ENTRY_LEN 48

uint64_t
qcow2_l1_entries_for(uint32_t cluster_bits, uint32_t l2_bits, uint64_t size)
{
    unsigned shift = cluster_bits + l2_bits;

    return (size >> shift) + ((size & ((1ULL << shift) - 1)) != 0);
}

int
qcow2_sync(struct vimg_image *img, struct vimg_error **errp)
{
    const struct qcow2_state *s = img->priv;
    int r;

    /* Guest data in an external data file is durable before the metadata
     * written after this barrier can point to it. */
    if (s && s->has_data_file && s->data_fd >= 0) {
        r = file_flush(s->data_fd);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not flush the data file: "
                                  "%s", strerror(-r));
        }
    }
    r = file_flush(img->fd);   /* counted by the failpoints */
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not flush '%s': %s",
                              img->filename ? img->filename : "image",
                              strerror(-r));
    }
    return 0;
}

/* ---- header parsing ------------------------------------------------------ */

/* Table offset sanity as qemu checks it: aligned, no overflow. */
static bool
table_ok(const struct qcow2_state *s, uint64_t offset, uint64_t entries,
         uint64_t entry_len)
{
    uint64_t bytes;

    if (entries > INT64_MAX / entry_len) {
        return false;
    }
    bytes = entries * entry_len;
    if (offset > INT64_MAX - bytes) {
        return false;
    }
    return qcow2_offset_into_cluster(s, offset) == 0;
}

/*
 * "Unsupported qcow2 feature(s): A, B, Unknown incompatible feature: 20":
 * names come from the image's own feature table where it has them.
 */
static int
unsupported_features(const uint8_t *table, size_t tlen, uint64_t mask,
                     struct vimg_error **errp)
{
    char msg[1024] = "Unsupported qcow2 feature(s): ";
    size_t i, used = strlen(msg);
    bool first = true;

    for (i = 0; table && i + FEATURE_ENTRY_LEN <= tlen;
         i += FEATURE_ENTRY_LEN) {
        const uint8_t *e = table + i;
        char name[47];

        if (e[0] != 0 || e[1] >= 64 || !(mask & (1ULL << e[1]))) {
            continue;
        }
        memcpy(name, e + 2, 46);
        name[46] = '\0';
        used += (size_t)snprintf(msg + used, sizeof(msg) - MIN(used,
                                 sizeof(msg)), "%s%s", first ? "" : ", ",
                                 name);
        used = MIN(used, sizeof(msg) - 1);
        first = false;
        mask &= ~(1ULL << e[1]);
    }
    if (mask) {
        snprintf(msg + used, sizeof(msg) - used,
                 "%sUnknown incompatible feature: %" PRIx64,
                 first ? "" : ", ", mask);
    }
    return vimg_error_set(errp, -ENOTSUP, "%s", msg);
}

/* Walk the header extensions of cluster 0. */
static int
parse_extensions(struct qcow2_state *s, const uint8_t *buf, size_t len,
                 const uint8_t **ftable, size_t *ftlen,
                 struct vimg_error **errp)
{
    const struct qcow2_header *h = &s->hdr;
    int r;
    uint64_t off = h->version >= 3 ? h->header_length : QCOW2_V2_HEADER_LEN;
    uint64_t end = h->backing_file_offset ? h->backing_file_offset
                                          : s->cluster_size;

    end = MIN(end, (uint64_t)len);
    while (off < end && end - off >= 8) {
        uint32_t type = ld_be32(buf + off);
        uint32_t elen = ld_be32(buf + off + 4);
        const uint8_t *data;

        off += 8;
        if (elen > end - off) {
            return vimg_error_set(errp, -EINVAL, "Header extension too large");
        }
        data = buf + off;
        switch (type) {
        case QCOW2_EXT_END:
            return 0;
        case QCOW2_EXT_BACKING_FMT:
            if (elen >= 16) {
                return vimg_error_set(errp, -EINVAL,
                                      "ERROR: ext_backing_format: len=%u too "
                                      "large (>=16)", elen);
            }
            free(s->backing_fmt);
            s->backing_fmt = strndup((const char *)data, elen);
            if (!s->backing_fmt) {
                return vimg_error_set(errp, -ENOMEM, "Out of memory");
            }
            break;
        case QCOW2_EXT_FEATURES:
            *ftable = data;
            *ftlen = elen;
            break;
        case QCOW2_EXT_CRYPTO:
            if (h->crypt_method != QCOW2_CRYPT_LUKS) {
                return vimg_error_set(errp, -EINVAL,
                                      "CRYPTO header extension only expected "
                                      "with LUKS encryption method");
            }
            if (elen != 16) {
                return vimg_error_set(errp, -EINVAL,
                                      "CRYPTO header extension size %u, but "
                                      "expected size 16", elen);
            }
            s->crypto_offset = ld_be64(data);
            s->crypto_length = ld_be64(data + 8);
            if (qcow2_offset_into_cluster(s, s->crypto_offset)) {
                return vimg_error_set(errp, -EINVAL,
                                      "Encryption header offset '%" PRIu64
                                      "' is not a multiple of cluster size "
                                      "'%u'", s->crypto_offset,
                                      s->cluster_size);
            }
            if (s->crypto_offset > INT64_MAX - s->crypto_length) {
                return vimg_error_set(errp, -EINVAL,
                                      "Encryption header offset and length "
                                      "overflow");
            }
            s->has_crypto_ext = true;
            break;
        case QCOW2_EXT_BITMAPS:
            /* nb_bitmaps, reserved, directory size and offset (as qemu). */
            if (elen != 24) {
                return vimg_error_set(errp, -EINVAL,
                                      "bitmaps_ext: Invalid extension length");
            }
            break;
        case QCOW2_EXT_DATA_FILE:
            r = qcow2_datafile_ext(s, data, elen, errp);
            if (r < 0) {
                return r;
            }
            break;
        default:
            break;      /* unknown: kept by rewrites, not needed */
        }
        off += ROUND_UP((uint64_t)elen, 8);
    }
    return 0;
}

int
qcow2_parse_header(struct qcow2_state *s, const uint8_t *buf, size_t len,
                   bool rw, struct vimg_error **errp)
{
    struct qcow2_header *h = &s->hdr;
    const uint8_t *ftable = NULL;
    size_t ftlen = 0;
    uint64_t need;
    int r;

    if (len < QCOW2_V2_HEADER_LEN) {
        return vimg_error_set(errp, -EINVAL, "Image is not in qcow2 format");
    }
    memset(h, 0, sizeof(*h));
    h->magic = ld_be32(buf);
    h->version = ld_be32(buf + 4);
    h->backing_file_offset = ld_be64(buf + 8);
    h->backing_file_size = ld_be32(buf + 16);
    h->cluster_bits = ld_be32(buf + 20);
    h->size = ld_be64(buf + 24);
    h->crypt_method = ld_be32(buf + 32);
    h->l1_size = ld_be32(buf + 36);
    h->l1_table_offset = ld_be64(buf + 40);
    h->refcount_table_offset = ld_be64(buf + 48);
    h->refcount_table_clusters = ld_be32(buf + 56);
    h->nb_snapshots = ld_be32(buf + 60);
    h->snapshots_offset = ld_be64(buf + 64);

    if (h->magic != QCOW2_MAGIC) {
        return vimg_error_set(errp, -EINVAL, "Image is not in qcow2 format");
    }
    if (h->version < 2 || h->version > 3) {
        return vimg_error_set(errp, -ENOTSUP, "Unsupported qcow2 version %u",
                              h->version);
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        return vimg_error_set(errp, -EINVAL, "Unsupported cluster size: 2^%u",
                              h->cluster_bits);
    }
    s->cluster_bits = h->cluster_bits;
    s->cluster_size = 1u << h->cluster_bits;

    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        if (len < QCOW2_V3_HEADER_LEN) {
            return vimg_error_set(errp, -EINVAL, "qcow2 header too short");
        }
        h->incompatible_features = ld_be64(buf + 72);
        h->compatible_features = ld_be64(buf + 80);
        h->autoclear_features = ld_be64(buf + 88);
        h->refcount_order = ld_be32(buf + 96);
        h->header_length = ld_be32(buf + 100);
        if (h->header_length < QCOW2_V3_HEADER_LEN) {
            return vimg_error_set(errp, -EINVAL, "qcow2 header too short");
        }
        if (h->header_length > s->cluster_size) {
            return vimg_error_set(errp, -EINVAL,
                                  "qcow2 header exceeds cluster size");
        }
        /* Optional fields beyond header_length count as zero. */
        if (h->header_length > 104 && len > 104) {
            h->compression_type = buf[104];
        }
    }
    if (h->backing_file_offset > s->cluster_size) {
        return vimg_error_set(errp, -EINVAL, "Invalid backing file offset");
    }
    if (h->backing_file_offset &&
        (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
         h->backing_file_size > s->cluster_size - h->backing_file_offset)) {
        return vimg_error_set(errp, -EINVAL, "Backing file name too long");
    }

    r = parse_extensions(s, buf, len, &ftable, &ftlen, errp);
    if (r < 0) {
        return r;
    }
    if (h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN) {
        return unsupported_features(ftable, ftlen,
                                    h->incompatible_features &
                                    ~QCOW2_INCOMPAT_KNOWN, errp);
    }
    if ((h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) && rw) {
        return vimg_error_set(errp, -EACCES,
                              "qcow2: Image is corrupt; cannot be opened "
                              "read/write");
    }
    if (h->refcount_order > 6) {
        return vimg_error_set(errp, -EINVAL,
                              "Reference count entry width too large; may "
                              "not exceed 64 bits");
    }
    if (h->compression_type > QCOW2_COMPRESS_ZSTD) {
        return vimg_error_set(errp, -ENOTSUP,
                              "qcow2: unknown compression type: %u",
                              h->compression_type);
    }
    if (h->compression_type != QCOW2_COMPRESS_ZLIB &&
        !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        return vimg_error_set(errp, -EINVAL,
                              "qcow2: Compression type incompatible feature "
                              "bit must be set");
    }
    if (h->compression_type == QCOW2_COMPRESS_ZLIB &&
        (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        return vimg_error_set(errp, -EINVAL,
                              "qcow2: Compression type incompatible feature "
                              "bit must not be set");
    }
    if (h->crypt_method > QCOW2_CRYPT_LUKS) {
        return vimg_error_set(errp, -EINVAL, "Unsupported encryption method %u",
                              h->crypt_method);
    }

    s->extended_l2 = h->incompatible_features & QCOW2_INCOMPAT_EXTL2;
    if (s->extended_l2 && s->cluster_bits < 14) {
        return vimg_error_set(errp, -EINVAL,
                              "Extended L2 entries are only supported with "
                              "cluster sizes of at least 16384 bytes");
    }
    s->l2_entry_size = s->extended_l2 ? 16 : 8;
    s->l2_bits = s->cluster_bits - (s->extended_l2 ? 4 : 3);
    s->subcluster_size = s->extended_l2 ? s->cluster_size / QCOW2_SUBCLUSTERS
                                        : s->cluster_size;
    s->refcount_bits = 1u << h->refcount_order;
    s->rb_entries = (uint32_t)((uint64_t)s->cluster_size * 8 /
                               s->refcount_bits);
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                                             : (1ULL << s->refcount_bits) - 1;

    /* Tables: sizes capped before anything is allocated. */
    if (h->size > INT64_MAX) {
        /* qemu's wording: its sector count refresh is what fails. */
        return vimg_error_set(errp, -EFBIG,
                              "Could not refresh total sector count: "
                              "File too large");
    }
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        return vimg_error_set(errp, -EFBIG, "Active L1 table too large");
    }
    need = qcow2_l1_entries_for(s->cluster_bits, s->l2_bits, h->size);
    if (need > INT32_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image is too big");
    }
    if (need > h->l1_size) {
        return vimg_error_set(errp, -EINVAL, "L1 table is too small");
    }
    if (!table_ok(s, h->l1_table_offset, h->l1_size, 8)) {
        return vimg_error_set(errp, -EINVAL, "Active L1 table offset invalid");
    }
    if ((uint64_t)h->refcount_table_clusters * s->cluster_size >
        QCOW2_MAX_REFTABLE_BYTES) {
        return vimg_error_set(errp, -EINVAL, "Reference count table too large");
    }
    if (h->refcount_table_clusters == 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Image does not contain a reference count "
                              "table");
    }
    if (!table_ok(s, h->refcount_table_offset, h->refcount_table_clusters,
                  s->cluster_size)) {
        return vimg_error_set(errp, -EINVAL,
                              "Invalid reference count table offset");
    }
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        return vimg_error_set(errp, -EFBIG, "Snapshot table too large");
    }
    if (!table_ok(s, h->snapshots_offset, h->nb_snapshots, 40)) {
        return vimg_error_set(errp, -EINVAL, "Snapshot table offset invalid");
    }
    return 0;
}

/* ---- header writing ------------------------------------------------------ */

int
qcow2_compat_version(const char *compat)
{
    if (strcmp(compat, "0.10") == 0 || strcmp(compat, "v2") == 0) {
        return 2;
    }
    if (strcmp(compat, "1.1") == 0 || strcmp(compat, "v3") == 0) {
        return 3;
    }
    return 0;
}

size_t
qcow2_feature_table(uint8_t *buf, size_t len)
{
    size_t tlen = ARRAY_SIZE(feature_names) * FEATURE_ENTRY_LEN, i;

    if (!buf || len < tlen) {
        return tlen;
    }
    memset(buf, 0, tlen);
    for (i = 0; i < ARRAY_SIZE(feature_names); i++) {
        uint8_t *e = buf + i * FEATURE_ENTRY_LEN;

        e[0] = feature_names[i].type;
        e[1] = feature_names[i].bit;
        memcpy(e + 2, feature_names[i].name, strlen(feature_names[i].name));
    }
    return tlen;
}

/*
 * Fill the version-dependent part of a header in @buf (the v3 fields when
 * @version >= 3) and return where header extensions start.
 */
size_t
qcow2_put_header_tail(uint8_t *buf, const struct qcow2_header *h,
                      uint32_t version)
{
    if (version >= 3) {
        st_be64(buf + 72, h->incompatible_features);
        st_be64(buf + 80, h->compatible_features);
        st_be64(buf + 88, h->autoclear_features);
        st_be32(buf + 96, h->refcount_order);
        st_be32(buf + 100, QCOW2_V3_WRITTEN_LEN);
        buf[104] = h->compression_type;
        return QCOW2_V3_WRITTEN_LEN;
    }
    return QCOW2_V2_HEADER_LEN;
}

/* Cluster 0 from the state: fields, then extensions in qemu's order. */
static int
build_header(const struct qcow2_state *s, uint8_t *buf,
             struct vimg_error **errp)
{
    const struct qcow2_header *h = &s->hdr;
    size_t off;

    memset(buf, 0, s->cluster_size);
    st_be32(buf, QCOW2_MAGIC);
    st_be32(buf + 4, h->version);
    st_be32(buf + 20, s->cluster_bits);
    st_be64(buf + 24, h->size);
    st_be32(buf + 32, h->crypt_method);
    st_be32(buf + 36, h->l1_size);
    st_be64(buf + 40, h->l1_table_offset);
    st_be64(buf + 48, h->refcount_table_offset);
    st_be32(buf + 56, h->refcount_table_clusters);
    off = qcow2_put_header_tail(buf, h, h->version);
    if (s->backing_name && s->backing_fmt) {
        size_t flen = strlen(s->backing_fmt);

        st_be32(buf + off, QCOW2_EXT_BACKING_FMT);
        st_be32(buf + off + 4, (uint32_t)flen);
        memcpy(buf + off + 8, s->backing_fmt, flen);
        off += 8 + ROUND_UP(flen, 8);
    }
    if (s->data_file) {
        size_t dlen = strlen(s->data_file);

        if (off + 8 + ROUND_UP(dlen, 8) + 8 > s->cluster_size) {
            return vimg_error_set(errp, -EINVAL, "Data file name too long");
        }
        st_be32(buf + off, QCOW2_EXT_DATA_FILE);
        st_be32(buf + off + 4, (uint32_t)dlen);
        memcpy(buf + off + 8, s->data_file, dlen);
        off += 8 + ROUND_UP(dlen, 8);
    }
    if (s->has_crypto_ext) {
        st_be32(buf + off, QCOW2_EXT_CRYPTO);
        st_be32(buf + off + 4, 16);
        st_be64(buf + off + 8, s->crypto_offset);
        st_be64(buf + off + 16, s->crypto_length);
        off += 24;
    }
    if (h->version >= 3 && s->cluster_size > 4096) {
        size_t tlen = qcow2_feature_table(NULL, 0);

        if (off + 8 + tlen + 8 > s->cluster_size) {
            return vimg_error_set(errp, -EINVAL, "Header extensions too large");
        }
        st_be32(buf + off, QCOW2_EXT_FEATURES);
        st_be32(buf + off + 4, (uint32_t)tlen);
        off += 8;
        qcow2_feature_table(buf + off, tlen);
        off += tlen;
    }
    if (off + 8 > s->cluster_size) {
        return vimg_error_set(errp, -EINVAL, "Header extensions too large");
    }
    /* End marker: already zero.  The backing file name follows it. */
    off += 8;
    if (s->backing_name) {
        size_t nlen = strlen(s->backing_name);

        if (nlen > QCOW2_MAX_BACKING_NAME || off + nlen > s->cluster_size) {
            return vimg_error_set(errp, -EINVAL, "Backing file name too long");
        }
        memcpy(buf + off, s->backing_name, nlen);
        st_be64(buf + 8, off);
        st_be32(buf + 16, (uint32_t)nlen);
    }
    return 0;
}

int
qcow2_read_header_cluster(struct vimg_image *img, uint8_t *buf,
                          struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r = full_pread_zero(img->fd, buf, s->cluster_size, 0);

    if (r < 0) {
        return vimg_error_set(errp, r, "Could not read qcow2 header: %s",
                              strerror(-r));
    }
    return 0;
}

int
qcow2_rewrite_header(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint8_t *buf = malloc(s->cluster_size);
    int r;

    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = build_header(s, buf, errp);
    if (r == 0) {
        r = full_pwrite(img->fd, buf, s->cluster_size, 0);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not write the qcow2 header: %s",
                               strerror(-r));
        }
    }
    free(buf);
    if (r == 0) {
        r = qcow2_sync(img, errp);
    }
    return r;
}

/*
 * Rewrite cluster 0 of an existing image for a new backing file: the
 * header fields are kept, the backing format extension comes first (as
 * qemu writes it), every other extension follows verbatim in its old
 * order, then the end marker and the name.
 */
int
qcow2_set_backing(struct vimg_image *img, const char *name, const char *fmt,
                  struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const struct qcow2_header *h = &s->hdr;
    uint64_t hl = h->version >= 3 ? h->header_length : QCOW2_V2_HEADER_LEN;
    uint64_t end = h->backing_file_offset ? h->backing_file_offset
                                          : s->cluster_size;
    size_t cs = s->cluster_size, nlen, flen, off, in;
    uint8_t *old = NULL, *buf = NULL;
    char *nname = NULL, *nfmt = NULL;
    int r;

    if (name && !*name) {
        name = NULL;
    }
    if (!name) {
        fmt = NULL;
    }
    nlen = name ? strlen(name) : 0;
    flen = fmt ? strlen(fmt) : 0;
    if (nlen > QCOW2_MAX_BACKING_NAME) {
        return vimg_error_set(errp, -EINVAL, "Backing file name too long");
    }
    if (flen >= 16) {
        return vimg_error_set(errp, -EINVAL, "Backing format name too long");
    }
    old = malloc(cs);
    buf = calloc(1, cs);
    nname = name ? strdup(name) : NULL;
    nfmt = fmt ? strdup(fmt) : NULL;
    if (!old || !buf || (name && !nname) || (fmt && !nfmt)) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = qcow2_read_header_cluster(img, old, errp);
    if (r < 0) {
        goto out;
    }
    memcpy(buf, old, hl);
    off = hl;
    if (fmt) {
        st_be32(buf + off, QCOW2_EXT_BACKING_FMT);
        st_be32(buf + off + 4, (uint32_t)flen);
        memcpy(buf + off + 8, fmt, flen);
        off += 8 + ROUND_UP(flen, 8);
    }
    in = hl;
    end = MIN(end, (uint64_t)cs);
    while (in + 8 <= end) {
        uint32_t type = ld_be32(old + in);
        uint32_t elen = ld_be32(old + in + 4);
        size_t step = 8 + ROUND_UP((size_t)elen, 8);

        if (type == QCOW2_EXT_END || elen > end - in - 8) {
            break;
        }
        if (type != QCOW2_EXT_BACKING_FMT) {
            if (off + step > cs) {
                r = vimg_error_set(errp, -EINVAL, "Header extensions too "
                                   "large");
                goto out;
            }
            memcpy(buf + off, old + in, 8 + elen);
            off += step;
        }
        in += step;
    }
    off += 8;                   /* end marker (zero) */
    if (off + nlen > cs) {
        r = vimg_error_set(errp, -EINVAL, "Backing file name too long");
        goto out;
    }
    st_be64(buf + 8, name ? off : 0);
    st_be32(buf + 16, (uint32_t)nlen);
    if (name) {
        memcpy(buf + off, name, nlen);
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        goto out;
    }
    r = full_pwrite(img->fd, buf, cs, 0);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not write the qcow2 header: %s",
                           strerror(-r));
        goto out;
    }
    r = qcow2_sync(img, errp);
    if (r < 0) {
        goto out;
    }
    free(s->backing_name);
    free(s->backing_fmt);
    s->backing_name = nname;
    s->backing_fmt = nfmt;
    nname = nfmt = NULL;
    s->hdr.backing_file_offset = name ? off : 0;
    s->hdr.backing_file_size = (uint32_t)nlen;

out:
    free(old);
    free(buf);
    free(nname);
    free(nfmt);
    return r;
}

/* ---- probe / open / close -------------------------------------------------- */

static int
qcow2_probe(const uint8_t *buf, size_t len, const char *filename)
{
    /* Like qemu: any version >= 2 is qcow2 (and then refused if > 3). */
    if (len >= 8 && ld_be32(buf) == QCOW2_MAGIC && ld_be32(buf + 4) >= 2) {
        return 100;
    }
    return 0;
}

static void
qcow2_close(struct vimg_image *img)
{
    struct qcow2_state *s = img->priv;

    if (!s) {
        return;
    }
    qcow2_bitmaps_close(img);
    qcow2_crypt_close(s);
    qcow2_datafile_close(s);
    vimg_image_close(s->backing, NULL);
    s->backing = NULL;
    free(s->backing_name);
    free(s->backing_fmt);
    free(s->cow);
    qcow2_cluster_free(s);
    qcow2_refcount_free(s);
    free(s->l1);
    free(s);
    img->priv = NULL;
}

static int
load_l1(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t bytes = (size_t)s->hdr.l1_size * 8;
    uint8_t *buf;
    uint32_t i;
    int r;

    s->l1_size = s->hdr.l1_size;
    s->l1 = calloc(s->l1_size ? s->l1_size : 1, sizeof(uint64_t));
    if (!s->l1) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (bytes == 0) {
        return 0;
    }
    buf = malloc(bytes);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread(img->fd, buf, bytes, s->hdr.l1_table_offset);
    if (r < 0) {
        free(buf);
        return vimg_error_set(errp, r, "Could not read L1 table: %s",
                              strerror(-r));
    }
    for (i = 0; i < s->l1_size; i++) {
        s->l1[i] = ld_be64(buf + (size_t)i * 8);
    }
    free(buf);
    return 0;
}

/* The backing file name stored at backing_file_offset (validated). */
static int
read_backing_name(struct qcow2_state *s, const uint8_t *buf, size_t len,
                  struct vimg_error **errp)
{
    uint64_t off = s->hdr.backing_file_offset;
    uint32_t n = s->hdr.backing_file_size;

    if (off + n > len) {
        return vimg_error_set(errp, -EINVAL, "Backing file name too long");
    }
    if (n == 0) {
        return 0;
    }
    s->backing_name = strndup((const char *)buf + off, n);
    if (!s->backing_name) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (s->backing_name[0] == '\0') {
        free(s->backing_name);
        s->backing_name = NULL;
    }
    return 0;
}

/*
 * Open the backing chain: read-only, metadata-only when the overlay is.
 * A metadata-only open tolerates a backing file that cannot be opened
 * (qemu-img info shows the image all the same).
 */
static int
open_backing(struct vimg_image *img, struct vimg_opts *opts,
             struct vimg_secrets *secrets, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    bool no_io = img->flags & VIMG_OPEN_NO_IO;
    struct vimg_error *err = NULL;
    char *path;
    int r;

    if (!s->backing_name) {
        /* Options for a backing image that does not exist are unused. */
        return 0;
    }
    if (img->flags & VIMG_OPEN_NO_EXTERNAL) {
        return vimg_error_set(errp, -EPERM, "The image names a backing file; "
                              "only self-contained images are opened here");
    }
    path = vimg_backing_path(img->filename, s->backing_name);
    if (!path) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = vimg_backing_open(path, s->backing_fmt, opts, secrets,
                          no_io ? VIMG_OPEN_NO_IO : 0, &s->backing,
                          no_io ? &err : errp);
    free(path);
    if (r < 0) {
        if (no_io) {
            vimg_error_free(err);
            return 0;
        }
        vimg_error_prefix(errp, "Could not open backing file");
        return r;
    }
    return 0;
}

int
qcow2_read_backing(struct vimg_image *img, void *buf, size_t len,
                   uint64_t off, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    return vimg_backing_pread(s->backing, buf, len, off, errp);
}

static struct vimg_image *
qcow2_backing(struct vimg_image *img)
{
    struct qcow2_state *s = img->priv;

    return s ? s->backing : NULL;
}

/*
 * A dirty image (lazy refcounts, not closed cleanly) opened read-write:
 * repair its refcounts silently first, as qemu does; the check clears the
 * dirty bit once the image is consistent.
 */
static int
repair_dirty(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct vimg_check_result res;
    int r;

    memset(&res, 0, sizeof(res));
    r = qcow2_check(img, VIMG_CHECK_FIX_ERRORS | VIMG_CHECK_FIX_LEAKS, &res,
                    NULL, NULL, errp);
    if (r < 0) {
        vimg_error_prefix(errp, "Could not repair dirty image");
        return r;
    }
    if (res.corruptions || res.check_errors ||
        (s->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return vimg_error_set(errp, -EIO, "Could not repair dirty image: "
                              "%" PRIu64 " corruptions left; run 'vimg "
                              "check -r all'", (uint64_t)res.corruptions);
    }
    return 0;
}

static int
qcow2_open(struct vimg_image *img, struct vimg_opts *opts,
           struct vimg_secrets *secrets, struct vimg_error **errp)
{
    bool rw = img->flags & VIMG_OPEN_RDWR;
    struct qcow2_state *s;
    uint8_t head[QCOW2_V3_WRITTEN_LEN];
    uint8_t *buf = NULL;
    size_t len = sizeof(head);
    uint32_t bits;
    int r;

    s = calloc(1, sizeof(*s));
    if (!s) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    img->priv = s;
    s->data_fd = -1;
    r = full_pread_zero(img->fd, head, sizeof(head), 0);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not read qcow2 header: %s",
                           strerror(-r));
        goto fail;
    }
    bits = ld_be32(head + 20);
    if (bits >= QCOW2_MIN_CLUSTER_BITS && bits <= QCOW2_MAX_CLUSTER_BITS) {
        len = (size_t)1 << bits;
        buf = malloc(MAX(len, sizeof(head)));
        if (!buf) {
            r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            goto fail;
        }
        len = MAX(len, sizeof(head));
        r = full_pread_zero(img->fd, buf, len, 0);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not read qcow2 header: %s",
                               strerror(-r));
            goto fail;
        }
    }
    r = qcow2_parse_header(s, buf ? buf : head, len,
                           rw && !(img->flags & VIMG_OPEN_CHECK), errp);
    if (r == 0 && s->hdr.backing_file_offset != 0) {
        r = read_backing_name(s, buf ? buf : head, len, errp);
    }
    free(buf);
    buf = NULL;
    if (r < 0) {
        goto fail;
    }
    r = qcow2_datafile_open(img, opts, errp);
    if (r == 0) {
        r = load_l1(img, errp);
    }
    if (r == 0) {
        r = qcow2_refcount_init(img, errp);
    }
    if (r == 0) {
        r = qcow2_cluster_init(img, errp);
    }
    if (r == 0) {
        r = qcow2_crypt_open(img, opts, secrets, errp);
    }
    if (r == 0) {
        /* Like qemu, a broken snapshot table refuses the open. */
        struct qcow2_snap_table snaps;

        r = qcow2_snapshot_read_table(img, &snaps, errp);
        if (r == 0) {
            qcow2_snapshot_table_free(&snaps);
        }
    }
    if (r == 0) {
        r = open_backing(img, opts, secrets, errp);
    }
    if (r == 0 && rw && !(img->flags & VIMG_OPEN_CHECK) &&
        (s->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        r = repair_dirty(img, errp);
    }
    if (r < 0) {
        goto fail;
    }
    if (rw && s->hdr.version >= 3 && s->hdr.autoclear_features) {
        /* Autoclear bits vimg does not maintain (unknown ones, bitmaps it
         * cannot follow) are no longer valid once it writes the image;
         * followed bitmaps keep theirs (qcow2-bitmap.c). */
        uint64_t keep = 0;
        uint8_t be[8];

        r = qcow2_bitmaps_open(img, &keep, errp);
        if (s->data_raw) {
            keep |= QCOW2_AUTOCLEAR_DATA_RAW;
        }
        if (r == 0 && keep != s->hdr.autoclear_features) {
            st_be64(be, keep);
            r = full_pwrite(img->fd, be, 8, 88);
            if (r < 0) {
                r = vimg_error_set(errp, r, "Could not update the qcow2 "
                                   "header: %s", strerror(-r));
            } else {
                s->hdr.autoclear_features = keep;
                r = qcow2_sync(img, errp);
            }
        }
        if (r < 0) {
            goto fail;
        }
    }
    img->size = s->hdr.size;
    img->encrypted = s->hdr.crypt_method != QCOW2_CRYPT_NONE || s->luks;
    img->alignment = img->encrypted ? 512 : 1;
    return 0;

fail:
    free(buf);
    qcow2_close(img);
    return r;
}

/* ---- flush / truncate ---------------------------------------------------- */

static int
qcow2_flush(struct vimg_image *img, struct vimg_error **errp)
{
    int r = qcow2_metadata_flush(img, errp);

    if (r == 0) {
        r = qcow2_bitmaps_flush(img, errp);
    }
    return r < 0 ? r : qcow2_sync(img, errp);
}

/* The data-changing ops, noting the ranges for the persistent bitmaps. */
static int
qcow2_pwrite_noted(struct vimg_image *img, const void *buf, size_t len,
                   uint64_t off, struct vimg_error **errp)
{
    qcow2_bitmaps_note(img, off, len);
    return qcow2_pwrite(img, buf, len, off, errp);
}

static int
qcow2_zero_noted(struct vimg_image *img, uint64_t off, uint64_t len,
                 unsigned flags, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    /* Whole clusters change only L2 entries, which an unfinished
     * `vimg reencrypt` must not see change either. */
    if (s->reenc || s->stale) {
        return qcow2_crypt_writable(img, errp);
    }
    qcow2_bitmaps_note(img, off, len);
    return qcow2_zero(img, off, len, flags, errp);
}

static int
qcow2_pwrite_compressed_noted(struct vimg_image *img, const void *buf,
                              size_t len, uint64_t off,
                              struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    if (s->reenc || s->stale) {
        return qcow2_crypt_writable(img, errp);
    }
    qcow2_bitmaps_note(img, off, len);
    return qcow2_pwrite_compressed(img, buf, len, off, errp);
}

/* Patch the virtual size field of the header. */
static int
write_size(struct vimg_image *img, uint64_t size, struct vimg_error **errp)
{
    uint8_t buf[8];
    int r;

    st_be64(buf, size);
    r = full_pwrite(img->fd, buf, 8, 24);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not update the qcow2 header: "
                              "%s", strerror(-r));
    }
    return qcow2_sync(img, errp);
}

/*
 * Shrink as qemu does: the guest clusters from the first cluster boundary
 * at or after @size are unallocated, L2 tables wholly past the end are
 * dropped from the L1 table (its size in the header stays), the file is
 * cut after the last cluster in use, and then the header gets the size.
 * Every step leaves a consistent image (at worst leaked clusters).
 */
static int
qcow2_shrink(struct vimg_image *img, uint64_t size, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t need = qcow2_l1_entries_for(s->cluster_bits, s->l2_bits, size);
    uint64_t last, *dropped = NULL;
    int64_t fsize;
    size_t ndropped = 0, k;
    uint32_t i;
    int r;

    r = qcow2_release_from(img, ROUND_UP(size, s->cluster_size), errp);
    if (r < 0) {
        return r;
    }
    if (need < s->l1_size) {
        dropped = calloc(s->l1_size - need, sizeof(uint64_t));
        if (!dropped) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    for (i = (uint32_t)need; i < s->l1_size; i++) {
        uint64_t l2off = s->l1[i] & QCOW2_OFFSET_MASK;

        if (l2off == 0) {
            continue;
        }
        dropped[ndropped++] = l2off;
        s->l1[i] = 0;
        qcow2_cache_forget(s, l2off);
    }
    if (ndropped > 0) {
        r = qcow2_write_l1_at(img, s->l1, s->l1_size,
                              s->hdr.l1_table_offset, errp);
        if (r == 0) {
            r = qcow2_sync(img, errp);
        }
        for (k = 0; r == 0 && k < ndropped; k++) {
            r = qcow2_update_refcount(img, dropped[k], s->cluster_size, -1,
                                      errp);
        }
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
    }
    free(dropped);
    if (r == 0) {
        r = write_size(img, size, errp);
    }
    if (r == 0) {
        r = qcow2_last_cluster(img, &last, errp);
    }
    fsize = file_size(img->fd);
    if (r == 0 && fsize > 0 && last << s->cluster_bits < (uint64_t)fsize) {
        r = file_truncate(img->fd, last << s->cluster_bits);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Failed to truncate the image file: "
                               "%s", strerror(-r));
        }
    }
    s->free_hint = 0;
    s->cbyte_next = 0;
    if (r == 0) {
        s->hdr.size = size;
        img->size = size;
        r = qcow2_datafile_truncate(img, size, errp);
    }
    return r;
}

static int
truncate_tables(struct vimg_image *img, uint64_t size, bool shrink,
                struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t need = qcow2_l1_entries_for(s->cluster_bits, s->l2_bits, size);
    uint8_t buf[24];
    int r;

    if (size % 512) {
        return vimg_error_set(errp, -EINVAL,
                              "The new size must be a multiple of 512");
    }
    if (size < s->hdr.size) {
        return shrink ? qcow2_shrink(img, size, errp)
                      : vimg_error_set(errp, -EINVAL, "Use the --shrink "
                                       "option to perform a shrink "
                                       "operation.");
    }
    if (size > INT64_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    if (need > s->l1_size) {
        uint64_t old_off = s->hdr.l1_table_offset;
        uint64_t old_bytes = (uint64_t)s->l1_size * 8, new_off, nclusters;
        uint64_t *nl1;

        if (need * 8 > QCOW2_MAX_L1_BYTES) {
            return vimg_error_set(errp, -EFBIG, "The image size is too large "
                                  "for file format 'qcow2' (try using a "
                                  "larger cluster size)");
        }
        nl1 = calloc(need, sizeof(uint64_t));
        if (!nl1) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        memcpy(nl1, s->l1, (size_t)s->l1_size * sizeof(uint64_t));
        nclusters = DIV_ROUND_UP(need * 8, s->cluster_size);
        r = qcow2_alloc_clusters(img, nclusters, &new_off, errp);
        if (r == 0) {
            r = qcow2_refcount_flush(img, errp);
        }
        if (r == 0) {
            r = qcow2_write_l1_at(img, nl1, (uint32_t)need, new_off, errp);
        }
        if (r == 0) {
            r = qcow2_sync(img, errp);
        }
        if (r < 0) {
            free(nl1);
            return r;
        }
        /* size, crypt_method, l1_size, l1_table_offset in one write */
        st_be64(buf, size);
        st_be32(buf + 8, s->hdr.crypt_method);
        st_be32(buf + 12, (uint32_t)need);
        st_be64(buf + 16, new_off);
        r = full_pwrite(img->fd, buf, 24, 24);
        if (r < 0) {
            free(nl1);
            return vimg_error_set(errp, r, "Could not update the qcow2 "
                                  "header: %s", strerror(-r));
        }
        r = qcow2_sync(img, errp);
        if (r < 0) {
            free(nl1);
            return r;
        }
        free(s->l1);
        s->l1 = nl1;
        s->l1_size = (uint32_t)need;
        s->hdr.l1_size = (uint32_t)need;
        s->hdr.l1_table_offset = new_off;
        s->l1_dirty_lo = s->l1_dirty_hi = 0;
        if (old_bytes > 0 && old_off != 0) {
            r = qcow2_update_refcount(img, old_off, old_bytes, -1, errp);
            if (r == 0) {
                r = qcow2_refcount_flush(img, errp);
            }
            if (r < 0) {
                return r;
            }
        }
    } else {
        r = write_size(img, size, errp);
        if (r < 0) {
            return r;
        }
    }
    s->hdr.size = size;
    img->size = size;
    r = qcow2_datafile_truncate(img, size, errp);
    if (r == 0 && s->data_raw) {
        /* Raw data: every cluster, the new ones too, maps to itself. */
        r = qcow2_preallocate(img, QCOW2_PREALLOC_METADATA, errp);
    }
    return r;
}

/* The truncate op: the tables, then the persistent bitmaps (qcow2-bitmap.c). */
static int
qcow2_truncate(struct vimg_image *img, uint64_t size, bool shrink,
               struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t old = s->hdr.size;
    int r = 0;

    if (s->bitmaps && size != old && size % 512 == 0) {
        r = qcow2_bitmaps_resize_check(img, errp);
    }
    if (r == 0) {
        r = truncate_tables(img, size, shrink, errp);
    }
    return r < 0 ? r : qcow2_bitmaps_resize(img, old, errp);
}

/* ---- info ------------------------------------------------------------------ */

static int
qcow2_info(struct vimg_image *img, struct json_object *info,
           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const struct qcow2_header *h = &s->hdr;
    struct json_object *spec, *data, *enc = NULL;
    bool v3 = h->version >= 3;
    int r;

    r = qcow2_snapshot_info(img, info, errp);
    if (r < 0) {
        return r;
    }
    if (h->crypt_method != QCOW2_CRYPT_NONE) {
        r = qcow2_crypt_info(s, &enc, errp);
        if (r < 0) {
            return r;
        }
    }
    data = json_object_new_object();
    spec = json_object_new_object();
    if (!data || !spec) {
        json_object_put(data);
        json_object_put(spec);
        json_object_put(enc);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    /* Members in the order of qemu's ImageInfoSpecificQCow2. */
    json_object_object_add(data, "compat",
                           json_object_new_string(v3 ? "1.1" : "0.10"));
    if (v3) {
        json_object_object_add(data, "extended-l2",
                               json_object_new_boolean(s->extended_l2));
        json_object_object_add(data, "lazy-refcounts", json_object_new_boolean(
                                   h->compatible_features &
                                   QCOW2_COMPAT_LAZY_REFCOUNTS));
        json_object_object_add(data, "corrupt", json_object_new_boolean(
                                   h->incompatible_features &
                                   QCOW2_INCOMPAT_CORRUPT));
    }
    json_object_object_add(data, "refcount-bits",
                           json_object_new_int64(s->refcount_bits));
    qcow2_datafile_info(s, data);
    if (enc) {
        json_object_object_add(data, "encrypt", enc);
    }
    json_object_object_add(data, "compression-type", json_object_new_string(
                               h->compression_type == QCOW2_COMPRESS_ZSTD ?
                               "zstd" : "zlib"));
    json_object_object_add(spec, "type", json_object_new_string("qcow2"));
    json_object_object_add(spec, "data", data);
    json_object_object_add(info, "cluster-size",
                           json_object_new_int64(s->cluster_size));
    if (s->backing_name) {
        char *full = vimg_backing_path(img->filename, s->backing_name);

        json_object_object_add(info, "backing-filename",
                               json_object_new_string(s->backing_name));
        if (full) {
            json_object_object_add(info, "full-backing-filename",
                                   json_object_new_string(full));
            free(full);
        }
        if (s->backing_fmt) {
            json_object_object_add(info, "backing-filename-format",
                                   json_object_new_string(s->backing_fmt));
        }
    }
    json_object_object_add(info, "format-specific", spec);
    if (h->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        json_object_object_add(info, "dirty-flag", json_object_new_boolean(1));
    }
    return 0;
}

/* ---- create ---------------------------------------------------------------- */

struct create_params {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    bool lazy_refcounts;
    bool extended_l2;
    uint8_t compression_type;
    const char *backing_file;   /* borrowed from the options */
    const char *backing_fmt;
    bool backing_unsafe;        /* qemu-img create -u */
    int prealloc;               /* QCOW2_PREALLOC_* */
    const char *data_file;      /* external data file, borrowed */
    bool data_raw;              /* data_file_raw */
};

/* Creation options in qemu's order, with qemu's messages. */
static int
parse_create_opts(struct vimg_opts *opts, struct create_params *p,
                  struct vimg_error **errp)
{
    uint64_t cs = 65536, rbits = 16, hint = 0;
    const char *v;
    bool b = false;
    int r;

    memset(p, 0, sizeof(*p));
    p->version = 3;
    r = opts_take_size(opts, "cluster_size", &cs, errp);
    if (r < 0) {
        return r;
    }
    if (cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1))) {
        return vimg_error_set(errp, -EINVAL,
                              "Cluster size must be a power of two between "
                              "512 and 2048k");
    }
    p->cluster_bits = (uint32_t)__builtin_ctzll(cs);
    r = opts_take_bool(opts, "extended_l2", &p->extended_l2, errp);
    if (r < 0) {
        return r;
    }
    v = vimg_opts_take(opts, "preallocation");
    if (v && strcmp(v, "off") != 0) {
        if (strcmp(v, "metadata") && strcmp(v, "falloc") &&
            strcmp(v, "full")) {
            return vimg_error_set(errp, -EINVAL, "Parameter 'preallocation' "
                                  "does not accept value '%s'", v);
        }
        p->prealloc = strcmp(v, "metadata") == 0 ? QCOW2_PREALLOC_METADATA
                    : strcmp(v, "falloc") == 0 ? QCOW2_PREALLOC_FALLOC
                                               : QCOW2_PREALLOC_FULL;
    }
    v = vimg_opts_take(opts, "compression_type");
    if (v) {
        if (strcmp(v, "zlib") == 0) {
            p->compression_type = QCOW2_COMPRESS_ZLIB;
        } else if (strcmp(v, "zstd") == 0) {
            p->compression_type = QCOW2_COMPRESS_ZSTD;
        } else {
            return vimg_error_set(errp, -EINVAL, "Parameter 'compression-type' "
                                  "does not accept value '%s'", v);
        }
    }
    v = vimg_opts_take(opts, "compat");
    if (v) {
        p->version = qcow2_compat_version(v);
        if (p->version == 0) {
            return vimg_error_set(errp, -EINVAL, "Parameter 'version' does "
                                  "not accept value '%s'", v);
        }
    }
    if (vimg_opts_get(opts, "backing_fmt") &&
        !vimg_opts_get(opts, "backing_file")) {
        return vimg_error_set(errp, -EINVAL, "Backing format cannot be used "
                              "without backing file");
    }
    p->backing_file = vimg_opts_take(opts, "backing_file");
    p->backing_fmt = vimg_opts_take(opts, "backing_fmt");
    if (p->backing_file && !*p->backing_file) {
        p->backing_file = NULL;
    }
    r = opts_take_bool(opts, VIMG_CREATE_OPT_BACKING_UNSAFE,
                       &p->backing_unsafe, errp);
    if (r < 0) {
        return r;
    }
    p->data_file = vimg_opts_take(opts, "data_file");
    if (p->data_file && !*p->data_file) {
        p->data_file = NULL;
    }
    r = opts_take_bool(opts, "data_file_raw", &p->data_raw, errp);
    if (r < 0) {
        return r;
    }
    r = opts_take_bool(opts, "lazy_refcounts", &p->lazy_refcounts, errp);
    if (r < 0) {
        return r;
    }
    r = opts_take_u64(opts, "refcount_bits", &rbits, errp);
    if (r < 0) {
        return r;
    }
    if (rbits == 0 || rbits > 64 || (rbits & (rbits - 1))) {
        return vimg_error_set(errp, -EINVAL, "Refcount width must be a power "
                              "of two and may not exceed 64 bits");
    }
    p->refcount_order = (uint32_t)__builtin_ctzll(rbits);
    /* Accepted and meaningless here, as for raw files. */
    r = opts_take_bool(opts, "nocow", &b, errp);
    if (r == 0) {
        r = opts_take_size(opts, "extent_size_hint", &hint, errp);
    }
    if (r < 0) {
        return r;
    }

    if (p->version < 3) {
        if (rbits != 16) {
            return vimg_error_set(errp, -EINVAL, "Different refcount widths "
                                  "than 16 bits require compatibility level "
                                  "1.1 or above (use version=v3 or greater)");
        }
        if (p->lazy_refcounts) {
            return vimg_error_set(errp, -EINVAL, "Lazy refcounts only "
                                  "supported with compatibility level 1.1 and "
                                  "above (use version=v3 or greater)");
        }
        if (p->extended_l2) {
            return vimg_error_set(errp, -EINVAL, "Extended L2 entries are "
                                  "only supported with compatibility level "
                                  "1.1 and above (use version=v3 or greater)");
        }
        if (p->compression_type != QCOW2_COMPRESS_ZLIB) {
            return vimg_error_set(errp, -EINVAL, "Non-zlib compression type "
                                  "is only supported with compatibility level "
                                  "1.1 and above (use version=v3 or greater)");
        }
    }
    if (p->extended_l2 && p->cluster_bits < 14) {
        return vimg_error_set(errp, -EINVAL, "Extended L2 entries are only "
                              "supported with cluster sizes of at least 16384 "
                              "bytes");
    }
    if (p->data_file && p->version < 3) {
        return vimg_error_set(errp, -EINVAL, "External data files are only "
                              "supported with compatibility level 1.1 and "
                              "above (use version=v3 or greater)");
    }
    if (p->data_raw && !p->data_file) {
        return vimg_error_set(errp, -EINVAL, "data-file-raw requires "
                              "data-file");
    }
    if (p->data_raw && p->backing_file) {
        return vimg_error_set(errp, -EINVAL, "Backing file and data-file-raw "
                              "cannot be used at the same time");
    }
    if (p->data_file && strlen(p->data_file) > QCOW2_MAX_DATA_FILE_NAME) {
        return vimg_error_set(errp, -EINVAL, "Data file name too long");
    }
    return 0;
}

/* Clusters 0-2 of a new image: header, refcount table, refcount block. */
static int
write_initial(int fd, const struct create_params *p, struct vimg_error **errp)
{
    struct qcow2_state s;
    uint32_t cs = 1u << p->cluster_bits;
    uint8_t *buf;
    unsigned i;
    int r;

    memset(&s, 0, sizeof(s));
    s.cluster_bits = p->cluster_bits;
    s.cluster_size = cs;
    s.hdr.version = p->version;
    s.hdr.refcount_table_offset = cs;
    s.hdr.refcount_table_clusters = 1;
    s.hdr.refcount_order = p->refcount_order;
    s.hdr.compression_type = p->compression_type;
    if (p->extended_l2) {
        s.hdr.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
    }
    if (p->compression_type != QCOW2_COMPRESS_ZLIB) {
        s.hdr.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
    }
    if (p->lazy_refcounts) {
        s.hdr.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
    }
    s.refcount_bits = 1u << p->refcount_order;

    buf = calloc(3, cs);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = build_header(&s, buf, errp);
    if (r < 0) {
        free(buf);
        return r;
    }
    st_be64(buf + cs, 2ULL * cs);
    /* Refcount 1 for clusters 0, 1, 2 at the image's entry width. */
    for (i = 0; i < 3; i++) {
        uint8_t *blk = buf + 2 * (size_t)cs;
        uint32_t bits = s.refcount_bits;

        if (bits >= 8) {
            blk[(i + 1) * (bits / 8) - 1] = 1;
        } else {
            blk[i * bits / 8] |= (uint8_t)(1u << ((i * bits) % 8));
        }
    }
    r = full_pwrite(fd, buf, 3 * (size_t)cs, 0);
    free(buf);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the qcow2 header: %s",
                              strerror(-r));
    }
    return 0;
}

/*
 * qemu-img create -b: the backing file must open (metadata only, so no key
 * is needed) unless -u; it gives the size when none was given.  Without a
 * backing format qemu 7.2 refuses and names the probed one.
 */
static int
check_backing(const char *filename, const struct create_params *p,
              uint64_t *size, struct vimg_secrets *secrets,
              struct vimg_error **errp)
{
    struct vimg_image *b = NULL;
    char *path;
    int r;

    if (p->backing_unsafe) {
        return 0;
    }
    path = vimg_backing_path(filename, p->backing_file);
    if (!path) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = vimg_image_open(path, p->backing_fmt, NULL, secrets, VIMG_OPEN_NO_IO,
                        &b, errp);
    free(path);
    if (r == 0 && !p->backing_fmt) {
        r = vimg_error_set(errp, -EINVAL, "Backing file specified without "
                           "backing format\nDetected format of %s.",
                           vimg_image_format(b));
        vimg_image_close(b, NULL);
        return r;
    }
    if (r < 0) {
        if (errp && *errp) {
            /* "Could not open 'x': ...\nCould not open backing image." */
            struct vimg_error *inner = *errp;

            *errp = NULL;
            vimg_error_set(errp, r, "%s\nCould not open backing image.",
                           vimg_error_message(inner));
            vimg_error_free(inner);
        }
        return r;
    }
    if (*size == 0) {
        *size = ROUND_UP(vimg_image_size(b), 512);
    }
    vimg_image_close(b, NULL);
    return 0;
}

static int
qcow2_create(int fd, const char *filename, uint64_t size,
             struct vimg_opts *opts, struct vimg_secrets *secrets,
             struct vimg_error **errp)
{
    struct qcow2_crypt_params cp;
    struct create_params p;
    struct vimg_image tmp;
    struct vimg_opts *none;
    int r;

    memset(&cp, 0, sizeof(cp));
    r = qcow2_crypt_parse_create_opts(opts, secrets, &cp, errp);
    if (r == 0) {
        r = parse_create_opts(opts, &p, errp);
    }
    if (r == 0 && p.backing_file && p.prealloc != QCOW2_PREALLOC_OFF &&
        !p.extended_l2) {
        r = vimg_error_set(errp, -EINVAL, "Backing file and preallocation "
                           "can only be used at the same time if "
                           "extended_l2 is on");
    }
    if (r == 0 && p.backing_file) {
        r = check_backing(filename, &p, &size, secrets, errp);
    }
    if (r == 0) {
        r = write_initial(fd, &p, errp);
    }
    if (r < 0) {
        qcow2_crypt_params_clear(&cp);
        return r;
    }

    /* Reopen what was written and grow it, as qemu does. */
    none = vimg_opts_new();
    if (!none) {
        qcow2_crypt_params_clear(&cp);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    memset(&tmp, 0, sizeof(tmp));
    tmp.fd = fd;
    tmp.filename = (char *)filename;
    tmp.flags = VIMG_OPEN_RDWR;
    tmp.alignment = 1;
    r = qcow2_open(&tmp, none, NULL, errp);
    vimg_opts_free(none);
    if (r == 0 && p.data_file) {
        /* Raw data must map 1:1 from the start (qemu: metadata). */
        if (p.data_raw && p.prealloc == QCOW2_PREALLOC_OFF) {
            p.prealloc = QCOW2_PREALLOC_METADATA;
        }
        r = qcow2_datafile_create(&tmp, p.data_file, p.data_raw, size, errp);
        if (r == 0) {
            r = qcow2_rewrite_header(&tmp, errp);
        }
        if (r < 0) {
            qcow2_close(&tmp);
        }
    }
    if (r == 0) {
        r = qcow2_truncate(&tmp, size, false, errp);
        if (r == 0) {
            /* Before the backing file and the LUKS region (qemu's order). */
            r = qcow2_preallocate(&tmp, p.prealloc, errp);
        }
        if (r == 0 && p.backing_file) {
            /* Step 4 of qemu's sequence: the header names the backing. */
            struct qcow2_state *s = tmp.priv;

            s->backing_name = strdup(p.backing_file);
            s->backing_fmt = p.backing_fmt ? strdup(p.backing_fmt) : NULL;
            if (!s->backing_name || (p.backing_fmt && !s->backing_fmt)) {
                r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            } else if (strlen(p.backing_fmt ? p.backing_fmt : "") >= 16) {
                r = vimg_error_set(errp, -EINVAL, "Backing format name too "
                                   "long");
            } else {
                r = qcow2_metadata_flush(&tmp, errp);
                if (r == 0) {
                    r = qcow2_rewrite_header(&tmp, errp);
                }
            }
        }
        if (r == 0 && cp.method != QCOW2_CRYPT_NONE) {
            r = qcow2_crypt_create(&tmp, &cp, errp);
        }
        if (r == 0) {
            r = qcow2_flush(&tmp, errp);
        }
        qcow2_close(&tmp);
    }
    qcow2_crypt_params_clear(&cp);
    return r;
}

/* ---- measure ---------------------------------------------------------------- */

/* Refcount table + blocks (bytes) that describe @clusters clusters and
 * themselves. */
static uint64_t
refcount_meta_bytes(uint64_t clusters, uint32_t cluster_bits,
                    uint32_t refcount_order)
{
    uint64_t per_block = (8ULL << cluster_bits) >> refcount_order;
    uint64_t per_table = (1ULL << cluster_bits) / 8;
    uint64_t blocks = 0, table = 0, prev;

    do {
        prev = blocks + table;
        blocks = DIV_ROUND_UP(clusters + blocks + table, per_block);
        table = DIV_ROUND_UP(blocks, per_table);
    } while (blocks + table != prev);
    return (blocks + table) << cluster_bits;
}

/* File size of a fully allocated image of @size bytes (size cluster
 * aligned): header, L2 tables and L1 table in whole clusters, refcount
 * structures, data. */
static uint64_t
full_size(uint64_t size, uint32_t cluster_bits, uint32_t refcount_order,
          bool extended_l2)
{
    uint64_t cs = 1ULL << cluster_bits, l2e = extended_l2 ? 16 : 8;
    uint64_t meta = cs, n2, n1;

    n2 = ROUND_UP(size >> cluster_bits, cs / l2e);
    meta += n2 * l2e;
    n1 = ROUND_UP(n2 * l2e / cs, cs / 8);
    meta += n1 * 8;
    meta += refcount_meta_bytes((meta + size) >> cluster_bits, cluster_bits,
                                refcount_order);
    return meta + size;
}

/* Status of [@off, @off + @len) through the backing chain of @img. */
static int
status_above(struct vimg_image *img, uint64_t off, uint64_t len,
             uint64_t *pnum, unsigned *st, struct vimg_error **errp)
{
    int r;

    for (;;) {
        struct vimg_image *b;

        r = vimg_image_block_status(img, off, len, pnum, st, NULL, errp);
        if (r < 0 || !(*st & VIMG_BLOCK_UNALLOCATED)) {
            return r;
        }
        b = img->ops->backing ? img->ops->backing(img) : NULL;
        if (!b) {
            return 0;
        }
        len = *pnum;
        if (off >= b->size) {
            *st = VIMG_BLOCK_ZERO;
            return 0;
        }
        len = MIN(len, b->size - off);
        img = b;
    }
}

/*
 * qemu-img measure -O qcow2: the fully allocated size from the geometry
 * (plus the LUKS region in whole clusters); required counts only the
 * data clusters the source has (none without a source), or all of them
 * with falloc or full preallocation.
 */
static int
qcow2_measure(struct vimg_opts *opts, struct vimg_image *src, uint64_t size,
              uint64_t *required, uint64_t *fully_allocated,
              struct vimg_error **errp)
{
    struct qcow2_crypt_params cp;
    struct create_params p;
    uint64_t cs, vsize, luks = 0, data = 0, off, pnum, full;
    unsigned st;
    int r;

    memset(&cp, 0, sizeof(cp));
    r = qcow2_crypt_parse_measure_opts(opts, &cp, errp);
    if (r == 0 && cp.method == QCOW2_CRYPT_LUKS) {
        r = luks1_payload_bytes(&cp.luks, &luks, errp);
    }
    qcow2_crypt_params_clear(&cp);
    if (r == 0) {
        r = parse_create_opts(opts, &p, errp);
    }
    if (r < 0) {
        return r;
    }
    cs = 1ULL << p.cluster_bits;
    if (size > INT64_MAX - cs) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    vsize = ROUND_UP(size, cs);
    luks = ROUND_UP(luks, cs);
    if (p.prealloc == QCOW2_PREALLOC_FALLOC ||
        p.prealloc == QCOW2_PREALLOC_FULL) {
        data = vsize;
    } else if (src) {
        for (off = 0; off < size; off += pnum) {
            r = status_above(src, off, size - off, &pnum, &st, errp);
            if (r < 0) {
                return r;
            }
            if (pnum == 0) {
                break;
            }
            if ((st & VIMG_BLOCK_DATA) && !(st & VIMG_BLOCK_ZERO)) {
                /* Whole clusters, each counted once. */
                uint64_t end = MIN(ROUND_UP(off + pnum, cs), vsize);

                data += end - (off - off % cs);
                pnum = end - off;
            }
        }
    }
    full = full_size(vsize, p.cluster_bits, p.refcount_order,
                     p.extended_l2) + luks;
    *fully_allocated = full;
    *required = full - vsize + MIN(data, vsize);
    return 0;
}

/* `qemu-img create -f qcow2 -o help` in creation-description order (the
 * order of qemu's "Formatting ..." line), plus vimg's encrypt.iter-count. */
static const struct vimg_opt_desc qcow2_create_opts[] = {
    { "encryption", VIMG_OPT_BOOL, "Encrypt the image with format 'aes'. "
      "(Deprecated in favor of encrypt.format=aes)", NULL },
    { "encrypt.format", VIMG_OPT_STRING,
      "Encrypt the image, format choices: 'aes', 'luks'", NULL },
    { "encrypt.key-secret", VIMG_OPT_STRING,
      "ID of secret providing qcow AES key or LUKS passphrase", NULL },
    { "encrypt.cipher-alg", VIMG_OPT_STRING,
      "Name of encryption cipher algorithm", NULL },
    { "encrypt.cipher-mode", VIMG_OPT_STRING,
      "Name of encryption cipher mode", NULL },
    { "encrypt.ivgen-alg", VIMG_OPT_STRING,
      "Name of IV generator algorithm", NULL },
    { "encrypt.ivgen-hash-alg", VIMG_OPT_STRING,
      "Name of IV generator hash algorithm", NULL },
    { "encrypt.hash-alg", VIMG_OPT_STRING,
      "Name of encryption hash algorithm", NULL },
    { "encrypt.iter-time", VIMG_OPT_NUMBER,
      "Time to spend in PBKDF in milliseconds", NULL },
    { "encrypt.iter-count", VIMG_OPT_NUMBER,
      "PBKDF iterations of the key slot (overrides iter-time; vimg only)",
      NULL },
    { "cluster_size", VIMG_OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", VIMG_OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, metadata, falloc, full)",
      NULL },
    { "compression_type", VIMG_OPT_STRING,
      "Compression method used for image cluster compression", "zlib" },
    { "size", VIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "compat", VIMG_OPT_STRING,
      "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "backing_file", VIMG_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", VIMG_OPT_STRING, "Image format of the base image", NULL },
    { "data_file", VIMG_OPT_STRING, "File name of an external data file",
      NULL },
    { "data_file_raw", VIMG_OPT_BOOL,
      "The external data file must stay valid as a raw image", NULL },
    { "lazy_refcounts", VIMG_OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", VIMG_OPT_NUMBER,
      "Width of a reference count entry in bits", "16" },
    { "nocow", VIMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)",
      NULL },
    { "extent_size_hint", VIMG_OPT_SIZE,
      "Extent size hint for the image file, 0 to disable", NULL },
    { NULL, 0, NULL, NULL },
};

static int
qcow2_discard(struct vimg_image *img, uint64_t off, uint64_t len,
              struct vimg_error **errp)
{
    return 0;                   /* a hint; clusters stay allocated */
}

const struct vimg_format_ops vimg_format_qcow2 = {
    .name = "qcow2",
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .create = qcow2_create,
    .create_opts = qcow2_create_opts,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite_noted,
    .zero = qcow2_zero_noted,
    .discard = qcow2_discard,
    .flush = qcow2_flush,
    .truncate = qcow2_truncate,
    .block_status = qcow2_block_status,
    .info = qcow2_info,
    .check = qcow2_check,
    .backing = qcow2_backing,
    .set_backing = qcow2_set_backing,
    .make_empty = qcow2_make_empty,
    .measure = qcow2_measure,
    .pwrite_compressed = qcow2_pwrite_compressed_noted,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_load = qcow2_snapshot_load,
    .amend = qcow2_amend,
    .reencrypt = qcow2_reencrypt,
};
