// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vimgd: the vimg privilege broker.  An unprivileged VM launcher asks it,
 * over a SOCK_SEQPACKET unix socket, for a few privileged things (open an
 * image under an allowed root, an NBD socket onto a decrypted image whose
 * key it never sees, more locked memory, real-time scheduling of its own
 * threads, a move into a cgroup, plugin operations).  Who asks is taken
 * from the kernel only (peer.c); what is allowed from a root-owned config
 * (policy.c); every decision is audited (audit.c).
 *
 * Process model: the main process accepts; each connection gets its own
 * forked worker, so a slow, stuck or crashing client (or plugin) affects
 * only its own connection.  Plugins are loaded before the first accept and
 * never afterwards.  Socket activation (LISTEN_FDS=1) is supported.
 */
#include "vimgd.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include "config.h"

#define DEFAULT_CONFIG "/etc/vimgd/vimgd.conf"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t nworkers;

static void
on_term(int sig)
{
    stop_requested = 1;
}

static void
on_child(int sig)
{
    int saved = errno;

    while (waitpid(-1, NULL, WNOHANG) > 0) {
        nworkers--;
    }
    errno = saved;
}

static int
reply(int conn, unsigned op, int status, const char *text, int fd)
{
    uint8_t buf[VB_MAX_MSG];
    size_t len = text ? strnlen(text, VB_MAX_TEXT) : 0;
    int n = vb_encode(buf, op, fd >= 0 ? VB_FLAG_FD : 0, status, text, len);

    return n < 0 ? n : vb_send(conn, buf, (size_t)n, fd);
}

static const char *
object_of(const struct vb_request *req, char *buf, size_t len)
{
    switch (req->op) {
    case VB_OP_OPEN:
    case VB_OP_NBD:
        snprintf(buf, len, "%s%s", req->name, (req->flags & VB_OPEN_RW) ? " (rw)" : " (ro)");
        break;
    case VB_OP_MEMLOCK:
        snprintf(buf, len, "%llu", (unsigned long long)req->bytes);
        break;
    case VB_OP_SCHED:
        snprintf(buf, len, "policy=%u prio=%u threads=%u first=%d", req->policy, req->priority,
                 req->ntids, req->tids[0]);
        break;
    default:
        snprintf(buf, len, "%s", req->name);
    }
    return buf;
}

/*
 * NBD servers started for this connection.  Each exits when its NBD client
 * disconnects; one whose client never negotiates (qemu-nbd then waits
 * forever) is stopped when the requester's broker connection ends, so a
 * requester cannot pile up servers.  Held as pidfds: never a recycled pid.
 */
#define MAX_SERVERS 8
static int servers[MAX_SERVERS];
static int nservers;

static void
stop_servers(void)
{
    int i;

    for (i = 0; i < nservers; i++) {
        syscall(SYS_pidfd_send_signal, servers[i], SIGTERM, NULL, 0);
        close(servers[i]);
    }
    nservers = 0;
}

/*
 * A worker keeps only the capabilities the built-in operations need, in its
 * effective/permitted sets and in the bounding set (which also limits the
 * NBD servers it execs as root): reading root-only images and secrets
 * (DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER), memlock (SYS_RESOURCE), sched
 * (SYS_NICE), stopping its servers (KILL).  No new privileges via exec.
 * Best effort: where vimgd runs with fewer capabilities nothing changes.
 */
static void
restrict_worker(void)
{
    const uint64_t keep = (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_DAC_READ_SEARCH) |
                          (1ull << CAP_FOWNER) | (1ull << CAP_KILL) | (1ull << CAP_SYS_NICE) |
                          (1ull << CAP_SYS_RESOURCE);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];
    int cap;

    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    for (cap = 0; cap < 64; cap++) {
        if (!(keep & (1ull << cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) {
            (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    if (syscall(SYS_capget, &hdr, data) == 0) {
        data[0].effective &= (uint32_t)keep;
        data[0].permitted &= (uint32_t)keep;
        data[0].inheritable = 0;
        data[1].effective &= (uint32_t)(keep >> 32);
        data[1].permitted &= (uint32_t)(keep >> 32);
        data[1].inheritable = 0;
        (void)syscall(SYS_capset, &hdr, data);
    }
}

/* Serve one connection until EOF, timeout or violation. */
static void
worker(const struct policy *pol, int conn)
{
    struct timeval tv = {.tv_sec = pol->idle_timeout};
    struct vimgd_peer peer;
    const char *why = NULL;
    uint8_t buf[VB_MAX_MSG];
    bool hello = false;
    int idrc;

    restrict_worker();
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    idrc = peer_identify(conn, pol->peer_pidfd, &peer, &why);
    if (idrc < 0) {
        audit_log(&peer, "refused", NULL, NULL, NULL, idrc, why);
    }
    for (;;) {
        struct vb_msg m;
        struct vb_request req;
        struct decision d;
        struct op_result res = {.fd = -1};
        char obj[VB_MAX_NAME + 64];
        const char *op;
        int fd, rc;
        ssize_t n = vb_recv(conn, buf, 0, &fd);

        if (n == 0) {
            break;
        }
        if (n < 0) {
            audit_log(&peer, "violation", NULL, NULL, NULL, (int)n,
                      n == -EBADMSG    ? "truncated datagram or ancillary data (FDs) from client"
                      : n == -EAGAIN   ? "idle timeout"
                                       : strerror((int)-n));
            break;
        }
        rc = vb_decode(buf, (size_t)n, &m);
        if (rc < 0) {
            if (rc == -EPROTO && !hello) {
                /* tell a newer/older client which version we speak */
                reply(conn, VB_OP_HELLO, -EPROTONOSUPPORT, "vimgd speaks protocol version 1",
                      -1);
            }
            audit_log(&peer, "violation", NULL, NULL, NULL, rc,
                      rc == -EPROTO ? "protocol version mismatch" : "malformed header");
            break;
        }
        rc = vb_parse_request(&m, &req, &why);
        if (rc < 0) {
            audit_log(&peer, "violation", vb_op_name(m.op), NULL, NULL, rc, why);
            break;
        }
        if (!hello) {
            if (req.op != VB_OP_HELLO) {
                audit_log(&peer, "violation", vb_op_name(req.op), NULL, NULL, -EPROTO,
                          "request before HELLO");
                break;
            }
            if (idrc < 0) {
                reply(conn, VB_OP_HELLO, idrc, why, -1);
                break;
            }
            hello = true;
            reply(conn, VB_OP_HELLO, 0, "vimgd " VIMG_VERSION " protocol 1", -1);
            continue;
        }
        if (req.op == VB_OP_HELLO) {
            audit_log(&peer, "violation", "hello", NULL, NULL, -EPROTO, "second HELLO");
            break;
        }
        op = req.op == VB_OP_PLUGIN ? req.name : vb_op_name(req.op);
        object_of(&req, obj, sizeof(obj));
        policy_decide(pol, &peer, &req, &d, NULL);
        if (!d.allow) {
            audit_log(&peer, "deny", op, obj, d.rule ? d.rule->name : NULL, -EPERM, d.reason);
            rc = reply(conn, req.op, -EPERM, d.reason, -1);
        } else {
            switch (req.op) {
            case VB_OP_OPEN:
                rc = op_open(pol, &d, &peer, &req, &res);
                break;
            case VB_OP_NBD: {
                int i, k = 0;
                for (i = 0; i < nservers; i++) {
                    if (syscall(SYS_pidfd_send_signal, servers[i], 0, NULL, 0) == 0) {
                        servers[k++] = servers[i];
                    } else {
                        close(servers[i]);
                    }
                }
                nservers = k;
                if (nservers >= MAX_SERVERS) {
                    rc = -EBUSY;
                    snprintf(res.text, sizeof(res.text),
                             "%d NBD servers already run for this connection", nservers);
                    break;
                }
                rc = op_nbd(pol, &d, &peer, &req, &res);
                break;
            }
            case VB_OP_MEMLOCK:
                rc = op_memlock(pol, &d, &peer, &req, &res);
                break;
            case VB_OP_SCHED:
                rc = op_sched(pol, &d, &peer, &req, &res);
                break;
            case VB_OP_CGROUP:
                rc = op_cgroup(pol, &d, &peer, &req, &res);
                break;
            default:
                rc = op_plugin(pol, &d, &peer, &req, &res);
                break;
            }
            if (res.server > 0) {
                int pfd = (int)syscall(SYS_pidfd_open, res.server, 0);
                if (pfd >= 0 && nservers < MAX_SERVERS) {
                    servers[nservers++] = pfd;
                } else if (pfd >= 0) {
                    close(pfd);
                }
            }
            audit_log(&peer, rc == 0 ? "allow" : "allow-failed", op, obj, d.rule->name, rc,
                      res.text);
            rc = reply(conn, req.op, rc, res.text, rc == 0 ? res.fd : -1);
            if (res.fd >= 0) {
                close(res.fd);
            }
        }
        if (rc < 0) {
            break;
        }
    }
    stop_servers();
    peer_release(&peer);
}

static int
listen_socket(const struct policy *pol, bool *created)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *lfds = getenv("LISTEN_FDS"), *lpid = getenv("LISTEN_PID");
    struct stat st;
    int fd, type;
    socklen_t len = sizeof(type);

    *created = false;
    if (lfds && lpid && atoi(lpid) == (int)getpid()) {
        if (atoi(lfds) != 1) {
            vimgd_log("expected exactly one socket from the service manager, got %s", lfds);
            return -1;
        }
        if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
            vimgd_log("the activation socket is not a SOCK_SEQPACKET socket");
            return -1;
        }
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
        return 3;
    }
    if (strlen(pol->socket_path) >= sizeof(sa.sun_path)) {
        vimgd_log("socket path too long: %s", pol->socket_path);
        return -1;
    }
    strcpy(sa.sun_path, pol->socket_path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vimgd_log("socket: %s", strerror(errno));
        return -1;
    }
    if (lstat(pol->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(pol->socket_path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        vimgd_log("bind %s: %s", pol->socket_path, strerror(errno));
        close(fd);
        return -1;
    }
    *created = true;
    if (chmod(pol->socket_path, pol->socket_mode) < 0 ||
        (pol->has_socket_group && chown(pol->socket_path, 0, pol->socket_group) < 0) ||
        listen(fd, 64) < 0) {
        vimgd_log("socket %s: %s", pol->socket_path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: vimgd [--config FILE] [--socket PATH]\n"
            "       vimgd [--config FILE] --check-config\n"
            "       vimgd [--config FILE] --explain [--uid U] [--gid G] [--groups G1,G2]\n"
            "             [--cgroup PATH] [--exe PATH] OP [ARGS]\n"
            "The vimg privilege broker (see vimgd(8)).\n"
            "\n"
            "  --config FILE    policy file (default " DEFAULT_CONFIG ")\n"
            "  --socket PATH    listen on PATH instead of the config's socket\n"
            "  --check-config   load and check the config and plugins, print the\n"
            "                   effective rules, exit 0 if usable, else 1\n"
            "  --explain        show, rule by rule, how a request by the given\n"
            "                   identity would be decided; exit 0 if allowed, 1 if not.\n"
            "                   OP: open NAME [rw] | nbd NAME [rw] | memlock BYTES |\n"
            "                   sched POLICY PRIO | cgroup TARGET | PLUGIN.OP\n"
            "  -h, --help       this help\n"
            "  -V, --version    version\n");
}

static int
lookup_id(const char *s, bool group, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s && !*end) {
        *out = (uint32_t)v;
        return 0;
    }
    if (group) {
        struct group *g = getgrnam(s);
        if (g) {
            *out = g->gr_gid;
            return 0;
        }
    } else {
        struct passwd *p = getpwnam(s);
        if (p) {
            *out = p->pw_uid;
            return 0;
        }
    }
    fprintf(stderr, "vimgd: unknown %s '%s'\n", group ? "group" : "user", s);
    return -1;
}

static int
parse_sched_policy(const char *s)
{
    static const char *const names[] = {"other", "fifo", "rr", "batch", "", "idle"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i][0] && strcmp(names[i], s) == 0) {
            return (int)i;
        }
    }
    return atoi(s);
}

/* --explain: a synthetic peer and request through the same policy_decide(). */
static int
explain(const struct policy *pol, struct vimgd_peer *peer, int argc, char **argv)
{
    struct vb_request req;
    struct decision d;
    unsigned op;

    memset(&req, 0, sizeof(req));
    if (argc < 1) {
        fprintf(stderr, "vimgd: --explain needs an operation\n");
        return 1;
    }
    op = vb_op_from_name(argv[0]);
    if (op == 0 && strchr(argv[0], '.')) {
        op = VB_OP_PLUGIN;
        snprintf(req.name, sizeof(req.name), "%s", argv[0]);
    } else if (op == 0 || op == VB_OP_HELLO || op == VB_OP_PLUGIN) {
        fprintf(stderr, "vimgd: unknown operation '%s'\n", argv[0]);
        return 1;
    } else if (op == VB_OP_MEMLOCK) {
        if (argc < 2) {
            fprintf(stderr, "vimgd: memlock needs BYTES\n");
            return 1;
        }
        req.bytes = strtoull(argv[1], NULL, 0);
    } else if (op == VB_OP_SCHED) {
        if (argc < 3) {
            fprintf(stderr, "vimgd: sched needs POLICY PRIO\n");
            return 1;
        }
        req.policy = (uint32_t)parse_sched_policy(argv[1]);
        req.priority = (uint32_t)atoi(argv[2]);
        req.ntids = 1;
        req.tids[0] = 1;
    } else {
        if (argc < 2) {
            fprintf(stderr, "vimgd: %s needs a name\n", argv[0]);
            return 1;
        }
        snprintf(req.name, sizeof(req.name), "%s", argv[1]);
        if (argc > 2 && strcmp(argv[2], "rw") == 0) {
            req.flags = VB_OPEN_RW;
        }
    }
    req.op = op;
    printf("request: %s by uid %u gid %u cgroup '%s' exe '%s'\n", argv[0], (unsigned)peer->uid,
           (unsigned)peer->gid, peer->cgroup, peer->exe);
    policy_decide(pol, peer, &req, &d, stdout);
    if (d.allow) {
        printf("ALLOW: %s\n", d.reason);
        return 0;
    }
    printf("DENY: %s\n", d.reason);
    return 1;
}

int
main(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG, *socket_override = NULL;
    bool check = false, do_explain = false, created;
    struct vimgd_peer xpeer;
    struct policy pol;
    struct sigaction sa;
    char err[1024];
    int i, lfd, rc;

    memset(&xpeer, 0, sizeof(xpeer));
    xpeer.pidfd = -1;
    xpeer.pid = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("vimgd %s (protocol %d, plugin ABI %d)\n", VIMG_VERSION, VB_VERSION,
                   VIMGD_PLUGIN_ABI_VERSION);
            return 0;
        } else if (!strcmp(a, "--config") && more) {
            config = argv[++i];
        } else if (!strcmp(a, "--socket") && more) {
            socket_override = argv[++i];
        } else if (!strcmp(a, "--check-config")) {
            check = true;
        } else if (!strcmp(a, "--explain")) {
            do_explain = true;
        } else if (do_explain && !strcmp(a, "--uid") && more) {
            if (lookup_id(argv[++i], false, &xpeer.uid) < 0) {
                return 1;
            }
        } else if (do_explain && !strcmp(a, "--gid") && more) {
            if (lookup_id(argv[++i], true, &xpeer.gid) < 0) {
                return 1;
            }
        } else if (do_explain && !strcmp(a, "--groups") && more) {
            char *list = strdup(argv[++i]), *save = NULL, *t;
            for (t = strtok_r(list, ",", &save); t && xpeer.ngroups < 64;
                 t = strtok_r(NULL, ",", &save)) {
                if (lookup_id(t, true, &xpeer.groups[xpeer.ngroups++]) < 0) {
                    free(list);
                    return 1;
                }
            }
            free(list);
        } else if (do_explain && !strcmp(a, "--cgroup") && more) {
            snprintf(xpeer.cgroup, sizeof(xpeer.cgroup), "%s", argv[++i]);
        } else if (do_explain && !strcmp(a, "--exe") && more) {
            struct stat st;
            snprintf(xpeer.exe, sizeof(xpeer.exe), "%s", argv[++i]);
            if (stat(xpeer.exe, &st) == 0) {
                xpeer.exe_dev = st.st_dev;
                xpeer.exe_ino = st.st_ino;
            }
        } else if (do_explain && a[0] != '-') {
            break;
        } else {
            fprintf(stderr, "vimgd: unrecognized option '%s'\nTry 'vimgd --help'.\n", a);
            return 1;
        }
    }
    if (check || do_explain) {
        /* read-only checks need no socket and no privileged effects */
        rc = policy_load(config, check, &pol, err, sizeof(err));
    } else {
        rc = policy_load(config, true, &pol, err, sizeof(err));
    }
    if (rc < 0) {
        fprintf(stderr, "vimgd: %s\n", err);
        policy_free(&pol);
        return 1;
    }
    if (check || !do_explain) {
        rc = plugins_load(&pol, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "vimgd: %s\n", err);
            plugins_unload(&pol);
            policy_free(&pol);
            return 1;
        }
    }
    if (check) {
        policy_print(&pol, stdout);
        printf("config OK: %d rule(s), %d plugin(s)\n", pol.nrules, pol.nplugins);
        plugins_unload(&pol);
        policy_free(&pol);
        return 0;
    }
    if (do_explain) {
        rc = explain(&pol, &xpeer, argc - i, argv + i);
        policy_free(&pol);
        return rc;
    }
    if (socket_override) {
        free(pol.socket_path);
        pol.socket_path = strdup(socket_override);
    }
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* secrets pass through workers */
    if (audit_open(pol.audit) < 0) {
        fprintf(stderr, "vimgd: cannot open audit log '%s': %s\n", pol.audit, strerror(errno));
        plugins_unload(&pol);
        policy_free(&pol);
        return 1;
    }
    lfd = listen_socket(&pol, &created);
    if (lfd < 0) {
        plugins_unload(&pol);
        policy_free(&pol);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    vimgd_log("listening on %s (%d rule(s), %d plugin(s))", pol.socket_path, pol.nrules,
              pol.nplugins);
    while (!stop_requested) {
        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        pid_t pid;

        if (conn < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                vimgd_log("accept: %s", strerror(errno));
                sleep(1);
            }
            continue;
        }
        if (nworkers >= pol.max_workers) {
            vimgd_log("max_workers (%d) reached; connection refused", pol.max_workers);
            close(conn);
            continue;
        }
        pid = fork();
        if (pid == 0) {
            close(lfd);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGCHLD, SIG_IGN); /* NBD servers are reaped by the kernel */
            worker(&pol, conn);
            _exit(0);
        }
        if (pid > 0) {
            nworkers++;
        } else {
            vimgd_log("fork: %s", strerror(errno));
        }
        close(conn);
    }
    if (created) {
        unlink(pol.socket_path);
    }
    plugins_unload(&pol);
    policy_free(&pol);
    return 0;
}
