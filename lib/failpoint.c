/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failpoints for crash-consistency tests (see failpoint.h and
 * docs/failpoints.md).  The configuration comes from VIMG_FAILPOINT and
 * VIMG_FAILPOINT_COUNT, read once per process under pthread_once.  Each
 * counted kind of call has an atomic counter, plus one for all kinds
 * together ("any"), so concurrent writers (the pipelined copy) still get
 * unique call numbers.  When no variable is set the state drops to OFF and
 * failpoint_hit() in the header returns at its first branch.
 *
 * The library never prints or exits; the only ways a failpoint shows are a
 * SIGKILL it raises on purpose, the error codes it injects, and the counter
 * file written at exit when asked for.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failpoint.h"

int failpoint_state = FAILPOINT_STATE_UNKNOWN;

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct failpoint points[FAILPOINT_MAX];
static size_t n_points;
static bool spec_invalid;                  /* every hit fails with -EINVAL */
static uint64_t counters[FAILPOINT_NKINDS + 1];   /* [FAILPOINT_ANY] = all */
static char count_path[4096];

static const char *const kind_names[FAILPOINT_NKINDS + 1] = {
    [FAILPOINT_WRITE] = "write",
    [FAILPOINT_ZERO] = "zero",
    [FAILPOINT_FLUSH] = "flush",
    [FAILPOINT_TRUNCATE] = "truncate",
    [FAILPOINT_DISCARD] = "discard",
    [FAILPOINT_ALLOC] = "alloc",
    [FAILPOINT_ANY] = "any",
};

static const char *const action_names[] = {
    [FAILPOINT_CRASH] = "crash",
    [FAILPOINT_EIO] = "eio",
    [FAILPOINT_ENOSPC] = "enospc",
};

const char *
failpoint_kind_name(enum failpoint_kind kind)
{
    if ((unsigned)kind > FAILPOINT_ANY) {
        return NULL;
    }
    return kind_names[kind];
}

/* Match [s, s+len) against a table of names; index or -1. */
static int
lookup(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Parse one "KIND:N:ACTION" element of exactly @len bytes. */
static int
parse_one(const char *s, size_t len, struct failpoint *fp)
{
    const char *end = s + len, *c1, *c2, *p;
    uint64_t n = 0;
    int k, a;

    c1 = memchr(s, ':', len);
    if (!c1) {
        return -EINVAL;
    }
    c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
    if (!c2) {
        return -EINVAL;
    }
    k = lookup(kind_names, FAILPOINT_NKINDS + 1, s, (size_t)(c1 - s));
    a = lookup(action_names, sizeof(action_names) / sizeof(action_names[0]),
               c2 + 1, (size_t)(end - c2 - 1));
    if (k < 0 || a < 0 || c2 == c1 + 1) {
        return -EINVAL;
    }
    for (p = c1 + 1; p < c2; p++) {
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        unsigned d = (unsigned)(*p - '0');

        if (n > UINT64_MAX / 10 ||
            (n == UINT64_MAX / 10 && d > UINT64_MAX % 10)) {
            return -EINVAL;             /* does not fit in 64 bits */
        }
        n = n * 10 + d;
    }
    if (n == 0) {
        return -EINVAL;
    }
    fp->kind = (enum failpoint_kind)k;
    fp->nth = n;
    fp->action = (enum failpoint_action)a;
    return 0;
}

int
failpoint_parse(const char *spec, struct failpoint *out, size_t max,
                size_t *n_out)
{
    struct failpoint tmp[FAILPOINT_MAX];
    size_t n = 0;
    const char *s = spec;

    if (!spec || !*spec) {
        return -EINVAL;
    }
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        int r;

        if (n >= max || n >= FAILPOINT_MAX) {
            return -E2BIG;
        }
        r = parse_one(s, len, &tmp[n]);
        if (r < 0) {
            return r;
        }
        n++;
        if (!comma) {
            break;
        }
        s = comma + 1;
    }
    memcpy(out, tmp, n * sizeof(tmp[0]));
    *n_out = n;
    return 0;
}

int
failpoint_write_counts(const char *path)
{
    char buf[512];
    size_t len = 0;
    int fd, r = 0;

    for (int k = 0; k <= FAILPOINT_ANY; k++) {
        int w = snprintf(buf + len, sizeof(buf) - len, "%s %" PRIu64 "\n",
                         kind_names[k],
                         __atomic_load_n(&counters[k], __ATOMIC_RELAXED));
        if (w < 0 || (size_t)w >= sizeof(buf) - len) {
            return -ENOSPC;
        }
        len += (size_t)w;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    /* Plain write(2): the counter file must not count itself. */
    if (write(fd, buf, len) != (ssize_t)len) {
        r = errno ? -errno : -EIO;
    }
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    return r;
}

static void
write_counts_at_exit(void)
{
    (void)failpoint_write_counts(count_path);
}

static void
read_env(void)
{
    const char *spec = getenv("VIMG_FAILPOINT");
    const char *path = getenv("VIMG_FAILPOINT_COUNT");
    int state = FAILPOINT_STATE_OFF;

    if (spec && *spec) {
        if (failpoint_parse(spec, points, FAILPOINT_MAX, &n_points) < 0) {
            spec_invalid = true;
        }
        state = FAILPOINT_STATE_ON;
    }
    if (path && *path && strlen(path) < sizeof(count_path)) {
        strcpy(count_path, path);
        if (atexit(write_counts_at_exit) == 0) {
            state = FAILPOINT_STATE_ON;
        }
    }
    __atomic_store_n(&failpoint_state, state, __ATOMIC_RELEASE);
}

int
failpoint_hit_slow(enum failpoint_kind kind)
{
    uint64_t n, any;

    pthread_once(&env_once, read_env);
    if (__atomic_load_n(&failpoint_state, __ATOMIC_ACQUIRE) ==
        FAILPOINT_STATE_OFF) {
        return 0;
    }
    if ((unsigned)kind >= FAILPOINT_NKINDS) {
        return -EINVAL;
    }
    if (spec_invalid) {
        return -EINVAL;
    }
    n = __atomic_add_fetch(&counters[kind], 1, __ATOMIC_RELAXED);
    any = __atomic_add_fetch(&counters[FAILPOINT_ANY], 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n_points; i++) {
        const struct failpoint *fp = &points[i];

        if (!(fp->kind == kind && fp->nth == n) &&
            !(fp->kind == FAILPOINT_ANY && fp->nth == any)) {
            continue;
        }
        switch (fp->action) {
        case FAILPOINT_CRASH:
            /* As kill -9: no atexit handlers, no buffered output. */
            raise(SIGKILL);
            _exit(128 + SIGKILL);
        case FAILPOINT_EIO:
            return -EIO;
        case FAILPOINT_ENOSPC:
            return -ENOSPC;
        }
    }
    return 0;
}

uint64_t
failpoint_count(enum failpoint_kind kind)
{
    if ((unsigned)kind > FAILPOINT_ANY) {
        return 0;
    }
    return __atomic_load_n(&counters[kind], __ATOMIC_RELAXED);
}

int
failpoint_setup_for_test(const char *spec)
{
    int r = 0;

    /* Let the environment be read first so that it cannot override us. */
    pthread_once(&env_once, read_env);
    for (int k = 0; k <= FAILPOINT_ANY; k++) {
        __atomic_store_n(&counters[k], 0, __ATOMIC_RELAXED);
    }
    n_points = 0;
    spec_invalid = false;
    if (!spec) {
        __atomic_store_n(&failpoint_state, FAILPOINT_STATE_OFF,
                         __ATOMIC_RELEASE);
        return 0;
    }
    if (*spec) {
        r = failpoint_parse(spec, points, FAILPOINT_MAX, &n_points);
        if (r < 0) {
            spec_invalid = true;
        }
    }
    __atomic_store_n(&failpoint_state, FAILPOINT_STATE_ON, __ATOMIC_RELEASE);
    return r;
}
