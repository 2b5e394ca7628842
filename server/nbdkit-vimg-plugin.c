/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nbdkit-vimg-plugin: export images that libvimg opens (raw, LUKS, qcow2
 * with or without LUKS, qcow) as plain NBD disks.  nbdkit does the
 * protocol (handshake, TLS, sockets, socket activation, -s single mode);
 * this file only maps its callbacks to the public libvimg API.
 *
 *   nbdkit vimg file=disk.qcow2 key-secret=s0 object=secret,id=s0,file=pw
 *
 * Parameters (file= starts a new export; the others apply to the last
 * file= given):
 *   file=PATH       an image to export
 *   format=FMT      its format (probed when absent)
 *   opts=STRING     driver options as --image-opts spells them, without
 *                   driver/file.filename ("encrypt.key-secret=s0,...")
 *   key-secret=ID   shorthand: key-secret (luks) / encrypt.key-secret
 *                   (qcow2, qcow)
 *   export=NAME     the export name (default ""; required when several
 *                   images are exported)
 *   readonly=BOOL   refuse writes to this export
 * Global:
 *   object=SPEC     a qemu --object secret definition
 *   objects-fd=N    read NUL-separated --object definitions from the
 *                   inherited file descriptor N (pipe or memfd), so that
 *                   no secret appears in nbdkit's argv; `vimg serve` uses it
 *   self-contained=BOOL  refuse images whose header names another file
 *                   (backing or external data file): VIMG_OPEN_NO_EXTERNAL;
 *                   the broker's `vimg serve` runs with it
 *   multi-conn=BOOL advertise multi-conn (default on; `vimg serve --fd`
 *                   turns it off: that server has exactly one connection,
 *                   so clients must not try to open more)
 *
 *   handles=N       image handles per raw/LUKS export (default: the
 *                   number of online CPUs, at most 64; 1 = one handle)
 *
 * Concurrency: a libvimg handle must not be used by two threads at once
 * (format caches, cipher contexts, bounce buffers).  Every export opens its
 * image once, before the first client (the primary handle).
 *
 * qcow2 and qcow keep metadata (tables, refcounts, caches) in the handle,
 * so all connections share the primary handle behind one mutex; nbdkit's
 * socket work still runs in parallel.
 *
 * raw and LUKS (LUKS1, LUKS2, detached headers) have no per-image state
 * that data I/O changes: a request is a stateless map from guest offset to
 * file offset (plus the sector cipher), and the header is never written by
 * reads, writes, zeroing or discard.  Such exports get a pool of up to
 * handles=N independent handles on the same file, opened with the same
 * options and secrets by a background thread after nbdkit starts (a LUKS
 * open costs one PBKDF, which must not delay start-up or a request).  Each
 * request borrows a free handle and runs without any image-wide lock, so
 * decryption of concurrent requests runs in parallel.  The one hazard is a
 * write or zero that is not aligned to the image's block: libvimg does a
 * read-modify-write of the edge block, which would lose a neighbouring
 * concurrent write into the same block.  Those take the export's rwlock
 * exclusively; every other request holds it shared.
 *
 * Flush: every handle of an export writes the same file, and each format's
 * flush is fdatasync() of the image file, which makes all written data of
 * that file durable whichever descriptor wrote it; so a flush on any
 * connection covers the writes of all, and multi-conn is advertised.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "safemem.h"
#include "vimg.h"

/* Largest block of --object definitions accepted on objects-fd. */
#define OBJECTS_MAX (256 * 1024)
/* Block status: at most this many extents per request. */
#define EXTENTS_MAX 1024
/* Largest handles=N. */
#define HANDLES_MAX 64

struct export {
    char *name;         /* NULL until export= (then "" if still unset) */
    char *file;
    char *format;
    char *opts;
    char *key_secret;
    bool readonly;
    struct vimg_image *img;     /* the primary handle */
    pthread_mutex_t lock;       /* serialises qcow2/qcow on img */
    /* raw/LUKS: a pool of handles; pool[0] is img.  pool_n only grows:
     * the opener thread fills pool[pool_n] and then publishes the new count
     * (release/acquire atomics); pool_lock serialises appends.  A request
     * owns handle i while it holds hlock[i]. */
    bool pooled;
    pthread_rwlock_t rw;        /* exclusive for unaligned writes */
    pthread_mutex_t pool_lock;
    struct vimg_image *pool[HANDLES_MAX];
    pthread_mutex_t hlock[HANDLES_MAX];
    size_t pool_n;
};

struct handle {
    struct export *ex;
};

static struct export *exports;
static size_t n_exports;
static struct vimg_secrets *secrets;
static bool multi_conn = true;
static bool self_contained;     /* VIMG_OPEN_NO_EXTERNAL on every open */
static unsigned handles_max;            /* 0: not given */
static pthread_t opener;
static bool opener_started;
static volatile bool opener_stop;

static void
vimg_plugin_load(void)
{
    struct rlimit rl = {0, 0};

    /* Keys live in this process: no core dumps, no same-user ptrace. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void)setrlimit(RLIMIT_CORE, &rl);
}

static void
vimg_plugin_unload(void)
{
    size_t i, j;

    if (opener_started) {
        opener_stop = true;
        pthread_join(opener, NULL);
        opener_started = false;
    }
    for (i = 0; i < n_exports; i++) {
        struct export *ex = &exports[i];

        /* pool[0] is img: close the extra handles, then the primary. */
        for (j = ex->pool_n; j-- > 1;) {
            (void)vimg_image_close(ex->pool[j], NULL);
        }
        if (ex->img) {
            struct vimg_error *err = NULL;

            if (vimg_image_close(ex->img, &err) < 0) {
                nbdkit_error("%s: %s", ex->file, vimg_error_message(err));
                vimg_error_free(err);
            }
        }
        pthread_mutex_destroy(&ex->lock);
        pthread_rwlock_destroy(&ex->rw);
        pthread_mutex_destroy(&ex->pool_lock);
        for (j = 0; j < HANDLES_MAX; j++) {
            pthread_mutex_destroy(&ex->hlock[j]);
        }
        free(ex->name);
        free(ex->file);
        free(ex->format);
        free(ex->opts);
        free(ex->key_secret);
    }
    free(exports);
    exports = NULL;
    n_exports = 0;
    vimg_secrets_free(secrets);
    secrets = NULL;
}

/* Report a libvimg failure to nbdkit (message and errno) and free @err. */
static int
report(const struct export *ex, int r, struct vimg_error *err)
{
    nbdkit_error("%s: %s", ex->file,
                 err ? vimg_error_message(err) : strerror(-r));
    vimg_error_free(err);
    nbdkit_set_error(-r);
    return -1;
}

static int
add_object(const char *spec)
{
    struct vimg_error *err = NULL;
    int r;

    if (!secrets && !(secrets = vimg_secrets_new())) {
        nbdkit_error("out of memory");
        return -1;
    }
    r = vimg_secrets_add_object(secrets, spec, NULL, &err);
    if (r < 0) {
        nbdkit_error("object: %s",
                     err ? vimg_error_message(err) : strerror(-r));
        vimg_error_free(err);
        return -1;
    }
    return 0;
}

/* objects-fd=N: NUL-separated definitions, read to EOF, then closed. */
static int
read_objects_fd(const char *value)
{
    char *end = NULL;
    long fd = strtol(value, &end, 10);
    uint8_t *buf;
    size_t len = 0, i, start = 0;
    int r = 0;

    if (!*value || *end || fd < 0 || fd > INT32_MAX) {
        nbdkit_error("objects-fd: '%s' is not a file descriptor", value);
        return -1;
    }
    buf = safe_alloc(OBJECTS_MAX + 1);
    if (!buf) {
        nbdkit_error("out of memory");
        return -1;
    }
    for (;;) {
        ssize_t n = read((int)fd, buf + len, OBJECTS_MAX + 1 - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            nbdkit_error("objects-fd: reading fd %ld: %m", fd);
            r = -1;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > OBJECTS_MAX) {
            nbdkit_error("objects-fd: more than %d bytes", OBJECTS_MAX);
            r = -1;
            goto out;
        }
    }
    buf[len] = '\0';
    for (i = 0; i <= len && r == 0; i++) {
        if (buf[i] == '\0') {
            if (i > start) {
                r = add_object((const char *)buf + start);
            }
            start = i + 1;
        }
    }
out:
    close((int)fd);
    safe_free(buf);
    return r;
}

static int
set_string(char **dst, const char *key, const char *value)
{
    if (n_exports == 0) {
        nbdkit_error("'%s' must follow a file= parameter", key);
        return -1;
    }
    free(*dst);
    *dst = strdup(value);
    if (!*dst) {
        nbdkit_error("out of memory");
        return -1;
    }
    return 0;
}

/* A boolean parameter (nbdkit's spellings: on/off, yes/no, 1/0, ...). */
static int
set_bool(bool *dst, const char *value)
{
    int b = nbdkit_parse_bool(value);

    if (b < 0) {
        return -1;
    }
    *dst = b;
    return 0;
}

/* Writer-preferring where glibc offers it: an unaligned write must not
 * starve behind a steady stream of shared requests. */
static void
init_rwlock(pthread_rwlock_t *rw)
{
    pthread_rwlockattr_t attr;

    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(rw, &attr);
    pthread_rwlockattr_destroy(&attr);
}

static int
vimg_plugin_config(const char *key, const char *value)
{
    struct export *last = n_exports ? &exports[n_exports - 1] : NULL;

    if (strcmp(key, "file") == 0) {
        struct export *p = realloc(exports, (n_exports + 1) * sizeof(*p));

        if (!p) {
            nbdkit_error("out of memory");
            return -1;
        }
        exports = p;
        last = &exports[n_exports];
        memset(last, 0, sizeof(*last));
        pthread_mutex_init(&last->lock, NULL);
        init_rwlock(&last->rw);
        pthread_mutex_init(&last->pool_lock, NULL);
        for (size_t k = 0; k < HANDLES_MAX; k++) {
            pthread_mutex_init(&last->hlock[k], NULL);
        }
        n_exports++;
        last->file = nbdkit_realpath(value);
        return last->file ? 0 : -1;
    } else if (strcmp(key, "format") == 0) {
        if (!vimg_format_known(value)) {
            nbdkit_error("format: unknown image format '%s'", value);
            return -1;
        }
        return set_string(last ? &last->format : NULL, key, value);
    } else if (strcmp(key, "opts") == 0) {
        return set_string(last ? &last->opts : NULL, key, value);
    } else if (strcmp(key, "key-secret") == 0) {
        return set_string(last ? &last->key_secret : NULL, key, value);
    } else if (strcmp(key, "export") == 0) {
        return set_string(last ? &last->name : NULL, key, value);
    } else if (strcmp(key, "readonly") == 0) {
        if (!last) {
            nbdkit_error("'%s' must follow a file= parameter", key);
            return -1;
        }
        return set_bool(&last->readonly, value);
    } else if (strcmp(key, "self-contained") == 0) {
        return set_bool(&self_contained, value);
    } else if (strcmp(key, "multi-conn") == 0) {
        return set_bool(&multi_conn, value);
    } else if (strcmp(key, "handles") == 0) {
        if (nbdkit_parse_unsigned(key, value, &handles_max) < 0) {
            return -1;
        }
        if (handles_max < 1 || handles_max > HANDLES_MAX) {
            nbdkit_error("handles: %u is not between 1 and %d", handles_max,
                         HANDLES_MAX);
            return -1;
        }
        return 0;
    } else if (strcmp(key, "object") == 0) {
        return add_object(value);
    } else if (strcmp(key, "objects-fd") == 0) {
        return read_objects_fd(value);
    }
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
}

static int
vimg_plugin_config_complete(void)
{
    size_t i, j;

    if (n_exports == 0) {
        nbdkit_error("you must give at least one file= parameter");
        return -1;
    }
    for (i = 0; i < n_exports; i++) {
        if (!exports[i].name) {
            if (n_exports > 1) {
                nbdkit_error("%s: several images are exported, so each "
                             "needs export=NAME",
                             exports[i].file);
                return -1;
            }
            if (!(exports[i].name = strdup(""))) {
                nbdkit_error("out of memory");
                return -1;
            }
        }
        for (j = 0; j < i; j++) {
            if (strcmp(exports[i].name, exports[j].name) == 0) {
                nbdkit_error("export name '%s' is used twice",
                             exports[i].name);
                return -1;
            }
        }
    }
    return 0;
}

/* Open one handle on an export's image with its options and key.  Errors
 * go to *errp (the caller reports them). */
static int
open_handle(struct export *ex, struct vimg_image **imgp,
            struct vimg_error **errp)
{
    struct vimg_opts *opts = vimg_opts_new();
    const char *fmt = ex->format;
    int r = -ENOMEM;

    if (!opts) {
        return r;
    }
    if (ex->opts) {
        r = vimg_opts_parse(opts, ex->opts, NULL, errp);
        if (r < 0) {
            goto out;
        }
    }
    if (!fmt) {
        r = vimg_probe(ex->file, &fmt, errp);
        if (r < 0) {
            goto out;
        }
    }
    if (ex->key_secret) {
        bool qcow = strcmp(fmt, "qcow2") == 0 || strcmp(fmt, "qcow") == 0;

        r = vimg_opts_set(opts, qcow ? "encrypt.key-secret" : "key-secret",
                          ex->key_secret);
        if (r < 0) {
            goto out;
        }
    }
    r = vimg_image_open(ex->file, fmt, opts, secrets,
                        (ex->readonly ? 0 : VIMG_OPEN_RDWR) |
                        (self_contained ? VIMG_OPEN_NO_EXTERNAL : 0),
                        imgp, errp);
out:
    vimg_opts_free(opts);
    return r;
}

/* The primary handle; raw and LUKS exports also get a pool. */
static int
open_export(struct export *ex)
{
    struct vimg_error *err = NULL;
    const char *fmt;
    int r = open_handle(ex, &ex->img, &err);

    if (r < 0) {
        return report(ex, r, err);
    }
    fmt = vimg_image_format(ex->img);
    ex->pooled = strcmp(fmt, "raw") == 0 || strcmp(fmt, "luks") == 0;
    ex->pool[0] = ex->img;
    ex->pool_n = 1;
    return 0;
}

static unsigned
pool_size(void)
{
    int n;

    if (handles_max) {
        return handles_max;
    }
    n = get_nprocs();
    return n < 1 ? 1 : n > HANDLES_MAX ? HANDLES_MAX : (unsigned)n;
}

/* Background thread: fill each pooled export up to pool_size() handles.
 * A failure leaves the pool smaller (still correct) and is logged. */
static void *
opener_main(void *arg)
{
    unsigned want = pool_size();
    size_t i;

    for (i = 0; i < n_exports; i++) {
        struct export *ex = &exports[i];

        while (ex->pooled && ex->pool_n < want && !opener_stop) {
            struct vimg_image *img = NULL;
            struct vimg_error *err = NULL;
            int r = open_handle(ex, &img, &err);

            if (r < 0) {
                nbdkit_error("%s: extra handle: %s", ex->file,
                             err ? vimg_error_message(err) : strerror(-r));
                vimg_error_free(err);
                break;
            }
            pthread_mutex_lock(&ex->pool_lock);
            ex->pool[ex->pool_n] = img;
            __atomic_store_n(&ex->pool_n, ex->pool_n + 1, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&ex->pool_lock);
            nbdkit_debug("%s: %zu image handles", ex->file, ex->pool_n);
        }
    }
    return NULL;
}

/* After nbdkit forked into the background: threads survive from here. */
static int
vimg_plugin_after_fork(void)
{
    size_t i;
    bool any = false;

    for (i = 0; i < n_exports; i++) {
        any |= exports[i].pooled;
    }
    if (!any || pool_size() < 2) {
        return 0;
    }
    if (pthread_create(&opener, NULL, opener_main, NULL) != 0) {
        nbdkit_error("cannot start the handle opener thread: %m");
        return -1;
    }
    opener_started = true;
    return 0;
}

/* Images are opened before the first client (errors stop nbdkit). */
static int
vimg_plugin_get_ready(void)
{
    size_t i;

    for (i = 0; i < n_exports; i++) {
        if (open_export(&exports[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

static struct export *
find_export(const char *name)
{
    size_t i;

    if (n_exports == 1) {
        return &exports[0];   /* one image: every name reaches it */
    }
    if (!name || !*name) {
        return &exports[0];   /* the default export */
    }
    for (i = 0; i < n_exports; i++) {
        if (strcmp(exports[i].name, name) == 0) {
            return &exports[i];
        }
    }
    return NULL;
}

static int
vimg_plugin_list_exports(int readonly, int is_tls,
                         struct nbdkit_exports *list)
{
    size_t i;

    for (i = 0; i < n_exports; i++) {
        if (nbdkit_add_export(list, exports[i].name, exports[i].file) < 0) {
            return -1;
        }
    }
    return 0;
}

static const char *
vimg_plugin_default_export(int readonly, int is_tls)
{
    return n_exports ? exports[0].name : "";
}

static void *
vimg_plugin_open(int readonly)
{
    const char *name = nbdkit_export_name();
    struct export *ex = find_export(name);
    struct handle *h;

    if (!ex) {
        nbdkit_error("no export named '%s'", name);
        nbdkit_set_error(ENOENT);
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        nbdkit_error("out of memory");
        return NULL;
    }
    h->ex = ex;
    return h;
}

static void
vimg_plugin_close(void *handle)
{
    free(handle);
}

static const char *
vimg_plugin_export_description(void *handle)
{
    struct handle *h = handle;

    return vimg_image_format(h->ex->img);
}

static int64_t
vimg_plugin_get_size(void *handle)
{
    struct handle *h = handle;

    return (int64_t)vimg_image_size(h->ex->img);
}

static int
vimg_plugin_can_write(void *handle)
{
    struct handle *h = handle;

    return !h->ex->readonly;
}

static int
vimg_plugin_can_one(void *handle)
{
    return 1;
}

static int
vimg_plugin_can_multi_conn(void *handle)
{
    return multi_conn;
}

static int
vimg_plugin_can_fua(void *handle)
{
    return NBDKIT_FUA_EMULATE;
}

static int
vimg_plugin_block_size(void *handle, uint32_t *minimum, uint32_t *preferred,
                       uint32_t *maximum)
{
    struct handle *h = handle;
    uint32_t a = vimg_image_alignment(h->ex->img);

    /* libvimg handles unaligned requests (read-modify-write under the
     * export's lock), so any size works; aligned ones are cheaper. */
    *minimum = 1;
    *preferred = a > 4096 ? a : 4096;
    *maximum = 0xffffffff;
    return 0;
}

/*
 * Borrow a free handle of a pooled export: try each handle's lock without
 * blocking, starting with the one this thread used last (it is usually
 * free and its cipher contexts are warm in this CPU's cache); when all are
 * busy, wait for that one.  One futex per request at most, no condition
 * variable hand-off between nbdkit's threads.
 */
static __thread size_t pool_hint;

static size_t
pool_get(struct export *ex)
{
    size_t n = __atomic_load_n(&ex->pool_n, __ATOMIC_ACQUIRE);
    size_t start = pool_hint % n;
    size_t i;

    for (i = 0; i < n; i++) {
        size_t k = (start + i) % n;

        if (pthread_mutex_trylock(&ex->hlock[k]) == 0) {
            pool_hint = k;
            return k;
        }
    }
    pthread_mutex_lock(&ex->hlock[start]);
    return start;
}

static void
pool_put(struct export *ex, size_t i)
{
    pthread_mutex_unlock(&ex->hlock[i]);
}

/*
 * Serialise a request as the export needs: qcow2/qcow take the mutex on the
 * primary handle; raw/LUKS borrow a pool handle under the shared rwlock,
 * or the exclusive one for a write/zero that is not block-aligned.  Returns
 * the handle to use; io_end() undoes it.
 */
static size_t
io_begin(struct export *ex, bool exclusive)
{
    if (!ex->pooled) {
        pthread_mutex_lock(&ex->lock);
        return 0;
    }
    if (exclusive) {
        pthread_rwlock_wrlock(&ex->rw);
    } else {
        pthread_rwlock_rdlock(&ex->rw);
    }
    return pool_get(ex);
}

static void
io_end(struct export *ex, size_t i)
{
    if (!ex->pooled) {
        pthread_mutex_unlock(&ex->lock);
        return;
    }
    pool_put(ex, i);
    pthread_rwlock_unlock(&ex->rw);
}

/* The data callbacks. */
enum io_op { IO_READ, IO_WRITE, IO_FLUSH, IO_TRIM, IO_ZERO };

static int
locked_io(void *handle, enum io_op op, void *buf, uint32_t count,
          uint64_t offset, unsigned zero_flags)
{
    struct handle *h = handle;
    struct export *ex = h->ex;
    uint32_t a = vimg_image_alignment(ex->img);
    bool edge = (op == IO_WRITE || op == IO_ZERO) &&
                (offset % a != 0 || count % a != 0);
    size_t slot = io_begin(ex, edge);
    struct vimg_image *img = ex->pool[slot];
    struct vimg_error *err = NULL;
    int r = 0;

    switch (op) {
    case IO_READ:
        r = vimg_image_pread(img, buf, count, offset, &err);
        break;
    case IO_WRITE:
        r = vimg_image_pwrite(img, buf, count, offset, &err);
        break;
    case IO_FLUSH:
        r = vimg_image_flush(img, &err);
        break;
    case IO_TRIM:
        r = vimg_image_discard(img, offset, count, &err);
        break;
    case IO_ZERO:
        r = vimg_image_zero(img, offset, count, zero_flags, &err);
        break;
    }
    io_end(ex, slot);
    return r < 0 ? report(ex, r, err) : 0;
}

static int
vimg_plugin_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
                  uint32_t flags)
{
    return locked_io(handle, IO_READ, buf, count, offset, 0);
}

static int
vimg_plugin_pwrite(void *handle, const void *buf, uint32_t count,
                   uint64_t offset, uint32_t flags)
{
    /* FUA is emulated by nbdkit with a flush after the write. */
    return locked_io(handle, IO_WRITE, (void *)buf, count, offset, 0);
}

static int
vimg_plugin_flush(void *handle, uint32_t flags)
{
    return locked_io(handle, IO_FLUSH, NULL, 0, 0, 0);
}

static int
vimg_plugin_trim(void *handle, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
    return locked_io(handle, IO_TRIM, NULL, count, offset, 0);
}

static int
vimg_plugin_zero(void *handle, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
    return locked_io(handle, IO_ZERO, NULL, count, offset,
                     (flags & NBDKIT_FLAG_MAY_TRIM) ? VIMG_ZERO_MAY_UNMAP : 0);
}

/* libvimg block status bits -> NBD's hole/zero bits. */
static uint32_t
extent_type(unsigned status)
{
    if (status & VIMG_BLOCK_UNALLOCATED) {
        /* From a backing layer: a hole only where it reads as zeroes. */
        return (status & VIMG_BLOCK_ZERO)
                   ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                   : 0;
    }
    if (status & VIMG_BLOCK_ZERO) {
        return (status & VIMG_BLOCK_DATA)
                   ? NBDKIT_EXTENT_ZERO
                   : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    }
    return 0;
}

static int
vimg_plugin_extents(void *handle, uint32_t count, uint64_t offset,
                    uint32_t flags, struct nbdkit_extents *extents)
{
    struct handle *h = handle;
    struct vimg_error *err = NULL;
    uint64_t end = offset + count;
    size_t slot = io_begin(h->ex, false);
    struct vimg_image *img = h->ex->pool[slot];
    int n, r = 0;

    for (n = 0; offset < end && n < EXTENTS_MAX; n++) {
        uint64_t pnum = 0;
        unsigned status = 0;

        r = vimg_image_block_status(img, offset, end - offset, &pnum,
                                    &status, NULL, &err);
        if (r < 0) {
            break;
        }
        if (pnum == 0) {
            break;
        }
        if (nbdkit_add_extent(extents, offset, pnum, extent_type(status)) <
            0) {
            io_end(h->ex, slot);
            return -1;
        }
        offset += pnum;
        if (flags & NBDKIT_FLAG_REQ_ONE) {
            break;
        }
    }
    io_end(h->ex, slot);
    return r < 0 ? report(h->ex, r, err) : 0;
}

static void
vimg_plugin_dump_plugin(void)
{
    printf("vimg_version=%s\n", vimg_version());
}

#define vimg_plugin_config_help                                              \
    "file=<PATH>      (required) image to export (repeat for several)\n"    \
    "format=<FMT>     its format (probed by default)\n"                      \
    "opts=<OPTS>      driver options, e.g. encrypt.key-secret=s0\n"          \
    "key-secret=<ID>  the secret that unlocks an encrypted image\n"          \
    "export=<NAME>    export name of the last file= (several images)\n"     \
    "readonly=<BOOL>  refuse writes to the last file=\n"                     \
    "object=<SPEC>    qemu --object secret definition\n"                     \
    "objects-fd=<N>   read NUL-separated --object definitions from fd N\n"  \
    "multi-conn=<BOOL> advertise multi-conn (default on)\n"                \
    "self-contained=<BOOL> refuse images naming a backing/data file\n"     \
    "handles=<N>      image handles per raw/LUKS export (default: CPUs)"

static struct nbdkit_plugin plugin = {
    .name = "vimg",
    .longname = "vimg encrypted disk image plugin",
    .version = VIMG_VERSION,
    .description = "Serve raw, LUKS, qcow and qcow2 (+LUKS) images "
                   "decrypted by libvimg",
    .load = vimg_plugin_load,
    .unload = vimg_plugin_unload,
    .config = vimg_plugin_config,
    .config_complete = vimg_plugin_config_complete,
    .config_help = vimg_plugin_config_help,
    .magic_config_key = "file",
    .get_ready = vimg_plugin_get_ready,
    .after_fork = vimg_plugin_after_fork,
    .list_exports = vimg_plugin_list_exports,
    .default_export = vimg_plugin_default_export,
    .export_description = vimg_plugin_export_description,
    .open = vimg_plugin_open,
    .close = vimg_plugin_close,
    .get_size = vimg_plugin_get_size,
    .block_size = vimg_plugin_block_size,
    .can_write = vimg_plugin_can_write,
    .can_flush = vimg_plugin_can_one,
    .can_trim = vimg_plugin_can_one,
    .can_zero = vimg_plugin_can_one,
    .can_fua = vimg_plugin_can_fua,
    .can_multi_conn = vimg_plugin_can_multi_conn,
    .can_extents = vimg_plugin_can_one,
    .pread = vimg_plugin_pread,
    .pwrite = vimg_plugin_pwrite,
    .flush = vimg_plugin_flush,
    .trim = vimg_plugin_trim,
    .zero = vimg_plugin_zero,
    .extents = vimg_plugin_extents,
    .dump_plugin = vimg_plugin_dump_plugin,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
