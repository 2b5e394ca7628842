/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS header backup and restore, in the file format of cryptsetup's
 * luksHeaderBackup / luksHeaderRestore: the backup is a byte copy of the
 * header area from offset 0 of the file holding the header (an image, or a
 * detached header file):
 *   LUKS1: up to the end of the last key material area rounded up to 4096,
 *          or to the payload offset if that is larger;
 *   LUKS2: both header copies plus the keyslots area (2 * hdr_size +
 *          keyslots_size).
 *
 * Restore validates everything before it writes anything: the backup must
 * load as a LUKS header and have exactly that size; the target must be at
 * least that large; and unless forced, the target's current header must
 * load and have the same version, UUID, payload offset and header-area
 * size.  The backup is then written in one call at offset 0 and flushed,
 * and the written header is loaded again as a check.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockcrypt/luks1.h"
#include "blockcrypt/luks2.h"
#include "bytes.h"
#include "internal.h"

/* The largest header area a backup can have: 2 x 4 MiB + 128 MiB. */
#define BACKUP_MAX ((uint64_t)136 * 1024 * 1024)

struct hdr_src {
    int fd;                     /* or -1: read from buf */
    const uint8_t *buf;
    uint64_t len;
};

static int
src_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    struct hdr_src *s = opaque;
    int r;

    if (s->fd >= 0) {
        r = full_pread_zero(s->fd, buf, len, off);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not read LUKS header: %s",
                                  strerror(-r));
        }
        return 0;
    }
    memset(buf, 0, len);
    if (off < s->len) {
        memcpy(buf, s->buf + off, (size_t)MIN((uint64_t)len, s->len - off));
    }
    return 0;
}

/* What identifies a header: version, UUID, payload offset, area size. */
struct hdr_id {
    int version;
    char uuid[64];
    uint64_t payload, area;
};

/*
 * Load the header readable through @src (checks relaxed as for a detached
 * header, since the payload may be elsewhere) and describe it.
 */
static int
identify(struct hdr_src *src, struct hdr_id *id, struct vimg_error **errp)
{
    struct luks1_io io1 = { .opaque = src, .read = src_read, .detached = true };
    struct luks2_io io2 = { .opaque = src, .read = src_read, .detached = true };
    struct luks1 *l1 = NULL;
    struct luks2 *l2 = NULL;
    uint8_t head[16];
    int r;

    r = src_read(src, 0, head, sizeof(head), errp);
    if (r < 0) {
        return r;
    }
    id->version = luks1_probe(head, sizeof(head));
    if (id->version != 1) {
        struct vimg_error *err = NULL;

        r = luks2_load(&io2, &l2, &err);
        if (r == 0) {
            vimg_error_free(err);
            id->version = 2;
            snprintf(id->uuid, sizeof(id->uuid), "%s", luks2_uuid(l2));
            id->payload = luks2_payload_offset(l2);
            id->area = luks2_header_area_size(l2);
            luks2_free(l2);
            return 0;
        }
        if (id->version == 2) {
            r = vimg_error_set(errp, r, "%s", vimg_error_message(err));
            vimg_error_free(err);
            return r;
        }
        vimg_error_free(err);
    }
    r = luks1_load(&io1, &l1, errp);
    if (r < 0) {
        return r;
    }
    id->version = 1;
    luks1_uuid(l1, id->uuid);
    id->payload = luks1_payload_offset(l1);
    id->area = luks1_header_area_size(l1);
    luks1_free(l1);
    return 0;
}

static int
get_size(int fd, const char *name, uint64_t *out, struct vimg_error **errp)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return vimg_error_set(errp, -errno, "Could not stat '%s': %s", name,
                              strerror(errno));
    }
    *out = (uint64_t)st.st_size;
    return 0;
}

int
vimg_luks_header_backup(const char *filename, const char *backup,
                        struct vimg_error **errp)
{
    struct hdr_src src = { .fd = -1 };
    struct hdr_id id;
    uint8_t *buf = NULL;
    uint64_t size;
    int out = -1, r;

    if (!filename || !backup) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    src.fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (src.fd < 0) {
        return vimg_error_set(errp, -errno, "Could not open '%s': %s",
                              filename, strerror(errno));
    }
    r = identify(&src, &id, errp);
    if (r < 0) {
        vimg_error_prefix(errp, "'%s': ", filename);
        goto out;
    }
    r = get_size(src.fd, filename, &size, errp);
    if (r < 0) {
        goto out;
    }
    if (size < id.area || id.area > BACKUP_MAX) {
        r = vimg_error_set(errp, -EINVAL, "'%s' is shorter than its LUKS "
                           "header area (%" PRIu64 " of %" PRIu64 " bytes)",
                           filename, size, id.area);
        goto out;
    }
    buf = malloc(id.area);
    if (!buf) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = full_pread(src.fd, buf, id.area, 0);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not read '%s': %s", filename,
                           strerror(-r));
        goto out;
    }
    out = open(backup, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (out < 0) {
        r = errno == EEXIST
            ? vimg_error_set(errp, -EEXIST, "Requested header backup file "
                             "'%s' already exists", backup)
            : vimg_error_set(errp, -errno, "Could not create '%s': %s",
                             backup, strerror(errno));
        goto out;
    }
    r = full_pwrite(out, buf, id.area, 0);
    if (r == 0) {
        r = file_flush(out);
    }
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not write '%s': %s", backup,
                           strerror(-r));
        close(out);
        out = -1;
        unlink(backup);
    }
out:
    if (out >= 0) {
        close(out);
    }
    free(buf);
    close(src.fd);
    return r;
}

int
vimg_luks_header_restore(const char *filename, const char *backup,
                         bool force, struct vimg_error **errp)
{
    struct hdr_src bsrc = { .fd = -1 }, tsrc = { .fd = -1 };
    struct hdr_id bid, tid;
    struct vimg_error *err = NULL;
    uint8_t *buf = NULL;
    uint64_t bsize, tsize;
    int bfd, r;

    if (!filename || !backup) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    /* 1. The backup: a LUKS header of exactly its header-area size. */
    bfd = open(backup, O_RDONLY | O_CLOEXEC);
    if (bfd < 0) {
        return vimg_error_set(errp, -errno, "Could not open '%s': %s", backup,
                              strerror(errno));
    }
    r = get_size(bfd, backup, &bsize, errp);
    if (r == 0 && bsize > BACKUP_MAX) {
        r = vimg_error_set(errp, -EINVAL, "'%s' is not a LUKS header backup "
                           "(%" PRIu64 " bytes is too large)", backup, bsize);
    }
    if (r == 0) {
        buf = malloc(bsize ? bsize : 1);
        r = buf ? full_pread(bfd, buf, bsize, 0) : -ENOMEM;
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not read '%s': %s", backup,
                               strerror(-r));
        }
    }
    close(bfd);
    if (r < 0) {
        goto out;
    }
    bsrc.buf = buf;
    bsrc.len = bsize;
    r = identify(&bsrc, &bid, &err);
    if (r < 0) {
        r = vimg_error_set(errp, -EINVAL, "'%s' is not a LUKS header backup: "
                           "%s", backup, vimg_error_message(err));
        goto out;
    }
    if (bsize != bid.area) {
        r = vimg_error_set(errp, -EINVAL, "'%s' is not a LUKS header backup "
                           "(%" PRIu64 " bytes, its header area is %" PRIu64
                           ")", backup, bsize, bid.area);
        goto out;
    }

    /* 2. The target: large enough, and (unless forced) the same volume. */
    tsrc.fd = open(filename, O_RDWR | O_CLOEXEC);
    if (tsrc.fd < 0) {
        r = vimg_error_set(errp, -errno, "Could not open '%s': %s", filename,
                           strerror(errno));
        goto out;
    }
    r = get_size(tsrc.fd, filename, &tsize, errp);
    if (r < 0) {
        goto out;
    }
    if (tsize < bsize) {
        r = vimg_error_set(errp, -EINVAL, "'%s' is smaller (%" PRIu64 " bytes) "
                           "than the header backup (%" PRIu64 " bytes)",
                           filename, tsize, bsize);
        goto out;
    }
    vimg_error_free(err);
    err = NULL;
    r = identify(&tsrc, &tid, &err);
    if (r < 0 && !force) {
        r = vimg_error_set(errp, -EINVAL, "'%s' has no readable LUKS header to "
                           "check the backup against (%s); use --force to "
                           "restore anyway", filename,
                           vimg_error_message(err));
        goto out;
    }
    if (r == 0 && !force) {
        if (tid.version != bid.version) {
            r = vimg_error_set(errp, -EINVAL, "Header backup is LUKS%d but "
                               "'%s' holds LUKS%d", bid.version, filename,
                               tid.version);
        } else if (strcmp(tid.uuid, bid.uuid) != 0) {
            r = vimg_error_set(errp, -EINVAL, "Header backup UUID %s does not "
                               "match the volume's UUID %s; use --force to "
                               "restore anyway", bid.uuid, tid.uuid);
        } else if (tid.payload != bid.payload || tid.area != bid.area) {
            r = vimg_error_set(errp, -EINVAL, "Header backup layout (payload "
                               "offset %" PRIu64 ", header area %" PRIu64
                               ") differs from the volume's (%" PRIu64 ", %"
                               PRIu64 ")", bid.payload, bid.area, tid.payload,
                               tid.area);
        }
        if (r < 0) {
            goto out;
        }
    }
    if (r == 0 && tid.payload != bid.payload) {
        /* Even forced: the data would be decrypted at the wrong place. */
        r = vimg_error_set(errp, -EINVAL, "Header backup payload offset %"
                           PRIu64 " differs from the volume's %" PRIu64,
                           bid.payload, tid.payload);
        goto out;
    }

    /* 3. One write at offset 0, flushed; then read back as a check. */
    r = full_pwrite(tsrc.fd, buf, bsize, 0);
    if (r == 0) {
        r = file_flush(tsrc.fd);
    }
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not write '%s': %s", filename,
                           strerror(-r));
        goto out;
    }
    r = identify(&tsrc, &tid, errp);
    if (r == 0 && strcmp(tid.uuid, bid.uuid) != 0) {
        r = vimg_error_set(errp, -EIO, "'%s' does not read back the restored "
                           "header", filename);
    }
out:
    vimg_error_free(err);
    if (tsrc.fd >= 0) {
        close(tsrc.fd);
    }
    free(buf);
    return r;
}
