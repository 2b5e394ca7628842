/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LUKS1 key slot management (lib/blockcrypt/luks1-keyslot.c) over
 * in-memory I/O callbacks that log every write and flush:
 * - add a slot, check it, reload the header and unlock with the new and the
 *   old password; the write order is key material, flush, header, flush;
 * - erase: header first (slot inactive, iterations 0, salt zero), flush,
 *   then the key material is overwritten; the erased password no longer
 *   unlocks;
 * - a forced overwrite of an active slot deactivates it in the header
 *   before reusing its area;
 * - a failing header write leaves the in-memory slot unchanged;
 * - luks1_amend's refusals and messages (qemu-facts.md 5.8) and the option
 *   checks with their creation hint.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "internal.h"
#include "crypto/crypto.h"
#include "blockcrypt/luks1.h"
#include "blockcrypt/luks1-disk.h"

#define MEM_SIZE (4u << 20)

struct mem {
    uint8_t *buf;
    char log[256];          /* 'H' header write, 'M' other write, 'F' flush */
    size_t nlog;
    bool fail_header;
};

static void
log_op(struct mem *m, char c)
{
    if (m->nlog + 1 < sizeof(m->log)) {
        m->log[m->nlog++] = c;
        m->log[m->nlog] = '\0';
    }
}

static int
mem_read(void *opaque, uint64_t off, void *buf, size_t len,
         struct vimg_error **errp)
{
    struct mem *m = opaque;

    if (off > MEM_SIZE || len > MEM_SIZE - off) {
        return vimg_error_set(errp, -EIO, "read out of range");
    }
    memcpy(buf, m->buf + off, len);
    return 0;
}

static int
mem_write(void *opaque, uint64_t off, const void *buf, size_t len,
          struct vimg_error **errp)
{
    struct mem *m = opaque;

    if (off > MEM_SIZE || len > MEM_SIZE - off) {
        return vimg_error_set(errp, -EIO, "write out of range");
    }
    if (off == 0 && m->fail_header) {
        return vimg_error_set(errp, -EIO, "injected");
    }
    log_op(m, off == 0 ? 'H' : 'M');
    memcpy(m->buf + off, buf, len);
    return 0;
}

static int
mem_flush(void *opaque, struct vimg_error **errp)
{
    (void)errp;
    log_op(opaque, 'F');
    return 0;
}

static void
reset_log(struct mem *m)
{
    m->nlog = 0;
    m->log[0] = '\0';
}

/* Unlock a fresh load of @m with @pw: slot number or -errno. */
static int
reload_unlock(struct mem *m, const char *pw)
{
    struct luks1_io io = { .opaque = m, .read = mem_read, .write = NULL };
    struct luks1 *l = NULL;
    int r;

    r = luks1_load(&io, &l, NULL);
    if (r == 0) {
        r = luks1_unlock(l, pw, strlen(pw), NULL);
    }
    luks1_free(l);
    return r;
}

static struct luks1_disk_header
disk_header(const struct mem *m)
{
    struct luks1_disk_header h;

    luks1_header_from_disk((const struct luks1_disk_header *)m->buf, &h);
    return h;
}

static int
amend(struct luks1 *l, struct vimg_secrets *sec, const char *optstr,
      bool force, const struct luks1_sync *sync, char **msg)
{
    struct vimg_opts *o = vimg_opts_new();
    struct vimg_error *err = NULL;
    int r;

    r = vimg_opts_parse(o, optstr, NULL, NULL);
    if (r == 0) {
        r = luks1_amend_check_opts(o, "", NULL, NULL, &err);
    }
    if (r == 0) {
        r = luks1_amend(l, o, "", sec, force, sync, &err);
    }
    *msg = strdup(err ? vimg_error_message(err) : "");
    vimg_error_free(err);
    vimg_opts_free(o);
    return r;
}

static void
expect_refusal(struct luks1 *l, struct vimg_secrets *sec, const char *opts,
               bool force, const struct luks1_sync *sync, const char *want)
{
    char *msg = NULL;
    int r = amend(l, sec, opts, force, sync, &msg);

    ok(r < 0, "amend %s refused (%d)", opts, r);
    ok_str(msg, want, opts);
    free(msg);
}

int
main(void)
{
    struct mem m = { 0 };
    struct luks1_io io = { .opaque = &m, .read = mem_read, .write = mem_write };
    struct luks1_sync sync = { .opaque = &m, .flush = mem_flush };
    struct luks1_create_params p;
    struct luks1_disk_header h, before;
    struct vimg_secrets *sec;
    struct luks1 *l = NULL;
    uint8_t zero_salt[LUKS1_SALT_LEN] = { 0 };
    uint8_t *material_before;
    uint64_t moff;
    uint32_t iters = 0;
    char *msg = NULL;
    int r;

    m.buf = calloc(1, MEM_SIZE);
    material_before = malloc(128000);
    sec = vimg_secrets_new();
    if (!m.buf || !material_before || !sec) {
        return 1;
    }
    vimg_secrets_add(sec, "a", "alpha", 5, NULL);
    vimg_secrets_add(sec, "b", "bravo", 5, NULL);
    vimg_secrets_add(sec, "c", "charlie", 7, NULL);

    luks1_create_params_default(&p);
    p.iterations = 1000;
    r = luks1_create(&io, &p, "alpha", 5, &l, NULL);
    ok(r == 0, "create (slot 0 = alpha)");
    if (r < 0) {
        return tap_done();
    }

    /* ---- add ---- */
    reset_log(&m);
    r = luks1_keyslot_add(l, 3, "bravo", 5, 1234, &sync, NULL);
    ok(r == 0, "add slot 3");
    ok_str(m.log, "MFHF", "add: material, flush, header, flush");
    h = disk_header(&m);
    ok(h.slots[3].active == LUKS1_SLOT_ACTIVE && h.slots[3].iterations == 1234,
       "slot 3 active with 1234 iterations on disk");
    ok(luks1_keyslot_active(l, 3), "slot 3 active in memory");
    ok(luks1_keyslot_check(l, 3, "bravo", 5, NULL) == 1, "check slot 3 bravo");
    ok(luks1_keyslot_check(l, 3, "alpha", 5, NULL) == 0, "check slot 3 alpha");
    ok(luks1_keyslot_check(l, 0, "alpha", 5, NULL) == 1, "check slot 0 alpha");
    ok(luks1_keyslot_check(l, 5, "alpha", 5, NULL) == 0, "inactive slot 5");
    ok(reload_unlock(&m, "bravo") == 3, "reloaded: bravo opens slot 3");
    ok(reload_unlock(&m, "alpha") == 0, "reloaded: alpha opens slot 0");

    /* ---- erase ---- */
    moff = (uint64_t)h.slots[3].key_offset * 512;
    memcpy(material_before, m.buf + moff, 128000);
    reset_log(&m);
    r = luks1_keyslot_erase(l, 3, &sync, NULL);
    ok(r == 0, "erase slot 3");
    ok_str(m.log, "HFMF", "erase: header, flush, material, flush");
    h = disk_header(&m);
    ok(h.slots[3].active == LUKS1_SLOT_INACTIVE && h.slots[3].iterations == 0,
       "slot 3 inactive, iterations 0");
    ok_mem(h.slots[3].salt, zero_salt, LUKS1_SALT_LEN, "slot 3 salt zeroed");
    ok(memcmp(material_before, m.buf + moff, 128000) != 0,
       "slot 3 key material overwritten");
    ok(reload_unlock(&m, "bravo") == -EPERM, "bravo no longer unlocks");
    ok(reload_unlock(&m, "alpha") == 0, "alpha still unlocks");

    /* ---- forced overwrite of an active slot ---- */
    r = luks1_keyslot_add(l, 1, "bravo", 5, 1000, &sync, NULL);
    ok(r == 0, "add slot 1 = bravo");
    reset_log(&m);
    r = luks1_keyslot_add(l, 1, "charlie", 7, 1000, &sync, NULL);
    ok(r == 0, "overwrite slot 1 = charlie");
    ok_str(m.log, "HFMFHF", "overwrite: deactivate first, then add");
    ok(reload_unlock(&m, "charlie") == 1, "charlie opens slot 1");
    ok(reload_unlock(&m, "bravo") == -EPERM, "bravo gone");

    /* ---- a failing header write leaves memory as on disk ---- */
    before = disk_header(&m);
    m.fail_header = true;
    r = luks1_keyslot_add(l, 6, "bravo", 5, 1000, &sync, NULL);
    m.fail_header = false;
    ok(r == -EIO, "add with failing header write: %d", r);
    ok(!luks1_keyslot_active(l, 6), "slot 6 still inactive in memory");
    h = disk_header(&m);
    ok_mem(&h, &before, sizeof(h), "header on disk unchanged");

    /* ---- calibration ---- */
    ok(luks1_keyslot_iterations(l, 0, &iters, NULL) == 0 && iters == 1000,
       "iter-time 0 -> 1000 iterations");
    ok(luks1_keyslot_iterations(l, -5, &iters, NULL) == -ERANGE,
       "negative iter-time -> ERANGE");
    ok(luks1_keyslot_iterations(l, 10, &iters, NULL) == 0 && iters >= 1000,
       "iter-time 10 -> %u iterations", iters);

    /* ---- amend: the qemu checks ---- */
    /* slots now: 0 alpha, 1 charlie */
    expect_refusal(l, sec, "state=active", false, &sync,
                   "'new-secret' is required to activate a keyslot");
    expect_refusal(l, sec, "state=active,new-secret=b,old-secret=a", false,
                   &sync,
                   "'old-secret' must not be given when activating keyslots");
    expect_refusal(l, sec, "state=active,new-secret=b,keyslot=8", false, &sync,
                   "Invalid keyslot 8 specified, must be between 0 and 7");
    expect_refusal(l, sec, "state=active,new-secret=b,keyslot=-1", false,
                   &sync,
                   "Invalid keyslot 4294967295 specified, must be between 0 "
                   "and 7");
    expect_refusal(l, sec, "state=active,new-secret=zz,keyslot=1", false,
                   &sync,
                   "Refusing to overwrite active keyslot 1 - please erase it "
                   "first");
    expect_refusal(l, sec, "state=active,new-secret=zz", false, &sync,
                   "No secret with id 'zz'");
    expect_refusal(l, sec, "keyslot=1", false, &sync,
                   "Parameter 'state' is missing");
    expect_refusal(l, sec, "state=on", false, &sync,
                   "Parameter 'state' does not accept value 'on'");
    expect_refusal(l, sec, "state=inactive", false, &sync,
                   "To erase keyslot(s), either explicit keyslot index or the "
                   "password currently contained in them must be given");
    expect_refusal(l, sec, "state=inactive,iter-time=5", false, &sync,
                   "'iter-time' must not be given when erasing keyslots");
    expect_refusal(l, sec, "state=inactive,keyslot=-1", false, &sync,
                   "Invalid keyslot -1 specified, must be between 0 and 7");
    expect_refusal(l, sec, "state=inactive,keyslot=5", false, &sync,
                   "Given keyslot 5 is already erased (inactive) ");
    expect_refusal(l, sec, "state=inactive,keyslot=1,old-secret=a", false,
                   &sync,
                   "Given keyslot 1 doesn't contain the given old password "
                   "for erase operation");
    expect_refusal(l, sec, "state=inactive,old-secret=b", false, &sync,
                   "No keyslots match given (old) password for erase "
                   "operation");
    expect_refusal(l, sec, "keyslot=abc", false, &sync,
                   "Parameter 'keyslot' expects a number");
    expect_refusal(l, sec, "keyslot=99999999999999999999", false, &sync,
                   "Value '99999999999999999999' is too large for parameter "
                   "'keyslot'");
    expect_refusal(l, sec, "foo=1", false, &sync, "Invalid parameter 'foo'");

    /* the hint, when everything parses as creation options */
    {
        static const struct vimg_opt_desc create[] = {
            { "key-secret", VIMG_OPT_STRING, "", NULL },
            { NULL, 0, NULL, NULL },
        };
        struct vimg_opts *o = vimg_opts_new();
        struct vimg_error *err = NULL;

        vimg_opts_parse(o, "key-secret=a", NULL, NULL);
        r = luks1_amend_check_opts(o, "", create, NULL, &err);
        ok(r == -EINVAL, "key-secret refused");
        ok_str(err ? vimg_error_message(err) : "",
               "Invalid parameter 'key-secret'\nThis option is only "
               "supported for image creation", "creation hint");
        vimg_error_free(err);
        err = NULL;
        vimg_opts_parse(o, "foo=1", NULL, NULL);
        r = luks1_amend_check_opts(o, "", create, NULL, &err);
        ok_str(err ? vimg_error_message(err) : "",
               "Invalid parameter 'key-secret'", "no hint with unknown keys");
        vimg_error_free(err);
        vimg_opts_free(o);
    }

    /* erase the only matching slots: slot 1 by keyslot, then the last */
    r = amend(l, sec, "state=inactive,old-secret=c", false, &sync, &msg);
    ok(r == 0, "erase by old-secret: %s", msg);
    free(msg);
    expect_refusal(l, sec, "state=inactive,keyslot=0", false, &sync,
                   "Attempt to erase the only active keyslot 0 which will "
                   "erase all the data in the image irreversibly - refusing "
                   "operation");
    expect_refusal(l, sec, "state=inactive,old-secret=a", false, &sync,
                   "All the active keyslots match the (old) password that was "
                   "given and erasing them will erase all the data in the "
                   "image irreversibly - refusing operation");
    r = amend(l, sec, "state=active,new-secret=b,iter-count=1000", false,
              &sync, &msg);
    ok(r == 0, "amend add (first free slot): %s", msg);
    free(msg);
    ok(reload_unlock(&m, "bravo") == 1, "bravo in the first free slot (1)");
    r = amend(l, sec, "state=inactive,keyslot=0", true, &sync, &msg);
    ok(r == 0, "forced erase of slot 0: %s", msg);
    free(msg);
    ok(reload_unlock(&m, "alpha") == -EPERM, "alpha gone after erase");

    luks1_free(l);
    vimg_secrets_free(sec);
    free(material_before);
    free(m.buf);
    return tap_done();
}
