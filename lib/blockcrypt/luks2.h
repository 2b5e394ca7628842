/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS2 (LUKS2 on-disk format specification, version 1.1.x) block
 * encryption, compatible with cryptsetup 2.6.
 *
 * Same shape as luks1.h so the raw "luks" format can dispatch on the
 * version field (luks1_probe() returns it): the format code does no I/O,
 * the caller supplies callbacks relative to the start of the LUKS header.
 *
 * Pipeline: load (both binary headers + JSON areas, checksums, choose the
 * valid copy with the higher seqid, validate keyslots/segments/digests/
 * config) -> unlock (keyslots by priority; pbkdf2 / argon2i / argon2id;
 * AF merge; digest check) -> sector encrypt/decrypt of the single crypt
 * segment.  create writes both header copies and keyslot 0 in the layout
 * cryptsetup 2.6 uses (16 KiB headers, keyslots from 32 KiB, data at
 * 16 MiB by default).
 *
 * Supported: keyslot type "luks2" with af "luks1" (4000 stripes), area
 * "raw"; digest "pbkdf2"; one segment of type "crypt" without integrity,
 * sector_size 512..4096; ciphers of crypto.h written as
 * "<family>-<mode>[-<ivgen>[:<hash>]]".  Tokens are kept but ignored.
 * Headers with mandatory requirements (online reencryption, ...) are
 * refused.
 */
#ifndef VIMG_LUKS2_H
#define VIMG_LUKS2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vimg.h"
#include "crypto/crypto.h"

#define LUKS2_BIN_HEADER_SIZE 4096
#define LUKS2_HDR_SIZE_DEFAULT 16384          /* binary header + JSON area */
#define LUKS2_DATA_OFFSET_DEFAULT (16u * 1024 * 1024)
#define LUKS2_NUM_KEYSLOTS 32
#define LUKS2_STRIPES 4000

struct json_object;

struct luks2_io {
    void *opaque;
    /** read @len bytes at @off (relative to the header start); 0 or -errno + errp. */
    int (*read)(void *opaque, uint64_t off, void *buf, size_t len,
                struct vimg_error **errp);
    /** write likewise; may be NULL for read-only use. */
    int (*write)(void *opaque, uint64_t off, const void *buf, size_t len,
                 struct vimg_error **errp);
    /** the header is detached (data segment in another file): the segment
     *  offset may lie inside the header area (0 typically). */
    bool detached;
};

enum luks2_kdf {
    LUKS2_KDF_PBKDF2, LUKS2_KDF_ARGON2I, LUKS2_KDF_ARGON2ID,
};

struct luks2_create_params {
    enum crypto_cipher_alg cipher;     /* default AES_256 */
    enum crypto_cipher_mode mode;      /* default XTS */
    enum crypto_ivgen_alg ivgen;       /* default PLAIN64 */
    enum crypto_hash_alg ivgen_hash;   /* used with ESSIV; default SHA256 */
    enum crypto_hash_alg hash;         /* pbkdf2, AF and digest hash; SHA256 */
    enum luks2_kdf kdf;                /* default ARGON2ID (as cryptsetup) */
    int64_t iter_time_ms;              /* default 2000; calibration target */
    uint32_t iterations;               /* if non-zero: pbkdf2 iterations or
                                          argon2 time cost, no benchmark */
    uint32_t memory_kib;               /* argon2 memory; default 1048576,
                                          (calibration may lower it) */
    uint32_t parallel;                 /* argon2 lanes; 0 = min(4, CPUs) */
    uint32_t sector_size;              /* 512 (default), 1024, 2048, 4096 */
    uint64_t data_offset;              /* bytes; 0 = 16 MiB (cryptsetup) */
    const char *label;                 /* optional, < 48 bytes */
};

/** luks2_create_params_default - the defaults listed above. */
void luks2_create_params_default(struct luks2_create_params *p);

struct luks2;

/**
 * luks2_load - read both header copies, verify their checksums, take the
 * valid one with the higher seqid (the secondary is found at the primary's
 * hdr_size, or by scanning the sizes the specification allows when the
 * primary is damaged), and validate its JSON metadata.
 * Messages name the problem, e.g. "LUKS2 header checksum mismatch",
 * "LUKS2 keyslot 1 area overlaps keyslot 0", "LUKS2 segment 0: sector_size
 * 768 is not supported".
 * Return: 0, -EINVAL (bad or unsupported header), -ENOTSUP (valid but
 * unsupported feature: integrity, reencryption), -ENOMEM, -EIO.
 */
int luks2_load(const struct luks2_io *io, struct luks2 **out,
               struct vimg_error **errp);

/**
 * luks2_unlock - try the keyslots bound to the data segment (priority
 * "high" first, then "normal"; "ignore" is skipped) with @pw; on success
 * the volume key is kept in safe memory and sector I/O is possible.
 * Return: keyslot number (>= 0), -EPERM "Invalid password, cannot unlock
 * any keyslot", -ENOMEM, -EIO.
 */
int luks2_unlock(struct luks2 *l, const char *pw, size_t pwlen,
                 struct vimg_error **errp);

/**
 * luks2_create - write keyslot 0's material and both header copies through
 * @io.  The caller has made sure the area [0, payload offset) exists
 * (zero-filled).  On success *out is an unlocked handle.
 * Return: 0, -EINVAL (bad parameters), -ERANGE (calibration), -EIO.
 */
int luks2_create(const struct luks2_io *io,
                 const struct luks2_create_params *p, const char *pw,
                 size_t pwlen, struct luks2 **out, struct vimg_error **errp);

/**
 * luks2_payload_bytes - payload (data segment) offset in bytes for @p
 * without creating anything (measure, preparing the file).
 */
int luks2_payload_bytes(const struct luks2_create_params *p, uint64_t *out,
                        struct vimg_error **errp);

/**
 * luks2_add_key - write keyslot @slot (-1: the first free one) for @pw,
 * using @p's kdf settings (NULL: pbkdf2 settings of the defaults), and
 * commit both header copies with seqid + 1.  Needs an unlocked handle
 * opened with a write callback.
 * Return: the keyslot number, -EACCES (locked), -ENOSPC (no free slot or
 * area), -EINVAL, -EIO.
 */
int luks2_add_key(struct luks2 *l, int slot,
                  const struct luks2_create_params *p, const char *pw,
                  size_t pwlen, struct vimg_error **errp);

/** luks2_keyslot_present - whether keyslot @slot (0..31) exists. */
bool luks2_keyslot_present(const struct luks2 *l, int slot);

/**
 * luks2_keyslot_check - whether @pw opens keyslot @slot of the unlocked @l
 * to the volume key in use.
 * Return: 1 match, 0 no match / absent / other digest, <0 error (*errp).
 */
int luks2_keyslot_check(struct luks2 *l, int slot, const char *pw,
                        size_t pwlen, struct vimg_error **errp);

/**
 * luks2_keyslot_erase - remove keyslot @slot (as cryptsetup luksKillSlot):
 * the keyslot leaves the JSON metadata and the digests'/tokens' keyslot
 * lists, both header copies are committed with seqid + 1 and @flush is
 * called; only then the keyslot area is overwritten with random bytes
 * (@flush again).  A crash at any point leaves the old or the new metadata,
 * and the old key material until the new metadata is durable.  Erasing
 * the last keyslot of the segment leaves the handle locked.  @flush may
 * be NULL.
 * Return: 0, -EBADF (read-only), -EINVAL (absent slot), -errno from I/O.
 */
int luks2_keyslot_erase(struct luks2 *l, int slot,
                        int (*flush)(void *opaque, struct vimg_error **errp),
                        void *flush_opaque, struct vimg_error **errp);

void luks2_free(struct luks2 *l);

/** luks2_payload_offset - data segment offset in bytes. */
uint64_t luks2_payload_offset(const struct luks2 *l);

/**
 * luks2_payload_size - bytes of payload given the size of the whole
 * device/file @dev_size: the segment's fixed size, or for a "dynamic"
 * segment everything after the offset rounded down to the sector size
 * (0 if the file is shorter than the offset).
 */
uint64_t luks2_payload_size(const struct luks2 *l, uint64_t dev_size);

/** luks2_sector_size - encryption sector size (512..4096). */
uint32_t luks2_sector_size(const struct luks2 *l);

bool luks2_unlocked(const struct luks2 *l);

/**
 * luks2_header_area_size - both header copies plus the keyslots area
 * (2 * hdr_size + keyslots_size): what cryptsetup's luksHeaderBackup
 * copies.
 */
uint64_t luks2_header_area_size(const struct luks2 *l);

/** luks2_uuid - the header's UUID string. */
const char *luks2_uuid(const struct luks2 *l);

/**
 * luks2_volume_key - the unlocked volume key (safe memory owned by @l) and
 * its length; NULL if locked.  For tests and for `--dump-master-key`-like
 * tooling only.
 */
const uint8_t *luks2_volume_key(const struct luks2 *l, size_t *len);

/**
 * luks2_encrypt/decrypt - in place over @len bytes, a multiple of the
 * sector size; @sector is the payload position in 512-byte units and must
 * be a multiple of sector_size / 512.  IVs are iv_tweak + @sector (+ 8 per
 * 4096-byte sector: dm-crypt counts IVs in 512-byte units unless
 * iv_large_sectors is set, which LUKS2 never does), each encryption sector
 * is one cipher message.
 * Return: 0, -EACCES (locked), -EINVAL (misaligned).
 */
int luks2_encrypt(struct luks2 *l, uint64_t sector, void *buf, size_t len);
int luks2_decrypt(struct luks2 *l, uint64_t sector, void *buf, size_t len);
/** luks2_encrypt_from - the same from @in to @out (not overlapping). */
int luks2_encrypt_from(struct luks2 *l, uint64_t sector, void *out,
                       const void *in, size_t len);

/**
 * luks2_info - add vimg's LUKS2 description to @obj: "format": "luks2",
 * "version", "uuid", "label", "subsystem", "seqid", "hdr-size",
 * "payload-offset", "sector-size", "cipher" (dm-crypt spec), "cipher-alg",
 * "cipher-mode", "ivgen-alg", ["ivgen-hash-alg"], "keyslots" [{id, type,
 * key-size, priority, kdf {type, hash?|iterations?|time?, memory?, cpus?},
 * af-stripes, af-hash, area-offset, area-size, encryption}], "segments"
 * [{id, type, offset, size ("dynamic" or bytes), iv-tweak, encryption,
 * sector-size}], "digests" [{id, type, hash, iterations, keyslots [],
 * segments []}].
 */
int luks2_info(const struct luks2 *l, struct json_object *obj,
               struct vimg_error **errp);

#endif /* VIMG_LUKS2_H */
