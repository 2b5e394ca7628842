/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the image layer through the public API: raw and luks
 * create/open/read/write, unaligned I/O, range and permission checks,
 * metadata-only handles, key errors, option errors, probing (LUKS2 as luks,
 * other LUKS versions refused, qcow2), LUKS2 volumes through -f luks, block
 * status, resize and the info JSON.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blockcrypt/luks2.h"
#include "internal.h"
#include "tap.h"

#define LUKS_PAYLOAD 2068480u    /* aes-256-xts: 4040 sectors */

static char dir[64];
static struct vimg_secrets *secrets;

static char *
path(const char *name)
{
    static char buf[4][128];
    static int n;
    char *p = buf[n++ % 4];

    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static struct vimg_opts *
opts(const char *s)
{
    struct vimg_opts *o = vimg_opts_new();

    if (s && vimg_opts_parse(o, s, NULL, NULL) < 0) {
        abort();
    }
    return o;
}

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 9));
    }
}

/* Expect failure @code whose message contains @msg; frees the error. */
static void
expect_err(int r, struct vimg_error **err, int code, const char *msg,
           const char *what)
{
    const char *m = *err ? vimg_error_message(*err) : "(none)";

    ok(r == code && *err && strstr(m, msg) != NULL,
       "%s: r=%d (want %d), msg '%s'", what, r, code, m);
    vimg_error_free(*err);
    *err = NULL;
}

static int
create(const char *file, const char *fmt, uint64_t size, const char *o)
{
    struct vimg_opts *op = opts(o);
    struct vimg_error *err = NULL;
    int r = vimg_image_create(file, fmt, size, op, secrets, &err);

    if (r < 0) {
        printf("# create %s: %s\n", file, vimg_error_message(err));
    }
    vimg_error_free(err);
    vimg_opts_free(op);
    return r;
}

static struct vimg_image *
open_img(const char *file, const char *fmt, const char *o, unsigned flags)
{
    struct vimg_opts *op = opts(o);
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;

    if (vimg_image_open(file, fmt, op, secrets, flags, &img, &err) < 0) {
        printf("# open %s: %s\n", file, vimg_error_message(err));
    }
    vimg_error_free(err);
    vimg_opts_free(op);
    return img;
}

static void
test_raw(void)
{
    const char *f = path("a.raw");
    struct vimg_image *img;
    struct vimg_error *err = NULL;
    uint8_t *model = calloc(1, 1 << 20), *buf = malloc(1 << 20);
    uint8_t pat[5000];
    uint64_t pnum, host;
    unsigned st;
    struct stat sb;
    int r;

    ok(create(f, "raw", 1000000, NULL) == 0, "raw create");
    memset(&sb, 0, sizeof(sb));
    stat(f, &sb);
    ok(sb.st_size == 1000448,
       "raw size rounded up to 512 (%lld)", (long long)sb.st_size);
    img = open_img(f, NULL, NULL, VIMG_OPEN_RDWR);
    ok(img != NULL, "raw open (probed)");
    if (!img) {
        return;
    }
    ok_str(vimg_image_format(img), "raw", "probed format raw");
    ok(vimg_image_size(img) == 1000448, "raw virtual size");
    ok(vimg_image_alignment(img) == 1 && !vimg_image_encrypted(img),
       "raw: alignment 1, not encrypted");

    fill(pat, sizeof(pat), 1);
    r = vimg_image_pwrite(img, pat, 4999, 65537, &err);
    memcpy(model + 65537, pat, 4999);
    ok(r == 0, "raw unaligned write");
    r = vimg_image_pread(img, buf, 1000448 - 24448, 0, &err);
    ok(r == 0, "raw read");
    ok_mem(buf, model, 976000, "raw read back matches");

    /* Block status: hole, data, hole. */
    r = vimg_image_block_status(img, 0, 1000448, &pnum, &st, &host, &err);
    ok(r == 0 && st == (VIMG_BLOCK_ZERO | VIMG_BLOCK_OFFSET) &&
       pnum == 65536 && host == 0,
       "raw leading hole: st=%u pnum=%llu", st, (unsigned long long)pnum);
    r = vimg_image_block_status(img, 65536, 1000448 - 65536, &pnum, &st,
                                &host, &err);
    ok(r == 0 && (st & VIMG_BLOCK_DATA) && (st & VIMG_BLOCK_OFFSET) &&
       host == 65536 && pnum >= 8192 && pnum < 100000,
       "raw data run: st=%u pnum=%llu", st, (unsigned long long)pnum);

    /* Zero an unaligned part of the data. */
    r = vimg_image_zero(img, 66000, 1000, VIMG_ZERO_MAY_UNMAP, &err);
    memset(model + 66000, 0, 1000);
    ok(r == 0, "raw zero");
    r = vimg_image_pread(img, buf, 8192, 65536, &err);
    ok(r == 0, "raw read after zero");
    ok_mem(buf, model + 65536, 8192, "raw zeroed range reads zero");

    /* Range checks. */
    r = vimg_image_pread(img, buf, 512, 1000448 - 511, &err);
    expect_err(r, &err, -EINVAL, "out of range", "raw read past end");
    r = vimg_image_pwrite(img, buf, 1, 1000448, &err);
    expect_err(r, &err, -EINVAL, "out of range", "raw write at end");
    r = vimg_image_pread(img, buf, 0, 1000448, &err);
    ok(r == 0 && !err, "zero-length read at the end is fine");

    /* Resize. */
    r = vimg_image_truncate(img, 4096, false, &err);
    expect_err(r, &err, -EINVAL, "Use the --shrink option",
               "shrink needs flag");
    r = vimg_image_truncate(img, 2 << 20, false, &err);
    ok(r == 0 && vimg_image_size(img) == 2 << 20, "raw grow");
    ok(vimg_image_close(img, &err) == 0, "raw close");

    /* Read-only handle. */
    img = open_img(f, "raw", NULL, 0);
    ok(img && !vimg_image_writable(img), "raw open read-only");
    r = vimg_image_pwrite(img, buf, 512, 0, &err);
    expect_err(r, &err, -EBADF, "read-only", "write on read-only handle");
    r = vimg_image_zero(img, 0, 512, 0, &err);
    expect_err(r, &err, -EBADF, "read-only", "zero on read-only handle");
    r = vimg_image_truncate(img, 1 << 20, true, &err);
    expect_err(r, &err, -EBADF, "read-only", "truncate on read-only handle");
    r = vimg_image_pread(img, buf, 4999, 65537, &err);
    memcpy(pat, model + 65537, 4999);
    ok(r == 0 && memcmp(buf, pat, 4999) == 0, "read-only read persists");
    vimg_image_close(img, NULL);

    /* Info JSON of raw: no "encrypted" key at all (as qemu-img). */
    img = open_img(f, "raw", NULL, VIMG_OPEN_NO_IO);
    if (img) {
        struct json_object *info = NULL, *v;

        r = vimg_image_pread(img, buf, 512, 0, &err);
        expect_err(r, &err, -EACCES, "metadata only", "raw NO_IO refuses read");
        ok(vimg_image_info(img, &info, &err) == 0, "raw info");
        ok(json_object_object_get_ex(info, "virtual-size", &v) &&
           json_object_get_int64(v) == 2 << 20, "raw info virtual-size");
        ok(json_object_object_get_ex(info, "format", &v) &&
           strcmp(json_object_get_string(v), "raw") == 0, "raw info format");
        ok(json_object_object_get_ex(info, "actual-size", &v) &&
           json_object_get_int64(v) > 0, "raw info actual-size");
        ok(!json_object_object_get_ex(info, "encrypted", NULL),
           "raw info has no 'encrypted'");
        ok(json_object_object_get_ex(info, "dirty-flag", &v) &&
           !json_object_get_boolean(v), "raw info dirty-flag false");
        ok(!json_object_object_get_ex(info, "format-specific", NULL),
           "raw info has no format-specific");
        json_object_put(info);
        vimg_image_close(img, NULL);
    }

    /* Unknown open option / unknown format. */
    {
        struct vimg_opts *o = opts("bogus=1");

        r = vimg_image_open(f, "raw", o, secrets, 0, &img, &err);
        expect_err(r, &err, -EINVAL, "Parameter 'bogus' is unexpected",
                   "unknown open option");
        ok(img == NULL, "no handle on failure");
        vimg_opts_free(o);
        r = vimg_image_open(f, "vmdk9", NULL, secrets, 0, &img, &err);
        expect_err(r, &err, -EINVAL, "Unknown driver 'vmdk9'",
                   "unknown format");
        r = vimg_image_open(path("missing"), "raw", NULL, secrets, 0, &img,
                            &err);
        expect_err(r, &err, -ENOENT, "No such file", "missing file");
    }
    free(model);
    free(buf);
}

static void
test_raw_create_opts(void)
{
    const char *f = path("p.raw");
    struct vimg_error *err = NULL;
    struct vimg_opts *o;
    struct stat sb;
    int r;

    ok(create(f, "raw", 1 << 20, "preallocation=falloc") == 0,
       "raw create falloc");
    memset(&sb, 0, sizeof(sb));
    stat(f, &sb);
    ok(sb.st_blocks * 512 >= 1 << 20,
       "falloc allocates (%lld)", (long long)sb.st_blocks * 512);
    ok(create(f, "raw", 1 << 20, "preallocation=off") == 0 &&
       stat(f, &sb) == 0 && sb.st_blocks == 0 && sb.st_size == 1 << 20,
       "preallocation=off is sparse");

    o = opts("preallocation=bogus");
    r = vimg_image_create(f, "raw", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL, "invalid parameter value: bogus",
               "bad preallocation");
    ok(access(f, F_OK) != 0, "failed create removed the existing file");
    vimg_opts_free(o);

    o = opts("bogus=1");
    r = vimg_image_create(f, "raw", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL, "Invalid parameter 'bogus'",
               "unknown create option");
    vimg_opts_free(o);

    o = opts("size=64k");
    r = vimg_image_create(f, "raw", 0, o, secrets, &err);
    ok(r == 0 && stat(f, &sb) == 0 && sb.st_size == 65536,
       "-o size=64k used as the size");
    vimg_opts_free(o);
    vimg_error_free(err);
    err = NULL;

    r = vimg_image_create(path("nodir/x.raw"), "raw", 512, NULL, secrets,
                          &err);
    expect_err(r, &err, -ENOENT, "Could not create", "create in missing dir");
    r = vimg_image_create(f, "qcow7", 512, NULL, secrets, &err);
    expect_err(r, &err, -EINVAL, "Unknown file format 'qcow7'",
               "create unknown format");

    ok(vimg_format_known("raw") && vimg_format_known("luks") &&
       !vimg_format_known("qcow7"), "vimg_format_known");
    ok(vimg_format_create_opts("raw") &&
       strcmp(vimg_format_create_opts("raw")[0].name, "size") == 0,
       "raw create opts start with size");
}

static void
test_luks(void)
{
    const char *f = path("a.luks");
    const uint64_t size = 4 << 20;
    struct vimg_image *img;
    struct vimg_error *err = NULL;
    uint8_t *model = calloc(1, size), *buf = malloc(size), *copy;
    uint8_t *disk = malloc(65536);
    struct stat sb;
    int fd, r;

    ok(create(f, "luks", size, "key-secret=s0,iter-count=1000") == 0,
       "luks create");
    memset(&sb, 0, sizeof(sb));
    stat(f, &sb);
    ok((uint64_t)sb.st_size == LUKS_PAYLOAD + size,
       "luks file = payload + size (%lld)", (long long)sb.st_size);
    ok(sb.st_blocks * 512 < 1 << 20, "luks file is sparse (%lld allocated)",
       (long long)sb.st_blocks * 512);

    img = open_img(f, NULL, "key-secret=s0", VIMG_OPEN_RDWR);
    ok(img != NULL, "luks open (probed)");
    if (!img) {
        return;
    }
    ok_str(vimg_image_format(img), "luks", "probed format luks");
    ok(vimg_image_size(img) == size && vimg_image_encrypted(img) &&
       vimg_image_alignment(img) == 512, "luks size/encrypted/alignment");

    /* Fresh image: zero everything (a new LUKS payload reads as garbage). */
    ok(vimg_image_zero(img, 0, size, 0, &err) == 0, "luks zero all");
    r = vimg_image_pread(img, buf, size, 0, &err);
    ok(r == 0 && memcmp(buf, model, size) == 0, "luks zeroed reads zero");

    /* Unaligned write; the caller's buffer must stay untouched. */
    fill(buf, 300000, 2);
    copy = malloc(300000);
    memcpy(copy, buf, 300000);
    r = vimg_image_pwrite(img, buf, 300000, 1000, &err);
    memcpy(model + 1000, copy, 300000);
    ok(r == 0, "luks unaligned write");
    ok_mem(buf, copy, 300000, "luks write leaves caller buffer alone");
    free(copy);
    /* Big aligned write across the chunk size. */
    fill(buf, 3 << 20, 3);
    r = vimg_image_pwrite(img, buf, 3 << 20, 512 * 1000, &err);
    memcpy(model + 512 * 1000, buf, 3 << 20);
    ok(r == 0, "luks 3 MiB write");
    /* Small write inside one sector. */
    r = vimg_image_pwrite(img, "hello", 5, size - 7, &err);
    memcpy(model + size - 7, "hello", 5);
    ok(r == 0, "luks 5-byte write in the last sector");
    r = vimg_image_zero(img, 700, 100, 0, &err);
    memset(model + 700, 0, 100);
    ok(r == 0, "luks unaligned zero");

    r = vimg_image_pread(img, buf, size, 0, &err);
    ok(r == 0, "luks read all");
    ok_mem(buf, model, size, "luks content matches model");
    r = vimg_image_pread(img, buf, 777, 999, &err);
    ok(r == 0 && memcmp(buf, model + 999, 777) == 0, "luks unaligned read");

    /* The file holds ciphertext, not plaintext. */
    fd = open(f, O_RDONLY);
    ok(fd >= 0 && pread(fd, disk, 65536, LUKS_PAYLOAD + 512 * 1000) == 65536 &&
       memcmp(disk, model + 512 * 1000, 65536) != 0,
       "payload on disk is encrypted");
    close(fd);

    {
        uint64_t pnum = 0, host = 1;
        unsigned st = 0;

        r = vimg_image_block_status(img, 4096, size - 4096, &pnum, &st, &host,
                                    &err);
        ok(r == 0 && st == VIMG_BLOCK_DATA && pnum == size - 4096 && host == 0,
           "luks block status: all data, no offset");
    }

    r = vimg_image_pread(img, buf, 512, size, &err);
    expect_err(r, &err, -EINVAL, "out of range", "luks read past end");
    ok(vimg_image_close(img, &err) == 0, "luks close");

    /* Reopen: data persisted. */
    img = open_img(f, "luks", "key-secret=s0", 0);
    ok(img != NULL, "luks reopen read-only");
    if (img) {
        r = vimg_image_pread(img, buf, size, 0, &err);
        ok(r == 0 && memcmp(buf, model, size) == 0, "luks data persisted");
        vimg_image_close(img, NULL);
    }

    /* Resize: grow, refuse shrink without flag, shrink rounds up to 512. */
    img = open_img(f, "luks", "key-secret=s0", VIMG_OPEN_RDWR);
    if (img) {
        r = vimg_image_truncate(img, size + 1000, false, &err);
        ok(r == 0 && vimg_image_size(img) == size + 1024 &&
           stat(f, &sb) == 0 &&
           (uint64_t)sb.st_size == LUKS_PAYLOAD + size + 1024,
           "luks grow, rounded up to 512");
        r = vimg_image_truncate(img, 1 << 20, false, &err);
        expect_err(r, &err, -EINVAL, "--shrink", "luks shrink needs flag");
        r = vimg_image_truncate(img, 700, true, &err);
        ok(r == 0 && vimg_image_size(img) == 1024, "luks shrink to 1024");
        r = vimg_image_pread(img, buf, 1024, 0, &err);
        ok(r == 0 && memcmp(buf, model, 1024) == 0, "data kept after shrink");
        vimg_image_close(img, NULL);
    }
    free(model);
    free(buf);
    free(disk);
}

static void
test_luks_errors(void)
{
    const char *f = path("e.luks");
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct json_object *info = NULL, *v, *d;
    struct vimg_opts *o;
    uint8_t buf[512];
    int r;

    ok(create(f, "luks", 1 << 20, "key-secret=s0,iter-count=1000") == 0,
       "luks create (errors)");

    o = opts("key-secret=bad");
    r = vimg_image_open(f, "luks", o, secrets, 0, &img, &err);
    expect_err(r, &err, -EPERM, "Invalid password, cannot unlock any keyslot",
               "wrong key");
    vimg_opts_free(o);

    r = vimg_image_open(f, "luks", NULL, secrets, 0, &img, &err);
    expect_err(r, &err, -EINVAL,
               "Parameter 'key-secret' is required for cipher", "no key");

    o = opts("key-secret=nosuch");
    r = vimg_image_open(f, "luks", o, secrets, 0, &img, &err);
    expect_err(r, &err, -ENOENT, "No secret with id 'nosuch'",
               "unknown secret");
    vimg_opts_free(o);

    o = opts("key-secret=s0,bogus=on");
    r = vimg_image_open(f, "luks", o, secrets, 0, &img, &err);
    expect_err(r, &err, -EINVAL, "Parameter 'bogus' is unexpected",
               "luks unknown option");
    vimg_opts_free(o);

    /* Metadata-only: no key, no data I/O, info works. */
    r = vimg_image_open(f, NULL, NULL, secrets, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0 && img, "NO_IO open without key");
    if (img) {
        r = vimg_image_pread(img, buf, 512, 0, &err);
        expect_err(r, &err, -EACCES,
                   "Image was opened without a key (metadata only)",
                   "NO_IO refuses read");
        r = vimg_image_zero(img, 0, 512, 0, &err);
        expect_err(r, &err, -EACCES, "metadata only", "NO_IO refuses zero");
        r = vimg_image_info(img, &info, &err);
        ok(r == 0 && info, "NO_IO info");
        ok(json_object_object_get_ex(info, "virtual-size", &v) &&
           json_object_get_int64(v) == 1 << 20, "info virtual-size");
        ok(json_object_object_get_ex(info, "filename", &v) &&
           strcmp(json_object_get_string(v), f) == 0, "info filename");
        ok(json_object_object_get_ex(info, "format", &v) &&
           strcmp(json_object_get_string(v), "luks") == 0, "info format");
        ok(json_object_object_get_ex(info, "actual-size", &v) &&
           json_object_get_int64(v) > 0, "info actual-size");
        ok(json_object_object_get_ex(info, "encrypted", &v) &&
           json_object_get_boolean(v), "info encrypted true");
        ok(json_object_object_get_ex(info, "dirty-flag", &v) &&
           !json_object_get_boolean(v), "info dirty-flag false");
        ok(json_object_object_get_ex(info, "format-specific", &v) &&
           json_object_object_get_ex(v, "type", &d) &&
           strcmp(json_object_get_string(d), "luks") == 0 &&
           json_object_object_get_ex(v, "data", &d),
           "info format-specific type luks");
        ok(d && json_object_object_get_ex(d, "payload-offset", &v) &&
           json_object_get_int64(v) == LUKS_PAYLOAD,
           "info data payload-offset");
        ok(d && json_object_object_get_ex(d, "cipher-alg", &v) &&
           strcmp(json_object_get_string(v), "aes-256") == 0,
           "info data cipher-alg");
        json_object_put(info);
        vimg_image_close(img, NULL);
    }

    /* A file shorter than the payload offset. */
    ok(truncate(f, LUKS_PAYLOAD - 512) == 0, "truncate below payload");
    r = vimg_image_open(f, "luks", NULL, secrets, VIMG_OPEN_NO_IO, &img, &err);
    expect_err(r, &err, -EIO, "Could not refresh total sector count",
               "short luks file");

    /* Not a LUKS file. */
    r = vimg_image_open(path("a.raw"), "luks", NULL, secrets, VIMG_OPEN_NO_IO,
                        &img, &err);
    expect_err(r, &err, -EINVAL, "Volume is not in LUKS format",
               "raw file opened as luks");
}

static void
test_luks_create_errors(void)
{
    const char *f = path("c.luks");
    struct vimg_error *err = NULL;
    struct vimg_opts *o;
    int fd, r;

    /* A failed create deletes the file, even one that existed before. */
    fd = open(f, O_CREAT | O_WRONLY, 0644);
    ok(fd >= 0 && write(fd, "old", 3) == 3, "pre-existing file");
    close(fd);
    o = opts("key-secret=nosuch,iter-count=1000");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -ENOENT, "No secret with id 'nosuch'",
               "create with unknown secret");
    ok(access(f, F_OK) != 0, "failed luks create left no file");
    vimg_opts_free(o);

    o = opts("iter-count=1000");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL,
               "Parameter 'key-secret' is required for cipher",
               "create without key-secret");
    vimg_opts_free(o);

    o = opts("key-secret=s0,cipher-alg=sm4");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL,
               "Parameter 'cipher-alg' does not accept value 'sm4'", "sm4");
    vimg_opts_free(o);

    o = opts("key-secret=s0,cipher-mode=gcm");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL,
               "Parameter 'cipher-mode' does not accept value 'gcm'", "gcm");
    vimg_opts_free(o);

    o = opts("key-secret=s0,iter-time=abc");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL, "Parameter 'iter-time' expects a number",
               "iter-time=abc");
    vimg_opts_free(o);

    o = opts("key-secret=s0,iter-count=1000,bogus=1");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL, "Invalid parameter 'bogus'",
               "luks unknown create option");
    vimg_opts_free(o);

    /* Non-default algorithms round-trip (aes-128 cbc essiv, 16-byte key). */
    ok(create(f, "luks", 1 << 20,
              "key-secret=s0,iter-count=1000,cipher-alg=aes-128,"
              "cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1") == 0,
       "luks create aes-128-cbc-essiv");
    {
        struct vimg_image *img = open_img(f, "luks", "key-secret=s0",
                                          VIMG_OPEN_RDWR);
        uint8_t a[4096], b[4096];
        struct stat sb;

        fill(a, sizeof(a), 9);
        ok(img && vimg_image_pwrite(img, a, 4096, 8192, NULL) == 0 &&
           vimg_image_pread(img, b, 4096, 8192, NULL) == 0 &&
           memcmp(a, b, 4096) == 0, "aes-128-cbc-essiv data round trip");
        vimg_image_close(img, NULL);
        ok(stat(f, &sb) == 0 && sb.st_size == 528384 + (1 << 20),
           "16-byte key: payload 528384");
    }
    ok(create(f, "luks", 1 << 20,
              "key-secret=s0,iter-count=1000,preallocation=metadata") == 0,
       "luks preallocation=metadata accepted (as off)");
    o = opts("key-secret=s0,iter-count=1000,preallocation=foo");
    r = vimg_image_create(f, "luks", 1 << 20, o, secrets, &err);
    expect_err(r, &err, -EINVAL, "invalid parameter value: foo",
               "luks bad preallocation");
    vimg_opts_free(o);
}

/* LUKS2 through -f luks: create, probe, 4096-byte sectors with unaligned
 * I/O (read-modify-write), reopen, wrong key, fixed options. */
static void
test_luks2(void)
{
    const char *f = path("b.luks2");
    const uint64_t size = 1 << 20;
    struct vimg_image *img;
    struct vimg_error *err = NULL;
    struct vimg_opts *o;
    uint8_t *model = calloc(1, size), *buf = malloc(size);
    uint8_t pat[7000];
    const char *fmt = NULL;
    struct stat sb;
    int r;

    ok(create(f, "luks", size - 100, "key-secret=s0,encrypt.format=luks2,"
              "kdf=pbkdf2,iter-count=1000,sector-size=4096") == 0,
       "luks2 create");
    memset(&sb, 0, sizeof(sb));
    stat(f, &sb);
    ok(sb.st_size == (off_t)(LUKS2_DATA_OFFSET_DEFAULT + size),
       "luks2 file: 16 MiB header area + size rounded up to 4096 (%lld)",
       (long long)sb.st_size);
    r = vimg_probe(f, &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "luks") == 0, "luks2 probes as luks");
    img = open_img(f, NULL, "key-secret=s0", VIMG_OPEN_RDWR);
    ok(img != NULL, "luks2 open (probed)");
    if (!img) {
        free(model);
        free(buf);
        return;
    }
    ok(vimg_image_size(img) == size && vimg_image_encrypted(img) &&
       vimg_image_alignment(img) == 4096,
       "luks2: size %llu, encrypted, alignment %u",
       (unsigned long long)vimg_image_size(img), vimg_image_alignment(img));
    r = vimg_image_zero(img, 0, size, 0, &err);
    ok(r == 0, "luks2 zero all");
    fill(pat, sizeof(pat), 3);
    r = vimg_image_pwrite(img, pat, sizeof(pat), 4000, &err);
    memcpy(model + 4000, pat, sizeof(pat));
    ok(r == 0, "luks2 unaligned write across sectors");
    vimg_image_close(img, NULL);

    img = open_img(f, "luks", "key-secret=s0", 0);
    ok(img != NULL, "luks2 reopen read-only");
    if (img) {
        r = vimg_image_pread(img, buf, size, 0, &err);
        ok(r == 0, "luks2 read");
        ok_mem(buf, model, size, "luks2 read back after reopen");
        r = vimg_image_pread(img, buf, 10, 4095, &err);
        ok(r == 0 && memcmp(buf, model + 4095, 10) == 0,
           "luks2 unaligned read");
        vimg_image_close(img, NULL);
    }

    o = opts("key-secret=bad");
    r = vimg_image_open(f, "luks", o, secrets, 0, &img, &err);
    vimg_opts_free(o);
    expect_err(r, &err, -EPERM, "Invalid password, cannot unlock any keyslot",
               "luks2 wrong password");

    o = opts("key-secret=s0,kdf=pbkdf2");
    r = vimg_image_create(path("c.luks"), "luks", size, o, secrets, &err);
    vimg_opts_free(o);
    expect_err(r, &err, -EINVAL, "Parameter 'kdf' is only supported with "
               "encrypt.format=luks2", "luks1 refuses kdf");
    o = opts("key-secret=s0,encrypt.format=luks3");
    r = vimg_image_create(path("c.luks"), "luks", size, o, secrets, &err);
    vimg_opts_free(o);
    expect_err(r, &err, -EINVAL, "Parameter 'encrypt.format' does not accept "
               "value 'luks3'", "bad encrypt.format");
    o = opts("key-secret=s0,encrypt.format=luks2,sector-size=768");
    r = vimg_image_create(path("c.luks"), "luks", size, o, secrets, &err);
    vimg_opts_free(o);
    expect_err(r, &err, -EINVAL, "Unsupported encryption sector size 768",
               "luks2 bad sector size");
    free(model);
    free(buf);
}

static void
test_probe(void)
{
    const char *l2 = path("luks2.img"), *q = path("q.qcow2");
    const char *fmt = NULL;
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;
    uint8_t hdr[4096] = { 0 };
    int fd, r;

    memcpy(hdr, "LUKS\xba\xbe\x00\x02", 8);
    fd = open(l2, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ok(fd >= 0 && write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr),
       "write LUKS2 magic");
    close(fd);
    /* LUKS2 magic probes as luks (never raw); a header size that no LUKS2
     * header can have gets qemu's refusal, a plausible one the LUKS2
     * checks. */
    r = vimg_probe(l2, &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "luks") == 0, "probe LUKS2 as luks");
    r = vimg_image_open(l2, NULL, NULL, secrets, VIMG_OPEN_NO_IO, &img, &err);
    expect_err(r, &err, -EINVAL, "LUKS version 2 is not supported",
               "open refuses a LUKS2 magic without a LUKS2 header");
    hdr[14] = 0x40;             /* hdr_size 16384 */
    fd = open(l2, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ok(fd >= 0 && write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr),
       "write LUKS2 magic and header size");
    close(fd);
    r = vimg_image_open(l2, NULL, NULL, secrets, VIMG_OPEN_NO_IO, &img, &err);
    expect_err(r, &err, -ENOTSUP,
               "LUKS2 primary header: checksum algorithm is not supported",
               "open checks the LUKS2 header");
    memcpy(hdr, "LUKS\xba\xbe\x00\x03", 8);
    fd = open(l2, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ok(fd >= 0 && write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr),
       "write LUKS version 3 magic");
    close(fd);
    r = vimg_probe(l2, &fmt, &err);
    expect_err(r, &err, -ENOTSUP, "LUKS version 3 is not supported",
               "probe refuses LUKS version 3");

    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, "QFI\xfb\x00\x00\x00\x03", 8);
    fd = open(q, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ok(fd >= 0 && write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr),
       "write qcow2 magic");
    close(fd);
    r = vimg_probe(q, &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "qcow2") == 0, "probe qcow2 magic");

    r = vimg_probe(path("a.raw"), &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "raw") == 0, "probe raw");
    r = vimg_probe(path("a.luks"), &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "luks") == 0, "probe luks");
    fd = open(path("empty"), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    close(fd);
    r = vimg_probe(path("empty"), &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "raw") == 0, "probe empty file: raw");
    r = vimg_probe(path("missing"), &fmt, &err);
    expect_err(r, &err, -ENOENT, "Could not open", "probe missing file");
    r = vimg_probe(dir, &fmt, &err);
    expect_err(r, &err, -EISDIR, "to be a regular file", "probe a directory");
    r = vimg_image_open(dir, "raw", NULL, secrets, 0, &img, &err);
    expect_err(r, &err, -EISDIR, "to be a regular file", "open a directory");
}

int
main(void)
{
    char cmd[128];
    const char *luks_opts_names[] = { "size", "key-secret", "cipher-alg",
                                      "cipher-mode", "ivgen-alg",
                                      "ivgen-hash-alg", "hash-alg",
                                      "iter-time" };
    const struct vimg_opt_desc *d;
    size_t i;

    strcpy(dir, "/tmp/vimg-test-image-XXXXXX");
    if (!mkdtemp(dir)) {
        return 99;
    }
    secrets = vimg_secrets_new();
    if (vimg_secrets_add(secrets, "s0", "password", 8, NULL) < 0 ||
        vimg_secrets_add(secrets, "bad", "passw0rd", 8, NULL) < 0) {
        return 99;
    }

    test_raw();
    test_raw_create_opts();
    test_luks();
    test_luks_errors();
    test_luks_create_errors();
    test_probe();
    test_luks2();

    d = vimg_format_create_opts("luks");
    for (i = 0; d && i < sizeof(luks_opts_names) / sizeof(luks_opts_names[0]);
         i++) {
        if (!d[i].name || strcmp(d[i].name, luks_opts_names[i]) != 0) {
            break;
        }
    }
    ok(i == 8, "luks create opts in qemu's order (%zu matched)", i);

    vimg_secrets_free(secrets);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
    return tap_done();
}
