/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory for key material: page-backed, mlock()ed where the limit allows,
 * excluded from core dumps (MADV_DONTDUMP), wiped before it is released.
 */
#ifndef VIMG_SAFEMEM_H
#define VIMG_SAFEMEM_H

#include <stdbool.h>
#include <stddef.h>

/** safe_alloc - zeroed secure buffer of @len bytes (len may be 0); NULL + errno on failure. */
void *safe_alloc(size_t len);
/**
 * safe_alloc_unlocked - safe_alloc without mlock (MADV_DONTDUMP, zeroed,
 * wiped by safe_free): for large scratch memory such as Argon2's, which
 * must not be pinned.
 */
void *safe_alloc_unlocked(size_t len);
/** safe_free - wipe and release a buffer from safe_alloc (NULL is a no-op). */
void safe_free(void *p);
/** safe_len - the length given to safe_alloc. */
size_t safe_len(const void *p);
/** safe_memdup - safe copy of @len bytes. */
void *safe_memdup(const void *src, size_t len);
/** safe_memeq - constant-time comparison (time depends only on @len). */
bool safe_memeq(const void *a, const void *b, size_t len);
/** safe_owns - true if @p is the start of a live safe_alloc() buffer. */
bool safe_owns(const void *p);
/** safe_wipe - explicit_bzero that the compiler cannot drop. */
void safe_wipe(void *p, size_t len);

static inline void
cleanup_safe_free(void *ptr)
{
    safe_free(*(void **)ptr);
}
#define CLEANUP_SAFE_FREE __attribute__((cleanup(cleanup_safe_free)))

#endif /* VIMG_SAFEMEM_H */
