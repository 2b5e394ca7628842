/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failpoints for crash-consistency testing.  The environment variable
 * VIMG_FAILPOINT (read once per process) names points in the stream of
 * data-writing system calls made through lib/io.c where the process should
 * die as if by kill -9 ("crash") or where the call should fail without
 * writing anything ("eio", "enospc"):
 *
 *     VIMG_FAILPOINT=write:17:crash,flush:3:eio
 *
 * VIMG_FAILPOINT_COUNT=PATH makes the process write its final per-kind
 * call counters to PATH at exit, so a test can find how many points there
 * are.  See docs/failpoints.md.
 *
 * When neither variable is set, failpoint_hit() costs one well-predicted
 * branch on a global that never changes after the first call.
 *
 * The lib/io.c helpers that hit these points (full_pwrite, file_punch_zero,
 * file_flush, file_truncate, file_discard, file_preallocate) are declared
 * in lib/internal.h.
 */
#ifndef VIMG_FAILPOINT_H
#define VIMG_FAILPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The kinds of counted calls; the names are the spec's first field. */
enum failpoint_kind {
    FAILPOINT_WRITE,        /* "write":    full_pwrite()                   */
    FAILPOINT_ZERO,         /* "zero":     file_punch_zero()               */
    FAILPOINT_FLUSH,        /* "flush":    file_flush()                    */
    FAILPOINT_TRUNCATE,     /* "truncate": file_truncate()                 */
    FAILPOINT_DISCARD,      /* "discard":  file_discard()                  */
    FAILPOINT_ALLOC,        /* "alloc":    file_preallocate()              */
    FAILPOINT_NKINDS,
    FAILPOINT_ANY = FAILPOINT_NKINDS, /* "any": every counted call, in order */
};

/* What happens at the chosen call. */
enum failpoint_action {
    FAILPOINT_CRASH,        /* raise(SIGKILL) before the call              */
    FAILPOINT_EIO,          /* return -EIO, nothing written                */
    FAILPOINT_ENOSPC,       /* return -ENOSPC, nothing written             */
};

/* One parsed "KIND:N:ACTION" element. */
struct failpoint {
    enum failpoint_kind kind;   /* FAILPOINT_ANY allowed */
    uint64_t nth;               /* 1-based call number   */
    enum failpoint_action action;
};

/* At most this many elements in VIMG_FAILPOINT. */
#define FAILPOINT_MAX 16

/*
 * Fast-path state: FAILPOINT_STATE_UNKNOWN until the environment has been
 * read, then OFF (nothing to do) or ON.  Internal to failpoint_hit().
 */
enum {
    FAILPOINT_STATE_UNKNOWN = 0,
    FAILPOINT_STATE_OFF = 1,
    FAILPOINT_STATE_ON = 2,
};
extern int failpoint_state;

/**
 * failpoint_parse - parse a VIMG_FAILPOINT value.
 * @spec: "KIND:N:ACTION[,KIND:N:ACTION...]"; KIND is write, zero, flush,
 *   truncate, discard, alloc or any; N a decimal number >= 1; ACTION crash,
 *   eio or enospc.  Empty elements (",,") are not allowed.
 * @out: array of @max entries receiving the elements.
 * @max: capacity of @out.
 * @n_out: receives the number of elements (unchanged on failure).
 * Return: 0, -EINVAL on a syntax error, -E2BIG with more than @max elements.
 */
int failpoint_parse(const char *spec, struct failpoint *out, size_t max,
                    size_t *n_out);

/* Slow path of failpoint_hit(); do not call directly. */
int failpoint_hit_slow(enum failpoint_kind kind);

/**
 * failpoint_hit - count one call of @kind and apply a matching failpoint.
 * @kind: the kind of the call about to be made (not FAILPOINT_ANY).
 * Called by lib/io.c right before a data-writing system call.  Does not
 * return when a "crash" failpoint matches.
 * Return: 0 to go ahead with the call, or the negative errno the caller
 *   must return instead (-EIO, -ENOSPC; -EINVAL for every call when
 *   VIMG_FAILPOINT cannot be parsed, so a mistyped spec cannot go unnoticed).
 */
static inline int
failpoint_hit(enum failpoint_kind kind)
{
    if (__builtin_expect(__atomic_load_n(&failpoint_state, __ATOMIC_RELAXED) ==
                         FAILPOINT_STATE_OFF, 1)) {
        return 0;
    }
    return failpoint_hit_slow(kind);
}

/**
 * failpoint_count - calls of @kind counted so far (FAILPOINT_ANY: all).
 * Counting only happens while failpoints are on (a variable is set, or
 * failpoint_setup_for_test() armed them).
 */
uint64_t failpoint_count(enum failpoint_kind kind);

/**
 * failpoint_kind_name - "write", "flush", ..., "any"; NULL if out of range.
 */
const char *failpoint_kind_name(enum failpoint_kind kind);

/**
 * failpoint_setup_for_test - replace the environment's configuration (for
 * unit tests).  Resets all counters.
 * @spec: as VIMG_FAILPOINT, or NULL to turn failpoints off.  "" turns
 *   counting on without any failpoint.
 * Return: 0, or failpoint_parse()'s error (failpoints are then "invalid":
 *   every hit returns -EINVAL, as with a bad VIMG_FAILPOINT).
 */
int failpoint_setup_for_test(const char *spec);

/**
 * failpoint_write_counts - write "KIND COUNT" lines (every kind, then
 * "any") to @path, replacing it.  Used at exit for VIMG_FAILPOINT_COUNT.
 * Return: 0 or -errno.
 */
int failpoint_write_counts(const char *path);

#endif /* VIMG_FAILPOINT_H */
