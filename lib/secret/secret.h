/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal view of the secret store (public part in vimg.h).  Every buffer
 * handed out comes from safe_alloc() and must be released with safe_free().
 */
#ifndef VIMG_SECRET_H
#define VIMG_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "vimg.h"

/**
 * secret_get_bytes - a safe copy of secret @id's payload.
 * Errors (qemu's texts): "No secret with id 'ID'" (-ENOENT).
 */
int secret_get_bytes(const struct vimg_secrets *s, const char *id,
                     uint8_t **out, size_t *len, struct vimg_error **errp);
/**
 * secret_get_password - the payload as a passphrase: must be valid UTF-8
 * without NUL bytes, as qemu 7.2 checks it ("Data from secret ID is not
 * valid UTF-8", -EINVAL); the result is NUL-terminated (*len excludes it).
 */
int secret_get_password(const struct vimg_secrets *s, const char *id,
                        char **out, size_t *len, struct vimg_error **errp);

/**
 * secret_keyring_read - the payload of kernel key @serial (keyctl read).
 * Error: "Unable to read serial key %08x: <strerror>" (-ENOKEY, ...).
 */
int secret_keyring_read(int32_t serial, uint8_t **out, size_t *len,
                        struct vimg_error **errp);

#endif /* VIMG_SECRET_H */
