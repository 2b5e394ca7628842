/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Corpus replay driver for the fuzz targets.  Linked with one fuzz target
 * instead of libFuzzer, it feeds every regular file named on the command
 * line, or found (non-recursively, in name order) in a directory named on
 * the command line, to LLVMFuzzerTestOneInput() once.  This lets the normal
 * and the sanitizer test runs replay the seed corpus and the crash
 * regressions without clang or libFuzzer.  A target that finds a bug
 * aborts (or a sanitizer stops the process); otherwise the driver prints
 * how many inputs it ran and exits 0.  An argument that cannot be read, or
 * a run that found no input at all, is an error (exit 1): a replay that
 * tests nothing must not pass.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs larger than this are not fuzz inputs; refuse them. */
#define REPLAY_MAX_INPUT (16u << 20)

static size_t n_run;

static int
run_file(const char *path)
{
    struct stat st;
    uint8_t *buf;
    size_t len = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: too large for a fuzz input\n", path);
        close(fd);
        return -1;
    }
    /* Exactly the file's bytes, so ASan sees reads past the input. */
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return -1;
    }
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            fprintf(stderr, "replay: %s: short read\n", path);
            free(buf);
            close(fd);
            return -1;
        }
        len += (size_t)r;
    }
    close(fd);
    if (getenv("REPLAY_VERBOSE")) {
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    n_run++;
    return 0;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_dir(const char *dir)
{
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    struct dirent *de;
    int ret = 0;
    DIR *d;

    d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;   /* ".", "..", and hidden files such as .gitkeep */
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof(*nn));

            if (!nn) {
                ret = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
            ret = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    for (i = 0; i < n; i++) {
        struct stat st;

        if (ret == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            ret = run_file(names[i]);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int
main(int argc, char **argv)
{
    struct timespec t0, t1;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 1; i < argc; i++) {
        struct stat st;
        int r;

        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        r = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        if (r < 0) {
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (n_run == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replayed %zu inputs in %.3f s\n", n_run,
           (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
