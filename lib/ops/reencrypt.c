/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_image_reencrypt: the format-independent part of `vimg reencrypt`.
 * It checks the request and hands it to the format's reencrypt callback;
 * the journal and the chunk loop are in lib/format/reencrypt.c, what to
 * re-encrypt (the payload of raw luks, the data clusters of qcow2) is the
 * format's business.
 */
#include "config.h"

#include <string.h>

#include "internal.h"

int
vimg_image_reencrypt(struct vimg_image *img, struct vimg_opts *opts,
                     struct vimg_secrets *secrets, bool force,
                     vimg_progress_fn progress, void *opaque,
                     struct vimg_error **errp)
{
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "Invalid reencrypt request");
    }
    if (!img->ops->reencrypt) {
        return vimg_error_set(errp, -ENOTSUP,
                              "Format driver '%s' does not support "
                              "re-encryption", img->ops->name);
    }
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    if (img->flags & VIMG_OPEN_NO_IO) {
        return vimg_error_set(errp, -EINVAL, "Re-encryption needs the key");
    }
    r = img->ops->reencrypt(img, opts, secrets, force, progress, opaque,
                            errp);
    if (r < 0 && errp && !*errp) {
        vimg_error_set(errp, r, "Re-encryption failed: %s", strerror(-r));
    }
    return r;
}
