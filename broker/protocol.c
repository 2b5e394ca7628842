// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vimgd wire protocol v1: header checks, request parsing and encoding, and
 * the send/receive helpers with SCM_RIGHTS handling.  Everything a peer
 * sends is untrusted: every length is checked against the datagram size
 * before it is used.  See protocol.h for the format.
 */
#include "protocol.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const op_names[] = {
    [VB_OP_HELLO] = "hello", [VB_OP_OPEN] = "open",     [VB_OP_NBD] = "nbd",
    [VB_OP_MEMLOCK] = "memlock", [VB_OP_SCHED] = "sched", [VB_OP_CGROUP] = "cgroup",
    [VB_OP_PLUGIN] = "plugin",
};

const char *
vb_op_name(unsigned op)
{
    if (op == 0 || op > VB_OP_MAX_) {
        return "?";
    }
    return op_names[op];
}

unsigned
vb_op_from_name(const char *name)
{
    unsigned i;

    for (i = 1; i <= VB_OP_MAX_; i++) {
        if (strcmp(op_names[i], name) == 0) {
            return i;
        }
    }
    return 0;
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

int
vb_decode(const uint8_t *buf, size_t n, struct vb_msg *m)
{
    if (n < VB_HDR_LEN || n > VB_MAX_MSG || get32(buf) != VB_MAGIC) {
        return -EBADMSG;
    }
    m->version = get16(buf + 4);
    m->op = get16(buf + 6);
    m->flags = get16(buf + 8);
    m->len = get32(buf + 12);
    m->status = (int32_t)get32(buf + 16);
    if (get16(buf + 10) != 0 || (m->flags & ~VB_FLAG_FD) != 0 || m->len != n - VB_HDR_LEN) {
        return -EBADMSG;
    }
    if (m->version != VB_VERSION) {
        return -EPROTO;
    }
    if (m->op == 0 || m->op > VB_OP_MAX_) {
        return -EOPNOTSUPP;
    }
    memcpy(m->payload, buf + VB_HDR_LEN, m->len);
    return 0;
}

/* A name: 1..VB_MAX_NAME bytes without NUL, copied NUL-terminated. */
static int
take_name(const uint8_t *p, size_t len, char *out, const char **why)
{
    if (len == 0 || len > VB_MAX_NAME) {
        *why = "name length out of range";
        return -EBADMSG;
    }
    if (memchr(p, 0, len)) {
        *why = "NUL byte in name";
        return -EBADMSG;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

int
vb_parse_request(const struct vb_msg *m, struct vb_request *r, const char **why)
{
    const uint8_t *p = m->payload;
    size_t len = m->len;
    uint32_t i;

    memset(r, 0, sizeof(*r));
    r->op = m->op;
    *why = "payload length";
    if (m->flags != 0 || m->status != 0) {
        *why = "flags or status set in a request";
        return -EBADMSG;
    }
    switch (m->op) {
    case VB_OP_HELLO:
        return len == 0 ? 0 : -EBADMSG;
    case VB_OP_OPEN:
    case VB_OP_NBD:
        if (len < 4) {
            return -EBADMSG;
        }
        r->flags = get32(p);
        if (r->flags & ~(uint32_t)VB_OPEN_RW) {
            *why = "unknown open flags";
            return -EBADMSG;
        }
        return take_name(p + 4, len - 4, r->name, why);
    case VB_OP_MEMLOCK:
        if (len != 8) {
            return -EBADMSG;
        }
        r->bytes = get64(p);
        return 0;
    case VB_OP_SCHED:
        if (len < 12) {
            return -EBADMSG;
        }
        r->policy = get32(p);
        r->priority = get32(p + 4);
        r->ntids = get32(p + 8);
        if (r->ntids == 0 || r->ntids > VB_MAX_TIDS || len != 12 + 4 * (size_t)r->ntids) {
            *why = "thread count";
            return -EBADMSG;
        }
        for (i = 0; i < r->ntids; i++) {
            r->tids[i] = (int32_t)get32(p + 12 + 4 * i);
            if (r->tids[i] <= 0) {
                *why = "thread id";
                return -EBADMSG;
            }
        }
        return 0;
    case VB_OP_CGROUP:
        return take_name(p, len, r->name, why);
    case VB_OP_PLUGIN: {
        size_t nl;

        if (len < 2) {
            return -EBADMSG;
        }
        nl = get16(p);
        if (nl > len - 2 || len - 2 - nl > VB_MAX_ARG) {
            return -EBADMSG;
        }
        if (take_name(p + 2, nl, r->name, why) < 0) {
            return -EBADMSG;
        }
        r->arg_len = len - 2 - nl;
        memcpy(r->arg, p + 2 + nl, r->arg_len);
        return 0;
    }
    default:
        *why = "unknown op";
        return -EBADMSG;
    }
}

int
vb_encode(uint8_t *buf, unsigned op, unsigned flags, int32_t status, const void *payload,
          size_t len)
{
    if (len > VB_MAX_MSG - VB_HDR_LEN) {
        return -EMSGSIZE;
    }
    put32(buf, VB_MAGIC);
    put16(buf + 4, VB_VERSION);
    put16(buf + 6, (uint16_t)op);
    put16(buf + 8, (uint16_t)flags);
    put16(buf + 10, 0);
    put32(buf + 12, (uint32_t)len);
    put32(buf + 16, (uint32_t)status);
    if (len) {
        memmove(buf + VB_HDR_LEN, payload, len);
    }
    return (int)(VB_HDR_LEN + len);
}

int
vb_encode_request(uint8_t *buf, const struct vb_request *r)
{
    uint8_t p[VB_MAX_MSG];
    size_t len = 0, nl = strnlen(r->name, VB_MAX_NAME + 1);
    uint32_t i;

    switch (r->op) {
    case VB_OP_HELLO:
        break;
    case VB_OP_OPEN:
    case VB_OP_NBD:
        if (nl == 0 || nl > VB_MAX_NAME) {
            return -ENAMETOOLONG;
        }
        put32(p, r->flags);
        memcpy(p + 4, r->name, nl);
        len = 4 + nl;
        break;
    case VB_OP_MEMLOCK:
        put64(p, r->bytes);
        len = 8;
        break;
    case VB_OP_SCHED:
        if (r->ntids == 0 || r->ntids > VB_MAX_TIDS) {
            return -EINVAL;
        }
        put32(p, r->policy);
        put32(p + 4, r->priority);
        put32(p + 8, r->ntids);
        for (i = 0; i < r->ntids; i++) {
            put32(p + 12 + 4 * i, (uint32_t)r->tids[i]);
        }
        len = 12 + 4 * (size_t)r->ntids;
        break;
    case VB_OP_CGROUP:
        if (nl == 0 || nl > VB_MAX_NAME) {
            return -ENAMETOOLONG;
        }
        memcpy(p, r->name, nl);
        len = nl;
        break;
    case VB_OP_PLUGIN:
        if (nl == 0 || nl > VB_MAX_NAME || r->arg_len > VB_MAX_ARG) {
            return -EINVAL;
        }
        put16(p, (uint16_t)nl);
        memcpy(p + 2, r->name, nl);
        memcpy(p + 2 + nl, r->arg, r->arg_len);
        len = 2 + nl + r->arg_len;
        break;
    default:
        return -EINVAL;
    }
    return vb_encode(buf, r->op, 0, 0, p, len);
}

int
vb_send(int sock, const uint8_t *buf, size_t len, int fd)
{
    struct iovec iov = {(void *)buf, len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } c;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (fd >= 0) {
        struct cmsghdr *cm;

        memset(&c, 0, sizeof(c));
        mh.msg_control = c.buf;
        mh.msg_controllen = sizeof(c.buf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    return (size_t)n == len ? 0 : -EIO;
}

ssize_t
vb_recv(int sock, uint8_t *buf, int max_fds, int *fd)
{
    struct iovec iov = {buf, VB_MAX_MSG};
    union {
        /* room for more FDs than allowed, so that extra ones arrive and are
         * closed here instead of being silently dropped by the kernel */
        char buf[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(64)];
        struct cmsghdr align;
    } c;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                        .msg_controllen = sizeof(c.buf)};
    struct cmsghdr *cm;
    int nfds = 0, bad = 0;
    ssize_t n;

    *fd = -1;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t k, cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (k = 0; k < cnt; k++) {
                int f;

                memcpy(&f, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                if (nfds < max_fds && *fd < 0) {
                    *fd = f;
                } else {
                    close(f);
                    bad = 1;
                }
                nfds++;
            }
        } else {
            bad = 1;
        }
    }
    if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        return -EBADMSG;
    }
    if (n == 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return n;
}
