/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PBKDF2-HMAC-SHA256 throughput of vimg next to qemu-img's.
 *
 * vimg: crypto_pbkdf2_rate() (thread CPU time, the same calibration loop
 * qemu uses) for 20-, 32- and 64-byte outputs, plus a cross-check that
 * times crypto_pbkdf2() directly.  For comparison, the alternatives vimg
 * does not use on this CPU: libgcrypt's gcry_kdf_derive (the portable path,
 * taken without the SHA extensions) and a naive HMAC-per-iteration loop.
 *
 * qemu: qemu-img has no benchmark command, but its LUKS create calibrates
 * PBKDF2 and stores the result: with iter-time=1000 the master-key digest
 * gets rate(20 B)/8 iterations and the key slot rate(64 B) iterations.  The
 * image is created (retrying Debian's intermittent "Unable to get accurate
 * CPU usage" failure) and read back with `qemu-img info --output=json`;
 * alternatively `--qemu-json FILE` reads a saved info output.
 *
 * Usage: bench-pbkdf2 [--qemu-json FILE] [--qemu-img PATH]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "crypto/crypto.h"
#include "crypto/crypto-internal.h"

static double
cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* PBKDF2 the slow way: one HMAC call per iteration (one output block). */
static void
naive_pbkdf2(const char *pw, const uint8_t *salt, size_t saltlen,
             uint64_t iters, uint8_t *out)
{
    uint8_t msg[64 + 4], u[32];

    memcpy(msg, salt, saltlen);
    msg[saltlen] = 0;
    msg[saltlen + 1] = 0;
    msg[saltlen + 2] = 0;
    msg[saltlen + 3] = 1;
    crypto_hmac(CRYPTO_HASH_SHA256, pw, strlen(pw), msg, saltlen + 4, u);
    memcpy(out, u, 32);
    for (uint64_t i = 1; i < iters; i++) {
        crypto_hmac(CRYPTO_HASH_SHA256, pw, strlen(pw), u, 32, u);
        for (int j = 0; j < 32; j++) {
            out[j] ^= u[j];
        }
    }
}

/* Read master-key-iters and slot 0 iters from qemu-img info JSON. */
static int
parse_qemu_json(const char *text, uint64_t *mk_iters, uint64_t *slot_iters)
{
    struct json_object *root, *fs, *data, *v, *slots, *slot;
    int ret = -1;

    root = json_tokener_parse(text);
    if (!root) {
        return -1;
    }
    if (json_object_object_get_ex(root, "format-specific", &fs) &&
        json_object_object_get_ex(fs, "data", &data) &&
        json_object_object_get_ex(data, "master-key-iters", &v)) {
        *mk_iters = (uint64_t)json_object_get_int64(v);
        if (json_object_object_get_ex(data, "slots", &slots) &&
            json_object_array_length(slots) > 0) {
            slot = json_object_array_get_idx(slots, 0);
            if (json_object_object_get_ex(slot, "iters", &v)) {
                *slot_iters = (uint64_t)json_object_get_int64(v);
                ret = 0;
            }
        }
    }
    json_object_put(root);
    return ret;
}

static char *
read_all(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);

    if (!buf) {
        return NULL;
    }
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);

        len += n;
        if (n == 0) {
            break;
        }
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    return buf;
}

/* Create a LUKS image with qemu-img (iter-time=1000) and read its info. */
static char *
qemu_info_json(const char *qemu_img)
{
    char dir[] = "/tmp/vimg-bench-XXXXXX", cmd[1024];
    char *json = NULL;

    if (!mkdtemp(dir)) {
        return NULL;
    }
    for (int attempt = 1; attempt <= 8; attempt++) {
        snprintf(cmd, sizeof(cmd),
                 "%s create -q -f luks --object secret,id=s0,data=x "
                 "-o key-secret=s0,iter-time=1000 %s/f.luks 1M 2>%s/err",
                 qemu_img, dir, dir);
        if (system(cmd) == 0) {
            break;
        }
        fprintf(stderr, "qemu-img create failed (attempt %d), retrying\n",
                attempt);
    }
    snprintf(cmd, sizeof(cmd), "%s info --output=json %s/f.luks 2>/dev/null",
             qemu_img, dir);
    FILE *p = popen(cmd, "r");
    if (p) {
        json = read_all(p);
        pclose(p);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return json;
}

int
main(int argc, char **argv)
{
    const char *json_file = NULL, *qemu_img = "qemu-img";
    uint64_t rate[3] = { 0 }, mk = 0, slot = 0;
    static const size_t outlens[3] = { 20, 32, 64 };
    uint8_t salt[32], out[64];
    char *json = NULL;
    double t0, t;
    uint64_t n;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--qemu-json") == 0 && i + 1 < argc) {
            json_file = argv[++i];
        } else if (strcmp(argv[i], "--qemu-img") == 0 && i + 1 < argc) {
            qemu_img = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s [--qemu-json FILE] [--qemu-img PATH]\n",
                    argv[0]);
            return 2;
        }
    }
    if (crypto_init() < 0) {
        fprintf(stderr, "crypto_init failed\n");
        return 1;
    }

    printf("PBKDF2-HMAC-SHA256, iterations per second of thread CPU time\n\n");
    for (int i = 0; i < 3; i++) {
        if (crypto_pbkdf2_rate(CRYPTO_HASH_SHA256, outlens[i], &rate[i]) < 0) {
            fprintf(stderr, "crypto_pbkdf2_rate failed\n");
            return 1;
        }
        printf("vimg crypto_pbkdf2_rate  %2zu-byte output: %10llu it/s\n",
               outlens[i], (unsigned long long)rate[i]);
    }

    /* Cross-check: time one direct call of ~1 s worth of iterations. */
    memset(salt, 0x11, sizeof(salt));
    n = rate[1];
    t0 = cpu_now();
    crypto_pbkdf2(CRYPTO_HASH_SHA256, "password", 8, salt, sizeof(salt), n,
                  out, 32);
    t = cpu_now() - t0;
    printf("vimg crypto_pbkdf2 direct  32-byte output: %10.0f it/s "
           "(%llu iterations in %.3f s)\n", n / t, (unsigned long long)n, t);
    for (int i = 0; i < 3; i += 2) {
        n = rate[i] / 2;
        t0 = cpu_now();
        crypto_pbkdf2_portable(CRYPTO_HASH_SHA256, "password", 8, salt,
                               sizeof(salt), n, out, outlens[i]);
        t = cpu_now() - t0;
        printf("libgcrypt gcry_kdf_derive  %2zu-byte output: %10.0f it/s "
               "(portable path, used without SHA-NI)\n", outlens[i], n / t);
    }
    n = rate[1] / 20;
    t0 = cpu_now();
    naive_pbkdf2("password", salt, sizeof(salt), n, out);
    t = cpu_now() - t0;
    printf("naive HMAC-per-iteration   32-byte output: %10.0f it/s "
           "(the path vimg does not use)\n", n / t);

    if (json_file) {
        FILE *f = fopen(json_file, "r");
        if (f) {
            json = read_all(f);
            fclose(f);
        }
    } else {
        json = qemu_info_json(qemu_img);
    }
    if (!json || parse_qemu_json(json, &mk, &slot) < 0) {
        printf("\nqemu-img: no LUKS info available (is qemu-img installed?)\n");
        free(json);
        return 0;
    }
    free(json);

    /* iter-time=1000: mk = rate(20)*1/8, slot = rate(64)*1. */
    printf("\nqemu-img luks, iter-time=1000: master-key-iters %llu, "
           "slot iters %llu\n", (unsigned long long)mk,
           (unsigned long long)slot);
    printf("qemu rate, 20-byte output (master-key-iters*8): %10llu it/s\n",
           (unsigned long long)(mk * 8));
    printf("qemu rate, 64-byte output (slot iters):         %10llu it/s\n",
           (unsigned long long)slot);
    printf("\nratio vimg/qemu, 20-byte output: %.2f\n",
           mk ? (double)rate[0] / (double)(mk * 8) : 0.0);
    printf("ratio vimg/qemu, 64-byte output: %.2f\n",
           slot ? (double)rate[2] / (double)slot : 0.0);
    return 0;
}
