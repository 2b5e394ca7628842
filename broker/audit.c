// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The audit log: one line per decision (and per protocol violation), with
 * the kernel-given identity of the requester, the op, its object, the rule
 * that decided and the result.  Each line is one write() to an O_APPEND
 * descriptor, so lines from concurrent workers do not interleave.  Strings
 * from the client are escaped (no newlines or control bytes reach the log).
 */
#include "vimgd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static int audit_fd = 2;

int
audit_open(const char *dest)
{
    int fd;

    if (strcmp(dest, "stderr") == 0) {
        audit_fd = 2;
        return 0;
    }
    fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -errno;
    }
    audit_fd = fd;
    return 0;
}

/* Append @s quoted, with control bytes, quotes and backslashes escaped. */
static size_t
quote(char *out, size_t room, const char *s)
{
    size_t n = 0;

    if (room < 4) {
        return 0;
    }
    out[n++] = '"';
    for (; *s && n + 6 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            n += (size_t)snprintf(out + n, room - n, "\\x%02x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return n;
}

void
audit_log(const struct vimgd_peer *peer, const char *event, const char *op, const char *object,
          const char *rule, int status, const char *text)
{
    char line[4096];
    size_t n;

    n = (size_t)snprintf(line, sizeof(line),
                         "vimgd[%d]: audit event=%s op=%s uid=%u gid=%u pid=%d pidfd=%s "
                         "cgroup=",
                         (int)getpid(), event, op ? op : "-", (unsigned)peer->uid,
                         (unsigned)peer->gid, (int)peer->pid,
                         peer->pidfd_source == 1   ? "SO_PEERPIDFD"
                         : peer->pidfd_source == 2 ? "pidfd_open"
                                                   : "none");
    n += quote(line + n, sizeof(line) - n, peer->cgroup);
    n += (size_t)snprintf(line + n, sizeof(line) - n, " exe=");
    n += quote(line + n, sizeof(line) - n, peer->exe);
    n += (size_t)snprintf(line + n, sizeof(line) - n, " object=");
    n += quote(line + n, sizeof(line) - n, object ? object : "");
    n += (size_t)snprintf(line + n, sizeof(line) - n, " rule=%s status=%d reason=",
                          rule ? rule : "-", status);
    n += quote(line + n, sizeof(line) - n, text ? text : "");
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    (void)!write(audit_fd, line, n);
}

void
vimgd_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "vimgd[%d]: ", (int)getpid());
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) {
        n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    (void)!write(2, line, (size_t)n);
}
