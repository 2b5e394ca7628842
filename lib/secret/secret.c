/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The secret store: qemu's "--object secret,..." and
 * "--object secret_keyring,..." definitions, parsed and checked the way
 * qemu-img 7.2 does it, with its error texts (verified against the
 * qemu-img binary):
 *
 *   1. syntax (keyval: every element after the first needs '='),
 *   2. qom-type, then id (present, then a valid identifier),
 *   3. property values (format, loaded, serial),
 *   4. unknown properties ("Parameter 'K' is unexpected"),
 *   5. duplicate id,
 *   6. loading: data/file/keyring, then for keyid secrets the key, the iv,
 *      base64 decoding and AES-256-CBC decryption; otherwise base64 only.
 *
 * Payloads live only in safe_alloc() memory and are wiped on free.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "bytes.h"
#include "crypto/crypto.h"
#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"
#include "utf8.h"

/* Largest secret file accepted (a passphrase or key, not a data set). */
#define SECRET_FILE_MAX (16u * 1024 * 1024)

#define SECRET_KEY_LEN 32   /* keyid secrets: AES-256 */
#define SECRET_IV_LEN 16

struct secret_entry {
    char *id;
    uint8_t *data;   /* safe_alloc() */
    size_t len;
};

struct vimg_secrets {
    struct secret_entry *v;
    size_t n, cap;
};

struct vimg_secrets *
vimg_secrets_new(void)
{
    return calloc(1, sizeof(struct vimg_secrets));
}

void
vimg_secrets_free(struct vimg_secrets *s)
{
    size_t i;

    if (!s) {
        return;
    }
    for (i = 0; i < s->n; i++) {
        free(s->v[i].id);
        safe_free(s->v[i].data);
    }
    free(s->v);
    free(s);
}

static const struct secret_entry *
lookup(const struct vimg_secrets *s, const char *id)
{
    size_t i;

    for (i = 0; s && id && i < s->n; i++) {
        if (strcmp(s->v[i].id, id) == 0) {
            return &s->v[i];
        }
    }
    return NULL;
}

bool
vimg_secrets_has(const struct vimg_secrets *s, const char *id)
{
    return lookup(s, id) != NULL;
}

static int
duplicate_error(struct vimg_error **errp, const char *id)
{
    return vimg_error_set(errp, -EEXIST, "attempt to add duplicate property "
                          "'%s' to object (type 'container')", id);
}

/* Append @id with the safe buffer @data; takes ownership of @data. */
static int
add_owned(struct vimg_secrets *s, const char *id, uint8_t *data, size_t len,
          struct vimg_error **errp)
{
    struct secret_entry *e;

    if (lookup(s, id)) {
        safe_free(data);
        return duplicate_error(errp, id);
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 4;
        struct secret_entry *nv = reallocarray(s->v, ncap, sizeof(*nv));

        if (!nv) {
            safe_free(data);
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        s->v = nv;
        s->cap = ncap;
    }
    e = &s->v[s->n];
    e->id = strdup(id);
    if (!e->id) {
        safe_free(data);
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    e->data = data;
    e->len = len;
    s->n++;
    return 0;
}

int
vimg_secrets_add(struct vimg_secrets *s, const char *id, const void *data,
                 size_t len, struct vimg_error **errp)
{
    uint8_t *copy;

    if (!s || !id || (!data && len)) {
        return vimg_error_set(errp, -EINVAL, "Invalid secret");
    }
    if (lookup(s, id)) {
        return duplicate_error(errp, id);
    }
    copy = safe_memdup(data, len);
    if (!copy) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    return add_owned(s, id, copy, len, errp);
}

int
secret_get_bytes(const struct vimg_secrets *s, const char *id, uint8_t **out,
                 size_t *len, struct vimg_error **errp)
{
    const struct secret_entry *e = lookup(s, id);
    uint8_t *copy;

    if (!e) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'",
                              id ? id : "");
    }
    copy = safe_memdup(e->data, e->len);
    if (!copy) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    *out = copy;
    *len = e->len;
    return 0;
}

/*
 * qemu validates the whole payload with g_utf8_validate(data, len), which
 * also refuses NUL bytes, so in practice "cut at the first NUL" only
 * matters for payloads that contain none.  We mirror qemu: a NUL byte makes
 * the password invalid, exactly like a bad UTF-8 sequence.
 */
int
secret_get_password(const struct vimg_secrets *s, const char *id, char **out,
                    size_t *len, struct vimg_error **errp)
{
    const struct secret_entry *e = lookup(s, id);
    size_t n;
    char *pw;

    if (!e) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'",
                              id ? id : "");
    }
    n = strnlen((const char *)e->data, e->len);
    if (n != e->len || !utf8_valid((const char *)e->data, e->len)) {
        return vimg_error_set(errp, -EINVAL,
                              "Data from secret %s is not valid UTF-8", id);
    }
    pw = safe_alloc(n + 1);
    if (!pw) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    memcpy(pw, e->data, n);
    pw[n] = '\0';
    *out = pw;
    *len = n;
    return 0;
}

/* ---- --object parsing ---------------------------------------------------- */

/*
 * qemu parses --object with keyval, which (unlike -o) has no "key" ==
 * "key=on" shorthand: every element after the implied first one needs '='.
 */
static int
check_keyval_syntax(const char *spec, struct vimg_error **errp)
{
    const char *p = spec;
    bool first = true;

    while (*p) {
        size_t klen = strcspn(p, "=,");

        if (klen == 0) {
            return vimg_error_set(errp, -EINVAL, "Invalid parameter ''");
        }
        if (p[klen] != '=' && !first) {
            return vimg_error_set(errp, -EINVAL,
                                  "Expected '=' after parameter '%.*s'",
                                  (int)klen, p);
        }
        /* Skip the value: up to a single ',' (",," is an escaped comma). */
        p += klen;
        while (*p) {
            if (*p == ',') {
                if (p[1] != ',') {
                    break;
                }
                p++;
            }
            p++;
        }
        if (*p == ',') {
            p++;
        }
        first = false;
    }
    return 0;
}

/* QAPI identifiers: a letter, then letters, digits, '-', '.', '_'. */
static bool
valid_id(const char *id)
{
    const char *p;

    if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z'))) {
        return false;
    }
    for (p = id + 1; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
              *p == '_')) {
            return false;
        }
    }
    return true;
}

/*
 * Read a whole file verbatim into safe memory.  Messages follow glib's
 * g_file_get_contents(), which qemu quotes after "Unable to read PATH: ".
 */
static int
read_secret_file(const char *path, uint8_t **out, size_t *outlen,
                 struct vimg_error **errp)
{
    CLEANUP_CLOSE int fd = -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        return vimg_error_set(errp, -e, "Unable to read %s: Failed to open "
                              "file \u201c%s\u201d: %s", path, path,
                              strerror(e));
    }
    for (;;) {
        ssize_t r;

        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            uint8_t *nb;

            if (cap >= SECRET_FILE_MAX + 1) {
                safe_free(buf);
                return vimg_error_set(errp, -EFBIG, "Unable to read %s: "
                                      "File too large", path);
            }
            nb = safe_alloc(ncap);
            if (!nb) {
                safe_free(buf);
                return vimg_error_set(errp, -ENOMEM, "Out of memory");
            }
            if (len) {
                memcpy(nb, buf, len);
            }
            safe_free(buf);
            buf = nb;
            cap = ncap;
        }
        r = read(fd, buf + len, cap - len);
        if (r < 0) {
            int e = errno;

            if (e == EINTR) {
                continue;
            }
            safe_free(buf);
            return vimg_error_set(errp, -e, "Unable to read %s: Error reading "
                                  "file \u201c%s\u201d: %s", path, path,
                                  strerror(e));
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
        if (len > SECRET_FILE_MAX) {
            safe_free(buf);
            return vimg_error_set(errp, -EFBIG, "Unable to read %s: "
                                  "File too large", path);
        }
    }
    /* Hand out an exact-length buffer so safe_len() reports the size. */
    *out = safe_memdup(buf, len);
    safe_free(buf);
    if (!*out) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    *outlen = len;
    return 0;
}

/* Replace *buf (safe memory) by its base64 decoding. */
static int
decode_in_place(uint8_t **buf, size_t *len, struct vimg_error **errp)
{
    uint8_t *dec;
    size_t declen;
    int r;

    r = base64_decode((const char *)*buf, *len, &dec, &declen);
    if (r == -ENOMEM) {
        return vimg_error_set(errp, r, "Out of memory");
    }
    if (r < 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Base64 data contains invalid characters");
    }
    safe_free(*buf);
    *buf = dec;
    *len = declen;
    return 0;
}

/*
 * keyid secrets: AES-256-CBC with secret @keyid as the key and the base64
 * @iv_b64; PKCS#7-style padding whose last byte gives the count (only that
 * byte is checked, as qemu does).
 */
static int
decrypt_payload(const struct vimg_secrets *s, const char *keyid,
                const char *iv_b64, bool base64, uint8_t **buf, size_t *len,
                struct vimg_error **errp)
{
    const struct secret_entry *key = lookup(s, keyid);
    struct crypto_cipher *c = NULL;
    uint8_t *iv = NULL;
    size_t ivlen = 0;
    unsigned pad;
    int r;

    if (!key) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'", keyid);
    }
    if (key->len != SECRET_KEY_LEN) {
        return vimg_error_set(errp, -EINVAL,
                              "Key should be %d bytes in length",
                              SECRET_KEY_LEN);
    }
    if (!iv_b64) {
        return vimg_error_set(errp, -EINVAL,
                              "IV is required to decrypt secret");
    }
    r = base64_decode(iv_b64, strlen(iv_b64), &iv, &ivlen);
    if (r == -ENOMEM) {
        return vimg_error_set(errp, r, "Out of memory");
    }
    if (r < 0) {
        return vimg_error_set(errp, -EINVAL,
                              "Base64 data contains invalid characters");
    }
    if (ivlen != SECRET_IV_LEN) {
        safe_free(iv);
        return vimg_error_set(errp, -EINVAL,
                              "IV should be %d bytes in length not %zu",
                              SECRET_IV_LEN, ivlen);
    }
    if (base64) {
        r = decode_in_place(buf, len, errp);
        if (r < 0) {
            safe_free(iv);
            return r;
        }
    }
    if (*len % SECRET_IV_LEN != 0) {
        safe_free(iv);
        return vimg_error_set(errp, -EINVAL,
                              "Length %zu must be a multiple of block size %d",
                              *len, SECRET_IV_LEN);
    }
    if (*len == 0) {
        safe_free(iv);
        return 0;         /* nothing to decrypt, qemu accepts it too */
    }
    r = crypto_cipher_new(CRYPTO_CIPHER_AES_256, CRYPTO_MODE_CBC, key->data,
                          key->len, &c);
    if (r == 0) {
        r = crypto_cipher_decrypt(c, iv, ivlen, *buf, *len);
    }
    crypto_cipher_free(c);
    safe_free(iv);
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to decrypt secret");
    }
    pad = (*buf)[*len - 1];
    if (pad > SECRET_IV_LEN || pad > *len) {
        return vimg_error_set(errp, -EINVAL, "Incorrect number of padding "
                              "bytes (%u) found on decrypted data", pad);
    }
    safe_wipe(*buf + *len - pad, pad);
    *len -= pad;
    return 0;
}

/* serial= as qemu's keyval int32: base prefixes, no blanks, non-zero. */
static int
parse_serial(const char *v, int32_t *out, struct vimg_error **errp)
{
    long long n;
    char *end;

    if (!v) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'serial' is missing");
    }
    errno = 0;
    n = strtoll(v, &end, 0);
    if (*v == '\0' || *v == ' ' || *v == '\t' || *v == '\n' ||
        end == v || *end != '\0') {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'serial' expects integer");
    }
    if (errno == ERANGE || n < INT32_MIN || n > INT32_MAX) {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'serial' expects int32_t");
    }
    if (n == 0) {
        return vimg_error_set(errp, -EINVAL,
                              "'serial' should not be equal to 0");
    }
    *out = (int32_t)n;
    return 0;
}

int
vimg_secrets_add_object(struct vimg_secrets *s, const char *spec,
                        unsigned *flags_out, struct vimg_error **errp)
{
    struct vimg_opts *o = NULL;
    const char *type, *id, *data = NULL, *file = NULL, *format, *keyid, *iv;
    const char *loaded;
    bool keyring, base64 = false;
    int32_t serial = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if (flags_out) {
        *flags_out = 0;
    }
    if (!s || !spec) {
        return vimg_error_set(errp, -EINVAL, "Invalid object definition");
    }
    r = check_keyval_syntax(spec, errp);
    if (r < 0) {
        return r;
    }
    o = vimg_opts_new();
    if (!o) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = vimg_opts_parse(o, spec, "qom-type", errp);
    if (r < 0) {
        goto out;
    }

    type = vimg_opts_take(o, "qom-type");
    if (!type) {
        r = vimg_error_set(errp, -EINVAL, "Parameter 'qom-type' is missing");
        goto out;
    }
    if (strcmp(type, "secret") == 0) {
        keyring = false;
    } else if (strcmp(type, "secret_keyring") == 0) {
        keyring = true;
    } else {
        r = vimg_error_set(errp, -EINVAL,
                           "Parameter 'qom-type' does not accept value '%s'",
                           type);
        goto out;
    }
    id = vimg_opts_take(o, "id");
    if (!id) {
        r = vimg_error_set(errp, -EINVAL, "Parameter 'id' is missing");
        goto out;
    }
    if (!valid_id(id)) {
        r = vimg_error_set(errp, -EINVAL, "Parameter 'id' expects an "
                           "identifier\nIdentifiers consist of letters, "
                           "digits, '-', '.', '_', starting with a letter.");
        goto out;
    }

    /* Property values, in the order qemu's setters would reject them. */
    format = vimg_opts_take(o, "format");
    if (format && strcmp(format, "base64") == 0) {
        base64 = true;
    } else if (format && strcmp(format, "raw") != 0) {
        r = vimg_error_set(errp, -EINVAL,
                           "Parameter 'format' does not accept value '%s'",
                           format);
        goto out;
    }
    keyid = vimg_opts_take(o, "keyid");
    iv = vimg_opts_take(o, "iv");
    if (keyring) {
        r = parse_serial(vimg_opts_take(o, "serial"), &serial, errp);
        if (r < 0) {
            goto out;
        }
    } else {
        data = vimg_opts_take(o, "data");
        file = vimg_opts_take(o, "file");
    }
    /*
     * 'loaded' is deprecated and read-only in 7.2: qemu type-checks the
     * value, then refuses to set it.  We do the same, with its texts.
     */
    loaded = vimg_opts_get(o, "loaded");
    if (loaded) {
        bool dummy = false;

        r = opts_take_bool(o, "loaded", &dummy, errp);
        if (r == 0) {
            r = vimg_error_set(errp, -EINVAL,
                               "Property '%s.loaded' is not writable", type);
        }
        goto out;
    }
    /* keyval nests "a.b=1" under 'a', so qemu names only the prefix. */
    for (size_t i = 0; i < vimg_opts_count(o); i++) {
        const char *k = vimg_opts_key(o, i);
        const char *dot = strchr(k, '.');

        if (dot) {
            r = vimg_error_set(errp, -EINVAL, "Parameter '%.*s' is unexpected",
                               (int)(dot - k), k);
            goto out;
        }
    }
    r = vimg_opts_check_unused(o, errp);
    if (r < 0) {
        goto out;
    }
    if (lookup(s, id)) {
        r = duplicate_error(errp, id);
        goto out;
    }

    /* Load the payload. */
    if (keyring) {
        r = secret_keyring_read(serial, &buf, &len, errp);
    } else if (data && file) {
        r = vimg_error_set(errp, -EINVAL,
                           "'file' and 'data' are mutually exclusive");
    } else if (data) {
        len = strlen(data);
        buf = safe_memdup(data, len);
        r = buf ? 0 : vimg_error_set(errp, -ENOMEM, "Out of memory");
        if (flags_out) {
            *flags_out |= VIMG_SECRET_INLINE_DATA;
        }
    } else if (file) {
        r = read_secret_file(file, &buf, &len, errp);
    } else {
        r = vimg_error_set(errp, -EINVAL,
                           "Either 'file' or 'data' must be provided");
    }
    if (r < 0) {
        goto out;
    }

    if (keyid) {
        r = decrypt_payload(s, keyid, iv, base64, &buf, &len, errp);
    } else if (base64) {
        r = decode_in_place(&buf, &len, errp);
    }
    if (r < 0) {
        goto out;
    }
    r = add_owned(s, id, buf, len, errp);
    buf = NULL;
out:
    safe_free(buf);
    vimg_opts_free(o);
    if (r < 0 && flags_out) {
        *flags_out = 0;
    }
    return r;
}
