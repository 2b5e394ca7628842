/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimgd-client.h - ask the vimgd privilege broker for privileged operations.
 *
 * Link with -lvimgd-client (pkg-config vimgd-client).  The library is small
 * and has no dependencies beyond libc: a VM launcher that only needs the
 * broker does not pull in libvimg's crypto stack.  It never loads plugins
 * and never falls back to doing anything itself: a refusal is returned to
 * the caller, with the broker's reason in vimgd_client_reason().
 *
 * All functions return 0 or a negative errno (-EPERM: denied by policy;
 * -ESRCH: the broker saw the requester exit; -EPROTO: protocol failure).
 * A connection is one requester identity (the process that connected) and
 * is not thread-safe; use one per thread or lock around it.  Received FDs
 * are close-on-exec and owned by the caller.
 */
#ifndef VIMGD_CLIENT_H
#define VIMGD_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIMGD_DEFAULT_SOCKET "/run/vimgd.sock"
#define VIMGD_OPEN_RW 0x1 /* read-write instead of read-only */

struct vimgd_client;

/** Connect (NULL = $VIMGD_SOCKET or VIMGD_DEFAULT_SOCKET) and do the version handshake. */
int vimgd_client_connect(const char *socket_path, struct vimgd_client **out);
/** Close the connection (NULL is a no-op). */
void vimgd_client_close(struct vimgd_client *c);
/** The broker's text for the last reply (reason of a denial), or "". */
const char *vimgd_client_reason(const struct vimgd_client *c);

/** Open image @name beneath the root the policy grants; *fd_out is the FD. */
int vimgd_client_open(struct vimgd_client *c, const char *name, unsigned flags, int *fd_out);
/** A connected NBD socket serving the decrypted view of encrypted image @name. */
int vimgd_client_nbd(struct vimgd_client *c, const char *name, unsigned flags, int *sock_out);
/** Raise the caller's RLIMIT_MEMLOCK (soft and hard) to at least @bytes. */
int vimgd_client_memlock(struct vimgd_client *c, uint64_t bytes);
/**
 * Set scheduling @policy (SCHED_*) and @priority on the caller's own threads
 * @tids (@ntids <= 64; NULL/0 = the calling thread).  SCHED_RESET_ON_FORK
 * is always added.
 */
int vimgd_client_sched(struct vimgd_client *c, int policy, int priority, const pid_t *tids,
                       size_t ntids);
/** Move the calling process into the cgroup the policy names @target. */
int vimgd_client_cgroup(struct vimgd_client *c, const char *target);
/**
 * Plugin operation "NAME.OP" with @arg bytes; the reply text goes to
 * vimgd_client_reason(), an FD (if the plugin sends one) to *fd_out (may be
 * NULL: then it is closed).
 */
int vimgd_client_plugin(struct vimgd_client *c, const char *op, const void *arg, size_t arg_len,
                        int *fd_out);

#ifdef __cplusplus
}
#endif

#endif /* VIMGD_CLIENT_H */
