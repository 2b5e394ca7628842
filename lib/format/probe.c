/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format probing: guess an image's format from its first bytes.
 *
 * Each format's probe callback scores the header (0..100); the highest score
 * wins and raw (score 1) is the fallback.  Two deliberate deviations from
 * qemu 7.2, which would silently treat these files as raw:
 *  - a LUKS2 header probes as "luks" (the luks format reads LUKS1 and
 *    LUKS2), and a LUKS header with any other version than 1 or 2 is an
 *    error ("LUKS version 3 is not supported"), so a LUKS volume is never
 *    opened and written to as if it were a plain disk;
 *  - the qcow/qcow2 magic "QFI\xfb" is reported as not supported yet
 *    unless a registered format (probe_formats[]) claims it.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "internal.h"

#define PROBE_LEN 4096

static const struct vimg_format_ops *const probe_formats[] = {
    &vimg_format_luks,
    &vimg_format_qcow,
    &vimg_format_qcow2,
    &vimg_format_raw,
};

/* Read up to PROBE_LEN bytes; a short file just gives fewer bytes. */
static ssize_t
read_head(int fd, uint8_t *buf)
{
    size_t got = 0;

    while (got < PROBE_LEN) {
        ssize_t r = pread(fd, buf + got, PROBE_LEN - got, (off_t)got);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int
vimg_probe(const char *filename, const char **format_out,
           struct vimg_error **errp)
{
    uint8_t buf[PROBE_LEN];
    struct stat st;
    const char *best = "raw";
    int best_score = -1, fd, version;
    ssize_t len;
    size_t i;

    if (!filename || !format_out) {
        return vimg_error_set(errp, -EINVAL, "Invalid probe request");
    }
    fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return vimg_error_set(errp, -errno, "Could not open '%s': %s",
                              filename, strerror(errno));
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return vimg_error_set(errp, -EISDIR,
                              "'file' driver requires '%s' to be a regular "
                              "file", filename);
    }
    len = read_head(fd, buf);
    close(fd);
    if (len < 0) {
        return vimg_error_set(errp, (int)len, "Could not read '%s': %s",
                              filename, strerror((int)-len));
    }

    /* Any LUKS magic whose version is not 1 or 2 is refused. */
    if (len >= 8 && memcmp(buf, "LUKS\xba\xbe", 6) == 0) {
        version = ld_be16(buf + 6);
        if (version != 1 && version != 2) {
            return vimg_error_set(errp, -ENOTSUP,
                                  "LUKS version %d is not supported", version);
        }
    }
    for (i = 0; i < ARRAY_SIZE(probe_formats); i++) {
        const struct vimg_format_ops *ops = probe_formats[i];
        int score;

        if (!ops->probe) {
            continue;
        }
        score = ops->probe(buf, (size_t)len, filename);
        if (score > best_score) {
            best_score = score;
            best = ops->name;
        }
    }
    /* qcow/qcow2 magic that no registered format claimed. */
    if (strcmp(best, "raw") == 0 && len >= 4 &&
        memcmp(buf, "QFI\xfb", 4) == 0) {
        bool v1 = len >= 8 && ld_be32(buf + 4) == 1;

        return vimg_error_set(errp, -ENOTSUP,
                              "Format '%s' is not supported yet",
                              v1 ? "qcow" : "qcow2");
    }
    *format_out = best;
    return 0;
}
