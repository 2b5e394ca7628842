/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for opening qcow2 images through the public API
 * (lib/format/qcow2*.c behind vimg_image_open).  The input is the start of
 * an image file; it is written to img.qcow2 in a private temporary
 * directory under $TMPDIR, else /dev/shm, else /tmp (a real file, so a
 * relative backing file name resolves inside that directory and nowhere
 * else), then:
 *
 *  1. vimg_image_open(NO_IO): block status over the first 64 MiB of the
 *     virtual disk and at a few offsets derived from the input, info (the
 *     JSON must name the format and the virtual size), the snapshot list
 *     and vimg_check() without repairs - all must return cleanly;
 *  2. vimg_image_open(read-only, with I/O), giving the key secret "s0"
 *     (password "pw", the one the seed images use) when the header says
 *     the image is encrypted: block status and pread of a few ranges, and
 *     every range reported as VIMG_BLOCK_ZERO must read back as zeroes.
 *
 * Invariants (FUZZ_CHECK aborts): a failed call returns a negative errno
 * and sets an error object with the same code and a non-empty message;
 * block status returns 0 < pnum <= len; info's "virtual-size" equals
 * vimg_image_size() and "format" the format opened; check counts are never
 * negative.
 *
 * Filesystem safety: inputs whose backing file name (header bytes 8..19)
 * contains '/' or is "." / ".." are skipped, so the library only ever
 * opens files inside the private directory (img.qcow2 itself, which makes
 * a self-referencing chain that the depth limit must stop).  A qcow2
 * external data file is opened by its name as given (relative to the
 * working directory, as qemu 7.2), so inputs with the data file bit skip
 * step 2; step 1 opens no data file.
 *
 * PBKDF2 work: fuzzing builds cap iterations in lib/crypto; in normal
 * builds (the corpus replay) the key is only offered when the LUKS header
 * the FDE extension points at asks for at most 200000 iterations.
 *
 * fuzz-qcow1-header.c includes this file with FUZZ_QCOW_V1 defined: the
 * same steps for qcow version 1 ("qcow"), where check and the snapshot
 * list must fail with -ENOTSUP.
 *
 * FUZZ_VERBOSE=1 in the environment prints the results of each step.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vimg.h"
#include "bytes.h"
#include "fuzz.h"

#ifdef FUZZ_QCOW_V1
#define FUZZ_FORMAT "qcow"
#define FUZZ_KEY_OPT "encrypt.key-secret"
#else
#define FUZZ_FORMAT "qcow2"
#define FUZZ_KEY_OPT "encrypt.key-secret"
#endif

#define MAX_INPUT (8u << 20)
#define WALK_LIMIT (64ull << 20)     /* guest bytes walked by block status */
#define MAX_STATUS_CALLS 4096
#define READ_CHUNK (256u << 10)
#define REPLAY_MAX_ITERATIONS 200000u

static char img_path[256];
static char tmp_dir[128];
static int verbose = -1;

static void
cleanup(void)
{
    if (img_path[0]) {
        unlink(img_path);
    }
    if (tmp_dir[0]) {
        rmdir(tmp_dir);
    }
}

static void
setup(void)
{
    const char *t = getenv("TMPDIR");

    if (tmp_dir[0]) {
        return;
    }
    /* tmpfs when there is one: rewriting a file on ext4 can cost 20 ms. */
    if (!t || !t[0] || strlen(t) >= 80) {
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    }
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/vimg-fuzz-XXXXXX", t);
    FUZZ_CHECK(mkdtemp(tmp_dir) != NULL);
    snprintf(img_path, sizeof(img_path), "%s/img." FUZZ_FORMAT, tmp_dir);
    atexit(cleanup);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
}

static void
write_input(const uint8_t *data, size_t size)
{
    int fd = open(img_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    size_t done = 0;

    FUZZ_CHECK(fd >= 0);
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);

        FUZZ_CHECK(n > 0);
        done += (size_t)n;
    }
    FUZZ_CHECK(ftruncate(fd, (off_t)size) == 0);
    close(fd);
}

/* The backing file name stays inside the private directory. */
static bool
backing_name_safe(const uint8_t *data, size_t size)
{
    uint64_t off;
    uint32_t len, i;

    if (size < 20) {
        return true;
    }
    off = ld_be64(data + 8);
    len = ld_be32(data + 16);
    if (off == 0 || off >= size) {
        return true;
    }
    if (len > size - off) {
        len = (uint32_t)(size - off);
    }
    if (len > 1023) {
        len = 1023;
    }
    for (i = 0; i < len; i++) {
        if (data[off + i] == '/') {
            return false;
        }
        if (data[off + i] == '\0') {
            break;
        }
    }
    if ((i == 1 && data[off] == '.') ||
        (i == 2 && data[off] == '.' && data[off + 1] == '.')) {
        return false;
    }
    return true;
}

/* qcow2 v3 incompatible bit 2: an external data file, opened by step 2. */
static bool
has_data_file(const uint8_t *data, size_t size)
{
#ifdef FUZZ_QCOW_V1
    (void)data;
    (void)size;
    return false;
#else
    return size >= 80 && ld_be32(data + 4) >= 3 && (data[79] & 4);
#endif
}

static bool
is_encrypted(const uint8_t *data, size_t size)
{
#ifdef FUZZ_QCOW_V1
    return size >= 40 && ld_be32(data + 36) != 0;
#else
    return size >= 36 && ld_be32(data + 32) != 0;
#endif
}

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
/*
 * Whether unlocking is cheap: the LUKS header the FDE extension points at
 * (if it is in the input) asks for few PBKDF2 iterations.  Only LUKS1
 * headers are judged; anything else (LUKS2 included) gets no key.
 */
static bool
unlock_is_cheap(const uint8_t *data, size_t size)
{
#ifdef FUZZ_QCOW_V1
    (void)data;
    (void)size;
    return true;            /* legacy AES: the password is the key */
#else
    uint32_t cbits, hlen, type, len, i;
    uint64_t end, pos, off;
    const uint8_t *h;

    if (size < 104 || ld_be32(data + 32) != 2) {
        return true;
    }
    cbits = ld_be32(data + 20);
    if (cbits < 9 || cbits > 21) {
        return true;
    }
    hlen = ld_be32(data + 4) >= 3 ? ld_be32(data + 100) : 72;
    end = ld_be64(data + 8) ? ld_be64(data + 8) : (1ull << cbits);
    if (end > size) {
        end = size;
    }
    for (pos = hlen; pos + 8 <= end; pos += 8 + ((len + 7ull) & ~7ull)) {
        type = ld_be32(data + pos);
        len = ld_be32(data + pos + 4);
        if (type == 0) {
            break;
        }
        if (type != 0x0537BE77u || len != 16 || pos + 24 > end) {
            continue;
        }
        off = ld_be64(data + pos + 8);
        if (off >= size || size - off < 592) {
            return true;    /* header not in the file: nothing to derive */
        }
        h = data + off;
        if (memcmp(h, "LUKS\xba\xbe\0\1", 8) != 0) {
            return memcmp(h, "LUKS\xba\xbe", 6) != 0;
        }
        if (ld_be32(h + 164) > REPLAY_MAX_ITERATIONS) {
            return false;
        }
        for (i = 0; i < 8; i++) {
            const uint8_t *s = h + 208 + 48 * i;

            if (ld_be32(s) == 0x00AC71F3u &&
                ld_be32(s + 4) > REPLAY_MAX_ITERATIONS) {
                return false;
            }
        }
        return true;
    }
    return true;
#endif
}
#endif

/* A failed call: negative code, matching error object, a message. */
static void
check_failure(int r, struct vimg_error *err)
{
    FUZZ_CHECK(r < 0);
    FUZZ_CHECK(err != NULL);
    FUZZ_CHECK(vimg_error_code(err) == r);
    FUZZ_CHECK(vimg_error_message(err)[0] != '\0');
    vimg_error_free(err);
}

static uint64_t
input_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < size; i += 1 + i / 64) {
        h = (h ^ data[i]) * 1099511628211ull;
    }
    return h ^ size;
}

/*
 * Block status of [start, start+len) clipped to the virtual size; stops at
 * the first error.  With @buf, ranges reported as zero are read and must
 * be zeroes.
 */
static void
walk(struct vimg_image *img, uint64_t start, uint64_t len, unsigned *calls,
     uint8_t *buf)
{
    uint64_t size = vimg_image_size(img), off = start, end;

    if (start >= size) {
        return;
    }
    end = len > size - start ? size : start + len;
    while (off < end && *calls < MAX_STATUS_CALLS) {
        struct vimg_error *err = NULL;
        uint64_t pnum = 0, host = 0;
        unsigned status = 0;
        int r;

        (*calls)++;
        r = vimg_image_block_status(img, off, end - off, &pnum, &status,
                                    &host, &err);
        if (r < 0) {
            if (verbose) {
                fprintf(stderr, "  block_status @%llu: %s\n",
                        (unsigned long long)off, vimg_error_message(err));
            }
            check_failure(r, err);
            return;
        }
        FUZZ_CHECK(err == NULL);
        FUZZ_CHECK(pnum > 0 && pnum <= end - off);
        if (buf && (status & VIMG_BLOCK_ZERO)) {
            uint64_t n = pnum < READ_CHUNK ? pnum : READ_CHUNK;
            size_t i;

            r = vimg_image_pread(img, buf, (size_t)n, off, &err);
            if (r < 0) {
                check_failure(r, err);
            } else {
                for (i = 0; i < n; i++) {
                    FUZZ_CHECK(buf[i] == 0);
                }
            }
        }
        off += pnum;
    }
}

static void
check_info(struct vimg_image *img)
{
    struct json_object *obj = NULL, *v;
    struct vimg_error *err = NULL;
    const char *str;
    int r;

    r = vimg_image_info(img, &obj, &err);
    if (r < 0) {
        if (verbose) {
            fprintf(stderr, "  info: %s\n", vimg_error_message(err));
        }
        FUZZ_CHECK(obj == NULL);
        check_failure(r, err);
        return;
    }
    FUZZ_CHECK(obj && err == NULL);
    FUZZ_CHECK(json_object_object_get_ex(obj, "virtual-size", &v));
    FUZZ_CHECK((uint64_t)json_object_get_int64(v) == vimg_image_size(img));
    FUZZ_CHECK(json_object_object_get_ex(obj, "format", &v));
    FUZZ_CHECK(strcmp(json_object_get_string(v), FUZZ_FORMAT) == 0);
    str = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY);
    FUZZ_CHECK(str && str[0] == '{');
    json_object_put(obj);
}

static void
report_line(void *opaque, const char *line)
{
    FUZZ_CHECK(line != NULL);
    (*(unsigned *)opaque)++;
}

static void
check_metadata(struct vimg_image *img)
{
    struct vimg_check_result res;
    struct vimg_snapshot *snaps = NULL;
    struct vimg_error *err = NULL;
    unsigned lines = 0;
    size_t n = 0, i;
    int r;

    r = vimg_snapshot_list(img, &snaps, &n, &err);
#ifdef FUZZ_QCOW_V1
    FUZZ_CHECK(r == -ENOTSUP);
#endif
    if (r < 0) {
        check_failure(r, err);
    } else {
        FUZZ_CHECK(err == NULL && (n == 0 || snaps != NULL));
        for (i = 0; i < n; i++) {
            FUZZ_CHECK(snaps[i].id != NULL && snaps[i].name != NULL);
        }
        vimg_snapshot_list_free(snaps, n);
    }

    err = NULL;
    r = vimg_check(img, 0, &res, report_line, &lines, &err);
    if (verbose) {
        fprintf(stderr, "  check: %d %s (corrupt %lld, leaks %lld, "
                "lines %u)\n", r, r < 0 ? vimg_error_message(err) : "ran",
                (long long)res.corruptions, (long long)res.leaks, lines);
    }
#ifdef FUZZ_QCOW_V1
    FUZZ_CHECK(r == -ENOTSUP);
#endif
    if (r < 0) {
        check_failure(r, err);
        return;
    }
    FUZZ_CHECK(err == NULL);
    FUZZ_CHECK(res.corruptions >= 0 && res.leaks >= 0 &&
               res.check_errors >= 0 && res.image_end_offset >= 0);
    FUZZ_CHECK(res.corruptions_fixed == 0 && res.leaks_fixed == 0);
    FUZZ_CHECK(res.allocated_clusters >= 0 &&
               res.compressed_clusters <= res.allocated_clusters);
    /* Repairs on a read-only handle are refused. */
    err = NULL;
    r = vimg_check(img, VIMG_CHECK_FIX_LEAKS, &res, NULL, NULL, &err);
    FUZZ_CHECK(r < 0);
    check_failure(r, err);
}

static void
run_no_io(uint64_t hash)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    unsigned calls = 0;
    uint64_t size;
    int r, i;

    r = vimg_image_open(img_path, FUZZ_FORMAT, NULL, NULL, VIMG_OPEN_NO_IO,
                        &img, &err);
    if (verbose) {
        fprintf(stderr, "  open NO_IO: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r < 0) {
        FUZZ_CHECK(img == NULL);
        check_failure(r, err);
        return;
    }
    FUZZ_CHECK(img && err == NULL);
    FUZZ_CHECK(strcmp(vimg_image_format(img), FUZZ_FORMAT) == 0);
    FUZZ_CHECK(!vimg_image_writable(img));
    size = vimg_image_size(img);
    walk(img, 0, WALK_LIMIT, &calls, NULL);
    for (i = 0; i < 4 && size > WALK_LIMIT; i++) {
        uint64_t off = (hash >> (i * 16)) % size;

        walk(img, off & ~511ull, 1 << 20, &calls, NULL);
    }
    if (size) {
        walk(img, size - 1, 1, &calls, NULL);
    }
    check_info(img);
    check_metadata(img);
    err = NULL;
    FUZZ_CHECK(vimg_image_close(img, &err) == 0 && err == NULL);
}

static void
run_io(const uint8_t *data, size_t size, uint64_t hash)
{
    struct vimg_secrets *sec = NULL;
    struct vimg_opts *opts = NULL;
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    unsigned calls = 0;
    uint64_t vsize;
    uint8_t *buf;
    int r, i;

    if (is_encrypted(data, size)) {
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        if (!unlock_is_cheap(data, size)) {
            return;
        }
#endif
        sec = vimg_secrets_new();
        opts = vimg_opts_new();
        FUZZ_CHECK(sec && opts);
        FUZZ_CHECK(vimg_secrets_add(sec, "s0", "pw", 2, NULL) == 0);
        FUZZ_CHECK(vimg_opts_set(opts, FUZZ_KEY_OPT, "s0") == 0);
    }
    r = vimg_image_open(img_path, FUZZ_FORMAT, opts, sec, 0, &img, &err);
    if (verbose) {
        fprintf(stderr, "  open I/O: %d %s\n", r,
                r < 0 ? vimg_error_message(err) : "ok");
    }
    if (r < 0) {
        FUZZ_CHECK(img == NULL);
        check_failure(r, err);
        goto out;
    }
    FUZZ_CHECK(img && err == NULL);
    vsize = vimg_image_size(img);
    buf = malloc(READ_CHUNK);
    FUZZ_CHECK(buf);
    walk(img, 0, 8u << 20, &calls, buf);
    for (i = 0; i < 4; i++) {
        uint64_t off, len = (hash >> (i * 8)) % READ_CHUNK + 1;

        if (vsize == 0) {
            break;
        }
        off = i == 0 ? 0 : (hash >> (i * 13)) % vsize;
        if (len > vsize - off) {
            len = vsize - off;
        }
        err = NULL;
        r = vimg_image_pread(img, buf, (size_t)len, off, &err);
        if (r < 0) {
            check_failure(r, err);
        } else {
            FUZZ_CHECK(err == NULL);
        }
    }
    free(buf);
    check_info(img);
    err = NULL;
    FUZZ_CHECK(vimg_image_close(img, &err) == 0 && err == NULL);
out:
    vimg_opts_free(opts);
    vimg_secrets_free(sec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t hash;

    if (size > MAX_INPUT) {
        return 0;
    }
    setup();
    if (!backing_name_safe(data, size)) {
        return 0;
    }
    write_input(data, size);
    hash = input_hash(data, size);
    run_no_io(hash);
    if (!has_data_file(data, size)) {
        run_io(data, size, hash);
    }
    return 0;
}
