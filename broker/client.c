// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvimgd-client: the requester side of the vimgd protocol (protocol.h).
 * One request in flight per connection; a reply must match the request's
 * op and carry an FD exactly when its header says so, else the connection
 * is considered broken (-EPROTO) and closed.
 */
#include "vimgd-client.h"
#include "protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

struct vimgd_client {
    int sock;
    char reason[VB_MAX_TEXT + 1];
};

/* Send @req, wait for its reply; *fd_out gets an attached FD (or -1). */
static int
transact(struct vimgd_client *c, const struct vb_request *req, int *fd_out)
{
    uint8_t buf[VB_MAX_MSG];
    struct vb_msg m;
    int n, fd = -1, rc;
    ssize_t got;

    c->reason[0] = '\0';
    if (fd_out) {
        *fd_out = -1;
    }
    if (c->sock < 0) {
        return -ENOTCONN;
    }
    n = vb_encode_request(buf, req);
    if (n < 0) {
        return n;
    }
    rc = vb_send(c->sock, buf, (size_t)n, -1);
    if (rc < 0) {
        goto broken;
    }
    got = vb_recv(c->sock, buf, 1, &fd);
    if (got <= 0) {
        rc = got == 0 ? -ECONNRESET : (int)got;
        goto broken;
    }
    if (vb_decode(buf, (size_t)got, &m) < 0 || m.op != req->op ||
        ((m.flags & VB_FLAG_FD) != 0) != (fd >= 0) || m.len > VB_MAX_TEXT ||
        m.status > 0 || m.status < -4095 || (fd >= 0 && m.status != 0)) {
        rc = -EPROTO;
        goto broken;
    }
    memcpy(c->reason, m.payload, m.len);
    c->reason[m.len] = '\0';
    if (fd_out) {
        *fd_out = fd;
    } else if (fd >= 0) {
        close(fd);
    }
    return m.status;
broken:
    if (fd >= 0) {
        close(fd);
    }
    close(c->sock);
    c->sock = -1;
    if (!c->reason[0]) {
        snprintf(c->reason, sizeof(c->reason), "connection to vimgd lost: %s", strerror(-rc));
    }
    return rc;
}

API int
vimgd_client_connect(const char *path, struct vimgd_client **out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct vb_request req = {.op = VB_OP_HELLO};
    struct vimgd_client *c;
    int rc;

    *out = NULL;
    if (!path) {
        path = getenv("VIMGD_SOCKET");
    }
    if (!path || !*path) {
        path = VIMGD_DEFAULT_SOCKET;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        if (c->sock >= 0) {
            close(c->sock);
        }
        free(c);
        return rc;
    }
    rc = transact(c, &req, NULL);
    if (rc < 0) {
        /* keep the object so the caller can read the reason */
        *out = c;
        return rc;
    }
    *out = c;
    return 0;
}

API void
vimgd_client_close(struct vimgd_client *c)
{
    if (!c) {
        return;
    }
    if (c->sock >= 0) {
        close(c->sock);
    }
    free(c);
}

API const char *
vimgd_client_reason(const struct vimgd_client *c)
{
    return c ? c->reason : "";
}

static int
named(struct vimgd_client *c, unsigned op, const char *name, unsigned flags, int *fd_out)
{
    struct vb_request *req = calloc(1, sizeof(*req));
    int rc;

    if (!req) {
        return -ENOMEM;
    }
    req->op = op;
    req->flags = flags;
    if (!name || strlen(name) == 0 || strlen(name) > VB_MAX_NAME) {
        free(req);
        return -EINVAL;
    }
    strcpy(req->name, name);
    rc = transact(c, req, fd_out);
    free(req);
    return rc;
}

API int
vimgd_client_open(struct vimgd_client *c, const char *name, unsigned flags, int *fd_out)
{
    int rc = named(c, VB_OP_OPEN, name, flags & VIMGD_OPEN_RW, fd_out);

    if (rc == 0 && *fd_out < 0) {
        return -EPROTO;
    }
    return rc;
}

API int
vimgd_client_nbd(struct vimgd_client *c, const char *name, unsigned flags, int *sock_out)
{
    int rc = named(c, VB_OP_NBD, name, flags & VIMGD_OPEN_RW, sock_out);

    if (rc == 0 && *sock_out < 0) {
        return -EPROTO;
    }
    return rc;
}

API int
vimgd_client_cgroup(struct vimgd_client *c, const char *target)
{
    return named(c, VB_OP_CGROUP, target, 0, NULL);
}

API int
vimgd_client_memlock(struct vimgd_client *c, uint64_t bytes)
{
    struct vb_request req = {.op = VB_OP_MEMLOCK, .bytes = bytes};

    return transact(c, &req, NULL);
}

API int
vimgd_client_sched(struct vimgd_client *c, int policy, int priority, const pid_t *tids,
                   size_t ntids)
{
    struct vb_request *req;
    size_t i;
    int rc;

    if (ntids > VB_MAX_TIDS || policy < 0 || priority < 0) {
        return -EINVAL;
    }
    req = calloc(1, sizeof(*req));
    if (!req) {
        return -ENOMEM;
    }
    req->op = VB_OP_SCHED;
    req->policy = (uint32_t)policy;
    req->priority = (uint32_t)priority;
    if (!tids || ntids == 0) {
        req->ntids = 1;
        req->tids[0] = (int32_t)syscall(SYS_gettid);
    } else {
        req->ntids = (uint32_t)ntids;
        for (i = 0; i < ntids; i++) {
            req->tids[i] = tids[i];
        }
    }
    rc = transact(c, req, NULL);
    free(req);
    return rc;
}

API int
vimgd_client_plugin(struct vimgd_client *c, const char *op, const void *arg, size_t arg_len,
                    int *fd_out)
{
    struct vb_request *req;
    int rc;

    if (!op || strlen(op) == 0 || strlen(op) > VB_MAX_NAME || arg_len > VB_MAX_ARG) {
        return -EINVAL;
    }
    req = calloc(1, sizeof(*req));
    if (!req) {
        return -ENOMEM;
    }
    req->op = VB_OP_PLUGIN;
    strcpy(req->name, op);
    if (arg_len) {
        memcpy(req->arg, arg, arg_len);
    }
    req->arg_len = arg_len;
    rc = transact(c, req, fd_out);
    free(req);
    return rc;
}
