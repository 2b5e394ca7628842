/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Error objects: a negative errno plus a message.  Created deep in the
 * library, given context on the way up (vimg_error_prefix), printed only by
 * the tools.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vimg_error {
    int code;
    char *msg;
};

static struct vimg_error oom_error = { -ENOMEM, (char *)"Out of memory" };

const char *
vimg_error_message(const struct vimg_error *err)
{
    return err && err->msg ? err->msg : "Unknown error";
}

int
vimg_error_code(const struct vimg_error *err)
{
    return err ? err->code : -EIO;
}

void
vimg_error_free(struct vimg_error *err)
{
    if (err && err != &oom_error) {
        free(err->msg);
        free(err);
    }
}

const char *
vimg_version(void)
{
    return VIMG_VERSION;
}

int
vimg_error_setv(struct vimg_error **errp, int code, const char *fmt,
                va_list ap)
{
    struct vimg_error *e;

    if (code >= 0) {
        code = -EIO;      /* an error must never look like success */
    }
    if (!errp || *errp) {
        return code;
    }
    e = calloc(1, sizeof(*e));
    if (!e || vasprintf(&e->msg, fmt, ap) < 0) {
        free(e);
        *errp = &oom_error;
        return code;
    }
    e->code = code;
    *errp = e;
    return code;
}

int
vimg_error_set(struct vimg_error **errp, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    code = vimg_error_setv(errp, code, fmt, ap);
    va_end(ap);
    return code;
}

int
vimg_error_errno(struct vimg_error **errp, int code, const char *fmt, ...)
{
    char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0) {
        what = NULL;
    }
    va_end(ap);
    code = vimg_error_set(errp, code, "%s: %s", what ? what : "I/O",
                          strerror(code < 0 ? -code : EIO));
    free(what);
    return code;
}

void
vimg_error_prefix(struct vimg_error **errp, const char *fmt, ...)
{
    char *prefix = NULL, *msg = NULL;
    va_list ap;

    if (!errp || !*errp || *errp == &oom_error) {
        return;
    }
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0) {
        prefix = NULL;
    }
    va_end(ap);
    if (prefix && asprintf(&msg, "%s: %s", prefix, (*errp)->msg) >= 0) {
        free((*errp)->msg);
        (*errp)->msg = msg;
    }
    free(prefix);
}
