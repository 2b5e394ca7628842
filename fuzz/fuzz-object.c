/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for vimg_secrets_add_object(), the parser of qemu's
 * "--object secret,..." and "--object secret_keyring,..." definitions
 * (lib/secret/secret.c, including keyid/iv AES-256-CBC decryption and
 * base64 decoding).
 *
 * Input: up to eight object definitions, one per line, added in order to
 * one store that already holds three secrets: "k0" (a 32-byte key, usable
 * as keyid=k0), "k1" (16 bytes, a wrong key length) and "pw" ("pw").
 *
 * Filesystem safety: a definition whose parsed option list has a "file"
 * key with any value other than "/dev/null" is not passed to the library
 * (the parse is the library's own vimg_opts_parse with the same implied
 * key, so the fuzzer sees exactly the file= value the library would use).
 * The library only ever opens file= paths read-only; keyring objects only
 * read kernel keys.
 *
 * Invariants checked: a failure sets an error with the same code and
 * clears the flags; a success defines the id, sets INLINE_DATA exactly for
 * data= objects, and defining the same id again fails with -EEXIST; a
 * plain data= secret reads back byte for byte; a password read back is
 * NUL-terminated at its length.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"
#include "fuzz.h"

#define MAX_SPECS 8

/* What the fuzzer needs to know about one definition before running it. */
struct spec_info {
    bool parsed;          /* vimg_opts_parse accepted it */
    bool unsafe_file;     /* file= names something other than /dev/null */
    char *id;             /* value of id=, or NULL */
    char *data;           /* value of data=, or NULL */
    bool plain_data;      /* data= with no file/format/keyid/iv/keyring */
};

static void
inspect(const char *spec, struct spec_info *si)
{
    struct vimg_opts *o = vimg_opts_new();
    const char *v;
    size_t i;

    memset(si, 0, sizeof(*si));
    FUZZ_CHECK(o);
    if (vimg_opts_parse(o, spec, "qom-type", NULL) == 0) {
        si->parsed = true;
        for (i = 0; i < vimg_opts_count(o); i++) {
            if (strcmp(vimg_opts_key(o, i), "file") == 0 &&
                strcmp(vimg_opts_value(o, i), "/dev/null") != 0) {
                si->unsafe_file = true;
            }
        }
        if ((v = vimg_opts_get(o, "id")) != NULL) {
            si->id = strdup(v);
        }
        if ((v = vimg_opts_get(o, "data")) != NULL) {
            si->data = strdup(v);
        }
        v = vimg_opts_get(o, "qom-type");
        si->plain_data = si->data && v && strcmp(v, "secret") == 0 &&
                         !vimg_opts_get(o, "file") &&
                         !vimg_opts_get(o, "format") &&
                         !vimg_opts_get(o, "keyid") &&
                         !vimg_opts_get(o, "iv");
    }
    vimg_opts_free(o);
}

static void
run_spec(struct vimg_secrets *s, const char *spec)
{
    struct vimg_error *err = NULL;
    struct spec_info si;
    unsigned flags = 0xdead;
    bool existed;
    int r;

    inspect(spec, &si);
    if (si.unsafe_file) {
        goto out;
    }
    existed = si.id && vimg_secrets_has(s, si.id);
    r = vimg_secrets_add_object(s, spec, &flags, &err);
    if (r < 0) {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(vimg_error_code(err) == r);
        FUZZ_CHECK(vimg_error_message(err)[0] != '\0');
        FUZZ_CHECK(flags == 0);
        /* A failed definition never removes an existing secret. */
        if (existed) {
            FUZZ_CHECK(vimg_secrets_has(s, si.id));
        }
        goto out;
    }
    FUZZ_CHECK(r == 0 && err == NULL);
    /* Only a definition the option parser accepts can succeed. */
    FUZZ_CHECK(si.parsed && si.id);
    FUZZ_CHECK(!existed);
    FUZZ_CHECK(vimg_secrets_has(s, si.id));
    FUZZ_CHECK(((flags & VIMG_SECRET_INLINE_DATA) != 0) == (si.data != NULL));

    if (si.plain_data) {
        uint8_t *bytes = NULL;
        size_t len = 0;

        FUZZ_CHECK(secret_get_bytes(s, si.id, &bytes, &len, NULL) == 0);
        FUZZ_CHECK(len == strlen(si.data));
        FUZZ_CHECK(memcmp(bytes, si.data, len) == 0);
        safe_free(bytes);
    }
    {
        char *pw = NULL;
        size_t pwlen = 0;

        r = secret_get_password(s, si.id, &pw, &pwlen, &err);
        if (r == 0) {
            FUZZ_CHECK(pw && strlen(pw) == pwlen);
            safe_free(pw);
        } else {
            FUZZ_CHECK(err && vimg_error_code(err) == r);
        }
        vimg_error_free(err);
        err = NULL;
    }

    /* The same definition again must be refused as a duplicate id. */
    r = vimg_secrets_add_object(s, spec, &flags, &err);
    FUZZ_CHECK(r == -EEXIST);
    FUZZ_CHECK(err && vimg_error_code(err) == -EEXIST);
    FUZZ_CHECK(flags == 0);
out:
    vimg_error_free(err);
    free(si.id);
    free(si.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key32[32] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    };
    struct vimg_secrets *s;
    char *text, *line, *next;
    int nspec = 0;

    if (size > 65536) {
        return 0;
    }
    text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';

    s = vimg_secrets_new();
    FUZZ_CHECK(s);
    FUZZ_CHECK(vimg_secrets_add(s, "k0", key32, sizeof(key32), NULL) == 0);
    FUZZ_CHECK(vimg_secrets_add(s, "k1", key32, 16, NULL) == 0);
    FUZZ_CHECK(vimg_secrets_add(s, "pw", "pw", 2, NULL) == 0);

    /* Embedded NULs end the whole text; lines split at '\n'. */
    for (line = text; line && nspec < MAX_SPECS; line = next, nspec++) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        run_spec(s, line);
    }

    /* NULL arguments are refused, not crashed on. */
    FUZZ_CHECK(vimg_secrets_add_object(s, NULL, NULL, NULL) == -EINVAL);
    FUZZ_CHECK(vimg_secrets_add_object(NULL, "secret,id=x,data=y", NULL,
                                       NULL) == -EINVAL);
    vimg_secrets_free(s);
    free(text);
    return 0;
}
