/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 key slot management: adding a passphrase to a free slot and erasing
 * slots of a loaded (and, for adding, unlocked) struct luks1, plus the
 * option handling of `qemu-img amend` for LUKS (qemu-facts.md 5.8): the
 * same option names, checks, order of checks and messages.
 *
 * Crash safety.  LUKS1 has no journal, so the order of writes is what keeps
 * an image usable when the process dies half-way:
 * - add: the key material goes into the (inactive) slot's area first and is
 *   flushed; only then is the header rewritten with the slot active, and
 *   flushed again.  Until that header write the image is exactly the old
 *   one; after it, both the old and the new passphrases work.
 * - erase: the header is rewritten first with the slot inactive (iterations
 *   0, salt zeroed) and flushed; then the key material is overwritten.  The
 *   slot is unusable as soon as the header is on disk, the other slots
 *   never change.
 * A forced overwrite of an active slot is an erase of its header entry
 * followed by an add.
 *
 * Overwriting erased key material: qemu 7.2 does 40 passes of random data.
 * vimg does one.  The passes date from magnetic-media remanence; through a
 * file system they add nothing: the file system (copy-on-write, journalled
 * data, SSD remapping below it) decides where each rewrite lands, so
 * repeated writes at one file offset need not touch the old physical blocks
 * at all, while one pass already replaces every byte any reader of the file
 * (or of the device holding it, on in-place file systems) can see.  A
 * restored copy of the old header cannot revive the slot (the material is
 * gone), which is the property qemu's test 294 checks.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "bytes.h"
#include "safemem.h"
#include "blockcrypt/luks1.h"
#include "blockcrypt/luks1-disk.h"
#include "blockcrypt/luks1-priv.h"
#include "secret/secret.h"

#define KS_MIN_ITERATIONS 1000

/* The amend option names after the prefix, in qemu's help order. */
static const char *const amend_names[] = {
    "iter-time", "keyslot", "new-secret", "old-secret", "state",
    "iter-count",       /* vimg extension: explicit slot iterations */
};

/* ---- small helpers ------------------------------------------------------ */

/* Bytes of a slot's key material: stripes * key length, whole sectors. */
static size_t
ks_material_len(const struct luks1 *l)
{
    return ROUND_UP((size_t)l->hdr.key_bytes * LUKS1_STRIPES,
                    (size_t)CRYPTO_SECTOR_SIZE);
}

static uint64_t
ks_material_off(const struct luks1 *l, int slot)
{
    return (uint64_t)l->hdr.slots[slot].key_offset * CRYPTO_SECTOR_SIZE;
}

static int
ks_flush(const struct luks1_sync *sync, struct vimg_error **errp)
{
    if (!sync || !sync->flush) {
        return 0;
    }
    return sync->flush(sync->opaque, errp);
}

/* Write @hdr (host order) as the on-disk header; flush. */
static int
ks_write_header(struct luks1 *l, const struct luks1_disk_header *hdr,
                const struct luks1_sync *sync, struct vimg_error **errp)
{
    struct luks1_disk_header disk;
    int r;

    luks1_header_to_disk(hdr, &disk);
    r = l->io.write(l->io.opaque, 0, &disk, sizeof(disk), errp);
    if (r < 0) {
        return vimg_error_set(errp, r, "Unable to write LUKS header");
    }
    return ks_flush(sync, errp);
}

static bool
slot_ok(int slot)
{
    return slot >= 0 && slot < LUKS1_NUM_SLOTS;
}

bool
luks1_keyslot_active(const struct luks1 *l, int slot)
{
    return l && slot_ok(slot) &&
           l->hdr.slots[slot].active == LUKS1_SLOT_ACTIVE;
}

/* ---- calibration -------------------------------------------------------- */

int
luks1_keyslot_iterations(const struct luks1 *l, int64_t iter_time_ms,
                         uint32_t *out, struct vimg_error **errp)
{
    uint64_t rate, iters;
    int r;

    if (iter_time_ms == 0) {
        *out = KS_MIN_ITERATIONS;
        return 0;
    }
    r = crypto_pbkdf2_rate(l->hash, l->hdr.key_bytes, &rate);
    if (r < 0) {
        return vimg_error_errno(errp, r, "Unable to measure the PBKDF2 speed");
    }
    if (iter_time_ms < 0 || rate > UINT64_MAX / (uint64_t)iter_time_ms) {
        return vimg_error_set(errp, -ERANGE,
                              "PBKDF iterations %" PRIu64
                              " too large to scale: %s", rate,
                              strerror(ERANGE));
    }
    iters = rate * (uint64_t)iter_time_ms / 1000;
    if (iters > UINT32_MAX) {
        return vimg_error_set(errp, -ERANGE,
                              "PBKDF iterations %" PRIu64 " larger than %" PRIu32
                              ": %s", iters, UINT32_MAX, strerror(ERANGE));
    }
    *out = MAX((uint32_t)iters, (uint32_t)KS_MIN_ITERATIONS);
    return 0;
}

/* ---- slot check ----------------------------------------------------------- */

int
luks1_keyslot_check(struct luks1 *l, int slot, const char *pw, size_t pwlen,
                    struct vimg_error **errp)
{
    const struct luks1_disk_slot *s;
    size_t kb, mlen;
    struct crypto_sector *sc = NULL;
    uint8_t *slot_key = NULL, *material = NULL, *mk = NULL;
    int r;

    if (!luks1_unlocked(l) || !slot_ok(slot) || (!pw && pwlen)) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    s = &l->hdr.slots[slot];
    if (s->active != LUKS1_SLOT_ACTIVE) {
        return 0;
    }
    kb = l->hdr.key_bytes;
    mlen = ks_material_len(l);
    slot_key = safe_alloc(kb);
    material = safe_alloc(mlen);
    mk = safe_alloc(kb);
    if (!slot_key || !material || !mk) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = crypto_pbkdf2(l->hash, pw ? pw : "", pwlen, s->salt, LUKS1_SALT_LEN,
                      s->iterations, slot_key, kb);
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to derive the key of keyslot %d",
                             slot);
        goto out;
    }
    r = l->io.read(l->io.opaque, ks_material_off(l, slot), material, mlen,
                   errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Unable to read key material of keyslot %d",
                           slot);
        goto out;
    }
    r = crypto_sector_new(l->cipher, l->mode, l->ivgen, l->ivgen_hash,
                          slot_key, kb, &sc);
    if (r == 0) {
        r = crypto_sector_decrypt(sc, 0, material, mlen);
    }
    if (r == 0) {
        r = crypto_afmerge(l->hash, kb, LUKS1_STRIPES, material, mk);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to decrypt keyslot %d", slot);
        goto out;
    }
    /* All slots hold the one master key; compare with the one in use. */
    r = safe_memeq(mk, l->master_key, kb) ? 1 : 0;
out:
    crypto_sector_free(sc);
    safe_free(mk);
    safe_free(material);
    safe_free(slot_key);
    return r;
}

/* ---- add ------------------------------------------------------------------ */

static int
check_writable(struct luks1 *l, int slot, struct vimg_error **errp)
{
    if (!l || !slot_ok(slot)) {
        return vimg_error_set(errp, -EINVAL, "Invalid keyslot %d", slot);
    }
    if (!l->io.write) {
        return vimg_error_set(errp, -EBADF, "LUKS header is read-only");
    }
    return 0;
}

/* Header step of an erase: slot inactive, iterations 0, salt zeroed. */
static int
deactivate(struct luks1 *l, int slot, const struct luks1_sync *sync,
           struct vimg_error **errp)
{
    struct luks1_disk_header hdr = l->hdr;
    int r;

    hdr.slots[slot].active = LUKS1_SLOT_INACTIVE;
    hdr.slots[slot].iterations = 0;
    memset(hdr.slots[slot].salt, 0, LUKS1_SALT_LEN);
    r = ks_write_header(l, &hdr, sync, errp);
    if (r == 0) {
        l->hdr.slots[slot] = hdr.slots[slot];
    }
    return r;
}

int
luks1_keyslot_add(struct luks1 *l, int slot, const char *pw, size_t pwlen,
                  uint32_t iterations, const struct luks1_sync *sync,
                  struct vimg_error **errp)
{
    struct luks1_disk_header hdr;
    struct luks1_disk_slot *s;
    struct crypto_sector *sc = NULL;
    uint8_t *slot_key = NULL, *material = NULL;
    size_t kb, mlen;
    int r;

    r = check_writable(l, slot, errp);
    if (r < 0) {
        return r;
    }
    if (!luks1_unlocked(l)) {
        return vimg_error_set(errp, -EACCES,
                              "The volume must be unlocked to add a keyslot");
    }
    if (!pw && pwlen) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    if (iterations == 0) {
        iterations = KS_MIN_ITERATIONS;
    }
    /* Forced overwrite: the slot leaves the header before its area is
     * reused, so no header ever points at half-written material. */
    if (l->hdr.slots[slot].active == LUKS1_SLOT_ACTIVE) {
        r = deactivate(l, slot, sync, errp);
        if (r < 0) {
            return r;
        }
    }

    hdr = l->hdr;
    s = &hdr.slots[slot];
    kb = l->hdr.key_bytes;
    mlen = ks_material_len(l);
    slot_key = safe_alloc(kb);
    material = safe_alloc(mlen);        /* zeroed: the pad after the stripes */
    if (!slot_key || !material) {
        r = vimg_error_set(errp, -ENOMEM, "Out of memory");
        goto out;
    }
    r = crypto_random(s->salt, LUKS1_SALT_LEN);
    if (r == 0) {
        r = crypto_pbkdf2(l->hash, pw ? pw : "", pwlen, s->salt,
                          LUKS1_SALT_LEN, iterations, slot_key, kb);
    }
    if (r == 0) {
        r = crypto_afsplit(l->hash, kb, LUKS1_STRIPES, l->master_key,
                           material);
    }
    if (r == 0) {
        r = crypto_sector_new(l->cipher, l->mode, l->ivgen, l->ivgen_hash,
                              slot_key, kb, &sc);
    }
    if (r == 0) {
        r = crypto_sector_encrypt(sc, 0, material, mlen);
    }
    if (r < 0) {
        r = vimg_error_errno(errp, r, "Unable to create keyslot %d", slot);
        goto out;
    }

    /* 1. key material into the inactive slot's area, durable. */
    r = l->io.write(l->io.opaque, ks_material_off(l, slot), material, mlen,
                    errp);
    if (r < 0) {
        r = vimg_error_set(errp, r, "Failed to write to keyslot %d", slot);
        goto out;
    }
    r = ks_flush(sync, errp);
    if (r < 0) {
        goto out;
    }
    /* 2. the header that activates it, durable. */
    s->active = LUKS1_SLOT_ACTIVE;
    s->iterations = iterations;
    r = ks_write_header(l, &hdr, sync, errp);
    if (r < 0) {
        goto out;
    }
    l->hdr.slots[slot] = *s;
out:
    safe_wipe(&hdr, sizeof(hdr));
    crypto_sector_free(sc);
    safe_free(material);
    safe_free(slot_key);
    return r;
}

/* ---- erase ------------------------------------------------------------------ */

int
luks1_keyslot_erase(struct luks1 *l, int slot, const struct luks1_sync *sync,
                    struct vimg_error **errp)
{
    uint8_t *noise;
    size_t mlen;
    int r;

    r = check_writable(l, slot, errp);
    if (r < 0) {
        return r;
    }
    /* 1. header: from here on the slot no longer opens. */
    r = deactivate(l, slot, sync, errp);
    if (r < 0) {
        return r;
    }
    /* 2. destroy the key material (one pass; see the top of the file). */
    mlen = ks_material_len(l);
    noise = malloc(mlen);
    if (!noise) {
        return vimg_error_set(errp, -ENOMEM, "Out of memory");
    }
    r = crypto_random(noise, mlen);
    if (r < 0) {
        free(noise);
        return vimg_error_errno(errp, r, "Unable to generate random data");
    }
    r = l->io.write(l->io.opaque, ks_material_off(l, slot), noise, mlen, errp);
    free(noise);
    if (r < 0) {
        return vimg_error_set(errp, r,
                              "Failed to erase the key material of keyslot %d",
                              slot);
    }
    return ks_flush(sync, errp);
}

/* ---- amend option checks --------------------------------------------------- */

/* qemu's number options: strtoull with base prefixes; negative wraps. */
static int
parse_number(const char *v, uint64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoull(v, &end, 0);
    if (end == v || *end != '\0') {
        return -EINVAL;
    }
    if (errno == ERANGE) {
        return -ERANGE;
    }
    return 0;
}

static int
number_error(const char *key, const char *v, int r, struct vimg_error **errp)
{
    if (r == -ERANGE) {
        return vimg_error_set(errp, -EINVAL,
                              "Value '%s' is too large for parameter '%s'", v,
                              key);
    }
    return vimg_error_set(errp, -EINVAL, "Parameter '%s' expects a number",
                          key);
}

/* Is @key PREFIX + one of amend_names?  *numeric for the number ones. */
static bool
is_amend_key(const char *key, const char *prefix, bool *numeric)
{
    size_t plen = strlen(prefix), i;

    if (strncmp(key, prefix, plen) != 0) {
        return false;
    }
    for (i = 0; i < ARRAY_SIZE(amend_names); i++) {
        if (strcmp(key + plen, amend_names[i]) == 0) {
            *numeric = strcmp(amend_names[i], "iter-time") == 0 ||
                       strcmp(amend_names[i], "keyslot") == 0 ||
                       strcmp(amend_names[i], "iter-count") == 0;
            return true;
        }
    }
    return false;
}

static bool
in_list(const char *key, const char *const *list)
{
    size_t i;

    for (i = 0; list && list[i]; i++) {
        if (strcmp(key, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether @v is a valid value of creation option @d (qemu's parsers). */
static bool
create_value_ok(const struct vimg_opt_desc *d, const char *v)
{
    uint64_t n;

    switch (d->type) {
    case VIMG_OPT_NUMBER:
        return parse_number(v, &n) == 0;
    case VIMG_OPT_SIZE:
        return parse_size(v, &n) == 0;
    case VIMG_OPT_BOOL:
        return strcmp(v, "on") == 0 || strcmp(v, "off") == 0 ||
               strcmp(v, "yes") == 0 || strcmp(v, "no") == 0 ||
               strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
    default:
        return true;
    }
}

/*
 * One pass over the keys in order.  @create: also accept creation options.
 * Returns 0 or -EINVAL with the first error.
 */
static int
check_pass(const struct vimg_opts *opts, const char *prefix,
           const struct vimg_opt_desc *create_opts,
           const char *const *other_amend, bool create,
           struct vimg_error **errp)
{
    size_t i, n = vimg_opts_count(opts);

    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(opts, i);
        const char *v = vimg_opts_value(opts, i);
        const struct vimg_opt_desc *d;
        bool numeric = false;
        uint64_t num;
        int r;

        if (is_amend_key(k, prefix, &numeric)) {
            if (numeric && (r = parse_number(v, &num)) < 0) {
                return number_error(k, v, r, errp);
            }
            continue;
        }
        if (in_list(k, other_amend)) {
            continue;
        }
        for (d = create ? create_opts : NULL; d && d->name; d++) {
            if (strcmp(d->name, k) == 0) {
                break;
            }
        }
        if (d && d->name) {
            if (!create_value_ok(d, v)) {
                return vimg_error_set(errp, -EINVAL,
                                      "Parameter '%s' has an invalid value",
                                      k);
            }
            continue;
        }
        return vimg_error_set(errp, -EINVAL, "Invalid parameter '%s'", k);
    }
    return 0;
}

int
luks1_amend_check_opts(const struct vimg_opts *opts, const char *prefix,
                       const struct vimg_opt_desc *create_opts,
                       const char *const *other_amend,
                       struct vimg_error **errp)
{
    struct vimg_error *err = NULL;
    int r;

    if (!opts) {
        return 0;
    }
    prefix = prefix ? prefix : "";
    r = check_pass(opts, prefix, create_opts, other_amend, false, &err);
    if (r == 0) {
        return 0;
    }
    /* qemu adds the hint when the string is valid as creation options. */
    if (check_pass(opts, prefix, create_opts, other_amend, true, NULL) == 0) {
        r = vimg_error_set(errp, r, "%s\nThis option is only supported for "
                           "image creation", vimg_error_message(err));
    } else {
        r = vimg_error_set(errp, r, "%s", vimg_error_message(err));
    }
    vimg_error_free(err);
    return r;
}

/* ---- amend ---------------------------------------------------------------------- */

struct amend_args {
    bool active;
    const char *new_id, *old_id;
    bool has_keyslot, has_iter_time, has_iter_count;
    int keyslot;                 /* qemu truncates the number to int */
    int64_t iter_time;
    uint64_t iter_count;
    const char *iter_count_key;
};

/* Take PREFIX+@name from @opts into a static-lifetime key buffer. */
static const char *
take(struct vimg_opts *opts, const char *prefix, const char *name, char *key,
     size_t keysz)
{
    snprintf(key, keysz, "%s%s", prefix, name);
    return vimg_opts_take(opts, key);
}

static int
parse_args(struct vimg_opts *opts, const char *prefix, struct amend_args *a,
           char keys[][48], struct vimg_error **errp)
{
    const char *state, *v;
    uint64_t n;
    int r;

    memset(a, 0, sizeof(*a));
    state = take(opts, prefix, "state", keys[0], 48);
    a->new_id = take(opts, prefix, "new-secret", keys[1], 48);
    a->old_id = take(opts, prefix, "old-secret", keys[2], 48);
    v = take(opts, prefix, "keyslot", keys[3], 48);
    if (v) {
        r = parse_number(v, &n);
        if (r < 0) {
            return number_error(keys[3], v, r, errp);
        }
        a->has_keyslot = true;
        a->keyslot = (int)(uint32_t)n;     /* qemu's int conversion */
    }
    v = take(opts, prefix, "iter-time", keys[4], 48);
    if (v) {
        r = parse_number(v, &n);
        if (r < 0) {
            return number_error(keys[4], v, r, errp);
        }
        a->has_iter_time = true;
        a->iter_time = (int64_t)n;
    }
    v = take(opts, prefix, "iter-count", keys[5], 48);
    a->iter_count_key = keys[5];
    if (v) {
        r = parse_number(v, &n);
        if (r < 0) {
            return number_error(keys[5], v, r, errp);
        }
        a->has_iter_count = true;
        a->iter_count = n;
    }
    /* The QAPI part: state is required and an enum; names unprefixed. */
    if (!state) {
        return vimg_error_set(errp, -EINVAL, "Parameter 'state' is missing");
    }
    if (strcmp(state, "active") == 0) {
        a->active = true;
    } else if (strcmp(state, "inactive") == 0) {
        a->active = false;
    } else {
        return vimg_error_set(errp, -EINVAL,
                              "Parameter 'state' does not accept value '%s'",
                              state);
    }
    return 0;
}

static int
get_pw(struct vimg_secrets *secrets, const char *id, char **pw, size_t *len,
       struct vimg_error **errp)
{
    if (!secrets) {
        return vimg_error_set(errp, -ENOENT, "No secret with id '%s'", id);
    }
    return secret_get_password(secrets, id, pw, len, errp);
}

static int
amend_add(struct luks1 *l, const struct amend_args *a,
          struct vimg_secrets *secrets, bool force,
          const struct luks1_sync *sync, struct vimg_error **errp)
{
    uint32_t iterations;
    char *pw = NULL;
    size_t pwlen = 0;
    int slot, r;

    if (!a->new_id) {
        return vimg_error_set(errp, -EINVAL,
                              "'new-secret' is required to activate a keyslot");
    }
    if (a->old_id) {
        return vimg_error_set(errp, -EINVAL,
                              "'old-secret' must not be given when activating "
                              "keyslots");
    }
    if (a->has_keyslot) {
        slot = a->keyslot;
        if (!slot_ok(slot)) {
            /* qemu prints this one unsigned. */
            return vimg_error_set(errp, -EINVAL,
                                  "Invalid keyslot %u specified, must be "
                                  "between 0 and %d", (unsigned)slot,
                                  LUKS1_NUM_SLOTS - 1);
        }
        if (luks1_keyslot_active(l, slot) && !force) {
            return vimg_error_set(errp, -EINVAL,
                                  "Refusing to overwrite active keyslot %d - "
                                  "please erase it first", slot);
        }
    } else {
        for (slot = 0; slot < LUKS1_NUM_SLOTS; slot++) {
            if (!luks1_keyslot_active(l, slot)) {
                break;
            }
        }
        if (slot == LUKS1_NUM_SLOTS) {
            return vimg_error_set(errp, -ENOSPC,
                                  "Can't add a keyslot - all keyslots are in "
                                  "use");
        }
    }
    r = get_pw(secrets, a->new_id, &pw, &pwlen, errp);
    if (r < 0) {
        return r;
    }
    if (a->has_iter_count) {
        if (a->iter_count == 0 || a->iter_count > UINT32_MAX) {
            r = vimg_error_set(errp, -EINVAL,
                               "Parameter '%s' expects a number between 1 "
                               "and 4294967295", a->iter_count_key);
            goto out;
        }
        iterations = (uint32_t)a->iter_count;
    } else {
        struct vimg_error *err = NULL;

        r = luks1_keyslot_iterations(l, a->has_iter_time ? a->iter_time : 2000,
                                     &iterations, &err);
        if (r < 0) {
            r = vimg_error_set(errp, r, "%s\nFailed to write to keyslot %d",
                               vimg_error_message(err), slot);
            vimg_error_free(err);
            goto out;
        }
    }
    r = luks1_keyslot_add(l, slot, pw, pwlen, iterations, sync, errp);
out:
    safe_free(pw);
    return r;
}

static int
amend_erase(struct luks1 *l, const struct amend_args *a,
            struct vimg_secrets *secrets, bool force,
            const struct luks1_sync *sync, struct vimg_error **errp)
{
    bool match[LUKS1_NUM_SLOTS] = { false };
    int n_active = 0, n_match = 0, slot, r;
    char *pw = NULL;
    size_t pwlen = 0;

    if (a->new_id) {
        return vimg_error_set(errp, -EINVAL,
                              "'new-secret' must not be given when erasing "
                              "keyslots");
    }
    if (a->has_iter_time) {
        return vimg_error_set(errp, -EINVAL,
                              "'iter-time' must not be given when erasing "
                              "keyslots");
    }
    if (a->has_iter_count) {
        return vimg_error_set(errp, -EINVAL,
                              "'iter-count' must not be given when erasing "
                              "keyslots");
    }
    if (!a->has_keyslot && !a->old_id) {
        return vimg_error_set(errp, -EINVAL,
                              "To erase keyslot(s), either explicit keyslot "
                              "index or the password currently contained in "
                              "them must be given");
    }
    if (a->old_id) {
        r = get_pw(secrets, a->old_id, &pw, &pwlen, errp);
        if (r < 0) {
            return r;
        }
    }
    for (slot = 0; slot < LUKS1_NUM_SLOTS; slot++) {
        n_active += luks1_keyslot_active(l, slot);
    }

    if (a->has_keyslot) {
        slot = a->keyslot;
        if (!slot_ok(slot)) {
            r = vimg_error_set(errp, -EINVAL,
                               "Invalid keyslot %d specified, must be between "
                               "0 and %d", slot, LUKS1_NUM_SLOTS - 1);
            goto out;
        }
        if (a->old_id) {
            r = luks1_keyslot_check(l, slot, pw, pwlen, errp);
            if (r < 0) {
                goto out;
            }
            if (r == 0) {
                r = vimg_error_set(errp, -EINVAL,
                                   "Given keyslot %d doesn't contain the given "
                                   "old password for erase operation", slot);
                goto out;
            }
        } else if (!luks1_keyslot_active(l, slot)) {
            r = vimg_error_set(errp, -EINVAL,
                               "Given keyslot %d is already erased (inactive) ",
                               slot);
            goto out;
        }
        if (n_active == 1 && !force) {
            r = vimg_error_set(errp, -EINVAL,
                               "Attempt to erase the only active keyslot %d "
                               "which will erase all the data in the image "
                               "irreversibly - refusing operation", slot);
            goto out;
        }
        r = luks1_keyslot_erase(l, slot, sync, errp);
        goto out;
    }

    for (slot = 0; slot < LUKS1_NUM_SLOTS; slot++) {
        r = luks1_keyslot_check(l, slot, pw, pwlen, errp);
        if (r < 0) {
            goto out;
        }
        match[slot] = r == 1;
        n_match += r == 1;
    }
    if (n_match == 0) {
        r = vimg_error_set(errp, -EINVAL,
                           "No keyslots match given (old) password for erase "
                           "operation");
        goto out;
    }
    if (n_match == n_active && !force) {
        r = vimg_error_set(errp, -EINVAL,
                           "All the active keyslots match the (old) password "
                           "that was given and erasing them will erase all "
                           "the data in the image irreversibly - refusing "
                           "operation");
        goto out;
    }
    r = 0;
    for (slot = 0; slot < LUKS1_NUM_SLOTS && r == 0; slot++) {
        if (match[slot]) {
            r = luks1_keyslot_erase(l, slot, sync, errp);
        }
    }
out:
    safe_free(pw);
    return r;
}

int
luks1_amend(struct luks1 *l, struct vimg_opts *opts, const char *prefix,
            struct vimg_secrets *secrets, bool force,
            const struct luks1_sync *sync, struct vimg_error **errp)
{
    struct amend_args a;
    char keys[6][48];
    int r;

    if (!l) {
        return vimg_error_set(errp, -EINVAL, "Invalid arguments");
    }
    prefix = prefix ? prefix : "";
    if (strlen(prefix) > 16) {
        return vimg_error_set(errp, -EINVAL, "Invalid option prefix");
    }
    r = parse_args(opts, prefix, &a, keys, errp);
    if (r < 0) {
        return r;
    }
    if (!l->io.write) {
        return vimg_error_set(errp, -EBADF, "The image is opened read-only");
    }
    if (a.active) {
        return amend_add(l, &a, secrets, force, sync, errp);
    }
    return amend_erase(l, &a, secrets, force, sync, errp);
}
