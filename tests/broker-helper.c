// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Test client for tests/test-broker*.sh, run as an unprivileged user.
 *
 *   broker-helper fuzz SOCK SEED N NAME
 *       N malformed or random frames, each on a fresh connection after a
 *       valid HELLO.  The expected outcome is predicted with the protocol's
 *       own parser: a frame that is not a valid request (or carries FDs,
 *       or is truncated) must make vimgd close that connection; a valid
 *       one must get a well-formed reply.  After every frame a second,
 *       long-lived connection must still open NAME through the broker.
 *   broker-helper handoff SOCK FIFO sched|cgroup
 *       Connect and handshake, fork; the parent prints its pid and exits.
 *       The child waits for a line ARG on FIFO (the test meanwhile makes
 *       another process take the parent's pid), then sends the request on
 *       the inherited connection: sched fifo 1 on thread ARG (the reused
 *       pid) or cgroup ARG.  Prints "result RC REASON"; exit 0 iff the
 *       broker refused with ESRCH.
 *   broker-helper sched SOCK TID
 *       Ask for SCHED_FIFO 1 on thread TID; prints "result RC REASON",
 *       exit 0 iff granted.
 *   broker-helper openloop SOCK NAME N SECRET
 *       N opens of NAME on one connection (a symlink is being swapped in
 *       and out by the test); fails if any opened file contains SECRET.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "vimgd-client.h"

static uint64_t rng;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static int
raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 10};
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(2);
    }
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return s;
}

static int
send_raw(int s, const uint8_t *buf, size_t len, int nfds)
{
    struct iovec iov = {(void *)buf, len};
    union {
        char b[CMSG_SPACE(sizeof(int) * 2)];
        struct cmsghdr align;
    } c;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    int fds[2];

    if (nfds) {
        struct cmsghdr *cm;
        fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        memset(&c, 0, sizeof(c));
        mh.msg_control = c.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0) {
        return -errno;
    }
    if (nfds) {
        close(fds[0]);
        close(fds[1]);
    }
    return 0;
}

/* A valid request of a random op. */
static size_t
valid_request(uint8_t *buf)
{
    struct vb_request r;
    int n;

    memset(&r, 0, sizeof(r));
    r.op = 2 + rnd() % (VB_OP_MAX_ - 1);
    switch (r.op) {
    case VB_OP_OPEN:
    case VB_OP_NBD:
    case VB_OP_CGROUP:
        snprintf(r.name, sizeof(r.name), "fuzz-%u", rnd() % 100);
        break;
    case VB_OP_MEMLOCK:
        r.bytes = rnd();
        break;
    case VB_OP_SCHED:
        r.policy = rnd() % 7;
        r.priority = rnd() % 100;
        r.ntids = 1 + rnd() % 3;
        r.tids[0] = r.tids[1] = r.tids[2] = 1 + (int32_t)(rnd() % 30000);
        break;
    default:
        snprintf(r.name, sizeof(r.name), "sample.whoami");
        r.arg_len = rnd() % 16;
        break;
    }
    n = vb_encode_request(buf, &r);
    return n < 0 ? 0 : (size_t)n;
}

static int
check_other(struct vimgd_client *c, const char *name, int i)
{
    char b[16];
    int fd, rc = vimgd_client_open(c, name, 0, &fd);

    if (rc < 0) {
        fprintf(stderr, "frame %d: second client failed: %s (%s)\n", i, strerror(-rc),
                vimgd_client_reason(c));
        return -1;
    }
    if (read(fd, b, sizeof(b)) <= 0) {
        fprintf(stderr, "frame %d: second client read nothing\n", i);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int
fuzz(const char *sock, uint64_t seed, int n, const char *name)
{
    static uint8_t buf[VB_MAX_MSG + 1024];
    struct vimgd_client *other;
    int i, closed = 0, replied = 0, rc;

    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    rc = vimgd_client_connect(sock, &other);
    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", strerror(-rc));
        return 2;
    }
    for (i = 0; i < n; i++) {
        uint8_t hello[VB_HDR_LEN], rep[VB_MAX_MSG];
        struct vb_request req = {.op = VB_OP_HELLO};
        struct vb_msg m;
        struct vb_request parsed;
        const char *why;
        size_t len;
        int s = raw_connect(sock), kind = (int)(rnd() % 8), nfds = 0, fd;
        bool valid;
        ssize_t got;

        vb_encode_request(hello, &req);
        if (send_raw(s, hello, VB_HDR_LEN, 0) < 0 || vb_recv(s, rep, 0, &fd) <= 0) {
            fprintf(stderr, "frame %d: handshake failed\n", i);
            return 1;
        }
        len = valid_request(buf);
        switch (kind) {
        case 0: /* flip a few bytes */
        case 1: {
            int k, flips = 1 + (int)(rnd() % 4);
            for (k = 0; k < flips; k++) {
                buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
            }
            break;
        }
        case 2: /* truncate or extend */
            len = rnd() % (len + 8);
            break;
        case 3: /* random garbage of random length */
            len = rnd() % 200;
            for (size_t k = 0; k < len; k++) {
                buf[k] = (uint8_t)rnd();
            }
            break;
        case 4: /* a valid request with one or two FDs attached */
            nfds = 1 + (int)(rnd() % 2);
            break;
        case 5: /* longer than any message may be: truncated at the server */
            memset(buf + len, 'A', sizeof(buf) - len);
            len = VB_MAX_MSG + 1 + rnd() % 1000;
            break;
        case 6: /* a second HELLO */
            memcpy(buf, hello, VB_HDR_LEN);
            len = VB_HDR_LEN;
            break;
        default: /* unchanged: must be answered */
            break;
        }
        valid = len > 0 && len <= VB_MAX_MSG && nfds == 0 && vb_decode(buf, len, &m) == 0 &&
                vb_parse_request(&m, &parsed, &why) == 0 && m.op != VB_OP_HELLO;
        if (send_raw(s, buf, len, nfds) < 0) {
            /* EMSGSIZE etc.: nothing reached the server; not a test of it */
            close(s);
            continue;
        }
        if (len == 0) {
            /* an empty datagram reads as end of stream on SEQPACKET */
            valid = false;
        }
        got = vb_recv(s, rep, 1, &fd);
        if (fd >= 0) {
            close(fd);
        }
        if (valid) {
            if (got <= 0 || vb_decode(rep, (size_t)got, &m) < 0 || m.op != parsed.op) {
                fprintf(stderr, "frame %d (kind %d): valid request not answered (%zd)\n", i,
                        kind, got);
                return 1;
            }
            replied++;
        } else {
            if (got == -EAGAIN) {
                fprintf(stderr, "frame %d (kind %d): connection left open after a violation\n",
                        i, kind);
                return 1;
            }
            if (got > 0) {
                fprintf(stderr, "frame %d (kind %d, len %zu): invalid frame got a reply\n", i,
                        kind, len);
                return 1;
            }
            closed++;
        }
        close(s);
        if (check_other(other, name, i) < 0) {
            return 1;
        }
    }
    vimgd_client_close(other);
    printf("fuzz: %d frames, %d invalid closed the connection, %d valid answered, "
           "the second client worked after each\n", n, closed, replied);
    return 0;
}

static int
handoff(const char *sock, const char *fifo, const char *op)
{
    const char *arg;
    struct vimgd_client *c;
    char line[64];
    FILE *f;
    pid_t child;
    int rc = vimgd_client_connect(sock, &c);

    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", strerror(-rc));
        return 2;
    }
    child = fork();
    if (child < 0) {
        return 2;
    }
    if (child > 0) {
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        _exit(0);
    }
    f = fopen(fifo, "r");
    if (!f || !fgets(line, sizeof(line), f)) {
        fprintf(stderr, "fifo\n");
        return 2;
    }
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    arg = line;
    if (strcmp(op, "sched") == 0) {
        pid_t tid = (pid_t)atoi(arg);
        rc = vimgd_client_sched(c, SCHED_FIFO, 1, &tid, 1);
    } else {
        rc = vimgd_client_cgroup(c, arg);
    }
    printf("result %d %s\n", rc, vimgd_client_reason(c));
    fflush(stdout);
    vimgd_client_close(c);
    return rc == -ESRCH ? 0 : 1;
}

static int
openloop(const char *sock, const char *name, int n, const char *secret)
{
    struct vimgd_client *c;
    int i, ok = 0, refused = 0, rc = vimgd_client_connect(sock, &c);

    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", strerror(-rc));
        return 2;
    }
    for (i = 0; i < n; i++) {
        char b[256];
        ssize_t got;
        int fd;

        rc = vimgd_client_open(c, name, 0, &fd);
        if (rc < 0) {
            if (rc == -EPROTO || rc == -ECONNRESET) {
                fprintf(stderr, "connection broke: %s\n", vimgd_client_reason(c));
                return 1;
            }
            refused++;
            continue;
        }
        got = read(fd, b, sizeof(b) - 1);
        close(fd);
        b[got > 0 ? got : 0] = '\0';
        if (strstr(b, secret)) {
            fprintf(stderr, "LEAK: open %d returned the secret file\n", i);
            return 1;
        }
        ok++;
    }
    vimgd_client_close(c);
    printf("openloop: %d opens: %d gave the regular file, %d refused, 0 leaked\n", n, ok,
           refused);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "fuzz") == 0) {
        return fuzz(argv[2], strtoull(argv[3], NULL, 0), atoi(argv[4]), argv[5]);
    }
    if (argc == 5 && strcmp(argv[1], "handoff") == 0) {
        return handoff(argv[2], argv[3], argv[4]);
    }
    if (argc == 4 && strcmp(argv[1], "sched") == 0) {
        struct vimgd_client *c;
        pid_t tid = (pid_t)atoi(argv[3]);
        int rc = vimgd_client_connect(argv[2], &c);

        if (rc == 0) {
            rc = vimgd_client_sched(c, SCHED_FIFO, 1, &tid, 1);
        }
        printf("result %d %s\n", rc, vimgd_client_reason(c));
        vimgd_client_close(c);
        return rc == 0 ? 0 : 1;
    }
    if (argc == 6 && strcmp(argv[1], "openloop") == 0) {
        return openloop(argv[2], argv[3], atoi(argv[4]), argv[5]);
    }
    fprintf(stderr, "usage: see the comment at the top of tests/broker-helper.c\n");
    return 2;
}
