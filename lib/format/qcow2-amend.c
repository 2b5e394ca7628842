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
 * qemu's other qcow2 amend options (compat, refcount_bits, backing_file,
 * ...) are recognised but refused with -ENOTSUP: vimg does not implement
 * them.  Encryption options on an image without encryption give "Can't
 * amend encryption options - encryption not present"; on a legacy AES
 * image "Only LUKS encryption options can be amended".
 */
#include "config.h"

#include <string.h>

#include "blockcrypt/luks1.h"
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

int
qcow2_amend(struct vimg_image *img, struct vimg_opts *opts,
            struct vimg_secrets *secrets, bool force, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct luks1_sync sync = { .opaque = img, .flush = qcow2_amend_flush };
    size_t i, n = opts ? vimg_opts_count(opts) : 0;
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
        } else {
            return vimg_error_set(errp, -ENOTSUP,
                                  "Amending '%s' is not supported by vimg "
                                  "(only the encrypt.* options)", k);
        }
    }
    if (!crypt_opts) {
        return 0;
    }
    switch (s->hdr.crypt_method) {
    case QCOW2_CRYPT_NONE:
        return vimg_error_set(errp, -EINVAL,
                              "Can't amend encryption options - encryption "
                              "not present");
    case QCOW2_CRYPT_LUKS:
        break;
    default:
        return vimg_error_set(errp, -EINVAL,
                              "Only LUKS encryption options can be amended");
    }
    if (!s->luks) {
        return vimg_error_set(errp, -EINVAL,
                              "Missing CRYPTO header for crypt method 2");
    }
    r = qcow2_crypt_writable(img, errp);
    if (r < 0) {
        return r;
    }
    return luks1_amend(s->luks, opts, QCOW2_AMEND_PREFIX, secrets, force,
                       &sync, errp);
}
