// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg reencrypt" of a qcow version 1 image (plain or legacy AES): qcow v1
 * cannot hold LUKS, so the image is converted into a new qcow2 + LUKS file
 * next to it (FILENAME.reenc-new) with vimg_copy(), that file is synced,
 * renamed over the original, and the directory is synced.  A kill at any
 * point leaves the untouched original (and maybe a partial temp file, which
 * the next run deletes and redoes) or the complete new image.  The backing
 * file reference is kept; only what the top layer holds is copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "open-image.h"
#include "progress.h"
#include "reencrypt-qcow1.h"

#define TEMP_SUFFIX ".reenc-new"

/* fsync @path (a file, or a directory with O_DIRECTORY). */
static int
sync_path(const char *path, int extra_flags)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | extra_flags);
    int r = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) < 0) {
        r = -errno;
    }
    close(fd);
    return r;
}

/*
 * The qcow2 creation options: encrypt.format=luks, the -o encrypt.* keys
 * (checked against qcow2's creation options), and the backing file of
 * @src with the format it was opened as.
 */
static int
create_options(struct vimg_image *src, struct vimg_opts *opts,
               struct vimg_opts **out)
{
    const struct vimg_opt_desc *desc = vimg_format_create_opts("qcow2");
    struct vimg_opts *c = vimg_opts_new();
    struct vimg_image *backing = vimg_image_backing(src);
    struct json_object *info = NULL, *v;
    struct vimg_error *err = NULL;
    size_t i, n = vimg_opts_count(opts);
    int r;

    if (!c) {
        goto nomem;
    }
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(opts, i);
        const struct vimg_opt_desc *d = cli_find_opt_desc(desc, k);

        if (strncmp(k, "encrypt.", 8) != 0 || !d ||
            strcmp(k, "encrypt.format") == 0) {
            cli_error("Invalid parameter '%s' for a qcow image (allowed: "
                      "encrypt.key-secret and the new LUKS header's "
                      "encrypt.* algorithms and iter-time/iter-count)", k);
            vimg_opts_free(c);
            return -EINVAL;
        }
        if (cli_check_opt_value(NULL, d, vimg_opts_value(opts, i)) < 0) {
            vimg_opts_free(c);
            return -EINVAL;
        }
        if (vimg_opts_set(c, k, vimg_opts_value(opts, i)) < 0) {
            goto nomem;
        }
    }
    if (vimg_opts_set(c, "encrypt.format", "luks") < 0) {
        goto nomem;
    }
    if (backing) {
        r = vimg_image_info(src, &info, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            vimg_opts_free(c);
            return r;
        }
        if (!json_object_object_get_ex(info, "backing-filename", &v) ||
            vimg_opts_set(c, "backing_file", json_object_get_string(v)) < 0 ||
            vimg_opts_set(c, "backing_fmt", vimg_image_format(backing)) < 0) {
            json_object_put(info);
            goto nomem;
        }
        json_object_put(info);
    }
    *out = c;
    return 0;

nomem:
    vimg_opts_free(c);
    cli_error("%s", strerror(ENOMEM));
    return -ENOMEM;
}

/* Open @path (format @fmt) with the key @key_id; NULL after a message. */
static struct vimg_image *
open_with_key(const char *path, const char *fmt, const char *key_id,
              unsigned flags, struct cli_image *spec)
{
    struct vimg_image *img = NULL;

    if (cli_image_parse(path, false, fmt, spec) < 0) {
        return NULL;
    }
    if (!spec->opts) {
        spec->opts = vimg_opts_new();
    }
    if (!spec->opts ||
        vimg_opts_set(spec->opts, "encrypt.key-secret", key_id) < 0) {
        cli_error("%s", strerror(ENOMEM));
        return NULL;
    }
    if (cli_image_open(spec, flags, &img) < 0) {
        return NULL;
    }
    return img;
}

#define SAMPLE_SECTORS 64

/* A 512-byte sector with many distinct byte values: what AES-CBC under a
 * wrong key gives (about 221 expected); text, code and zeroes have far
 * fewer. */
static bool
looks_random(const unsigned char *p)
{
    bool seen[256] = {false};
    unsigned i, distinct = 0;

    for (i = 0; i < 512; i++) {
        if (!seen[p[i]]) {
            seen[p[i]] = true;
            distinct++;
        }
    }
    return distinct >= 180;
}

/*
 * Legacy AES has no key check: a wrong passphrase decrypts to noise.
 * Refuse (without --force) when every sampled non-zero sector of the top
 * layer's data, up to SAMPLE_SECTORS, looks random.
 */
static int
check_passphrase(struct vimg_image *src, bool force)
{
    unsigned char buf[512];
    struct vimg_error *err = NULL;
    uint64_t off = 0, size = vimg_image_size(src), pnum, o;
    unsigned status, sampled = 0, noise = 0;
    int r;

    if (force || !vimg_image_encrypted(src)) {
        return 0;
    }
    while (off < size && sampled < SAMPLE_SECTORS) {
        r = vimg_image_block_status(src, off, size - off, &pnum, &status,
                                    NULL, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            return r;
        }
        for (o = off; (status & VIMG_BLOCK_DATA) && o + 512 <= off + pnum &&
             sampled < SAMPLE_SECTORS; o += 512) {
            r = vimg_image_pread(src, buf, sizeof(buf), o, &err);
            if (r < 0) {
                cli_error_vimg(err, r, NULL);
                return r;
            }
            sampled++;
            noise += looks_random(buf);
        }
        off += pnum;
    }
    if (sampled > 0 && noise == sampled) {
        cli_error("the decrypted data looks random: wrong passphrase? "
                  "(legacy AES cannot tell; --force migrates anyway)");
        return -EKEYREJECTED;
    }
    return 0;
}

/* Convert @path into @tmp (qcow2 + LUKS), closed and synced. */
static int
convert_to_temp(const char *path, const char *tmp, struct vimg_opts *opts,
                const char *key_id, bool progress, bool force)
{
    struct cli_image sspec = {0}, dspec = {0};
    struct vimg_image *src = NULL, *dst = NULL;
    struct vimg_opts *copts = NULL;
    struct vimg_error *err = NULL;
    struct vimg_copy_params params = {0};
    struct cli_progress prog;
    struct stat st;
    int r = -EINVAL;

    src = open_with_key(path, "qcow", key_id, 0, &sspec);
    if (!src || check_passphrase(src, force) < 0 ||
        create_options(src, opts, &copts) < 0) {
        goto out;
    }
    r = vimg_image_create(tmp, "qcow2", vimg_image_size(src), copts,
                          cli_secrets(), &err);
    if (r < 0) {
        cli_error_vimg(err, r, "%s: ", tmp);
        goto out;
    }
    /* The new file gets the original's permission bits. */
    if (stat(path, &st) == 0) {
        (void)chmod(tmp, st.st_mode & 07777);
    }
    r = -EINVAL;
    dst = open_with_key(tmp, "qcow2", key_id, VIMG_OPEN_RDWR, &dspec);
    if (!dst) {
        goto out;
    }
    params.sparse_size = 4096;
    params.target_has_backing = vimg_image_backing(src) != NULL;
    params.progress = progress_cb;
    params.progress_opaque = &prog;
    progress_start(&prog, progress);
    r = vimg_copy(src, dst, &params, &err);
    if (r < 0) {
        progress_finish(&prog, false);
        cli_error_vimg(err, r, "%s: ", tmp);
        goto out;
    }
    r = cli_image_close(&dst);  /* writes the metadata and flushes */
    progress_finish(&prog, r == 0);
    if (r < 0) {
        goto out;
    }
    r = sync_path(tmp, 0);
    if (r < 0) {
        cli_error("%s: %s", tmp, strerror(-r));
    }

out:
    vimg_image_close(dst, NULL);
    vimg_image_close(src, NULL);
    vimg_opts_free(copts);
    cli_image_clear(&sspec);
    cli_image_clear(&dspec);
    return r;
}

int
reencrypt_qcow1(const char *path, struct vimg_opts *opts, bool progress,
                bool quiet, bool force)
{
    const char *key_id = vimg_opts_get(opts, "encrypt.key-secret");
    char *tmp = NULL, *dircopy = NULL;
    struct stat st;
    int r = -EINVAL;

    if (!key_id) {
        cli_error("Parameter 'encrypt.key-secret' is required: it names "
                  "the passphrase of the new LUKS header (and of the qcow "
                  "image's AES encryption, if it has any)");
        return r;
    }
    if (lstat(path, &st) < 0) {
        cli_error("Could not open '%s': %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
        cli_error("'%s' is not a regular file; a qcow image is migrated by "
                  "replacing the file, so give the real file name", path);
        return r;
    }
    if (asprintf(&tmp, "%s" TEMP_SUFFIX, path) < 0) {
        tmp = NULL;
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    /* A leftover of an interrupted run: the original is still intact. */
    if (unlink(tmp) == 0) {
        if (!quiet) {
            fprintf(stderr, CLI_NAME ": note: removed '%s' left by an "
                    "interrupted run; starting again\n", tmp);
        }
    } else if (errno != ENOENT) {
        cli_error("Could not remove '%s': %s", tmp, strerror(errno));
        r = -errno;
        goto out;
    }
    r = convert_to_temp(path, tmp, opts, key_id, progress, force);
    if (r < 0) {
        /* The original is untouched; do not leave a half copy. */
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        r = -errno;
        cli_error("Could not rename '%s' to '%s': %s", tmp, path,
                  strerror(errno));
        unlink(tmp);
        goto out;
    }
    dircopy = strdup(path);
    if (!dircopy) {
        r = -ENOMEM;
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    r = sync_path(dirname(dircopy), O_DIRECTORY);
    if (r < 0) {
        cli_error("Could not sync the directory of '%s': %s", path,
                  strerror(-r));
    } else if (!quiet) {
        fprintf(stderr, CLI_NAME ": note: '%s' was a qcow (version 1) "
                "image; it is now qcow2 with LUKS encryption (the file "
                "name stays, the format becomes qcow2)\n", path);
    }

out:
    free(dircopy);
    free(tmp);
    return r;
}
