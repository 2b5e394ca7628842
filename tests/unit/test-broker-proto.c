// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Unit tests of the vimgd protocol (broker/protocol.c): every request type
 * round-trips; each malformed header or payload class is refused with the
 * documented error; and 200000 deterministic pseudo-random frames
 * (mutations of valid requests and pure noise) never crash the parser and
 * never yield a request that does not re-encode to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "protocol.h"
#include "tap.h"

static uint64_t rng = 0x1234567887654321ull;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static size_t
frame(uint8_t *buf, unsigned op, const void *payload, size_t len)
{
    return (size_t)vb_encode(buf, op, 0, 0, payload, len);
}

static int
parse(const uint8_t *buf, size_t n, struct vb_request *r)
{
    static struct vb_msg m;
    const char *why;
    int rc = vb_decode(buf, n, &m);

    return rc < 0 ? rc : vb_parse_request(&m, r, &why);
}

static void
put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* the tests run on little-endian hosts only */
}

int
main(void)
{
    static uint8_t buf[VB_MAX_MSG + 64], out[VB_MAX_MSG];
    static struct vb_request r, back;
    uint8_t p[VB_MAX_MSG];
    size_t n;
    int i, rc, accepted = 0, mismatches = 0;

    /* round trips */
    for (unsigned op = VB_OP_HELLO; op <= VB_OP_MAX_; op++) {
        memset(&r, 0, sizeof(r));
        r.op = op;
        snprintf(r.name, sizeof(r.name), op == VB_OP_PLUGIN ? "sample.whoami" : "dir/a.img");
        r.flags = op == VB_OP_OPEN ? VB_OPEN_RW : 0;
        r.bytes = 0x123456789ull;
        r.policy = 1;
        r.priority = 7;
        r.ntids = 3;
        r.tids[0] = 10, r.tids[1] = 11, r.tids[2] = 12;
        r.arg_len = op == VB_OP_PLUGIN ? 5 : 0;
        memcpy(r.arg, "hello", 5);
        rc = vb_encode_request(buf, &r);
        ok(rc > 0 && parse(buf, (size_t)rc, &back) == 0 && back.op == op,
           "%s request round-trips", vb_op_name(op));
    }
    ok(back.arg_len == 5 && memcmp(back.arg, "hello", 5) == 0, "plugin argument kept");

    /* header errors */
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    buf[0] ^= 1;
    ok(parse(buf, n, &r) == -EBADMSG, "bad magic refused");
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    buf[4] = 2;
    ok(parse(buf, n, &r) == -EPROTO, "version 2 refused with EPROTO");
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    buf[10] = 1;
    ok(parse(buf, n, &r) == -EBADMSG, "reserved field set refused");
    n = frame(buf, 0, NULL, 0);
    ok(parse(buf, n, &r) == -EOPNOTSUPP, "op 0 refused");
    n = frame(buf, 99, NULL, 0);
    ok(parse(buf, n, &r) == -EOPNOTSUPP, "op 99 refused");
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    ok(parse(buf, n - 1, &r) == -EBADMSG, "short header refused");
    n = frame(buf, VB_OP_MEMLOCK, "12345678", 8);
    put32(buf + 12, 9);
    ok(parse(buf, n, &r) == -EBADMSG, "payload length larger than datagram refused");
    ok(parse(buf, VB_MAX_MSG + 1, &r) == -EBADMSG, "datagram over VB_MAX_MSG refused");
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    buf[8] = 1; /* VB_FLAG_FD in a request */
    ok(parse(buf, n, &r) == -EBADMSG, "FD flag in a request refused");
    n = frame(buf, VB_OP_HELLO, NULL, 0);
    buf[16] = 1;
    ok(parse(buf, n, &r) == -EBADMSG, "status in a request refused");

    /* payload errors */
    n = frame(buf, VB_OP_HELLO, "x", 1);
    ok(parse(buf, n, &r) == -EBADMSG, "HELLO with payload refused");
    memset(p, 0, 4);
    n = frame(buf, VB_OP_OPEN, p, 4);
    ok(parse(buf, n, &r) == -EBADMSG, "empty name refused");
    memcpy(p + 4, "a\0b", 3);
    n = frame(buf, VB_OP_OPEN, p, 7);
    ok(parse(buf, n, &r) == -EBADMSG, "NUL inside a name refused");
    put32(p, 2);
    memcpy(p + 4, "ab", 2);
    n = frame(buf, VB_OP_OPEN, p, 6);
    ok(parse(buf, n, &r) == -EBADMSG, "unknown open flag refused");
    memset(p, 'a', sizeof(p));
    put32(p, 0);
    n = frame(buf, VB_OP_OPEN, p, 4 + VB_MAX_NAME + 1);
    ok(parse(buf, n, &r) == -EBADMSG, "name over VB_MAX_NAME refused");
    n = frame(buf, VB_OP_OPEN, p, 4 + VB_MAX_NAME);
    ok(parse(buf, n, &r) == 0 && strlen(r.name) == VB_MAX_NAME, "name of VB_MAX_NAME accepted");
    n = frame(buf, VB_OP_MEMLOCK, p, 7);
    ok(parse(buf, n, &r) == -EBADMSG, "7-byte MEMLOCK refused");
    put32(p, 1), put32(p + 4, 1), put32(p + 8, 0);
    n = frame(buf, VB_OP_SCHED, p, 12);
    ok(parse(buf, n, &r) == -EBADMSG, "SCHED with 0 threads refused");
    put32(p + 8, VB_MAX_TIDS + 1);
    for (i = 0; i < VB_MAX_TIDS + 1; i++) {
        put32(p + 12 + 4 * i, 5);
    }
    n = frame(buf, VB_OP_SCHED, p, 12 + 4 * (VB_MAX_TIDS + 1));
    ok(parse(buf, n, &r) == -EBADMSG, "SCHED with 65 threads refused");
    put32(p + 8, 2);
    n = frame(buf, VB_OP_SCHED, p, 12 + 4 * 3);
    ok(parse(buf, n, &r) == -EBADMSG, "SCHED count not matching the length refused");
    put32(p + 16, 0);
    n = frame(buf, VB_OP_SCHED, p, 12 + 4 * 2);
    ok(parse(buf, n, &r) == -EBADMSG, "thread id 0 refused");
    put32(p + 16, 0xffffffffu);
    n = frame(buf, VB_OP_SCHED, p, 12 + 4 * 2);
    ok(parse(buf, n, &r) == -EBADMSG, "negative thread id refused");
    p[0] = 0xff, p[1] = 0x00;
    n = frame(buf, VB_OP_PLUGIN, p, 10);
    ok(parse(buf, n, &r) == -EBADMSG, "plugin name length beyond the payload refused");
    p[0] = 1, p[1] = 0, p[2] = 'x';
    n = frame(buf, VB_OP_PLUGIN, p, 3 + VB_MAX_ARG + 1);
    ok(parse(buf, n, &r) == -EBADMSG, "plugin argument over VB_MAX_ARG refused");

    /* deterministic random frames */
    for (i = 0; i < 200000; i++) {
        int k;

        memset(&r, 0, sizeof(r));
        r.op = 1 + rnd() % VB_OP_MAX_;
        snprintf(r.name, sizeof(r.name), "n%u.x", rnd() % 1000);
        r.ntids = 1 + rnd() % 4;
        r.tids[0] = r.tids[1] = r.tids[2] = r.tids[3] = 1;
        r.arg_len = rnd() % 8;
        rc = vb_encode_request(buf, &r);
        n = rc > 0 ? (size_t)rc : 0;
        switch (rnd() % 4) {
        case 0:
            for (k = 0; k < 3; k++) {
                buf[rnd() % (n ? n : 1)] = (uint8_t)rnd();
            }
            break;
        case 1:
            n = rnd() % (n + 16);
            break;
        case 2:
            n = rnd() % 64;
            for (k = 0; k < (int)n; k++) {
                buf[k] = (uint8_t)rnd();
            }
            if (n >= 4) {
                put32(buf, VB_MAGIC);
            }
            break;
        default:
            break;
        }
        if (parse(buf, n, &back) == 0) {
            accepted++;
            rc = vb_encode_request(out, &back);
            if (rc != (int)n || memcmp(out, buf, n) != 0) {
                mismatches++;
            }
        }
    }
    ok(accepted > 1000, "random frames: %d of 200000 parsed as valid requests", accepted);
    ok(mismatches == 0, "every accepted random frame re-encodes identically (%d mismatches)",
       mismatches);
    return tap_done();
}
