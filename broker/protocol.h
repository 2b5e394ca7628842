/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimgd wire protocol, version 1 (shared by the daemon and the client
 * library; docs/vimgd.8 describes it for other implementations).
 *
 * Transport: a SOCK_SEQPACKET unix socket, one message per datagram, at most
 * VB_MAX_MSG bytes.  Every message is a 20-byte little-endian header
 *
 *   u32 magic ("VMGB")  u16 version  u16 op  u16 flags  u16 reserved (0)
 *   u32 payload_len (== datagram length - 20)  i32 status (0 in requests)
 *
 * followed by an op-specific payload.  Requests never carry file
 * descriptors; a reply carries exactly one (SCM_RIGHTS) when its flags have
 * VB_FLAG_FD and none otherwise.  The first request on a connection must be
 * HELLO with the client's version; the server answers HELLO and from then
 * on one reply per request, in order.  The server closes the connection on
 * any violation (bad magic/version/length, unknown op, a payload that does
 * not parse, an FD or other ancillary data from the client, a truncated
 * datagram).
 *
 * Request payloads (integers little-endian):
 *   HELLO    empty
 *   OPEN     u32 flags (VB_OPEN_RW) + name bytes (1..VB_MAX_NAME, no NUL)
 *   NBD      u32 flags (VB_OPEN_RW) + name bytes
 *   MEMLOCK  u64 bytes
 *   SCHED    u32 policy, u32 priority, u32 ntids (1..VB_MAX_TIDS), ntids x i32 tid
 *   CGROUP   target name bytes
 *   PLUGIN   u16 name_len, name ("plugin.op"), then argument bytes (<= VB_MAX_ARG)
 * Reply payload: text (<= VB_MAX_TEXT bytes, no NUL): the reason for a
 * denial or a short description of what was done; status is 0 or -errno.
 */
#ifndef VIMG_BROKER_PROTOCOL_H
#define VIMG_BROKER_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VB_MAGIC 0x42474d56u /* "VMGB" read as little-endian u32 */
#define VB_VERSION 1
#define VB_HDR_LEN 20
#define VB_MAX_MSG 4096
#define VB_MAX_NAME 1024
#define VB_MAX_TEXT 1024
#define VB_MAX_TIDS 64
#define VB_MAX_ARG 1024

#define VB_FLAG_FD 0x1 /* reply: one FD attached */
#define VB_OPEN_RW 0x1 /* OPEN/NBD request flag: read-write access */

enum vb_op {
    VB_OP_HELLO = 1,
    VB_OP_OPEN = 2,
    VB_OP_NBD = 3,
    VB_OP_MEMLOCK = 4,
    VB_OP_SCHED = 5,
    VB_OP_CGROUP = 6,
    VB_OP_PLUGIN = 7,
    VB_OP_MAX_ = 7
};

struct vb_msg {
    uint16_t version;
    uint16_t op;
    uint16_t flags;
    int32_t status;
    uint32_t len;
    uint8_t payload[VB_MAX_MSG - VB_HDR_LEN];
};

/* A parsed request; strings are NUL-terminated copies. */
struct vb_request {
    enum vb_op op;
    uint32_t flags;             /* OPEN, NBD */
    char name[VB_MAX_NAME + 1]; /* OPEN, NBD, CGROUP, PLUGIN */
    uint64_t bytes;             /* MEMLOCK */
    uint32_t policy, priority;  /* SCHED */
    uint32_t ntids;
    int32_t tids[VB_MAX_TIDS];
    uint8_t arg[VB_MAX_ARG];    /* PLUGIN */
    size_t arg_len;
};

/** vb_op_name - "open", "nbd", ... for an op code ("?" if unknown). */
const char *vb_op_name(unsigned op);
/** vb_op_from_name - inverse of vb_op_name; 0 if unknown. */
unsigned vb_op_from_name(const char *name);

/**
 * vb_decode - check the header of a received datagram and fill @m.
 * Return: 0, or -EBADMSG (bad magic, reserved bits, length), -EPROTO (wrong
 * version), -EOPNOTSUPP (unknown op).
 */
int vb_decode(const uint8_t *buf, size_t n, struct vb_msg *m);
/**
 * vb_parse_request - parse the payload of a decoded request message.
 * Return: 0 or -EBADMSG with *why naming the problem.
 */
int vb_parse_request(const struct vb_msg *m, struct vb_request *r, const char **why);
/** vb_encode - header + payload into @buf (VB_MAX_MSG bytes); returns the length or -EMSGSIZE. */
int vb_encode(uint8_t *buf, unsigned op, unsigned flags, int32_t status, const void *payload,
              size_t len);
/** vb_encode_request - serialize @r (its op) into @buf; returns the length or -errno. */
int vb_encode_request(uint8_t *buf, const struct vb_request *r);

/**
 * vb_send - send one message, with @fd attached when >= 0.
 * Return: 0 or -errno.
 */
int vb_send(int sock, const uint8_t *buf, size_t len, int fd);
/**
 * vb_recv - receive one datagram into @buf (VB_MAX_MSG bytes).  Received FDs
 * are close-on-exec; at most @max_fds are accepted (the first goes to *fd,
 * -1 if none).  Return: the length, 0 on orderly close, -EBADMSG for a
 * truncated datagram or ancillary data (too many FDs, other types: all FDs
 * received are closed), other -errno.
 */
ssize_t vb_recv(int sock, uint8_t *buf, int max_fds, int *fd);

#endif /* VIMG_BROKER_PROTOCOL_H */
