/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secret_keyring: the payload of a Linux kernel key (keyctl(2) KEYCTL_READ),
 * as qemu's secret_keyring object reads it.  The raw system call is used so
 * that libvimg does not need libkeyutils.  The payload goes straight into
 * safe_alloc() memory.  Failure text is qemu's:
 * "Unable to read serial key %08x: <strerror>".
 */
#include "config.h"

#include <errno.h>
#include <linux/keyctl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"

/* Kernel keys are at most 1 MiB (big_key); refuse anything beyond. */
#define KEYRING_PAYLOAD_MAX (1024 * 1024)

static long
keyctl_read(int32_t serial, void *buf, size_t buflen)
{
    return syscall(SYS_keyctl, KEYCTL_READ, (long)serial, buf, buflen);
}

static int
read_error(struct vimg_error **errp, int32_t serial, int e)
{
    return vimg_error_set(errp, -e, "Unable to read serial key %08x: %s",
                          (uint32_t)serial, strerror(e));
}

/**
 * secret_keyring_read - the payload of kernel key @serial.
 * @out: receives a safe_alloc() buffer of exactly *@len bytes.
 * Return: 0, or -errno of keyctl (e.g. -ENOKEY) with qemu's message.
 */
int
secret_keyring_read(int32_t serial, uint8_t **out, size_t *len,
                    struct vimg_error **errp)
{
    long n = keyctl_read(serial, NULL, 0);
    int tries;

    if (n < 0) {
        return read_error(errp, serial, errno);
    }
    /* The key may change size between the calls: retry a few times. */
    for (tries = 0; tries < 4; tries++) {
        uint8_t *buf;
        long got;

        if (n > KEYRING_PAYLOAD_MAX) {
            return read_error(errp, serial, EFBIG);
        }
        buf = safe_alloc((size_t)n);
        if (!buf) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        got = keyctl_read(serial, buf, (size_t)n);
        if (got < 0) {
            int e = errno;

            safe_free(buf);
            return read_error(errp, serial, e);
        }
        if (got <= n) {
            if (got < n) {
                uint8_t *exact = safe_memdup(buf, (size_t)got);

                safe_free(buf);
                if (!exact) {
                    return vimg_error_set(errp, -ENOMEM, "Out of memory");
                }
                buf = exact;
            }
            *out = buf;
            *len = (size_t)got;
            return 0;
        }
        safe_free(buf);
        n = got;
    }
    return read_error(errp, serial, EAGAIN);
}
