/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The LUKS1 on-disk header (LUKS on-disk format specification 1.2.x) as a
 * packed struct, plus converters between disk (big-endian) and host byte
 * order.  The converters work on copies: the header is read into one
 * struct, converted into another and only the converted copy is inspected,
 * so nothing ever looks at a half-swapped header.  The character arrays and
 * salts/digests are byte strings and are copied unchanged.
 */
#ifndef VIMG_LUKS1_DISK_H
#define VIMG_LUKS1_DISK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bytes.h"

#define LUKS1_MAGIC             "LUKS\xba\xbe"
#define LUKS1_MAGIC_LEN         6
#define LUKS1_NAME_LEN          32
#define LUKS1_UUID_LEN          40
#define LUKS1_SLOT_ACTIVE       0x00AC71F3u
#define LUKS1_SLOT_INACTIVE     0x0000DEADu
/* Key material starts at 4096 bytes; slot areas are 4096-byte aligned. */
#define LUKS1_FIRST_SLOT_SECTOR 8
#define LUKS1_SLOT_ALIGN        8

struct luks1_disk_slot {
    uint32_t active;           /* LUKS1_SLOT_ACTIVE / LUKS1_SLOT_INACTIVE */
    uint32_t iterations;       /* PBKDF2 iterations for the slot key */
    uint8_t salt[32];
    uint32_t key_offset;       /* key material start, in 512-byte sectors */
    uint32_t stripes;          /* AF stripes, always 4000 */
} __attribute__((packed));

struct luks1_disk_header {
    uint8_t magic[LUKS1_MAGIC_LEN];
    uint16_t version;
    char cipher_name[LUKS1_NAME_LEN];
    char cipher_mode[LUKS1_NAME_LEN];
    char hash_spec[LUKS1_NAME_LEN];
    uint32_t payload_offset;   /* in 512-byte sectors */
    uint32_t key_bytes;        /* master key length (XTS: both halves) */
    uint8_t mk_digest[20];
    uint8_t mk_salt[32];
    uint32_t mk_iterations;
    char uuid[LUKS1_UUID_LEN];
    struct luks1_disk_slot slots[8];
} __attribute__((packed));

_Static_assert(sizeof(struct luks1_disk_slot) == 48, "LUKS1 key slot is 48 bytes");
_Static_assert(sizeof(struct luks1_disk_header) == 592, "LUKS1 header is 592 bytes");
_Static_assert(offsetof(struct luks1_disk_header, payload_offset) == 104,
               "payload offset field at 104");
_Static_assert(offsetof(struct luks1_disk_header, mk_iterations) == 164,
               "mk iterations field at 164");
_Static_assert(offsetof(struct luks1_disk_header, slots) == 208,
               "key slots start at 208");

/*
 * Swap every integer field of @src into @dst (which may equal @src).  The
 * same operation converts in both directions; the two names below say
 * which one the caller means.  Loads/stores go through bytes.h so that the
 * packed (unaligned) fields are never accessed through aligned pointers.
 */
static inline void
luks1_header_swap(const struct luks1_disk_header *src,
                  struct luks1_disk_header *dst, int to_disk)
{
    struct luks1_disk_header tmp;
    size_t i;

    memcpy(&tmp, src, sizeof(tmp));
#define LUKS1_SWAP32_(field)                                            \
    do {                                                                \
        uint32_t v_;                                                    \
        if (to_disk) {                                                  \
            memcpy(&v_, &(field), 4);                                   \
            st_be32(&(field), v_);                                      \
        } else {                                                        \
            v_ = ld_be32(&(field));                                     \
            memcpy(&(field), &v_, 4);                                   \
        }                                                               \
    } while (0)
    {
        uint16_t v;
        if (to_disk) {
            memcpy(&v, &tmp.version, 2);
            st_be16(&tmp.version, v);
        } else {
            v = ld_be16(&tmp.version);
            memcpy(&tmp.version, &v, 2);
        }
    }
    LUKS1_SWAP32_(tmp.payload_offset);
    LUKS1_SWAP32_(tmp.key_bytes);
    LUKS1_SWAP32_(tmp.mk_iterations);
    for (i = 0; i < 8; i++) {
        LUKS1_SWAP32_(tmp.slots[i].active);
        LUKS1_SWAP32_(tmp.slots[i].iterations);
        LUKS1_SWAP32_(tmp.slots[i].key_offset);
        LUKS1_SWAP32_(tmp.slots[i].stripes);
    }
#undef LUKS1_SWAP32_
    memcpy(dst, &tmp, sizeof(tmp));
}

/* luks1_header_from_disk - big-endian on-disk copy -> host-order copy. */
static inline void
luks1_header_from_disk(const struct luks1_disk_header *disk,
                       struct luks1_disk_header *host)
{
    luks1_header_swap(disk, host, 0);
}

/* luks1_header_to_disk - host-order copy -> big-endian copy for writing. */
static inline void
luks1_header_to_disk(const struct luks1_disk_header *host,
                     struct luks1_disk_header *disk)
{
    luks1_header_swap(host, disk, 1);
}

#endif /* VIMG_LUKS1_DISK_H */
