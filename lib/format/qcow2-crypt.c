/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encryption inside qcow2 (qemu-facts.md 1.7 and 1.8).
 *
 * crypt_method 2 (LUKS): the header extension 0x0537BE77 points at a
 * cluster-aligned region of refcounted clusters (not referenced by L1/L2)
 * holding an ordinary LUKS1 header whose offsets are relative to the
 * region start; the extension length is the LUKS payload offset in bytes.
 * lib/blockcrypt/luks1.c does all header work through the two callbacks
 * below, which refuse access outside the extension length like qemu.
 * Guest data is encrypted per 512-byte sector with IV sector = HOST file
 * offset / 512 of the data (not the guest offset).
 *
 * crypt_method 1 (legacy AES, lib/blockcrypt/qcowaes.c): the passphrase
 * is the AES-128 key; sectors are encrypted with IV sector = GUEST offset
 * / 512.  No header extension may exist, there is no key check (a wrong
 * passphrase reads garbage, as in qemu).  It is created only on explicit
 * request (encrypt.format=aes or encryption=on); the CLI warns then.
 * While `vimg reencrypt` migrates such an image to LUKS (its journal
 * exists), the journal's new LUKS header is loaded too and reads go
 * through qcow2_aes_reenc_decrypt.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "blockcrypt/qcowaes.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "qcow2.h"
#include "reencrypt.h"
#include "safemem.h"
#include "secret/secret.h"

/* ---- the FDE region as seen by luks1.c --------------------------------- */

static int
region_check(struct qcow2_state *s, uint64_t off, size_t len,
             struct vimg_error **errp)
{
    if (off > s->crypto_length || len > s->crypto_length - off) {
        return vimg_error_set(errp, -EINVAL,
                              "Request for data outside of extension header");
    }
    return 0;
}

static int
region_read(void *opaque, uint64_t off, void *buf, size_t len,
            struct vimg_error **errp)
{
    struct vimg_image *img = opaque;
    struct qcow2_state *s = img->priv;
    int r = region_check(s, off, len, errp);

    if (r < 0) {
        return r;
    }
    r = full_pread_zero(img->fd, buf, len, s->crypto_offset + off);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not read encryption header: %s",
                              strerror(-r));
    }
    return 0;
}

static int
region_write(void *opaque, uint64_t off, const void *buf, size_t len,
             struct vimg_error **errp)
{
    struct vimg_image *img = opaque;
    struct qcow2_state *s = img->priv;
    int r = region_check(s, off, len, errp);

    if (r < 0) {
        return r;
    }
    r = full_pwrite(img->fd, buf, len, s->crypto_offset + off);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write encryption header: %s",
                              strerror(-r));
    }
    return 0;
}

static int
get_password(struct vimg_secrets *secrets, const char *id, char **pw,
             size_t *pwlen, struct vimg_error **errp)
{
    if (!secrets) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'", id);
    }
    return secret_get_password(secrets, id, pw, pwlen, errp);
}

/* ---- open -------------------------------------------------------------------- */

/*
 * A legacy AES image that `vimg reencrypt` is migrating to LUKS: load the
 * journal and its new header (unlocked with the same passphrase); reads
 * then go through qcow2_aes_reenc_decrypt, writes are refused.
 */
/* Forget a half-opened LUKS header and journal after a failed open. */
static void
drop_luks(struct qcow2_state *s)
{
    luks1_free(s->luks);
    s->luks = NULL;
    reenc_free(s->reenc);
    s->reenc = NULL;
}

static int
aes_open_journal(struct vimg_image *img, const char *pw, size_t pwlen,
                 struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct luks1_io io;
    int r;

    r = reenc_open(img->filename, pw, pwlen, &s->reenc, errp);
    if (r == 0 && !s->reenc) {
        r = vimg_error_set(errp, -ENOENT, "The re-encryption journal of '%s' "
                           "vanished", img->filename);
    }
    if (r == 0) {
        reenc_header_io(s->reenc, &io);
        r = luks1_load(&io, &s->luks, errp);
    }
    if (r == 0) {
        r = luks1_unlock(s->luks, pw, pwlen, errp);
        r = r < 0 ? r : 0;
    }
    if (r < 0) {
        drop_luks(s);
    }
    return r;
}

int
qcow2_crypt_open(struct vimg_image *img, struct vimg_opts *opts,
                 struct vimg_secrets *secrets, struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    const char *fmt = vimg_opts_take(opts, "encrypt.format");
    const char *key_id = vimg_opts_take(opts, "encrypt.key-secret");
    bool no_io = img->flags & VIMG_OPEN_NO_IO;
    struct luks1_io io = {
        .opaque = img,
        .read = region_read,
        .write = (img->flags & VIMG_OPEN_RDWR) ? region_write : NULL,
    };
    char *pw = NULL;
    size_t pwlen = 0;
    bool plain = false;
    int r;

    switch (s->hdr.crypt_method) {
    case QCOW2_CRYPT_NONE:
        if (fmt) {
            return vimg_error_set(errp, -EINVAL,
                                  "No encryption in image header, but options "
                                  "specified format '%s'", fmt);
        }
        /* `vimg reencrypt` is encrypting it: read through its journal. */
        plain = !no_io && reenc_exists(img->filename);
        if (plain && !key_id) {
            return vimg_error_set(errp, -EINVAL, "Encryption of '%s' is "
                                  "unfinished; give encrypt.key-secret to "
                                  "read it, or run 'vimg reencrypt' to "
                                  "complete it", img->filename);
        }
        if (!plain) {
            return 0;
        }
        break;
    case QCOW2_CRYPT_AES:
        if (fmt && strcmp(fmt, "aes") != 0) {
            return vimg_error_set(errp, -EINVAL,
                                  "Header reported 'aes' encryption format but "
                                  "options specify '%s'", fmt);
        }
        if (no_io) {
            return 0;
        }
        if (!key_id) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'encrypt.key-secret' is required "
                                  "for cipher");
        }
        r = get_password(secrets, key_id, &pw, &pwlen, errp);
        if (r < 0) {
            return r;
        }
        r = qcowaes_new(pw, pwlen, &s->aes, errp);
        if (r == 0 && reenc_exists(img->filename)) {
            r = aes_open_journal(img, pw, pwlen, errp);
        }
        safe_free(pw);
        return r;
    default:
        break;
    }

    if (fmt && strcmp(fmt, "luks") != 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Header reported 'luks' encryption format but "
                              "options specify '%s'", fmt);
    }
    /* qemu finds the missing extension before it asks for the key. */
    if (!s->has_crypto_ext && !plain) {
        if (no_io) {
            return 0;
        }
        return vimg_error_set(errp, -EINVAL,
                              "Missing CRYPTO header for crypt method 2");
    }
    if (!no_io && !key_id) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'encrypt.key-secret' is required "
                              "for cipher");
    }
    if (!no_io) {
        r = get_password(secrets, key_id, &pw, &pwlen, errp);
        if (r < 0) {
            return r;
        }
    }
    /* An unfinished `vimg reencrypt`: data reads follow its journal, and
     * once it is finishing the header region may be half replaced, so the
     * journal's copy of the new header is used. */
    r = no_io ? 0 : reenc_open(img->filename, pw, pwlen, &s->reenc, errp);
    if (r == 0 && plain && !s->reenc) {
        r = vimg_error_set(errp, -ENOENT, "The re-encryption journal of '%s' "
                           "vanished", img->filename);
    }
    if (r == 0 && (reenc_finishing(s->reenc) || plain)) {
        reenc_header_io(s->reenc, &io);
    }
    if (r == 0) {
        r = luks1_load(&io, &s->luks, errp);
    }
    if (r == 0 && !no_io) {
        r = luks1_unlock(s->luks, pw, pwlen, errp);
        r = r < 0 ? r : 0;
    }
    safe_free(pw);
    if (r < 0) {
        drop_luks(s);
    }
    return r;
}

void
qcow2_crypt_close(struct qcow2_state *s)
{
    luks1_free(s->luks);
    s->luks = NULL;
    reenc_free(s->reenc);
    s->reenc = NULL;
    qcowaes_free(s->aes);
    s->aes = NULL;
}

int
qcow2_aes_crypt(struct qcow2_state *s, bool enc, uint64_t guest, void *buf,
                size_t len, struct vimg_error **errp)
{
    int r;

    if (!s->aes) {
        return vimg_error_set(errp, -EACCES, "The image is not unlocked");
    }
    if (guest % 512 || len % 512) {
        return vimg_error_set(errp, -EINVAL,
                              "Unaligned encrypted I/O at guest offset %#"
                              PRIx64, guest);
    }
    r = enc ? qcowaes_encrypt(s->aes, guest / 512, buf, len)
            : qcowaes_decrypt(s->aes, guest / 512, buf, len);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not %s data at guest offset %#"
                              PRIx64 ": %s", enc ? "encrypt" : "decrypt",
                              guest, strerror(-r));
    }
    return 0;
}

int
qcow2_aes_reenc_decrypt(struct qcow2_state *s, uint64_t host, uint64_t guest,
                        void *buf, size_t len, struct vimg_error **errp)
{
    int r;

    if (s->stale) {
        return vimg_error_set(errp, -ESTALE, "The image was re-encrypted; "
                              "reopen it");
    }
    r = reenc_decrypt_aes(s->reenc, s->aes, host, guest, buf, len);
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not decrypt data at host "
                              "offset %#" PRIx64 ": %s", host, strerror(-r));
    }
    return 0;
}

/* ---- data -------------------------------------------------------------------- */

/* @src NULL: in place over @buf; else encrypt from @src into @buf. */
static int
crypt_data(struct qcow2_state *s, bool enc, uint64_t host_off, void *buf,
           const void *src, size_t len, struct vimg_error **errp)
{
    int r;

    if (!s->luks || !luks1_unlocked(s->luks)) {
        return vimg_error_set(errp, -EACCES, "The image is not unlocked");
    }
    if (host_off % 512 || len % 512) {
        return vimg_error_set(errp, -EINVAL,
                              "Unaligned encrypted I/O at host offset %#"
                              PRIx64, host_off);
    }
    if (s->stale) {
        return vimg_error_set(errp, -ESTALE, "The image was re-encrypted; "
                              "reopen it");
    }
    if (enc && s->reenc) {
        return vimg_error_set(errp, -EBUSY, "Re-encryption is unfinished; "
                              "run 'vimg reencrypt' to complete it");
    }
    if (s->reenc) {
        r = reenc_decrypt(s->reenc, s->luks, 0, host_off, buf, len);
    } else if (src) {
        r = luks1_encrypt_from(s->luks, host_off / 512, buf, src, len);
    } else {
        r = enc ? luks1_encrypt(s->luks, host_off / 512, buf, len)
                : luks1_decrypt(s->luks, host_off / 512, buf, len);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not %s data at host offset %#"
                              PRIx64 ": %s", enc ? "encrypt" : "decrypt",
                              host_off, strerror(-r));
    }
    return 0;
}

int
qcow2_encrypt(struct qcow2_state *s, uint64_t host_off, void *buf, size_t len,
              struct vimg_error **errp)
{
    return crypt_data(s, true, host_off, buf, NULL, len, errp);
}

int
qcow2_encrypt_from(struct qcow2_state *s, uint64_t host_off, void *out,
                   const void *in, size_t len, struct vimg_error **errp)
{
    return crypt_data(s, true, host_off, out, in, len, errp);
}

int
qcow2_decrypt(struct qcow2_state *s, uint64_t host_off, void *buf, size_t len,
              struct vimg_error **errp)
{
    return crypt_data(s, false, host_off, buf, NULL, len, errp);
}

/* ---- create ------------------------------------------------------------------ */

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
        /* qemu names the QAPI member, without the "encrypt." prefix. */
        return vimg_error_set(errp, -EINVAL,
                              "Parameter '%s' does not accept value '%s'",
                              key + strlen("encrypt."), v);
    }
    *out = a;
    if (given) {
        *given = true;
    }
    return 0;
}

void
qcow2_crypt_params_clear(struct qcow2_crypt_params *p)
{
    safe_free(p->pw);
    p->pw = NULL;
    p->pwlen = 0;
}

static int
parse_crypt_opts(struct vimg_opts *opts, struct vimg_secrets *secrets,
                 bool measure, struct qcow2_crypt_params *p,
                 struct vimg_error **errp);

int
qcow2_crypt_parse_create_opts(struct vimg_opts *opts,
                              struct vimg_secrets *secrets,
                              struct qcow2_crypt_params *p,
                              struct vimg_error **errp)
{
    return parse_crypt_opts(opts, secrets, false, p, errp);
}

int
qcow2_crypt_parse_measure_opts(struct vimg_opts *opts,
                               struct qcow2_crypt_params *p,
                               struct vimg_error **errp)
{
    return parse_crypt_opts(opts, NULL, true, p, errp);
}

/* @measure: only the layout matters, the passphrase is not fetched. */
static int
parse_crypt_opts(struct vimg_opts *opts, struct vimg_secrets *secrets,
                 bool measure, struct qcow2_crypt_params *p,
                 struct vimg_error **errp)
{
    static const char *const luks_keys[] = {
        "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
        "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time",
        "encrypt.iter-count",
    };
    bool encryption = false, any_luks = false;
    const char *fmt, *key_id;
    uint64_t count = 0;
    int64_t iter_time;
    size_t i;
    int v, r;

    memset(p, 0, sizeof(*p));
    luks1_create_params_default(&p->luks);
    p->method = QCOW2_CRYPT_NONE;

    if (vimg_opts_get(opts, "encryption") && vimg_opts_get(opts,
                                                           "encrypt.format")) {
        return vimg_error_set(errp, -EINVAL,
                              "'encrypt.format' and its alias 'encryption' "
                              "can't be used at the same time");
    }
    r = opts_take_bool(opts, "encryption", &encryption, errp);
    if (r < 0) {
        return r;
    }
    fmt = vimg_opts_take(opts, "encrypt.format");
    key_id = vimg_opts_take(opts, "encrypt.key-secret");
    for (i = 0; i < ARRAY_SIZE(luks_keys); i++) {
        any_luks |= vimg_opts_get(opts, luks_keys[i]) != NULL;
    }
    if (encryption) {
        fmt = "aes";
    }
    if (!fmt) {
        if (key_id || any_luks) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'encrypt.format' is missing");
        }
        return 0;
    }
    if (strcmp(fmt, "aes") == 0) {
        /* Only the key: LUKS parameters are unknown to the aes driver. */
        for (i = 0; i < ARRAY_SIZE(luks_keys); i++) {
            if (vimg_opts_get(opts, luks_keys[i])) {
                return vimg_error_set(errp, -EINVAL,
                                      "Parameter '%s' is unexpected",
                                      luks_keys[i]);
            }
        }
        if (!key_id) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'encrypt.key-secret' is required "
                                  "for cipher");
        }
        r = measure ? 0 : get_password(secrets, key_id, &p->pw, &p->pwlen,
                                       errp);
        if (r < 0) {
            return r;
        }
        p->method = QCOW2_CRYPT_AES;
        return 0;
    }
    if (strcmp(fmt, "luks") != 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'encrypt.format' does not accept "
                              "value '%s'", fmt);
    }

    v = (int)p->luks.cipher;
    r = take_alg(opts, "encrypt.cipher-alg", crypto_cipher_alg_parse, &v,
                 NULL, errp);
    if (r < 0) {
        return r;
    }
    p->luks.cipher = (enum crypto_cipher_alg)v;
    v = (int)p->luks.mode;
    r = take_alg(opts, "encrypt.cipher-mode", crypto_cipher_mode_parse, &v,
                 NULL, errp);
    if (r < 0) {
        return r;
    }
    p->luks.mode = (enum crypto_cipher_mode)v;
    v = (int)p->luks.ivgen;
    r = take_alg(opts, "encrypt.ivgen-alg", crypto_ivgen_alg_parse, &v, NULL,
                 errp);
    if (r < 0) {
        return r;
    }
    p->luks.ivgen = (enum crypto_ivgen_alg)v;
    v = (int)p->luks.ivgen_hash;
    r = take_alg(opts, "encrypt.ivgen-hash-alg", crypto_hash_alg_parse, &v,
                 &p->luks.ivgen_hash_set, errp);
    if (r < 0) {
        return r;
    }
    p->luks.ivgen_hash = (enum crypto_hash_alg)v;
    v = (int)p->luks.hash;
    r = take_alg(opts, "encrypt.hash-alg", crypto_hash_alg_parse, &v, NULL,
                 errp);
    if (r < 0) {
        return r;
    }
    p->luks.hash = (enum crypto_hash_alg)v;
    iter_time = p->luks.iter_time_ms;
    r = opts_take_i64(opts, "encrypt.iter-time", &iter_time, errp);
    if (r < 0) {
        return r;
    }
    p->luks.iter_time_ms = iter_time;
    if (vimg_opts_get(opts, "encrypt.iter-count")) {
        r = opts_take_u64(opts, "encrypt.iter-count", &count, errp);
        if (r < 0) {
            return r;
        }
        if (count == 0 || count > UINT32_MAX) {
            return vimg_error_set(errp, -EINVAL,
                                  "Parameter 'encrypt.iter-count' expects a "
                                  "number between 1 and 4294967295");
        }
        p->luks.iterations = (uint32_t)count;
    }
    if (!key_id) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'encrypt.key-secret' is required "
                              "for cipher");
    }
    r = measure ? 0 : get_password(secrets, key_id, &p->pw, &p->pwlen,
                                   errp);
    if (r < 0) {
        return r;
    }
    p->method = QCOW2_CRYPT_LUKS;
    return 0;
}

int
qcow2_crypt_create(struct vimg_image *img, const struct qcow2_crypt_params *p,
                   struct vimg_error **errp)
{
    struct qcow2_state *s = img->priv;
    struct luks1_io io = {
        .opaque = img,
        .read = region_read,
        .write = region_write,
    };
    uint64_t payload, off, n;
    struct luks1 *l = NULL;
    int r;

    if (p->method == QCOW2_CRYPT_AES) {
        /* Only the header field: no extension, no extra clusters. */
        s->hdr.crypt_method = QCOW2_CRYPT_AES;
        r = qcow2_metadata_flush(img, errp);
        if (r == 0) {
            r = qcow2_rewrite_header(img, errp);
        }
        if (r == 0) {
            r = qcowaes_new(p->pw, p->pwlen, &s->aes, errp);
        }
        if (r < 0) {
            return r;
        }
        img->encrypted = true;
        img->alignment = 512;
        return 0;
    }

    r = luks1_payload_bytes(&p->luks, &payload, errp);
    if (r < 0) {
        return r;
    }
    n = DIV_ROUND_UP(payload, s->cluster_size);
    r = qcow2_alloc_clusters(img, n, &off, errp);
    if (r < 0) {
        return r;
    }
    /* Every byte of the region is zeroed first (unused slots stay zero). */
    r = qcow2_write_zeroes(img, off, n << s->cluster_bits, errp);
    if (r < 0) {
        return r;
    }
    s->crypto_offset = off;
    s->crypto_length = payload;
    s->has_crypto_ext = true;
    s->hdr.crypt_method = QCOW2_CRYPT_LUKS;
    r = qcow2_metadata_flush(img, errp);
    if (r < 0) {
        return r;
    }
    r = qcow2_rewrite_header(img, errp);
    if (r < 0) {
        return r;
    }
    r = luks1_create(&io, &p->luks, p->pw, p->pwlen, &l, errp);
    if (r < 0) {
        return r;
    }
    if (luks1_payload_offset(l) != payload) {
        uint64_t got = luks1_payload_offset(l);

        luks1_free(l);
        return vimg_error_set(errp, -EIO,
                              "LUKS payload offset %" PRIu64 " differs from "
                              "the expected %" PRIu64, got, payload);
    }
    s->luks = l;
    img->encrypted = true;
    img->alignment = 512;
    return 0;
}

/* ---- info -------------------------------------------------------------------- */

int
qcow2_crypt_info(struct qcow2_state *s, struct json_object **out,
                 struct vimg_error **errp)
{
    struct json_object *obj = json_object_new_object();
    int r;

    *out = NULL;
    if (!obj) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    json_object_object_add(obj, "format", json_object_new_string(
                               s->hdr.crypt_method == QCOW2_CRYPT_AES ?
                               "aes" : "luks"));
    if (s->luks) {
        r = luks1_info(s->luks, obj, errp);
        if (r < 0) {
            json_object_put(obj);
            return r;
        }
    }
    *out = obj;
    return 0;
}
