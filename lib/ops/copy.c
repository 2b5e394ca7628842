/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg_copy: the data path of `convert` (and `dd`), working only through
 * the public image API.
 *
 * The source is walked with block status: runs that read as zeroes are not
 * read at all, and are either skipped (target reads as zeroes where never
 * written) or turned into zero requests on the target (a luks target then
 * gets ciphertext of zeroes, as qemu-img writes it).  Data runs are read in
 * buffers of params->buf_size bytes; with a sparse size (-S), aligned
 * all-zero granules inside data are treated like zero runs, so a raw copy
 * of a raw image stays sparse.
 *
 * When the target gets a backing file (convert -B, or -o backing_file),
 * qemu-img's rules apply: a range the source takes from its own backing
 * file (unallocated in its top layer, where the run starts inside that
 * backing file; the run then extends over the following unallocated
 * ranges) is not copied, and a zero run past the end of the target's
 * backing file is not written either (it reads as zeroes anyway).
 *
 * Reading and writing overlap: a reader thread owns the source handle and
 * fills a small ring of buffers, the calling thread owns the target handle
 * and writes them in order.  With encryption on either side this keeps
 * both cores busy (decrypt in the reader, encrypt in the writer).
 *
 * Data errors are reported in qemu-img convert's words, with the offset of
 * the request that failed (the start of the run being copied) and just the
 * errno text: "error while reading at byte N: ...", "error while writing at
 * byte N: ...", "error while reading block status of sector N: ...".
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "internal.h"

#define COPY_SLOTS 3
#define COPY_DEFAULT_BUF (2 * 1024 * 1024)
#define COPY_MAX_BUF (256 * 1024 * 1024)
/* Longest zero run handed over as one item (keeps progress moving). */
#define COPY_MAX_ZERO_RUN ((uint64_t)64 * 1024 * 1024)

struct copy_item {
    uint64_t off;
    uint64_t len;
    bool zero;                  /* source reads as zeroes here, no data */
    bool skip;                  /* left to the target's backing file */
};

struct copy_job {
    struct vimg_image *src, *dst;
    uint64_t total, buf_size;
    uint64_t src_bsize;         /* -B: the source's backing size, else 0 */
    uint64_t dst_bsize;         /* -B: the target's backing size, else max */
    uint8_t *bufs[COPY_SLOTS];
    struct copy_item items[COPY_SLOTS];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned head, count;       /* ring of filled items */
    bool reader_done, stop;
    int reader_ret;
    bool reader_bs_failed;      /* the failure was block status, not read */
    uint64_t reader_fail_off;   /* where the reader failed               */
};

static bool
buffer_is_zero(const uint8_t *p, size_t len)
{
    /* p[0] == 0 and every byte equals its successor. */
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void *
reader_main(void *opaque)
{
    struct copy_job *j = opaque;
    uint64_t off = 0, known_end = 0;
    unsigned tail = 0, known_st = 0;
    int r = 0;

    while (off < j->total) {
        struct copy_item *it;
        uint64_t pnum;
        unsigned st;

        pthread_mutex_lock(&j->lock);
        while (j->count == COPY_SLOTS && !j->stop) {
            pthread_cond_wait(&j->cond, &j->lock);
        }
        if (j->stop) {
            pthread_mutex_unlock(&j->lock);
            break;
        }
        pthread_mutex_unlock(&j->lock);

        /* The slot at tail is free and only this thread touches it now. */
        it = &j->items[tail];
        /* One block status query per run of the same state, reused for
         * the items that follow: asking again at every item costs raw on
         * tmpfs (SEEK_HOLE walks the pages) and qcow2 (merging cluster
         * states) a walk to the end of the run each time. */
        if (off < known_end) {
            pnum = known_end - off;
            st = known_st;
        } else {
            r = vimg_image_block_status(j->src, off, j->total - off, &pnum,
                                        &st, NULL, NULL);
            if (r < 0) {
                j->reader_bs_failed = true;
                j->reader_fail_off = off;
                break;
            }
            known_end = off + pnum;
            known_st = st;
        }
        it->off = off;
        it->zero = st & VIMG_BLOCK_ZERO;
        it->skip = false;
        it->len = MIN(pnum, it->zero ? COPY_MAX_ZERO_RUN : j->buf_size);
        if ((st & VIMG_BLOCK_UNALLOCATED) && off < j->src_bsize) {
            /* From the source's backing file: the target's provides it. */
            uint64_t end = known_end;

            while (end < j->total) {
                r = vimg_image_block_status(j->src, end, j->total - end,
                                            &pnum, &st, NULL, NULL);
                if (r < 0) {
                    j->reader_bs_failed = true;
                    j->reader_fail_off = end;
                    break;
                }
                known_end = end + pnum;
                known_st = st;
                if (!(st & VIMG_BLOCK_UNALLOCATED)) {
                    break;
                }
                end = known_end;
            }
            if (r < 0) {
                break;
            }
            it->skip = true;
            it->len = end - off;
        } else if (it->zero && off >= j->dst_bsize) {
            it->skip = true;    /* past the target's backing file */
        } else if (it->zero && off + it->len > j->dst_bsize) {
            it->len = j->dst_bsize - off;
        }
        if (!it->zero && !it->skip) {
            r = vimg_image_pread(j->src, j->bufs[tail], (size_t)it->len, off,
                                 NULL);
            if (r < 0) {
                j->reader_fail_off = off;
                break;
            }
        }
        off += it->len;

        pthread_mutex_lock(&j->lock);
        j->count++;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
        tail = (tail + 1) % COPY_SLOTS;
    }

    pthread_mutex_lock(&j->lock);
    j->reader_ret = r;
    j->reader_done = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* Make [off, off+len) of the target read as zeroes. */
static int
write_zero_run(struct copy_job *j, const struct vimg_copy_params *p,
               uint64_t off, uint64_t len, struct vimg_error **errp)
{
    if (p->sparse_size == 0) {
        /* -S 0: the target is to be fully allocated, write real zeroes. */
        uint8_t *z = calloc(1, (size_t)MIN(len, j->buf_size));
        uint64_t done = 0;
        int r = 0;

        if (!z) {
            return vimg_error_set(errp, -ENOMEM, "Out of memory");
        }
        while (done < len && r == 0) {
            size_t n = (size_t)MIN(len - done, j->buf_size);

            r = vimg_image_pwrite(j->dst, z, n, off + done, errp);
            done += n;
        }
        free(z);
        return r;
    }
    if (p->target_is_zero || p->target_has_zero_init) {
        return 0;
    }
    return vimg_image_zero(j->dst, off, len, VIMG_ZERO_MAY_UNMAP, errp);
}

/* One data write: compressed with params->compress (convert -c). */
static int
dst_write(const struct vimg_copy_params *p, struct vimg_image *dst,
          const uint8_t *buf, size_t len, uint64_t off,
          struct vimg_error **errp)
{
    return p->compress ? vimg_image_pwrite_compressed(dst, buf, len, off, errp)
                       : vimg_image_pwrite(dst, buf, len, off, errp);
}

/* Write one data buffer, leaving out zero granules when -S allows it. */
static int
write_data(struct copy_job *j, const struct vimg_copy_params *p,
           const uint8_t *buf, uint64_t off, uint64_t len,
           struct vimg_error **errp)
{
    uint64_t g = p->sparse_size, pos = 0, run_start = 0;
    bool run_zero = false;
    uint32_t a = vimg_image_alignment(j->dst);
    int r;

    /*
     * Sparse detection does not pay off when a zero granule costs as much
     * as data: an encrypted target without zero init gets encrypted zeroes.
     */
    if (g == 0 || (vimg_image_encrypted(j->dst) && !p->target_is_zero &&
                   !p->target_has_zero_init)) {
        return dst_write(p, j->dst, buf, (size_t)len, off, errp);
    }
    g = ROUND_UP(g, (uint64_t)a);

    while (pos < len) {
        /* Granules are aligned to absolute multiples of g. */
        uint64_t gend = ((off + pos) / g + 1) * g - off;
        uint64_t n = MIN(gend, len) - pos;
        bool z = buffer_is_zero(buf + pos, (size_t)n);

        if (pos == 0) {
            run_zero = z;
        } else if (z != run_zero) {
            r = run_zero ? write_zero_run(j, p, off + run_start,
                                          pos - run_start, errp)
                         : dst_write(p, j->dst, buf + run_start,
                                             (size_t)(pos - run_start),
                                             off + run_start, errp);
            if (r < 0) {
                return r;
            }
            run_start = pos;
            run_zero = z;
        }
        pos += n;
    }
    return run_zero ? write_zero_run(j, p, off + run_start, len - run_start,
                                     errp)
                    : dst_write(p, j->dst, buf + run_start,
                                        (size_t)(len - run_start),
                                        off + run_start, errp);
}

int
vimg_copy(struct vimg_image *src, struct vimg_image *dst,
          const struct vimg_copy_params *params, struct vimg_error **errp)
{
    struct vimg_copy_params defaults = { 0 };
    const struct vimg_copy_params *p = params ? params : &defaults;
    struct copy_job j = { 0 };
    struct vimg_error *werr = NULL;
    pthread_t reader;
    uint64_t done = 0;
    uint32_t a;
    int r = 0, i;

    if (!src || !dst) {
        return vimg_error_set(errp, -EINVAL, "No source or target image");
    }
    if (src == dst) {
        /* One handle must not be used by two threads at once. */
        return vimg_error_set(errp, -EINVAL,
                              "Source and target are the same image");
    }
    if (!vimg_image_writable(dst)) {
        return vimg_error_set(errp, -EBADF, "Block node is read-only");
    }
    j.src = src;
    j.dst = dst;
    j.total = vimg_image_size(src);
    j.dst_bsize = UINT64_MAX;
    if (p->target_has_backing) {
        struct vimg_image *sb = vimg_image_backing(src);
        struct vimg_image *db = vimg_image_backing(dst);

        j.src_bsize = sb ? vimg_image_size(sb) : 0;
        j.dst_bsize = db ? vimg_image_size(db) : UINT64_MAX;
    }
    if (vimg_image_size(dst) < j.total) {
        return vimg_error_set(errp, -EINVAL,
                              "Target image (%" PRIu64 " bytes) is smaller "
                              "than the source (%" PRIu64 " bytes)",
                              vimg_image_size(dst), j.total);
    }
    /* Buffers are a multiple of both images' request alignment. */
    a = MAX(vimg_image_alignment(src), vimg_image_alignment(dst));
    j.buf_size = p->buf_size ? p->buf_size : COPY_DEFAULT_BUF;
    j.buf_size = MIN(j.buf_size, (uint64_t)COPY_MAX_BUF);
    j.buf_size = ROUND_UP(j.buf_size, (uint64_t)a);
    if (j.total > 0 && j.buf_size > j.total) {
        j.buf_size = ROUND_UP(j.total, (uint64_t)a);
    }

    for (i = 0; i < COPY_SLOTS; i++) {
        if (posix_memalign((void **)&j.bufs[i], 4096, (size_t)j.buf_size)) {
            r = vimg_error_set(errp, -ENOMEM, "Out of memory");
            goto out_free;
        }
    }
    if (p->progress && p->progress(p->progress_opaque, 0, j.total)) {
        r = vimg_error_set(errp, -ECANCELED, "Operation cancelled");
        goto out_free;
    }
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.cond, NULL);
    r = pthread_create(&reader, NULL, reader_main, &j);
    if (r != 0) {
        r = vimg_error_set(errp, -r, "Could not start the reader thread: %s",
                           strerror(r));
        goto out_sync;
    }

    for (;;) {
        struct copy_item *it;
        unsigned slot;

        pthread_mutex_lock(&j.lock);
        while (j.count == 0 && !j.reader_done) {
            pthread_cond_wait(&j.cond, &j.lock);
        }
        if (j.count == 0) {
            pthread_mutex_unlock(&j.lock);
            break;              /* reader finished (or failed) */
        }
        slot = j.head;
        pthread_mutex_unlock(&j.lock);

        it = &j.items[slot];
        if (it->skip) {
            r = 0;
        } else if (it->zero) {
            r = write_zero_run(&j, p, it->off, it->len, &werr);
        } else {
            r = write_data(&j, p, j.bufs[slot], it->off, it->len, &werr);
        }
        if (r < 0) {
            /*
             * qemu names the start of the request, and only the errno;
             * but a write vimg refuses (an unfinished re-encryption, a
             * handle outdated by one) keeps its message, which says why.
             */
            vimg_error_set(errp, r, "error while writing at byte %" PRIu64
                           ": %s", it->off,
                           werr && (r == -EBUSY || r == -ESTALE)
                               ? vimg_error_message(werr) : strerror(-r));
            vimg_error_free(werr);
            werr = NULL;
        }
        done = it->off + it->len;

        pthread_mutex_lock(&j.lock);
        j.head = (j.head + 1) % COPY_SLOTS;
        j.count--;
        pthread_cond_broadcast(&j.cond);
        pthread_mutex_unlock(&j.lock);

        if (r == 0 && p->progress &&
            p->progress(p->progress_opaque, done, j.total)) {
            r = vimg_error_set(errp, -ECANCELED, "Operation cancelled");
        }
        if (r < 0) {
            break;
        }
    }

    pthread_mutex_lock(&j.lock);
    j.stop = true;
    pthread_cond_broadcast(&j.cond);
    pthread_mutex_unlock(&j.lock);
    pthread_join(reader, NULL);

    if (r == 0 && j.reader_ret < 0) {
        r = j.reader_ret;
        if (j.reader_bs_failed) {
            vimg_error_set(errp, r, "error while reading block status of "
                           "sector %" PRIu64 ": %s", j.reader_fail_off / 512,
                           strerror(-r));
        } else {
            vimg_error_set(errp, r, "error while reading at byte %" PRIu64
                           ": %s", j.reader_fail_off, strerror(-r));
        }
    }
out_sync:
    pthread_cond_destroy(&j.cond);
    pthread_mutex_destroy(&j.lock);
out_free:
    for (i = 0; i < COPY_SLOTS; i++) {
        free(j.bufs[i]);
    }
    return r;
}
