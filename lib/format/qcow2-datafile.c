/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 external data files (docs/interop/qcow2.txt of QEMU 7.2:
 * incompatible bit 2, autoclear bit 1 "raw external data", header
 * extension 0x44415441 with the file name; qemu-facts.md 1.1-1.3).
 *
 * Guest data lives in a second file at host offset == guest offset; the
 * qcow2 file keeps only metadata.  L2 entries still mark clusters as
 * allocated (host offset 0 counts when OFLAG_COPIED is set), but data
 * clusters get no refcounts.  With data_file_raw the data file must stay
 * a valid raw image of the guest: creation preallocates the metadata (so
 * every cluster maps to itself), zero writes also write zeroes, and
 * resize resizes the file.
 *
 * Observed qemu 7.2 behaviour this follows:
 *   - the name is opened as stored, i.e. relative to the working
 *     directory, not to the image's directory (qemu-img create also
 *     creates it there);
 *   - info (a no-I/O open) does not need the data file; check and I/O
 *     opens do (so a missing file fails as in qemu-img check); they fail
 *     with "'data-file' is required for this image" when the bit is set
 *     but no name is stored, and with "Could not open 'NAME': ..." when
 *     the file is missing;
 *   - an extension without the bit is only shown by info; the data then
 *     lives in the qcow2 file as usual;
 *   - compressed clusters are impossible (writes fail with "Operation not
 *     supported"), snapshots are refused.
 */
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "internal.h"
#include "qcow2.h"

int
qcow2_datafile_ext(struct qcow2_state *s, const uint8_t *data, uint32_t len,
                   struct vimg_error **errp)
{
    if (len > QCOW2_MAX_DATA_FILE_NAME) {
        return vimg_error_set(errp, -EINVAL, "Data file name too long "
                              "(%u bytes, at most %u)", len,
                              QCOW2_MAX_DATA_FILE_NAME);
    }
    if (memchr(data, '\0', len)) {
        return vimg_error_set(errp, -EINVAL, "Data file name contains a NUL "
                              "byte");
    }
    free(s->data_file);
    s->data_file = strndup((const char *)data, len);
    if (!s->data_file) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    return 0;
}

/* "data-file.filename" (and "data-file.driver=file") from --image-opts. */
static int
take_override(struct vimg_opts *opts, const char **name,
              struct vimg_error **errp)
{
    const char *drv = vimg_opts_take(opts, "data-file.driver");

    *name = vimg_opts_take(opts, "data-file.filename");
    if (drv && strcmp(drv, "file") != 0) {
        return vimg_error_set(errp, -ENOTSUP, "Unsupported data-file driver "
                              "'%s' (vimg supports 'file')", drv);
    }
    if (*name && !**name) {
        *name = NULL;
    }
    return 0;
}

int
qcow2_datafile_open(struct vimg_image *img, struct vimg_opts *opts,
                    struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    bool rw = img->flags & VIMG_OPEN_RDWR;
    /* Read-only metadata opens (info, map) need no data file; check and
     * writable opens (resize, amend) do, as in qemu. */
    bool meta_only = (img->flags & VIMG_OPEN_NO_IO) && !rw &&
                     !(img->flags & VIMG_OPEN_CHECK);
    const char *name;
    struct stat st, ist;
    int r, flags;

    s->data_fd = -1;
    s->has_data_file = s->hdr.incompatible_features &
                       QCOW2_INCOMPAT_DATA_FILE;
    s->data_raw = s->has_data_file &&
                  (s->hdr.autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW);
    if ((img->flags & VIMG_OPEN_NO_EXTERNAL) &&
        (s->has_data_file || s->data_file ||
         (s->hdr.autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW))) {
        return vimg_error_set(errp, -EPERM, "The image names an external "
                              "data file; only self-contained images are "
                              "opened here");
    }
    r = take_override(opts, &name, errp);
    if (r < 0) {
        return r;
    }
    if (!s->has_data_file) {
        if ((s->hdr.autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW) &&
            !meta_only) {
            return vimg_error_set(errp, -EINVAL, "data-file-raw requires a "
                                  "data file");
        }
        if (name && !meta_only) {
            return vimg_error_set(errp, -EINVAL, "'data-file' can only be "
                                  "set for images with an external data "
                                  "file");
        }
        return 0;
    }
    if (meta_only) {
        return 0;
    }
    if (!name) {
        name = s->data_file;
    }
    if (!name) {
        return vimg_error_set(errp, -EINVAL, "'data-file' is required for "
                              "this image");
    }
    /* O_NONBLOCK: a name from a hostile header must not hang the open on
     * a FIFO; only regular files and block devices are data files. */
    s->data_fd = open(name, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC |
                      O_NONBLOCK);
    if (s->data_fd < 0) {
        return vimg_error_set(errp, -errno, "Could not open '%s': %s", name,
                              strerror(errno));
    }
    if (fstat(s->data_fd, &st) < 0 ||
        (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        return vimg_error_set(errp, -EINVAL, "Could not open '%s': not a "
                              "regular file or block device", name);
    }
    if (fstat(img->fd, &ist) == 0 && ist.st_dev == st.st_dev &&
        ist.st_ino == st.st_ino) {
        /* Guest writes would overwrite the metadata. */
        return vimg_error_set(errp, -EINVAL, "Could not open '%s': the data "
                              "file is the image file itself", name);
    }
    flags = fcntl(s->data_fd, F_GETFL);
    if (flags < 0 || fcntl(s->data_fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        return vimg_error_set(errp, -errno, "Could not open '%s': %s", name,
                              strerror(errno));
    }
    return 0;
}

void
qcow2_datafile_close(struct qcow2_state *s)
{
    if (s->has_data_file && s->data_fd >= 0) {
        close(s->data_fd);
    }
    s->data_fd = -1;
    free(s->data_file);
    s->data_file = NULL;
}

int
qcow2_datafile_alloc(struct vimg_image *img, uint64_t guest, uint64_t n,
                     uint64_t *host, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;

    if (!s->has_data_file) {
        return qcow2_alloc_clusters(img, n, host, errp);
    }
    *host = guest & ~(uint64_t)(s->cluster_size - 1);
    return 0;
}

int
qcow2_datafile_check_host(const struct qcow2_state *s, uint64_t host,
                          uint64_t guest, struct vimg_error **errp)
{
    uint64_t gc = guest & ~(uint64_t)(s->cluster_size - 1);

    if (s->has_data_file && host != gc) {
        return vimg_error_set(errp, -EIO, "External data file host cluster "
                              "offset %#" PRIx64 " does not match guest "
                              "cluster offset: %#" PRIx64, host, gc);
    }
    return 0;
}

int
qcow2_datafile_zeroed(struct vimg_image *img, uint64_t off, uint64_t len,
                      struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r;

    if (!s->data_raw || len == 0) {
        return 0;
    }
    r = file_punch_zero(s->data_fd, off, len, false);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not zero the data file: %s",
                              strerror(-r));
    }
    return 0;
}

int
qcow2_datafile_truncate(struct vimg_image *img, uint64_t size,
                        struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    int r;

    if (!s->has_data_file || s->data_fd < 0) {
        return 0;
    }
    r = file_truncate(s->data_fd, size);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not resize the data file: %s",
                              strerror(-r));
    }
    return 0;
}

int
qcow2_datafile_create(struct vimg_image *img, const char *name, bool raw,
                      uint64_t size, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    size_t len = strlen(name);
    struct stat st, ist;
    int fd, r;

    if (len > QCOW2_MAX_DATA_FILE_NAME) {
        return vimg_error_set(errp, -EINVAL, "Data file name too long");
    }
    fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return vimg_error_set(errp, -errno, "Could not create '%s': %s",
                              name, strerror(errno));
    }
    if (fstat(fd, &st) == 0 && fstat(img->fd, &ist) == 0 &&
        st.st_dev == ist.st_dev && st.st_ino == ist.st_ino) {
        close(fd);
        return vimg_error_set(errp, -EINVAL, "Could not create '%s': the "
                              "data file is the image file itself", name);
    }
    /* Emptied, then sized: old content does not survive (as qemu). */
    r = file_truncate(fd, 0);
    if (r == 0) {
        r = file_truncate(fd, size);
    }
    if (r < 0) {
        close(fd);
        return vimg_error_set(errp, r, "Could not resize '%s': %s", name,
                              strerror(-r));
    }
    s->data_file = strdup(name);
    if (!s->data_file) {
        close(fd);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    s->data_fd = fd;
    s->has_data_file = true;
    s->data_raw = raw;
    s->hdr.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
    if (raw) {
        s->hdr.autoclear_features |= QCOW2_AUTOCLEAR_DATA_RAW;
    }
    return 0;
}

void
qcow2_datafile_info(const struct qcow2_state *s, struct json_object *data)
{
    if (s->data_file) {
        json_object_object_add(data, "data-file",
                               json_object_new_string(s->data_file));
    }
    if (s->has_data_file) {
        json_object_object_add(data, "data-file-raw",
                               json_object_new_boolean(s->data_raw));
    }
}

/* ---- amend -------------------------------------------------------------- */

int
qcow2_datafile_amend_parse(struct vimg_image *img, struct vimg_opts *opts,
                           struct qcow2_datafile_amend *a,
                           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const char *df;
    bool raw = false;
    int r;

    memset(a, 0, sizeof(*a));
    df = vimg_opts_take(opts, "data_file");
    if (df) {
        if (!s->has_data_file) {
            return vimg_error_set(errp, -EINVAL, "data-file can only be set "
                                  "for images that use an external data "
                                  "file");
        }
        if (strlen(df) > QCOW2_MAX_DATA_FILE_NAME) {
            return vimg_error_set(errp, -EINVAL, "Data file name too long");
        }
        a->set_name = true;
        a->name = *df ? df : NULL;      /* "" removes the name, as qemu */
    }
    if (vimg_opts_get(opts, "data_file_raw")) {
        r = opts_take_bool(opts, "data_file_raw", &raw, errp);
        if (r < 0) {
            return r;
        }
        /* Turning it on would need the whole data file rewritten. */
        if (raw && !s->data_raw) {
            return vimg_error_set(errp, -EINVAL, "data-file-raw cannot be set "
                                  "on existing images");
        }
        a->clear_raw = !raw && s->data_raw;
    }
    return 0;
}

int
qcow2_datafile_amend_apply(struct vimg_image *img,
                           const struct qcow2_datafile_amend *a,
                           struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    uint8_t be[8];
    int r;

    if (a->set_name) {
        char *n = a->name ? strdup(a->name) : NULL;

        if (a->name && !n) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        free(s->data_file);
        s->data_file = n;
    }
    if (!a->clear_raw) {
        return 0;
    }
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    s->hdr.autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_RAW;
    s->data_raw = false;
    st_be64(be, s->hdr.autoclear_features);
    r = full_pwrite(img->fd, be, 8, 88);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not update the qcow2 header: "
                              "%s", strerror(-r));
    }
    return qcow2_sync(img, errp);
}

size_t
qcow2_datafile_insert_ext(const struct qcow2_state *s, uint8_t *buf,
                          size_t at, size_t off, size_t cs)
{
    size_t dlen, step;

    if (!s->data_file) {
        return off;
    }
    dlen = strlen(s->data_file);
    step = 8 + ROUND_UP(dlen, 8);
    if (off + step + 8 > cs) {
        return 0;
    }
    memmove(buf + at + step, buf + at, off - at);
    memset(buf + at, 0, step);
    st_be32(buf + at, QCOW2_EXT_DATA_FILE);
    st_be32(buf + at + 4, (uint32_t)dlen);
    memcpy(buf + at + 8, s->data_file, dlen);
    return off + step;
}
