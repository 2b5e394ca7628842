/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw "luks" format: a plain LUKS1 volume in a file, as qemu 7.2's luks
 * block driver reads and writes it (qemu-facts.md section 4).
 *
 * Layout: the LUKS1 header at file offset 0, key material, then the payload
 * at the header's payload offset.  Virtual size = file size - payload
 * offset; the IV sector of a payload sector is its virtual offset / 512
 * (sector 0 is the first payload sector, like dm-crypt with iv_offset 0).
 *
 * All header work is done by lib/blockcrypt/luks1.c through I/O callbacks
 * that map header offsets 1:1 to file offsets.  This file only adds the
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

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blockcrypt/luks1.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"

#define LUKS_SECTOR 512
#define LUKS_CHUNK (1024 * 1024)

struct luks_state {
    struct luks1 *luks;
    uint64_t payload;           /* payload offset in bytes */
    uint8_t *bounce;            /* LUKS_CHUNK bytes, allocated on demand */
};

/* ---- header I/O callbacks: header offsets are file offsets ------------- */

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
    if (len >= 8 && memcmp(buf, "LUKS\xba\xbe", 6) == 0 &&
        ld_be16(buf + 6) == 1) {
        return 100;
    }
    return 0;
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
        free(s->bounce);
        free(s);
        img->priv = NULL;
    }
}

static int
luks_open(struct vimg_image *img, struct vimg_opts *opts,
          struct vimg_secrets *secrets, struct vimg_error **errp)
{
    const char *key_id = vimg_opts_take(opts, "key-secret");
    bool no_io = img->flags & VIMG_OPEN_NO_IO;
    struct luks1_io io = {
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
    img->priv = s;
    r = luks1_load(&io, &s->luks, errp);
    if (r < 0) {
        goto fail;
    }
    s->payload = luks1_payload_offset(s->luks);
    /* qemu unlocks (and sets up the cipher) before it sizes the payload. */
    if (!no_io) {
        r = luks1_unlock(s->luks, pw, pwlen, errp);
        if (r < 0) {
            goto fail;
        }
    }
    end = lseek(img->fd, 0, SEEK_END);
    if (end < 0 || (uint64_t)end < s->payload) {
        r = vimg_error_set(errp, -EIO, "Could not refresh total sector "
                           "count: Input/output error");
        goto fail;
    }
    safe_free(pw);
    /* Whole sectors only: the data path works on 512-byte units. */
    img->size = ((uint64_t)end - s->payload) / LUKS_SECTOR * LUKS_SECTOR;
    img->encrypted = true;
    img->alignment = LUKS_SECTOR;
    return 0;

fail:
    safe_free(pw);
    luks_close(img);
    return r;
}

static int
crypt_error(struct vimg_error **errp, int r, const char *what, uint64_t off)
{
    return vimg_error_set(errp, r, "Could not %s data at offset %" PRIu64
                          ": %s", what, off, strerror(-r));
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
        r = luks1_decrypt(s->luks, off / LUKS_SECTOR, p, n);
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

    r = get_bounce(s, errp);
    if (r < 0) {
        return r;
    }
    while (len > 0) {
        size_t n = (size_t)MIN(len, (uint64_t)LUKS_CHUNK);

        if (src) {
            memcpy(s->bounce, src, n);
            src += n;
        } else {
            memset(s->bounce, 0, n);
        }
        r = luks1_encrypt(s->luks, off / LUKS_SECTOR, s->bounce, n);
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
    int r = file_flush(img->fd);

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
    r = luks1_info(s->luks, data, errp);
    if (r < 0) {
        json_object_put(data);
        return r;
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

static int
luks_create(int fd, const char *filename, uint64_t size,
            struct vimg_opts *opts, struct vimg_secrets *secrets,
            struct vimg_error **errp)
{
    struct luks1_create_params p;
    struct luks1_io io = {
        .opaque = &fd,
        .read = luks_io_read,
        .write = luks_io_write,
    };
    struct luks1 *l = NULL;
    const char *key_id, *prealloc, *bad_alg;
    uint64_t payload, total, count = 0;
    int64_t iter_time;
    bool count_given = false;
    char *pw = NULL;
    size_t pwlen = 0;
    int v, r;

    luks1_create_params_default(&p);

    /* Options first, in qemu's order, then the key. */
    key_id = vimg_opts_take(opts, "key-secret");
    v = (int)p.cipher;
    r = take_cipher_alg(opts, &v, &bad_alg, errp);
    if (r < 0) {
        return r;
    }
    p.cipher = (enum crypto_cipher_alg)v;
    v = (int)p.mode;
    r = take_alg(opts, "cipher-mode", crypto_cipher_mode_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.mode = (enum crypto_cipher_mode)v;
    v = (int)p.ivgen;
    r = take_alg(opts, "ivgen-alg", crypto_ivgen_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.ivgen = (enum crypto_ivgen_alg)v;
    v = (int)p.ivgen_hash;
    r = take_alg(opts, "ivgen-hash-alg", crypto_hash_alg_parse, &v,
                 &p.ivgen_hash_set, errp);
    if (r < 0) {
        return r;
    }
    p.ivgen_hash = (enum crypto_hash_alg)v;
    v = (int)p.hash;
    r = take_alg(opts, "hash-alg", crypto_hash_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.hash = (enum crypto_hash_alg)v;

    iter_time = p.iter_time_ms;
    r = opts_take_i64(opts, "iter-time", &iter_time, errp);
    if (r < 0) {
        return r;
    }
    p.iter_time_ms = iter_time;
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
        p.iterations = (uint32_t)count;
    }

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
    r = luks1_payload_bytes(&p, &payload, errp);
    if (r < 0) {
        goto out;
    }
    if (ADD_OVERFLOW(payload, size, &total) || total > INT64_MAX) {
        r = vimg_error_set(errp, -EFBIG, "Image size too large");
        goto out;
    }

    /* The file: header area + sparse payload (or preallocated). */
    r = vimg_format_raw.create(fd, filename, total, opts, secrets, errp);
    if (r < 0) {
        goto out;
    }
    r = luks1_create(&io, &p, pw, pwlen, &l, errp);
    if (r < 0) {
        goto out;
    }
    if (luks1_payload_offset(l) != payload) {
        r = vimg_error_set(errp, -EIO,
                           "LUKS payload offset %" PRIu64 " differs from the "
                           "expected %" PRIu64, luks1_payload_offset(l),
                           payload);
    }
out:
    luks1_free(l);
    safe_free(pw);
    return r;
}

/*
 * measure: header area (the payload offset) plus the virtual size; only
 * the cipher options change the header geometry.  Unlike qemu, which
 * needs key-secret because it instantiates the cipher to calibrate PBKDF,
 * no secret is needed: the layout does not depend on it.
 */
static int
luks_measure(struct vimg_opts *opts, struct vimg_image *src, uint64_t size,
             uint64_t *required, uint64_t *fully_allocated,
             struct vimg_error **errp)
{
    struct luks1_create_params p;
    const char *bad_alg;
    uint64_t payload, total;
    int v, r;

    luks1_create_params_default(&p);
    v = (int)p.cipher;
    r = take_cipher_alg(opts, &v, &bad_alg, errp);
    if (r < 0) {
        return r;
    }
    p.cipher = (enum crypto_cipher_alg)v;
    v = (int)p.mode;
    r = take_alg(opts, "cipher-mode", crypto_cipher_mode_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.mode = (enum crypto_cipher_mode)v;
    v = (int)p.ivgen;
    r = take_alg(opts, "ivgen-alg", crypto_ivgen_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.ivgen = (enum crypto_ivgen_alg)v;
    v = (int)p.ivgen_hash;
    r = take_alg(opts, "ivgen-hash-alg", crypto_hash_alg_parse, &v,
                 &p.ivgen_hash_set, errp);
    if (r < 0) {
        return r;
    }
    p.ivgen_hash = (enum crypto_hash_alg)v;
    v = (int)p.hash;
    r = take_alg(opts, "hash-alg", crypto_hash_alg_parse, &v, NULL, errp);
    if (r < 0) {
        return r;
    }
    p.hash = (enum crypto_hash_alg)v;
    if (bad_alg) {
        return vimg_error_set(errp, -ENOTSUP, "Algorithm '%s' not supported",
                              bad_alg);
    }

    r = luks1_payload_bytes(&p, &payload, errp);
    if (r < 0) {
        return r;
    }
    if (ADD_OVERFLOW(payload, size, &total) || total > INT64_MAX) {
        return vimg_error_set(errp, -EFBIG, "Image size too large");
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

static int
luks_amend(struct vimg_image *img, struct vimg_opts *opts,
           struct vimg_secrets *secrets, bool force, struct vimg_error **errp)
{
    struct luks_state *s = img->priv;
    struct luks1_sync sync = { .opaque = img, .flush = luks_amend_flush };
    int r;

    r = luks1_amend_check_opts(opts, "", vimg_format_luks.create_opts, NULL,
                               errp);
    if (r < 0) {
        return r;
    }
    return luks1_amend(s->luks, opts, "", secrets, force, &sync, errp);
}

/* qemu-img create -f luks -o help FILE, in creation-description order
 * (the order of qemu's "Formatting ..." line), plus vimg's iter-count. */
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
};
