/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of common/safemem.c: zeroed allocation, length bookkeeping,
 * memdup, the constant-time comparison, core-dump exclusion (VmFlags "dd"
 * in /proc/self/smaps) and that safe_free() really unmaps the buffer;
 * safe_alloc_unlocked (Argon2 scratch): DONTDUMP, "Locked: 0 kB", zeroed,
 * unmapped on free, and never handed out again by safe_alloc's page cache.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safemem.h"
#include "tap.h"

/* The VmFlags line of the mapping that contains @p, or "" if none; with
 * @locked_kb, also its "Locked:" value (-1 if not seen). */
static void
vmflags_locked(const void *p, char *out, size_t outlen, long *locked_kb)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in_map = 0;

    out[0] = '\0';
    if (locked_kb) {
        *locked_kb = -1;
    }
    if (!f) {
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;

        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') &&
            line[0] != 'V') {
            in_map = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in_map && locked_kb && strncmp(line, "Locked:", 7) == 0) {
            *locked_kb = strtol(line + 7, NULL, 10);
        } else if (in_map && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, outlen, "%s", line);
            break;
        }
    }
    fclose(f);
}

static void
vmflags_of(const void *p, char *out, size_t outlen)
{
    vmflags_locked(p, out, outlen, NULL);
}

int
main(void)
{
    uint8_t *p, *q;
    size_t i;
    int zero = 1;

    p = safe_alloc(100);
    ok(p != NULL, "safe_alloc(100)");
    for (i = 0; i < 100; i++) {
        zero &= p[i] == 0;
    }
    ok(zero, "safe_alloc memory is zeroed");
    ok(safe_len(p) == 100, "safe_len reports 100");
    ok(((uintptr_t)p & 15) == 0, "safe_alloc is 16-byte aligned");
    memset(p, 0xa5, 100);

    {
        char flags[512];

        vmflags_of(p, flags, sizeof(flags));
        if (flags[0]) {
            ok(strstr(flags, " dd") != NULL,
               "mapping is excluded from core dumps (MADV_DONTDUMP)");
        } else {
            printf("# skip: /proc/self/smaps not readable\n");
        }
    }

    q = safe_memdup(p, 100);
    ok(q && q != p && safe_len(q) == 100 && memcmp(p, q, 100) == 0,
       "safe_memdup copies content and length");

    ok(safe_memeq(p, q, 100), "safe_memeq equal buffers");
    q[99] ^= 1;
    ok(!safe_memeq(p, q, 100), "safe_memeq detects last-byte difference");
    q[99] ^= 1;
    q[0] ^= 0x80;
    ok(!safe_memeq(p, q, 100), "safe_memeq detects first-byte difference");
    ok(safe_memeq(p, q + 1, 0), "safe_memeq of 0 bytes is true");
    ok(safe_memeq(p + 1, q + 1, 99), "safe_memeq on a sub-range");

    safe_wipe(q, 50);
    zero = 1;
    for (i = 0; i < 50; i++) {
        zero &= q[i] == 0;
    }
    ok(zero && q[50] == 0xa5, "safe_wipe clears exactly the range");

    /* Length 0 is a valid, freeable buffer. */
    {
        void *z = safe_alloc(0);

        ok(z != NULL && safe_len(z) == 0, "safe_alloc(0)");
        safe_free(z);
    }

    /* Larger than a page: still one zeroed buffer. */
    {
        size_t n = 3 * 4096 + 17;
        uint8_t *big = safe_alloc(n);

        ok(big && safe_len(big) == n && big[n - 1] == 0,
           "multi-page allocation");
        if (big) {
            big[n - 1] = 1;
        }
        safe_free(big);
    }

    /* An absurd size fails cleanly. */
    errno = 0;
    ok(safe_alloc(SIZE_MAX - 8) == NULL && errno == ENOMEM,
       "huge safe_alloc fails with ENOMEM");

    /* safe_owns: only the start of a live safe buffer. */
    {
        uint8_t *heap = malloc(64);

        ok(safe_owns(p) && !safe_owns(p + 1) && !safe_owns(heap) &&
           !safe_owns(NULL), "safe_owns recognises safe buffers only");
        free(heap);
    }

    /*
     * After safe_free a one-page buffer is either unmapped (mincore fails
     * with ENOMEM) or kept in the page cache: then wiped, header included,
     * and no longer a safe buffer.  Bigger buffers are always unmapped.
     */
    {
        long psz = sysconf(_SC_PAGESIZE);
        uintptr_t page = (uintptr_t)p & ~(uintptr_t)(psz - 1);
        unsigned char vec;
        size_t n = (size_t)psz * 3;
        uint8_t *big = safe_alloc(n);
        uintptr_t bigpage = (uintptr_t)big & ~(uintptr_t)(psz - 1);
        bool wiped = true;

        ok(mincore((void *)page, (size_t)psz, &vec) == 0,
           "buffer mapped before safe_free");
        safe_free(p);
        if (mincore((void *)page, (size_t)psz, &vec) == 0) {
            for (long k = 0; k < psz; k++) {
                wiped = wiped && ((volatile uint8_t *)page)[k] == 0;
            }
            ok(wiped && !safe_owns(p), "cached page wiped after safe_free");
        } else {
            ok(errno == ENOMEM, "buffer unmapped after safe_free");
        }
        safe_free(big);
        ok(big && mincore((void *)bigpage, n, &vec) == -1 && errno == ENOMEM,
           "multi-page buffer unmapped after safe_free");
    }
    /* Unlocked scratch memory (Argon2): never dumped, never locked. */
    {
        long psz = sysconf(_SC_PAGESIZE);
        size_t n = 8u << 20;
        uint8_t *u = safe_alloc_unlocked(n), *one;
        char flags[512];
        long locked = -1;
        unsigned char vec;

        ok(u && safe_len(u) == n && safe_owns(u) && u[0] == 0 &&
           u[n - 1] == 0, "safe_alloc_unlocked(8 MiB): zeroed, owned");
        if (u) {
            memset(u, 0x5c, n);
            vmflags_locked(u, flags, sizeof(flags), &locked);
            if (flags[0]) {
                ok(strstr(flags, " dd") != NULL && locked == 0,
                   "unlocked scratch is MADV_DONTDUMP and not mlocked");
            } else {
                printf("# skip: /proc/self/smaps not readable\n");
            }
        }
        safe_free(u);
        ok(u && mincore((void *)((uintptr_t)u & ~(uintptr_t)(psz - 1)), n,
                        &vec) == -1 && errno == ENOMEM,
           "unlocked scratch unmapped after safe_free");
        /* A one-page unlocked buffer must not reach the locked-page cache
         * (from which safe_alloc would hand it out): it is unmapped. */
        one = safe_alloc_unlocked(64);
        safe_free(one);
        ok(one && mincore((void *)((uintptr_t)one & ~(uintptr_t)(psz - 1)),
                          (size_t)psz, &vec) == -1 && errno == ENOMEM,
           "one-page unlocked buffer unmapped, not cached");
    }

    safe_free(q);
    safe_free(NULL);        /* must not crash */
    ok(safe_len(NULL) == 0, "safe_len(NULL) is 0");

    return tap_done();
}
