/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private definitions of libvimg: error helpers, the image object and the
 * format ops table.  Only lib/format/image.c calls through the ops table; it
 * checks state, range and flags first (the nbdkit backend.c model).
 */
#ifndef VIMG_INTERNAL_H
#define VIMG_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vimg.h"
#include "cleanup.h"

/* ---- errors (lib/errors.c) --------------------------------------------- */

/**
 * vimg_error_set - store a new error in *errp (if errp != NULL and no error
 * is stored yet: the first, deepest error wins) and return @code.
 * @code: a negative errno.
 * Usage: `return vimg_error_set(errp, -EINVAL, "Keyslot %d is corrupted", i);`
 */
int vimg_error_set(struct vimg_error **errp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** vimg_error_setv - va_list variant. */
int vimg_error_setv(struct vimg_error **errp, int code, const char *fmt,
                    va_list ap) __attribute__((format(printf, 3, 0)));
/**
 * vimg_error_prefix - prepend "PREFIX: " to the stored error's message, if
 * any (adds context on the way up, e.g. "Could not open 'x.img'").
 */
void vimg_error_prefix(struct vimg_error **errp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/**
 * vimg_error_from_errno - for leaf (-errno only) failures: set a message
 * "WHAT: strerror(-code)" and return @code.
 */
int vimg_error_errno(struct vimg_error **errp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- options (lib/opts.c): vimg_opts helpers beyond the public API ------ */

/**
 * opts_take_bool - take @key parsed as qemu bool (on/off/yes/no/true/false).
 * Return: 0 and *out set (unchanged if absent), or -EINVAL with
 * "Parameter 'K' expects 'on' or 'off'".
 */
int opts_take_bool(struct vimg_opts *o, const char *key, bool *out,
                   struct vimg_error **errp);
/** opts_take_u64 - a plain unsigned number ("Parameter 'K' expects a number"). */
int opts_take_u64(struct vimg_opts *o, const char *key, uint64_t *out,
                  struct vimg_error **errp);
/** opts_take_i64 - a signed number. */
int opts_take_i64(struct vimg_opts *o, const char *key, int64_t *out,
                  struct vimg_error **errp);
/**
 * opts_take_size - a size with optional suffix k/K, M, G, T, P, E (powers
 * of 1024) or b/B (bytes), like qemu-img.
 */
int opts_take_size(struct vimg_opts *o, const char *key, uint64_t *out,
                   struct vimg_error **errp);
/** parse_size - the same syntax on a plain string ("64M"). -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* ---- file I/O (lib/io.c): all-or-nothing helpers ------------------------ */

/** full_pread - read exactly @len bytes; a short read (EOF) is -EIO. */
int full_pread(int fd, void *buf, size_t len, uint64_t off);
/** full_pread_zero - like full_pread, but bytes past EOF read as zero. */
int full_pread_zero(int fd, void *buf, size_t len, uint64_t off);
/**
 * full_pwrite - write exactly @len bytes at @off (loops over short writes).
 * Failpoint kind "write".
 * Return: 0 or -errno.
 */
int full_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/**
 * file_flush - fdatasync(@fd); EINVAL and EROFS (files that cannot be
 * synced, e.g. pipes or read-only mounts) count as success.
 * Failpoint kind "flush".
 * Return: 0 or -errno.
 */
int file_flush(int fd);
/**
 * file_truncate - ftruncate(@fd, @size).  Failpoint kind "truncate".
 * Return: 0, -EFBIG if @size exceeds INT64_MAX, or -errno.
 */
int file_truncate(int fd, uint64_t size);
/**
 * file_discard - punch a hole over [@off, @off+@len) keeping the size; a
 * filesystem without hole punching is not an error (discard is a hint).
 * Failpoint kind "discard".
 * Return: 0, -EINVAL for a range beyond INT64_MAX, or -errno.
 */
int file_discard(int fd, uint64_t off, uint64_t len);
/**
 * file_preallocate - posix_fallocate(@fd, @off, @len).
 * Failpoint kind "alloc".
 * Return: 0, -EFBIG for a range beyond INT64_MAX, or -errno.
 */
int file_preallocate(int fd, uint64_t off, uint64_t len);
/** file_size - st_size, or -errno. */
int64_t file_size(int fd);
/** file_allocated - st_blocks*512 (qemu's "actual-size"), or -errno. */
int64_t file_allocated(int fd);
/** file_punch_zero - make a byte range of a file read as zeroes. */
int file_punch_zero(int fd, uint64_t off, uint64_t len, bool may_unmap);

/* ---- backing files (lib/format/image.c) --------------------------------- */

/**
 * vimg_backing_path - "dir/img" + "base" -> "dir/base" (qemu's
 * path_combine): absolute names and images without a directory keep the
 * name as it is.  malloc'd, NULL when out of memory.
 */
char *vimg_backing_path(const char *image, const char *backing);
/**
 * vimg_backing_open - open @path (format @fmt, NULL: probe) as a backing
 * image with the "backing." options of @opts (prefix removed; they are
 * taken from @opts either way; backing.driver overrides @fmt).  Nesting is
 * capped (-ELOOP "Backing chain too deep").
 */
int vimg_backing_open(const char *path, const char *fmt,
                      struct vimg_opts *opts, struct vimg_secrets *secrets,
                      unsigned flags, struct vimg_image **out,
                      struct vimg_error **errp);
/**
 * vimg_backing_pread - read [@off, @off + @len) of @backing (may be NULL):
 * zeroes without one and past its end.
 */
int vimg_backing_pread(struct vimg_image *backing, void *buf, size_t len,
                       uint64_t off, struct vimg_error **errp);

/* ---- images and formats -------------------------------------------------- */

struct vimg_format_ops;

struct vimg_image {
    const struct vimg_format_ops *ops;
    char *filename;
    int fd;                  /* the image file, -1 if the format keeps none */
    unsigned flags;          /* VIMG_OPEN_* */
    uint64_t size;           /* virtual size in bytes, kept by the format   */
    bool encrypted;
    uint32_t alignment;      /* request alignment in bytes (1 or 512)       */
    void *priv;              /* the format's private state                  */
};

/*
 * One format.  Ranges and flags are validated by image.c before any call:
 * pread/pwrite/zero get in-range requests aligned to img->alignment and
 * are never called on VIMG_OPEN_NO_IO handles; writes only on RDWR handles.
 * Every callback that fails sets *errp.
 */
struct vimg_format_ops {
    const char *name;
    /** probe - score 0..100 for the first bytes of a file (@len <= 4096). */
    int (*probe)(const uint8_t *buf, size_t len, const char *filename);
    /** open - img->fd, filename, flags are set; fill size/encrypted/priv. */
    int (*open)(struct vimg_image *img, struct vimg_opts *opts,
                struct vimg_secrets *secrets, struct vimg_error **errp);
    void (*close)(struct vimg_image *img);
    /** create - @fd is the new empty file opened RDWR. */
    int (*create)(int fd, const char *filename, uint64_t size,
                  struct vimg_opts *opts, struct vimg_secrets *secrets,
                  struct vimg_error **errp);
    const struct vimg_opt_desc *create_opts;
    int (*pread)(struct vimg_image *img, void *buf, size_t len,
                 uint64_t off, struct vimg_error **errp);
    int (*pwrite)(struct vimg_image *img, const void *buf, size_t len,
                  uint64_t off, struct vimg_error **errp);
    int (*zero)(struct vimg_image *img, uint64_t off, uint64_t len,
                unsigned flags, struct vimg_error **errp);
    int (*discard)(struct vimg_image *img, uint64_t off, uint64_t len,
                   struct vimg_error **errp);
    int (*flush)(struct vimg_image *img, struct vimg_error **errp);
    int (*truncate)(struct vimg_image *img, uint64_t size, bool shrink,
                    struct vimg_error **errp);
    int (*block_status)(struct vimg_image *img, uint64_t off, uint64_t len,
                        uint64_t *pnum, unsigned *status,
                        uint64_t *host_offset, struct vimg_error **errp);
    /**
     * info - add format-specific keys to @info (the top-level ImageInfo
     * object; image.c has already set virtual-size, filename, format,
     * actual-size, encrypted, dirty-flag).
     */
    int (*info)(struct vimg_image *img, struct json_object *info,
                struct vimg_error **errp);
    /**
     * measure - qemu-img measure for a new image of this format.
     * @opts: creation options, already checked against create_opts; take
     *   the ones that change the layout (the rest may stay untaken).
     * @src: the source image (possibly VIMG_OPEN_NO_IO, so only metadata
     *   and block status) or NULL.
     * @size: the virtual size: the source's, in whole sectors, with @src;
     *   else the caller's as given (qemu rounds it for raw, not for luks).
     * Fill *required (data as allocated in @src; all of @size without a
     * source) and *fully_allocated.  NULL: the format cannot measure.
     */
    int (*measure)(struct vimg_opts *opts, struct vimg_image *src,
                   uint64_t size, uint64_t *required,
                   uint64_t *fully_allocated, struct vimg_error **errp);
    /**
     * check - one pass of qemu-img check (see vimg_check()): @res is
     * zeroed, @fix has been validated against the handle's flags.  Return
     * 0 when the check ran, <0 (with *errp) when it could not.
     */
    int (*check)(struct vimg_image *img, unsigned fix,
                 struct vimg_check_result *res, vimg_check_report_fn report,
                 void *opaque, struct vimg_error **errp);
    /** backing - the open backing image (owned by the format), or NULL. */
    struct vimg_image *(*backing)(struct vimg_image *img);
    /**
     * set_backing - rewrite the backing file name (@name NULL or "": none)
     * and format (@fmt may be NULL) in the image's metadata.
     */
    int (*set_backing)(struct vimg_image *img, const char *name,
                       const char *fmt, struct vimg_error **errp);
    /** make_empty - unallocate every cluster of this layer. */
    int (*make_empty)(struct vimg_image *img, struct vimg_error **errp);
    /**
     * pwrite_compressed - write cluster-aligned whole clusters (the last
     * one may end at the virtual size) compressed.
     */
    int (*pwrite_compressed)(struct vimg_image *img, const void *buf,
                             size_t len, uint64_t off,
                             struct vimg_error **errp);
    /* Internal snapshots (NULL: the format has none); see vimg_snapshot_*.
     * list/load work on read-only and VIMG_OPEN_NO_IO handles; create,
     * delete and apply get RDWR handles (metadata only, so NO_IO is fine). */
    int (*snapshot_list)(struct vimg_image *img, struct vimg_snapshot **out,
                         size_t *n, struct vimg_error **errp);
    int (*snapshot_create)(struct vimg_image *img, const char *name,
                           struct vimg_error **errp);
    int (*snapshot_delete)(struct vimg_image *img, const char *id,
                           const char *name, struct vimg_error **errp);
    int (*snapshot_apply)(struct vimg_image *img, const char *id_or_name,
                          struct vimg_error **errp);
    int (*snapshot_load)(struct vimg_image *img, const char *id,
                         const char *name, struct vimg_error **errp);
    /**
     * amend - qemu-img amend: change the options in @opts (qemu's amend
     * option names, e.g. "state"/"new-secret" for luks, "encrypt.state"
     * for qcow2) on a read-write handle opened with its key.  Unknown keys
     * are the format's to reject ("Invalid parameter 'K'").  @force allows
     * destructive changes (qemu-img amend --force).  NULL: the format
     * cannot amend ("Format driver 'F' does not support option amendment").
     */
    int (*amend)(struct vimg_image *img, struct vimg_opts *opts,
                 struct vimg_secrets *secrets, bool force,
                 struct vimg_error **errp);
    /**
     * reencrypt - vimg reencrypt: rotate the master key in place, or resume
     * an unfinished run (docs/reencrypt.md), on a read-write handle opened
     * with its key.  @opts: the key secret and the new header's settings,
     * in the format's amend spelling.  NULL: not supported.
     */
    int (*reencrypt)(struct vimg_image *img, struct vimg_opts *opts,
                     struct vimg_secrets *secrets, bool force,
                     vimg_progress_fn progress, void *opaque,
                     struct vimg_error **errp);
};

/**
 * vimg_format_find - the ops table of the format called @name, from the
 * registry in lib/format/image.c (every format linked into the library).
 * @name: format name ("raw", "luks", ...); NULL allowed.
 * Return: the ops, or NULL for an unknown name.
 */
const struct vimg_format_ops *vimg_format_find(const char *name);

extern const struct vimg_format_ops vimg_format_raw;
extern const struct vimg_format_ops vimg_format_luks;
extern const struct vimg_format_ops vimg_format_qcow;
extern const struct vimg_format_ops vimg_format_qcow2;

#endif /* VIMG_INTERNAL_H */
