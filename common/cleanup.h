/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scope-bound cleanup helpers (__attribute__((cleanup))). */
#ifndef VIMG_CLEANUP_H
#define VIMG_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_free(void *ptr)
{
    free(*(void **)ptr);
}
#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))

static inline void
cleanup_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
}
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

/* Transfer ownership out of a CLEANUP_ variable: returns p, NULLs the source. */
#define TAKE_PTR(p) ({ __typeof__(p) take_tmp_ = (p); (p) = NULL; take_tmp_; })
#define TAKE_FD(fd) ({ int take_fd_ = (fd); (fd) = -1; take_fd_; })

#endif /* VIMG_CLEANUP_H */
