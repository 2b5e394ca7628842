/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw "luks" format: a plain LUKS1 volume in a file, as qemu 7.2's luks
 * block driver reads and writes it (qemu-facts.md section 4), and (a vimg
 * extension) a LUKS2 volume as cryptsetup 2.6 makes it.
 *
 * Layout: the LUKS1 header at file offset 0, key material, then the payload
 * at the header's payload offset.  Virtual size = file size - payload
 * offset; the IV sector of a payload sector is its virtual offset / 512
 * (sector 0 is the first payload sector, like dm-crypt with iv_offset 0).
 *
 * All header work is done by lib/blockcrypt/luks1.c or luks2.c (chosen by
 * the header's version field) through I/O callbacks that map header
 * offsets 1:1 to file offsets.  LUKS2 volumes may use 4096-byte encryption
 * sectors; the image's request alignment is then the sector size and
 * image.c does read-modify-write for partial sectors.  This file only adds the
 * data path: reads decrypt in place in the caller's buffer; writes (and
 * "zero", which must write ciphertext of zeroes because a never-written
 * LUKS sector decrypts to garbage) go through a bounce buffer so the
 * caller's data is never modified.  Large requests are processed in
 * LUKS_CHUNK pieces so the buffer being en/decrypted stays cache-resident.
 *
 * A handle is meant to be used by one thread at a time (the bounce buffer
 * is per handle); vimg_copy uses one thread per image.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blockcrypt/luks1.h"
#include "blockcrypt/luks2.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "reencrypt.h"
#include "safemem.h"
#include "secret/secret.h"

#define LUKS_SECTOR 512
#define LUKS_CHUNK (1024 * 1024)

struct luks_state {
    int version;                /* 1 or 2: which of luks / luks2 is set */
    struct luks1 *luks;
    struct luks2 *luks2;
    uint64_t payload;           /* payload offset in bytes */
    uint8_t *bounce;            /* LUKS_CHUNK bytes, allocated on demand */
    int hdr_fd;                 /* detached header file, or -1 */
    char *hdr_name;             /* its name (NULL if not detached) */
    struct reenc *reenc;        /* unfinished re-encryption (LUKS1), or NULL */
    bool stale;                 /* re-encrypted by this handle: reopen */
};

/* ---- header I/O callbacks: header offsets are file offsets ------------- */

/* The callbacks of struct luks1_io and struct luks2_io have one shape. */
struct luks_io {
    void *opaque;
    int (*read)(void *opaque, uint64_t off, void *buf, size_t len,
                struct vimg_error **errp);
    int (*write)(void *opaque, uint64_t off, const void *buf, size_t len,
                 struct vimg_error **errp);
    bool detached;
};

static int
luks_io_read(void *opaque, uint64_t off, void *buf, size_t len,
             struct vimg_error **errp)
{
    int fd = *(int *)opaque;
    /* Past EOF reads as zeroes, so a short file fails the header checks
     * ("Volume is not in LUKS format") rather than with a bare EIO. */
    int r = full_pread_zero(fd, buf, len, off);

    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Could not read LUKS header at offset %" PRIu64
                              ": %s", off, strerror(-r));
    }
    return 0;
}

static int
luks_io_write(void *opaque, uint64_t off, const void *buf, size_t len,
              struct vimg_error **errp)
{
    int fd = *(int *)opaque;
    int r = full_pwrite(fd, buf, len, off);

    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Could not write LUKS header at offset %" PRIu64
                              ": %s", off, strerror(-r));
    }
    return 0;
}

static int
luks_probe(const uint8_t *buf, size_t len, const char *filename)
{
    int version = luks1_probe(buf, len);

    return version == 1 || version == 2 ? 100 : 0;
}

/* Fetch the passphrase named by secret @id (safe memory, NUL-terminated). */
static int
get_password(struct vimg_secrets *secrets, const char *id, char **pw,
             size_t *pwlen, struct vimg_error **errp)
{
    if (!secrets) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'", id);
    }
    return secret_get_password(secrets, id, pw, pwlen, errp);
}

static void
luks_close(struct vimg_image *img)
{
    struct luks_state *s = img->priv;

    if (s) {
        luks1_free(s->luks);
        luks2_free(s->luks2);
        reenc_free(s->reenc);
        free(s->bounce);
        if (s->hdr_fd >= 0) {
            close(s->hdr_fd);
        }
        free(s->hdr_name);
        free(s);
        img->priv = NULL;
    }
}

/*
 * Whether bytes 8..15 of a LUKS header (@head, 16 bytes) hold a header
 * size the LUKS2 specification allows (16 KiB .. 4 MiB, a power of two).
 */
static bool
luks2_hdr_size_plausible(const uint8_t *head)
{
    uint64_t sz = ld_be64(head + 8);

    return sz >= 16384 && sz <= 4194304 && (sz & (sz - 1)) == 0;
}

/*
 * Load the header, LUKS1 or LUKS2 by its version field.  A file without
 * the LUKS magic may still be a LUKS2 volume with a damaged primary header
 * and a good secondary one, so LUKS2 is tried quietly first; if that
 * fails too, LUKS1's "Volume is not in LUKS format" is the answer.  A
 * version-2 header whose header size no LUKS2 header can have is refused
 * with qemu's "LUKS version 2 is not supported" (LUKS1 hostile headers).
 */
static int
luks_load(const struct luks_io *io, struct luks_state *s,
          struct vimg_error **errp)
{
    struct luks1_io io1 = {
        .opaque = io->opaque, .read = io->read, .write = io->write,
        .detached = io->detached,
    };
    struct luks2_io io2 = {
        .opaque = io->opaque, .read = io->read, .write = io->write,
        .detached = io->detached,
    };
    uint8_t head[16];
    int version, r;

    r = io->read(io->opaque, 0, head, sizeof(head), errp);
    if (r < 0) {
        return r;
    }
    version = luks1_probe(head, sizeof(head));
    if (version == 0) {
        struct vimg_error *quiet = NULL;

        r = luks2_load(&io2, &s->luks2, &quiet);
        vimg_error_free(quiet);
        if (r == 0) {
            version = 2;
        } else if (r == -ENOMEM) {
            return vimg_error_set(errp, r, "Out of memory");
        }
    } else if (version == 2) {
        struct vimg_error *err2 = NULL;

        r = luks2_load(&io2, &s->luks2, &err2);
        if (r < 0 && !luks2_hdr_size_plausible(head)) {
            /* Not a LUKS2 binary header at all (a LUKS1 header with a
             * changed version word, say): qemu's refusal. */
            vimg_error_free(err2);
            return vimg_error_set(errp, -EINVAL,
                                  "LUKS version 2 is not supported (no "
                                  "LUKS2 header: invalid header size %"
                                  PRIu64 ")", ld_be64(head + 8));
        }
        if (r < 0) {
            r = vimg_error_set(errp, r, "%s", vimg_error_message(err2));
            vimg_error_free(err2);
            return r;
        }
    }
    if (version == 2) {
        s->version = 2;
        s->payload = luks2_payload_offset(s->luks2);
        return 0;
    }
    r = luks1_load(&io1, &s->luks, errp);
    if (r < 0) {
        return r;
    }
    s->version = 1;
    s->payload = luks1_payload_offset(s->luks);
    return 0;
}

/*
 * The detached header file named by the open options, qemu 9's spelling
 * "header.file.filename" (header is a block node there) or the shorter
 * "header.filename" / "header"; NULL if none.  All are taken.
 */
static const char *
take_header_name(struct vimg_opts *opts)
{
    static const char *const keys[] = {
        "header.file.filename", "header.filename", "header",
    };
    const char *name = NULL, *v;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(keys); i++) {
        v = vimg_opts_take(opts, keys[i]);
        name = name ? name : v;
    }
    v = vimg_opts_take(opts, "header.driver");
    (void)v;
    v = vimg_opts_take(opts, "header.file.driver");
    (void)v;
    return name;
}

static int
luks_open(struct vimg_image *img, struct vimg_opts *opts,
          struct vimg_secrets *secrets, struct vimg_error **errp)
{
    const char *key_id = vimg_opts_take(opts, "key-secret");
    const char *hdr_name = take_header_name(opts);
    bool no_io = img->flags & VIMG_OPEN_NO_IO;
    struct luks_io io = {
        .opaque = &img->fd,
        .read = luks_io_read,
        .write = (img->flags & VIMG_OPEN_RDWR) ? luks_io_write : NULL,
    };
    struct luks_state *s;
    char *pw = NULL;
    size_t pwlen = 0;
    off_t end;
    int r;

    /* qemu checks for the key before it reads the header. */
    if (!no_io) {
        if (!key_id) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'key-secret' is required for "
                                  "cipher");
        }
        r = get_password(secrets, key_id, &pw, &pwlen, errp);
        if (r < 0) {
            return r;
        }
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        safe_free(pw);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    s->hdr_fd = -1;
    img->priv = s;
    if (hdr_name) {
        s->hdr_name = strdup(hdr_name);
        s->hdr_fd = open(hdr_name, ((img->flags & VIMG_OPEN_RDWR) ? O_RDWR
                                                                 : O_RDONLY) |
                         O_CLOEXEC);
        if (!s->hdr_name || s->hdr_fd < 0) {
            r = vimg_error_set(errp, s->hdr_name ? -errno : -ENOMEM,
                               "Could not open LUKS header '%s': %s",
                               hdr_name, strerror(s->hdr_name ? errno
                                                              : ENOMEM));
            goto fail;
        }
        io.opaque = &s->hdr_fd;
        io.detached = true;
    }
    /* An unfinished `vimg reencrypt`: reads follow its journal. */
    if (!no_io) {
        r = reenc_open(img->filename, pw, pwlen, &s->reenc, errp);
        if (r < 0) {
            goto fail;
        }
    }
    if (reenc_finishing(s->reenc)) {
        /* The image's header may be half replaced: use the journal's. */
        struct luks_io jio;
        struct luks1_io j1;

        reenc_header_io(s->reenc, &j1);
        jio.opaque = j1.opaque;
        jio.read = j1.read;
        jio.write = NULL;
        jio.detached = false;
        r = luks_load(&jio, s, errp);
    } else {
        r = luks_load(&io, s, errp);
    }
    if (r < 0) {
        goto fail;
    }
    if (s->reenc && s->version != 1) {
        r = vimg_error_set(errp, -EINVAL, "Re-encryption journal of '%s' "
                           "does not belong to a LUKS1 image", img->filename);
        goto fail;
    }
    /* qemu unlocks (and sets up the cipher) before it sizes the payload. */
    if (!no_io) {
        r = s->version == 2 ? luks2_unlock(s->luks2, pw, pwlen, errp)
                            : luks1_unlock(s->luks, pw, pwlen, errp);
        if (r < 0) {
            goto fail;
        }
    }
    end = lseek(img->fd, 0, SEEK_END);
    if (end >= 0 && (uint64_t)end < s->payload && s->version == 2) {
        r = vimg_error_set(errp, -EINVAL, "LUKS2 data segment offset %"
                           PRIu64 " is beyond the end of the file (%" PRId64
                           " bytes)", s->payload, (int64_t)end);
        goto fail;
    }
    if (end < 0 || (uint64_t)end < s->payload) {
        /* qemu's words for LUKS1 (it has no LUKS2). */
        r = vimg_error_set(errp, -EIO, "Could not refresh total sector "
                           "count: Input/output error");
        goto fail;
    }
    safe_free(pw);
    if (s->version == 2) {
        uint64_t fixed = luks2_payload_size(s->luks2, 0);
        uint64_t avail = luks2_payload_size(s->luks2, (uint64_t)end);

        /* A fixed-size segment longer than the file is cut to the file:
         * reads past the end would fail. */
        img->size = fixed ? MIN(fixed, avail) : avail;
        img->alignment = luks2_sector_size(s->luks2);
    } else {
        /* Whole sectors only: the data path works on 512-byte units. */
        img->size = ((uint64_t)end - s->payload) / LUKS_SECTOR * LUKS_SECTOR;
        img->alignment = LUKS_SECTOR;
    }
    img->encrypted = true;
    return 0;

fail:
    safe_free(pw);
    luks_close(img);
    return r;
}

/* Encrypt @n bytes at virtual @off from @in into @out (LUKS1 or LUKS2). */
static int
luks_encrypt_from(struct luks_state *s, uint64_t off, void *out,
                  const void *in, size_t n)
{
    uint64_t sector = off / LUKS_SECTOR;

    if (s->version == 2) {
        return luks2_encrypt_from(s->luks2, sector, out, in, n);
    }
    return luks1_encrypt_from(s->luks, sector, out, in, n);
}

/* En/decrypt @n bytes at virtual @off in place (LUKS1 or LUKS2). */
static int
luks_crypt(struct luks_state *s, bool enc, uint64_t off, void *buf, size_t n)
{
    uint64_t sector = off / LUKS_SECTOR;

    if (s->version == 2) {
        return enc ? luks2_encrypt(s->luks2, sector, buf, n)
                   : luks2_decrypt(s->luks2, sector, buf, n);
    }
    return enc ? luks1_encrypt(s->luks, sector, buf, n)
               : luks1_decrypt(s->luks, sector, buf, n);
}

static int
crypt_error(struct vimg_error **errp, int r, const char *what, uint64_t off)
{
    return vimg_error_set(errp, r, "Could not %s data at offset %" PRIu64
                          ": %s", what, off, strerror(-r));
}

/* The handle re-encrypted its image: its key is the old one. */
static int
luks_stale_error(struct vimg_image *img, struct vimg_error **errp)
{
    return vimg_error_set(errp, -ESTALE, "'%s' was re-encrypted; reopen it",
                          img->filename);
}

/* Refuse changes while re-encryption is unfinished or done by this handle. */
static int
luks_check_writable(struct vimg_image *img, struct vimg_error **errp)
{
    struct luks_state *s = img->priv;

    if (s->stale) {
        return luks_stale_error(img, errp);
    }
    if (s->reenc) {
        return reenc_busy_error(img->filename, errp);
    }
    return 0;
}

static int
luks_pread(struct vimg_image *img, void *buf, size_t len, uint64_t off,
           struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    uint8_t *p = buf;
    int r;

    while (len > 0) {
        size_t n = MIN(len, (size_t)LUKS_CHUNK);

        r = full_pread(img->fd, p, n, s->payload + off);
        if (r < 0) {
            return vimg_error_set(errp, r,
                                  "Read failed at offset %" PRIu64 ": %s",
                                  off, strerror(-r));
        }
        if (s->stale) {
            return luks_stale_error(img, errp);
        }
        r = s->reenc ? reenc_decrypt(s->reenc, s->luks, s->payload,
                                     s->payload + off, p, n)
                     : luks_crypt(s, false, off, p, n);
        if (r < 0) {
            return crypt_error(errp, r, "decrypt", off);
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int
get_bounce(struct luks_state *s, struct vimg_error **errp)
{
    if (!s->bounce) {
        s->bounce = malloc(LUKS_CHUNK);
        if (!s->bounce) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
    }
    return 0;
}

/*
 * Encrypt and write @len bytes at virtual @off; @src NULL means zeroes.
 * The caller's buffer is copied first and never modified.
 */
static int
encrypt_write(struct vimg_image *img, const uint8_t *src, uint64_t len,
              uint64_t off, struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    int r;

    r = luks_check_writable(img, errp);
    if (r < 0) {
        return r;
    }
    r = get_bounce(s, errp);
    if (r < 0) {
        return r;
    }
    while (len > 0) {
        size_t n = (size_t)MIN(len, (uint64_t)LUKS_CHUNK);

        if (src) {
            r = luks_encrypt_from(s, off, s->bounce, src, n);
            src += n;
        } else {
            memset(s->bounce, 0, n);
            r = luks_crypt(s, true, off, s->bounce, n);
        }
        if (r < 0) {
            return crypt_error(errp, r, "encrypt", off);
        }
        r = full_pwrite(img->fd, s->bounce, n, s->payload + off);
        if (r < 0) {
            return vimg_error_set(errp, r,
                                  "Write failed at offset %" PRIu64 ": %s",
                                  off, strerror(-r));
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int
luks_pwrite(struct vimg_image *img, const void *buf, size_t len, uint64_t off,
            struct vimg_error **errp)
{
    return encrypt_write(img, buf, len, off, errp);
}

static int
luks_zero(struct vimg_image *img, uint64_t off, uint64_t len, unsigned flags,
          struct vimg_error **errp)
{
    /* Ciphertext of zeroes: a hole in the file would decrypt to garbage. */
    return encrypt_write(img, NULL, len, off, errp);
}

static int
luks_discard(struct vimg_image *img, uint64_t off, uint64_t len,
             struct vimg_error **errp)
{
    return 0;                   /* a hint; nothing useful to do */
}

static int
luks_flush(struct vimg_image *img, struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    int r;

    if (s && s->hdr_fd >= 0) {
        r = file_flush(s->hdr_fd);
        if (r < 0) {
            return vimg_error_set(errp, r, "Could not flush '%s': %s",
                                  s->hdr_name, strerror(-r));
        }
    }
    r = file_flush(img->fd);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not flush '%s': %s",
                              img->filename, strerror(-r));
    }
    return 0;
}

static int
luks_truncate(struct vimg_image *img, uint64_t size, bool shrink,
              struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    uint64_t total;
    int r;

    r = luks_check_writable(img, errp);
    if (r < 0) {
        return r;
    }
    /* A LUKS2 segment with a fixed size does not follow the file. */
    if (s->version == 2 && luks2_payload_size(s->luks2, 0) != 0) {
        return vimg_error_set(errp, -ENOTSUP, "Cannot resize a LUKS2 volume "
                              "whose data segment has a fixed size");
    }
    if (ADD_OVERFLOW(s->payload, size, &total) || total > INT64_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    r = file_truncate(img->fd, total);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not resize file: %s",
                              strerror(-r));
    }
    img->size = size;
    return 0;
}

static int
luks_block_status(struct vimg_image *img, uint64_t off, uint64_t len,
                  uint64_t *pnum, unsigned *status, uint64_t *host_offset,
                  struct vimg_error **errp)
{
    /* Every sector holds (possibly garbage) ciphertext; no offsets, like
     * qemu's map for luks. */
    *pnum = len;
    *status = VIMG_BLOCK_DATA;
    return 0;
}

static int
luks_info(struct vimg_image *img, struct json_object *info,
          struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    struct json_object *spec, *data;
    int r;

    data = json_object_new_object();
    if (!data) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = s->version == 2 ? luks2_info(s->luks2, data, errp)
                        : luks1_info(s->luks, data, errp);
    if (r < 0) {
        json_object_put(data);
        return r;
    }
    if (s->hdr_name) {
        json_object_object_add(data, "detached-header",
                               json_object_new_string(s->hdr_name));
    }
    spec = json_object_new_object();
    if (!spec) {
        json_object_put(data);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    json_object_object_add(spec, "type", json_object_new_string("luks"));
    json_object_object_add(spec, "data", data);
    json_object_object_add(info, "format-specific", spec);
    return 0;
}

/* Take an algorithm option and map it with @parse (qemu's error text). */
static int
take_alg(struct vimg_opts *opts, const char *key, int (*parse)(const char *),
         int *out, bool *given, struct vimg_error **errp)
{
    const char *v = vimg_opts_take(opts, key);
    int a;

    if (!v) {
        return 0;
    }
    a = parse(v);
    if (a < 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter '%s' does not accept value '%s'",
                              key, v);
    }
    *out = a;
    if (given) {
        *given = true;
    }
    return 0;
}

/*
 * Take "cipher-alg".  "des" and "3des" are names qemu's option parser knows
 * but LUKS cannot use; qemu refuses them only when it sets up the cipher
 * (after the key-secret checks) with "Algorithm 'des' not supported", so
 * they are reported through *@unsupported for the caller to fail later.
 */
static int
take_cipher_alg(struct vimg_opts *opts, int *out, const char **unsupported,
                struct vimg_error **errp)
{
    static const char *const known_unusable[] = { "des", "3des" };
    const char *v = vimg_opts_get(opts, "cipher-alg");
    size_t i;

    *unsupported = NULL;
    for (i = 0; v && i < ARRAY_SIZE(known_unusable); i++) {
        if (strcmp(v, known_unusable[i]) == 0) {
            vimg_opts_take(opts, "cipher-alg");
            *unsupported = known_unusable[i];
            return 0;
        }
    }
    return take_alg(opts, "cipher-alg", crypto_cipher_alg_parse, out, NULL,
                    errp);
}

/* ---- create and measure ---------------------------------------------------- */

/*
 * "encrypt.format" (vimg extension): luks (LUKS1, the default, what qemu
 * makes) or luks2.  Return 1 or 2, or -EINVAL.
 */
static int
take_version(struct vimg_opts *opts, struct vimg_error **errp)
{
    const char *v = vimg_opts_take(opts, "encrypt.format");

    if (!v || strcmp(v, "luks") == 0 || strcmp(v, "luks1") == 0) {
        return 1;
    }
    if (strcmp(v, "luks2") == 0) {
        return 2;
    }
    return vimg_error_set(errp, -EINVAL,
                          "Parameter 'encrypt.format' does not accept value "
                          "'%s'", v);
}

/* The cipher options, in qemu's order, into @p (both LUKS versions). */
static int
take_cipher_opts(struct vimg_opts *opts, struct luks1_create_params *p,
                 const char **bad_alg, struct vimg_error **errp)
{
    int v, r;

    v = (int)p->cipher;
    r = take_cipher_alg(opts, &v, bad_alg, errp);
    if (r < 0) {
        return r;
    }
    p->cipher = (enum crypto_cipher_alg)v;
    v = (int)p->mode;
    r = take_alg(opts, "cipher-mode", crypto_cipher_mode_parse, &v, NULL,
                 errp);
    if (r < 0) {
        return r;
    }
    p->mode = (enum crypto_cipher_mode)v;
    v = (int)p->ivgen;
    r = take_alg(opts, "ivgen-alg", crypto_ivgen_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p->ivgen = (enum crypto_ivgen_alg)v;
    v = (int)p->ivgen_hash;
    r = take_alg(opts, "ivgen-hash-alg", crypto_hash_alg_parse, &v,
                 &p->ivgen_hash_set, errp);
    if (r < 0) {
        return r;
    }
    p->ivgen_hash = (enum crypto_hash_alg)v;
    v = (int)p->hash;
    r = take_alg(opts, "hash-alg", crypto_hash_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p->hash = (enum crypto_hash_alg)v;
    return 0;
}

/* "iter-time" and vimg's "iter-count" into @p. */
static int
take_iter_opts(struct vimg_opts *opts, struct luks1_create_params *p,
               struct vimg_error **errp)
{
    int64_t iter_time = p->iter_time_ms;
    uint64_t count = 0;
    bool count_given;
    int r;

    r = opts_take_i64(opts, "iter-time", &iter_time, errp);
    if (r < 0) {
        return r;
    }
    p->iter_time_ms = iter_time;
    count_given = vimg_opts_get(opts, "iter-count") != NULL;
    r = opts_take_u64(opts, "iter-count", &count, errp);
    if (r < 0) {
        return r;
    }
    if (count_given) {
        if (count == 0 || count > UINT32_MAX) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'iter-count' expects a number "
                                  "between 1 and 4294967295");
        }
        p->iterations = (uint32_t)count;
    }
    return 0;
}

static const char *const luks2_only_opts[] = {
    "kdf", "memory", "parallel", "sector-size", "label",
};

/* Take a number option in [@min, @max] into @out (kept if absent). */
static int
take_u32_range(struct vimg_opts *opts, const char *key, uint32_t min,
               uint32_t max, uint32_t *out, struct vimg_error **errp)
{
    bool given = vimg_opts_get(opts, key) != NULL;
    uint64_t v = 0;
    int r;

    r = opts_take_u64(opts, key, &v, errp);
    if (r < 0 || !given) {
        return r;
    }
    if (v < min || v > max) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter '%s' expects a number between %"
                              PRIu32 " and %" PRIu32, key, min, max);
    }
    *out = (uint32_t)v;
    return 0;
}

/*
 * LUKS2 settings: the shared ones from @p1, then the LUKS2-only options
 * (refused for LUKS1, which has no place for them).
 */
static int
take_luks2_opts(struct vimg_opts *opts, int version,
                const struct luks1_create_params *p1,
                struct luks2_create_params *p2, struct vimg_error **errp)
{
    const char *v;
    size_t i;
    int r;

    if (version != 2) {
        for (i = 0; i < ARRAY_SIZE(luks2_only_opts); i++) {
            if (vimg_opts_get(opts, luks2_only_opts[i])) {
                return vimg_error_set(errp, -EINVAL,
                                      "Parameter '%s' is only supported with "
                                      "encrypt.format=luks2",
                                      luks2_only_opts[i]);
            }
        }
        return 0;
    }
    luks2_create_params_default(p2);
    p2->cipher = p1->cipher;
    p2->mode = p1->mode;
    p2->ivgen = p1->ivgen;
    p2->ivgen_hash = p1->ivgen_hash;
    p2->hash = p1->hash;
    p2->iter_time_ms = p1->iter_time_ms;
    p2->iterations = p1->iterations;

    v = vimg_opts_take(opts, "kdf");
    if (v) {
        if (strcmp(v, "pbkdf2") == 0) {
            p2->kdf = LUKS2_KDF_PBKDF2;
        } else if (strcmp(v, "argon2i") == 0) {
            p2->kdf = LUKS2_KDF_ARGON2I;
        } else if (strcmp(v, "argon2id") == 0) {
            p2->kdf = LUKS2_KDF_ARGON2ID;
        } else {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'kdf' does not accept value "
                                  "'%s'", v);
        }
    }
    r = take_u32_range(opts, "memory", 32, 4194304, &p2->memory_kib, errp);
    if (r < 0) {
        return r;
    }
    r = take_u32_range(opts, "parallel", 1, 4, &p2->parallel, errp);
    if (r < 0) {
        return r;
    }
    r = take_u32_range(opts, "sector-size", 512, 4096, &p2->sector_size,
                       errp);
    if (r < 0) {
        return r;
    }
    p2->label = vimg_opts_take(opts, "label");
    return 0;
}

/*
 * All creation settings, in qemu's order for the LUKS1 ones: format
 * version, cipher, iterations, then the LUKS2-only options.
 */
static int
take_create_opts(struct vimg_opts *opts, int *version,
                 struct luks1_create_params *p1,
                 struct luks2_create_params *p2, const char **bad_alg,
                 struct vimg_error **errp)
{
    int r;

    luks1_create_params_default(p1);
    luks2_create_params_default(p2);
    r = take_version(opts, errp);
    if (r < 0) {
        return r;
    }
    *version = r;
    r = take_cipher_opts(opts, p1, bad_alg, errp);
    if (r < 0) {
        return r;
    }
    r = take_iter_opts(opts, p1, errp);
    if (r < 0) {
        return r;
    }
    return take_luks2_opts(opts, *version, p1, p2, errp);
}

/*
 * Header area and file size for a volume of virtual @size: the payload
 * offset, and payload + size (LUKS2: size rounded up to whole encryption
 * sectors, since only whole sectors are addressable).
 */
static int
create_geometry(int version, const struct luks1_create_params *p1,
                const struct luks2_create_params *p2, uint64_t size,
                uint64_t *payload, uint64_t *total, struct vimg_error **errp)
{
    int r;

    if (version == 2) {
        r = luks2_payload_bytes(p2, payload, errp);
        if (r < 0) {
            return r;
        }
        if (size > INT64_MAX) {
            return vimg_error_set(errp, -EFBIG, "Image size too large");
        }
        size = ROUND_UP(size, (uint64_t)p2->sector_size);
    } else {
        r = luks1_payload_bytes(p1, payload, errp);
        if (r < 0) {
            return r;
        }
    }
    if (ADD_OVERFLOW(*payload, size, total) || *total > INT64_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
    }
    return 0;
}

static int
luks_create(int fd, const char *filename, uint64_t size,
            struct vimg_opts *opts, struct vimg_secrets *secrets,
            struct vimg_error **errp)
{
    struct luks1_create_params p;
    struct luks2_create_params p2;
    struct luks1_io io = {
        .opaque = &fd,
        .read = luks_io_read,
        .write = luks_io_write,
    };
    struct luks2_io io2 = {
        .opaque = &fd,
        .read = luks_io_read,
        .write = luks_io_write,
    };
    struct luks1 *l = NULL;
    struct luks2 *l2 = NULL;
    const char *key_id, *prealloc, *bad_alg = NULL, *hdr_path;
    uint64_t payload, total, got;
    bool header_only = false;
    char *pw = NULL;
    size_t pwlen = 0;
    int version, hfd = -1, r;

    /* Options first, in qemu's order, then the key. */
    key_id = vimg_opts_take(opts, "key-secret");
    r = take_create_opts(opts, &version, &p, &p2, &bad_alg, errp);
    if (r < 0) {
        return r;
    }
    /* Detached headers: qemu 9's detached-header=on makes FILE a header
     * only; vimg's header=PATH writes the header to PATH and makes FILE
     * the data file of SIZE bytes (cryptsetup luksFormat --header). */
    hdr_path = vimg_opts_take(opts, "header");
    r = opts_take_bool(opts, "detached-header", &header_only, errp);
    if (r < 0) {
        return r;
    }
    if (hdr_path && header_only) {
        return vimg_error_set(errp, -EINVAL, "'header' and 'detached-header' "
                              "are mutually exclusive");
    }
    if (hdr_path && !*hdr_path) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'header' is empty");
    }
    io.detached = io2.detached = hdr_path || header_only;

    /* preallocation is applied by the raw create below; "metadata" means
     * nothing for a luks file, qemu treats it as "off". */
    prealloc = vimg_opts_get(opts, "preallocation");
    if (prealloc) {
        if (strcmp(prealloc, "metadata") == 0) {
            r = vimg_opts_set(opts, "preallocation", "off");
            if (r < 0) {
                return vimg_error_set(errp, r, "Out of memory");
            }
        } else if (strcmp(prealloc, "off") != 0 &&
                   strcmp(prealloc, "falloc") != 0 &&
                   strcmp(prealloc, "full") != 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "invalid parameter value: %s", prealloc);
        }
    }

    if (!key_id) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'key-secret' is required for cipher");
    }
    r = get_password(secrets, key_id, &pw, &pwlen, errp);
    if (r < 0) {
        return r;
    }
    if (bad_alg) {
        r = vimg_error_set(errp, -ENOTSUP, "Algorithm '%s' not supported",
                           bad_alg);
        goto out;
    }
    r = create_geometry(version, &p, &p2, size, &payload, &total, errp);
    if (r < 0) {
        goto out;
    }

    /* The file: header area + sparse payload (or preallocated); with a
     * detached header the header area alone or the data alone. */
    r = vimg_format_raw.create(fd, filename, header_only ? payload
                               : hdr_path ? total - payload : total, opts,
                               secrets, errp);
    if (r < 0) {
        goto out;
    }
    if (hdr_path) {
        hfd = open(hdr_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (hfd < 0) {
            r = vimg_error_set(errp, -errno, "Could not create LUKS header "
                               "'%s': %s", hdr_path, strerror(errno));
            goto out;
        }
        r = file_truncate(hfd, payload);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not resize '%s': %s", hdr_path,
                               strerror(-r));
            goto out;
        }
        io.opaque = io2.opaque = &hfd;
    }
    if (version == 2) {
        r = luks2_create(&io2, &p2, pw, pwlen, &l2, errp);
        got = r < 0 ? 0 : luks2_payload_offset(l2);
    } else {
        r = luks1_create(&io, &p, pw, pwlen, &l, errp);
        got = r < 0 ? 0 : luks1_payload_offset(l);
    }
    if (r < 0) {
        goto out;
    }
    if (io.detached) {
        payload = 0;
    }
    if (got != payload) {
        r = vimg_error_set(errp, -EIO,
                           "LUKS payload offset %" PRIu64 " differs from the "
                           "expected %" PRIu64, got, payload);
    }
    if (r == 0 && hfd >= 0) {
        r = file_flush(hfd);
        if (r < 0) {
            r = vimg_error_set(errp, r, "Could not flush '%s': %s", hdr_path,
                               strerror(-r));
        }
    }
out:
    if (hfd >= 0) {
        close(hfd);
        if (r < 0) {
            unlink(hdr_path);
        }
    }
    luks1_free(l);
    luks2_free(l2);
    safe_free(pw);
    return r;
}

/*
 * measure: header area (the payload offset) plus the virtual size; only
 * the cipher options (and for LUKS2 the sector size) change the header
 * geometry.  Unlike qemu, which needs key-secret because it instantiates
 * the cipher to calibrate PBKDF, no secret is needed: the layout does not
 * depend on it.
 */
static int
luks_measure(struct vimg_opts *opts, struct vimg_image *src, uint64_t size,
             uint64_t *required, uint64_t *fully_allocated,
             struct vimg_error **errp)
{
    struct luks1_create_params p;
    struct luks2_create_params p2;
    const char *bad_alg = NULL, *hdr_path;
    uint64_t payload, total;
    bool header_only = false;
    int version, r;

    r = take_create_opts(opts, &version, &p, &p2, &bad_alg, errp);
    if (r < 0) {
        return r;
    }
    if (bad_alg) {
        return vimg_error_set(errp, -ENOTSUP, "Algorithm '%s' not supported",
                              bad_alg);
    }
    r = opts_take_bool(opts, "detached-header", &header_only, errp);
    if (r < 0) {
        return r;
    }
    hdr_path = vimg_opts_take(opts, "header");
    r = create_geometry(version, &p, &p2, size, &payload, &total, errp);
    if (r < 0) {
        return r;
    }
    /* Detached: the header-only file, or the data file alone. */
    if (header_only) {
        total = payload;
    } else if (hdr_path) {
        total -= payload;
    }
    *required = total;
    *fully_allocated = total;
    return 0;
}

/* ---- amend: key slots (lib/blockcrypt/luks1-keyslot.c) ------------------- */

static int
luks_amend_flush(void *opaque, struct vimg_error **errp)
{
    return luks_flush(opaque, errp);
}

/*
 * Erase LUKS2 keyslots (state=inactive): by keyslot number, by the old
 * password (every keyslot it opens), or both; qemu's LUKS1 checks and
 * messages, with keyslots 0..31.  The last keyslot(s) of the volume are
 * only erased with --force.  Each erase commits the metadata before
 * wiping the area (luks2_keyslot_erase).
 */
static int
luks2_amend_erase(struct vimg_image *img, const char *old_id, bool slot_given,
                  int64_t slot, struct vimg_secrets *secrets, bool force,
                  struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    bool match[LUKS2_NUM_KEYSLOTS] = { false };
    int n_active = 0, n_match = 0, i, r = 0;
    char *pw = NULL;
    size_t pwlen = 0;

    if (!slot_given && !old_id) {
        return vimg_error_set(errp, -EINVAL,
                              "To erase keyslot(s), either explicit keyslot "
                              "index or the password currently contained in "
                              "them must be given");
    }
    if (old_id) {
        r = get_password(secrets, old_id, &pw, &pwlen, errp);
        if (r < 0) {
            return r;
        }
    }
    for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
        n_active += luks2_keyslot_present(s->luks2, i);
    }
    for (i = 0; i < LUKS2_NUM_KEYSLOTS; i++) {
        if (slot_given && i != slot) {
            continue;
        }
        if (old_id) {
            r = luks2_keyslot_check(s->luks2, i, pw, pwlen, errp);
            if (r < 0) {
                goto out;
            }
            match[i] = r == 1;
        } else {
            match[i] = luks2_keyslot_present(s->luks2, i);
        }
        n_match += match[i];
    }
    if (slot_given && !match[slot]) {
        r = old_id ? vimg_error_set(errp, -EINVAL, "Given keyslot %" PRId64
                                    " doesn't contain the given old password "
                                    "for erase operation", slot)
                   : vimg_error_set(errp, -EINVAL, "Given keyslot %" PRId64
                                    " is already erased (inactive) ", slot);
        goto out;
    }
    if (n_match == 0) {
        r = vimg_error_set(errp, -EINVAL, "No keyslots match given (old) "
                           "password for erase operation");
        goto out;
    }
    if (n_match == n_active && !force) {
        r = slot_given
            ? vimg_error_set(errp, -EINVAL, "Attempt to erase the only active "
                             "keyslot %" PRId64 " which will erase all the "
                             "data in the image irreversibly - refusing "
                             "operation", slot)
            : vimg_error_set(errp, -EINVAL, "All the active keyslots match "
                             "the (old) password that was given and erasing "
                             "them will erase all the data in the image "
                             "irreversibly - refusing operation");
        goto out;
    }
    r = 0;
    for (i = 0; i < LUKS2_NUM_KEYSLOTS && r == 0; i++) {
        if (match[i]) {
            r = luks2_keyslot_erase(s->luks2, i, luks_amend_flush, img, errp);
        }
    }
out:
    safe_free(pw);
    return r;
}

/*
 * Amend on LUKS2: adding a keyslot (state=active, new-secret, optional
 * keyslot / iter-time / iter-count) through luks2_add_key, as a PBKDF2
 * keyslot because those are the only KDF settings amend has; erasing
 * keyslots (state=inactive) by old-secret and/or keyslot.
 */
static int
luks2_amend(struct vimg_image *img, struct vimg_opts *opts,
            struct vimg_secrets *secrets, bool force,
            struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    struct luks2_create_params p;
    struct vimg_error *err = NULL;
    const char *state, *new_id, *old_id;
    int64_t iter_time = 2000, slot = -1;
    uint64_t count = 0;
    bool count_given, slot_given, time_given;
    char *pw = NULL;
    size_t pwlen = 0;
    int r;

    state = vimg_opts_take(opts, "state");
    new_id = vimg_opts_take(opts, "new-secret");
    old_id = vimg_opts_take(opts, "old-secret");
    slot_given = vimg_opts_get(opts, "keyslot") != NULL;
    r = opts_take_i64(opts, "keyslot", &slot, errp);
    if (r < 0) {
        return r;
    }
    time_given = vimg_opts_get(opts, "iter-time") != NULL;
    r = opts_take_i64(opts, "iter-time", &iter_time, errp);
    if (r < 0) {
        return r;
    }
    count_given = vimg_opts_get(opts, "iter-count") != NULL;
    r = opts_take_u64(opts, "iter-count", &count, errp);
    if (r < 0) {
        return r;
    }
    if (!state) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'state' is missing");
    }
    if (slot_given && (slot < 0 || slot >= LUKS2_NUM_KEYSLOTS)) {
        return vimg_error_set(errp, -EINVAL,
                              "Invalid keyslot %" PRId64 " specified, must be "
                              "between 0 and %d", slot,
                              LUKS2_NUM_KEYSLOTS - 1);
    }
    if (strcmp(state, "inactive") == 0) {
        if (new_id) {
            return vimg_error_set(errp, -EINVAL, "'new-secret' must not be "
                                  "given when erasing keyslots");
        }
        if (time_given || count_given) {
            return vimg_error_set(errp, -EINVAL, "'%s' must not be given when "
                                  "erasing keyslots",
                                  time_given ? "iter-time" : "iter-count");
        }
        return luks2_amend_erase(img, old_id, slot_given, slot, secrets, force,
                                 errp);
    }
    if (strcmp(state, "active") != 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'state' does not accept value '%s'",
                              state);
    }
    if (!new_id) {
        return vimg_error_set(errp, -EINVAL,
                              "'new-secret' is required to activate a keyslot");
    }
    if (old_id) {
        return vimg_error_set(errp, -EINVAL,
                              "'old-secret' must not be given when activating "
                              "keyslots");
    }
    if (count_given && (count == 0 || count > UINT32_MAX)) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'iter-count' expects a number "
                              "between 1 and 4294967295");
    }
    luks2_create_params_default(&p);
    p.kdf = LUKS2_KDF_PBKDF2;
    p.iter_time_ms = iter_time;
    p.iterations = (uint32_t)count;
    r = get_password(secrets, new_id, &pw, &pwlen, errp);
    if (r < 0) {
        return r;
    }
    r = luks2_add_key(s->luks2, (int)slot, &p, pw, pwlen, &err);
    safe_free(pw);
    if (r == -EEXIST) {
        /* luks2_add_key never overwrites; say so even with --force. */
        vimg_error_free(err);
        return vimg_error_set(errp, -EINVAL,
                              "Refusing to overwrite active keyslot %" PRId64
                              "%s", slot, force ? " (not supported for LUKS2)"
                                                : " - please erase it first");
    }
    if (r < 0) {
        r = vimg_error_set(errp, r, "%s", err ? vimg_error_message(err)
                                              : "Failed to add a keyslot");
        vimg_error_free(err);
        return r;
    }
    return luks_flush(img, errp);
}

static int
luks_amend(struct vimg_image *img, struct vimg_opts *opts,
           struct vimg_secrets *secrets, bool force, struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    struct luks1_sync sync = { .opaque = img, .flush = luks_amend_flush };
    int r;

    r = luks1_amend_check_opts(opts, "", vimg_format_luks.create_opts, NULL,
                               errp);
    if (r == 0) {
        r = luks_check_writable(img, errp);
    }
    if (r < 0) {
        return r;
    }
    if (s->version == 2) {
        return luks2_amend(img, opts, secrets, force, errp);
    }
    return luks1_amend(s->luks, opts, "", secrets, force, &sync, errp);
}

/* ---- reencrypt: master-key rotation (reencrypt.c) ------------------------- */

/*
 * Rotate the master key of a LUKS1 volume in place.  The new header keeps
 * the algorithms unless -o names others (they must fit in the same header
 * area) and has one key slot (slot 0) with the passphrase the image was
 * opened with; other active slots are dropped, so they need @force.
 * Resuming an unfinished run ignores the options: the journal has the
 * header.
 */
static int
luks_reencrypt(struct vimg_image *img, struct vimg_opts *opts,
               struct vimg_secrets *secrets, bool force,
               vimg_progress_fn progress, void *opaque,
               struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    struct luks1_create_params p;
    struct reenc_target t = {0};
    struct reenc_extent ext;
    const char *key_id, *bad_alg = NULL;
    char *pw = NULL;
    size_t pwlen = 0;
    int r;

    if (s->stale) {
        return luks_stale_error(img, errp);
    }
    if (s->version != 1) {
        return vimg_error_set(errp, -ENOTSUP, "Re-encrypting LUKS2 volumes "
                              "is not supported (cryptsetup reencrypt can)");
    }
    if (s->hdr_fd >= 0) {
        /* The journal and the final header copy assume the header sits at
         * the start of the image file. */
        return vimg_error_set(errp, -ENOTSUP, "Re-encrypting a volume with a "
                              "detached header is not supported");
    }
    key_id = vimg_opts_take(opts, "key-secret");
    luks1_params_from(s->luks, &p);
    r = take_cipher_opts(opts, &p, &bad_alg, errp);
    if (r == 0) {
        r = take_iter_opts(opts, &p, errp);
    }
    if (r == 0) {
        r = vimg_opts_check_unused(opts, errp);
    }
    if (r < 0) {
        return r;
    }
    if (bad_alg) {
        return vimg_error_set(errp, -ENOTSUP, "Algorithm '%s' not supported",
                              bad_alg);
    }
    if (!key_id) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'key-secret' is "
                              "required for cipher");
    }
    r = reenc_check_slots(s->reenc, img->filename, s->luks, force, errp);
    if (r < 0) {
        return r;
    }
    r = get_password(secrets, key_id, &pw, &pwlen, errp);
    if (r < 0) {
        return r;
    }
    t.fd = img->fd;
    t.filename = img->filename;
    t.hdr_off = 0;
    t.hdr_len = s->payload;
    t.iv_base = s->payload;
    t.old = s->luks;
    ext.off = s->payload;
    ext.len = img->size;
    r = reenc_run(&t, &s->reenc, &ext, img->size ? 1 : 0, &p, pw, pwlen,
                  progress, opaque, errp);
    safe_free(pw);
    if (r == 0) {
        s->stale = true;
    }
    return r;
}

/* qemu-img create -f luks -o help FILE, in creation-description order
 * (the order of qemu's "Formatting ..." line), plus vimg's iter-count and
 * the LUKS2 options (encrypt.format=luks2 and its settings). */
static const struct vimg_opt_desc luks_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "key-secret", VIMG_OPT_STRING,
      "ID of the secret that provides the keyslot passphrase", NULL },
    { "cipher-alg", VIMG_OPT_STRING, "Name of encryption cipher algorithm",
      NULL },
    { "cipher-mode", VIMG_OPT_STRING, "Name of encryption cipher mode", NULL },
    { "ivgen-alg", VIMG_OPT_STRING, "Name of IV generator algorithm", NULL },
    { "ivgen-hash-alg", VIMG_OPT_STRING, "Name of IV generator hash algorithm",
      NULL },
    { "hash-alg", VIMG_OPT_STRING, "Name of encryption hash algorithm", NULL },
    { "iter-time", VIMG_OPT_NUMBER, "Time to spend in PBKDF in milliseconds",
      NULL },
    { "iter-count", VIMG_OPT_NUMBER,
      "PBKDF iterations of the key slot (overrides iter-time; vimg only)",
      NULL },
    { "encrypt.format", VIMG_OPT_STRING,
      "Volume format: luks (LUKS1, default) or luks2 (vimg only)", NULL },
    { "kdf", VIMG_OPT_STRING,
      "LUKS2 keyslot PBKDF: argon2id (default), argon2i or pbkdf2 (vimg only)",
      NULL },
    { "memory", VIMG_OPT_NUMBER,
      "LUKS2 argon2 memory cost in KiB (vimg only)", NULL },
    { "parallel", VIMG_OPT_NUMBER,
      "LUKS2 argon2 parallel threads, 1 to 4 (vimg only)", NULL },
    { "sector-size", VIMG_OPT_NUMBER,
      "LUKS2 encryption sector size: 512, 1024, 2048 or 4096 (vimg only)",
      NULL },
    { "label", VIMG_OPT_STRING, "LUKS2 header label (vimg only)", NULL },
    { "detached-header", VIMG_OPT_BOOL,
      "Create a detached LUKS header only, payload offset 0 (as qemu 9)",
      NULL },
    { "header", VIMG_OPT_STRING,
      "Write the LUKS header to this file, FILE holds the data (vimg only)",
      NULL },
    { "nocow", VIMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)",
      NULL },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)", NULL },
    { "extent_size_hint", VIMG_OPT_SIZE,
      "Extent size hint for the image file, 0 to disable", NULL },
    { NULL, 0, NULL, NULL },
};

const struct vimg_format_ops vimg_format_luks = {
    .name = "luks",
    .probe = luks_probe,
    .open = luks_open,
    .close = luks_close,
    .create = luks_create,
    .create_opts = luks_create_opts,
    .pread = luks_pread,
    .pwrite = luks_pwrite,
    .zero = luks_zero,
    .discard = luks_discard,
    .flush = luks_flush,
    .truncate = luks_truncate,
    .block_status = luks_block_status,
    .info = luks_info,
    .measure = luks_measure,
    .amend = luks_amend,
    .reencrypt = luks_reencrypt,
};
