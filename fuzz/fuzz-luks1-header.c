/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the LUKS1 header code (lib/blockcrypt/luks1.c): the
 * input is the start of a LUKS volume (header, key material, maybe some
 * payload), served to luks1_load() through the luks1_io read callback; a
 * read that reaches past the end of the input fails with -EIO, like a
 * short file.
 *
 * If the header loads: luks1_info() must succeed and serialise to JSON,
 * the payload offset must match the header field, and luks1_unlock() is
 * tried with the password "pw" (the seed images use it).  If that
 * unlocks, up to eight payload sectors present in the input are decrypted,
 * encrypted again and compared with the original (a round-trip check).
 *
 * PBKDF2 work: fuzzing builds (-Dfuzzing=true) cap iterations in
 * lib/crypto.  In normal builds (the corpus replay test) unlock is only
 * attempted when the master-key and every active slot's iteration count
 * are small, so a hostile header cannot make the replay take hours.
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
#include "blockcrypt/luks1.h"
#include "fuzz.h"
#include "fuzz-bufio.h"

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define REPLAY_MAX_ITERATIONS 200000u
#endif
#define MAX_SECTORS 8

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
/* Whether unlocking this header is cheap enough for a replay run. */
static bool
unlock_is_cheap(const uint8_t *h)
{
    size_t i;

    if (ld_be32(h + 164) > REPLAY_MAX_ITERATIONS) {
        return false;
    }
    for (i = 0; i < LUKS1_NUM_SLOTS; i++) {
        const uint8_t *s = h + 208 + 48 * i;

        if (ld_be32(s) == 0x00AC71F3u && ld_be32(s + 4) > REPLAY_MAX_ITERATIONS) {
            return false;
        }
    }
    return true;
}
#endif

static void
check_info(const struct luks1 *l, const uint8_t *h)
{
    struct json_object *obj = json_object_new_object(), *v;
    struct vimg_error *err = NULL;
    const char *str;

    FUZZ_CHECK(obj);
    FUZZ_CHECK(luks1_info(l, obj, &err) == 0 && err == NULL);
    FUZZ_CHECK(json_object_object_get_ex(obj, "payload-offset", &v));
    FUZZ_CHECK((uint64_t)json_object_get_int64(v) ==
               (uint64_t)ld_be32(h + 104) * 512);
    FUZZ_CHECK(json_object_object_get_ex(obj, "slots", &v));
    FUZZ_CHECK(json_object_array_length(v) == LUKS1_NUM_SLOTS);
    FUZZ_CHECK(json_object_object_get_ex(obj, "master-key-iters", &v));
    FUZZ_CHECK((uint64_t)json_object_get_int64(v) == ld_be32(h + 164));
    FUZZ_CHECK(json_object_object_get_ex(obj, "cipher-alg", &v));
    FUZZ_CHECK(json_object_get_string(v) != NULL);
    str = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY);
    FUZZ_CHECK(str && str[0] == '{');
    json_object_put(obj);
}

static void
check_payload(struct luks1 *l, const uint8_t *data, size_t size)
{
    uint64_t off = luks1_payload_offset(l);
    size_t n, len;
    uint8_t *buf;

    if (off >= size) {
        return;
    }
    n = (size - off) / 512;
    if (n > MAX_SECTORS) {
        n = MAX_SECTORS;
    }
    if (n == 0) {
        return;
    }
    len = n * 512;
    buf = malloc(len);
    FUZZ_CHECK(buf);
    memcpy(buf, data + off, len);
    FUZZ_CHECK(luks1_decrypt(l, 0, buf, len) == 0);
    FUZZ_CHECK(luks1_encrypt(l, 0, buf, len) == 0);
    FUZZ_CHECK(memcmp(buf, data + off, len) == 0);
    /* Partial sectors are refused, not processed. */
    FUZZ_CHECK(luks1_decrypt(l, 0, buf, 511) == -EINVAL);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The data is never written: fuzz_buf_write aborts unless writable. */
    struct fuzz_buf b = { .data = (uint8_t *)data, .size = size };
    struct luks1_io io = { .opaque = &b, .read = fuzz_buf_read,
                           .write = fuzz_buf_write };
    struct vimg_error *err = NULL;
    struct luks1 *l = NULL;
    static int verbose = -1;
    int r, ver;

    if (verbose < 0) {
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    }
    if (size > (4u << 20)) {
        return 0;
    }
    ver = luks1_probe(data, size);
    if (size < 8 || memcmp(data, "LUKS\xba\xbe", 6) != 0) {
        FUZZ_CHECK(ver == 0);
    } else {
        FUZZ_CHECK(ver == ld_be16(data + 6));
    }

    r = luks1_load(&io, &l, &err);
    if (verbose) {
        fprintf(stderr, "  load: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r < 0) {
        FUZZ_CHECK(l == NULL);
        FUZZ_CHECK(err && vimg_error_code(err) == r);
        FUZZ_CHECK(vimg_error_message(err)[0] != '\0');
        /* A short input can only fail as a read error. */
        if (size < LUKS1_HEADER_SIZE) {
            FUZZ_CHECK(r == -EIO);
        }
        vimg_error_free(err);
        return 0;
    }
    FUZZ_CHECK(r == 0 && l && err == NULL);
    FUZZ_CHECK(size >= LUKS1_HEADER_SIZE);
    FUZZ_CHECK(ver == 1);
    FUZZ_CHECK(!luks1_unlocked(l));
    FUZZ_CHECK(luks1_payload_offset(l) == (uint64_t)ld_be32(data + 104) * 512);
    check_info(l, data);

    /* Locked handles refuse sector I/O. */
    {
        uint8_t sec[512] = { 0 };

        FUZZ_CHECK(luks1_decrypt(l, 0, sec, sizeof(sec)) == -EACCES);
    }

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (!unlock_is_cheap(data)) {
        luks1_free(l);
        return 0;
    }
#endif
    r = luks1_unlock(l, "pw", 2, &err);
    if (verbose) {
        fprintf(stderr, "  unlock: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r >= 0) {
        FUZZ_CHECK(r < LUKS1_NUM_SLOTS && err == NULL);
        FUZZ_CHECK(luks1_unlocked(l));
        check_payload(l, data, size);
    } else {
        FUZZ_CHECK(err && vimg_error_code(err) == r);
        FUZZ_CHECK(!luks1_unlocked(l));
        vimg_error_free(err);
    }
    luks1_free(l);
    return 0;
}
