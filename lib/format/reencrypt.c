/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * In-place LUKS1 re-encryption with a journal in FILENAME.reenc
 * (docs/reencrypt.md has the layout and the crash argument).
 *
 * Journal file:
 *   [0, 512)     superblock copy for even sequence numbers
 *   [512, 1024)  superblock copy for odd sequence numbers
 *   [4096, ...)  the complete new LUKS1 header area (hdr_len bytes)
 *   then two backup areas of chunk bytes each, used alternately
 * A superblock holds the state, the boundary (file offset below which all
 * data is under the new key), and which backup area holds the old
 * ciphertext of the chunk starting at the boundary (length and SHA-256, so
 * a backup that never reached the disk is recognised).  The one with the
 * highest sequence number whose own SHA-256 matches is current.
 *
 * Per chunk: backup + superblock -> flush journal -> rewritten chunk ->
 * flush image.  The image is written only after its old content is safe in
 * the journal, and the superblock moves past a chunk only after the chunk
 * is safe in the image.  At the end: superblock "finishing" -> flush ->
 * new header area over the old -> flush image -> unlink the journal.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "crypto/crypto.h"
#include "reencrypt.h"

#define J_MAGIC         "VIMGRENC"
#define J_VERSION       1
#define J_SB_SIZE       512
#define J_HDR_OFF       4096
#define J_SUM_OFF       (J_SB_SIZE - 32)
#define J_CHUNK         (1024 * 1024)
#define J_MAX_HDR       (64u * 1024 * 1024)

#define J_PLAIN         1u      /* flag: the old data is plaintext */
#define J_AES           2u      /* flag: the old data is qcow2 legacy AES
                                 * (IVs: guest sectors) */

enum {
    J_RUNNING = 1,              /* chunks are being rewritten */
    J_FINISHING = 2,            /* data done; header copy pending */
};

struct reenc {
    int fd;
    char *path;
    uint32_t state;
    uint64_t seq;
    uint64_t hdr_off, hdr_len, iv_base;
    uint64_t boundary;          /* everything below: new key */
    uint64_t chunk;             /* size of one backup area */
    uint64_t backup_len;        /* 0: no valid backup */
    uint32_t backup_area;       /* 0 or 1 */
    uint32_t flags;             /* J_PLAIN or J_AES */
    uint8_t backup_sum[32];
    uint8_t *hdr;               /* the new header area, hdr_len bytes */
    uint8_t *backup;            /* chunk bytes; valid for backup_len */
    struct luks1 *newl;         /* the new header, unlocked */
};

/* ---- helpers ---------------------------------------------------------------- */

static char *
journal_path(const char *filename, const char *suffix)
{
    size_t n = strlen(filename) + strlen(suffix) + 1;
    char *p = malloc(n);

    if (p) {
        snprintf(p, n, "%s%s", filename, suffix);
    }
    return p;
}

static uint64_t
backup_offset(const struct reenc *j, uint32_t area)
{
    return J_HDR_OFF + ROUND_UP(j->hdr_len, 4096) + area * j->chunk;
}

static int
jerr(const struct reenc *j, struct vimg_error **errp, int r, const char *what)
{
    return vimg_error_set(errp, r, "Re-encryption journal '%s': %s: %s",
                          j->path, what, strerror(-r));
}

/* fsync the directory holding @path so a rename/unlink is durable. */
static void
sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (!copy) {
        return;
    }
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

void
reenc_free(struct reenc *j)
{
    if (!j) {
        return;
    }
    if (j->fd >= 0) {
        close(j->fd);
    }
    luks1_free(j->newl);
    free(j->hdr);
    free(j->backup);
    free(j->path);
    free(j);
}

static struct reenc *
reenc_alloc(const char *filename)
{
    struct reenc *j = calloc(1, sizeof(*j));

    if (!j) {
        return NULL;
    }
    j->fd = -1;
    j->path = journal_path(filename, ".reenc");
    j->backup = malloc(J_CHUNK);
    if (!j->path || !j->backup) {
        reenc_free(j);
        return NULL;
    }
    j->chunk = J_CHUNK;
    return j;
}

/* ---- the superblock ------------------------------------------------------------ */

static int
sb_encode(const struct reenc *j, uint8_t *b)
{
    memset(b, 0, J_SB_SIZE);
    memcpy(b, J_MAGIC, 8);
    st_le32(b + 8, J_VERSION);
    st_le32(b + 12, j->state);
    st_le64(b + 16, j->seq);
    st_le64(b + 24, j->hdr_off);
    st_le64(b + 32, j->hdr_len);
    st_le64(b + 40, j->iv_base);
    st_le64(b + 48, j->boundary);
    st_le64(b + 56, j->backup_len);
    st_le32(b + 64, j->backup_area);
    memcpy(b + 72, j->backup_sum, 32);
    st_le64(b + 104, j->chunk);
    st_le32(b + 112, j->flags);
    return crypto_hash(CRYPTO_HASH_SHA256, b, J_SUM_OFF, b + J_SUM_OFF);
}

/* Decode one copy; 1 if valid, 0 if not. */
static int
sb_decode(struct reenc *j, const uint8_t *b)
{
    uint8_t sum[32];

    if (memcmp(b, J_MAGIC, 8) != 0 || ld_le32(b + 8) != J_VERSION ||
        crypto_hash(CRYPTO_HASH_SHA256, b, J_SUM_OFF, sum) < 0 ||
        memcmp(sum, b + J_SUM_OFF, 32) != 0) {
        return 0;
    }
    j->state = ld_le32(b + 12);
    j->seq = ld_le64(b + 16);
    j->hdr_off = ld_le64(b + 24);
    j->hdr_len = ld_le64(b + 32);
    j->iv_base = ld_le64(b + 40);
    j->boundary = ld_le64(b + 48);
    j->backup_len = ld_le64(b + 56);
    j->backup_area = ld_le32(b + 64);
    memcpy(j->backup_sum, b + 72, 32);
    j->chunk = ld_le64(b + 104);
    j->flags = ld_le32(b + 112);
    return 1;
}

/* Write the superblock with the next sequence number (no flush). */
static int
sb_write(struct reenc *j, struct vimg_error **errp)
{
    uint8_t b[J_SB_SIZE];
    int r;

    j->seq++;
    r = sb_encode(j, b);
    if (r == 0) {
        r = full_pwrite(j->fd, b, sizeof(b), (j->seq % 2) * J_SB_SIZE);
    }
    return r < 0 ? jerr(j, errp, r, "cannot write the superblock") : 0;
}

static int
jflush(struct reenc *j, struct vimg_error **errp)
{
    int r = file_flush(j->fd);

    return r < 0 ? jerr(j, errp, r, "cannot flush") : 0;
}

/* ---- the new header area, in memory ---------------------------------------- */

static int
hdr_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    struct reenc *j = opaque;

    if (off > j->hdr_len || len > j->hdr_len - off) {
        return vimg_error_set(errp, -EINVAL,
                              "Request for data outside of the new header");
    }
    memcpy(buf, j->hdr + off, len);
    return 0;
}

static int
hdr_write(void *opaque, uint64_t off, const void *buf, size_t len,
          struct vimg_error **errp)
{
    struct reenc *j = opaque;

    if (off > j->hdr_len || len > j->hdr_len - off) {
        return vimg_error_set(errp, -EINVAL,
                              "Request for data outside of the new header");
    }
    memcpy(j->hdr + off, buf, len);
    return 0;
}

void
reenc_header_io(struct reenc *j, struct luks1_io *io)
{
    memset(io, 0, sizeof(*io));
    io->opaque = j;
    io->read = hdr_read;
    io->write = NULL;
}

/* Load and unlock the header in j->hdr into j->newl. */
static int
unlock_new(struct reenc *j, const char *pw, size_t pwlen,
           struct vimg_error **errp)
{
    struct luks1_io io;
    int r;

    reenc_header_io(j, &io);
    r = luks1_load(&io, &j->newl, errp);
    if (r == 0) {
        r = luks1_unlock(j->newl, pw, pwlen, errp);
    }
    if (r < 0) {
        vimg_error_prefix(errp, "Re-encryption journal '%s'", j->path);
        return r;
    }
    return 0;
}

/* ---- open ------------------------------------------------------------------- */

int
reenc_open(const char *filename, const char *pw, size_t pwlen,
           struct reenc **out, struct vimg_error **errp)
{
    uint8_t sb[2][J_SB_SIZE], sum[32];
    struct reenc *j, tmp[2];
    int best = -1, i, r;

    *out = NULL;
    j = reenc_alloc(filename);
    if (!j) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    j->fd = open(j->path, O_RDWR | O_CLOEXEC);
    if (j->fd < 0 && errno == EACCES) {
        j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
    }
    if (j->fd < 0) {
        r = errno == ENOENT ? 0 : jerr(j, errp, -errno, "cannot open");
        reenc_free(j);
        return r;
    }
    r = full_pread_zero(j->fd, sb, sizeof(sb), 0);
    if (r < 0) {
        r = jerr(j, errp, r, "cannot read");
        goto fail;
    }
    for (i = 0; i < 2; i++) {
        memset(&tmp[i], 0, sizeof(tmp[i]));
        if (sb_decode(&tmp[i], sb[i]) && (best < 0 ||
                                          tmp[i].seq > tmp[best].seq)) {
            best = i;
        }
    }
    if (best < 0) {
        r = vimg_error_set(errp, -EINVAL, "Re-encryption journal '%s' is "
                           "damaged (no valid superblock)", j->path);
        goto fail;
    }
    j->state = tmp[best].state;
    j->seq = tmp[best].seq;
    j->hdr_off = tmp[best].hdr_off;
    j->hdr_len = tmp[best].hdr_len;
    j->iv_base = tmp[best].iv_base;
    j->boundary = tmp[best].boundary;
    j->backup_len = tmp[best].backup_len;
    j->backup_area = tmp[best].backup_area;
    memcpy(j->backup_sum, tmp[best].backup_sum, 32);
    j->flags = tmp[best].flags;
    if ((j->state != J_RUNNING && j->state != J_FINISHING) ||
        tmp[best].chunk != J_CHUNK || j->backup_area > 1 ||
        j->backup_len > J_CHUNK || j->backup_len % 512 ||
        j->hdr_len == 0 || j->hdr_len > J_MAX_HDR || j->hdr_len % 512 ||
        (j->flags & ~(J_PLAIN | J_AES)) ||
        j->flags == (J_PLAIN | J_AES)) {
        r = vimg_error_set(errp, -EINVAL, "Re-encryption journal '%s' is "
                           "damaged (bad superblock fields)", j->path);
        goto fail;
    }
    j->hdr = malloc(j->hdr_len);
    if (!j->hdr) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    r = full_pread(j->fd, j->hdr, j->hdr_len, J_HDR_OFF);
    if (r < 0) {
        r = jerr(j, errp, r, "cannot read the new header");
        goto fail;
    }
    if (j->backup_len) {
        r = full_pread(j->fd, j->backup, j->backup_len,
                       backup_offset(j, j->backup_area));
        if (r == 0) {
            r = crypto_hash(CRYPTO_HASH_SHA256, j->backup, j->backup_len, sum);
        }
        if (r < 0 || memcmp(sum, j->backup_sum, 32) != 0) {
            /* Never reached the disk: the image chunk was not touched. */
            j->backup_len = 0;
        }
    }
    r = unlock_new(j, pw, pwlen, errp);
    if (r < 0) {
        goto fail;
    }
    *out = j;
    return 0;

fail:
    reenc_free(j);
    return r;
}

bool
reenc_exists(const char *filename)
{
    char *p = journal_path(filename, ".reenc");
    bool r = p && access(p, F_OK) == 0;

    free(p);
    return r;
}

bool
reenc_pending(const char *filename)
{
    char *p = journal_path(filename, ".reenc");
    uint8_t sb[2][J_SB_SIZE];
    struct reenc tmp;
    bool r = false;
    int fd, i;

    fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    free(p);
    if (fd < 0) {
        return false;
    }
    if (full_pread_zero(fd, sb, sizeof(sb), 0) == 0) {
        for (i = 0; i < 2 && !r; i++) {
            r = sb_decode(&tmp, sb[i]) != 0;
        }
    }
    close(fd);
    return r;
}

void
reenc_header_area(const struct reenc *j, uint64_t *off, uint64_t *len)
{
    *off = j->hdr_off;
    *len = j->hdr_len;
}

bool
reenc_finishing(const struct reenc *j)
{
    return j && j->state == J_FINISHING;
}

int
reenc_busy_error(const char *filename, struct vimg_error **errp)
{
    return vimg_error_set(errp, -EBUSY,
                          "Re-encryption of '%s' is unfinished; run 'vimg "
                          "reencrypt' to complete it", filename);
}

int
reenc_check_slots(const struct reenc *j, const char *filename,
                  const struct luks1 *old, bool force,
                  struct vimg_error **errp)
{
    int active = luks1_active_slots(old);

    if (!j && active > 1 && !force) {
        return vimg_error_set(errp, -EINVAL, "'%s' has %d active key slots; "
                              "the re-encrypted header keeps only the "
                              "passphrase given (slot 0): erase the others "
                              "with 'vimg amend' or use --force",
                              filename, active);
    }
    return 0;
}

/* ---- reading while unfinished ------------------------------------------------- */

/*
 * The old key is @old (IV sector = (file offset - @iv_base) / 512), or
 * @aes (IV sector = guest offset / 512, @guest being that of @pos), or
 * none (J_PLAIN).
 */
static int
decrypt_split(struct reenc *j, struct luks1 *old, struct qcowaes *aes,
              uint64_t iv_base, uint64_t guest, uint64_t pos, void *buf,
              size_t len)
{
    uint8_t *p = buf;
    int r;

    while (len > 0) {
        uint64_t bo = j->boundary, be = j->boundary + j->backup_len;
        size_t n = len;
        bool use_new = false, use_backup = false;

        if (j->state == J_FINISHING || pos < bo) {
            use_new = true;
            if (j->state != J_FINISHING) {
                n = (size_t)MIN((uint64_t)n, bo - pos);
            }
        } else if (pos < be) {
            use_backup = true;
            n = (size_t)MIN((uint64_t)n, be - pos);
        } else {
            /* old key all the way */
        }
        if (pos < iv_base || (pos - iv_base) % 512 || n % 512) {
            return -EINVAL;
        }
        if (use_backup) {
            memcpy(p, j->backup + (pos - bo), n);
        }
        if (use_new) {
            r = luks1_decrypt(j->newl, (pos - iv_base) / 512, p, n);
        } else if (j->flags & J_PLAIN) {
            r = 0;                      /* not encrypted yet */
        } else if (aes) {
            r = guest % 512 ? -EINVAL : qcowaes_decrypt(aes, guest / 512, p, n);
        } else {
            r = luks1_decrypt(old, (pos - iv_base) / 512, p, n);
        }
        if (r < 0) {
            return r;
        }
        p += n;
        pos += n;
        guest += n;
        len -= n;
    }
    return 0;
}

int
reenc_decrypt(struct reenc *j, struct luks1 *old, uint64_t iv_base,
              uint64_t pos, void *buf, size_t len)
{
    return decrypt_split(j, old, NULL, iv_base, 0, pos, buf, len);
}

int
reenc_decrypt_aes(struct reenc *j, struct qcowaes *aes, uint64_t pos,
                  uint64_t guest, void *buf, size_t len)
{
    if (!aes) {
        return -EACCES;
    }
    return decrypt_split(j, NULL, aes, 0, guest, pos, buf, len);
}

/* ---- starting --------------------------------------------------------------------- */

/*
 * Make the new header in memory (slot 0 with @pw; the payload offset
 * field set to the image's, so key slots and payload stay where they are),
 * then write the journal under a temporary name and rename it into place.
 */
static int
journal_create(const struct reenc_target *t,
               const struct luks1_create_params *np, const char *pw,
               size_t pwlen, struct reenc **out, struct vimg_error **errp)
{
    struct luks1_io io = { .read = hdr_read, .write = hdr_write };
    struct luks1 *l = NULL;
    uint8_t sb[J_SB_SIZE];
    uint64_t need = 0;
    struct reenc *j;
    char *tmp = NULL;
    int r;

    r = luks1_payload_bytes(np, &need, errp);
    if (r < 0) {
        return r;
    }
    if (need > t->hdr_len) {
        return vimg_error_set(errp, -ENOSPC,
                              "The new encryption parameters need a %" PRIu64
                              "-byte LUKS header, the image has room for %"
                              PRIu64 " bytes; use 'vimg convert' instead",
                              need, t->hdr_len);
    }
    if (t->hdr_len % 512 || t->hdr_len / 512 > UINT32_MAX ||
        t->hdr_len > J_MAX_HDR) {
        return vimg_error_set(errp, -EINVAL, "Unsupported LUKS header size %"
                              PRIu64, t->hdr_len);
    }
    j = reenc_alloc(t->filename);
    if (!j) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    j->hdr_off = t->hdr_off;
    j->hdr_len = t->hdr_len;
    j->iv_base = t->iv_base;
    j->state = J_RUNNING;
    j->flags = t->old ? 0 : t->old_aes ? J_AES : J_PLAIN;
    j->hdr = calloc(1, t->hdr_len);
    if (!j->hdr) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    io.opaque = j;
    r = luks1_create(&io, np, pw, pwlen, &l, errp);
    if (r < 0) {
        goto fail;
    }
    luks1_free(l);
    /* Same payload offset and UUID as the old header (offsets 104, 168);
     * a new header for plaintext or legacy AES data keeps its fresh UUID. */
    st_be32(j->hdr + 104, (uint32_t)(t->hdr_len / 512));
    r = t->old ? full_pread(t->fd, j->hdr + 168, 40, t->hdr_off + 168) : 0;
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not read the LUKS header of '%s'",
                           t->filename);
        goto fail;
    }
    r = unlock_new(j, pw, pwlen, errp);
    if (r < 0) {
        goto fail;
    }

    tmp = journal_path(t->filename, ".reenc.tmp");
    if (!tmp) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto fail;
    }
    j->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        r = vimg_error_set(errp, -errno, "Could not create '%s': %s", tmp,
                           strerror(errno));
        goto fail;
    }
    r = full_pwrite(j->fd, j->hdr, j->hdr_len, J_HDR_OFF);
    if (r == 0) {
        r = sb_encode(j, sb);        /* seq 0, at offset 0 */
    }
    if (r == 0) {
        r = full_pwrite(j->fd, sb, sizeof(sb), 0);
    }
    if (r == 0) {
        r = file_flush(j->fd);
    }
    if (r == 0 && rename(tmp, j->path) < 0) {
        r = -errno;
    }
    if (r < 0) {
        r = vimg_error_set(errp, r, "Could not write '%s': %s", tmp,
                           strerror(-r));
        unlink(tmp);
        goto fail;
    }
    sync_dir(j->path);
    free(tmp);
    *out = j;
    return 0;

fail:
    free(tmp);
    reenc_free(j);
    return r;
}

/* ---- the loop ------------------------------------------------------------------------ */

/*
 * Rewrite [@pos, @pos + @n) whose old ciphertext is in @buf (a scratch
 * buffer, not j->backup; it is re-encrypted in place).  @guest: the guest
 * offset of @pos (legacy AES only).
 */
static int
do_chunk(const struct reenc_target *t, struct reenc *j, uint64_t pos,
         uint64_t guest, uint8_t *buf, uint64_t n, struct vimg_error **errp)
{
    uint32_t area = j->backup_area ^ 1;
    uint64_t sector = (pos - j->iv_base) / 512;
    int r;

    r = full_pwrite(j->fd, buf, n, backup_offset(j, area));
    if (r < 0) {
        return jerr(j, errp, r, "cannot write the backup");
    }
    memcpy(j->backup, buf, n);
    r = crypto_hash(CRYPTO_HASH_SHA256, buf, n, j->backup_sum);
    if (r < 0) {
        return jerr(j, errp, r, "cannot hash the backup");
    }
    j->boundary = pos;
    j->backup_len = n;
    j->backup_area = area;
    r = sb_write(j, errp);
    if (r == 0) {
        r = jflush(j, errp);
    }
    if (r < 0) {
        return r;
    }
    if (j->flags & J_PLAIN) {
        r = 0;
    } else if (j->flags & J_AES) {
        r = guest % 512 ? -EINVAL
                        : qcowaes_decrypt(t->old_aes, guest / 512, buf, n);
    } else {
        r = luks1_decrypt(t->old, sector, buf, n);
    }
    if (r == 0) {
        r = luks1_encrypt(j->newl, sector, buf, n);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not re-encrypt data at offset %"
                              PRIu64 ": %s", pos, strerror(-r));
    }
    r = full_pwrite(t->fd, buf, n, pos);
    if (r == 0) {
        r = file_flush(t->fd);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write '%s' at offset %"
                              PRIu64 ": %s", t->filename, pos, strerror(-r));
    }
    return 0;
}

static int
rewrite_data(const struct reenc_target *t, struct reenc *j,
             const struct reenc_extent *ext, size_t n_ext,
             vimg_progress_fn progress, void *opaque,
             struct vimg_error **errp)
{
    uint64_t total = 0, done = 0;
    uint8_t *buf;
    size_t i;
    int r = 0;

    if ((j->flags & J_AES) ? !t->old_aes
        : !(j->flags & J_PLAIN) && (!t->old || !luks1_unlocked(t->old))) {
        return vimg_error_set(errp, -EACCES, "The image is not unlocked");
    }
    for (i = 0; i < n_ext; i++) {
        total += ext[i].len;
    }
    buf = malloc(J_CHUNK);
    if (!buf) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    for (i = 0; i < n_ext && r == 0; i++) {
        uint64_t end = ext[i].off + ext[i].len;
        uint64_t pos = MAX(ext[i].off, j->boundary);

        if (end <= j->boundary) {
            done += ext[i].len;
            continue;
        }
        done += pos - ext[i].off;
        while (pos < end) {
            uint64_t n = MIN((uint64_t)J_CHUNK, end - pos);

            if (j->backup_len && pos == j->boundary) {
                /* Resuming: the backup holds this chunk's old ciphertext. */
                n = j->backup_len;
                memcpy(buf, j->backup, n);
            } else {
                r = full_pread(t->fd, buf, n, pos);
                if (r < 0) {
                    r = vimg_error_set(errp, r, "Could not read '%s' at "
                                       "offset %" PRIu64 ": %s", t->filename,
                                       pos, strerror(-r));
                    break;
                }
            }
            r = do_chunk(t, j, pos, ext[i].guest + (pos - ext[i].off), buf,
                         n, errp);
            if (r < 0) {
                break;
            }
            pos += n;
            done += n;
            if (progress) {
                progress(opaque, done, total);
            }
        }
    }
    free(buf);
    if (r < 0) {
        return r;
    }
    j->state = J_FINISHING;
    j->boundary = UINT64_MAX;
    j->backup_len = 0;
    r = sb_write(j, errp);
    if (r == 0) {
        r = jflush(j, errp);
    }
    return r;
}

int
reenc_run(const struct reenc_target *t, struct reenc **jp,
          const struct reenc_extent *ext, size_t n_ext,
          const struct luks1_create_params *np, const char *pw, size_t pwlen,
          vimg_progress_fn progress, void *opaque, struct vimg_error **errp)
{
    struct reenc *j = *jp;
    uint32_t mode = t->old ? 0 : t->old_aes ? J_AES : J_PLAIN;
    int r;

    /* One run at a time (held until the image is closed). */
    if (flock(t->fd, LOCK_EX | LOCK_NB) < 0) {
        return vimg_error_set(errp, errno == EWOULDBLOCK ? -EBUSY : -errno,
                              "'%s' is being re-encrypted by another "
                              "process", t->filename);
    }
    if (!j) {
        r = journal_create(t, np, pw, pwlen, &j, errp);
        if (r < 0) {
            return r;
        }
        *jp = j;
    } else if (j->hdr_off != t->hdr_off || j->hdr_len != t->hdr_len ||
               j->iv_base != t->iv_base ||
               (j->state == J_RUNNING && j->flags != mode)) {
        return vimg_error_set(errp, -EINVAL, "Re-encryption journal '%s' "
                              "does not match the image", j->path);
    }
    if ((fcntl(j->fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
        return jerr(j, errp, -EACCES, "cannot open read-write");
    }
    if (j->state == J_RUNNING) {
        r = rewrite_data(t, j, ext, n_ext, progress, opaque, errp);
        if (r < 0) {
            return r;
        }
    }
    r = full_pwrite(t->fd, j->hdr, j->hdr_len, j->hdr_off);
    if (r == 0) {
        r = file_flush(t->fd);
    }
    if (r < 0) {
        return vimg_error_set(errp, r, "Could not write the new LUKS header "
                              "of '%s': %s", t->filename, strerror(-r));
    }
    if (t->finish) {
        r = t->finish(t->opaque, errp);
        if (r < 0) {
            return r;
        }
    }
    if (unlink(j->path) < 0) {
        return jerr(j, errp, -errno, "cannot delete");
    }
    sync_dir(j->path);
    reenc_free(j);
    *jp = NULL;
    return 0;
}
