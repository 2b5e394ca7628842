/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the qcow (version 1) format through the public API:
 * - header validation: one hostile header per field, each must fail with
 *   qemu 7.2's message (observed with `qemu-img info -f qcow`), without a
 *   crash or a huge allocation;
 * - create: the exact file qemu-img makes (header + zeroed L1), option
 *   errors;
 * - I/O: allocation layout (L2 then data appended at EOF, rounded to the
 *   cluster size), partial clusters, AES encryption with IV = guest sector
 *   and encrypted zeroes in partly written clusters, compressed clusters
 *   (raw deflate, window 12), block status, zeroing, the info JSON.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zlib.h>

#include "blockcrypt/qcowaes.h"
#include "bytes.h"
#include "internal.h"
#include "tap.h"

/* Status bits checked here (a later "unallocated" bit may be added). */
#define KNOWN_BITS (VIMG_BLOCK_DATA | VIMG_BLOCK_ZERO | VIMG_BLOCK_OFFSET)

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

static bool
all_zero(const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/* Expect failure @code whose message equals @msg; frees the error. */
static void
expect_err(int r, struct vimg_error **err, int code, const char *msg,
           const char *what)
{
    const char *m = *err ? vimg_error_message(*err) : "(none)";
    char flat[256];
    size_t i;

    /* One TAP line: show a multi-line message with '|' for newlines. */
    snprintf(flat, sizeof(flat), "%s", m);
    for (i = 0; flat[i]; i++) {
        if (flat[i] == '\n') {
            flat[i] = '|';
        }
    }
    ok(r == code && *err && strcmp(m, msg) == 0,
       "%s: r=%d (want %d), msg '%s'", what, r, code, flat);
    vimg_error_free(*err);
    *err = NULL;
}

/* ---- header files ------------------------------------------------------- */

struct hdr {
    uint32_t version;
    uint64_t bfo;
    uint32_t bfs;
    uint64_t size;
    uint8_t cb, l2b;
    uint32_t crypt;
    uint64_t l1off;
};

static void
default_hdr(struct hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->version = 1;
    h->size = 64 << 20;
    h->cb = 12;
    h->l2b = 9;
    h->l1off = 48;
}

/* Write a header followed by @tail zero bytes. */
static void
write_hdr(const char *file, const struct hdr *h, size_t tail)
{
    uint8_t b[48];
    uint8_t *z = calloc(1, tail + 1);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    memset(b, 0, sizeof(b));
    memcpy(b, "QFI\xfb", 4);
    st_be32(b + 4, h->version);
    st_be64(b + 8, h->bfo);
    st_be32(b + 16, h->bfs);
    st_be64(b + 24, h->size);
    b[32] = h->cb;
    b[33] = h->l2b;
    st_be32(b + 36, h->crypt);
    st_be64(b + 40, h->l1off);
    if (fd < 0 || write(fd, b, sizeof(b)) != (ssize_t)sizeof(b) ||
        write(fd, z, tail) != (ssize_t)tail) {
        abort();
    }
    close(fd);
    free(z);
}

static int
open_img(const char *file, const char *o, unsigned flags,
         struct vimg_image **img, struct vimg_error **err)
{
    struct vimg_opts *op = opts(o);
    int r = vimg_image_open(file, "qcow", op, secrets, flags, img, err);

    vimg_opts_free(op);
    return r;
}

/* Open @h (metadata only) and expect @code with @msg. */
static void
bad_header(const struct hdr *h, int code, const char *msg, const char *what)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    int r;

    write_hdr(path("bad.qcow"), h, 512);
    r = open_img(path("bad.qcow"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    expect_err(r, &err, code, msg, what);
    ok(img == NULL, "%s: no handle", what);
    vimg_image_close(img, NULL);
}

static void
good_header(const struct hdr *h, uint64_t want_size, const char *what)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    int r;

    write_hdr(path("good.qcow"), h, 512);
    r = open_img(path("good.qcow"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0 && vimg_image_size(img) == want_size, "%s: opens (size %llu)",
       what, (unsigned long long)vimg_image_size(img));
    if (err) {
        printf("# %s\n", vimg_error_message(err));
        vimg_error_free(err);
    }
    vimg_image_close(img, NULL);
}

static void
test_headers(void)
{
    struct hdr h;

    default_hdr(&h);
    good_header(&h, 64 << 20, "default header");

    default_hdr(&h);
    h.version = 3;
    bad_header(&h, -ENOTSUP, "qcow (v1) does not support qcow version 3\n"
               "Try the 'qcow2' driver instead.", "version 3");
    h.version = 2;
    bad_header(&h, -ENOTSUP, "qcow (v1) does not support qcow version 2\n"
               "Try the 'qcow2' driver instead.", "version 2");
    h.version = 0;
    bad_header(&h, -ENOTSUP, "qcow (v1) does not support qcow version 0",
               "version 0 (no hint)");

    default_hdr(&h);
    h.size = 0;
    bad_header(&h, -EINVAL, "Image size is too small (must be at least 2 "
               "bytes)", "size 0");
    h.size = 1;
    bad_header(&h, -EINVAL, "Image size is too small (must be at least 2 "
               "bytes)", "size 1");
    h.size = 2;
    good_header(&h, 0, "size 2 (virtual size rounds down to 0)");
    h.size = 1000;
    good_header(&h, 512, "size 1000 -> 512");

    default_hdr(&h);
    h.cb = 8;
    bad_header(&h, -EINVAL, "Cluster size must be between 512 and 64k",
               "cluster_bits 8");
    h.cb = 17;
    bad_header(&h, -EINVAL, "Cluster size must be between 512 and 64k",
               "cluster_bits 17");
    h.cb = 255;
    bad_header(&h, -EINVAL, "Cluster size must be between 512 and 64k",
               "cluster_bits 255");

    default_hdr(&h);
    h.l2b = 5;
    bad_header(&h, -EINVAL, "L2 table size must be between 512 and 64k",
               "l2_bits 5");
    h.l2b = 14;
    bad_header(&h, -EINVAL, "L2 table size must be between 512 and 64k",
               "l2_bits 14");

    default_hdr(&h);
    h.cb = 16;
    h.l2b = 13;
    good_header(&h, 64 << 20, "cluster_bits 16, l2_bits 13");
    h.cb = 9;
    h.l2b = 6;
    good_header(&h, 64 << 20, "cluster_bits 9, l2_bits 6");

    default_hdr(&h);
    h.crypt = 2;
    bad_header(&h, -EINVAL, "invalid encryption method in qcow header",
               "crypt_method 2");
    h.crypt = 0xffffffff;
    bad_header(&h, -EINVAL, "invalid encryption method in qcow header",
               "crypt_method 0xffffffff");

    default_hdr(&h);
    h.size = UINT64_MAX;
    bad_header(&h, -EINVAL, "Image too large", "size 2^64-1 (overflow)");
    h.size = UINT64_MAX - (1u << 21) + 2;
    bad_header(&h, -EINVAL, "Image too large", "size near 2^64");
    h.size = UINT64_C(1) << 49;
    bad_header(&h, -EINVAL, "Image too large", "L1 of 2^28 entries");
    h.size = UINT64_C(1) << 62;
    h.cb = 9;
    h.l2b = 6;
    bad_header(&h, -EINVAL, "Image too large",
               "size 2^62, 32 KiB per L1 entry");

    /* A 2 GiB - 8 L1 table beyond EOF: refused, not allocated. */
    default_hdr(&h);
    h.size = (UINT64_C(1) << 49) - (UINT64_C(1) << 21);
    bad_header(&h, -EIO, "L1 table (2147483640 bytes at offset 48) is beyond "
               "the end of the file", "huge L1 beyond EOF");
    default_hdr(&h);
    h.l1off = UINT64_C(0xffffffffffffff00);
    bad_header(&h, -EIO, "L1 table offset 18446744073709551360 is out of "
               "range", "L1 offset wraps");
    /* qemu reads an L1 table past EOF as zeroes. */
    h.l1off = UINT64_C(1) << 40;
    good_header(&h, 64 << 20, "small L1 table past EOF");

    default_hdr(&h);
    h.bfo = 48;
    h.bfs = 1024;
    bad_header(&h, -EINVAL, "Backing file name too long", "backing name 1024");
    h.bfo = UINT64_C(0xfffffffffffffff0);
    h.bfs = 100;
    bad_header(&h, -EIO, "Could not read the backing file name: offset "
               "18446744073709551600 is out of range", "backing offset wraps");
    h.bfo = 48;
    h.bfs = 0;
    good_header(&h, 64 << 20, "backing offset with empty name");
}

/* Magic errors, short files, the probe. */
static void
test_magic(void)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    const char *fmt = NULL;
    struct hdr h;
    int fd, r;

    fd = open(path("notq"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ok(fd >= 0 && write(fd, "XXXX\n", 5) == 5, "write a non-qcow file");
    close(fd);
    r = open_img(path("notq"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    expect_err(r, &err, -EINVAL, "Image not in qcow format", "bad magic");

    /* A 40-byte file: the rest of the header reads as zero (l1 offset 0). */
    default_hdr(&h);
    write_hdr(path("short"), &h, 0);
    ok(truncate(path("short"), 40) == 0, "truncate to 40 bytes");
    r = open_img(path("short"), NULL, 0, &img, &err);
    ok(r == 0, "40-byte header opens like qemu (zero padded)");
    vimg_image_close(img, NULL);
    img = NULL;
    vimg_error_free(err);
    err = NULL;

    default_hdr(&h);
    write_hdr(path("probe.qcow"), &h, 512);
    r = vimg_probe(path("probe.qcow"), &fmt, &err);
    ok(r == 0 && fmt && strcmp(fmt, "qcow") == 0, "probe says qcow");
    h.version = 2;
    write_hdr(path("probe.qcow"), &h, 512);
    fmt = NULL;
    r = vimg_probe(path("probe.qcow"), &fmt, &err);
    ok(r < 0 || (fmt && strcmp(fmt, "qcow") != 0),
       "a version 2 header is not probed as qcow");
    vimg_error_free(err);
}

/* ---- create ------------------------------------------------------------- */

static uint8_t *
slurp(const char *file, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    int fd = open(file, O_RDONLY);

    if (fd < 0 || fstat(fd, &st) < 0) {
        abort();
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf || full_pread(fd, buf, (size_t)st.st_size, 0) < 0) {
        abort();
    }
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static int
create(const char *file, uint64_t size, const char *o, struct vimg_error **err)
{
    struct vimg_opts *op = opts(o);
    int r = vimg_image_create(file, "qcow", size, op, secrets, err);

    vimg_opts_free(op);
    return r;
}

static void
test_create(void)
{
    struct vimg_error *err = NULL;
    uint8_t want[48];
    uint8_t *buf;
    size_t len;
    int r;

    r = create(path("c.qcow"), 64 << 20, NULL, &err);
    ok(r == 0, "create 64M");
    buf = slurp(path("c.qcow"), &len);
    /* qemu-img create -f qcow c.qcow 64M (hexdump on this machine). */
    memset(want, 0, sizeof(want));
    hex2bin("514649fb 00000001 0000000000000000 00000000 00000000"
            "0000000004000000 0c 09 0000 00000000 0000000000000030", want, 48);
    ok(len == 560, "64M image is 560 bytes like qemu-img's (got %zu)", len);
    ok_mem(buf, want, 48, "header bytes equal qemu-img's");
    ok(len == 560 && all_zero(buf + 48, 512), "L1: one zeroed sector");
    free(buf);

    r = create(path("c8g.qcow"), UINT64_C(8) << 30, NULL, &err);
    buf = slurp(path("c8g.qcow"), &len);
    ok(r == 0 && len == 48 + 32768, "8G: L1 of 4096 entries (%zu bytes)", len);
    free(buf);

    r = create(path("ce.qcow"), 64 << 20,
               "encrypt.format=aes,encrypt.key-secret=s0", &err);
    ok(r == 0, "create AES");
    buf = slurp(path("ce.qcow"), &len);
    want[39] = 1;
    ok(len == 560, "AES image is 560 bytes");
    ok_mem(buf, want, 48, "AES header: crypt_method 1");
    free(buf);
    r = create(path("ce2.qcow"), 1 << 20, "encryption=on,encrypt.key-secret=s0",
               &err);
    ok(r == 0, "create with the deprecated encryption=on");
    buf = slurp(path("ce2.qcow"), &len);
    ok(len >= 40 && buf[39] == 1, "encryption=on sets crypt_method 1");
    free(buf);

    r = create(path("z.qcow"), 0, NULL, &err);
    expect_err(r, &err, -EINVAL, "Image size is too small, cannot be zero "
               "length", "size 0");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.format=luks,"
               "encrypt.key-secret=s0", &err);
    expect_err(r, &err, -EINVAL, "Unsupported encryption format",
               "encrypt.format=luks");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.format=aes", &err);
    expect_err(r, &err, -EINVAL, "Parameter 'encrypt.key-secret' is required "
               "for cipher", "aes without key");
    r = create(path("e1.qcow"), 1 << 20, "encryption=on", &err);
    expect_err(r, &err, -EINVAL, "Parameter 'encrypt.key-secret' is required "
               "for cipher", "encryption=on without key");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.key-secret=s0", &err);
    expect_err(r, &err, -EINVAL, "Parameter 'encrypt.format' is missing",
               "key without format");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.format=aes,encryption=on,"
               "encrypt.key-secret=s0", &err);
    expect_err(r, &err, -EINVAL, "'encrypt.format' and its alias 'encryption' "
               "can't be used at the same time", "format + alias");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.format=aes,"
               "encrypt.key-secret=nosuch", &err);
    expect_err(r, &err, -ENOENT, "No secret with id 'nosuch'",
               "unknown secret");
    r = create(path("e1.qcow"), 1 << 20, "backing_fmt=foo", &err);
    expect_err(r, &err, -EINVAL, "unrecognized backing format 'foo'",
               "bad backing_fmt");
    r = create(path("e1.qcow"), 1 << 20, "encrypt.cipher-alg=aes-256", &err);
    expect_err(r, &err, -EINVAL, "Invalid parameter 'encrypt.cipher-alg'",
               "cipher-alg is not a qcow option");
    ok(access(path("e1.qcow"), F_OK) != 0, "failed creates leave no file");
    r = create(path("bk.qcow"), 1 << 20, "backing_file=base.img", &err);
    ok(r == 0, "backing_file is accepted (qcow v1 backing files)");
    vimg_error_free(err);
    err = NULL;
    r = create(path("bf.qcow"), 1 << 20, "backing_fmt=raw", &err);
    ok(r == 0, "backing_fmt alone is only validated");
    vimg_error_free(err);
    err = NULL;
    r = create(path("big.qcow"), UINT64_C(1) << 50, NULL, &err);
    expect_err(r, &err, -EINVAL, "Image too large", "1 PiB (L1 > 2 GiB)");
}

/* ---- data path ---------------------------------------------------------- */

static void
test_plain_io(void)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    uint8_t *w = malloc(3 << 20), *rd = malloc(3 << 20), *file;
    uint64_t pnum = 0, host = 0;
    unsigned st = 0;
    size_t len;
    int r;

    create(path("p.qcow"), 64 << 20, NULL, &err);
    r = open_img(path("p.qcow"), NULL, VIMG_OPEN_RDWR, &img, &err);
    ok(r == 0 && vimg_image_alignment(img) == 1 && !vimg_image_encrypted(img),
       "open plain RDWR, alignment 1");
    if (r < 0) {
        free(w);
        free(rd);
        return;
    }
    fill(w, 4096, 1);
    ok(vimg_image_pwrite(img, w, 4096, 0, &err) == 0, "write cluster 0");
    fill(w, 1000, 2);
    ok(vimg_image_pwrite(img, w, 1000, 8192 + 7, &err) == 0,
       "write 1000 bytes at 8199 (partial cluster)");
    vimg_image_flush(img, NULL);
    file = slurp(path("p.qcow"), &len);
    ok(len == 0x4000, "file is 16 KiB like qemu's (got %#zx)", len);
    ok(ld_be64(file + 48) == 0x1000, "L1[0] = 0x1000");
    ok(ld_be64(file + 0x1000) == 0x2000 && ld_be64(file + 0x1010) == 0x3000,
       "L2[0] = 0x2000, L2[2] = 0x3000");
    fill(w, 4096, 1);
    ok_mem(file + 0x2000, w, 4096, "cluster 0 stored as plain data");
    fill(w, 1000, 2);
    ok(len == 0x4000 && all_zero(file + 0x3000, 7) &&
       memcmp(file + 0x3007, w, 1000) == 0 &&
       all_zero(file + 0x3007 + 1000, 0x1000 - 1007),
       "partial cluster: data in place, rest zero");
    free(file);

    ok(vimg_image_pread(img, rd, 12288, 0, &err) == 0, "read 12 KiB");
    fill(w, 4096, 1);
    ok(memcmp(rd, w, 4096) == 0 && all_zero(rd + 4096, 4096 + 7),
       "read back cluster 0; cluster 1 reads as zero");
    fill(w, 1000, 2);
    ok(memcmp(rd + 8199, w, 1000) == 0, "read back the partial write");

    r = vimg_image_block_status(img, 0, 64 << 20, &pnum, &st, &host, &err);
    ok(r == 0 && pnum == 4096 &&
       st == (VIMG_BLOCK_DATA | VIMG_BLOCK_OFFSET) && host == 0x2000,
       "block status: cluster 0 DATA|OFFSET at 0x2000");
    r = vimg_image_block_status(img, 4096, (64 << 20) - 4096, &pnum, &st,
                                &host, &err);
    ok(r == 0 && pnum == 4096 && (st & KNOWN_BITS) == VIMG_BLOCK_ZERO,
       "block status: cluster 1 unallocated -> ZERO");
    r = vimg_image_block_status(img, 12288, (64 << 20) - 12288, &pnum, &st,
                                NULL, &err);
    ok(r == 0 && pnum == (64 << 20) - 12288 &&
       (st & KNOWN_BITS) == VIMG_BLOCK_ZERO,
       "block status: the rest is one ZERO run");

    /* A long write over a new L2 boundary, unaligned both ends. */
    fill(w, 3 << 20, 3);
    ok(vimg_image_pwrite(img, w, (3 << 20) - 100, (1 << 20) + 33, &err) == 0,
       "3 MiB unaligned write across an L2 boundary");
    ok(vimg_image_pread(img, rd, (3 << 20) - 100, (1 << 20) + 33, &err) == 0 &&
       memcmp(rd, w, (3 << 20) - 100) == 0, "read it back");
    r = vimg_image_block_status(img, 1 << 20, 1 << 20, &pnum, &st, &host,
                                &err);
    ok(r == 0 && pnum == 1 << 20 && (st & VIMG_BLOCK_OFFSET),
       "new clusters of one L2 table are contiguous (one run)");

    /* Zeroing: allocated clusters are rewritten, unallocated skipped. */
    ok(vimg_image_zero(img, 0, 8192, 0, &err) == 0, "zero 8 KiB");
    ok(vimg_image_pread(img, rd, 8192, 0, &err) == 0 && all_zero(rd, 8192),
       "zeroed range reads as zero");
    vimg_image_close(img, &err);
    img = NULL;
    vimg_error_free(err);
    err = NULL;

    /* Resize is refused like qemu-img. */
    r = open_img(path("p.qcow"), NULL, VIMG_OPEN_RDWR, &img, &err);
    r = vimg_image_truncate(img, 128 << 20, false, &err);
    expect_err(r, &err, -ENOTSUP, "Image format driver does not support "
               "resize", "resize refused");
    vimg_image_close(img, NULL);
    free(w);
    free(rd);
}

static void
test_aes_io(void)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct qcowaes *aes = NULL;
    uint8_t w[4096], rd[4096], *file;
    uint64_t pnum = 0, host = 0;
    unsigned st = 0;
    size_t len, i;
    int r;

    create(path("a.qcow"), 64 << 20,
           "encrypt.format=aes,encrypt.key-secret=s0", &err);
    r = open_img(path("a.qcow"), NULL, VIMG_OPEN_RDWR, &img, &err);
    expect_err(r, &err, -EINVAL, "Parameter 'encrypt.key-secret' is required "
               "for cipher", "AES without key");
    r = open_img(path("a.qcow"), "encrypt.key-secret=nosuch", 0, &img, &err);
    expect_err(r, &err, -ENOENT, "No secret with id 'nosuch'", "AES bad id");
    r = open_img(path("a.qcow"), "encrypt.format=luks,encrypt.key-secret=s0",
                 0, &img, &err);
    expect_err(r, &err, -EINVAL, "Header reported 'aes' encryption format but "
               "options specify 'luks'", "format mismatch");
    r = open_img(path("a.qcow"), "encrypt.cipher-alg=aes-128", VIMG_OPEN_NO_IO,
                 &img, &err);
    expect_err(r, &err, -EINVAL, "Parameter 'cipher-alg' is unexpected",
               "encrypt.cipher-alg on AES");
    r = open_img(path("p.qcow"), "encrypt.format=aes", 0, &img, &err);
    expect_err(r, &err, -EINVAL, "No encryption in image header, but options "
               "specified format 'aes'", "format on a plain image");
    r = open_img(path("p.qcow"), "encrypt.key-secret=s0", 0, &img, &err);
    ok(r == 0, "key-secret on a plain image is accepted");
    vimg_image_close(img, NULL);
    img = NULL;
    r = open_img(path("a.qcow"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0 && vimg_image_encrypted(img), "metadata-only open needs no key");
    vimg_image_close(img, NULL);
    img = NULL;

    r = open_img(path("a.qcow"), "encrypt.format=aes,encrypt.key-secret=s0",
                 VIMG_OPEN_RDWR, &img, &err);
    ok(r == 0 && vimg_image_alignment(img) == 512, "open AES, alignment 512");
    if (r < 0) {
        return;
    }
    /* 1000 bytes at 1024 (qemu-io write -P 0xab 1024 1000). */
    memset(w, 0xab, 1000);
    ok(vimg_image_pwrite(img, w, 1000, 1024, &err) == 0, "write 1000 bytes");
    ok(vimg_image_pread(img, rd, 4096, 0, &err) == 0, "read cluster 0");
    ok(all_zero(rd, 1024) && memcmp(rd + 1024, w, 1000) == 0 &&
       all_zero(rd + 2024, 4096 - 2024), "reads back data and zeros");
    r = vimg_image_block_status(img, 0, 4096, &pnum, &st, &host, &err);
    ok(r == 0 && st == VIMG_BLOCK_DATA, "encrypted: DATA without OFFSET");
    vimg_image_close(img, NULL);

    file = slurp(path("a.qcow"), &len);
    ok(len == 0x3000 && ld_be64(file + 0x1000) == 0x2000,
       "layout: L2 at 0x1000, data at 0x2000");
    qcowaes_new("123456", 6, &aes, NULL);
    memcpy(rd, file + 0x2000, 4096);
    qcowaes_decrypt(aes, 0, rd, 4096);
    ok(all_zero(rd, 1024) && memcmp(rd + 1024, w, 1000) == 0 &&
       all_zero(rd + 2024, 4096 - 2024),
       "file decrypts with IV = guest sector; unwritten sectors are "
       "encrypted zeros");
    for (i = 0; i < 512 && file[0x2000 + i] == 0; i++) {
    }
    ok(i < 512, "sector 0 on disk is ciphertext, not a hole");
    /* The ciphertext of zero sector 0 that qemu writes (test-qcowaes). */
    hex2bin("5a0e5cce653a50cdfbdf4535f8f1f02b118f6fb5739c5cb77c02553ab8f07e55",
            rd, 32);
    ok_mem(file + 0x2000, rd, 32, "encrypted zero sector equals qemu's");
    qcowaes_free(aes);
    free(file);
}

/* A hand-made image with a compressed cluster (as qemu-img convert -c). */
static void
test_compressed(void)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    uint8_t cl[4096], z[8192], rd[8192];
    uint64_t pnum = 0, e;
    unsigned st = 0;
    z_stream zs;
    size_t clen;
    int fd, r;

    create(path("z.qcow"), 1 << 20, NULL, &err);
    fill(cl, sizeof(cl), 9);
    memset(cl + 2048, 'A', 2048);
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                 Z_DEFAULT_STRATEGY);
    zs.next_in = cl;
    zs.avail_in = sizeof(cl);
    zs.next_out = z;
    zs.avail_out = sizeof(z);
    deflate(&zs, Z_FINISH);
    clen = sizeof(z) - zs.avail_out;
    deflateEnd(&zs);
    ok(clen > 0 && clen < 4096, "deflated a cluster to %zu bytes", clen);

    /* L1[0] -> L2 at 0x1000; L2[1] compressed at 0x2000 + 512. */
    fd = open(path("z.qcow"), O_RDWR);
    st_be64(rd, 0x1000);
    full_pwrite(fd, rd, 8, 48);
    memset(rd, 0, 4096);
    e = (UINT64_C(1) << 63) | ((uint64_t)clen << (63 - 12)) | 0x2200;
    st_be64(rd + 8, e);
    full_pwrite(fd, rd, 4096, 0x1000);
    full_pwrite(fd, z, clen, 0x2200);
    close(fd);

    r = open_img(path("z.qcow"), NULL, VIMG_OPEN_RDWR, &img, &err);
    ok(r == 0, "open the compressed image");
    ok(vimg_image_pread(img, rd, 8192, 0, &err) == 0, "read 8 KiB");
    ok(all_zero(rd, 4096) && memcmp(rd + 4096, cl, 4096) == 0,
       "compressed cluster decompresses");
    r = vimg_image_block_status(img, 4096, 4096, &pnum, &st, NULL, &err);
    ok(r == 0 && st == VIMG_BLOCK_DATA, "compressed: DATA without OFFSET");
    /* Partial overwrite: the rest of the cluster must survive. */
    memset(rd, 0x5a, 100);
    ok(vimg_image_pwrite(img, rd, 100, 4096 + 10, &err) == 0,
       "partial write into a compressed cluster");
    memset(cl + 10, 0x5a, 100);
    ok(vimg_image_pread(img, rd, 4096, 4096, &err) == 0 &&
       memcmp(rd, cl, 4096) == 0, "cluster rewritten uncompressed, intact");
    r = vimg_image_block_status(img, 4096, 4096, &pnum, &st, NULL, &err);
    ok(r == 0 && st == (VIMG_BLOCK_DATA | VIMG_BLOCK_OFFSET),
       "now a plain data cluster");
    vimg_image_close(img, NULL);
    img = NULL;

    /* Corrupt stream: an error, no crash. */
    fd = open(path("z.qcow"), O_RDWR);
    st_be64(rd, e);
    full_pwrite(fd, rd, 8, 0x1000 + 16);
    memset(rd, 0xff, 64);
    full_pwrite(fd, rd, 64, 0x2200);
    close(fd);
    open_img(path("z.qcow"), NULL, 0, &img, &err);
    r = vimg_image_pread(img, rd, 4096, 8192, &err);
    ok(r == -EIO && err, "corrupt deflate stream -> -EIO");
    vimg_error_free(err);
    err = NULL;
    vimg_image_close(img, NULL);
}

/* Hostile entries: misaligned data clusters, L2 offsets out of range. */
static void
test_bad_entries(void)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    uint8_t b[4096];
    int fd, r;

    create(path("bad-e.qcow"), 4 << 20, NULL, &err);
    fd = open(path("bad-e.qcow"), O_RDWR);
    st_be64(b, 0x1000);
    st_be64(b + 8, UINT64_C(0x7ffffffffffff000));
    full_pwrite(fd, b, 16, 48);
    memset(b, 0, sizeof(b));
    st_be64(b, 0x2001);                  /* not sector aligned */
    st_be64(b + 8, UINT64_C(0x7fffffffffffff00));
    full_pwrite(fd, b, 4096, 0x1000);
    close(fd);
    r = open_img(path("bad-e.qcow"), NULL, 0, &img, &err);
    ok(r == 0, "open image with bad entries");
    r = vimg_image_pread(img, b, 512, 0, &err);
    ok(r == -EIO && err, "misaligned data cluster -> -EIO (%s)",
       err ? vimg_error_message(err) : "");
    vimg_error_free(err);
    err = NULL;
    r = vimg_image_pread(img, b, 512, 4096, &err);
    ok(r == -EIO && err, "data offset beyond 2^63 -> -EIO");
    vimg_error_free(err);
    err = NULL;
    r = vimg_image_pread(img, b, 512, 2 << 20, &err);
    ok(r == -EIO && err, "L2 offset out of range -> -EIO");
    vimg_error_free(err);
    vimg_image_close(img, NULL);
}

static void
test_info(void)
{
    struct vimg_image *img = NULL;
    struct json_object *info = NULL, *v;
    struct vimg_error *err = NULL;
    struct hdr h;
    int fd, r;

    r = open_img(path("ce.qcow"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0 && vimg_image_info(img, &info, &err) == 0, "info on AES image");
    ok(json_object_object_get_ex(info, "cluster-size", &v) &&
       json_object_get_int64(v) == 4096, "cluster-size 4096");
    ok(json_object_object_get_ex(info, "encrypted", &v) &&
       json_object_get_boolean(v), "encrypted true");
    ok(json_object_object_get_ex(info, "format", &v) &&
       strcmp(json_object_get_string(v), "qcow") == 0, "format qcow");
    ok(!json_object_object_get_ex(info, "format-specific", NULL),
       "no format-specific (like qemu)");
    json_object_put(info);
    info = NULL;
    vimg_image_close(img, NULL);
    img = NULL;

    /* Backing file: info works, I/O opens are refused. */
    default_hdr(&h);
    h.bfo = 48;
    h.bfs = 6;
    h.cb = 9;
    h.l2b = 12;
    h.l1off = 56;
    write_hdr(path("b.qcow"), &h, 520);
    fd = open(path("b.qcow"), O_RDWR);
    ok(fd >= 0 && pwrite(fd, "p.qcow", 6, 48) == 6, "write backing name");
    close(fd);
    r = open_img(path("b.qcow"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0 && vimg_image_info(img, &info, &err) == 0, "info with backing");
    ok(json_object_object_get_ex(info, "backing-filename", &v) &&
       strcmp(json_object_get_string(v), "p.qcow") == 0,
       "backing-filename p.qcow");
    ok(json_object_object_get_ex(info, "full-backing-filename", &v) &&
       strcmp(json_object_get_string(v), path("p.qcow")) == 0,
       "full-backing-filename relative to the image directory");
    ok(json_object_object_get_ex(info, "cluster-size", &v) &&
       json_object_get_int64(v) == 512, "cluster-size 512");
    json_object_put(info);
    vimg_image_close(img, NULL);
    img = NULL;
    r = open_img(path("b.qcow"), NULL, 0, &img, &err);
    ok(r == 0, "I/O open with a backing file");
    if (r == 0) {
        vimg_image_close(img, NULL);
        img = NULL;
    }
    vimg_error_free(err);
}

int
main(void)
{
    struct rlimit rl = { 1u << 30, 1u << 30 };
    char cmd[128];

    /* Hostile headers must not make us allocate much: 1 GiB of address
     * space is far more than the library needs here (not under ASan,
     * which reserves terabytes of shadow memory). */
#if !defined(__SANITIZE_ADDRESS__)
    setrlimit(RLIMIT_AS, &rl);
#else
    (void)rl;
#endif
    snprintf(dir, sizeof(dir), "/tmp/test-qcow.XXXXXX");
    if (!mkdtemp(dir)) {
        return 1;
    }
    secrets = vimg_secrets_new();
    vimg_secrets_add(secrets, "s0", "123456", 6, NULL);

    test_headers();
    test_magic();
    test_create();
    test_plain_io();
    test_aes_io();
    test_compressed();
    test_bad_entries();
    test_info();

    vimg_secrets_free(secrets);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
    return tap_done();
}
