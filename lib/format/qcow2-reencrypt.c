/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg reencrypt for qcow2 with LUKS (crypt_method 2): a new master key
 * for every data cluster, in place (docs/reencrypt.md).
 *
 * LUKS inside qcow2 uses the HOST offset as IV sector, so the work is a
 * list of host extents: every data cluster referenced by the active L1
 * table or by a snapshot's, sorted and merged (a cluster shared by several
 * tables is rewritten once).  Metadata never moves: the generic journal
 * code (reencrypt.c) rewrites those extents chunk by chunk and finally
 * copies the new LUKS header over the crypto header region.  Compressed
 * clusters are not encrypted (qemu writes them in plaintext even in
 * encrypted images) and are left alone.
 *
 * An unencrypted image (crypt_method 0) is encrypted the same way with
 * "old key = none": host-offset IVs do not depend on which table refers
 * to a cluster, so the same walk applies.  The header region is allocated
 * (in memory only) before the journal is created and recorded in it; the
 * refcounts reach the disk, and the qcow2 header is switched to LUKS,
 * only in the finishing step after all data is encrypted (plain_finish).
 * Compressed clusters are refused: they would stay plaintext.
 *
 * A legacy AES image (crypt_method 1) is migrated to LUKS the same way,
 * but its IVs are GUEST sectors: the walk keeps each cluster's guest
 * offset, refuses a host cluster referenced at two different guest
 * offsets (its bytes decrypt differently in each view), and the journal
 * decrypts with the AES key and the guest offset, encrypts with the new
 * key and the host offset.  Compressed clusters are left as they are:
 * qemu never encrypts them, in AES images as in LUKS ones.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "qcow2.h"
#include "reencrypt.h"
#include "safemem.h"
#include "secret/secret.h"

/* A data cluster: where it is and the guest offset it was found at. */
struct mapping {
    uint64_t host, guest;
};

struct offsets {
    struct mapping *v;
    size_t n, cap;
};

static int
push(struct offsets *o, uint64_t host, uint64_t guest)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        struct mapping *v = realloc(o->v, cap * sizeof(*v));

        if (!v) {
            return -ENOMEM;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n].host = host;
    o->v[o->n].guest = guest;
    o->n++;
    return 0;
}

/*
 * Add the data clusters of the L2 tables listed in @l1 (@n entries).
 * Compressed clusters of an encrypted image are skipped: qemu never
 * encrypts them (AES or LUKS), so they stay as they are; in a plain image
 * they are refused (they would stay plaintext in an "encrypted" image).
 */
static int
collect_l1(struct vimg_image *img, const uint64_t *l1, uint32_t n,
           uint64_t file_end, uint8_t *l2, struct offsets *o,
           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t entries = (uint64_t)s->cluster_size / s->l2_entry_size;
    uint32_t i;
    uint64_t k;
    int r;

    for (i = 0; i < n; i++) {
        uint64_t l2off = l1[i] & QCOW2_OFFSET_MASK;

        if (!l2off) {
            continue;
        }
        if (l2off % s->cluster_size || l2off >= file_end) {
            return vimg_error_set(errp, -EINVAL, "Invalid L2 table offset %#"
                                  PRIx64 "; run 'vimg check -r all'", l2off);
        }
        r = full_pread(img->fd, l2, s->cluster_size, l2off);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not read L2 table: %s",
                                  strerror(-r));
        }
        for (k = 0; k < entries; k++) {
            uint64_t e = ld_be64(l2 + k * s->l2_entry_size);
            uint64_t d = e & QCOW2_OFFSET_MASK;

            if ((e & QCOW2_OFLAG_COMPRESSED) &&
                s->hdr.crypt_method != QCOW2_CRYPT_NONE) {
                continue;
            }
            if (e & QCOW2_OFLAG_COMPRESSED) {
                return vimg_error_set(errp, -ENOTSUP, "Compressed clusters "
                                      "cannot be encrypted in place; use "
                                      "'vimg convert'");
            }
            if (!d) {
                continue;
            }
            if (d % s->cluster_size || d >= file_end) {
                return vimg_error_set(errp, -EINVAL, "Invalid data cluster "
                                      "offset %#" PRIx64 "; run 'vimg check "
                                      "-r all'", d);
            }
            if (push(o, d, (i * entries + k) << s->cluster_bits) < 0) {
                return vimg_error_set(errp, -ENOMEM, "Out of memory");
            }
        }
    }
    return 0;
}

/* A snapshot's L1 table from disk (entries in host order). */
static int
read_l1(struct vimg_image *img, uint64_t off, uint32_t n, uint64_t **out,
        struct vimg_error **errp)
{
    uint64_t *l1 = calloc(n ? n : 1, sizeof(*l1));
    uint32_t i;
    int r;

    if (!l1) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread(img->fd, l1, (size_t)n * 8, off);
    if (r < 0) {
        free(l1);
        return vimg_error_set(errp, r, "Could not read snapshot L1 table: %s",
                              strerror(-r));
    }
    for (i = 0; i < n; i++) {
        l1[i] = ld_be64(&l1[i]);
    }
    *out = l1;
    return 0;
}

static int
cmp_mapping(const void *a, const void *b)
{
    const struct mapping *x = a, *y = b;

    if (x->host != y->host) {
        return x->host < y->host ? -1 : 1;
    }
    return x->guest < y->guest ? -1 : x->guest > y->guest;
}

/*
 * The host extents holding encrypted data, sorted and merged; *out is
 * malloc'd (possibly with *n 0).  For legacy AES each extent is also
 * contiguous in the guest and carries its guest offset; a host cluster
 * found at two guest offsets is refused.
 */
static int
data_extents(struct vimg_image *img, struct reenc_extent **out, size_t *n,
             struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct qcow2_snap_table snaps = {0};
    struct offsets o = {0};
    struct reenc_extent *ext = NULL;
    uint8_t *l2 = malloc(s->cluster_size);
    int64_t end = file_size(img->fd);
    bool aes = s->hdr.crypt_method == QCOW2_CRYPT_AES;
    size_t i, m = 0;
    uint32_t k;
    int r;

    if (!l2) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (end < 0) {
        free(l2);
        return vimg_error_set(errp, (int)end, "Could not get the file size");
    }
    r = collect_l1(img, s->l1, s->l1_size, (uint64_t)end, l2, &o, errp);
    if (r == 0 && s->hdr.nb_snapshots) {
        r = qcow2_snapshot_read_table(img, &snaps, errp);
        for (k = 0; r == 0 && k < snaps.n; k++) {
            uint64_t *l1 = NULL;

            r = read_l1(img, snaps.v[k].l1_offset, snaps.v[k].l1_size, &l1,
                        errp);
            if (r == 0) {
                r = collect_l1(img, l1, snaps.v[k].l1_size, (uint64_t)end,
                               l2, &o, errp);
            }
            free(l1);
        }
        qcow2_snapshot_table_free(&snaps);
    }
    free(l2);
    if (r < 0) {
        free(o.v);
        return r;
    }
    qsort(o.v, o.n, sizeof(*o.v), cmp_mapping);
    ext = calloc(o.n ? o.n : 1, sizeof(*ext));
    if (!ext) {
        free(o.v);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < o.n; i++) {
        uint64_t off = o.v[i].host, guest = o.v[i].guest;
        uint64_t len = MIN((uint64_t)s->cluster_size, (uint64_t)end - off);

        if (i && o.v[i - 1].host == off) {
            if (aes && o.v[i - 1].guest != guest) {
                r = vimg_error_set(errp, -ENOTSUP, "Host cluster %#" PRIx64
                                   " is used at guest offsets %#" PRIx64
                                   " and %#" PRIx64 " (legacy AES data has "
                                   "one meaning per guest offset); use "
                                   "'vimg convert'", off, o.v[i - 1].guest,
                                   guest);
                free(o.v);
                free(ext);
                return r;
            }
            continue;                   /* shared cluster, already listed */
        }
        len = ROUND_UP(len, 512);
        if (m && ext[m - 1].off + ext[m - 1].len == off &&
            (!aes || ext[m - 1].guest + ext[m - 1].len == guest)) {
            ext[m - 1].len += len;
        } else {
            ext[m].off = off;
            ext[m].len = len;
            ext[m].guest = guest;
            m++;
        }
    }
    free(o.v);
    *out = ext;
    *n = m;
    return 0;
}

#define AES_SAMPLES     64
#define AES_SAMPLE_LEN  4096

/*
 * Legacy AES has no key check, so before a migration starts, decrypt the
 * first 4 KiB of up to AES_SAMPLES data clusters spread over @ext and
 * refuse if every one looks uniformly random (qcowaes_looks_random): that
 * is what a wrong passphrase gives, and migrating would make the garbage
 * permanent under the new key.  Real data has some structured block.
 */
static int
aes_check_key(struct vimg_image *img, const struct reenc_extent *ext,
              size_t n, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t total = 0, want, k, idx, first = 0;
    uint8_t *buf;
    size_t e = 0;
    int r;

    for (e = 0; e < n; e++) {
        total += DIV_ROUND_UP(ext[e].len, s->cluster_size);
    }
    if (total == 0) {
        return 0;                       /* no data: nothing to garble */
    }
    buf = malloc(AES_SAMPLE_LEN);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    want = MIN(total, (uint64_t)AES_SAMPLES);
    e = 0;
    for (k = 0; k < want; k++) {
        uint64_t rel, len;

        idx = k * total / want;         /* cluster number over all extents */
        while (idx >= first + DIV_ROUND_UP(ext[e].len, s->cluster_size)) {
            first += DIV_ROUND_UP(ext[e].len, s->cluster_size);
            e++;
        }
        rel = (idx - first) * s->cluster_size;
        len = MIN((uint64_t)AES_SAMPLE_LEN, ext[e].len - rel);
        r = full_pread(img->fd, buf, len, ext[e].off + rel);
        if (r == 0) {
            r = qcowaes_decrypt(s->aes, (ext[e].guest + rel) / 512, buf, len);
        }
        if (r < 0) {
            free(buf);
            return vimg_error_set(errp, r, "Could not read data at host "
                                  "offset %#" PRIx64 ": %s", ext[e].off + rel,
                                  strerror(-r));
        }
        if (!qcowaes_looks_random(buf, len)) {
            free(buf);
            return 0;
        }
    }
    free(buf);
    return vimg_error_set(errp, -EINVAL, "The decrypted data of '%s' looks "
                          "random: wrong passphrase? (--force if the guest "
                          "data really is random)", img->filename);
}

/* The new header's settings: the old ones unless -o encrypt.X names others. */
static int
take_params(struct vimg_opts *opts, struct luks1_create_params *p,
            struct vimg_error **errp)
{
    static const struct {
        const char *key;
        int (*parse)(const char *);
    } algs[] = {
        { "encrypt.cipher-alg", crypto_cipher_alg_parse },
        { "encrypt.cipher-mode", crypto_cipher_mode_parse },
        { "encrypt.ivgen-alg", crypto_ivgen_alg_parse },
        { "encrypt.ivgen-hash-alg", crypto_hash_alg_parse },
        { "encrypt.hash-alg", crypto_hash_alg_parse },
    };
    uint64_t count = 0;
    size_t i;
    int r;

    for (i = 0; i < ARRAY_SIZE(algs); i++) {
        const char *v = vimg_opts_take(opts, algs[i].key);
        int a;

        if (!v) {
            continue;
        }
        a = algs[i].parse(v);
        if (a < 0) {
            return vimg_error_set(errp, -EINVAL, "Parameter '%s' does not "
                                  "accept value '%s'",
                                  algs[i].key + strlen("encrypt."), v);
        }
        switch (i) {
        case 0: p->cipher = (enum crypto_cipher_alg)a; break;
        case 1: p->mode = (enum crypto_cipher_mode)a; break;
        case 2: p->ivgen = (enum crypto_ivgen_alg)a; break;
        case 3:
            p->ivgen_hash = (enum crypto_hash_alg)a;
            p->ivgen_hash_set = true;
            break;
        default: p->hash = (enum crypto_hash_alg)a; break;
        }
    }
    r = opts_take_i64(opts, "encrypt.iter-time", &p->iter_time_ms, errp);
    if (r < 0) {
        return r;
    }
    if (vimg_opts_get(opts, "encrypt.iter-count")) {
        r = opts_take_u64(opts, "encrypt.iter-count", &count, errp);
        if (r < 0) {
            return r;
        }
        if (count == 0 || count > UINT32_MAX) {
            return vimg_error_set(errp, -EINVAL, "Parameter "
                                  "'encrypt.iter-count' expects a number "
                                  "between 1 and 4294967295");
        }
        p->iterations = (uint32_t)count;
    }
    return vimg_opts_check_unused(opts, errp);
}

int
qcow2_crypt_writable(struct vimg_image *img, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    if (s->stale) {
        return vimg_error_set(errp, -ESTALE, "'%s' was re-encrypted; reopen "
                              "it", img->filename);
    }
    if (s->reenc) {
        return reenc_busy_error(img->filename, errp);
    }
    return 0;
}

/*
 * Make cluster 0 say qcow2+LUKS with the header region at @off: crypt
 * method 2 and the FDE extension inserted first, everything after it
 * (other extensions, the end marker, a backing file name) moved up 24
 * bytes; one write of the changed sectors, then a flush.
 */
static int
switch_header(struct vimg_image *img, uint64_t off, uint64_t len,
              struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const struct qcow2_header *h = &s->hdr;
    size_t cs = s->cluster_size;
    uint64_t hl = h->version >= 3 ? h->header_length : QCOW2_V2_HEADER_LEN;
    uint64_t p = hl, end;
    uint8_t *buf = malloc(cs);
    int r;

    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = full_pread(img->fd, buf, cs, 0);
    if (r < 0) {
        free(buf);
        return vimg_error_set(errp, r, "Could not read the qcow2 header: %s",
                              strerror(-r));
    }
    while (p + 8 <= cs && ld_be32(buf + p) != 0) {
        p += 8 + ROUND_UP((uint64_t)ld_be32(buf + p + 4), 8);
    }
    end = p + 8;
    if (h->backing_file_offset) {
        end = MAX(end, h->backing_file_offset + h->backing_file_size);
    }
    if (p + 8 > cs || end + 24 > cs) {
        free(buf);
        return vimg_error_set(errp, -ENOSPC, "No room for the encryption "
                              "header extension in the first cluster; use "
                              "'vimg convert'");
    }
    memmove(buf + hl + 24, buf + hl, end - hl);
    st_be32(buf + hl, QCOW2_EXT_CRYPTO);
    st_be32(buf + hl + 4, 16);
    st_be64(buf + hl + 8, off);
    st_be64(buf + hl + 16, len);
    if (h->backing_file_offset) {
        st_be64(buf + 8, h->backing_file_offset + 24);
    }
    st_be32(buf + 32, QCOW2_CRYPT_LUKS);
    r = full_pwrite(img->fd, buf, ROUND_UP(end + 24, 512), 0);
    if (r == 0) {
        r = file_flush(img->fd);
    }
    free(buf);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the qcow2 header: %s",
                              strerror(-r));
    }
    return 0;
}

/*
 * Finishing step of encrypting a plain image, after the new LUKS header
 * area is in its clusters: refcount those clusters (unless a previous
 * attempt did), then one header write makes the image qcow2+LUKS.
 * Idempotent.
 */
static int
plain_finish(void *opaque, struct vimg_error **errp)
{
    struct vimg_image *img = opaque;
    struct qcow2_state *s = img->priv;
    uint64_t off, len, c, ref;
    int r;

    reenc_header_area(s->reenc, &off, &len);
    if (s->hdr.crypt_method == QCOW2_CRYPT_LUKS && s->crypto_offset == off) {
        return 0;
    }
    for (c = off; c < off + len; c += s->cluster_size) {
        r = qcow2_get_refcount(img, c >> s->cluster_bits, &ref, errp);
        if (r == 0 && ref == 0) {
            r = qcow2_update_refcount(img, c, s->cluster_size, 1, errp);
        }
        if (r < 0) {
            return r;
        }
    }
    r = qcow2_refcount_flush(img, errp);
    if (r < 0) {
        return r;
    }
    r = switch_header(img, off, len, errp);
    if (r == 0) {
        s->crypto_offset = off;
        s->crypto_length = len;
        s->has_crypto_ext = true;
        s->hdr.crypt_method = QCOW2_CRYPT_LUKS;
    }
    return r;
}

/*
 * Where the new header of a plain image goes: from the journal when
 * resuming, else newly allocated clusters (refcounts in memory only; see
 * plain_finish).
 */
static int
plain_header_area(struct vimg_image *img, const struct luks1_create_params *p,
                  struct reenc_target *t, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint64_t len, off;
    int r;

    t->old = NULL;
    t->finish = plain_finish;
    t->opaque = img;
    if (s->reenc) {
        reenc_header_area(s->reenc, &t->hdr_off, &t->hdr_len);
        return 0;
    }
    r = luks1_payload_bytes(p, &len, errp);
    if (r == 0) {
        r = qcow2_alloc_clusters(img, DIV_ROUND_UP(len, s->cluster_size),
                                 &off, errp);
    }
    if (r < 0) {
        return r;
    }
    t->hdr_off = off;
    t->hdr_len = len;
    return 0;
}

int
qcow2_reencrypt(struct vimg_image *img, struct vimg_opts *opts,
                struct vimg_secrets *secrets, bool force,
                vimg_progress_fn progress, void *opaque,
                struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct luks1_create_params p;
    struct reenc_extent *ext = NULL;
    struct reenc_target t = {0};
    const char *key_id;
    bool aes = s->hdr.crypt_method == QCOW2_CRYPT_AES;
    /* No LUKS header yet: one is made and the qcow2 header switched. */
    bool plain = s->hdr.crypt_method == QCOW2_CRYPT_NONE || aes;
    char *pw = NULL;
    size_t pwlen = 0, n = 0;
    int r;

    if (s->stale) {
        return qcow2_crypt_writable(img, errp);
    }
    if (aes ? !s->aes
        : !plain && (!s->luks || !luks1_unlocked(s->luks))) {
        return vimg_error_set(errp, -EACCES, "The image is not unlocked");
    }
    if (s->hdr.incompatible_features & QCOW2_INCOMPAT_DATA_FILE) {
        return vimg_error_set(errp, -ENOTSUP, "Images with an external data "
                              "file cannot be re-encrypted");
    }
    key_id = vimg_opts_take(opts, "encrypt.key-secret");
    if (plain) {
        luks1_create_params_default(&p);
    } else {
        luks1_params_from(s->luks, &p);
    }
    r = take_params(opts, &p, errp);
    if (r < 0) {
        return r;
    }
    if (!key_id) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'encrypt.key-secret' "
                              "is required for cipher");
    }
    r = plain ? 0 : reenc_check_slots(s->reenc, img->filename, s->luks,
                                      force, errp);
    if (r < 0) {
        return r;
    }
    /* Everything the tables say must be on disk before they are walked. */
    r = qcow2_metadata_flush(img, errp);
    if (r == 0 && !reenc_finishing(s->reenc)) {
        r = data_extents(img, &ext, &n, errp);
    }
    /* A new AES migration (a resume's journal header checks the key). */
    if (r == 0 && aes && !s->reenc && !force) {
        r = aes_check_key(img, ext, n, errp);
    }
    if (r == 0) {
        r = secrets ? secret_get_password(secrets, key_id, &pw, &pwlen, errp)
                    : vimg_error_set(errp, -ENOENT, "No secret with id '%s'",
                                     key_id);
    }
    if (r < 0) {
        free(ext);
        return r;
    }
    t.fd = img->fd;
    t.filename = img->filename;
    t.hdr_off = s->crypto_offset;
    t.hdr_len = s->crypto_length;
    t.iv_base = 0;
    t.old = s->luks;
    if (plain) {
        r = plain_header_area(img, &p, &t, errp);
        t.old_aes = aes ? s->aes : NULL;
        if (r < 0) {
            safe_free(pw);
            free(ext);
            return r;
        }
    }
    r = reenc_run(&t, &s->reenc, ext, n, &p, pw, pwlen, progress, opaque,
                  errp);
    if (r < 0 && plain && !s->reenc) {
        /* No journal was made: give the header clusters back. */
        (void)qcow2_update_refcount(img, t.hdr_off, t.hdr_len, -1, NULL);
    }
    safe_free(pw);
    free(ext);
    if (r == 0) {
        s->stale = true;
    }
    return r;
}
