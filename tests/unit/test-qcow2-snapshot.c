/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of qcow2 internal snapshots through the public API: create,
 * list, load read-only, apply and delete on a fresh image, copy-on-write
 * keeping snapshot content intact (plain, zero and whole-cluster writes),
 * and hostile snapshot tables (qemu's messages).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vimg.h"
#include "bytes.h"
#include "tap.h"

#define SZ (4u << 20)

static char path[256];

static void
fill(uint8_t *buf, size_t len, uint8_t v)
{
    memset(buf, v, len);
}

static struct vimg_image *
open_img(unsigned flags)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    int r = vimg_image_open(path, "qcow2", NULL, NULL, flags, &img, &err);

    if (r < 0) {
        printf("# open: %s\n", vimg_error_message(err));
        vimg_error_free(err);
        return NULL;
    }
    return img;
}

/* Whole content of the image (or of a loaded snapshot). */
static int
read_all(struct vimg_image *img, uint8_t *buf)
{
    return vimg_image_pread(img, buf, vimg_image_size(img), 0, NULL);
}

static int
content_of(const char *snap, uint8_t *buf)
{
    struct vimg_image *img = open_img(0);
    int r;

    if (!img) {
        return -EIO;
    }
    r = snap ? vimg_snapshot_load(img, NULL, snap, NULL) : 0;
    if (r == 0) {
        r = read_all(img, buf);
    }
    vimg_image_close(img, NULL);
    return r;
}

static void
test_lifecycle(void)
{
    uint8_t *a = malloc(SZ), *b = malloc(SZ), *c = malloc(SZ);
    struct vimg_snapshot *list = NULL;
    struct vimg_image *img;
    struct vimg_error *err = NULL;
    size_t n = 0;
    int r;

    ok(vimg_image_create(path, "qcow2", SZ, NULL, NULL, NULL) == 0,
       "create image");
    img = open_img(VIMG_OPEN_RDWR);
    ok(img != NULL, "open rw");
    fill(a, SZ, 0);
    fill(a, 1 << 20, 0x11);
    ok(vimg_image_pwrite(img, a, 1 << 20, 0, NULL) == 0, "write 1M");
    ok(vimg_snapshot_create(img, "one", NULL) == 0, "snapshot one");
    /* Partial, whole-cluster and zero writes over shared clusters. */
    memcpy(b, a, SZ);
    fill(b + 1000, 3000, 0x22);
    fill(b + 65536, 65536, 0x23);
    fill(b + 300000, 70000, 0);
    fill(b + (2 << 20), 4096, 0x24);
    ok(vimg_image_pwrite(img, b + 1000, 3000, 1000, NULL) == 0, "partial");
    ok(vimg_image_pwrite(img, b + 65536, 65536, 65536, NULL) == 0,
       "whole cluster");
    ok(vimg_image_zero(img, 300000, 70000, 0, NULL) == 0, "zero");
    ok(vimg_image_pwrite(img, b + (2 << 20), 4096, 2 << 20, NULL) == 0,
       "new cluster");
    ok(vimg_snapshot_create(img, "two", NULL) == 0, "snapshot two");
    ok(vimg_snapshot_list(img, &list, &n, NULL) == 0 && n == 2,
       "two snapshots listed");
    if (n == 2) {
        ok_str(list[0].id, "1", "first id");
        ok_str(list[1].name, "two", "second name");
        ok(list[1].disk_size == SZ && list[1].icount == 0 &&
           list[1].vm_state_size == 0, "second entry fields");
    }
    vimg_snapshot_list_free(list, n);
    ok(vimg_image_close(img, NULL) == 0, "close");

    ok(content_of(NULL, c) == 0 && memcmp(b, c, SZ) == 0, "current content");
    ok(content_of("one", c) == 0 && memcmp(a, c, SZ) == 0,
       "snapshot one unchanged by later writes");
    ok(content_of("two", c) == 0 && memcmp(b, c, SZ) == 0, "snapshot two");

    img = open_img(0);
    r = vimg_snapshot_load(img, NULL, "three", &err);
    ok(r == -ENOENT && err &&
       strcmp(vimg_error_message(err), "Can't find snapshot") == 0,
       "load missing snapshot: -ENOENT");
    vimg_error_free(err);
    err = NULL;
    ok(vimg_snapshot_create(img, "x", NULL) == -EBADF,
       "create on a read-only handle refused");
    vimg_image_close(img, NULL);

    img = open_img(VIMG_OPEN_RDWR | VIMG_OPEN_NO_IO);
    ok(img != NULL, "open rw metadata-only");
    ok(vimg_snapshot_load(img, "1", NULL, NULL) == -EINVAL,
       "load on a writable handle refused");
    ok(vimg_snapshot_apply(img, "one", NULL) == 0, "apply one (no I/O)");
    r = vimg_snapshot_delete(img, NULL, "nosuch", &err);
    ok(r == -ENOENT, "delete missing: -ENOENT");
    vimg_error_free(err);
    ok(vimg_snapshot_delete(img, NULL, "one", NULL) == 0, "delete one");
    vimg_image_close(img, NULL);
    ok(content_of(NULL, c) == 0 && memcmp(a, c, SZ) == 0,
       "content after apply");
    ok(content_of("two", c) == 0 && memcmp(b, c, SZ) == 0,
       "two intact after deleting one");

    img = open_img(VIMG_OPEN_RDWR);
    fill(c, 4096, 0x55);
    ok(vimg_image_pwrite(img, c, 4096, 0, NULL) == 0, "write after delete");
    ok(vimg_snapshot_delete(img, "2", "two", NULL) == 0,
       "delete two by id and name");
    ok(vimg_snapshot_list(img, &list, &n, NULL) == 0 && n == 0 && !list,
       "no snapshots left");
    vimg_image_close(img, NULL);
    free(a);
    free(b);
    free(c);
}

/* Patch bytes of the image file. */
static void
patch(uint64_t off, const void *p, size_t len)
{
    int fd = open(path, O_RDWR);

    if (fd < 0 || pwrite(fd, p, len, (off_t)off) != (ssize_t)len) {
        printf("# patch failed\n");
    }
    if (fd >= 0) {
        close(fd);
    }
}

static uint64_t
header_u64(uint64_t off)
{
    uint8_t b[8] = { 0 };
    int fd = open(path, O_RDONLY);

    if (fd >= 0) {
        if (pread(fd, b, 8, (off_t)off) != 8) {
            memset(b, 0, 8);
        }
        close(fd);
    }
    return ld_be64(b);
}

/*
 * A broken snapshot table is refused when the image is opened (as qemu
 * does) or, for problems only a snapshot operation meets, by the list.
 */
static void
expect_list_error(const char *what, int code, const char *msg)
{
    struct vimg_image *img = NULL;
    struct vimg_snapshot *list = NULL;
    struct vimg_error *err = NULL;
    size_t n = 0;
    int r;

    r = vimg_image_open(path, "qcow2", NULL, NULL, 0, &img, &err);
    if (r == 0) {
        r = vimg_snapshot_list(img, &list, &n, &err);
    }
    ok(r == code, "%s: code %d (got %d)", what, code, r);
    ok(err && strncmp(vimg_error_message(err), msg, strlen(msg)) == 0,
       "%s: message '%s' (got '%s')", what, msg,
       err ? vimg_error_message(err) : "");
    vimg_error_free(err);
    vimg_snapshot_list_free(list, n);
    vimg_image_close(img, NULL);
}

static void
test_hostile(void)
{
    struct vimg_image *img;
    uint64_t toff, l1off;
    uint8_t b[8];

    ok(vimg_image_create(path, "qcow2", SZ, NULL, NULL, NULL) == 0,
       "create image");
    img = open_img(VIMG_OPEN_RDWR);
    ok(img && vimg_snapshot_create(img, "s", NULL) == 0, "snapshot");
    vimg_image_close(img, NULL);
    toff = header_u64(64);
    ok(toff != 0 && toff % 65536 == 0, "table offset aligned");
    l1off = header_u64(toff);

    st_be32(b, 2000);
    patch(toff + 36, b, 4);
    expect_list_error("extra data 2000", -EFBIG,
                      "Too much extra metadata in snapshot table entry 0");
    st_be32(b, 24);
    patch(toff + 36, b, 4);

    st_be64(b, l1off + 8);
    patch(toff, b, 8);
    img = open_img(VIMG_OPEN_RDWR);
    {
        struct vimg_error *err = NULL;
        int r = vimg_snapshot_apply(img, "s", &err);

        ok(r == -EINVAL && err &&
           strcmp(vimg_error_message(err),
                  "Snapshot L1 table offset invalid") == 0,
           "unaligned snapshot L1: qemu's message");
        vimg_error_free(err);
    }
    vimg_image_close(img, NULL);
    st_be64(b, l1off);
    patch(toff, b, 8);

    st_be32(b, 5000000);
    patch(toff + 8, b, 4);
    img = open_img(0);
    ok(vimg_snapshot_load(img, "1", NULL, NULL) == -EFBIG,
       "huge snapshot L1: -EFBIG");
    vimg_image_close(img, NULL);
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(path, sizeof(path), "%s/test-qcow2-snapshot-%d.qcow2",
             tmp ? tmp : "/tmp", (int)getpid());
    test_lifecycle();
    test_hostile();
    unlink(path);
    return tap_done();
}
