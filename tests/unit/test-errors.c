/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of lib/errors.c: set/first-error-wins, NULL errp, prefixing on
 * the way up, errno messages, codes that must never look like success, and
 * the accessors' NULL handling.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

static int
deep(struct vimg_error **errp)
{
    return vimg_error_set(errp, -EPERM,
                          "Invalid password, cannot unlock any keyslot");
}

static int
middle(struct vimg_error **errp)
{
    int r = deep(errp);

    if (r < 0) {
        /* A second, shallower error must not replace the first. */
        vimg_error_set(errp, -EIO, "something generic");
        vimg_error_prefix(errp, "Could not open '%s'", "x.img");
    }
    return r;
}

int
main(void)
{
    struct vimg_error *err = NULL;
    int r;

    r = vimg_error_set(&err, -EINVAL, "Parameter '%s' is unexpected", "k");
    ok(r == -EINVAL, "vimg_error_set returns the code");
    ok(err != NULL, "error stored");
    ok_str(vimg_error_message(err), "Parameter 'k' is unexpected",
           "formatted message");
    ok(vimg_error_code(err) == -EINVAL, "code stored");
    vimg_error_free(err);
    err = NULL;

    ok(vimg_error_set(NULL, -ENOENT, "ignored %d", 1) == -ENOENT,
       "NULL errp still returns the code");

    r = middle(&err);
    ok(r == -EPERM, "deepest code propagates");
    ok_str(vimg_error_message(err),
           "Could not open 'x.img': Invalid password, cannot unlock any keyslot",
           "first error wins, prefix prepended");
    ok(vimg_error_code(err) == -EPERM, "first code kept");
    vimg_error_prefix(&err, "qemu-img");
    ok_str(vimg_error_message(err),
           "qemu-img: Could not open 'x.img': Invalid password, cannot "
           "unlock any keyslot", "prefixes nest");
    vimg_error_free(err);
    err = NULL;

    /* Prefix without an error does nothing. */
    vimg_error_prefix(&err, "context");
    ok(err == NULL, "prefix on no error creates none");
    vimg_error_prefix(NULL, "context");

    /* A non-negative code is turned into -EIO. */
    r = vimg_error_set(&err, 0, "bogus success");
    ok(r == -EIO && vimg_error_code(err) == -EIO,
       "code 0 becomes -EIO");
    vimg_error_free(err);
    err = NULL;
    r = vimg_error_set(&err, 5, "positive");
    ok(r == -EIO, "positive code becomes -EIO");
    vimg_error_free(err);
    err = NULL;

    r = vimg_error_errno(&err, -ENOENT, "Could not open '%s'", "y.img");
    ok(r == -ENOENT, "vimg_error_errno returns the code");
    {
        char want[128];

        snprintf(want, sizeof(want), "Could not open 'y.img': %s",
                 strerror(ENOENT));
        ok_str(vimg_error_message(err), want, "errno message has strerror");
    }
    vimg_error_free(err);
    err = NULL;

    ok_str(vimg_error_message(NULL), "Unknown error", "message of NULL");
    ok(vimg_error_code(NULL) == -EIO, "code of NULL is -EIO");
    vimg_error_free(NULL);

    ok(vimg_version() && strcmp(vimg_version(), VIMG_VERSION) == 0,
       "vimg_version matches the build");
    return tap_done();
}
