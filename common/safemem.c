/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory for key material.  Every buffer is its own anonymous mapping: a
 * small header (mapping size and user length) followed by the user area,
 * rounded up to whole pages.  The pages are mlock()ed when the RLIMIT_MEMLOCK
 * budget allows (best effort: failure is ignored), marked MADV_DONTDUMP so
 * they never land in a core file, start zeroed, and are wiped with
 * explicit_bzero() before munmap().
 *
 * Freed one-page buffers (the common case: libgcrypt's secure cipher and
 * hash contexts, see lib/crypto/backend-gcrypt.c) are wiped and kept in a
 * small cache of still-locked, still-DONTDUMP pages, so a hash of key
 * material costs a memset instead of five system calls.
 *
 * safe_alloc_unlocked() is the same without mlock(), for large scratch
 * memory derived from secrets (Argon2's memory cost, up to 4 GiB): never
 * dumped and wiped on free, but not pinned, which would fail beyond
 * RLIMIT_MEMLOCK or, for root, pin gigabytes.  Such buffers never enter the
 * page cache, which holds locked pages only.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safemem.h"

#define SAFE_MAGIC 0x5afe4d656d6f7279ULL   /* guards against foreign pointers */

/* Placed directly before the user area; 32 bytes keeps it 16-aligned. */
struct safe_hdr {
    uint64_t magic;
    size_t map_len;    /* whole mapping, header included */
    size_t len;        /* what the caller asked for */
    size_t unlocked;   /* 1: from safe_alloc_unlocked (never mlocked) */
};

/* Wiped one-page mappings ready for reuse (mlocked, MADV_DONTDUMP). */
#define SAFE_CACHE_MAX 8
static struct safe_hdr *cache[SAFE_CACHE_MAX];
static size_t n_cache;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Live buffers, so that safe_owns() can answer for any pointer (libgcrypt's
 * free hook passes ordinary malloc'd ones too) without reading memory
 * outside it.  Only addresses are kept; there are few live buffers.
 */
static const void **live;
static size_t n_live, cap_live;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static bool
live_add(const void *p)
{
    bool ok = true;

    pthread_mutex_lock(&live_lock);
    if (n_live == cap_live) {
        size_t ncap = cap_live ? cap_live * 2 : 64;
        const void **n = realloc(live, ncap * sizeof(*n));

        if (n) {
            live = n;
            cap_live = ncap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        live[n_live++] = p;
    }
    pthread_mutex_unlock(&live_lock);
    return ok;
}

static void
live_remove(const void *p)
{
    size_t i;

    pthread_mutex_lock(&live_lock);
    for (i = 0; i < n_live; i++) {
        if (live[i] == p) {
            live[i] = live[--n_live];
            break;
        }
    }
    pthread_mutex_unlock(&live_lock);
}

static size_t
page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);

    return page > 0 ? (size_t)page : 4096;
}

static struct safe_hdr *
hdr_of(const void *p)
{
    return (struct safe_hdr *)((uintptr_t)p - sizeof(struct safe_hdr));
}

void
safe_wipe(void *p, size_t len)
{
    if (p && len) {
        explicit_bzero(p, len);
    }
}

static void *
alloc_pages(size_t len, bool lock)
{
    size_t psz = page_size();
    size_t total;
    struct safe_hdr *h = NULL;
    void *map;

    if (len > SIZE_MAX - sizeof(*h) - psz) {
        errno = ENOMEM;
        return NULL;
    }
    total = (len + sizeof(*h) + psz - 1) / psz * psz;
    if (total == psz && lock) {
        pthread_mutex_lock(&cache_lock);
        if (n_cache > 0) {
            h = cache[--n_cache];
        }
        pthread_mutex_unlock(&cache_lock);
        if (h) {
            if (!live_add(h + 1)) {
                pthread_mutex_lock(&cache_lock);
                cache[n_cache++] = h;
                pthread_mutex_unlock(&cache_lock);
                errno = ENOMEM;
                return NULL;
            }
            /* Wiped when it was freed: zeroed except for the header. */
            h->magic = SAFE_MAGIC;
            h->map_len = total;
            h->len = len;
            return h + 1;
        }
    }
    map = mmap(NULL, total, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    /* Best effort: an unprivileged process may exceed its mlock budget. */
    if (lock) {
        (void)mlock(map, total);
    }
#ifdef MADV_DONTDUMP
    (void)madvise(map, total, MADV_DONTDUMP);
#endif
    /* Anonymous mappings are already zero-filled. */
    h = map;
    if (!live_add(h + 1)) {
        (void)munlock(map, total);
        (void)munmap(map, total);
        errno = ENOMEM;
        return NULL;
    }
    h->magic = SAFE_MAGIC;
    h->map_len = total;
    h->len = len;
    h->unlocked = !lock;
    return h + 1;
}

void *
safe_alloc(size_t len)
{
    return alloc_pages(len, true);
}

void *
safe_alloc_unlocked(size_t len)
{
    return alloc_pages(len, false);
}

void
safe_free(void *p)
{
    struct safe_hdr *h;
    size_t total;
    bool locked;
    int saved = errno;

    if (!p) {
        return;
    }
    h = hdr_of(p);
    if (h->magic != SAFE_MAGIC) {
        /* Not ours: refusing is safer than unmapping a random range. */
        return;
    }
    live_remove(p);
    total = h->map_len;
    locked = !h->unlocked;
    explicit_bzero(h, total);
    if (total == page_size() && locked) {
        bool kept = false;

        pthread_mutex_lock(&cache_lock);
        if (n_cache < SAFE_CACHE_MAX) {
            cache[n_cache++] = h;
            kept = true;
        }
        pthread_mutex_unlock(&cache_lock);
        if (kept) {
            errno = saved;
            return;
        }
    }
    if (locked) {
        (void)munlock(h, total);
    }
    (void)munmap(h, total);
    errno = saved;
}

bool
safe_owns(const void *p)
{
    bool found = false;
    size_t i;

    if (!p || ((uintptr_t)p & (page_size() - 1)) != sizeof(struct safe_hdr)) {
        return false;
    }
    pthread_mutex_lock(&live_lock);
    for (i = 0; i < n_live && !found; i++) {
        found = live[i] == p;
    }
    pthread_mutex_unlock(&live_lock);
    return found;
}

size_t
safe_len(const void *p)
{
    if (!p || hdr_of(p)->magic != SAFE_MAGIC) {
        return 0;
    }
    return hdr_of(p)->len;
}

void *
safe_memdup(const void *src, size_t len)
{
    void *p = safe_alloc(len);

    if (p && len) {
        memcpy(p, src, len);
    }
    return p;
}

bool
safe_memeq(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    size_t i;

    /* No early exit: the loop always visits all @len bytes. */
    for (i = 0; i < len; i++) {
        diff |= (uint8_t)(x[i] ^ y[i]);
    }
    return diff == 0;
}
