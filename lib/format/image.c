/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image object and the only caller of the format ops table
 * (struct vimg_format_ops in internal.h).
 *
 * Every public vimg_image_* entry point checks the handle state first
 * (metadata-only handles refuse data I/O, read-only handles refuse writes),
 * then the range against the virtual size, and splits requests that are not
 * aligned to the format's alignment into read-modify-write of the partial
 * head/tail blocks, so the formats only ever see aligned, in-range
 * requests.  If a format fails without setting an error, a generic message
 * is set here: a failure is never silent.
 *
 * Creation follows qemu-img: the size is rounded up to 512 bytes, every
 * option must be one of the format's creation options, and a file whose
 * creation failed half-way is deleted (even if it existed before).
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bytes.h"
#include "internal.h"
#include "reencrypt.h"

static const struct vimg_format_ops *const formats[] = {
    &vimg_format_raw,
    &vimg_format_luks,
    &vimg_format_qcow,
    &vimg_format_qcow2,
};

static const char *const format_names[] = { "raw", "luks", "qcow", "qcow2", NULL };

/* ---- format registry ---------------------------------------------------- */

static const struct vimg_format_ops *
find_format(const char *name)
{
    size_t i;

    if (!name) {
        return NULL;
    }
    for (i = 0; i < ARRAY_SIZE(formats); i++) {
        if (strcmp(formats[i]->name, name) == 0) {
            return formats[i];
        }
    }
    return NULL;
}

const struct vimg_format_ops *
vimg_format_find(const char *name)
{
    return find_format(name);
}

bool
vimg_format_known(const char *format)
{
    return find_format(format) != NULL;
}

const struct vimg_opt_desc *
vimg_format_create_opts(const char *format)
{
    const struct vimg_format_ops *ops = find_format(format);

    return ops ? ops->create_opts : NULL;
}

const char *const *
vimg_format_list(void)
{
    return format_names;
}

/* ---- helpers ------------------------------------------------------------ */

/*
 * After a failed format callback: make sure the caller gets a message even
 * if the format forgot to set one.
 */
static int
ensure_error(struct vimg_error **errp, int r, const char *what)
{
    if (r >= 0) {
        r = -EIO;
    }
    if (errp && !*errp) {
        vimg_error_set(errp, r, "%s failed: %s", what, strerror(-r));
    }
    return r;
}

static int
check_data_io(const struct vimg_image *img, bool write,
              struct vimg_error **errp)
{
    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (img->flags & VIMG_OPEN_NO_IO) {
        return vimg_error_set(errp, -EACCES,
                              "Image was opened without a key (metadata only)");
    }
    if (write && !(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    return 0;
}

static int
check_range(const struct vimg_image *img, uint64_t off, uint64_t len,
            struct vimg_error **errp)
{
    if (off > img->size || len > img->size - off) {
        return vimg_error_set(errp, -EINVAL,
                              "Request at offset %" PRIu64 " length %" PRIu64
                              " is out of range (image size %" PRIu64 ")",
                              off, len, img->size);
    }
    return 0;
}

/* ---- open / close / create ---------------------------------------------- */

int
vimg_image_open(const char *filename, const char *format,
                struct vimg_opts *opts, struct vimg_secrets *secrets,
                unsigned flags, struct vimg_image **out,
                struct vimg_error **errp)
{
    const struct vimg_format_ops *ops;
    struct vimg_opts *own_opts = NULL;
    struct vimg_image *img;
    int r;

    if (!out) {
        return vimg_error_set(errp, -EINVAL, "No output handle given");
    }
    *out = NULL;
    if (!filename) {
        return vimg_error_set(errp, -EINVAL, "No filename given");
    }
    if (flags & ~(unsigned)(VIMG_OPEN_RDWR | VIMG_OPEN_NO_IO |
                            VIMG_OPEN_CHECK | VIMG_OPEN_REENCRYPT |
                            VIMG_OPEN_NO_EXTERNAL)) {
        return vimg_error_set(errp, -EINVAL, "Unknown open flags 0x%x", flags);
    }
    if (format) {
        ops = find_format(format);
        if (!ops) {
            return vimg_error_set(errp, -EINVAL, "Unknown driver '%s'",
                                  format);
        }
    } else {
        const char *probed;

        r = vimg_probe(filename, &probed, errp);
        if (r < 0) {
            return r;
        }
        ops = find_format(probed);
        if (!ops) {
            return vimg_error_set(errp, -ENOTSUP, "Unknown driver '%s'",
                                  probed);
        }
    }
    /* Only `vimg reencrypt` may change an image whose re-encryption is
     * unfinished: any other writer (even metadata only, without the key:
     * snapshots, resize, repairs) would race the resume.  Checked before
     * the format opens it, as that may already write (a dirty qcow2). */
    if ((flags & VIMG_OPEN_RDWR) && !(flags & VIMG_OPEN_REENCRYPT) &&
        ops->reencrypt && reenc_pending(filename)) {
        return reenc_busy_error(filename, errp);
    }
    if (!opts) {
        own_opts = vimg_opts_new();
        if (!own_opts) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        opts = own_opts;
    }

    img = calloc(1, sizeof(*img));
    if (!img || !(img->filename = strdup(filename))) {
        free(img);
        vimg_opts_free(own_opts);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    img->ops = ops;
    img->flags = flags;
    img->alignment = 1;
    img->fd = open(filename,
                   ((flags & VIMG_OPEN_RDWR) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (img->fd < 0) {
        r = vimg_error_set(errp, -errno, "Could not open '%s': %s", filename,
                           strerror(errno));
        goto fail;
    }
    {
        struct stat st;

        if (fstat(img->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            r = vimg_error_set(errp, -EISDIR,
                               "'file' driver requires '%s' to be a regular "
                               "file", filename);
            goto fail;
        }
    }
    r = ops->open(img, opts, secrets, errp);
    if (r < 0) {
        ensure_error(errp, r, "Opening the image");
        goto fail;
    }
    r = vimg_opts_check_unused(opts, errp);
    if (r < 0) {
        if (ops->close) {
            ops->close(img);
        }
        goto fail;
    }
    if (img->alignment == 0 || (img->alignment & (img->alignment - 1))) {
        img->alignment = 1;     /* formats only use 1 or 512 */
    }
    vimg_opts_free(own_opts);
    *out = img;
    return 0;

fail:
    if (img->fd >= 0) {
        close(img->fd);
    }
    free(img->filename);
    free(img);
    vimg_opts_free(own_opts);
    return r;
}

int
vimg_image_close(struct vimg_image *img, struct vimg_error **errp)
{
    int r = 0;

    if (!img) {
        return 0;
    }
    if ((img->flags & VIMG_OPEN_RDWR) && img->ops->flush) {
        r = img->ops->flush(img, errp);
        if (r < 0) {
            ensure_error(errp, r, "Flushing the image");
        }
    }
    if (img->ops->close) {
        img->ops->close(img);
    }
    if (img->fd >= 0 && close(img->fd) < 0 && r == 0 &&
        (img->flags & VIMG_OPEN_RDWR)) {
        r = vimg_error_set(errp, -errno, "Could not close '%s': %s",
                           img->filename, strerror(errno));
    }
    free(img->filename);
    free(img);
    return r;
}

/* Every key in @opts must name a creation option of @ops (qemu's wording). */
static int
check_create_opts(const struct vimg_format_ops *ops,
                  const struct vimg_opts *opts, struct vimg_error **errp)
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
        /* qemu-img create -u: only for formats that have backing files. */
        if (!found && strcmp(key, VIMG_CREATE_OPT_BACKING_UNSAFE) == 0) {
            for (d = ops->create_opts; d && d->name; d++) {
                found |= strcmp(d->name, "backing_file") == 0;
            }
        }
        if (!found) {
            return vimg_error_set(errp, -EINVAL, "Invalid parameter '%s'",
                                  key);
        }
    }
    return 0;
}

int
vimg_image_create(const char *filename, const char *format, uint64_t size,
                  struct vimg_opts *opts, struct vimg_secrets *secrets,
                  struct vimg_error **errp)
{
    const struct vimg_format_ops *ops;
    struct vimg_opts *own_opts = NULL;
    int fd, r;

    if (!filename || !format) {
        return vimg_error_set(errp, -EINVAL, "No filename or format given");
    }
    ops = find_format(format);
    if (!ops) {
        return vimg_error_set(errp, -EINVAL, "Unknown file format '%s'",
                              format);
    }
    if (!ops->create) {
        return vimg_error_set(errp, -ENOTSUP,
                              "Format '%s' does not support image creation",
                              format);
    }
    if (!opts) {
        own_opts = vimg_opts_new();
        if (!own_opts) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        opts = own_opts;
    }
    r = check_create_opts(ops, opts, errp);
    if (r == 0 && vimg_opts_get(opts, "size")) {
        /* "-o size=..." is the size when none is given otherwise. */
        uint64_t osize = 0;

        r = opts_take_size(opts, "size", &osize, errp);
        if (r == 0 && size == 0) {
            size = osize;
        }
    }
    /* qemu-img rounds the size up to whole sectors. */
    if (r == 0 && size > INT64_MAX - 511) {
        r = vimg_error_set(errp, -EINVAL,
                           "Image size must be less than 8 EiB!");
    }
    if (r < 0) {
        vimg_opts_free(own_opts);
        return r;
    }
    size = ROUND_UP(size, 512);

    fd = open(filename, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = vimg_error_set(errp, -errno, "Could not create '%s': %s",
                           filename, strerror(errno));
        vimg_opts_free(own_opts);
        return r;
    }
    r = ops->create(fd, filename, size, opts, secrets, errp);
    if (r < 0) {
        ensure_error(errp, r, "Creating the image");
    } else {
        r = vimg_opts_check_unused(opts, errp);
    }
    if (close(fd) < 0 && r == 0) {
        r = vimg_error_set(errp, -errno, "Could not close '%s': %s",
                           filename, strerror(errno));
    }
    if (r < 0) {
        /* Like qemu: no half-made image is left behind. */
        unlink(filename);
    }
    vimg_opts_free(own_opts);
    return r;
}

/* ---- accessors ---------------------------------------------------------- */

const char *
vimg_image_format(const struct vimg_image *img)
{
    return img ? img->ops->name : NULL;
}

const char *
vimg_image_filename(const struct vimg_image *img)
{
    return img ? img->filename : NULL;
}

uint64_t
vimg_image_size(const struct vimg_image *img)
{
    return img ? img->size : 0;
}

bool
vimg_image_encrypted(const struct vimg_image *img)
{
    return img && img->encrypted;
}

bool
vimg_image_writable(const struct vimg_image *img)
{
    return img && (img->flags & VIMG_OPEN_RDWR);
}

uint32_t
vimg_image_alignment(const struct vimg_image *img)
{
    return img ? img->alignment : 1;
}

/* ---- data I/O ----------------------------------------------------------- */

/*
 * Read-modify-write of one partial block: @blk is the aligned block offset,
 * [@in_off, @in_off + @n) the part inside it that changes, @src the new
 * bytes (NULL: zeroes).
 */
static int
rmw_block(struct vimg_image *img, uint64_t blk, size_t in_off, size_t n,
          const uint8_t *src, struct vimg_error **errp)
{
    uint32_t a = img->alignment;
    uint8_t *bounce = malloc(a);
    int r;

    if (!bounce) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = img->ops->pread(img, bounce, a, blk, errp);
    if (r < 0) {
        free(bounce);
        return ensure_error(errp, r, "Reading");
    }
    if (src) {
        memcpy(bounce + in_off, src, n);
    } else {
        memset(bounce + in_off, 0, n);
    }
    r = img->ops->pwrite(img, bounce, a, blk, errp);
    free(bounce);
    if (r < 0) {
        return ensure_error(errp, r, "Writing");
    }
    return 0;
}

int
vimg_image_pread(struct vimg_image *img, void *buf, size_t len,
                 uint64_t offset, struct vimg_error **errp)
{
    uint8_t *p = buf;
    uint8_t *bounce = NULL;
    uint32_t a;
    int r;

    r = check_data_io(img, false, errp);
    if (r < 0) {
        return r;
    }
    r = check_range(img, offset, len, errp);
    if (r < 0 || len == 0) {
        return r;
    }
    a = img->alignment;
    if (IS_ALIGNED(offset, a) && IS_ALIGNED(len, a)) {
        r = img->ops->pread(img, buf, len, offset, errp);
        return r < 0 ? ensure_error(errp, r, "Reading") : 0;
    }
    while (len > 0) {
        size_t in = (size_t)(offset % a);

        if (in == 0 && len >= a) {
            size_t n = len - len % a;

            r = img->ops->pread(img, p, n, offset, errp);
            if (r < 0) {
                break;
            }
            p += n;
            offset += n;
            len -= n;
        } else {
            size_t n = MIN(len, (size_t)a - in);

            if (!bounce && !(bounce = malloc(a))) {
                return vimg_error_set(errp, -ENOMEM, "Out of memory");
            }
            r = img->ops->pread(img, bounce, a, offset - in, errp);
            if (r < 0) {
                break;
            }
            memcpy(p, bounce + in, n);
            p += n;
            offset += n;
            len -= n;
        }
    }
    free(bounce);
    return r < 0 ? ensure_error(errp, r, "Reading") : 0;
}

int
vimg_image_pwrite(struct vimg_image *img, const void *buf, size_t len,
                  uint64_t offset, struct vimg_error **errp)
{
    const uint8_t *p = buf;
    uint32_t a;
    int r;

    r = check_data_io(img, true, errp);
    if (r < 0) {
        return r;
    }
    r = check_range(img, offset, len, errp);
    if (r < 0 || len == 0) {
        return r;
    }
    a = img->alignment;
    while (len > 0) {
        size_t in = (size_t)(offset % a);

        if (in == 0 && len >= a) {
            size_t n = len - len % a;

            r = img->ops->pwrite(img, p, n, offset, errp);
            if (r < 0) {
                return ensure_error(errp, r, "Writing");
            }
            p += n;
            offset += n;
            len -= n;
        } else {
            size_t n = MIN(len, (size_t)a - in);

            r = rmw_block(img, offset - in, in, n, p, errp);
            if (r < 0) {
                return r;
            }
            p += n;
            offset += n;
            len -= n;
        }
    }
    return 0;
}

int
vimg_image_zero(struct vimg_image *img, uint64_t offset, uint64_t len,
                unsigned flags, struct vimg_error **errp)
{
    uint32_t a;
    int r;

    r = check_data_io(img, true, errp);
    if (r < 0) {
        return r;
    }
    r = check_range(img, offset, len, errp);
    if (r < 0 || len == 0) {
        return r;
    }
    a = img->alignment;
    while (len > 0) {
        size_t in = (size_t)(offset % a);

        if (in == 0 && len >= a) {
            uint64_t n = len - len % a;

            if (img->ops->zero) {
                r = img->ops->zero(img, offset, n, flags, errp);
                if (r < 0) {
                    return ensure_error(errp, r, "Zeroing");
                }
            } else {
                /* No zero callback: write a zero buffer. */
                uint8_t *z = calloc(1, (size_t)MIN(n, (uint64_t)1 << 20));
                uint64_t done = 0;

                if (!z) {
                    return vimg_error_set(errp, -ENOMEM, "Out of memory");
                }
                while (done < n) {
                    size_t step = (size_t)MIN(n - done, (uint64_t)1 << 20);

                    r = img->ops->pwrite(img, z, step, offset + done, errp);
                    if (r < 0) {
                        free(z);
                        return ensure_error(errp, r, "Writing");
                    }
                    done += step;
                }
                free(z);
            }
            offset += n;
            len -= n;
        } else {
            size_t n = (size_t)MIN(len, (uint64_t)(a - in));

            r = rmw_block(img, offset - in, in, n, NULL, errp);
            if (r < 0) {
                return r;
            }
            offset += n;
            len -= n;
        }
    }
    return 0;
}

int
vimg_image_discard(struct vimg_image *img, uint64_t offset, uint64_t len,
                   struct vimg_error **errp)
{
    uint64_t start, end;
    uint32_t a;
    int r;

    r = check_data_io(img, true, errp);
    if (r < 0) {
        return r;
    }
    r = check_range(img, offset, len, errp);
    if (r < 0 || len == 0 || !img->ops->discard) {
        return r;
    }
    /* A hint: only whole aligned blocks inside the range are discarded. */
    a = img->alignment;
    start = ROUND_UP(offset, (uint64_t)a);
    end = (offset + len) / a * a;
    if (end <= start) {
        return 0;
    }
    r = img->ops->discard(img, start, end - start, errp);
    return r < 0 ? ensure_error(errp, r, "Discarding") : 0;
}

int
vimg_image_flush(struct vimg_image *img, struct vimg_error **errp)
{
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (!(img->flags & VIMG_OPEN_RDWR) || !img->ops->flush) {
        return 0;
    }
    r = img->ops->flush(img, errp);
    return r < 0 ? ensure_error(errp, r, "Flushing") : 0;
}

int
vimg_image_truncate(struct vimg_image *img, uint64_t size, bool shrink,
                    struct vimg_error **errp)
{
    uint64_t a;
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    if (!img->ops->truncate) {
        return vimg_error_set(errp, -ENOTSUP,
                              "Image format driver does not support resize");
    }
    a = img->alignment;
    if (size > INT64_MAX - a) {
        return vimg_error_set(errp, -EINVAL, "Image size too large");
    }
    size = ROUND_UP(size, a);
    if (size < img->size && !shrink) {
        return vimg_error_set(errp, -EINVAL,
                              "Use the --shrink option to perform a shrink "
                              "operation.");
    }
    r = img->ops->truncate(img, size, shrink, errp);
    return r < 0 ? ensure_error(errp, r, "Resizing") : 0;
}

int
vimg_image_block_status(struct vimg_image *img, uint64_t offset, uint64_t len,
                        uint64_t *pnum, unsigned *status,
                        uint64_t *host_offset, struct vimg_error **errp)
{
    uint64_t n = 0, host = 0;
    unsigned st = 0;
    int r;

    if (!img || !pnum || !status) {
        return vimg_error_set(errp, -EINVAL, "Invalid block status request");
    }
    r = check_range(img, offset, len, errp);
    if (r < 0) {
        return r;
    }
    if (len == 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Block status of an empty range at offset %"
                              PRIu64, offset);
    }
    if (!img->ops->block_status) {
        n = len;
        st = VIMG_BLOCK_DATA;
    } else {
        r = img->ops->block_status(img, offset, len, &n, &st, &host, errp);
        if (r < 0) {
            return ensure_error(errp, r, "Block status");
        }
        if (n == 0) {
            return vimg_error_set(errp, -EIO,
                                  "Block status made no progress at offset %"
                                  PRIu64, offset);
        }
        n = MIN(n, len);
    }
    *pnum = n;
    *status = st;
    if (host_offset) {
        *host_offset = (st & VIMG_BLOCK_OFFSET) ? host : 0;
    }
    return 0;
}

/* ---- info --------------------------------------------------------------- */

static int
add_key(struct json_object *obj, const char *key, struct json_object *val)
{
    if (!val || json_object_object_add(obj, key, val) < 0) {
        json_object_put(val);
        return -ENOMEM;
    }
    return 0;
}

int
vimg_image_info(struct vimg_image *img, struct json_object **out,
                struct vimg_error **errp)
{
    struct json_object *info;
    int64_t alloc = 0;
    int r = 0;

    if (!img || !out) {
        return vimg_error_set(errp, -EINVAL, "Invalid info request");
    }
    *out = NULL;
    if (img->fd >= 0) {
        alloc = file_allocated(img->fd);
        if (alloc < 0) {
            return vimg_error_set(errp, (int)alloc,
                                  "Could not stat '%s': %s", img->filename,
                                  strerror((int)-alloc));
        }
    }
    info = json_object_new_object();
    if (!info) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    /* Keys in the order qemu fills ImageInfo; qemu-img's raw output has
     * no "encrypted" key at all, encrypted images have "encrypted": true. */
    r |= add_key(info, "virtual-size",
                 json_object_new_int64((int64_t)img->size));
    r |= add_key(info, "filename", json_object_new_string(img->filename));
    r |= add_key(info, "format", json_object_new_string(img->ops->name));
    r |= add_key(info, "actual-size", json_object_new_int64(alloc));
    if (img->encrypted) {
        r |= add_key(info, "encrypted", json_object_new_boolean(1));
    }
    r |= add_key(info, "dirty-flag", json_object_new_boolean(0));
    if (r < 0) {
        json_object_put(info);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    if (img->ops->info) {
        r = img->ops->info(img, info, errp);
        if (r < 0) {
            json_object_put(info);
            return ensure_error(errp, r, "Getting image information");
        }
    }
    *out = info;
    return 0;
}

/* ---- backing files, commit, rebase, compression ------------------------ */

struct vimg_image *
vimg_image_backing(struct vimg_image *img)
{
    if (!img || !img->ops->backing) {
        return NULL;
    }
    return img->ops->backing(img);
}

int
vimg_image_set_backing(struct vimg_image *img, const char *name,
                       const char *fmt, struct vimg_error **errp)
{
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    if (!img->ops->set_backing) {
        return vimg_error_set(errp, -ENOTSUP, "Operation not supported");
    }
    r = img->ops->set_backing(img, name, fmt, errp);
    return r < 0 ? ensure_error(errp, r, "Changing the backing file") : 0;
}

int
vimg_image_make_empty(struct vimg_image *img, struct vimg_error **errp)
{
    int r;

    if (!img) {
        return vimg_error_set(errp, -EINVAL, "No image given");
    }
    if (!(img->flags & VIMG_OPEN_RDWR)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    if (!img->ops->make_empty) {
        return vimg_error_set(errp, -ENOTSUP, "Operation not supported");
    }
    r = img->ops->make_empty(img, errp);
    return r < 0 ? ensure_error(errp, r, "Emptying the image") : 0;
}

int
vimg_image_pwrite_compressed(struct vimg_image *img, const void *buf,
                             size_t len, uint64_t offset,
                             struct vimg_error **errp)
{
    int r;

    r = check_data_io(img, true, errp);
    if (r < 0) {
        return r;
    }
    r = check_range(img, offset, len, errp);
    if (r < 0 || len == 0) {
        return r;
    }
    if (!img->ops->pwrite_compressed) {
        return vimg_error_set(errp, -ENOTSUP, "Compression is not supported "
                              "for file format '%s'", img->ops->name);
    }
    r = img->ops->pwrite_compressed(img, buf, len, offset, errp);
    return r < 0 ? ensure_error(errp, r, "Writing compressed data") : 0;
}

/* ---- backing files (shared by qcow2 and qcow) ---------------------------- */

/*
 * "dir/img" + "base" -> "dir/base" (qemu's path_combine, used for
 * full-backing-filename and for opening): absolute names and names of
 * images without a directory stay as they are.
 */
char *
vimg_backing_path(const char *image, const char *backing)
{
    const char *slash = strrchr(image, '/');
    char *out;

    if (backing[0] == '/' || !slash) {
        return strdup(backing);
    }
    if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, backing) < 0) {
        return NULL;
    }
    return out;
}

/* Nesting depth of backing opens on this thread (a loop guard). */
static _Thread_local unsigned backing_depth;
#define VIMG_MAX_BACKING_DEPTH 64

/*
 * Open @path as a backing image with the "backing." options of @opts (the
 * prefix removed; they are taken from @opts either way).
 */
int
vimg_backing_open(const char *path, const char *fmt, struct vimg_opts *opts,
                  struct vimg_secrets *secrets, unsigned flags,
                  struct vimg_image **out, struct vimg_error **errp)
{
    struct vimg_opts *sub = vimg_opts_new();
    size_t i, n = opts ? vimg_opts_count(opts) : 0;
    const char *drv = NULL;
    int r;

    *out = NULL;
    if (!sub) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(opts, i);

        if (strncmp(k, "backing.", 8) != 0) {
            continue;
        }
        vimg_opts_take(opts, k);
        if (strcmp(k + 8, "driver") == 0) {
            drv = vimg_opts_value(opts, i);
        } else if (vimg_opts_set(sub, k + 8, vimg_opts_value(opts, i)) < 0) {
            vimg_opts_free(sub);
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    if (backing_depth >= VIMG_MAX_BACKING_DEPTH) {
        vimg_opts_free(sub);
        return vimg_error_set(errp, -ELOOP, "Backing chain too deep");
    }
    backing_depth++;
    r = vimg_image_open(path, drv ? drv : fmt, sub, secrets, flags, out,
                        errp);
    backing_depth--;
    vimg_opts_free(sub);
    return r;
}

int
vimg_backing_pread(struct vimg_image *backing, void *buf, size_t len,
                   uint64_t off, struct vimg_error **errp)
{
    uint64_t bsize = backing ? backing->size : 0;
    size_t n = 0;
    int r;

    if (off < bsize) {
        n = (size_t)MIN((uint64_t)len, bsize - off);
        r = vimg_image_pread(backing, buf, n, off, errp);
        if (r < 0) {
            vimg_error_prefix(errp, "Could not read backing file");
            return r;
        }
    }
    memset((uint8_t *)buf + n, 0, len - n);
    return 0;
}
