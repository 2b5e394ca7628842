/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_check: the format-independent part of `qemu-img check`
 * (qemu-facts.md 7.3).  It validates the request and hands it to the
 * format's check callback; formats without one fail with qemu's "This
 * image format does not support checks" (-ENOTSUP, the CLI's exit status
 * 63).  Repairs need a read-write handle.  The second, verifying pass that
 * qemu-img runs after a repair is the caller's (see tools/cmd-check.c), so
 * one call is always exactly one pass over the metadata.
 */
#include "config.h"

#include <string.h>

#include "internal.h"

int
vimg_check(struct vimg_image *img, unsigned fix, struct vimg_check_result *res,
           vimg_check_report_fn report, void *opaque, struct vimg_error **errp)
{
    int r;

    if (!img || !res) {
        return vimg_error_set(errp, -EINVAL, "Invalid check request");
    }
    memset(res, 0, sizeof(*res));
    if (fix & ~(unsigned)(VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS)) {
        return vimg_error_set(errp, -EINVAL, "Unknown repair flags 0x%x", fix);
    }
    if (!img->ops->check) {
        return vimg_error_set(errp, -ENOTSUP,
                              "This image format does not support checks");
    }
    if (fix && !(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    r = img->ops->check(img, fix, res, report, opaque, errp);
    if (r < 0 && errp && !*errp) {
        vimg_error_set(errp, r, "Check failed: %s", strerror(-r));
    }
    return r;
}
