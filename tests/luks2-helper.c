/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test helper for tests/test-luks2.sh: drives lib/blockcrypt/luks2.c on a
 * plain file until the raw "luks" format dispatches LUKS2 itself.
 *
 *   luks2-helper create FILE PW KDF SECTOR CIPHER SIZE   (prints the key)
 *       KDF pbkdf2|argon2id|argon2i, CIPHER xts|cbc-essiv; SIZE payload bytes
 *   luks2-helper key FILE PW          (prints "SLOT KEYHEX")
 *   luks2-helper read FILE PW         (payload plaintext to stdout)
 *   luks2-helper write FILE PW        (stdin plaintext into the payload)
 *   luks2-helper addkey FILE PW NEWPW (prints the new slot)
 *   luks2-helper info FILE            (luks2_info JSON)
 * Exit status 0 on success, 2 for a wrong password, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "blockcrypt/luks2.h"

static int
fd_read(void *opaque, uint64_t off, void *buf, size_t len,
        struct vimg_error **errp)
{
    int r = full_pread_zero(*(int *)opaque, buf, len, off);

    return r < 0 ? vimg_error_set(errp, r, "read failed") : 0;
}

static int
fd_write(void *opaque, uint64_t off, const void *buf, size_t len,
         struct vimg_error **errp)
{
    int r = full_pwrite(*(int *)opaque, buf, len, off);

    return r < 0 ? vimg_error_set(errp, r, "write failed") : 0;
}

static int
fail(struct vimg_error *err)
{
    int code = err ? vimg_error_code(err) : -EIO;

    fprintf(stderr, "luks2-helper: %s\n", err ? vimg_error_message(err) : "error");
    vimg_error_free(err);
    return code == -EPERM ? 2 : 1;
}

static void
print_key(const struct luks2 *l)
{
    size_t len = 0, i;
    const uint8_t *k = luks2_volume_key(l, &len);

    for (i = 0; k && i < len; i++) {
        printf("%02x", k[i]);
    }
    printf("\n");
}

int
main(int argc, char **argv)
{
    struct vimg_error *err = NULL;
    struct luks2 *l = NULL;
    struct luks2_io io;
    const char *cmd, *pw;
    uint64_t off, size;
    uint8_t *buf;
    struct stat st;
    int fd, r;

    if (argc < 3) {
        fprintf(stderr, "usage: see the source\n");
        return 1;
    }
    cmd = argv[1];
    pw = argc > 3 ? argv[3] : "";
    fd = open(argv[2], strcmp(cmd, "create") == 0 ? O_RDWR | O_CREAT | O_TRUNC
                                                   : O_RDWR, 0644);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    io.opaque = &fd;
    io.read = fd_read;
    io.write = fd_write;

    if (strcmp(cmd, "create") == 0 && argc == 8) {
        struct luks2_create_params p;

        luks2_create_params_default(&p);
        p.kdf = strcmp(argv[4], "pbkdf2") == 0 ? LUKS2_KDF_PBKDF2
              : strcmp(argv[4], "argon2i") == 0 ? LUKS2_KDF_ARGON2I
                                                 : LUKS2_KDF_ARGON2ID;
        p.iterations = p.kdf == LUKS2_KDF_PBKDF2 ? 1000 : 4;
        p.memory_kib = 1024;
        p.sector_size = (uint32_t)atoi(argv[5]);
        if (strcmp(argv[6], "cbc-essiv") == 0) {
            p.mode = CRYPTO_MODE_CBC;
            p.ivgen = CRYPTO_IVGEN_ESSIV;
        }
        size = strtoull(argv[7], NULL, 0);
        if (luks2_payload_bytes(&p, &off, &err) < 0 ||
            ftruncate(fd, (off_t)(off + size)) < 0) {
            return fail(err);
        }
        if (luks2_create(&io, &p, pw, strlen(pw), &l, &err) < 0) {
            return fail(err);
        }
        print_key(l);
        luks2_free(l);
        return 0;
    }
    if (luks2_load(&io, &l, &err) < 0) {
        return fail(err);
    }
    if (strcmp(cmd, "info") == 0) {
        struct json_object *o = json_object_new_object();

        if (luks2_info(l, o, &err) < 0) {
            return fail(err);
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        luks2_free(l);
        return 0;
    }
    r = luks2_unlock(l, pw, strlen(pw), &err);
    if (r < 0) {
        return fail(err);
    }
    if (strcmp(cmd, "key") == 0) {
        printf("%d ", r);
        print_key(l);
    } else if (strcmp(cmd, "addkey") == 0 && argc == 5) {
        struct luks2_create_params p;

        luks2_create_params_default(&p);
        p.kdf = LUKS2_KDF_PBKDF2;
        p.iterations = 1000;
        r = luks2_add_key(l, -1, &p, argv[4], strlen(argv[4]), &err);
        if (r < 0) {
            return fail(err);
        }
        printf("%d\n", r);
    } else if (strcmp(cmd, "read") == 0 || strcmp(cmd, "write") == 0) {
        uint32_t ss = luks2_sector_size(l);

        if (fstat(fd, &st) < 0) {
            return 1;
        }
        off = luks2_payload_offset(l);
        size = luks2_payload_size(l, (uint64_t)st.st_size);
        buf = malloc(ss);
        for (uint64_t pos = 0; buf && pos < size; pos += ss) {
            if (cmd[0] == 'r') {
                if (full_pread(fd, buf, ss, off + pos) < 0 ||
                    luks2_decrypt(l, pos / 512, buf, ss) < 0 ||
                    fwrite(buf, 1, ss, stdout) != ss) {
                    return 1;
                }
            } else {
                if (fread(buf, 1, ss, stdin) != ss) {
                    break;
                }
                if (luks2_encrypt(l, pos / 512, buf, ss) < 0 ||
                    full_pwrite(fd, buf, ss, off + pos) < 0) {
                    return 1;
                }
            }
        }
        free(buf);
    } else {
        fprintf(stderr, "luks2-helper: bad command\n");
        return 1;
    }
    luks2_free(l);
    close(fd);
    return 0;
}
