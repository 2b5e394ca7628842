/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The LUKS1 anti-forensic information splitter (LUKS On-Disk Format
 * Specification 1.2.x, section 2.4): a key of B bytes is stored as n stripes
 * of B bytes so that losing any one stripe loses the key.
 *
 *   split:  s_0 .. s_{n-2} random; d = 0
 *           for i < n-1: d = diffuse(d XOR s_i)
 *           s_{n-1} = d XOR key
 *   merge:  d = 0; for i < n-1: d = diffuse(d XOR s_i); key = d XOR s_{n-1}
 *
 * diffuse(d) replaces each digest-sized chunk j of d (the last may be short)
 * by hash(BE32(j) || chunk), truncated to the chunk's length.
 *
 * The running value d and the hash output are key material and live in
 * safe_alloc() memory; the caller provides (and should also protect) the
 * stripes buffer.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "crypto/crypto.h"
#include "safemem.h"

/* Sanity bound: LUKS1 keys are at most 64 bytes; this is far above. */
#define AF_MAX_BLOCK (1u << 20)

static int
af_check(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
         const uint8_t *in, const uint8_t *out)
{
    size_t total;

    if (crypto_hash_len(h) == 0 || blocksize == 0 ||
        blocksize > AF_MAX_BLOCK || stripes == 0 || !in || !out) {
        return -EINVAL;
    }
    if (MUL_OVERFLOW(blocksize, (size_t)stripes, &total)) {
        return -EINVAL;
    }
    return 0;
}

/* d = diffuse(d), with @tmp holding one digest. */
static int
diffuse(enum crypto_hash_alg h, uint8_t *d, size_t len, uint8_t *tmp)
{
    size_t hlen = crypto_hash_len(h);
    uint32_t j = 0;

    for (size_t off = 0; off < len; off += hlen, j++) {
        size_t n = MIN(hlen, len - off);
        uint8_t be[4];
        int r;

        st_be32(be, j);
        r = crypto_hash2(h, be, sizeof(be), d + off, n, tmp);
        if (r < 0) {
            return r;
        }
        memcpy(d + off, tmp, n);
    }
    return 0;
}

static void
xor_into(uint8_t *d, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        d[i] ^= s[i];
    }
}

/* Run d through stripes 0..n-2 of @stripes_buf; d starts at zero. */
static int
af_chain(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
         const uint8_t *stripes_buf, uint8_t *d, uint8_t *tmp)
{
    memset(d, 0, blocksize);
    for (uint32_t i = 0; i + 1 < stripes; i++) {
        int r;

        xor_into(d, stripes_buf + (size_t)i * blocksize, blocksize);
        r = diffuse(h, d, blocksize, tmp);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
crypto_afsplit(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
               const uint8_t *in, uint8_t *out)
{
    uint8_t *work, *last;
    int r;

    r = af_check(h, blocksize, stripes, in, out);
    if (r < 0) {
        return r;
    }
    /* One safe buffer: d (blocksize) followed by a digest scratch. */
    work = safe_alloc(blocksize + CRYPTO_MAX_DIGEST);
    if (!work) {
        return -ENOMEM;
    }
    r = crypto_random(out, (size_t)(stripes - 1) * blocksize);
    if (r == 0) {
        r = af_chain(h, blocksize, stripes, out, work, work + blocksize);
    }
    if (r == 0) {
        last = out + (size_t)(stripes - 1) * blocksize;
        for (size_t i = 0; i < blocksize; i++) {
            last[i] = work[i] ^ in[i];
        }
    }
    safe_free(work);
    return r;
}

int
crypto_afmerge(enum crypto_hash_alg h, size_t blocksize, uint32_t stripes,
               const uint8_t *in, uint8_t *out)
{
    uint8_t *work;
    int r;

    r = af_check(h, blocksize, stripes, in, out);
    if (r < 0) {
        return r;
    }
    work = safe_alloc(blocksize + CRYPTO_MAX_DIGEST);
    if (!work) {
        return -ENOMEM;
    }
    r = af_chain(h, blocksize, stripes, in, work, work + blocksize);
    if (r == 0) {
        const uint8_t *last = in + (size_t)(stripes - 1) * blocksize;

        for (size_t i = 0; i < blocksize; i++) {
            out[i] = work[i] ^ last[i];
        }
    }
    safe_free(work);
    return r;
}
