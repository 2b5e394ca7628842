// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Who is asking: the peer of a connected unix socket, from the kernel only.
 *
 * SO_PEERCRED gives uid/gid/pid as of connect(); SO_PEERGROUPS the
 * supplementary groups; SO_PEERPIDFD (Linux 6.5) a pidfd for that very
 * process, so that a later exit and pid reuse cannot redirect a
 * pid-addressed action.  Without SO_PEERPIDFD the fallback (only when the
 * config allows it) is pidfd_open(pid) followed by a check that the process
 * still has the peer's uid; it narrows but cannot close the window between
 * connect() and pidfd_open().  /proc/PID reads (cgroup, exe) are trusted
 * only if the pidfd is still alive after the read: then the pid was not
 * recycled in between.
 */
#include "vimgd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

int
peer_alive(const struct vimgd_peer *peer)
{
    if (peer->pidfd < 0) {
        return 0;
    }
    return syscall(SYS_pidfd_send_signal, peer->pidfd, 0, NULL, 0) == 0;
}

static int
read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return 0;
}

/* Real uid of @pid from /proc/PID/status ("Uid:\treal\teff..."). */
static int
proc_uid(pid_t pid, uid_t *uid)
{
    char buf[4096], *p;

    if (read_proc(pid, "status", buf, sizeof(buf)) < 0) {
        return -ESRCH;
    }
    p = strstr(buf, "\nUid:");
    if (!p) {
        return -EIO;
    }
    *uid = (uid_t)strtoul(p + 5, NULL, 10);
    return 0;
}

int
peer_identify(int sock, int mode, struct vimgd_peer *peer, const char **why)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char buf[4096], *line;
    char path[64];
    struct stat st;
    ssize_t n;
    int fd;

    memset(peer, 0, sizeof(*peer));
    peer->pidfd = -1;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        *why = "SO_PEERCRED failed";
        return -errno;
    }
    peer->uid = cred.uid;
    peer->gid = cred.gid;
    peer->pid = cred.pid;
    if (cred.pid <= 0) {
        /* The peer lives in a pid namespace we cannot see (or we are in a
         * child namespace of it): no pid-addressed identity is possible. */
        *why = "peer pid not visible from vimgd's pid namespace";
        return -EPERM;
    }
    len = sizeof(peer->groups);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, peer->groups, &len) == 0) {
        peer->ngroups = (int)(len / sizeof(gid_t));
    }
    len = sizeof(peer->pidfd);
    if (mode != PEER_PIDFD_OPEN &&
        getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &peer->pidfd, &len) == 0 && peer->pidfd >= 0) {
        peer->pidfd_source = 1;
        (void)fcntl(peer->pidfd, F_SETFD, FD_CLOEXEC);
    } else {
        uid_t uid;

        peer->pidfd = -1;
        if (mode == PEER_PIDFD_REQUIRE) {
            *why = "kernel has no SO_PEERPIDFD and peer_pidfd = require";
            return -EPERM;
        }
        peer->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
        if (peer->pidfd < 0) {
            *why = "requester exited before it could be identified";
            return -ESRCH;
        }
        (void)fcntl(peer->pidfd, F_SETFD, FD_CLOEXEC);
        peer->pidfd_source = 2;
        if (proc_uid(cred.pid, &uid) < 0 || uid != cred.uid || !peer_alive(peer)) {
            *why = "process behind the peer pid changed (pid reuse?)";
            peer_release(peer);
            return -ESRCH;
        }
    }
    /* cgroup v2 path */
    if (read_proc(peer->pid, "cgroup", buf, sizeof(buf)) == 0) {
        for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (strncmp(line, "0::", 3) == 0) {
                size_t l = strcspn(line + 3, "\n");
                snprintf(peer->cgroup, sizeof(peer->cgroup), "%.*s", (int)l, line + 3);
                break;
            }
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)peer->pid);
    n = readlink(path, peer->exe, sizeof(peer->exe) - 1);
    if (n > 0) {
        peer->exe[n] = '\0';
    }
    fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0) {
        peer->exe_dev = st.st_dev;
        peer->exe_ino = st.st_ino;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (!peer_alive(peer)) {
        *why = "requester exited while being identified";
        peer_release(peer);
        return -ESRCH;
    }
    return 0;
}

void
peer_release(struct vimgd_peer *peer)
{
    if (peer->pidfd >= 0) {
        close(peer->pidfd);
    }
    peer->pidfd = -1;
}
