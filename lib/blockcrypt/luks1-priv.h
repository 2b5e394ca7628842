/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private state of a loaded LUKS1 volume (struct luks1), shared by the
 * two files that implement it: luks1.c (load, unlock, create, payload
 * crypto, info) and luks1-keyslot.c (adding and erasing key slots).  No
 * other file may include this header; everything else goes through the
 * functions declared in luks1.h.
 */
#ifndef VIMG_LUKS1_PRIV_H
#define VIMG_LUKS1_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "blockcrypt/luks1.h"
#include "blockcrypt/luks1-disk.h"
#include "crypto/crypto.h"

struct luks1 {
    struct luks1_io io;
    struct luks1_disk_header hdr;      /* host byte order, validated */
    enum crypto_cipher_alg cipher;     /* one XTS half for xts */
    enum crypto_cipher_mode mode;
    enum crypto_ivgen_alg ivgen;
    enum crypto_hash_alg ivgen_hash;   /* meaningful if has_ivgen_hash */
    bool has_ivgen_hash;
    enum crypto_hash_alg hash;
    uint8_t *master_key;               /* safe memory, key_bytes; NULL if locked */
    struct crypto_sector *sector;      /* payload cipher once unlocked */
};

#endif /* VIMG_LUKS1_PRIV_H */
