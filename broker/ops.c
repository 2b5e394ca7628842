// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The built-in operations.  Each runs in the worker of one connection after
 * policy_decide() allowed it, and re-checks the peer's pidfd before and
 * after every action addressed by pid (prlimit, sched_setattr,
 * cgroup.procs), so that an exited requester whose pid was recycled cannot
 * have the action applied to another process.
 */
#include "vimgd.h"
#include "bytes.h"
#include "safemem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef SCHED_FLAG_RESET_ON_FORK
#define SCHED_FLAG_RESET_ON_FORK 0x01
#endif

static int __attribute__((format(printf, 3, 4)))
say(struct op_result *res, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
    return rc;
}

/* Open @name beneath @root without following any symlink, never leaving the
 * root or its mount; only regular files and block devices. */
static int
open_beneath(const struct root_dir *root, const char *key, const char *name, bool rw,
             struct op_result *res, int *out)
{
    struct open_how how = {
        .flags = (uint64_t)((rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
                            O_NONBLOCK),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                   RESOLVE_NO_XDEV,
    };
    struct stat st;
    int fd;

    fd = (int)syscall(SYS_openat2, root->fd, name, &how, sizeof(how));
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP) {
            return say(res, -e, "'%s': symbolic links are not followed beneath %s", name, key);
        }
        if (e == EXDEV) {
            return say(res, -e, "'%s' leaves %s", name, key);
        }
        return say(res, -e, "'%s': %s", name, strerror(e));
    }
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        close(fd);
        return say(res, -EACCES, "'%s' is not a regular file or block device", name);
    }
    /* O_NONBLOCK only kept a FIFO or device from blocking the open */
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *out = fd;
    return 0;
}

int
op_open(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
        const struct vb_request *req, struct op_result *res)
{
    bool rw = req->flags & VB_OPEN_RW;
    int rc = open_beneath(&d->rule->open_root, "open.root", req->name, rw, res, &res->fd);

    if (rc == 0) {
        say(res, 0, "opened '%s' %s", req->name, rw ? "read-write" : "read-only");
    }
    return rc;
}

/* ---- nbd ------------------------------------------------------------------ */

/* Read the root-only secret file into safe memory. */
static int
read_secret(const char *path, void **out, size_t *len, struct op_result *res)
{
    void *buf;
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        return say(res, -EIO, "the broker cannot read its secret for this image");
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077) ||
        st.st_size > 4096) {
        close(fd);
        return say(res, -EIO, "the broker's secret file for this image is unsafe; see the log");
    }
    buf = safe_alloc(4096);
    if (!buf) {
        close(fd);
        return say(res, -ENOMEM, "out of memory");
    }
    n = read(fd, buf, 4096);
    close(fd);
    if (n < 0) {
        safe_free(buf);
        return say(res, -EIO, "the broker cannot read its secret for this image");
    }
    *out = buf;
    *len = (size_t)n;
    return 0;
}

/* Place @fds[i] at descriptor 3 + i in a child and close everything else
 * (except @keep, which goes right after them). */
static void
child_fds(const int *fds, int n, int *keep)
{
    int moved[8], i;

    for (i = 0; i < n; i++) {
        moved[i] = fcntl(fds[i], F_DUPFD, 20);
    }
    *keep = fcntl(*keep, F_DUPFD_CLOEXEC, 20);
    for (i = 0; i < n; i++) {
        dup2(moved[i], 3 + i);
    }
    dup2(*keep, 3 + n);
    fcntl(3 + n, F_SETFD, FD_CLOEXEC);
    *keep = 3 + n;
    syscall(SYS_close_range, 4 + n, ~0U, 0);
}

/*
 * Start the NBD server for one client.  @fds go to 3, 4, 5 in the child;
 * stdin and stdout are /dev/null, stderr is vimgd's log.  The secret
 * travels in a pipe (fd 4), never in argv or the environment.  Returns the
 * pid once exec succeeded (an exec failure comes back through a
 * close-on-exec pipe), else -errno.
 */
static int
spawn_server(const char *path, char *const argv[], const int *fds, int nfds, bool listen_env)
{
    int errp[2], e = 0;
    pid_t pid;
    ssize_t n;

    if (pipe2(errp, O_CLOEXEC) < 0) {
        return -errno;
    }
    pid = fork();
    if (pid < 0) {
        e = -errno;
        close(errp[0]);
        close(errp[1]);
        return e;
    }
    if (pid == 0) {
        char lpid[32];
        char *env[4] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL, NULL, NULL};
        sigset_t all;
        int keep = errp[1];

        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        setsid();
        child_fds(fds, nfds, &keep);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        if (listen_env) {
            snprintf(lpid, sizeof(lpid), "LISTEN_PID=%d", (int)getpid());
            env[1] = "LISTEN_FDS=1";
            env[2] = lpid;
        }
        execve(path, argv, env);
        e = errno;
        (void)!write(keep, &e, sizeof(e));
        _exit(127);
    }
    close(errp[1]);
    do {
        n = read(errp[0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    close(errp[0]);
    if (n == (ssize_t)sizeof(e)) {
        return -e;
    }
    return (int)pid;
}

#define QCOW2_EXT_DATA_FILE   0x44415441u
#define QCOW2_INCOMPAT_DATA   (1ull << 2) /* external data file */
#define QCOW2_AUTOCLEAR_RAW   (1ull << 1) /* data file is raw */
#define QCOW2_HDR_SCAN        65536       /* header + extensions we look at */

/*
 * Refuse a qcow2 image that names another file: a backing file (any name:
 * absolute, "../", "json:", even a relative one, which would resolve next
 * to /dev/fd/N) or an external data file (header extension 0x44415441 or
 * its incompatible/autoclear feature bits).  The NBD server runs with the
 * broker's privileges and would open that file by name, outside nbd.root
 * and its openat2 rules.  Anything this header walk does not understand is
 * refused too.
 */
static int
check_no_external_files(int fd, const char *name, struct op_result *res)
{
    uint8_t *h = malloc(QCOW2_HDR_SCAN);
    ssize_t n;
    uint32_t version, hlen, off;
    uint64_t incompat = 0, autoclear = 0;
    int rc = 0;

    if (!h) {
        return say(res, -ENOMEM, "out of memory");
    }
    n = pread(fd, h, QCOW2_HDR_SCAN, 0);
    if (n < 72 || ld_be32(h) != 0x514649fbu) {
        rc = say(res, -EINVAL, "'%s' is not a qcow2 image", name);
        goto out;
    }
    version = ld_be32(h + 4);
    if (version != 2 && version != 3) {
        rc = say(res, -EINVAL, "'%s': qcow2 version %u is not served", name, version);
        goto out;
    }
    if (ld_be64(h + 8) != 0 || ld_be32(h + 16) != 0) {
        rc = say(res, -EPERM,
                 "'%s' references a backing file; images naming other files are not served "
                 "(flatten it with 'vimg convert' first)",
                 name);
        goto out;
    }
    hlen = 72;
    if (version == 3) {
        if (n < 104) {
            rc = say(res, -EINVAL, "'%s': truncated qcow2 header", name);
            goto out;
        }
        incompat = ld_be64(h + 72);
        autoclear = ld_be64(h + 88);
        hlen = ld_be32(h + 100);
        if (hlen < 104) {
            rc = say(res, -EINVAL, "'%s': qcow2 header length %u too small", name, hlen);
            goto out;
        }
    }
    if ((incompat & QCOW2_INCOMPAT_DATA) || (autoclear & QCOW2_AUTOCLEAR_RAW)) {
        goto datafile;
    }
    /* header extensions: type, length, data padded to 8 bytes, type 0 ends */
    for (off = hlen;;) {
        uint32_t type, len;

        if (off > (uint32_t)n - 8 || (uint32_t)n < 8) {
            rc = say(res, -EINVAL, "'%s': qcow2 header extensions not understood; not served",
                     name);
            goto out;
        }
        type = ld_be32(h + off);
        len = ld_be32(h + off + 4);
        if (type == 0) {
            break;
        }
        if (type == QCOW2_EXT_DATA_FILE) {
            goto datafile;
        }
        if (len > (uint32_t)n - off - 8) {
            rc = say(res, -EINVAL, "'%s': qcow2 header extensions not understood; not served",
                     name);
            goto out;
        }
        off += 8 + ((len + 7u) & ~7u);
    }
    goto out;
datafile:
    rc = say(res, -EPERM,
             "'%s' references an external data file; images naming other files are not "
             "served (convert it to a self-contained image with 'vimg convert' first)",
             name);
out:
    free(h);
    return rc;
}

/* A connected stream socket pair whose far end is a listening socket in a
 * private root-only directory (qemu-nbd takes only listening sockets). */
static int
listening_pair(int *listen_fd, int *client_fd)
{
    char dir[] = "/tmp/vimgd-nbd.XXXXXX";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int l = -1, c = -1, rc = 0;

    if (!mkdtemp(dir)) {
        return -errno;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
    l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
        connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
    }
    unlink(sa.sun_path);
    rmdir(dir);
    if (rc < 0) {
        if (l >= 0) {
            close(l);
        }
        if (c >= 0) {
            close(c);
        }
        return rc;
    }
    *listen_fd = l;
    *client_fd = c;
    return 0;
}

int
op_nbd(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
       const struct vb_request *req, struct op_result *res)
{
    const struct rule *r = d->rule;
    const char *fmt = r->nbd_format ? r->nbd_format : "luks";
    bool rw = req->flags & VB_OPEN_RW, qemu = strcmp(pol->nbd_server, "qemu-nbd") == 0;
    const char *server = pol->nbd_server_path ? pol->nbd_server_path
                         : qemu                ? "/usr/bin/qemu-nbd"
                                               : "/usr/bin/vimg";
    int img = -1, sp[2] = {-1, -1}, sec[2] = {-1, -1}, fds[3], rc;
    char opts[256], object[128];
    void *secret = NULL;
    size_t slen = 0;
    char *argv[16];
    int a = 0;

    rc = open_beneath(&r->nbd_root, "nbd.root", req->name, rw, res, &img);
    if (rc < 0) {
        return rc;
    }
    if (strcmp(fmt, "qcow2") == 0) {
        rc = check_no_external_files(img, req->name, res);
        if (rc < 0) {
            goto out;
        }
    }
    if (r->nbd_secret) {
        rc = read_secret(r->nbd_secret, &secret, &slen, res);
        if (rc < 0) {
            goto out;
        }
        /* the whole secret fits the pipe buffer: write it, close, hand on */
        if (pipe2(sec, O_CLOEXEC) < 0 || write(sec[1], secret, slen) != (ssize_t)slen) {
            rc = say(res, -EIO, "cannot pass the secret to the NBD server");
            goto out;
        }
        close(sec[1]);
        sec[1] = -1;
    } else if (pipe2(sec, O_CLOEXEC) == 0) {
        close(sec[1]);
        sec[1] = -1;
    }
    /* the image: /dev/fd/N of the descriptor opened beneath the root, so
     * that the server reopens exactly the checked inode */
    if (strcmp(fmt, "luks") == 0) {
        snprintf(opts, sizeof(opts), "driver=luks,key-secret=s0,file.filename=/dev/fd/%d",
                 qemu ? 5 : 3);
    } else if (strcmp(fmt, "qcow2") == 0) {
        /* The check above ran before the server opens the image; a
         * requester able to rewrite it in between must not get a backing
         * or data file opened.  vimg serve --self-contained refuses both
         * in its own open; qemu-nbd gets "backing=" (no backing file,
         * qemu 7.2 warns that the empty form is deprecated) and has no
         * such switch for data files: see vimgd(8). */
        snprintf(opts, sizeof(opts), "driver=qcow2,%sfile.filename=/dev/fd/%d%s",
                 r->nbd_secret ? "encrypt.key-secret=s0," : "", qemu ? 5 : 3,
                 qemu ? ",backing=" : "");
    } else {
        snprintf(opts, sizeof(opts), "driver=%s,file.filename=/dev/fd/%d", fmt, qemu ? 5 : 3);
    }
    snprintf(object, sizeof(object), "secret,id=s0,file=/dev/fd/4");
    if (qemu) {
        int lst = -1, cli = -1;

        rc = listening_pair(&lst, &cli);
        if (rc < 0) {
            say(res, rc, "cannot create the NBD socket: %s", strerror(-rc));
            goto out;
        }
        sp[0] = cli;
        sp[1] = lst;
        argv[a++] = "qemu-nbd";
        fds[0] = lst;
        fds[1] = sec[0];
        fds[2] = img;
    } else {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
            rc = say(res, -errno, "socketpair: %s", strerror(errno));
            goto out;
        }
        argv[a++] = "vimg";
        argv[a++] = "serve";
        argv[a++] = "--self-contained";
        argv[a++] = "--fd";
        argv[a++] = "5";
        fds[0] = img;
        fds[1] = sec[0];
        fds[2] = sp[1];
    }
    if (!rw) {
        argv[a++] = "-r";
    }
    argv[a++] = "--object";
    argv[a++] = object;
    argv[a++] = "--image-opts";
    argv[a++] = opts;
    argv[a] = NULL;
    rc = spawn_server(server, argv, fds, 3, qemu);
    if (rc < 0) {
        say(res, rc, "cannot start the NBD server '%s': %s", server, strerror(-rc));
        goto out;
    }
    res->server = rc;
    rc = 0;
    res->fd = sp[0];
    sp[0] = -1;
    say(res, 0, "NBD export of '%s' (%s, %s)", req->name, fmt, rw ? "read-write" : "read-only");
out:
    safe_free(secret);
    if (img >= 0) {
        close(img);
    }
    for (a = 0; a < 2; a++) {
        if (sp[a] >= 0) {
            close(sp[a]);
        }
        if (sec[a] >= 0) {
            close(sec[a]);
        }
    }
    return rc;
}

/* ---- pid-addressed operations ----------------------------------------------- */

static int
gone(struct op_result *res, bool after)
{
    return say(res, -ESRCH,
               after ? "requester exited during the change (its pid may now name another "
                       "process); refused"
                     : "requester process has exited; refused (its pid may have been reused)");
}

int
op_memlock(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
           const struct vb_request *req, struct op_result *res)
{
    struct rlimit old, nl;

    if (!peer_alive(peer)) {
        return gone(res, false);
    }
    if (prlimit(peer->pid, RLIMIT_MEMLOCK, NULL, &old) < 0) {
        int e = errno;
        return say(res, -e, "prlimit: %s%s", strerror(e),
                   e == EPERM ? " (vimgd lacks CAP_SYS_RESOURCE)" : "");
    }
    nl = old;
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < req->bytes) {
        nl.rlim_cur = req->bytes;
    }
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < req->bytes) {
        nl.rlim_max = req->bytes;
    }
    if (!peer_alive(peer)) {
        return gone(res, false);
    }
    if (prlimit(peer->pid, RLIMIT_MEMLOCK, &nl, NULL) < 0) {
        int e = errno;
        if (e == EPERM) {
            return say(res, -e, "prlimit: Operation not permitted (vimgd lacks "
                       "CAP_SYS_RESOURCE)");
        }
        return say(res, -e, "prlimit: %s", strerror(e));
    }
    if (!peer_alive(peer)) {
        return gone(res, true);
    }
    return say(res, 0, "RLIMIT_MEMLOCK of pid %d is now %llu/%llu", (int)peer->pid,
               (unsigned long long)nl.rlim_cur, (unsigned long long)nl.rlim_max);
}

struct sched_attr_v0 {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

static int
thread_alive(int tfd)
{
    return syscall(SYS_pidfd_send_signal, tfd, 0, NULL, 0) == 0;
}

int
op_sched(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
         const struct vb_request *req, struct op_result *res)
{
    struct sched_attr_v0 attr = {
        .size = sizeof(attr),
        .sched_policy = req->policy,
        .sched_flags = SCHED_FLAG_RESET_ON_FORK, /* children do not inherit it */
        .sched_priority = req->priority,
    };
    const char *how = "thread pidfd";
    uint32_t i;

    for (i = 0; i < req->ntids; i++) {
        char task[64];
        int tid = req->tids[i], tfd, rc;

        /* Pin the thread first, then check it belongs to the peer, then
         * check the pin still holds: the membership was about this thread. */
        tfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
        if (tfd < 0 && errno == EINVAL) {
            how = "/proc task check (no PIDFD_THREAD)";
        } else if (tfd < 0) {
            return say(res, -ESRCH, "thread %d does not exist", tid);
        }
        snprintf(task, sizeof(task), "/proc/%d/task/%d", (int)peer->pid, tid);
        if (access(task, F_OK) < 0) {
            if (tfd >= 0) {
                close(tfd);
            }
            return say(res, -EPERM, "thread %d is not a thread of the requester (pid %d)", tid,
                       (int)peer->pid);
        }
        if (!peer_alive(peer) || (tfd >= 0 && !thread_alive(tfd))) {
            if (tfd >= 0) {
                close(tfd);
            }
            return gone(res, false);
        }
        rc = (int)syscall(SYS_sched_setattr, tid, &attr, 0);
        if (rc < 0) {
            int e = errno;
            if (tfd >= 0) {
                close(tfd);
            }
            return say(res, -e, "sched_setattr(thread %d): %s", tid, strerror(e));
        }
        if (!peer_alive(peer) || (tfd >= 0 && !thread_alive(tfd))) {
            if (tfd >= 0) {
                close(tfd);
            }
            return gone(res, true);
        }
        if (tfd >= 0) {
            close(tfd);
        }
    }
    return say(res, 0, "policy %u priority %u set on %u thread(s) (reset on fork; %s)",
               req->policy, req->priority, req->ntids, how);
}

int
op_cgroup(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
          const struct vb_request *req, struct op_result *res)
{
    char buf[32];
    int fd, len, e = 0;

    if (!d->target || d->target->fd < 0) {
        return say(res, -ENOENT, "cgroup target '%s' is not configured", req->name);
    }
    fd = openat(d->target->fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return say(res, -errno, "cgroup '%s': %s", d->target->path, strerror(errno));
    }
    if (!peer_alive(peer)) {
        close(fd);
        return gone(res, false);
    }
    len = snprintf(buf, sizeof(buf), "%d\n", (int)peer->pid);
    if (write(fd, buf, (size_t)len) != len) {
        e = errno ? errno : EIO;
    }
    close(fd);
    if (e) {
        return say(res, -e, "moving pid %d to '%s': %s", (int)peer->pid, d->target->path,
                   strerror(e));
    }
    if (!peer_alive(peer)) {
        return gone(res, true);
    }
    return say(res, 0, "pid %d moved to cgroup '%s'", (int)peer->pid, req->name);
}
