/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * In-place LUKS1 re-encryption (master-key rotation) with a crash-safe,
 * resumable journal in a sidecar file FILENAME.reenc (docs/reencrypt.md).
 *
 * The format supplies where its LUKS1 header area lives in the image file,
 * the IV base (file offset of IV sector 0: the payload offset for raw
 * luks, 0 for qcow2 whose IVs are host offsets) and the sorted list of
 * file extents that hold encrypted data.  Everything below the journal's
 * boundary is under the new key, everything above under the old one, and
 * the chunk being rewritten is read from the journal's backup copy.  At
 * the end the new header area is copied over the old one and the journal
 * is deleted.  Formats only call the functions here; the journal layout
 * is private to reencrypt.c.
 */
#ifndef VIMG_REENCRYPT_H
#define VIMG_REENCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "blockcrypt/luks1.h"
#include "blockcrypt/qcowaes.h"

struct reenc;

/* One run of encrypted data in the image file. */
struct reenc_extent {
    uint64_t off, len;          /* file offset and length, 512-aligned */
    uint64_t guest;             /* legacy AES only: the guest offset of
                                 * byte @off (its IVs are guest sectors) */
};

/* What the format tells the journal about the image. */
struct reenc_target {
    int fd;                     /* the image file, read-write for run */
    const char *filename;       /* the image; the journal is FILENAME.reenc */
    uint64_t hdr_off, hdr_len;  /* LUKS1 header area in the file */
    uint64_t iv_base;           /* file offset of IV sector 0 */
    struct luks1 *old;          /* the unlocked current header; NULL: the
                                 * data is plaintext (encrypting in place)
                                 * or legacy AES (@old_aes) */
    struct qcowaes *old_aes;    /* qcow2 crypt_method 1: the old data is
                                 * AES-CBC with guest-sector IVs (the
                                 * extents' guest offsets); else NULL */
    /* Called after the new header area is written and flushed, before the
     * journal is deleted (may be NULL); must be idempotent. */
    int (*finish)(void *opaque, struct vimg_error **errp);
    void *opaque;
};

/**
 * reenc_open - load the journal of @filename if there is one.
 * @pw: the passphrase; it must open the journal's new header.
 * Return: 0 with *out NULL (no journal) or the loaded, unlocked journal;
 *   -errno with *errp ("Re-encryption journal 'F': ...") on damage or a
 *   wrong passphrase.
 */
int reenc_open(const char *filename, const char *pw, size_t pwlen,
               struct reenc **out, struct vimg_error **errp);
void reenc_free(struct reenc *j);

/** reenc_exists - whether @filename has a journal (FILENAME.reenc). */
bool reenc_exists(const char *filename);

/**
 * reenc_pending - whether @filename has a journal with a valid superblock
 * (magic and checksum; no passphrase needed): an unfinished run that only
 * `vimg reencrypt` may continue.
 */
bool reenc_pending(const char *filename);

/** reenc_header_area - where the journal's new header area goes. */
void reenc_header_area(const struct reenc *j, uint64_t *off, uint64_t *len);

/** reenc_finishing - the data is done; only the header copy remains. */
bool reenc_finishing(const struct reenc *j);

/**
 * reenc_header_io - read-only callbacks over the journal's new header
 * area (for loading the header while the image's copy may be replaced).
 */
void reenc_header_io(struct reenc *j, struct luks1_io *io);

/**
 * reenc_decrypt - decrypt @len bytes read from file offset @pos in place,
 * with the new key below the boundary, the old one (@old) above, and the
 * journal's backup copy for the chunk in flight.
 * Return: 0 or -errno.
 */
int reenc_decrypt(struct reenc *j, struct luks1 *old, uint64_t iv_base,
                  uint64_t pos, void *buf, size_t len);

/**
 * reenc_decrypt_aes - reenc_decrypt for a legacy AES image being migrated
 * to LUKS: the old key is @aes with IV sector = guest offset / 512, where
 * @guest is the guest offset of file offset @pos (the @len bytes are
 * contiguous in both); the new key's IVs are file offsets (iv_base 0).
 */
int reenc_decrypt_aes(struct reenc *j, struct qcowaes *aes, uint64_t pos,
                      uint64_t guest, void *buf, size_t len);

/**
 * reenc_busy_error - the message for writes refused while a journal exists:
 * "Re-encryption of 'F' is unfinished; run 'vimg reencrypt' to complete it".
 */
int reenc_busy_error(const char *filename, struct vimg_error **errp);

/**
 * reenc_check_slots - refuse (-EINVAL) to start on @old with several active
 * key slots unless @force: the new header keeps only the one passphrase.
 * A journal @j (resuming) is always fine.
 */
int reenc_check_slots(const struct reenc *j, const char *filename,
                      const struct luks1 *old, bool force,
                      struct vimg_error **errp);

/**
 * reenc_run - re-encrypt @ext (sorted, disjoint, inside the file) of
 * @t with a new master key, or resume the journal in *@jp.
 * @np: parameters of the new header (ignored when resuming); its payload
 *   offset must equal @t->hdr_len.
 * @pw: the passphrase put into slot 0 of the new header.
 * @progress: called with bytes done / total (may be NULL).
 * On success the journal is gone and *@jp is freed and NULL.
 * Return: 0 or -errno (*errp).  After a failure the same call resumes.
 */
int reenc_run(const struct reenc_target *t, struct reenc **jp,
              const struct reenc_extent *ext, size_t n_ext,
              const struct luks1_create_params *np, const char *pw,
              size_t pwlen, vimg_progress_fn progress, void *opaque,
              struct vimg_error **errp);

#endif /* VIMG_REENCRYPT_H */
