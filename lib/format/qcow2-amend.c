/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu-img amend for qcow2, limited to the encryption options: the
 * "encrypt." amend options (state, new-secret, old-secret, keyslot,
 * iter-time, and vimg's iter-count) manage the key slots of the LUKS header
 * that lives in the image's FDE header region (qemu-facts.md 1.8, 5.8,
 * 7.4).  The slot work is lib/blockcrypt/luks1-keyslot.c, reached through
 * the luks1 handle qcow2-crypt.c opened; its reads and writes go through
 * that handle's region callbacks, so they stay inside the region.  No qcow2
 * metadata (tables, refcounts) changes.
 *
 * Option checking follows qemu-img: every key must be an amend option of
 * qcow2 ("Invalid parameter 'K'", plus "This option is only supported for
 * image creation" when it is a creation option such as encrypt.format).
 * Encryption options on an image without encryption give "Can't amend
 * encryption options - encryption not present"; on a legacy AES image
 * "Only LUKS encryption options can be amended".
 *
 * The other options (qemu's messages throughout):
 *   compat=0.10|v2|1.1|v3  upgrade (version 3 header with the feature
 *       table) or downgrade: refused with refcount_bits other than 16,
 *       incompatible features (extended L2, external data file), zstd
 *       compression or internal snapshots (vimg only); zero clusters are
 *       expanded first (unallocated ones dropped, or backed by a zeroed
 *       cluster over a backing file; allocated ones written with zeroes);
 *       compatible and autoclear features are cleared.
 *   lazy_refcounts=on|off  the compatible bit (version 3 only).  vimg
 *       itself always keeps refcounts up to date.
 *   size=N                 as resize (shrinking allowed, as in qemu).
 *   backing_file/backing_fmt  refused ("Cannot amend the backing file",
 *       use rebase), as qemu 7.2 does.
 *   data_file/data_file_raw  as qemu: a new name (or none) for images
 *       with a data file, data_file_raw only switched off
 *       (qcow2-datafile.c).
 *   refcount_bits=N        1..64, a power of two (version 3): the refcount
 *       table and blocks are rewritten with the new width
 *       (qcow2_change_refcount_order), after an upgrade and before the
 *       other changes, as qemu orders them; a count too large for a
 *       narrower width is refused with qemu's message.
 * Every check runs before anything is written.  Header rewrites keep the
 * image's extensions (bitmaps, unknown ones) in their order.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blockcrypt/luks1.h"
#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

#define QCOW2_AMEND_PREFIX "encrypt."

/* qemu's qcow2 amend options that are not encryption options. */
static const char *const qcow2_other_amend[] = {
    "backing_file", "backing_fmt", "compat", "data_file", "data_file_raw",
    "lazy_refcounts", "refcount_bits", "size", NULL,
};

static int
qcow2_amend_flush(void *opaque, struct vimg_error **errp)
{
    struct vimg_image *img = opaque;
    int r = file_flush(img->fd);

    if (r < 0) {
        return vimg_error_set(errp, r, "Could not flush '%s': %s",
                              img->filename, strerror(-r));
    }
    return 0;
}

/* The non-encryption options, parsed and checked. */
struct other_args {
    int version;                /* 0: unchanged */
    int lazy;                   /* -1: unchanged, else 0/1 */
    bool has_size;
    uint64_t size;
    bool has_refcount_bits;
    uint64_t refcount_bits;
    struct qcow2_datafile_amend df;
};

static int
parse_other(struct vimg_image *img, struct vimg_opts *opts,
            struct other_args *a, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const char *compat, *bf, *bfmt;
    bool lazy = false, has_lazy;
    int r, version;

    memset(a, 0, sizeof(*a));
    a->lazy = -1;
    compat = vimg_opts_take(opts, "compat");
    if (compat) {
        a->version = qcow2_compat_version(compat);
        if (a->version == 0) {
            return vimg_error_set(errp, -EINVAL, "Unknown compatibility "
                                  "level %s", compat);
        }
    }
    has_lazy = vimg_opts_get(opts, "lazy_refcounts") != NULL;
    r = opts_take_bool(opts, "lazy_refcounts", &lazy, errp);
    if (r < 0) {
        return r;
    }
    a->lazy = has_lazy ? lazy : -1;
    if (vimg_opts_get(opts, "size")) {
        r = opts_take_size(opts, "size", &a->size, errp);
        if (r < 0) {
            return r;
        }
        a->has_size = true;
        if (a->size % 512) {
            return vimg_error_set(errp, -EINVAL, "The new size must be a "
                                  "multiple of 512");
        }
    }
    if (vimg_opts_get(opts, "refcount_bits")) {
        r = opts_take_u64(opts, "refcount_bits", &a->refcount_bits, errp);
        if (r < 0) {
            return r;
        }
        if (a->refcount_bits == 0 || a->refcount_bits > 64 ||
            (a->refcount_bits & (a->refcount_bits - 1))) {
            return vimg_error_set(errp, -EINVAL, "Refcount width must be a "
                                  "power of two and may not exceed 64 bits");
        }
        a->has_refcount_bits = true;
    }
    bf = vimg_opts_take(opts, "backing_file");
    bfmt = vimg_opts_take(opts, "backing_fmt");
    if (bf || bfmt) {
        return vimg_error_set(errp, -EINVAL, "Cannot amend the backing "
                              "file\nYou can use 'qemu-img rebase' "
                              "instead.");
    }
    r = qcow2_datafile_amend_parse(img, opts, &a->df, errp);
    if (r < 0) {
        return r;
    }

    /* The combination, against the image. */
    version = a->version ? a->version : (int)s->hdr.version;
    if (a->lazy == 1 && version < 3) {
        return vimg_error_set(errp, -EINVAL, "Lazy refcounts only supported "
                              "with compatibility level 1.1 and above (use "
                              "compat=1.1 or greater)");
    }
    if (a->has_refcount_bits && a->refcount_bits != s->refcount_bits &&
        a->refcount_bits != 16 && version < 3) {
        return vimg_error_set(errp, -EINVAL, "Refcount widths other than 16 "
                              "bits require compatibility level 1.1 or above "
                              "(use compat=1.1 or greater)");
    }
    if (a->version == 2 && s->hdr.version >= 3) {
        uint64_t incompat = s->hdr.incompatible_features &
                            ~(QCOW2_INCOMPAT_DIRTY |
                              QCOW2_INCOMPAT_COMPRESSION);

        if ((a->has_refcount_bits ? a->refcount_bits
                                  : s->refcount_bits) != 16) {
            return vimg_error_set(errp, -ENOTSUP, "compat=0.10 requires "
                                  "refcount_bits=16");
        }
        if (incompat & QCOW2_INCOMPAT_DATA_FILE) {
            return vimg_error_set(errp, -ENOTSUP, "Cannot downgrade an image "
                                  "with a data file");
        }
        if (incompat) {
            return vimg_error_set(errp, -ENOTSUP, "Cannot downgrade an image "
                                  "with incompatible features %#" PRIx64
                                  " set", incompat);
        }
        if (s->hdr.compression_type != QCOW2_COMPRESS_ZLIB) {
            return vimg_error_set(errp, -ENOTSUP, "vimg cannot downgrade an "
                                  "image with compression type zstd "
                                  "(compat=0.10 has no compression type)");
        }
        if (s->hdr.nb_snapshots > 0) {
            return vimg_error_set(errp, -ENOTSUP, "vimg cannot downgrade an "
                                  "image with internal snapshots");
        }
    }
    return 0;
}

/*
 * Rewrite cluster 0 for @version: the fixed fields from the state, then
 * the image's extensions: backing format, data file and crypto first, the
 * feature table (version 3 only, written anew), then every other
 * extension (bitmaps, unknown ones) in its old order; the end marker and
 * the backing file name.  One write of the whole cluster.
 */
static int
rewrite_header(struct vimg_image *img, uint32_t version,
               struct vimg_error **errp)
{
    static const uint32_t first[] = {
        QCOW2_EXT_BACKING_FMT, QCOW2_EXT_DATA_FILE, QCOW2_EXT_CRYPTO,
    };
    struct qcow2_state *s = img->priv;
    const struct qcow2_header *h = &s->hdr;
    size_t cs = s->cluster_size, hl, in, off, end, pass, k, data_at;
    uint8_t *old = malloc(cs), *buf = calloc(1, cs);
    int r;

    if (!old || !buf) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = qcow2_read_header_cluster(img, old, errp);
    if (r < 0) {
        goto out;
    }
    hl = h->version >= 3 ? h->header_length : QCOW2_V2_HEADER_LEN;
    end = h->backing_file_offset ? MIN(h->backing_file_offset, cs) : cs;
    memcpy(buf, old, QCOW2_V2_HEADER_LEN);
    st_be32(buf + 4, version);
    off = qcow2_put_header_tail(buf, h, version);
    data_at = off;
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1 && version >= 3 && cs > 4096) {
            size_t tlen = qcow2_feature_table(NULL, 0);

            if (off + 8 + tlen > cs) {
                r = vimg_error_set(errp, -EINVAL, "Header extensions too "
                                   "large");
                goto out;
            }
            st_be32(buf + off, QCOW2_EXT_FEATURES);
            st_be32(buf + off + 4, (uint32_t)tlen);
            qcow2_feature_table(buf + off + 8, tlen);
            off += 8 + tlen;
        }
        for (in = hl; in + 8 <= end;) {
            uint32_t type = ld_be32(old + in);
            uint32_t elen = ld_be32(old + in + 4);
            size_t step = 8 + ROUND_UP((size_t)elen, 8);
            bool is_first = false;

            if (type == QCOW2_EXT_END || elen > end - in - 8) {
                break;
            }
            for (k = 0; k < ARRAY_SIZE(first); k++) {
                is_first |= type == first[k];
            }
            in += step;
            if (type == QCOW2_EXT_FEATURES || type == QCOW2_EXT_DATA_FILE ||
                is_first != (pass == 0)) {
                continue;       /* the data file name: from the state */
            }
            if (off + step + 8 > cs) {
                r = vimg_error_set(errp, -EINVAL, "Header extensions too "
                                   "large");
                goto out;
            }
            memcpy(buf + off, old + in - step, 8 + elen);
            off += step;
            if (type == QCOW2_EXT_BACKING_FMT) {
                data_at = off;
            }
        }
        if (pass == 0) {
            off = qcow2_datafile_insert_ext(s, buf, data_at, off, cs);
            if (off == 0) {
                r = vimg_error_set(errp, -EINVAL, "Header extensions too "
                                   "large");
                goto out;
            }
        }
    }
    off += 8;                   /* end marker (zero) */
    st_be64(buf + 8, 0);
    st_be32(buf + 16, 0);
    if (s->backing_name) {
        size_t nlen = strlen(s->backing_name);

        if (off + nlen > cs) {
            r = vimg_error_set(errp, -EINVAL, "Backing file name too long");
            goto out;
        }
        memcpy(buf + off, s->backing_name, nlen);
        st_be64(buf + 8, off);
        st_be32(buf + 16, (uint32_t)nlen);
    }
    r = qcow2_metadata_flush(img, errp);
    if (r == 0) {
        r = full_pwrite(img->fd, buf, cs, 0);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not write the qcow2 header: "
                               "%s", strerror(-r));
        }
    }
    if (r == 0) {
        r = qcow2_sync(img, errp);
    }
    if (r == 0) {
        s->hdr.version = version;
        s->hdr.header_length = version >= 3 ? QCOW2_V3_WRITTEN_LEN
                                            : QCOW2_V2_HEADER_LEN;
        s->hdr.backing_file_offset = ld_be64(buf + 8);
    }

out:
    free(old);
    free(buf);
    return r;
}

/* Make host cluster @host read as zeroes without writing them where the
 * file system can (qemu's zero write without unmap); the file grows to
 * cover it. */
static int
zero_host_cluster(struct vimg_image *img, uint64_t host,
                  struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int64_t fsize = file_size(img->fd);
    int r = fsize < 0 ? (int)fsize : 0;

    if (r == 0 && (uint64_t)fsize < host + s->cluster_size) {
        r = file_truncate(img->fd, host + s->cluster_size);
    }
    if (r == 0 && (uint64_t)fsize > host) {
        r = file_punch_zero(img->fd, host, s->cluster_size, false);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not zero the cluster at host "
                              "offset %#" PRIx64 ": %s", host, strerror(-r));
    }
    return 0;
}

/*
 * Version 2 has no zero flag: allocated zero clusters get zeroes written
 * and lose the flag; unallocated ones become unallocated entries, or (over
 * a backing file) a new cluster of zeroes.  Active layer only (images with
 * snapshots are refused before).
 */
static int
expand_zero_clusters(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t entries = 1ULL << s->l2_bits, j, host;
    uint32_t i;
    int r;

    for (i = 0; i < s->l1_size; i++) {
        uint64_t l2off = s->l1[i] & QCOW2_OFFSET_MASK;
        struct qcow2_table *t;

        if (l2off == 0) {
            continue;
        }
        r = qcow2_cache_get(img, true, l2off, true, &t, errp);
        for (j = 0; r == 0 && j < entries; j++) {
            uint8_t *e = t->data + j * 8;
            uint64_t desc = ld_be64(e);

            if ((desc & QCOW2_OFLAG_COMPRESSED) ||
                !(desc & QCOW2_OFLAG_ZERO)) {
                continue;
            }
            host = desc & QCOW2_OFFSET_MASK;
            if (host == 0 && s->backing) {
                r = qcow2_alloc_clusters(img, 1, &host, errp);
                if (r < 0) {
                    break;
                }
                /* The table may have left the cache meanwhile. */
                r = zero_host_cluster(img, host, errp);
                if (r == 0) {
                    r = qcow2_refcount_flush(img, errp);
                }
                if (r == 0) {
                    r = qcow2_cache_get(img, true, l2off, true, &t, errp);
                }
                if (r < 0) {
                    break;
                }
                e = t->data + j * 8;
                desc = host | QCOW2_OFLAG_COPIED;
            } else if (host != 0) {
                r = zero_host_cluster(img, host, errp);
                if (r == 0) {
                    r = qcow2_cache_get(img, true, l2off, true, &t, errp);
                }
                if (r < 0) {
                    break;
                }
                e = t->data + j * 8;
                desc &= ~QCOW2_OFLAG_ZERO;
            } else {
                desc = 0;
            }
            st_be64(e, desc);
            t->dirty = true;
        }
        if (r < 0) {
            return r;
        }
    }
    r = qcow2_sync(img, errp);
    return r < 0 ? r : qcow2_metadata_flush(img, errp);
}

static int
amend_other(struct vimg_image *img, const struct other_args *a,
            struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r = 0;

    if (a->version == 3 && s->hdr.version < 3) {
        s->hdr.incompatible_features = 0;
        s->hdr.compatible_features = 0;
        s->hdr.autoclear_features = 0;
        s->hdr.refcount_order = 4;
        s->hdr.compression_type = QCOW2_COMPRESS_ZLIB;
        r = rewrite_header(img, 3, errp);
    }
    if (r == 0 && a->has_refcount_bits) {
        uint32_t order = (uint32_t)__builtin_ctzll(a->refcount_bits);

        r = qcow2_change_refcount_order(img, order, errp);
    }
    if (r == 0 && a->lazy >= 0 && s->hdr.version >= 3 &&
        !!(s->hdr.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) !=
            !!a->lazy) {
        uint8_t be[8];

        r = qcow2_metadata_flush(img, errp);
        if (r == 0) {
            s->hdr.compatible_features ^= QCOW2_COMPAT_LAZY_REFCOUNTS;
            st_be64(be, s->hdr.compatible_features);
            r = full_pwrite(img->fd, be, 8, 80);
            if (r < 0) {
                r = vimg_error_set(errp, r, "Could not update the qcow2 "
                                   "header: %s", strerror(-r));
            }
        }
        if (r == 0) {
            r = qcow2_sync(img, errp);
        }
    }
    if (r == 0 && a->has_size && a->size != img->size) {
        r = img->ops->truncate(img, a->size, true, errp);
    }
    if (r == 0 && a->version == 2 && s->hdr.version >= 3) {
        r = expand_zero_clusters(img, errp);
        if (r == 0) {
            s->hdr.incompatible_features = 0;
            s->hdr.compatible_features = 0;
            s->hdr.autoclear_features = 0;
            r = rewrite_header(img, 2, errp);
        }
    }
    if (r == 0) {
        r = qcow2_datafile_amend_apply(img, &a->df, errp);
    }
    if (r == 0 && a->df.set_name) {
        r = rewrite_header(img, s->hdr.version, errp);
    }
    return r;
}

int
qcow2_amend(struct vimg_image *img, struct vimg_opts *opts,
            struct vimg_secrets *secrets, bool force, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct luks1_sync sync = { .opaque = img, .flush = qcow2_amend_flush };
    size_t i, n = opts ? vimg_opts_count(opts) : 0;
    struct other_args other;
    bool crypt_opts = false;
    int r;

    r = luks1_amend_check_opts(opts, QCOW2_AMEND_PREFIX,
                               vimg_format_qcow2.create_opts,
                               qcow2_other_amend, errp);
    if (r < 0) {
        return r;
    }
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(opts, i);

        if (strncmp(k, QCOW2_AMEND_PREFIX, strlen(QCOW2_AMEND_PREFIX)) == 0) {
            crypt_opts = true;
        }
    }
    r = opts ? parse_other(img, opts, &other, errp) : 0;
    if (r < 0) {
        return r;
    }
    /* Nothing changes while a `vimg reencrypt` is unfinished. */
    r = n ? qcow2_crypt_writable(img, errp) : 0;
    if (r < 0) {
        return r;
    }
    if (crypt_opts) {
        switch (s->hdr.crypt_method) {
        case QCOW2_CRYPT_NONE:
            return vimg_error_set(errp, -EINVAL,
                                  "Can't amend encryption options - "
                                  "encryption not present");
        case QCOW2_CRYPT_LUKS:
            break;
        default:
            return vimg_error_set(errp, -EINVAL,
                                  "Only LUKS encryption options can be "
                                  "amended");
        }
        if (!s->luks) {
            return vimg_error_set(errp, -EINVAL,
                                  "Missing CRYPTO header for crypt method 2");
        }
        r = luks1_amend(s->luks, opts, QCOW2_AMEND_PREFIX, secrets, force,
                        &sync, errp);
        if (r < 0) {
            return r;
        }
    }
    return opts ? amend_other(img, &other, errp) : 0;
}
