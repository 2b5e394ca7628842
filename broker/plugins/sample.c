// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Sample vimgd plugin: two operations to show the interface.
 *   sample.whoami  replies with what the kernel says about the requester
 *                  (uid, gid, pid, how the pidfd was obtained, cgroup) and
 *                  the configured greeting; the argument is ignored.
 *   sample.devnull replies with a read-only FD of /dev/null (an example of
 *                  handing back one descriptor).
 * Config:
 *   [plugin sample]
 *   path = /usr/lib/vimgd/plugins/sample.so
 *   greeting = hello
 * Built with -DSAMPLE_WRONG_ABI it claims another ABI version, which vimgd
 * must refuse (tests/test-broker.sh).
 */
#define VIMGD_I_KNOW_THIS_IS_UNSTABLE 1
#include "vimgd-plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#ifdef SAMPLE_WRONG_ABI
#undef VIMGD_PLUGIN_ABI_VERSION
#define VIMGD_PLUGIN_ABI_VERSION 999
#endif

static char greeting[128] = "hello";
static const struct vimgd_plugin_host *host;

static int
sample_init(const struct vimgd_plugin_host *h, const char *const *args, char *err, size_t errlen)
{
    size_t i;

    host = h;
    for (i = 0; args && args[i]; i++) {
        if (strncmp(args[i], "greeting=", 9) == 0) {
            snprintf(greeting, sizeof(greeting), "%s", args[i] + 9);
        } else {
            snprintf(err, errlen, "unknown setting '%s'", args[i]);
            return -EINVAL;
        }
    }
    host->log("sample plugin ready");
    return 0;
}

static int
sample_act(const struct vimgd_peer *peer, const struct vimgd_plugin_request *req,
           struct vimgd_plugin_reply *reply)
{
    if (strcmp(req->op, "whoami") == 0) {
        snprintf(reply->text, sizeof(reply->text),
                 "%s: uid=%u gid=%u pid=%d pidfd=%s alive=%d cgroup=%s", greeting,
                 (unsigned)peer->uid, (unsigned)peer->gid, (int)peer->pid,
                 peer->pidfd_source == 1 ? "SO_PEERPIDFD" : "pidfd_open",
                 host->peer_alive(peer), peer->cgroup);
        return 0;
    }
    if (strcmp(req->op, "devnull") == 0) {
        reply->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (reply->fd < 0) {
            snprintf(reply->text, sizeof(reply->text), "/dev/null: %s", strerror(errno));
            return -errno;
        }
        snprintf(reply->text, sizeof(reply->text), "here is /dev/null");
        return 0;
    }
    snprintf(reply->text, sizeof(reply->text), "unknown operation");
    return -EOPNOTSUPP;
}

static const char *const sample_ops[] = {"whoami", "devnull", NULL};

VIMGD_PLUGIN_DEFINE(.name = "sample", .ops = sample_ops, .init = sample_init,
                    .act = sample_act);
