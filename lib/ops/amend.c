/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_image_amend: the format-independent part of `qemu-img amend`
 * (qemu-facts.md 5.8 and 7.4).  It checks the request and hands the option
 * list to the format's amend callback; formats without one fail with
 * qemu's "Format driver 'F' does not support option amendment".  What the
 * options mean (LUKS key slots for raw luks and for qcow2's "encrypt."
 * options) is the format's business; the key-slot work itself lives in
 * lib/blockcrypt/luks1-keyslot.c.
 */
#include "config.h"

#include <string.h>

#include "internal.h"

int
vimg_image_amend(struct vimg_image *img, struct vimg_opts *opts,
                 struct vimg_secrets *secrets, bool force,
                 struct vimg_error **errp)
{
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "Invalid amend request");
    }
    if (!img->ops->amend) {
        return vimg_error_set(errp, -ENOTSUP,
                              "Format driver '%s' does not support option "
                              "amendment", img->ops->name);
    }
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    r = img->ops->amend(img, opts, secrets, force, errp);
    if (r < 0 && errp && !*errp) {
        vimg_error_set(errp, r, "Amend failed: %s", strerror(-r));
    }
    return r;
}
