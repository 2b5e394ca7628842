/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the qcow2 driver, calling its ops table directly:
 *  - header validation: one mutated field per case, qemu's exact message;
 *  - creation layout (qemu 7.2's: header, refcount table, refcount block,
 *    L1 at cluster 3, LUKS region at cluster 4, feature table rules);
 *  - a model test: random writes and zeroes (partial clusters, cluster and
 *    L2-table boundaries, reopen in between) against an in-memory shadow,
 *    for v2/v3, cluster sizes 512..2M, refcount widths 1..64, extended L2
 *    and LUKS; every byte is read back after a reopen;
 *  - compressed clusters (zlib raw deflate and zstd, made here by
 *    compressing a written cluster in place): read, partial overwrite
 *    (copy-on-write), zeroing (the compressed data is released);
 *  - LUKS: wrong passphrase (-EPERM), missing key, IV = host offset.
 * With QCOW2_KEEP_DIR set, the model images and their raw shadows are
 * kept there (name.qcow2 + name.raw) for tests/test-qcow2-interop.sh,
 * which runs `qemu-img check` and `qemu-img compare` on them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zlib.h>
#include <zstd.h>

#include "bytes.h"
#include "format/qcow2.h"
#include "internal.h"
#include "tap.h"

static char dir[64];
static struct vimg_secrets *secrets;
static const struct vimg_format_ops *ops = &vimg_format_qcow2;

static char *
path(const char *name)
{
    static char buf[4][160];
    static int n;
    char *p = buf[n++ % 4];

    snprintf(p, 160, "%s/%s", dir, name);
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

/* Pseudo-random numbers, reproducible (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static int
q_create(const char *file, uint64_t size, const char *optstr,
         struct vimg_error **errp)
{
    struct vimg_opts *o = opts(optstr);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int r;

    if (fd < 0) {
        abort();
    }
    r = ops->create(fd, file, size, o, secrets, errp);
    if (r == 0) {
        r = vimg_opts_check_unused(o, errp);
    }
    close(fd);
    vimg_opts_free(o);
    return r;
}

static int
q_open(const char *file, const char *optstr, unsigned flags,
       struct vimg_image **out, struct vimg_error **errp)
{
    struct vimg_image *img = calloc(1, sizeof(*img));
    struct vimg_opts *o = opts(optstr);
    int r;

    img->ops = ops;
    img->filename = strdup(file);
    img->flags = flags;
    img->alignment = 1;
    img->fd = open(file, (flags & VIMG_OPEN_RDWR) ? O_RDWR : O_RDONLY);
    r = ops->open(img, o, secrets, errp);
    if (r == 0) {
        r = vimg_opts_check_unused(o, errp);
        if (r < 0) {
            ops->close(img);
        }
    }
    vimg_opts_free(o);
    if (r < 0) {
        close(img->fd);
        free(img->filename);
        free(img);
        return r;
    }
    *out = img;
    return 0;
}

static int
q_close(struct vimg_image *img)
{
    int r = 0;

    if (img->flags & VIMG_OPEN_RDWR) {
        r = ops->flush(img, NULL);
    }
    ops->close(img);
    close(img->fd);
    free(img->filename);
    free(img);
    return r;
}

/* Expect failure @code with exactly message @msg (NULL: any message). */
static void
expect_err(int r, struct vimg_error *err, int code, const char *msg,
           const char *what)
{
    ok(r == code, "%s: returns %d (got %d)", what, code, r);
    if (msg) {
        ok_str(err ? vimg_error_message(err) : NULL, msg, what);
    }
    vimg_error_free(err);
}

/* ---- header validation ---------------------------------------------------- */

#define HCS 65536

/* A valid v3 header cluster like qemu writes for a 64 MiB image. */
static void
good_header(uint8_t *b)
{
    memset(b, 0, HCS);
    st_be32(b, QCOW2_MAGIC);
    st_be32(b + 4, 3);
    st_be32(b + 20, 16);
    st_be64(b + 24, 64 << 20);
    st_be32(b + 36, 1);
    st_be64(b + 40, 0x30000);
    st_be64(b + 48, 0x10000);
    st_be32(b + 56, 1);
    st_be32(b + 96, 4);
    st_be32(b + 100, 112);
}

static int
parse(const uint8_t *b, size_t len, bool rw, struct vimg_error **errp,
      struct qcow2_state *out)
{
    struct qcow2_state s;

    memset(&s, 0, sizeof(s));
    int r = qcow2_parse_header(&s, b, len, rw, errp);

    if (out) {
        *out = s;
    }
    return r;
}

static void
test_header(void)
{
    uint8_t *b = malloc(HCS);
    struct vimg_error *err = NULL;
    struct qcow2_state s;
    int r;

    good_header(b);
    r = parse(b, HCS, true, &err, &s);
    ok(r == 0, "valid v3 header parses");
    ok(s.cluster_size == 65536 && s.l2_bits == 13 && s.refcount_bits == 16 &&
       s.rb_entries == 32768, "derived geometry");
    vimg_error_free(err);
    err = NULL;

    struct {
        size_t off;
        int width;              /* 1, 4 or 8 bytes */
        uint64_t val;
        int code;
        const char *msg;
        bool rw;
    } cases[] = {
        { 0, 4, 0x514649fa, -EINVAL, "Image is not in qcow2 format", false },
        { 4, 4, 4, -ENOTSUP, "Unsupported qcow2 version 4", false },
        { 4, 4, 1, -ENOTSUP, "Unsupported qcow2 version 1", false },
        { 20, 4, 8, -EINVAL, "Unsupported cluster size: 2^8", false },
        { 20, 4, 22, -EINVAL, "Unsupported cluster size: 2^22", false },
        { 100, 4, 96, -EINVAL, "qcow2 header too short", false },
        { 100, 4, 65544, -EINVAL, "qcow2 header exceeds cluster size", false },
        { 8, 8, 65537, -EINVAL, "Invalid backing file offset", false },
        { 72, 8, 1ULL << 5, -ENOTSUP,
          "Unsupported qcow2 feature(s): Unknown incompatible feature: 20",
          false },
        { 72, 8, 2, -EACCES,
          "qcow2: Image is corrupt; cannot be opened read/write", true },
        { 96, 4, 7, -EINVAL, "Reference count entry width too large; may not "
          "exceed 64 bits", false },
        { 104, 1, 1, -EINVAL, "qcow2: Compression type incompatible feature "
          "bit must be set", false },
        { 72, 8, 8, -EINVAL, "qcow2: Compression type incompatible feature "
          "bit must not be set", false },
        { 32, 4, 3, -EINVAL, "Unsupported encryption method 3", false },
        { 36, 4, 4 * 1024 * 1024 + 1, -EFBIG, "Active L1 table too large",
          false },
        { 36, 4, 0, -EINVAL, "L1 table is too small", false },
        { 40, 8, 0x30200, -EINVAL, "Active L1 table offset invalid", false },
        { 56, 4, 0, -EINVAL, "Image does not contain a reference count table",
          false },
        { 56, 4, 129, -EINVAL, "Reference count table too large", false },
        { 48, 8, 0x10008, -EINVAL, "Invalid reference count table offset",
          false },
        { 60, 4, 65537, -EFBIG, "Snapshot table too large", false },
        { 64, 8, 0x123, -EINVAL, "Snapshot table offset invalid", false },
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        good_header(b);
        if (cases[i].width == 1) {
            b[cases[i].off] = (uint8_t)cases[i].val;
        } else if (cases[i].width == 4) {
            st_be32(b + cases[i].off, (uint32_t)cases[i].val);
        } else {
            st_be64(b + cases[i].off, cases[i].val);
        }
        if (cases[i].off == 60) {
            st_be64(b + 64, 0x50000);
        }
        r = parse(b, HCS, cases[i].rw, &err, NULL);
        expect_err(r, err, cases[i].code, cases[i].msg, cases[i].msg);
        err = NULL;
    }

    /* The corrupt bit only matters for read-write opens. */
    good_header(b);
    st_be64(b + 72, 2);
    ok(parse(b, HCS, false, NULL, NULL) == 0, "corrupt image opens read-only");

    /* Unknown feature named by the image's feature table. */
    good_header(b);
    st_be64(b + 72, (1ULL << 5) | (1ULL << 9));
    st_be32(b + 112, QCOW2_EXT_FEATURES);
    st_be32(b + 116, 48);
    b[120] = 0;
    b[121] = 5;
    memcpy(b + 122, "shiny new thing", 15);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -ENOTSUP, "Unsupported qcow2 feature(s): shiny new "
               "thing, Unknown incompatible feature: 200",
               "feature named from the table");
    err = NULL;

    /* Header extensions. */
    good_header(b);
    st_be32(b + 112, 0x12345678);
    st_be32(b + 116, HCS);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "Header extension too large",
               "extension running past the cluster");
    err = NULL;

    good_header(b);
    st_be32(b + 32, 2);
    st_be32(b + 112, QCOW2_EXT_CRYPTO);
    st_be32(b + 116, 24);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "CRYPTO header extension size 24, but "
               "expected size 16", "crypto extension length");
    err = NULL;

    st_be32(b + 116, 16);
    st_be64(b + 120, 0x40200);
    st_be64(b + 128, 2068480);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "Encryption header offset '262656' is not a "
               "multiple of cluster size '65536'", "crypto offset alignment");
    err = NULL;

    st_be64(b + 120, 0x40000);
    r = parse(b, HCS, false, &err, &s);
    ok(r == 0 && s.has_crypto_ext && s.crypto_offset == 0x40000 &&
       s.crypto_length == 2068480, "crypto extension parsed");
    vimg_error_free(err);
    err = NULL;

    st_be32(b + 32, 0);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "CRYPTO header extension only expected with "
               "LUKS encryption method", "crypto extension without LUKS");
    err = NULL;

    good_header(b);
    st_be32(b + 112, QCOW2_EXT_BACKING_FMT);
    st_be32(b + 116, 16);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "ERROR: ext_backing_format: len=16 too large "
               "(>=16)", "backing format extension too long");
    err = NULL;

    /* v2: 72-byte header, features ignored, refcount order fixed at 4. */
    good_header(b);
    st_be32(b + 4, 2);
    memset(b + 72, 0, 40);      /* v2: extensions start here (end marker) */
    r = parse(b, HCS, true, &err, &s);
    ok(r == 0 && s.refcount_bits == 16 && s.hdr.header_length == 72,
       "v2 header: 72 bytes, 16-bit refcounts");
    vimg_error_free(err);
    err = NULL;

    /* Extended L2 needs 16 KiB clusters. */
    good_header(b);
    st_be32(b + 20, 13);
    st_be64(b + 72, QCOW2_INCOMPAT_EXTL2);
    st_be64(b + 40, 0x6000);
    st_be64(b + 48, 0x2000);
    st_be32(b + 36, 64);
    r = parse(b, HCS, false, &err, NULL);
    expect_err(r, err, -EINVAL, "Extended L2 entries are only supported with "
               "cluster sizes of at least 16384 bytes", "extended L2 at 8k");
    err = NULL;

    /* A short file is not qcow2. */
    r = parse(b, 40, false, &err, NULL);
    expect_err(r, err, -EINVAL, "Image is not in qcow2 format", "short input");
    free(b);
}

/* ---- creation layout -------------------------------------------------------- */

static uint8_t *
slurp(const char *file, size_t *len)
{
    struct stat st;
    int fd = open(file, O_RDONLY);
    uint8_t *buf;

    if (fd < 0 || fstat(fd, &st) < 0) {
        abort();
    }
    buf = malloc((size_t)st.st_size + 1);
    if (full_pread(fd, buf, (size_t)st.st_size, 0) < 0) {
        abort();
    }
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void
test_create_layout(void)
{
    struct vimg_error *err = NULL;
    uint8_t *b;
    size_t len;
    int r;

    r = q_create(path("c1.qcow2"), 64 << 20, NULL, &err);
    ok(r == 0, "create default qcow2");
    vimg_error_free(err);
    err = NULL;
    b = slurp(path("c1.qcow2"), &len);
    ok(len == 0x30008, "file ends after the L1 entries, like qemu (%zu)", len);
    ok(ld_be32(b + 4) == 3 && ld_be32(b + 20) == 16 &&
       ld_be64(b + 24) == 64 << 20, "v3, 64k clusters, size");
    ok(ld_be32(b + 36) == 1 && ld_be64(b + 40) == 0x30000,
       "L1: one entry at cluster 3");
    ok(ld_be64(b + 48) == 0x10000 && ld_be32(b + 56) == 1,
       "refcount table at cluster 1");
    ok(ld_be32(b + 100) == 112 && ld_be32(b + 96) == 4,
       "header length 112, refcount order 4");
    ok(ld_be32(b + 112) == QCOW2_EXT_FEATURES && ld_be32(b + 116) == 384 &&
       memcmp(b + 122, "dirty bit", 9) == 0, "feature table first");
    ok(ld_be32(b + 112 + 8 + 384) == 0, "end marker after the table");
    ok(ld_be64(b + 0x10000) == 0x20000, "refcount table entry 0 -> cluster 2");
    ok(ld_be16(b + 0x20000) == 1 && ld_be16(b + 0x20006) == 1 &&
       ld_be16(b + 0x20008) == 0, "refcounts of clusters 0-3 (and not 4)");
    free(b);

    /* v2 and 4 KiB clusters: no feature table. */
    r = q_create(path("c2.qcow2"), 1 << 20, "compat=0.10", NULL);
    b = slurp(path("c2.qcow2"), &len);
    ok(r == 0 && ld_be32(b + 4) == 2 && ld_be32(b + 72) == 0 &&
       ld_be32(b + 100) == 0, "v2: 72-byte header, no extensions");
    free(b);
    r = q_create(path("c3.qcow2"), 1 << 20, "cluster_size=4096", NULL);
    b = slurp(path("c3.qcow2"), &len);
    ok(r == 0 && ld_be32(b + 112) == 0, "4k clusters: no feature table");
    free(b);
    r = q_create(path("c4.qcow2"), 0, NULL, NULL);
    b = slurp(path("c4.qcow2"), &len);
    ok(r == 0 && ld_be32(b + 36) == 0 && ld_be64(b + 40) == 0 &&
       len == 0x30000, "size 0: no L1 table");
    free(b);
    r = q_create(path("c5.qcow2"), 1 << 20,
                 "compression_type=zstd,extended_l2=on,lazy_refcounts=on", NULL);
    b = slurp(path("c5.qcow2"), &len);
    ok(r == 0 && ld_be64(b + 72) == (QCOW2_INCOMPAT_COMPRESSION |
                                     QCOW2_INCOMPAT_EXTL2) &&
       ld_be64(b + 80) == 1 && b[104] == 1, "zstd + extended L2 + lazy bits");
    free(b);

    /* Option errors with qemu's messages. */
    static const struct {
        const char *o, *msg;
    } bad[] = {
        { "compat=2", "Parameter 'version' does not accept value '2'" },
        { "cluster_size=1000", "Cluster size must be a power of two between "
          "512 and 2048k" },
        { "cluster_size=4M", "Cluster size must be a power of two between 512 "
          "and 2048k" },
        { "refcount_bits=3", "Refcount width must be a power of two and may "
          "not exceed 64 bits" },
        { "compat=0.10,refcount_bits=8", "Different refcount widths than 16 "
          "bits require compatibility level 1.1 or above (use version=v3 or "
          "greater)" },
        { "compat=0.10,lazy_refcounts=on", "Lazy refcounts only supported "
          "with compatibility level 1.1 and above (use version=v3 or "
          "greater)" },
        { "cluster_size=4k,extended_l2=on", "Extended L2 entries are only "
          "supported with cluster sizes of at least 16384 bytes" },
        { "compression_type=lz4", "Parameter 'compression-type' does not "
          "accept value 'lz4'" },
        { "preallocation=foo", "Parameter 'preallocation' does not accept "
          "value 'foo'" },
        { "encrypt.format=luks", "Parameter 'encrypt.key-secret' is required "
          "for cipher" },
        { "encrypt.key-secret=sec0", "Parameter 'encrypt.format' is missing" },
        { "encryption=on,encrypt.format=luks", "'encrypt.format' and its "
          "alias 'encryption' can't be used at the same time" },
        { "backing_file=/nonexistent/x.img,backing_fmt=raw",
          "Could not open '/nonexistent/x.img': No such file or directory\n"
          "Could not open backing image." },
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        r = q_create(path("bad.qcow2"), 1 << 20, bad[i].o, &err);
        ok(r < 0, "create -o %s fails", bad[i].o);
        ok_str(err ? vimg_error_message(err) : NULL, bad[i].msg, bad[i].o);
        vimg_error_free(err);
        err = NULL;
    }
}

/* ---- model test ------------------------------------------------------------- */

static void
keep(const char *name, const char *file, const uint8_t *shadow, uint64_t size)
{
    const char *kd = getenv("QCOW2_KEEP_DIR");
    char dst[512];
    size_t len;
    uint8_t *b;
    int fd;

    if (!kd) {
        return;
    }
    b = slurp(file, &len);
    snprintf(dst, sizeof(dst), "%s/%s.qcow2", kd, name);
    fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || full_pwrite(fd, b, len, 0) < 0) {
        abort();
    }
    close(fd);
    free(b);
    snprintf(dst, sizeof(dst), "%s/%s.raw", kd, name);
    fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || full_pwrite(fd, shadow, size, 0) < 0) {
        abort();
    }
    close(fd);
}

static bool
verify_all(struct vimg_image *img, const uint8_t *shadow, uint64_t size)
{
    uint8_t *buf = malloc(size);
    bool same;

    if (ops->pread(img, buf, size, 0, NULL) < 0) {
        free(buf);
        return false;
    }
    same = memcmp(buf, shadow, size) == 0;
    free(buf);
    return same;
}

/* Block status must never call non-zero data "zero". */
static bool
status_consistent(struct vimg_image *img, const uint8_t *shadow,
                  uint64_t size)
{
    uint64_t off = 0;

    while (off < size) {
        uint64_t n, host, i;
        unsigned st;

        if (ops->block_status(img, off, size - off, &n, &st, &host,
                              NULL) < 0 || n == 0) {
            return false;
        }
        if (st & VIMG_BLOCK_ZERO) {
            for (i = off; i < off + n; i++) {
                if (shadow[i]) {
                    return false;
                }
            }
        }
        off += n;
    }
    return true;
}

static void
model(const char *name, const char *createopts, const char *openopts,
      uint64_t size, unsigned nops, uint32_t cs, unsigned align)
{
    uint8_t *shadow = calloc(1, size), *data = malloc(4 * cs + 8192);
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;
    char *file = path(name);
    bool io_ok = true;
    unsigned i;
    int r;

    r = q_create(file, size, createopts, &err);
    if (!ok(r == 0, "%s: create", name)) {
        printf("# %s\n", err ? vimg_error_message(err) : "?");
        vimg_error_free(err);
        goto out;
    }
    r = q_open(file, openopts, VIMG_OPEN_RDWR, &img, &err);
    if (!ok(r == 0, "%s: open", name)) {
        printf("# %s\n", err ? vimg_error_message(err) : "?");
        vimg_error_free(err);
        goto out;
    }
    for (i = 0; i < nops && io_ok; i++) {
        uint64_t kind = rnd() % 10, off, len;

        /* Lengths up to 3 clusters, biased towards cluster edges. */
        len = 1 + rnd() % (3 * (uint64_t)cs);
        if (rnd() % 3 == 0) {
            len = (1 + rnd() % 3) * (uint64_t)cs;
        }
        off = rnd() % size;
        if (rnd() % 3 == 0) {
            off = off / cs * cs;
        }
        off = off / align * align;
        len = ROUND_UP(len, (uint64_t)align);
        if (off + len > size) {
            len = size - off;
        }
        if (len == 0) {
            continue;
        }
        if (kind < 6) {
            uint64_t j, seed = rnd();

            for (j = 0; j < len; j++) {
                data[j] = (uint8_t)(seed + j * 131 + (j >> 8));
            }
            r = ops->pwrite(img, data, len, off, &err);
            memcpy(shadow + off, data, len);
        } else if (kind < 8) {
            r = ops->zero(img, off, len, 0, &err);
            memset(shadow + off, 0, len);
        } else if (kind < 9) {
            r = ops->flush(img, &err);
        } else {
            r = q_close(img);
            img = NULL;
            if (r == 0) {
                r = q_open(file, openopts, VIMG_OPEN_RDWR, &img, &err);
            }
        }
        if (r < 0) {
            printf("# op %u (%" PRIu64 " at %" PRIu64 "): %s\n", i, kind, off,
                   err ? vimg_error_message(err) : "?");
            io_ok = false;
        }
    }
    ok(io_ok, "%s: %u random operations", name, nops);
    vimg_error_free(err);
    err = NULL;
    if (img) {
        ok(verify_all(img, shadow, size), "%s: content before close", name);
        ok(q_close(img) == 0, "%s: close", name);
        img = NULL;
    }
    r = q_open(file, openopts, 0, &img, &err);
    ok(r == 0, "%s: reopen read-only", name);
    vimg_error_free(err);
    if (r == 0) {
        ok(verify_all(img, shadow, size), "%s: content after reopen", name);
        ok(status_consistent(img, shadow, size), "%s: block status", name);
        q_close(img);
    }
    keep(name, file, shadow, size);
out:
    free(shadow);
    free(data);
}

/* ---- truncate --------------------------------------------------------------- */

static void
test_truncate(void)
{
    struct vimg_image *img = NULL;
    uint8_t buf[4096], rd[4096];
    int r;

    /* 512-byte clusters: 64 L1 entries cover 2 MiB; grow far beyond. */
    q_create(path("t.qcow2"), 1 << 20, "cluster_size=512", NULL);
    r = q_open(path("t.qcow2"), NULL, VIMG_OPEN_RDWR, &img, NULL);
    ok(r == 0, "truncate: open");
    memset(buf, 0x5c, sizeof(buf));
    ops->pwrite(img, buf, sizeof(buf), 1000, NULL);
    r = ops->truncate(img, 64 << 20, false, NULL);
    ok(r == 0 && img->size == 64 << 20, "grow 1M -> 64M (new L1)");
    r = ops->pwrite(img, buf, sizeof(buf), (64 << 20) - 4096, NULL);
    ok(r == 0, "write at the new end");
    q_close(img);
    r = q_open(path("t.qcow2"), NULL, 0, &img, NULL);
    ok(r == 0 && img->size == 64 << 20, "reopened size");
    if (r == 0) {
        ops->pread(img, rd, sizeof(rd), 1000, NULL);
        ok(memcmp(rd, buf, sizeof(buf)) == 0, "old data kept");
        ops->pread(img, rd, sizeof(rd), (64 << 20) - 4096, NULL);
        ok(memcmp(rd, buf, sizeof(buf)) == 0, "new data readable");
        q_close(img);
    }
    if (getenv("QCOW2_KEEP_DIR")) {
        uint8_t *shadow = calloc(1, 64 << 20);

        memcpy(shadow + 1000, buf, sizeof(buf));
        memcpy(shadow + (64 << 20) - 4096, buf, sizeof(buf));
        keep("truncated", path("t.qcow2"), shadow, 64 << 20);
        free(shadow);
    }
    /* Shrinking (resize --shrink) cuts the end and keeps the rest. */
    r = q_open(path("t.qcow2"), NULL, VIMG_OPEN_RDWR, &img, NULL);
    ok(r == 0 && ops->truncate(img, 1 << 20, true, NULL) == 0 &&
       img->size == 1 << 20, "shrink 64M -> 1M");
    if (r == 0) {
        q_close(img);
    }
    r = q_open(path("t.qcow2"), NULL, 0, &img, NULL);
    ok(r == 0 && img->size == 1 << 20, "reopened shrunk size");
    if (r == 0) {
        ops->pread(img, rd, sizeof(rd), 1000, NULL);
        ok(memcmp(rd, buf, sizeof(buf)) == 0, "data below the new end kept");
        q_close(img);
    }
    if (getenv("QCOW2_KEEP_DIR")) {
        uint8_t *shadow = calloc(1, 1 << 20);

        memcpy(shadow + 1000, buf, sizeof(buf));
        keep("shrunk", path("t.qcow2"), shadow, 1 << 20);
        free(shadow);
    }
}

/* ---- compressed clusters ------------------------------------------------- */

static size_t
compress_cluster(bool zstd, const uint8_t *in, size_t len, uint8_t *out,
                 size_t max)
{
    if (zstd) {
        size_t r = ZSTD_compress(out, max, in, len, 3);

        return ZSTD_isError(r) ? 0 : r;
    } else {
        z_stream z;
        size_t n;

        memset(&z, 0, sizeof(z));
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            return 0;
        }
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)max;
        n = deflate(&z, Z_FINISH) == Z_STREAM_END ? max - z.avail_out : 0;
        deflateEnd(&z);
        return n;
    }
}

/*
 * Turn guest cluster @gc (already written, so its L2 table and host cluster
 * exist) into a compressed cluster stored in the same host cluster.
 */
static bool
make_compressed(const char *file, bool zstd, uint64_t gc, const uint8_t *plain)
{
    const uint32_t cs = 65536;
    uint8_t ent[8], z[2 * 65536];
    uint64_t l1e, l2e, host, nsec, l2off;
    size_t clen;
    int fd = open(file, O_RDWR);
    bool good;

    clen = compress_cluster(zstd, plain, cs, z, sizeof(z));
    if (fd < 0 || clen == 0 || clen >= cs) {
        return false;
    }
    full_pread(fd, ent, 8, 0x30000);
    l1e = ld_be64(ent);
    l2off = (l1e & QCOW2_OFFSET_MASK) + gc * 8;
    full_pread(fd, ent, 8, l2off);
    l2e = ld_be64(ent);
    host = l2e & QCOW2_OFFSET_MASK;
    nsec = DIV_ROUND_UP(clen, 512) - 1;
    good = full_pwrite(fd, z, clen, host) == 0;
    st_be64(ent, QCOW2_OFLAG_COMPRESSED | (nsec << 54) | host);
    good = good && full_pwrite(fd, ent, 8, l2off) == 0;
    close(fd);
    return good;
}

static void
test_compressed(bool zstd)
{
    const char *name = zstd ? "comp-zstd" : "comp-zlib";
    const uint64_t size = 1 << 20;
    uint8_t *shadow = calloc(1, size), *rd = malloc(size);
    struct vimg_image *img = NULL;
    uint64_t i, pnum, host;
    unsigned st;
    char file[160];
    int r;

    snprintf(file, sizeof(file), "%s", path(name));
    for (i = 0; i < 4 * 65536; i++) {
        shadow[i] = (uint8_t)((i / 100) ^ (i >> 12));   /* compressible */
    }
    q_create(file, size, zstd ? "compression_type=zstd" : NULL, NULL);
    r = q_open(file, NULL, VIMG_OPEN_RDWR, &img, NULL);
    ok(r == 0 && ops->pwrite(img, shadow, 4 * 65536, 0, NULL) == 0,
       "%s: write 4 clusters", name);
    q_close(img);
    ok(make_compressed(file, zstd, 0, shadow) &&
       make_compressed(file, zstd, 2, shadow + 2 * 65536) &&
       make_compressed(file, zstd, 3, shadow + 3 * 65536),
       "%s: clusters 0, 2, 3 compressed in place", name);

    r = q_open(file, NULL, VIMG_OPEN_RDWR, &img, NULL);
    ok(r == 0 && ops->pread(img, rd, size, 0, NULL) == 0 &&
       memcmp(rd, shadow, size) == 0, "%s: compressed clusters read", name);
    ok(ops->block_status(img, 0, size, &pnum, &st, &host, NULL) == 0 &&
       st == VIMG_BLOCK_DATA && pnum == 65536,
       "%s: block status: data, no offset", name);
    /* Partial overwrite: copy-on-write keeps the rest of the cluster. */
    memset(shadow + 1000, 0xee, 3000);
    ok(ops->pwrite(img, shadow + 1000, 3000, 1000, NULL) == 0,
       "%s: partial write into a compressed cluster", name);
    /* Whole-cluster zero: zero flag, compressed data released. */
    memset(shadow + 2 * 65536, 0, 65536);
    ok(ops->zero(img, 2 * 65536, 65536, 0, NULL) == 0,
       "%s: zero a compressed cluster", name);
    /* Partial zero of a compressed cluster: copy-on-write too. */
    memset(shadow + 3 * 65536 + 512, 0, 1024);
    ok(ops->zero(img, 3 * 65536 + 512, 1024, 0, NULL) == 0,
       "%s: partial zero of a compressed cluster", name);
    q_close(img);
    r = q_open(file, NULL, 0, &img, NULL);
    ok(r == 0 && ops->pread(img, rd, size, 0, NULL) == 0 &&
       memcmp(rd, shadow, size) == 0, "%s: content after reopen", name);
    if (r == 0) {
        q_close(img);
    }
    keep(name, file, shadow, size);
    free(shadow);
    free(rd);
}

/* ---- LUKS --------------------------------------------------------------------- */

static void
test_luks(void)
{
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;
    struct json_object *info, *fs, *data, *enc, *v;
    uint8_t *b, buf[65536];
    size_t len;
    int r;

    r = q_create(path("l.qcow2"), 64 << 20,
                 "encrypt.format=luks,encrypt.key-secret=sec0,"
                 "encrypt.iter-count=1000", &err);
    ok(r == 0, "create LUKS qcow2");
    vimg_error_free(err);
    err = NULL;
    b = slurp(path("l.qcow2"), &len);
    ok(len == 0x240000, "file size 0x240000 like qemu (%zu)", len);
    ok(ld_be32(b + 32) == 2 && ld_be32(b + 112) == QCOW2_EXT_CRYPTO &&
       ld_be64(b + 120) == 0x40000 && ld_be64(b + 128) == 0x1f9000,
       "crypt_method 2, FDE extension first: region 0x40000, 0x1f9000");
    ok(ld_be32(b + 136) == QCOW2_EXT_FEATURES, "then the feature table");
    ok(memcmp(b + 0x40000, "LUKS\xba\xbe", 6) == 0, "LUKS header at 0x40000");
    free(b);

    r = q_open(path("l.qcow2"), NULL, 0, &img, &err);
    expect_err(r, err, -EINVAL, "Parameter 'encrypt.key-secret' is required "
               "for cipher", "open without key");
    err = NULL;
    r = q_open(path("l.qcow2"), "encrypt.key-secret=bad", 0, &img, &err);
    expect_err(r, err, -EPERM, "Invalid password, cannot unlock any keyslot",
               "wrong passphrase");
    err = NULL;
    r = q_open(path("l.qcow2"), "encrypt.format=aes,encrypt.key-secret=sec0",
               0, &img, &err);
    expect_err(r, err, -EINVAL, "Header reported 'luks' encryption format but "
               "options specify 'aes'", "format mismatch");
    err = NULL;

    r = q_open(path("l.qcow2"), "encrypt.key-secret=sec0", VIMG_OPEN_RDWR,
               &img, &err);
    ok(r == 0 && img->encrypted && img->alignment == 512, "unlock");
    vimg_error_free(err);
    err = NULL;
    if (r == 0) {
        memset(buf, 0xcd, sizeof(buf));
        ok(ops->pwrite(img, buf, 4096, 1 << 20, NULL) == 0, "encrypted write");
        q_close(img);
        /* L2 at 0x240000, data at 0x250000; IV sector = 0x250000 / 512. */
        b = slurp(path("l.qcow2"), &len);
        ok(ld_be64(b + 0x30000) == (0x8000000000000000ULL | 0x240000) &&
           ld_be64(b + 0x240000 + 16 * 8) ==
           (0x8000000000000000ULL | 0x250000), "L1/L2 entries as qemu's");
        ok(memcmp(b + 0x250000 + 8192, buf, 512) != 0,
           "data is not stored in clear");
        free(b);
    }
    r = q_open(path("l.qcow2"), NULL, VIMG_OPEN_NO_IO, &img, &err);
    ok(r == 0, "metadata-only open without key");
    vimg_error_free(err);
    if (r == 0) {
        r = ops->info(img, (info = json_object_new_object()), NULL);
        ok(r == 0 && json_object_object_get_ex(info, "format-specific", &fs) &&
           json_object_object_get_ex(fs, "data", &data) &&
           json_object_object_get_ex(data, "encrypt", &enc) &&
           json_object_object_get_ex(enc, "format", &v) &&
           strcmp(json_object_get_string(v), "luks") == 0 &&
           json_object_object_get_ex(enc, "payload-offset", &v) &&
           json_object_get_int64(v) == 2068480, "info: encrypt luks");
        ok(json_object_object_get_ex(info, "cluster-size", &v) &&
           json_object_get_int64(v) == 65536, "info: cluster-size");
        json_object_put(info);
        q_close(img);
    }
    r = q_open(path("l.qcow2"), "encrypt.key-secret=sec0", 0, &img, NULL);
    if (ok(r == 0, "reopen")) {
        uint8_t rd[8192];

        ops->pread(img, rd, sizeof(rd), (1 << 20) - 2048, NULL);
        ok(memcmp(rd + 2048, buf, 4096) == 0, "encrypted data reads back");
        ok(rd[0] == 0 && rd[2047] == 0 && rd[6144] == 0 && rd[8191] == 0,
           "unwritten sectors read as zeroes");
        q_close(img);
    }
}

/*
 * The L2 cache contract: a table asked for as new (load=false) starts
 * zeroed even when a freed table at that offset is still cached, and a
 * forgotten dirty table is never written over the cluster.
 */
static void
test_cache_fresh(void)
{
    struct vimg_error *err = NULL;
    struct vimg_image *img = NULL;
    struct qcow2_table *t = NULL;
    struct qcow2_state *s;
    uint8_t buf[4096], *b;
    uint64_t l2off, zero = 0;
    size_t len, i;
    bool allzero = true;
    int r;

    r = q_create(path("c.qcow2"), 8 << 20, NULL, &err);
    vimg_error_free(err);
    err = NULL;
    r = r == 0 ? q_open(path("c.qcow2"), NULL, VIMG_OPEN_RDWR, &img, &err) : r;
    vimg_error_free(err);
    if (!ok(r == 0, "cache: create and open")) {
        return;
    }
    memset(buf, 0x5a, sizeof(buf));
    ok(ops->pwrite(img, buf, sizeof(buf), 0, NULL) == 0, "cache: write");
    s = img->priv;
    l2off = s->l1[0] & QCOW2_OFFSET_MASK;
    r = qcow2_cache_get(img, true, l2off, true, &t, NULL);
    ok(r == 0 && memcmp(t->data, &zero, 8) != 0, "cache: L2 entry 0 is set");
    r = qcow2_cache_get(img, true, l2off, false, &t, NULL);
    for (i = 0; r == 0 && i < s->cluster_size; i++) {
        allzero = allzero && t->data[i] == 0;
    }
    ok(r == 0 && allzero && !t->dirty,
       "cache: load=false on a cached offset gives a zeroed, clean table");
    memset(t->data, 0xee, 8);
    t->dirty = true;
    qcow2_cache_forget(s, l2off);
    r = qcow2_cache_get(img, true, l2off, true, &t, NULL);
    ok(r == 0 && t->data[0] != 0xee, "cache: forgotten table reloads from disk");
    q_close(img);
    b = slurp(path("c.qcow2"), &len);
    ok(b && len > l2off + 8 && b[l2off] != 0xee,
       "cache: the forgotten dirty table was not written");
    free(b);
}

int
main(void)
{
    unsigned cs;

    snprintf(dir, sizeof(dir), "/tmp/test-qcow2.XXXXXX");
    if (!mkdtemp(dir)) {
        return 1;
    }
    secrets = vimg_secrets_new();
    vimg_secrets_add(secrets, "sec0", "123456", 6, NULL);
    vimg_secrets_add(secrets, "bad", "654321", 6, NULL);

    test_header();
    test_create_layout();
    test_cache_fresh();

    for (cs = 512; cs <= 2 * 1024 * 1024; cs *= 4) {
        char name[32], o[64];

        snprintf(name, sizeof(name), "m-v3-%u", cs);
        snprintf(o, sizeof(o), "cluster_size=%u", cs);
        model(name, o, NULL, 24 << 20, 300, cs, 1);
        snprintf(name, sizeof(name), "m-v2-%u", cs);
        snprintf(o, sizeof(o), "cluster_size=%u,compat=0.10", cs);
        model(name, o, NULL, 24 << 20, 300, cs, 1);
    }
    model("m-rb1", "cluster_size=1024,refcount_bits=1", NULL, 8 << 20, 300,
          1024, 1);
    model("m-rb64", "cluster_size=4096,refcount_bits=64", NULL, 8 << 20, 300,
          4096, 1);
    model("m-rb8", "cluster_size=512,refcount_bits=8", NULL, 20 << 20, 400,
          512, 1);
    model("m-extl2-64k", "extended_l2=on", NULL, 24 << 20, 300, 65536, 1);
    model("m-extl2-16k", "extended_l2=on,cluster_size=16k", NULL, 24 << 20,
          300, 16384, 1);
    model("m-luks", "encrypt.format=luks,encrypt.key-secret=sec0,"
          "encrypt.iter-count=1000", "encrypt.key-secret=sec0", 24 << 20, 200,
          65536, 512);
    model("m-luks-512", "encrypt.format=luks,encrypt.key-secret=sec0,"
          "encrypt.iter-count=1000,cluster_size=512,compat=0.10",
          "encrypt.key-secret=sec0", 8 << 20, 200, 512, 512);

    test_truncate();
    test_compressed(false);
    test_compressed(true);
    test_luks();

    vimg_secrets_free(secrets);
    if (!getenv("QCOW2_KEEP_TMP")) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) {
            printf("# could not remove %s\n", dir);
        }
    }
    return tap_done();
}
