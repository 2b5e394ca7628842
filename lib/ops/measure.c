/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_measure: `qemu-img measure` (qemu-facts.md 7.4).  This file does
 * the format-independent part: find the output format, check the -o
 * options against its creation options, take the virtual size (the
 * caller's, or the source image's rounded up to whole 512-byte sectors as
 * qemu sees it; formats round a --size themselves if qemu does) and
 * hand over to the format's measure callback, which knows its layout
 * (raw: the size itself; luks: payload offset + size; qcow2: metadata
 * for the clusters the source allocates).
 *
 * The output format is looked up in image.c's registry with
 * vimg_format_find().
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

/* Every -o key must be a creation option of the format (qemu's wording). */
static int
check_opts(const struct vimg_format_ops *ops, const struct vimg_opts *opts,
           struct vimg_error **errp)
{
    size_t i, n = vimg_opts_count(opts);

    for (i = 0; i < n; i++) {
        const char *key = vimg_opts_key(opts, i);
        const struct vimg_opt_desc *d;
        bool found = false;

        for (d = ops->create_opts; d && d->name; d++) {
            if (strcmp(d->name, key) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            return vimg_error_set(errp, -EINVAL, "Invalid parameter '%s'", key);
        }
    }
    return 0;
}

/* A private copy, so that the callback may take options freely. */
static struct vimg_opts *
copy_opts(const struct vimg_opts *opts)
{
    struct vimg_opts *c = vimg_opts_new();
    size_t i, n;

    if (!c) {
        return NULL;
    }
    n = opts ? vimg_opts_count(opts) : 0;
    for (i = 0; i < n; i++) {
        if (vimg_opts_set(c, vimg_opts_key(opts, i), vimg_opts_value(opts, i)) <
            0) {
            vimg_opts_free(c);
            return NULL;
        }
    }
    return c;
}

int
vimg_measure(const char *format, struct vimg_opts *opts, struct vimg_image *src,
             uint64_t size, uint64_t *required, uint64_t *fully_allocated,
             struct vimg_error **errp)
{
    const struct vimg_format_ops *ops;
    struct vimg_opts *o;
    uint64_t req = 0, full = 0;
    int r;

    if (!format || !required || !fully_allocated) {
        return vimg_error_set(errp, -EINVAL, "Invalid measure request");
    }
    ops = vimg_format_find(format);
    if (!ops) {
        return vimg_error_set(errp, -EINVAL, "Unknown file format '%s'",
                              format);
    }
    if (!ops->measure) {
        return vimg_error_set(errp, -ENOTSUP,
                              "Format driver '%s' does not support measure",
                              format);
    }
    if (opts) {
        r = check_opts(ops, opts, errp);
        if (r < 0) {
            return r;
        }
    }
    if (size > INT64_MAX - 511) {
        return vimg_error_set(errp, -EINVAL,
                              "Invalid image size specified. Must be between "
                              "0 and %" PRId64 ".",
                              INT64_MAX);
    }
    if (src) {
        /* qemu sees every image in whole sectors. */
        size = ROUND_UP(vimg_image_size(src), 512);
    }

    o = copy_opts(opts);
    if (!o) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = ops->measure(o, src, size, &req, &full, errp);
    vimg_opts_free(o);
    if (r < 0) {
        if (errp && !*errp) {
            vimg_error_set(errp, r, "Measuring failed: %s", strerror(-r));
        }
        return r;
    }
    *required = req;
    *fully_allocated = full;
    return 0;
}
