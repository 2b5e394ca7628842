/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the LUKS2 header code (lib/blockcrypt/luks2.c): the
 * input is the start of a LUKS2 volume (both binary headers, the JSON
 * areas, maybe keyslot material and payload), served to luks2_load()
 * through the luks2_io read callback; a read past the end of the input
 * fails with -EIO, like a short file.
 *
 * Checksums: a mutated JSON area almost never matches the stored sha256,
 * which would stop every input at "checksum mismatch".  So for inputs of
 * EVEN length the harness first recomputes the checksum of each header
 * copy whose binary header looks sane (magic, version 2, an allowed
 * hdr_size, a known checksum algorithm, the copy inside the input); inputs
 * of ODD length are used as they are, so the checksum checks themselves
 * stay fuzzed.
 *
 * If the header loads: luks2_info() must succeed and agree with the
 * accessors (payload offset, sector size), payload_size() must be
 * consistent, a locked handle refuses sector I/O, and luks2_unlock() is
 * tried with the password "pw" (the seeds use it).  If that unlocks, up to
 * eight encryption sectors present in the input are decrypted, encrypted
 * again and compared with the original; then a second password is added
 * with luks2_add_key() into a private writable copy of the input, which
 * must load again and unlock with the new password in the slot returned.
 *
 * KDF work: fuzzing builds (-Dfuzzing=true) cap PBKDF2 at 16 iterations
 * and argon2 at 1 pass over 64 KiB (lib/crypto), and luks2.c skips
 * keyslots asking for more than 1000.  In normal builds (the corpus
 * replay test) unlock is only tried when every keyslot and digest is
 * cheap (pbkdf2 <= 200000 iterations, argon2 <= 4 passes over <= 64 MiB).
 *
 * FUZZ_VERBOSE=1 in the environment prints the load and unlock results.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "blockcrypt/luks2.h"
#include "fuzz.h"
#include "fuzz-bufio.h"

#define MAX_INPUT (4u << 20)
#define MAX_SECTORS 8
#define REPLAY_MAX_ITERATIONS 200000
#define REPLAY_MAX_ARGON2_TIME 4
#define REPLAY_MAX_ARGON2_KIB (64 * 1024)

static int verbose = -1;

/* Recompute the checksum of the header copy at @off if it looks sane. */
static void
fix_checksum(uint8_t *d, size_t size, uint64_t off)
{
    char alg[33];
    uint64_t hs;
    int h;

    if (off > size || size - off < LUKS2_BIN_HEADER_SIZE ||
        memcmp(d + off, off == 0 ? "LUKS\xba\xbe" : "SKUL\xba\xbe", 6) != 0 ||
        ld_be16(d + off + 6) != 2) {
        return;
    }
    hs = ld_be64(d + off + 8);
    if (hs < 16384 || hs > (4u << 20) || (hs & (hs - 1)) != 0 ||
        hs > size - off) {
        return;
    }
    memcpy(alg, d + off + 72, 32);
    alg[32] = '\0';
    h = crypto_hash_alg_parse(alg);
    if (h < 0 || crypto_hash_len((enum crypto_hash_alg)h) > 64) {
        return;
    }
    memset(d + off + 448, 0, 64);
    FUZZ_CHECK(crypto_hash2((enum crypto_hash_alg)h, d + off,
                            LUKS2_BIN_HEADER_SIZE,
                            d + off + LUKS2_BIN_HEADER_SIZE,
                            hs - LUKS2_BIN_HEADER_SIZE, d + off + 448) == 0);
}

static int64_t
jint(struct json_object *o, const char *key)
{
    struct json_object *v;

    FUZZ_CHECK(json_object_object_get_ex(o, key, &v));
    return json_object_get_int64(v);
}

/*
 * Check info against the accessors; return whether unlocking is cheap
 * enough for a replay run (always true in fuzzing builds).
 */
static bool
check_info(const struct luks2 *l)
{
    struct json_object *obj = json_object_new_object(), *arr, *e, *kdf, *v;
    struct vimg_error *err = NULL;
    bool cheap = true;
    const char *str;
    size_t i;

    FUZZ_CHECK(obj);
    FUZZ_CHECK(luks2_info(l, obj, &err) == 0 && err == NULL);
    FUZZ_CHECK((uint64_t)jint(obj, "payload-offset") ==
               luks2_payload_offset(l));
    FUZZ_CHECK((uint32_t)jint(obj, "sector-size") == luks2_sector_size(l));
    FUZZ_CHECK(jint(obj, "version") == 2);
    FUZZ_CHECK(json_object_object_get_ex(obj, "keyslots", &arr));
    FUZZ_CHECK(json_object_array_length(arr) <= LUKS2_NUM_KEYSLOTS);
    for (i = 0; i < json_object_array_length(arr); i++) {
        e = json_object_array_get_idx(arr, i);
        FUZZ_CHECK(jint(e, "id") >= 0 && jint(e, "id") < LUKS2_NUM_KEYSLOTS);
        if (!json_object_object_get_ex(e, "kdf", &kdf)) {
            continue;
        }
        if (json_object_object_get_ex(kdf, "iterations", &v) &&
            json_object_get_int64(v) > REPLAY_MAX_ITERATIONS) {
            cheap = false;
        }
        if (json_object_object_get_ex(kdf, "time", &v) &&
            (json_object_get_int64(v) > REPLAY_MAX_ARGON2_TIME ||
             jint(kdf, "memory") > REPLAY_MAX_ARGON2_KIB)) {
            cheap = false;
        }
    }
    FUZZ_CHECK(json_object_object_get_ex(obj, "digests", &arr));
    for (i = 0; i < json_object_array_length(arr); i++) {
        if (jint(json_object_array_get_idx(arr, i), "iterations") >
            REPLAY_MAX_ITERATIONS) {
            cheap = false;
        }
    }
    FUZZ_CHECK(json_object_object_get_ex(obj, "segments", &arr));
    FUZZ_CHECK(json_object_array_length(arr) == 1);
    str = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY);
    FUZZ_CHECK(str && str[0] == '{');
    json_object_put(obj);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    cheap = true;
#endif
    return cheap;
}

static void
check_payload(struct luks2 *l, const uint8_t *data, size_t size)
{
    uint64_t off = luks2_payload_offset(l);
    uint32_t ss = luks2_sector_size(l);
    size_t n, len;
    uint8_t *buf;

    if (off >= size) {
        return;
    }
    n = (size - off) / ss;
    if (n > MAX_SECTORS) {
        n = MAX_SECTORS;
    }
    if (n == 0) {
        return;
    }
    len = n * ss;
    buf = malloc(len);
    FUZZ_CHECK(buf);
    memcpy(buf, data + off, len);
    FUZZ_CHECK(luks2_decrypt(l, 0, buf, len) == 0);
    FUZZ_CHECK(luks2_encrypt(l, 0, buf, len) == 0);
    FUZZ_CHECK(memcmp(buf, data + off, len) == 0);
    /* Partial sectors are refused, not processed. */
    FUZZ_CHECK(luks2_decrypt(l, 0, buf, ss - 1) == -EINVAL);
    free(buf);
}

/* Add password "pw2" in a writable copy; it must load and unlock again. */
static void
check_add_key(struct luks2 *l, struct fuzz_buf *b)
{
    struct luks2_create_params p;
    struct luks2_io io = { .opaque = b, .read = fuzz_buf_read,
                           .write = fuzz_buf_write };
    struct vimg_error *err = NULL;
    struct luks2 *l2 = NULL;
    int slot, r;

    luks2_create_params_default(&p);
    p.kdf = LUKS2_KDF_PBKDF2;
    p.iterations = 1000;
    b->writable = true;
    slot = luks2_add_key(l, -1, &p, "pw2", 3, &err);
    b->writable = false;
    if (verbose) {
        fprintf(stderr, "  add_key: %d %s\n", slot,
                slot < 0 ? vimg_error_message(err) : "ok");
    }
    if (slot < 0) {
        /* No free slot or area, or the area lies past the input. */
        FUZZ_CHECK(err && vimg_error_code(err) == slot);
        vimg_error_free(err);
        return;
    }
    FUZZ_CHECK(slot < LUKS2_NUM_KEYSLOTS && err == NULL);
    r = luks2_load(&io, &l2, &err);
    if (r < 0) {
        fprintf(stderr, "reload after add_key: %s\n", vimg_error_message(err));
    }
    FUZZ_CHECK(r == 0);
    FUZZ_CHECK(luks2_payload_offset(l2) == luks2_payload_offset(l));
    r = luks2_unlock(l2, "pw2", 3, &err);
    if (r < 0) {
        fprintf(stderr, "unlock after add_key: %s\n", vimg_error_message(err));
    }
    FUZZ_CHECK(r == slot);
    luks2_free(l2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_buf b = { 0 };
    struct luks2_io io = { .opaque = &b, .read = fuzz_buf_read,
                           .write = fuzz_buf_write };
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL;
    uint8_t *copy;
    int r;

    if (verbose < 0) {
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    }
    if (size > MAX_INPUT) {
        return 0;
    }
    copy = malloc(size ? size : 1);
    FUZZ_CHECK(copy);
    memcpy(copy, data, size);
    if (size % 2 == 0) {
        fix_checksum(copy, size, 0);
        if (size >= 16) {
            fix_checksum(copy, size, ld_be64(copy + 8));
        }
    }
    b.data = copy;
    b.size = size;

    r = luks2_load(&io, &l, &err);
    if (verbose) {
        fprintf(stderr, "  load: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r < 0) {
        FUZZ_CHECK(l == NULL);
        FUZZ_CHECK(err && vimg_error_code(err) == r);
        FUZZ_CHECK(vimg_error_message(err)[0] != '\0');
        FUZZ_CHECK(r == -EINVAL || r == -ENOTSUP || r == -EIO);
        vimg_error_free(err);
        free(copy);
        return 0;
    }
    FUZZ_CHECK(r == 0 && l && err == NULL);
    FUZZ_CHECK(!luks2_unlocked(l));
    {
        size_t klen = 0;

        FUZZ_CHECK(luks2_volume_key(l, &klen) == NULL);
    }
    {
        uint32_t ss = luks2_sector_size(l);
        uint64_t off = luks2_payload_offset(l), ps, ps2;

        FUZZ_CHECK(ss == 512 || ss == 1024 || ss == 2048 || ss == 4096);
        FUZZ_CHECK(off % 512 == 0 && off >= 2 * 16384);
        ps = luks2_payload_size(l, off + 3 * (uint64_t)ss + 1);
        FUZZ_CHECK(ps % ss == 0);
        /* Fixed size: the same for any file size; dynamic: 0 if short. */
        ps2 = luks2_payload_size(l, off / 2);
        FUZZ_CHECK(ps2 == 0 || ps2 == ps);
    }
    if (!check_info(l)) {
        luks2_free(l);
        free(copy);
        return 0;
    }
    {
        uint8_t sec[4096] = { 0 };

        FUZZ_CHECK(luks2_decrypt(l, 0, sec, luks2_sector_size(l)) == -EACCES);
    }
    r = luks2_unlock(l, "pw", 2, &err);
    if (verbose) {
        fprintf(stderr, "  unlock: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r >= 0) {
        size_t klen = 0;

        FUZZ_CHECK(r < LUKS2_NUM_KEYSLOTS && err == NULL);
        FUZZ_CHECK(luks2_unlocked(l));
        FUZZ_CHECK(luks2_volume_key(l, &klen) != NULL && klen > 0);
        check_payload(l, copy, size);
        check_add_key(l, &b);
    } else {
        FUZZ_CHECK(err && vimg_error_code(err) == r);
        FUZZ_CHECK(!luks2_unlocked(l));
        vimg_error_free(err);
    }
    luks2_free(l);
    free(copy);
    return 0;
}
