/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimgd-plugin.h - in-process plugins for the vimgd privilege broker.
 *
 * THIS INTERFACE IS UNSTABLE.  It may change in any vimgd release, without
 * deprecation.  A plugin is built against exactly one VIMGD_PLUGIN_ABI_VERSION
 * and vimgd refuses to start (it does not skip the plugin) when the version
 * a plugin was built with differs from its own.  Plugins are named in the
 * root-owned configuration and loaded once at start; clients never choose
 * what is loaded.
 *
 * A plugin exports one object, `const struct vimgd_plugin vimgd_plugin_entry`
 * (use VIMGD_PLUGIN_DEFINE).  It implements named operations "NAME.OP"; the
 * policy decides first (a rule must list "NAME.OP" in allow=), then the
 * plugin's optional decide() may refuse, then act() runs in the worker
 * process of that one connection.  The peer was identified by the kernel
 * (SO_PEERCRED, SO_PEERPIDFD): never trust names or ids found in the
 * request's argument bytes.
 */
#ifndef VIMGD_PLUGIN_H
#define VIMGD_PLUGIN_H

#ifndef VIMGD_I_KNOW_THIS_IS_UNSTABLE
#error "vimgd-plugin.h is an UNSTABLE interface: a plugin built against it works with exactly one vimgd plugin ABI version. Define VIMGD_I_KNOW_THIS_IS_UNSTABLE before including it to accept that."
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on ANY change to this header's types or semantics. */
#define VIMGD_PLUGIN_ABI_VERSION 1

/* The requester, as the kernel describes it.  Read-only for plugins. */
struct vimgd_peer {
    uid_t uid;              /* SO_PEERCRED, at connect() */
    gid_t gid;
    pid_t pid;              /* in vimgd's pid namespace; never 0 */
    int pidfd;              /* pins the process: SO_PEERPIDFD or pidfd_open */
    int pidfd_source;       /* 1 = SO_PEERPIDFD (kernel), 2 = pidfd_open(pid) + re-check */
    int ngroups;            /* SO_PEERGROUPS */
    gid_t groups[64];
    char cgroup[512];       /* cgroup v2 path ("0::" line), read with pidfd re-check */
    char exe[4096];         /* /proc/PID/exe at connect, read with pidfd re-check */
    dev_t exe_dev;
    ino_t exe_ino;
};

/* Services vimgd offers to plugins. */
struct vimgd_plugin_host {
    uint32_t abi_version;
    /* One line to vimgd's log (not the audit log). */
    void (*log)(const char *msg);
    /* 1 if the peer process still exists (its pidfd), else 0.  Call it
     * before and after any action addressed by pid. */
    int (*peer_alive)(const struct vimgd_peer *peer);
};

struct vimgd_plugin_request {
    const char *op;          /* the OP part of "NAME.OP" */
    const uint8_t *arg;      /* untrusted argument bytes */
    size_t arg_len;
};

struct vimgd_plugin_reply {
    char text[1024];         /* NUL-terminated text sent to the client */
    int fd;                  /* -1, or one FD vimgd sends and then closes */
};

struct vimgd_plugin {
    uint32_t abi_version;    /* VIMGD_PLUGIN_ABI_VERSION at build time */
    uint32_t struct_size;    /* sizeof(struct vimgd_plugin) at build time */
    const char *name;        /* must equal the [plugin NAME] section */
    const char *const *ops;  /* NULL-terminated list of OP names */
    /* Called once at start, as root, before any client.  @args are the
     * "key=value" lines of the plugin's config section (NULL-terminated).
     * Return 0, or -errno with a message in @err to stop vimgd. */
    int (*init)(const struct vimgd_plugin_host *host, const char *const *args, char *err,
                size_t errlen);
    void (*fini)(void);
    /* Optional extra check after the policy allowed the op; pure, no side
     * effects.  Return 0 to allow, -errno (reason in @reason) to refuse. */
    int (*decide)(const struct vimgd_peer *peer, const struct vimgd_plugin_request *req,
                  char *reason, size_t reasonlen);
    /* Do it.  Return 0 or -errno; fill @reply (reply->fd starts at -1). */
    int (*act)(const struct vimgd_peer *peer, const struct vimgd_plugin_request *req,
               struct vimgd_plugin_reply *reply);
};

#define VIMGD_PLUGIN_DEFINE(...)                                                             \
    __attribute__((visibility("default"))) const struct vimgd_plugin vimgd_plugin_entry = { \
        .abi_version = VIMGD_PLUGIN_ABI_VERSION,                                            \
        .struct_size = sizeof(struct vimgd_plugin),                                          \
        __VA_ARGS__}

#ifdef __cplusplus
}
#endif

#endif /* VIMGD_PLUGIN_H */
