/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 (on-disk format spec 1.2.x) block encryption, compatible with QEMU
 * 7.2 crypto/block-luks and cryptsetup 2.6.
 *
 * The format code does no I/O: the caller supplies callbacks that read and
 * write bytes relative to the start of the LUKS header (raw LUKS maps them
 * to file offsets, qcow2 maps them into its crypto-header clusters and
 * bounds-checks against the extension length).
 *
 * Pipeline: load (read + byte-swap a copy + check every field + parse
 * names) -> unlock (try each active slot; verify the master-key digest) ->
 * sector encrypt/decrypt.  create writes a fresh header and slot 0.
 */
#ifndef VIMG_LUKS1_H
#define VIMG_LUKS1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vimg.h"
#include "crypto/crypto.h"

#define LUKS1_HEADER_SIZE   592
#define LUKS1_NUM_SLOTS     8
#define LUKS1_STRIPES       4000
#define LUKS1_SALT_LEN      32
#define LUKS1_DIGEST_LEN    20

struct luks1_io {
    void *opaque;
    /** read @len bytes at @off (relative to the header start); 0 or -errno + errp. */
    int (*read)(void *opaque, uint64_t off, void *buf, size_t len,
                struct vimg_error **errp);
    /** write likewise; may be NULL for read-only use. */
    int (*write)(void *opaque, uint64_t off, const void *buf, size_t len,
                 struct vimg_error **errp);
    /** the header is detached (payload in another file): the payload
     *  offset is not checked against the key material. */
    bool detached;
};

struct luks1_create_params {
    enum crypto_cipher_alg cipher;     /* default AES_256 */
    enum crypto_cipher_mode mode;      /* default XTS */
    enum crypto_ivgen_alg ivgen;       /* default PLAIN64 */
    enum crypto_hash_alg ivgen_hash;   /* used with ESSIV; default SHA256 */
    bool ivgen_hash_set;               /* true if the user named ivgen-hash-alg
                                          (then written even for plain/plain64,
                                          as qemu does: "xts-plain64:sha1") */
    enum crypto_hash_alg hash;         /* default SHA256 */
    int64_t iter_time_ms;              /* default 2000; 0 -> 1000 iterations */
    uint32_t iterations;               /* vimg extension: if non-zero, use this
                                          slot iteration count and skip the
                                          benchmark (scripts, tests) */
    uint32_t mk_iterations;            /* 0 = derived (iterations/8, >= 1000) */
};

/** luks1_create_params_default - QEMU's defaults: aes-256 xts plain64 sha256 2000 ms. */
void luks1_create_params_default(struct luks1_create_params *p);

struct luks1;

/**
 * luks1_probe - whether @buf (>= 8 bytes) starts with the LUKS magic;
 * returns the version field (1, 2, ...) or 0 if not LUKS.
 */
int luks1_probe(const uint8_t *buf, size_t len);

/**
 * luks1_load - read and validate the header (no key needed).  Each check has
 * one message, in qemu's order and wording (see qemu-facts.md 5.6), e.g.
 * "Volume is not in LUKS format", "LUKS version 2 is not supported",
 * "Keyslot 3 is overlapping with the encrypted payload".
 * Return: 0, -EINVAL (bad header or unsupported algorithm), -EIO.
 * (Unlocking a loadable but unusable combination such as cast5+xts gives
 * -ENOTSUP "Unsupported cipher mode xts"; create's calibration errors give
 * -ERANGE.)
 */
int luks1_load(const struct luks1_io *io, struct luks1 **out,
               struct vimg_error **errp);

/**
 * luks1_unlock - try every active slot in order with @pw; on success the
 * master key is kept (safe memory) and sector I/O is possible.
 * Return: slot number (>= 0), or -EPERM "Invalid password, cannot unlock any
 * keyslot", -EIO ...
 */
int luks1_unlock(struct luks1 *l, const char *pw, size_t pwlen,
                 struct vimg_error **errp);

/**
 * luks1_create - write a new header + slot 0 through @io.  The caller has
 * made sure the area [0, payload offset) exists (zero-filled).
 * Fails with "Unsupported cipher mode xts" etc. for impossible combinations.
 * On success *out is an unlocked handle.
 */
int luks1_create(const struct luks1_io *io,
                 const struct luks1_create_params *p, const char *pw,
                 size_t pwlen, struct luks1 **out, struct vimg_error **errp);

/**
 * luks1_params_from - creation parameters describing @l's algorithms
 * (cipher, mode, IV generator and its hash, hash); iteration settings are
 * the defaults.  For making a new header like an existing one.
 */
void luks1_params_from(const struct luks1 *l, struct luks1_create_params *p);

/** luks1_active_slots - the number of active key slots of @l. */
int luks1_active_slots(const struct luks1 *l);

/**
 * luks1_geometry - payload offset in bytes for @p without creating anything
 * (for measure and for preparing the area before luks1_create).
 */
int luks1_payload_bytes(const struct luks1_create_params *p, uint64_t *out,
                        struct vimg_error **errp);

void luks1_free(struct luks1 *l);

/** luks1_payload_offset - payload offset in bytes (header field * 512). */
uint64_t luks1_payload_offset(const struct luks1 *l);
bool luks1_unlocked(const struct luks1 *l);

/**
 * luks1_header_area_size - bytes of the header area as cryptsetup's
 * luksHeaderBackup copies them: the end of the last key material area
 * rounded up to 4096, or the payload offset if that is larger.
 */
uint64_t luks1_header_area_size(const struct luks1 *l);

/** luks1_uuid - the UUID string (at most 40 characters) into @out. */
void luks1_uuid(const struct luks1 *l, char out[41]);

/**
 * luks1_encrypt/decrypt - in place over @len bytes (multiple of 512);
 * the first 512-byte unit uses IV sector @sector.  Needs an unlocked handle
 * (-EACCES otherwise).
 */
int luks1_encrypt(struct luks1 *l, uint64_t sector, void *buf, size_t len);
int luks1_decrypt(struct luks1 *l, uint64_t sector, void *buf, size_t len);
/** luks1_encrypt_from - the same from @in to @out (not overlapping). */
int luks1_encrypt_from(struct luks1 *l, uint64_t sector, void *out,
                       const void *in, size_t len);

/**
 * luks1_info - add qemu's QCryptoBlockInfoLUKS keys to @obj: "ivgen-alg",
 * ["ivgen-hash-alg" only with essiv], "hash-alg", "cipher-alg", "uuid",
 * "cipher-mode", "slots" [{active, iters?, key-offset, stripes?}],
 * "payload-offset" (bytes), "master-key-iters".  (The qcow2 wrapper adds
 * "format": "luks" itself.)
 */
int luks1_info(const struct luks1 *l, struct json_object *obj,
               struct vimg_error **errp);

/* ---- key slot management (luks1-keyslot.c) ------------------------------ */

struct vimg_opts;
struct vimg_secrets;
struct vimg_opt_desc;

/**
 * struct luks1_sync - how to make earlier writes durable (fdatasync of the
 * file holding the header).  The slot functions below call it between the
 * steps that must reach the disk in order.
 * @opaque: passed to @flush.
 * @flush: returns 0, or -errno with *errp set.
 */
struct luks1_sync {
    void *opaque;
    int (*flush)(void *opaque, struct vimg_error **errp);
};

/** luks1_keyslot_active - whether slot @slot (0..7) is active. */
bool luks1_keyslot_active(const struct luks1 *l, int slot);

/**
 * luks1_keyslot_iterations - PBKDF2 iterations for a new slot on @l,
 * calibrated to @iter_time_ms as qemu does (rate for key-length output
 * times the time, at least 1000; 0 ms gives 1000).
 * Return: 0, or -ERANGE with qemu's "PBKDF iterations N too large to
 *   scale: ..." / "... larger than 4294967295" messages.
 */
int luks1_keyslot_iterations(const struct luks1 *l, int64_t iter_time_ms,
                             uint32_t *out, struct vimg_error **errp);

/**
 * luks1_keyslot_check - whether @pw opens slot @slot of the unlocked @l
 * (the slot's key material decrypts to the master key in use).
 * Return: 1 match, 0 no match or inactive slot, <0 error (*errp set).
 */
int luks1_keyslot_check(struct luks1 *l, int slot, const char *pw,
                        size_t pwlen, struct vimg_error **errp);

/**
 * luks1_keyslot_add - put @pw into slot @slot of the unlocked, writable @l:
 * new random salt, @iterations PBKDF2 rounds, AF split of the master key,
 * encryption with the slot key.  Crash-safe order: if the slot is active
 * (a forced overwrite) it is first marked inactive in the header (flush);
 * then the key material is written (flush); then the header with the slot
 * active (flush).  A crash leaves either the old or the new slot set.
 * Return: 0, -EACCES (locked handle), -EBADF (read-only), -EINVAL (slot
 *   number), -errno from I/O.  On failure the in-memory header matches what
 *   was last written.
 */
int luks1_keyslot_add(struct luks1 *l, int slot, const char *pw, size_t pwlen,
                      uint32_t iterations, const struct luks1_sync *sync,
                      struct vimg_error **errp);

/**
 * luks1_keyslot_erase - deactivate slot @slot of writable @l: header first
 * (inactive, iterations 0, salt zeroed; flush), then its key material is
 * overwritten with random data (flush).  Works on locked handles too.
 * Return: 0 or -errno (*errp set).
 */
int luks1_keyslot_erase(struct luks1 *l, int slot,
                        const struct luks1_sync *sync,
                        struct vimg_error **errp);

/**
 * luks1_amend_check_opts - validate amend option keys the way qemu-img
 * amend does, before anything else: keys are PREFIX + state, new-secret,
 * old-secret, keyslot, iter-time (and vimg's iter-count); @other_amend
 * lists further keys the format accepts (full names, NULL-terminated, may
 * be NULL).  The first bad key, in the order given, fails with "Invalid
 * parameter 'K'", "Parameter 'K' expects a number" or "Value 'V' is too
 * large for parameter 'K'"; when every key would be valid as an amend or
 * a creation option (@create_opts), "\nThis option is only supported for
 * image creation" is appended, as qemu-img does.
 * Return: 0 or -EINVAL.
 */
int luks1_amend_check_opts(const struct vimg_opts *opts, const char *prefix,
                           const struct vimg_opt_desc *create_opts,
                           const char *const *other_amend,
                           struct vimg_error **errp);

/**
 * luks1_amend - qemu's LUKS keyslot amendment (qemu-facts.md 5.8): takes
 * PREFIX + state (active|inactive, required), new-secret, old-secret,
 * keyslot, iter-time and iter-count from @opts and adds or erases slots of
 * the unlocked, writable @l, with qemu's checks, order and messages.
 * @prefix: "" for raw luks, "encrypt." for qcow2.
 * @secrets: where new-secret / old-secret ids are looked up.
 * @force: allow overwriting an active slot and erasing the last one(s).
 * Return: 0, -EINVAL (refusals), -ENOENT (unknown secret), -ENOSPC (all
 *   slots in use), -ERANGE (calibration), -errno from I/O.
 */
int luks1_amend(struct luks1 *l, struct vimg_opts *opts, const char *prefix,
                struct vimg_secrets *secrets, bool force,
                const struct luks1_sync *sync, struct vimg_error **errp);

#endif /* VIMG_LUKS1_H */
