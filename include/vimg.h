/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvimg public API: encrypted virtual-machine disk images, byte-compatible
 * with QEMU 7.2 and cryptsetup 2.6.
 *
 * Conventions
 * - Every function that can fail returns 0 (or a non-negative value) on
 *   success and a negative errno on failure.  When the caller passes a
 *   non-NULL `struct vimg_error **errp`, a message object is stored there
 *   (caller frees it with vimg_error_free()).  The library never prints and
 *   never exits.
 * - A wrong passphrase fails with -EPERM.
 * - Objects are opaque; X_free(NULL) / X_close(NULL) are no-ops.
 * - Option strings use qemu-img's syntax: "key=value,key=value", a doubled
 *   comma ",," stands for a literal comma.
 */
#ifndef VIMG_H
#define VIMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIMG_API __attribute__((visibility("default")))

struct json_object;   /* json-c */

/* ---- errors ------------------------------------------------------------ */

struct vimg_error;

/** vimg_error_message - the human-readable message (never NULL). */
VIMG_API const char *vimg_error_message(const struct vimg_error *err);
/** vimg_error_code - the negative errno the failing call returned. */
VIMG_API int vimg_error_code(const struct vimg_error *err);
VIMG_API void vimg_error_free(struct vimg_error *err);

/** vimg_version - the library version string, e.g. "0.1.0". */
VIMG_API const char *vimg_version(void);

/* ---- key=value option lists (QemuOpts syntax) -------------------------- */

struct vimg_opts;

VIMG_API struct vimg_opts *vimg_opts_new(void);
VIMG_API void vimg_opts_free(struct vimg_opts *opts);
/**
 * vimg_opts_parse - append "k=v,k2=v2" to @opts.
 * @implied_key: if not NULL, a first element without '=' is taken as the
 *   value of this key (e.g. "secret,id=s0" with implied_key "qom-type").
 * A later duplicate key overrides an earlier one.  ",," is a literal comma.
 * A bare "key" means key=on and "nokey" key=off (qemu's shorthand).
 * Return: 0, or -EINVAL (empty key, ...).
 */
VIMG_API int vimg_opts_parse(struct vimg_opts *opts, const char *str,
                             const char *implied_key, struct vimg_error **errp);
/** vimg_opts_set - set (or replace) @key.  Return 0 or -ENOMEM. */
VIMG_API int vimg_opts_set(struct vimg_opts *opts, const char *key,
                           const char *value);
/** vimg_opts_get - value of @key or NULL; does not mark it used. */
VIMG_API const char *vimg_opts_get(const struct vimg_opts *opts,
                                   const char *key);
/** vimg_opts_take - like get, and marks @key as consumed. */
VIMG_API const char *vimg_opts_take(struct vimg_opts *opts, const char *key);
VIMG_API size_t vimg_opts_count(const struct vimg_opts *opts);
VIMG_API const char *vimg_opts_key(const struct vimg_opts *opts, size_t i);
VIMG_API const char *vimg_opts_value(const struct vimg_opts *opts, size_t i);
/**
 * vimg_opts_check_unused - fail with qemu's "Parameter 'K' is unexpected"
 * (-EINVAL) for the first key never taken.
 */
VIMG_API int vimg_opts_check_unused(const struct vimg_opts *opts,
                                    struct vimg_error **errp);

/* ---- secrets ------------------------------------------------------------ */

struct vimg_secrets;

VIMG_API struct vimg_secrets *vimg_secrets_new(void);
/** vimg_secrets_free - wipes every secret, then frees. */
VIMG_API void vimg_secrets_free(struct vimg_secrets *s);

/* Flags reported by vimg_secrets_add_object(). */
#define VIMG_SECRET_INLINE_DATA 0x1  /* data= put the secret on a command line */

/**
 * vimg_secrets_add_object - add a qemu --object definition:
 *   "secret,id=ID,data=STR|file=PATH[,format=raw|base64][,keyid=ID2,iv=B64]"
 *   "secret_keyring,id=ID,serial=N[,format=..][,keyid=..,iv=..]"
 * Objects of other types are refused (-EINVAL).  The file is read verbatim
 * (a trailing newline is part of the secret).  The deprecated 'loaded'
 * property is refused as qemu 7.2 refuses it.  keyid/iv: the payload is
 * AES-256-CBC encrypted with secret ID2 (which must already exist).
 * @flags_out: if not NULL, receives VIMG_SECRET_* flags.
 * Return: 0, -EINVAL (syntax, qemu's messages), -ENOENT, -EEXIST (id in use),
 *   -EIO, -ENOKEY (keyring).
 */
VIMG_API int vimg_secrets_add_object(struct vimg_secrets *s, const char *spec,
                                     unsigned *flags_out,
                                     struct vimg_error **errp);
/** vimg_secrets_add - add raw secret bytes under @id (copied to safe memory). */
VIMG_API int vimg_secrets_add(struct vimg_secrets *s, const char *id,
                              const void *data, size_t len,
                              struct vimg_error **errp);
/** vimg_secrets_has - whether @id is defined. */
VIMG_API bool vimg_secrets_has(const struct vimg_secrets *s, const char *id);

/* ---- images ------------------------------------------------------------- */

struct vimg_image;

/* Open flags. */
#define VIMG_OPEN_RDWR   0x1  /* open read-write (default read-only) */
#define VIMG_OPEN_NO_IO  0x2  /* metadata only: no key needed, no data I/O  */
#define VIMG_OPEN_CHECK  0x4  /* for vimg_check(): a dirty or corrupt-flagged
                                 qcow2 image opens read-write as it is (other
                                 read-write opens repair a dirty image first
                                 and refuse a corrupt one, as qemu does) */
#define VIMG_OPEN_REENCRYPT 0x8  /* for vimg_image_reencrypt() only: open
                                 read-write although an unfinished
                                 re-encryption journal (FILENAME.reenc)
                                 exists; every other read-write open of
                                 such an image is refused */
#define VIMG_OPEN_NO_EXTERNAL 0x10 /* refuse (-EPERM) an image whose header
                                 names another file: a qcow2 or qcow
                                 backing file, a qcow2 external data file.
                                 For servers that run with more rights than
                                 whoever can write the image: the header
                                 is checked in the same open that uses
                                 it, so no other file is ever opened */

/* Block status bits (vimg_image_block_status). */
#define VIMG_BLOCK_DATA       0x1  /* allocated in this layer, holds data    */
#define VIMG_BLOCK_ZERO       0x2  /* reads as zeroes                        */
#define VIMG_BLOCK_OFFSET     0x4  /* *host_offset is valid (plain formats)  */
#define VIMG_BLOCK_UNALLOCATED 0x8 /* not allocated in this layer: reads come
                                      from the backing image (ZERO also set
                                      when that range reads as zeroes)     */

/* Zero flags. */
#define VIMG_ZERO_MAY_UNMAP   0x1

/**
 * vimg_image_open - open an image.
 * @filename: path of the image file.
 * @format: "raw", "luks", ... or NULL to probe (LUKS1 magic -> "luks").
 * @opts: driver options in qemu's --image-opts spelling without "driver"
 *   and "file.filename" (e.g. "key-secret" for luks, "encrypt.key-secret"
 *   for qcow2); may be NULL.  Every key must be understood, otherwise
 *   "Parameter 'K' is unexpected".
 * @secrets: where key-secret ids are looked up; may be NULL.
 * @flags: VIMG_OPEN_*.
 * Without VIMG_OPEN_NO_IO an encrypted image needs its key; there is no
 * way to obtain a readable handle on an encrypted image without one.
 * With VIMG_OPEN_RDWR (and not VIMG_OPEN_REENCRYPT), a qcow2 or luks image
 * with an unfinished re-encryption journal is refused with -EBUSY.
 * Return: 0, -EPERM wrong passphrase, -EINVAL bad header/option, -ENOTSUP,
 *   -EBUSY, -ENOENT, -EIO ...
 */
VIMG_API int vimg_image_open(const char *filename, const char *format,
                             struct vimg_opts *opts,
                             struct vimg_secrets *secrets, unsigned flags,
                             struct vimg_image **out,
                             struct vimg_error **errp);
/** vimg_image_close - flush (if writable) and close.  Return as flush. */
VIMG_API int vimg_image_close(struct vimg_image *img, struct vimg_error **errp);

/**
 * vimg_image_create - create a new image file (truncating an existing one).
 * @opts: qemu-img -o creation options of @format (e.g. "key-secret",
 *   "cipher-alg", "iter-time", vimg's "iter-count"); may be NULL.
 * @size: virtual size in bytes (rounded up to 512 like qemu-img).
 * On failure no half-made file is left behind.
 */
VIMG_API int vimg_image_create(const char *filename, const char *format,
                               uint64_t size, struct vimg_opts *opts,
                               struct vimg_secrets *secrets,
                               struct vimg_error **errp);

VIMG_API const char *vimg_image_format(const struct vimg_image *img);
VIMG_API const char *vimg_image_filename(const struct vimg_image *img);
VIMG_API uint64_t vimg_image_size(const struct vimg_image *img);
VIMG_API bool vimg_image_encrypted(const struct vimg_image *img);
VIMG_API bool vimg_image_writable(const struct vimg_image *img);
/** vimg_image_alignment - request alignment in bytes (512 for encrypted). */
VIMG_API uint32_t vimg_image_alignment(const struct vimg_image *img);

/* Data I/O.  Ranges must lie within the virtual size.  Unaligned requests
 * are handled (read-modify-write) by the library. */
VIMG_API int vimg_image_pread(struct vimg_image *img, void *buf, size_t len,
                              uint64_t offset, struct vimg_error **errp);
VIMG_API int vimg_image_pwrite(struct vimg_image *img, const void *buf,
                               size_t len, uint64_t offset,
                               struct vimg_error **errp);
/** vimg_image_zero - make a range read as zeroes (VIMG_ZERO_* flags). */
VIMG_API int vimg_image_zero(struct vimg_image *img, uint64_t offset,
                             uint64_t len, unsigned flags,
                             struct vimg_error **errp);
/** vimg_image_discard - hint that a range is unused; contents undefined. */
VIMG_API int vimg_image_discard(struct vimg_image *img, uint64_t offset,
                                uint64_t len, struct vimg_error **errp);
VIMG_API int vimg_image_flush(struct vimg_image *img, struct vimg_error **errp);
/** vimg_image_truncate - change the virtual size (shrinking needs @shrink). */
VIMG_API int vimg_image_truncate(struct vimg_image *img, uint64_t size,
                                 bool shrink, struct vimg_error **errp);

/**
 * vimg_image_block_status - describe [offset, offset+len).
 * *pnum receives the length (>0) of the leading run with one status,
 * *status VIMG_BLOCK_* bits, *host_offset the file offset when
 * VIMG_BLOCK_OFFSET is set (may be NULL).
 */
VIMG_API int vimg_image_block_status(struct vimg_image *img, uint64_t offset,
                                     uint64_t len, uint64_t *pnum,
                                     unsigned *status, uint64_t *host_offset,
                                     struct vimg_error **errp);

/**
 * vimg_image_info - qemu-img info's ImageInfo for this image, as a new json-c
 * object with qemu's keys ("virtual-size", "filename", "format",
 * "actual-size", "encrypted", "dirty-flag", "format-specific", ...).
 * Works on VIMG_OPEN_NO_IO handles.  Caller releases with json_object_put().
 */
VIMG_API int vimg_image_info(struct vimg_image *img, struct json_object **out,
                             struct vimg_error **errp);

/* ---- formats ------------------------------------------------------------ */

enum vimg_opt_type {
    VIMG_OPT_STRING,
    VIMG_OPT_BOOL,
    VIMG_OPT_NUMBER,
    VIMG_OPT_SIZE,
};

/** One creation option, as `qemu-img create -f FMT -o help` lists them. */
struct vimg_opt_desc {
    const char *name;
    enum vimg_opt_type type;
    const char *help;
    const char *def;          /* default shown in "Formatting" line or NULL */
};

/** vimg_format_known - whether @format names a supported format. */
VIMG_API bool vimg_format_known(const char *format);
/**
 * vimg_format_create_opts - the creation options of @format, terminated by
 * an entry with name NULL, in qemu-img's order; NULL for unknown formats.
 */
VIMG_API const struct vimg_opt_desc *vimg_format_create_opts(const char *format);
/** vimg_format_list - NULL-terminated array of format names. */
VIMG_API const char *const *vimg_format_list(void);
/**
 * vimg_probe - guess the format of @filename from its content.
 * @format_out receives a static string ("luks", "raw", ...).
 */
VIMG_API int vimg_probe(const char *filename, const char **format_out,
                        struct vimg_error **errp);

/* ---- format-independent operations -------------------------------------- */

/** Progress callback: @done out of @total units; return non-zero to cancel. */
typedef int (*vimg_progress_fn)(void *opaque, uint64_t done, uint64_t total);

struct vimg_copy_params {
    uint64_t buf_size;        /* bytes per request; 0 = default (2 MiB)   */
    uint64_t sparse_size;     /* -S: runs of zeroes at least this long are
                                 not written; 0 = write everything        */
    bool target_is_zero;      /* target known to read as zeroes           */
    bool target_has_zero_init;/* target reads zero where never written    */
    vimg_progress_fn progress;
    void *progress_opaque;
    bool compress;            /* -c: data through
                                 vimg_image_pwrite_compressed()           */
    bool target_has_backing;  /* -B: ranges the source reads from its own
                                 backing file are not copied, zero runs
                                 past the end of the target's backing file
                                 not written (as qemu-img convert -B)     */
};

/**
 * vimg_copy - copy the guest content of @src into @dst (qemu-img convert's
 * data path).  dst must be at least as large as src.
 */
VIMG_API int vimg_copy(struct vimg_image *src, struct vimg_image *dst,
                       const struct vimg_copy_params *params,
                       struct vimg_error **errp);

/**
 * vimg_compare - compare guest content (qemu-img compare semantics: the
 * shorter image is treated as zero-extended unless @strict).
 * Return: 0 identical, 1 different (*mismatch_offset set), <0 error.
 */
VIMG_API int vimg_compare(struct vimg_image *a, struct vimg_image *b,
                          bool strict, uint64_t *mismatch_offset,
                          vimg_progress_fn progress, void *progress_opaque,
                          struct vimg_error **errp);

/**
 * struct vimg_map_entry - one run of `qemu-img map` output: a range of
 * guest bytes with one allocation status.
 * @start: guest offset of the run.
 * @length: its length in bytes.
 * @depth: backing-chain depth the data comes from (0: this image).
 * @present: the range is allocated somewhere in the chain.
 * @zero: the range reads as zeroes.
 * @data: the range holds data in the image file.
 * @has_offset: @offset is valid (plain, unencrypted data only).
 * @offset: the file offset of the run when @has_offset.
 */
struct vimg_map_entry {
    uint64_t start;
    uint64_t length;
    int depth;
    bool present;
    bool zero;
    bool data;
    bool has_offset;
    uint64_t offset;
};

/** Map callback: 0 to go on, a negative errno to stop (vimg_map returns it). */
typedef int (*vimg_map_fn)(void *opaque, const struct vimg_map_entry *entry);

/**
 * vimg_map - describe the allocation of guest range [@start, @start+@len)
 * (clamped to the virtual size) as qemu-img map does: block status runs are
 * merged while every field matches and file offsets are contiguous, and
 * @fn is called once per merged run, in ascending order.  Nothing is
 * called for an empty range.  Works on VIMG_OPEN_NO_IO handles.
 * @img: the image.
 * @start: first guest byte.
 * @len: number of bytes (UINT64_MAX: up to the end).
 * @fn: called for each run.
 * @opaque: passed to @fn.
 * @errp: error out (may be NULL).
 * Return: 0, a negative errno from block status (with *errp set), or the
 *   negative value @fn returned (*errp untouched).
 */
VIMG_API int vimg_map(struct vimg_image *img, uint64_t start, uint64_t len,
                      vimg_map_fn fn, void *opaque, struct vimg_error **errp);

/**
 * vimg_image_amend - qemu-img amend: change options of an open image.  For
 * LUKS (raw "luks", and qcow2 with the "encrypt." prefix) these manage key
 * slots: state=active|inactive, new-secret=ID, old-secret=ID, keyslot=N,
 * iter-time=MS (vimg also takes iter-count=N, explicit PBKDF2 iterations).
 * Adding writes the new slot's key material before the header that
 * activates it; erasing rewrites the header before destroying the
 * material, so a crash at any point leaves the image openable with the old
 * passphrases (and, after an add, possibly the new one as well).
 * @img: a read-write handle opened with its key (key-secret /
 *   encrypt.key-secret), so the master key is available.
 * @opts: the -o options; every key must be an amend option of the format.
 * @secrets: where new-secret / old-secret ids are looked up.
 * @force: allow overwriting an active slot and erasing the last active
 *   one(s) (qemu-img amend --force).
 * @errp: error out (may be NULL); messages are qemu-img's.
 * Return: 0, -ENOTSUP ("Format driver 'F' does not support option
 *   amendment"), -EBADF (read-only handle), -EINVAL (invalid option or
 *   refused operation), -ENOENT (unknown secret), -ENOSPC (all slots in
 *   use), -EIO ...
 */
VIMG_API int vimg_image_amend(struct vimg_image *img, struct vimg_opts *opts,
                              struct vimg_secrets *secrets, bool force,
                              struct vimg_error **errp);

/**
 * vimg_image_reencrypt - re-encrypt an image in place with a new master
 * key (vimg reencrypt; docs/reencrypt.md), or finish an interrupted run.
 * Progress is journaled in FILENAME.reenc, so after a crash the same call
 * resumes; until then the image reads correctly through vimg and refuses
 * writes.  Supported: raw LUKS1 ("luks") and qcow2 with LUKS.
 * @img: a read-write handle opened with its key; close it afterwards
 *   (its I/O fails with -ESTALE once the key has changed).
 * @opts: "key-secret=ID" ("encrypt.key-secret" for qcow2) plus optional
 *   settings of the new header in the format's creation spelling
 *   (cipher-alg, cipher-mode, ivgen-alg, ivgen-hash-alg, hash-alg,
 *   iter-time, iter-count).  The new header has one key slot with the
 *   passphrase of @opts' secret.
 * @force: drop other active key slots (otherwise refused).
 * @progress: called with bytes done / total; may be NULL.
 * Return: 0, -ENOTSUP (format), -EBADF (read-only), -EINVAL, -ENOSPC (new
 *   header does not fit), -EIO ...
 */
VIMG_API int vimg_image_reencrypt(struct vimg_image *img,
                                  struct vimg_opts *opts,
                                  struct vimg_secrets *secrets, bool force,
                                  vimg_progress_fn progress, void *opaque,
                                  struct vimg_error **errp);

/**
 * vimg_measure - qemu-img measure: the file size a new image of @format
 * needs for a disk of @size bytes, or for the content of @src.
 * @format: output format ("raw", "luks", ...).
 * @opts: creation options of @format as `-o` gives them (may be NULL); every
 *   key must be a creation option of the format ("Invalid parameter 'K'").
 *   A "size" option is ignored.  No secret is needed: for luks the header
 *   geometry depends only on the cipher options.
 * @src: source image (may be a VIMG_OPEN_NO_IO handle) or NULL.
 * @size: virtual size when @src is NULL (a format rounds it up to 512
 *   bytes where qemu does: raw yes, luks no).
 * @required: receives the size needed for the data as it is.
 * @fully_allocated: receives the size with every cluster allocated.
 * @errp: error out (may be NULL).
 * Return: 0, -EINVAL (unknown format, bad option or size), -ENOTSUP
 *   (format cannot measure).
 */
VIMG_API int vimg_measure(const char *format, struct vimg_opts *opts,
                          struct vimg_image *src, uint64_t size,
                          uint64_t *required, uint64_t *fully_allocated,
                          struct vimg_error **errp);


/**
 * struct vimg_check_result - what vimg_check() found (qemu's
 * BdrvCheckResult; the CLI prints it as `qemu-img check` does).
 * @corruptions: errors left on the image (reference counts too low,
 *   broken tables, ...).
 * @leaks: clusters whose reference count is higher than their references.
 * @check_errors: internal errors (I/O, ...) that made the check incomplete.
 * @corruptions_fixed: corruptions repaired (VIMG_CHECK_FIX_ERRORS).
 * @leaks_fixed: leaks repaired (VIMG_CHECK_FIX_LEAKS).
 * @image_end_offset: end of the last cluster in use, in bytes.
 * @total_clusters: clusters of the virtual disk.
 * @allocated_clusters: guest clusters holding data in the active layer.
 * @fragmented_clusters: allocated clusters not stored right after the
 *   previous one of the same L2 table (compressed ones always count).
 * @compressed_clusters: compressed guest clusters.
 */
struct vimg_check_result {
    int64_t corruptions;
    int64_t leaks;
    int64_t check_errors;
    int64_t corruptions_fixed;
    int64_t leaks_fixed;
    int64_t image_end_offset;
    int64_t total_clusters;
    int64_t allocated_clusters;
    int64_t fragmented_clusters;
    int64_t compressed_clusters;
};

/* Repair modes of vimg_check() (qemu-img check -r leaks / -r all). */
#define VIMG_CHECK_FIX_LEAKS  0x1
#define VIMG_CHECK_FIX_ERRORS 0x2

/**
 * vimg_check_report_fn - receives one finding of vimg_check() as a line of
 * text without the newline, in qemu-img's wording ("Leaked cluster 6
 * refcount=2 reference=1", "ERROR cluster 5 refcount=0 reference=1",
 * "Repairing ...").  qemu-img prints these on stderr.
 */
typedef void (*vimg_check_report_fn)(void *opaque, const char *line);

/**
 * vimg_check - check the metadata of an image for consistency and
 * optionally repair it (one pass of `qemu-img check`; the caller runs a
 * second pass with @fix 0 after repairs, as qemu-img does).
 * @img: the image; metadata only is needed, so a VIMG_OPEN_NO_IO handle
 *   works (no key for encrypted images).  Repairs need VIMG_OPEN_RDWR.
 * @fix: 0 or VIMG_CHECK_FIX_* flags.
 * @res: receives the counts (zeroed first).
 * @report: called for each finding; may be NULL.
 * @opaque: passed to @report.
 * @errp: error out (may be NULL).
 * Return: 0 when the check ran (whatever it found: see @res), -ENOTSUP
 *   ("This image format does not support checks") for formats without a
 *   checker, -EBADF for repairs on a read-only handle, -EIO (and
 *   check_errors) when the check could not complete, e.g. a repair that
 *   needs a refcount rebuild without VIMG_CHECK_FIX_ERRORS.
 */
VIMG_API int vimg_check(struct vimg_image *img, unsigned fix,
                        struct vimg_check_result *res,
                        vimg_check_report_fn report, void *opaque,
                        struct vimg_error **errp);

/* ---- backing files, commit, rebase, compression (qcow2-core) ----------- */

/**
 * vimg_image_backing - the backing image of @img as opened with it, or
 * NULL (no backing file, a format without backing files, or a metadata-only
 * handle whose backing file could not be opened).  The handle belongs to
 * @img: do not close it; it stays valid until @img is closed.  It is read-
 * only, and metadata-only when @img is.  Backing images of encrypted layers
 * get their key from the open options "backing.encrypt.key-secret" (qcow2)
 * or "backing.key-secret" (raw luks), as qemu's --image-opts spell them;
 * deeper layers use "backing.backing....".
 */
VIMG_API struct vimg_image *vimg_image_backing(struct vimg_image *img);

/**
 * vimg_image_set_backing - change the backing file recorded in @img's
 * metadata (qemu-img rebase -u).  Guest content is not changed or checked.
 * @name: the new backing file name as it is to be stored (relative names
 *   are resolved against @img's directory when opened); NULL or "" removes
 *   the backing file.
 * @fmt: its format (stored as backing format), or NULL.
 * Return: 0, -EBADF (read-only handle), -ENOTSUP (format without backing
 *   files), -EINVAL (name too long), -EIO.
 */
VIMG_API int vimg_image_set_backing(struct vimg_image *img, const char *name,
                                    const char *fmt, struct vimg_error **errp);

/**
 * vimg_image_make_empty - unallocate every cluster of @img's own layer so
 * it reads as its backing image again (qemu-img commit without -d).
 * Return: 0, -EBADF (read-only), -ENOTSUP (format cannot), -EIO.
 */
VIMG_API int vimg_image_make_empty(struct vimg_image *img,
                                   struct vimg_error **errp);

/**
 * vimg_luks_header_backup - copy the LUKS header area of @filename (a raw
 * LUKS1/LUKS2 image or a detached header file) into the new file @backup
 * (mode 0400; an existing file is refused), byte for byte as cryptsetup's
 * luksHeaderBackup does.
 * Return: 0, -EEXIST, -EINVAL (not LUKS, truncated), -errno.
 */
VIMG_API int vimg_luks_header_backup(const char *filename, const char *backup,
                                     struct vimg_error **errp);

/**
 * vimg_luks_header_restore - write the header backup @backup (cryptsetup's
 * luksHeaderBackup format) over the header area of @filename.  Everything
 * is checked before anything is written: the backup must be a LUKS header
 * of exactly its header-area size, @filename at least that large; unless
 * @force, @filename's current header must load and have the same version,
 * UUID, payload offset and header-area size.  The payload offset must
 * match even with @force.  One write at offset 0, then fdatasync.
 * Return: 0, -EINVAL (mismatch, with a message saying which), -errno.
 */
VIMG_API int vimg_luks_header_restore(const char *filename,
                                      const char *backup, bool force,
                                      struct vimg_error **errp);

/**
 * vimg_image_pwrite_compressed - like vimg_image_pwrite, but whole
 * clusters are stored compressed (qemu-img convert -c).  Parts of clusters
 * (a range not aligned to the cluster size; the last cluster ending at the
 * virtual size counts as whole) and clusters that do not get smaller are
 * written plainly, so callers should write cluster-aligned ranges.
 * Return: 0, -ENOTSUP ("Compression and encryption not supported at the
 *   same time", or a format without compression), -EBADF, -EIO.
 */
VIMG_API int vimg_image_pwrite_compressed(struct vimg_image *img,
                                          const void *buf, size_t len,
                                          uint64_t offset,
                                          struct vimg_error **errp);

/*
 * Creation option understood by vimg_image_create() for formats with
 * backing files without being one of their listed creation options:
 * "backing_unsafe=on" does not open the backing file (qemu-img create -u);
 * the size must then be given.
 */
#define VIMG_CREATE_OPT_BACKING_UNSAFE "backing_unsafe"

/* ---- internal snapshots (qcow2) ---------------------------------------- */

/**
 * struct vimg_snapshot - one internal snapshot (qemu's SnapshotInfo).
 * @id: the numeric id string qemu assigns ("1", "2", ...).
 * @name: the tag given at creation (may be empty).
 * @vm_state_size: bytes of saved VM state (0 for disk-only snapshots).
 * @date_sec: creation time, seconds since the epoch.
 * @date_nsec: nanoseconds part of the creation time.
 * @vm_clock_nsec: guest run time at creation, in nanoseconds.
 * @disk_size: virtual disk size when the snapshot was taken.
 * @icount: record/replay instruction count, -1 when there is none.
 */
struct vimg_snapshot {
    char *id;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t disk_size;
    int64_t icount;
};

/**
 * vimg_snapshot_list - the internal snapshots of an image, in table order.
 * @img: the image (a VIMG_OPEN_NO_IO handle is enough: no key needed).
 * @out: receives a malloc'd array (NULL when there are none); release it
 *   with vimg_snapshot_list_free().
 * @n: receives the number of entries.
 * @errp: error out (may be NULL).
 * Return: 0, -ENOTSUP (format without snapshots: *n is 0), -EINVAL/-EFBIG
 *   (broken snapshot table, qemu's messages), -EIO.
 */
VIMG_API int vimg_snapshot_list(struct vimg_image *img,
                                struct vimg_snapshot **out, size_t *n,
                                struct vimg_error **errp);
/** vimg_snapshot_list_free - free what vimg_snapshot_list() returned. */
VIMG_API void vimg_snapshot_list_free(struct vimg_snapshot *list, size_t n);

/**
 * vimg_snapshot_create - take an internal snapshot of the current content
 * (qemu-img snapshot -c): the next free numeric id, the current time, no VM
 * state.  Names need not be unique (as in qemu-img).
 * @img: a read-write handle (VIMG_OPEN_NO_IO is fine: only metadata moves).
 * @name: the tag.
 * @errp: error out (may be NULL).
 * Return: 0, -EBADF (read-only), -ENOTSUP (format), -EFBIG (65536
 *   snapshots already), -EIO.
 */
VIMG_API int vimg_snapshot_create(struct vimg_image *img, const char *name,
                                  struct vimg_error **errp);
/**
 * vimg_snapshot_delete - delete the snapshot matching @id and @name
 * (either may be NULL, not both; qemu-img snapshot -d matches the name only).
 * Return: 0, -ENOENT ("snapshot not found"), -EBADF, -ENOTSUP, -EIO.
 */
VIMG_API int vimg_snapshot_delete(struct vimg_image *img, const char *id,
                                  const char *name, struct vimg_error **errp);
/**
 * vimg_snapshot_apply - revert the image to a snapshot (qemu-img snapshot
 * -a): @id_or_name is looked up as an id first, then as a name.  The
 * virtual size becomes the snapshot's.
 * Return: 0, -ENOENT, -EBADF, -ENOTSUP, -EINVAL/-EFBIG (broken snapshot
 *   L1 table), -EIO.
 */
VIMG_API int vimg_snapshot_apply(struct vimg_image *img,
                                 const char *id_or_name,
                                 struct vimg_error **errp);
/**
 * vimg_snapshot_load - make a read-only handle show a snapshot's content
 * instead of the current one (qemu-img convert -l); nothing is written.
 * @id, @name: both given must both match; one may be NULL (not both).
 * Return: 0, -ENOENT ("Can't find snapshot"), -EINVAL (handle writable:
 *   "Device is not readonly"), -ENOTSUP, -EIO.
 */
VIMG_API int vimg_snapshot_load(struct vimg_image *img, const char *id,
                                const char *name, struct vimg_error **errp);

#ifdef __cplusplus
}
#endif

#endif /* VIMG_H */
