/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimgd internals: policy (config file, decisions, explanations), peer
 * identity, the built-in operations, plugins and the audit log.
 */
#ifndef VIMG_BROKER_VIMGD_H
#define VIMG_BROKER_VIMGD_H

#define VIMGD_I_KNOW_THIS_IS_UNSTABLE 1
#include "vimgd-plugin.h"
#include "protocol.h"

#include <stdbool.h>
#include <stdio.h>

#define POLICY_MAX_IDS 16
#define POLICY_MAX_GLOBS 8
#define POLICY_MAX_NAMES 16

struct id_range {
    uint32_t lo, hi;
};

/* Where an op reaches files: a root directory held open from load time. */
struct root_dir {
    char *path;
    int fd; /* O_PATH|O_DIRECTORY, -1 if unset */
};

struct rule {
    char *name;
    int line;
    /* match.*: all given must hold; an empty list matches anything */
    struct id_range uids[POLICY_MAX_IDS];
    int nuids;
    struct id_range gids[POLICY_MAX_IDS]; /* primary or supplementary */
    int ngids;
    char *cgroups[POLICY_MAX_GLOBS]; /* fnmatch globs on the cgroup v2 path */
    int ncgroups;
    bool has_exe;
    char *exe;
    dev_t exe_dev;
    ino_t exe_ino;
    /* what: built-in ops as a bit mask (1 << op); plugin ops by name */
    unsigned allow, deny;
    char *allow_plugin[POLICY_MAX_NAMES];
    int nallow_plugin;
    char *deny_plugin[POLICY_MAX_NAMES];
    int ndeny_plugin;
    /* limits */
    struct root_dir open_root;
    bool open_rw;
    struct root_dir nbd_root;
    bool nbd_rw;
    char *nbd_secret;  /* root-only file with the image's passphrase */
    char *nbd_format;  /* luks (default), qcow2, raw */
    uint64_t memlock_max;
    bool has_memlock_max;
    int sched_max_rtprio;
    unsigned sched_policies; /* bit (1 << SCHED_*) */
    char *cgroup_targets[POLICY_MAX_NAMES];
    int ncgroup_targets;
};

struct cgroup_target {
    char *name;
    char *path;
    int fd; /* O_PATH|O_DIRECTORY of the cgroup directory */
};

struct plugin {
    char *name;
    char *path;
    char **args; /* key=value, NULL-terminated */
    int nargs;
    void *handle;
    const struct vimgd_plugin *entry;
};

struct policy {
    char *file;
    char *socket_path;
    unsigned socket_mode;
    bool has_socket_group;
    gid_t socket_group;
    char *audit;            /* "stderr" or a file name */
    int peer_pidfd;         /* PEER_PIDFD_*: how the peer's pidfd is obtained */
    int max_workers;
    int idle_timeout;       /* seconds a connection may stay silent */
    char *nbd_server;       /* "vimg" (vimg serve --fd) or "qemu-nbd" */
    char *nbd_server_path;
    struct rule *rules;
    int nrules;
    struct cgroup_target *cgroups;
    int ncgroups;
    struct plugin *plugins;
    int nplugins;
};

/**
 * policy_load - read and check a config file.  Refuses files not owned by
 * root or writable by group/others, unknown keys, bad values, missing roots.
 * With @open_roots, root and cgroup directories are opened and secret files
 * checked.  Return: 0, or -errno with a one-line message in @err.
 */
int policy_load(const char *file, bool open_roots, struct policy *pol, char *err, size_t errlen);
void policy_free(struct policy *pol);
/** policy_print - the effective configuration, for --check-config. */
void policy_print(const struct policy *pol, FILE *out);

struct decision {
    bool allow;
    const struct rule *rule;  /* the deciding rule, NULL if none */
    const struct cgroup_target *target; /* CGROUP */
    char reason[512];
};

/**
 * policy_decide - the pure decision for @req by @peer.  Rules are tried in
 * file order; the first that matches the peer and denies the op, or allows
 * it within its limits, decides; no such rule means deny.  @trace (may be
 * NULL) receives one line per rule, for --explain.
 */
void policy_decide(const struct policy *pol, const struct vimgd_peer *peer,
                   const struct vb_request *req, struct decision *d, FILE *trace);

/* peer.c */
enum {
    PEER_PIDFD_REQUIRE,  /* SO_PEERPIDFD, else refuse (default) */
    PEER_PIDFD_FALLBACK, /* SO_PEERPIDFD, else pidfd_open(pid) + re-check */
    PEER_PIDFD_OPEN,     /* always pidfd_open(pid) + re-check (pre-6.5 behaviour) */
};
/**
 * peer_identify - fill @peer from the kernel for connected socket @sock.
 * Return: 0, or -errno with the reason in @why.
 */
int peer_identify(int sock, int mode, struct vimgd_peer *peer, const char **why);
/** peer_alive - 1 if the peer process (its pidfd) still exists. */
int peer_alive(const struct vimgd_peer *peer);
void peer_release(struct vimgd_peer *peer);

/* ops.c: each returns 0 or -errno, with a text for the client in @text */
struct op_result {
    char text[VB_MAX_TEXT + 1];
    int fd;
    pid_t server; /* NBD: the server started for this request, else 0 */
};
int op_open(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
            const struct vb_request *req, struct op_result *res);
int op_nbd(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
           const struct vb_request *req, struct op_result *res);
int op_memlock(const struct policy *pol, const struct decision *d,
               const struct vimgd_peer *peer, const struct vb_request *req,
               struct op_result *res);
int op_sched(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
             const struct vb_request *req, struct op_result *res);
int op_cgroup(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
              const struct vb_request *req, struct op_result *res);

/* plugin.c */
/** plugins_load - load and init every plugin of @pol; -errno + message on the first failure. */
int plugins_load(struct policy *pol, char *err, size_t errlen);
void plugins_unload(struct policy *pol);
/** plugin_find - the plugin and op for "NAME.OP", or NULL. */
const struct plugin *plugin_find(const struct policy *pol, const char *name, const char **op);
int op_plugin(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
              const struct vb_request *req, struct op_result *res);

/* audit.c */
int audit_open(const char *dest);
/** audit_log - one line per decision or protocol event. */
void audit_log(const struct vimgd_peer *peer, const char *event, const char *op,
               const char *object, const char *rule, int status, const char *text);
/** vimgd_errf - format a one-line message into @err; returns -EINVAL. */
int vimgd_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** vimgd_log - a plain log line (stderr). */
void vimgd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* VIMG_BROKER_VIMGD_H */
