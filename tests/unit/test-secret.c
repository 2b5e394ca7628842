/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of lib/secret: every --object secret / secret_keyring error
 * with the exact text qemu-img 7.2 prints (observed on this machine), data
 * and file secrets (a trailing newline is kept), base64, keyid+iv
 * decryption against vectors made with `openssl enc -aes-256-cbc`, UTF-8
 * passwords, and kernel keyring secrets added with add_key(2).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "safemem.h"
#include "secret/secret.h"
#include "tap.h"

/*
 * Vectors: key = 00 01 .. 1f, iv = a0 a1 .. af, made with
 *   printf %s "$pt" | openssl enc -aes-256-cbc -K 0001..1f -iv a0..af -a -A
 * (the last two with -nopad on hand-made 16-byte blocks).
 */
#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define IV_B64 "oKGio6SlpqeoqaqrrK2urw=="
#define CT_123456 "JUqxH0a81xY+sMdRKiHjlQ=="
#define CT_16BYTES "zhzzpOO4exObo8/xCs41tgbZay4YS/Irc9MbpL4U2Mk="
#define CT_COMMA "tCDmla7ixEePQDcErSs+dg=="
#define CT_PAD33 "ssqh300tBU8dmu+kdws0Yw=="    /* last byte '!' = 33 */
#define CT_PAD17 "3etsWv41DFi5TpiqHYv33A=="    /* last byte 0x11 */
#define CT_PAD20 "zhzzpOO4exObo8/xCs41trwVZJ6aq7E7Fsh/QnKC6lk=" /* 32 B, 0x14 */

static const char id_msg[] =
    "Parameter 'id' expects an identifier\nIdentifiers consist of letters, "
    "digits, '-', '.', '_', starting with a letter.";

/* Add @spec to @s and check the result code and (if @msg) the message. */
static int
expect(struct vimg_secrets *s, const char *spec, int code, const char *msg)
{
    struct vimg_error *err = NULL;
    int r = vimg_secrets_add_object(s, spec, NULL, &err);
    int good = r == code;

    if (msg) {
        good = good && err && strcmp(vimg_error_message(err), msg) == 0;
    } else if (code == 0) {
        good = good && err == NULL;
    }
    if (!good) {
        printf("# spec '%s': r=%d want %d, msg '%s'\n", spec, r, code,
               err ? vimg_error_message(err) : "(none)");
    }
    vimg_error_free(err);
    /* TAP descriptions must stay on one line: show the first line only. */
    return ok(good, "'%s' -> %d%s%.*s", spec, code, msg ? ": " : "",
              msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
}

/* Payload of @id equals @want (@len bytes). */
static int
expect_bytes(struct vimg_secrets *s, const char *id, const void *want,
             size_t len, const char *what)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int r = secret_get_bytes(s, id, &buf, &n, NULL);
    int good = r == 0 && n == len && memcmp(buf, want, len) == 0 &&
               safe_len(buf) == len;

    safe_free(buf);
    return ok(good, "%s", what);
}

static void
test_syntax_errors(void)
{
    struct vimg_secrets *s = vimg_secrets_new();

    expect(s, "foo,id=x", -EINVAL,
           "Parameter 'qom-type' does not accept value 'foo'");
    expect(s, "Secret,id=a,data=1", -EINVAL,
           "Parameter 'qom-type' does not accept value 'Secret'");
    expect(s, "", -EINVAL, "Parameter 'qom-type' is missing");
    expect(s, "id=a", -EINVAL, "Parameter 'qom-type' is missing");
    expect(s, "secret", -EINVAL, "Parameter 'id' is missing");
    expect(s, "secret,bogus=1", -EINVAL, "Parameter 'id' is missing");
    expect(s, "secret,id=,data=1", -EINVAL, id_msg);
    expect(s, "secret,id=1a,data=1", -EINVAL, id_msg);
    expect(s, "secret,id=a:b,data=1", -EINVAL, id_msg);
    expect(s, "secret,id=a,data", -EINVAL,
           "Expected '=' after parameter 'data'");
    expect(s, "id=x,secret", -EINVAL,
           "Expected '=' after parameter 'secret'");
    expect(s, ",id=a", -EINVAL, "Invalid parameter ''");
    expect(s, "secret,id=a,=x", -EINVAL, "Invalid parameter ''");
    expect(s, "secret,id=a,data=1,bogus=2", -EINVAL,
           "Parameter 'bogus' is unexpected");
    expect(s, "secret,id=a,data=1,file=x,bogus=1", -EINVAL,
           "Parameter 'bogus' is unexpected");
    expect(s, "secret,id=a,ID=b,data=1", -EINVAL,
           "Parameter 'ID' is unexpected");
    expect(s, "secret,id=a,data=1,a.b=1", -EINVAL,
           "Parameter 'a' is unexpected");
    expect(s, "secret,id=a,data=1,serial=5", -EINVAL,
           "Parameter 'serial' is unexpected");
    expect(s, "secret_keyring,id=a,serial=5,data=1", -EINVAL,
           "Parameter 'data' is unexpected");
    expect(s, "secret,id=a,data=1,format=foo", -EINVAL,
           "Parameter 'format' does not accept value 'foo'");
    expect(s, "secret,id=a,data=1,file=x,format=foo", -EINVAL,
           "Parameter 'format' does not accept value 'foo'");
    expect(s, "secret,id=a,data=1,loaded=on", -EINVAL,
           "Property 'secret.loaded' is not writable");
    expect(s, "secret_keyring,id=a,serial=1,loaded=off", -EINVAL,
           "Property 'secret_keyring.loaded' is not writable");
    expect(s, "secret,id=a,data=1,loaded=1", -EINVAL,
           "Parameter 'loaded' expects 'on' or 'off'");
    expect(s, "secret,id=a", -EINVAL,
           "Either 'file' or 'data' must be provided");
    expect(s, "secret,id=a,data=1,file=/etc/hostname", -EINVAL,
           "'file' and 'data' are mutually exclusive");
    expect(s, "secret,id=a,data=@@,format=base64", -EINVAL,
           "Base64 data contains invalid characters");
    expect(s, "secret,id=a,data=1,keyid=zz", -ENOENT,
           "No secret with id 'zz'");
    expect(s, "secret,id=a,keyid=,data=1", -ENOENT, "No secret with id ''");
    /* Nothing was added by any failure. */
    ok(!vimg_secrets_has(s, "a") && !vimg_secrets_has(s, "x"),
       "failed objects leave no secret behind");
    vimg_secrets_free(s);
}

static void
test_data(void)
{
    struct vimg_secrets *s = vimg_secrets_new();
    struct vimg_error *err = NULL;
    unsigned flags = 99;
    char *pw = NULL;
    size_t n = 0;

    ok(vimg_secrets_add_object(s, "secret,id=sec0,data=123456", &flags,
                               &err) == 0 && !err, "data secret added");
    ok(flags == VIMG_SECRET_INLINE_DATA, "data= sets INLINE_DATA");
    ok(vimg_secrets_has(s, "sec0"), "has sec0");
    ok(!vimg_secrets_has(s, "sec1") && !vimg_secrets_has(s, NULL),
       "has: absent ids");
    expect_bytes(s, "sec0", "123456", 6, "data payload");

    expect(s, "secret,id=sec0,data=2", -EEXIST,
           "attempt to add duplicate property 'sec0' to object "
           "(type 'container')");
    expect(s, "secret_keyring,id=sec0,serial=5", -EEXIST,
           "attempt to add duplicate property 'sec0' to object "
           "(type 'container')");
    /* Property errors come before the duplicate check, as in qemu. */
    expect(s, "secret,id=sec0,bogus=1", -EINVAL,
           "Parameter 'bogus' is unexpected");
    expect(s, "secret_keyring,id=sec0,serial=0", -EINVAL,
           "'serial' should not be equal to 0");
    expect_bytes(s, "sec0", "123456", 6, "duplicate left the original");

    expect(s, "qom-type=secret,id=q,data=x", 0, NULL);
    expect(s, "secret,id=c,data=pass,,word", 0, NULL);
    expect_bytes(s, "c", "pass,word", 9, "',,' gives a comma in data");
    expect(s, "secret,id=d,data=1,data=2", 0, NULL);
    expect_bytes(s, "d", "2", 1, "later data= wins");
    expect(s, "secret,id=e,data=", 0, NULL);
    expect_bytes(s, "e", "", 0, "empty data is an empty secret");
    expect(s, "secret,id=a-b.c_D,data=1,format=raw", 0, NULL);
    expect(s, "secret,id=iv,data=1,iv=" IV_B64, 0, NULL);
    expect(s, "secret,id=b64,data=cGFzc3dvcmQ=,format=base64", 0, NULL);
    expect_bytes(s, "b64", "password", 8, "format=base64 decodes");
    expect(s, "secret,id=u,data=p\xc3\xa4ss", 0, NULL);

    /* Lookups. */
    ok(secret_get_bytes(s, "nope", (uint8_t **)&pw, &n, &err) == -ENOENT,
       "get_bytes of an unknown id");
    ok_str(vimg_error_message(err), "No secret with id 'nope'",
           "unknown id message");
    vimg_error_free(err);
    err = NULL;

    ok(secret_get_password(s, "sec0", &pw, &n, NULL) == 0 && n == 6 &&
       strcmp(pw, "123456") == 0 && safe_len(pw) == 7,
       "password is a NUL-terminated safe copy");
    safe_free(pw);
    ok(secret_get_password(s, "u", &pw, &n, NULL) == 0 && n == 5 &&
       strcmp(pw, "p\xc3\xa4ss") == 0, "UTF-8 password");
    safe_free(pw);
    ok(secret_get_password(s, "e", &pw, &n, NULL) == 0 && n == 0 &&
       pw[0] == '\0', "empty password");
    safe_free(pw);

    {
        pw = NULL;
        vimg_secrets_add(s, "bad", "ab\xff", 3, NULL);
        ok(secret_get_password(s, "bad", &pw, &n, &err) == -EINVAL &&
           pw == NULL, "invalid UTF-8 password refused");
        ok_str(vimg_error_message(err),
               "Data from secret bad is not valid UTF-8", "UTF-8 message");
        vimg_error_free(err);
        err = NULL;
        /* qemu (g_utf8_validate with a length) refuses NUL bytes too. */
        vimg_secrets_add(s, "nul", "ab\0cd", 5, NULL);
        ok(secret_get_password(s, "nul", &pw, &n, &err) == -EINVAL,
           "NUL inside a password refused like qemu");
        ok_str(vimg_error_message(err),
               "Data from secret nul is not valid UTF-8", "NUL message");
        vimg_error_free(err);
        err = NULL;
        expect_bytes(s, "nul", "ab\0cd", 5, "raw bytes keep the NUL");
    }

    ok(vimg_secrets_add(s, "raw", "\x00\x01\x02", 3, NULL) == 0,
       "vimg_secrets_add raw bytes");
    expect_bytes(s, "raw", "\x00\x01\x02", 3, "raw bytes payload");
    ok(vimg_secrets_add(s, "raw", "x", 1, &err) == -EEXIST,
       "vimg_secrets_add duplicate");
    vimg_error_free(err);
    err = NULL;

    flags = 99;
    ok(vimg_secrets_add_object(s, "secret,id=z", &flags, NULL) == -EINVAL &&
       flags == 0, "flags cleared on failure");
    vimg_secrets_free(s);
    vimg_secrets_free(NULL);
}

static void
test_files(void)
{
    struct vimg_secrets *s = vimg_secrets_new();
    char path[] = "/tmp/vimg-test-secret-XXXXXX";
    char spec[256], msg[512];
    unsigned flags = 99;
    int fd = mkstemp(path);

    ok(fd >= 0 && write(fd, "hunter2\n", 8) == 8, "temp secret file");
    close(fd);
    snprintf(spec, sizeof(spec), "secret,id=f,file=%s", path);
    ok(vimg_secrets_add_object(s, spec, &flags, NULL) == 0 && flags == 0,
       "file secret added without INLINE_DATA");
    expect_bytes(s, "f", "hunter2\n", 8, "trailing newline is kept");

    snprintf(spec, sizeof(spec), "secret,id=fb,file=%s,format=base64", path);
    expect(s, spec, -EINVAL, "Base64 data contains invalid characters");

    fd = open(path, O_WRONLY | O_TRUNC);
    ok(fd >= 0 && write(fd, KEY_B64, strlen(KEY_B64)) == (ssize_t)strlen(KEY_B64),
       "base64 key file");
    close(fd);
    snprintf(spec, sizeof(spec), "secret,id=k,file=%s,format=base64", path);
    expect(s, spec, 0, NULL);
    {
        uint8_t key[32];

        hex2bin("000102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1f", key, sizeof(key));
        expect_bytes(s, "k", key, 32, "base64 file decodes to the key");
    }

    /* A binary ciphertext file, decrypted with the key above. */
    {
        uint8_t ct[16];

        hex2bin("254ab11f46bcd7163eb0c7512a21e395", ct, sizeof(ct));
        fd = open(path, O_WRONLY | O_TRUNC);
        ok(fd >= 0 && write(fd, ct, 16) == 16, "binary ciphertext file");
        close(fd);
        snprintf(spec, sizeof(spec),
                 "secret,id=fc,file=%s,keyid=k,iv=" IV_B64, path);
        expect(s, spec, 0, NULL);
        expect_bytes(s, "fc", "123456", 6, "raw ciphertext file decrypted");
    }
    unlink(path);

    snprintf(spec, sizeof(spec), "secret,id=g,file=%s", path);
    snprintf(msg, sizeof(msg), "Unable to read %s: Failed to open file "
             "\u201c%s\u201d: No such file or directory", path, path);
    expect(s, spec, -ENOENT, msg);
    expect(s, "secret,id=g,file=/tmp", -EISDIR, "Unable to read /tmp: "
           "Error reading file \u201c/tmp\u201d: Is a directory");
    expect(s, "secret,id=g,file=", -ENOENT, "Unable to read : Failed to "
           "open file \u201c\u201d: No such file or directory");
    expect(s, "secret,id=g,file=/dev/null", 0, NULL);
    expect_bytes(s, "g", "", 0, "empty file gives an empty secret");
    vimg_secrets_free(s);
}

static void
test_keyid(void)
{
    struct vimg_secrets *s = vimg_secrets_new();

    expect(s, "secret,id=k,data=" KEY_B64 ",format=base64", 0, NULL);
    expect(s, "secret,id=kraw,data=kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 0, NULL);
    expect(s, "secret,id=short,data=short", 0, NULL);

    expect(s, "secret,id=p1,data=" CT_123456 ",format=base64,keyid=k,iv="
           IV_B64, 0, NULL);
    expect_bytes(s, "p1", "123456", 6, "openssl vector '123456'");
    expect(s, "secret,id=p2,data=" CT_16BYTES ",format=base64,keyid=k,iv="
           IV_B64, 0, NULL);
    expect_bytes(s, "p2", "0123456789abcdef", 16,
                 "openssl vector with a whole padding block");
    expect(s, "secret,id=p3,data=" CT_COMMA ",format=base64,keyid=k,iv="
           IV_B64, 0, NULL);
    expect_bytes(s, "p3", "pass,word", 9, "openssl vector 'pass,word'");

    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxxx,keyid=short,iv=" IV_B64,
           -EINVAL, "Key should be 32 bytes in length");
    expect(s, "secret,id=b,data=@,format=base64,keyid=short", -EINVAL,
           "Key should be 32 bytes in length");
    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxxx,keyid=kraw", -EINVAL,
           "IV is required to decrypt secret");
    expect(s, "secret,id=b,data=@,format=base64,keyid=kraw", -EINVAL,
           "IV is required to decrypt secret");
    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxxx,keyid=kraw,iv=YWJj",
           -EINVAL, "IV should be 16 bytes in length not 3");
    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxxx,keyid=kraw,iv=@@", -EINVAL,
           "Base64 data contains invalid characters");
    expect(s, "secret,id=b,data=@,format=base64,keyid=kraw,iv=" IV_B64,
           -EINVAL, "Base64 data contains invalid characters");
    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxx,keyid=kraw,iv=" IV_B64,
           -EINVAL, "Length 15 must be a multiple of block size 16");
    expect(s, "secret,id=b,data=@@@,keyid=kraw,iv=" IV_B64, -EINVAL,
           "Length 3 must be a multiple of block size 16");
    /* qemu-img's own results for these two: */
    expect(s, "secret,id=b,data=xxxxxxxxxxxxxxxx,keyid=kraw,iv="
           "AAAAAAAAAAAAAAAAAAAAAA==", -EINVAL,
           "Incorrect number of padding bytes (163) found on decrypted data");
    expect(s, "secret,id=b,data=" CT_PAD33 ",format=base64,keyid=k,iv="
           IV_B64, -EINVAL,
           "Incorrect number of padding bytes (33) found on decrypted data");
    expect(s, "secret,id=b,data=" CT_PAD17 ",format=base64,keyid=k,iv="
           IV_B64, -EINVAL,
           "Incorrect number of padding bytes (17) found on decrypted data");
    /* Padding 20 fits in the 32 bytes but exceeds one block. */
    expect(s, "secret,id=b,data=" CT_PAD20 ",format=base64,keyid=k,iv="
           IV_B64, -EINVAL,
           "Incorrect number of padding bytes (20) found on decrypted data");
    expect(s, "secret,id=b,data=,keyid=kraw,iv=" IV_B64, 0, NULL);
    expect_bytes(s, "b", "", 0, "empty ciphertext is an empty secret");
    vimg_secrets_free(s);
}

static long
add_user_key(const char *desc, const void *payload, size_t len)
{
    return syscall(SYS_add_key, "user", desc, payload, len,
                   KEY_SPEC_PROCESS_KEYRING);
}

static void
test_keyring(void)
{
    struct vimg_secrets *s = vimg_secrets_new();
    char spec[128], msg[160];
    long serial;

    /* A serial that does not exist (or that we cannot read). */
    {
        struct vimg_error *err = NULL;
        int r = vimg_secrets_add_object(s, "secret_keyring,id=x,serial=12345",
                                        NULL, &err);
        ok(r == -ENOKEY || r == -EACCES || r == -EKEYREVOKED,
           "unreadable serial fails (%d)", r);
        ok(err && strncmp(vimg_error_message(err),
                          "Unable to read serial key 00003039: ", 36) == 0,
           "serial printed as %%08x");
        if (r == -ENOKEY) {
            ok_str(vimg_error_message(err), "Unable to read serial key "
                   "00003039: Required key not available",
                   "qemu's message for a missing key");
        }
        vimg_error_free(err);
    }
    expect(s, "secret_keyring,id=x,serial=-1", -ENOKEY,
           "Unable to read serial key ffffffff: Required key not available");
    expect(s, "secret_keyring,id=x", -EINVAL,
           "Parameter 'serial' is missing");
    expect(s, "secret_keyring,id=x,serial=abc", -EINVAL,
           "Parameter 'serial' expects integer");
    expect(s, "secret_keyring,id=x,serial=", -EINVAL,
           "Parameter 'serial' expects integer");
    expect(s, "secret_keyring,id=x,serial= 5", -EINVAL,
           "Parameter 'serial' expects integer");
    expect(s, "secret_keyring,id=x,serial=2147483648", -EINVAL,
           "Parameter 'serial' expects int32_t");
    expect(s, "secret_keyring,id=x,serial=-2147483649", -EINVAL,
           "Parameter 'serial' expects int32_t");
    expect(s, "secret_keyring,id=x,serial=0", -EINVAL,
           "'serial' should not be equal to 0");
    expect(s, "secret_keyring,id=x,serial=1,format=foo", -EINVAL,
           "Parameter 'format' does not accept value 'foo'");

    serial = add_user_key("vimg-test", "s3cr3t\n", 7);
    if (serial < 0) {
        printf("# skip keyring payload tests: add_key: %s\n",
               strerror(errno));
    } else {
        snprintf(spec, sizeof(spec), "secret_keyring,id=kr,serial=%ld",
                 serial);
        expect(s, spec, 0, NULL);
        expect_bytes(s, "kr", "s3cr3t\n", 7, "kernel key payload");

        snprintf(spec, sizeof(spec), "secret_keyring,id=kr16,serial=0x%lx",
                 serial);
        expect(s, spec, 0, NULL);
        expect_bytes(s, "kr16", "s3cr3t\n", 7, "hex serial");

        serial = add_user_key("vimg-test-b64", "cGFzc3dvcmQ=", 12);
        snprintf(spec, sizeof(spec),
                 "secret_keyring,id=krb,serial=%ld,format=base64", serial);
        expect(s, spec, 0, NULL);
        expect_bytes(s, "krb", "password", 8, "base64 kernel key");

        /* Encrypted payload in the keyring, key from a plain secret. */
        expect(s, "secret,id=k,data=" KEY_B64 ",format=base64", 0, NULL);
        serial = add_user_key("vimg-test-enc", CT_123456, strlen(CT_123456));
        snprintf(spec, sizeof(spec), "secret_keyring,id=kre,serial=%ld,"
                 "format=base64,keyid=k,iv=" IV_B64, serial);
        expect(s, spec, 0, NULL);
        expect_bytes(s, "kre", "123456", 6, "encrypted kernel key");

        /* Revoked key: the error path with a real serial. */
        syscall(SYS_keyctl, KEYCTL_REVOKE, serial);
        snprintf(spec, sizeof(spec), "secret_keyring,id=rv,serial=%ld",
                 serial);
        snprintf(msg, sizeof(msg), "Unable to read serial key %08lx: %s",
                 serial, strerror(EKEYREVOKED));
        expect(s, spec, -EKEYREVOKED, msg);
    }
    vimg_secrets_free(s);
}

int
main(void)
{
    test_syntax_errors();
    test_data();
    test_files();
    test_keyid();
    test_keyring();
    return tap_done();
}
