// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vimgd policy: the root-owned config file and the decision function.
 *
 * The file is INI-like: [daemon], [rule NAME], [cgroup NAME] and
 * [plugin NAME] sections of "key = value" lines; lines starting with '#' or
 * ';' are comments.  Rules are an ordered access list: for a request, the
 * first rule whose match.* keys all hold for the peer and that either denies
 * the op or allows it within its limits decides.  No such rule: deny.
 * policy_decide() is pure (no I/O) so that --explain and the unit tests see
 * exactly what the daemon decides.  docs/vimgd.8 documents every key.
 */
#include "vimgd.h"

/* Reasons and messages are bounded on purpose; long names are cut. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALL_SCHED ((1u << SCHED_OTHER) | (1u << SCHED_BATCH) | (1u << SCHED_IDLE))

static const struct {
    const char *name;
    int policy;
} sched_names[] = {
    {"other", SCHED_OTHER}, {"batch", SCHED_BATCH}, {"idle", SCHED_IDLE},
    {"fifo", SCHED_FIFO},   {"rr", SCHED_RR},
};

int
vimgd_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static char *
trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    return s;
}

/* Split a comma-separated list in place; calls @fn for each item. */
static int
for_each_item(char *list, int (*fn)(void *ctx, const char *item), void *ctx)
{
    char *save = NULL, *tok;
    int r;

    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (*tok == '\0') {
            continue;
        }
        r = fn(ctx, tok);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (!isdigit((unsigned char)*s)) {
        return -EINVAL;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno) {
        return -EINVAL;
    }
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default:
        return -EINVAL;
    }
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift))) {
        return -EINVAL;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

struct id_ctx {
    struct id_range *ranges;
    int *n;
    bool group;
    char *err;
    size_t errlen;
};

static int
add_id(void *vctx, const char *item)
{
    struct id_ctx *c = vctx;
    struct id_range r;
    const char *dash = strchr(item, '-');
    uint64_t lo, hi;

    if (*c->n >= POLICY_MAX_IDS) {
        return vimgd_errf(c->err, c->errlen, "more than %d ids", POLICY_MAX_IDS);
    }
    if (isdigit((unsigned char)item[0])) {
        char buf[64];

        if (dash) {
            snprintf(buf, sizeof(buf), "%.*s", (int)(dash - item), item);
            if (parse_u64(buf, &lo) < 0 || parse_u64(dash + 1, &hi) < 0 || lo > hi ||
                hi > UINT32_MAX - 1) {
                return vimgd_errf(c->err, c->errlen, "bad id range '%s'", item);
            }
        } else if (parse_u64(item, &lo) < 0 || lo > UINT32_MAX - 1) {
            return vimgd_errf(c->err, c->errlen, "bad id '%s'", item);
        } else {
            hi = lo;
        }
        r.lo = (uint32_t)lo;
        r.hi = (uint32_t)hi;
    } else if (strcmp(item, "*") == 0) {
        r.lo = 0;
        r.hi = UINT32_MAX - 1;
    } else if (c->group) {
        struct group *g = getgrnam(item);

        if (!g) {
            return vimgd_errf(c->err, c->errlen, "unknown group '%s'", item);
        }
        r.lo = r.hi = g->gr_gid;
    } else {
        struct passwd *p = getpwnam(item);

        if (!p) {
            return vimgd_errf(c->err, c->errlen, "unknown user '%s'", item);
        }
        r.lo = r.hi = p->pw_uid;
    }
    c->ranges[(*c->n)++] = r;
    return 0;
}

struct names_ctx {
    struct rule *rule;
    bool deny;
    char *err;
    size_t errlen;
};

static int
add_op(void *vctx, const char *item)
{
    struct names_ctx *c = vctx;
    unsigned op = vb_op_from_name(item);

    if (op && op != VB_OP_HELLO && op != VB_OP_PLUGIN) {
        if (c->deny) {
            c->rule->deny |= 1u << op;
        } else {
            c->rule->allow |= 1u << op;
        }
        return 0;
    }
    if (strchr(item, '.') && item[0] != '.' && item[strlen(item) - 1] != '.') {
        char **list = c->deny ? c->rule->deny_plugin : c->rule->allow_plugin;
        int *n = c->deny ? &c->rule->ndeny_plugin : &c->rule->nallow_plugin;

        if (*n >= POLICY_MAX_NAMES) {
            return vimgd_errf(c->err, c->errlen, "too many plugin operations");
        }
        list[(*n)++] = strdup(item);
        return 0;
    }
    return vimgd_errf(c->err, c->errlen,
                "unknown operation '%s' (open, nbd, memlock, sched, cgroup or PLUGIN.OP)", item);
}

static int
add_sched(void *vctx, const char *item)
{
    struct names_ctx *c = vctx;
    size_t i;

    for (i = 0; i < sizeof(sched_names) / sizeof(sched_names[0]); i++) {
        if (strcmp(sched_names[i].name, item) == 0) {
            c->rule->sched_policies |= 1u << sched_names[i].policy;
            return 0;
        }
    }
    return vimgd_errf(c->err, c->errlen, "unknown scheduling policy '%s' (other, batch, idle, fifo, rr)",
                item);
}

static int
add_target(void *vctx, const char *item)
{
    struct names_ctx *c = vctx;

    if (c->rule->ncgroup_targets >= POLICY_MAX_NAMES) {
        return vimgd_errf(c->err, c->errlen, "too many cgroup targets");
    }
    c->rule->cgroup_targets[c->rule->ncgroup_targets++] = strdup(item);
    return 0;
}

static int
add_glob(void *vctx, const char *item)
{
    struct names_ctx *c = vctx;

    if (c->rule->ncgroups >= POLICY_MAX_GLOBS) {
        return vimgd_errf(c->err, c->errlen, "too many cgroup patterns");
    }
    c->rule->cgroups[c->rule->ncgroups++] = strdup(item);
    return 0;
}

static int
parse_access(const char *v, bool *rw)
{
    if (strcmp(v, "ro") == 0) {
        *rw = false;
    } else if (strcmp(v, "rw") == 0) {
        *rw = true;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int
rule_key(struct rule *r, const char *key, char *val, char *err, size_t errlen)
{
    struct names_ctx nc = {r, false, err, errlen};

    if (strcmp(key, "match.uid") == 0) {
        struct id_ctx c = {r->uids, &r->nuids, false, err, errlen};
        return for_each_item(val, add_id, &c);
    } else if (strcmp(key, "match.gid") == 0) {
        struct id_ctx c = {r->gids, &r->ngids, true, err, errlen};
        return for_each_item(val, add_id, &c);
    } else if (strcmp(key, "match.cgroup") == 0) {
        return for_each_item(val, add_glob, &nc);
    } else if (strcmp(key, "match.exe") == 0) {
        if (val[0] != '/') {
            return vimgd_errf(err, errlen, "match.exe must be an absolute path");
        }
        r->has_exe = true;
        r->exe = strdup(val);
        return 0;
    } else if (strcmp(key, "allow") == 0) {
        return for_each_item(val, add_op, &nc);
    } else if (strcmp(key, "deny") == 0) {
        nc.deny = true;
        return for_each_item(val, add_op, &nc);
    } else if (strcmp(key, "open.root") == 0 || strcmp(key, "nbd.root") == 0) {
        struct root_dir *d = key[0] == 'o' ? &r->open_root : &r->nbd_root;
        if (val[0] != '/') {
            return vimgd_errf(err, errlen, "%s must be an absolute path", key);
        }
        free(d->path);
        d->path = strdup(val);
        return 0;
    } else if (strcmp(key, "open.access") == 0) {
        return parse_access(val, &r->open_rw) < 0 ? vimgd_errf(err, errlen, "open.access: ro or rw")
                                                   : 0;
    } else if (strcmp(key, "nbd.access") == 0) {
        return parse_access(val, &r->nbd_rw) < 0 ? vimgd_errf(err, errlen, "nbd.access: ro or rw")
                                                  : 0;
    } else if (strcmp(key, "nbd.secret") == 0) {
        if (val[0] != '/') {
            return vimgd_errf(err, errlen, "nbd.secret must be an absolute path");
        }
        free(r->nbd_secret);
        r->nbd_secret = strdup(val);
        return 0;
    } else if (strcmp(key, "nbd.format") == 0) {
        if (strcmp(val, "luks") && strcmp(val, "qcow2") && strcmp(val, "raw")) {
            return vimgd_errf(err, errlen, "nbd.format: luks, qcow2 or raw");
        }
        free(r->nbd_format);
        r->nbd_format = strdup(val);
        return 0;
    } else if (strcmp(key, "memlock.max") == 0) {
        if (strcmp(val, "unlimited") == 0) {
            r->memlock_max = UINT64_MAX;
        } else if (parse_u64(val, &r->memlock_max) < 0) {
            return vimgd_errf(err, errlen, "memlock.max: a size such as 64M or 'unlimited'");
        }
        r->has_memlock_max = true;
        return 0;
    } else if (strcmp(key, "sched.max_rtprio") == 0) {
        uint64_t v;
        if (parse_u64(val, &v) < 0 || v > 99) {
            return vimgd_errf(err, errlen, "sched.max_rtprio: 0..99");
        }
        r->sched_max_rtprio = (int)v;
        return 0;
    } else if (strcmp(key, "sched.policies") == 0) {
        r->sched_policies = 0;
        return for_each_item(val, add_sched, &nc);
    } else if (strcmp(key, "cgroup.targets") == 0) {
        return for_each_item(val, add_target, &nc);
    }
    return vimgd_errf(err, errlen, "unknown key '%s' in [rule %s]", key, r->name);
}

static int
daemon_key(struct policy *p, const char *key, const char *val, char *err, size_t errlen)
{
    uint64_t v;
    char *end;

    if (strcmp(key, "socket") == 0) {
        if (val[0] != '/') {
            return vimgd_errf(err, errlen, "socket must be an absolute path (no abstract sockets)");
        }
        free(p->socket_path);
        p->socket_path = strdup(val);
    } else if (strcmp(key, "socket_mode") == 0) {
        unsigned long m = strtoul(val, &end, 8);
        if (*end || m > 0777) {
            return vimgd_errf(err, errlen, "socket_mode: octal mode such as 0660");
        }
        p->socket_mode = (unsigned)m;
    } else if (strcmp(key, "socket_group") == 0) {
        struct group *g = getgrnam(val);
        if (!g) {
            return vimgd_errf(err, errlen, "unknown group '%s'", val);
        }
        p->has_socket_group = true;
        p->socket_group = g->gr_gid;
    } else if (strcmp(key, "audit") == 0) {
        free(p->audit);
        p->audit = strdup(val);
    } else if (strcmp(key, "peer_pidfd") == 0) {
        if (strcmp(val, "require") == 0) {
            p->peer_pidfd = PEER_PIDFD_REQUIRE;
        } else if (strcmp(val, "fallback") == 0) {
            p->peer_pidfd = PEER_PIDFD_FALLBACK;
        } else if (strcmp(val, "pidfd_open") == 0) {
            p->peer_pidfd = PEER_PIDFD_OPEN;
        } else {
            return vimgd_errf(err, errlen, "peer_pidfd: require, fallback or pidfd_open");
        }
    } else if (strcmp(key, "max_workers") == 0) {
        if (parse_u64(val, &v) < 0 || v < 1 || v > 4096) {
            return vimgd_errf(err, errlen, "max_workers: 1..4096");
        }
        p->max_workers = (int)v;
    } else if (strcmp(key, "idle_timeout") == 0) {
        if (parse_u64(val, &v) < 0 || v < 1 || v > 86400) {
            return vimgd_errf(err, errlen, "idle_timeout: 1..86400 seconds");
        }
        p->idle_timeout = (int)v;
    } else if (strcmp(key, "nbd_server") == 0) {
        if (strcmp(val, "vimg") && strcmp(val, "qemu-nbd")) {
            return vimgd_errf(err, errlen, "nbd_server: vimg or qemu-nbd");
        }
        free(p->nbd_server);
        p->nbd_server = strdup(val);
    } else if (strcmp(key, "nbd_server_path") == 0) {
        if (val[0] != '/') {
            return vimgd_errf(err, errlen, "nbd_server_path must be an absolute path");
        }
        free(p->nbd_server_path);
        p->nbd_server_path = strdup(val);
    } else {
        return vimgd_errf(err, errlen, "unknown key '%s' in [daemon]", key);
    }
    return 0;
}

/* The file must be root's and not writable by anyone else. */
static int
check_owner(int fd, const char *what, const char *path, bool secret, char *err, size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return vimgd_errf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return vimgd_errf(err, errlen, "%s '%s' is not a regular file", what, path);
    }
    if (st.st_uid != 0) {
        return vimgd_errf(err, errlen, "%s '%s' must be owned by root (owner uid %u)", what, path,
                    (unsigned)st.st_uid);
    }
    if (st.st_mode & (secret ? 077 : 022)) {
        return vimgd_errf(err, errlen, "%s '%s' has mode %04o; it must not be %s by group or others",
                    what, path, (unsigned)(st.st_mode & 07777),
                    secret ? "accessible" : "writable");
    }
    return 0;
}

static int
open_dir(struct root_dir *d, const char *key, const char *rule, char *err, size_t errlen)
{
    if (!d->path) {
        return 0;
    }
    d->fd = open(d->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0) {
        return vimgd_errf(err, errlen, "[rule %s] %s '%s': %s", rule, key, d->path, strerror(errno));
    }
    return 0;
}

/* Cross-checks once the whole file is read. */
static int
finish(struct policy *p, bool open_roots, char *err, size_t errlen)
{
    int i, j, k;

    for (i = 0; i < p->nrules; i++) {
        struct rule *r = &p->rules[i];
        unsigned both = r->allow | r->deny;

        if ((r->allow & (1u << VB_OP_OPEN)) && !r->open_root.path) {
            return vimgd_errf(err, errlen, "[rule %s] allows open but has no open.root", r->name);
        }
        if ((r->allow & (1u << VB_OP_NBD)) && (!r->nbd_root.path)) {
            return vimgd_errf(err, errlen, "[rule %s] allows nbd but has no nbd.root", r->name);
        }
        if ((r->allow & (1u << VB_OP_NBD)) && !r->nbd_secret &&
            (!r->nbd_format || strcmp(r->nbd_format, "raw") != 0)) {
            return vimgd_errf(err, errlen, "[rule %s] allows nbd of encrypted images but has no "
                        "nbd.secret", r->name);
        }
        if ((r->allow & (1u << VB_OP_MEMLOCK)) && !r->has_memlock_max) {
            return vimgd_errf(err, errlen, "[rule %s] allows memlock but has no memlock.max", r->name);
        }
        if ((r->allow & (1u << VB_OP_CGROUP)) && r->ncgroup_targets == 0) {
            return vimgd_errf(err, errlen, "[rule %s] allows cgroup but has no cgroup.targets",
                        r->name);
        }
        (void)both;
        for (j = 0; j < r->ncgroup_targets; j++) {
            for (k = 0; k < p->ncgroups; k++) {
                if (strcmp(p->cgroups[k].name, r->cgroup_targets[j]) == 0) {
                    break;
                }
            }
            if (k == p->ncgroups) {
                return vimgd_errf(err, errlen, "[rule %s] cgroup target '%s' has no [cgroup %s] section",
                            r->name, r->cgroup_targets[j], r->cgroup_targets[j]);
            }
        }
        for (j = 0; j < r->nallow_plugin; j++) {
            const char *op;
            if (!plugin_find(p, r->allow_plugin[j], &op)) {
                return vimgd_errf(err, errlen, "[rule %s] allows '%s' but no [plugin] section names it",
                            r->name, r->allow_plugin[j]);
            }
        }
        if (r->has_exe) {
            struct stat st;
            if (stat(r->exe, &st) < 0) {
                return vimgd_errf(err, errlen, "[rule %s] match.exe '%s': %s", r->name, r->exe,
                            strerror(errno));
            }
            r->exe_dev = st.st_dev;
            r->exe_ino = st.st_ino;
        }
        if (!open_roots) {
            continue;
        }
        if (open_dir(&r->open_root, "open.root", r->name, err, errlen) < 0 ||
            open_dir(&r->nbd_root, "nbd.root", r->name, err, errlen) < 0) {
            return -EINVAL;
        }
        if (r->nbd_secret) {
            int fd = open(r->nbd_secret, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            int rc;
            if (fd < 0) {
                return vimgd_errf(err, errlen, "[rule %s] nbd.secret '%s': %s", r->name,
                            r->nbd_secret, strerror(errno));
            }
            rc = check_owner(fd, "nbd.secret", r->nbd_secret, true, err, errlen);
            close(fd);
            if (rc < 0) {
                return rc;
            }
        }
    }
    for (k = 0; k < p->ncgroups; k++) {
        struct cgroup_target *t = &p->cgroups[k];
        if (!t->path) {
            return vimgd_errf(err, errlen, "[cgroup %s] has no path", t->name);
        }
        if (open_roots) {
            t->fd = open(t->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (t->fd < 0 || faccessat(t->fd, "cgroup.procs", F_OK, 0) < 0) {
                return vimgd_errf(err, errlen, "[cgroup %s] path '%s' is not a cgroup directory: %s",
                            t->name, t->path, strerror(errno));
            }
        }
    }
    return 0;
}

int
policy_load(const char *file, bool open_roots, struct policy *p, char *err, size_t errlen)
{
    enum { S_NONE, S_DAEMON, S_RULE, S_CGROUP, S_PLUGIN } sec = S_NONE;
    char line[4096], prefix[4200];
    FILE *f;
    int fd, lineno = 0, rc = 0;

    memset(p, 0, sizeof(*p));
    p->file = strdup(file);
    p->socket_path = strdup("/run/vimgd.sock");
    p->socket_mode = 0666;
    p->audit = strdup("stderr");
    p->peer_pidfd = PEER_PIDFD_REQUIRE;
    p->max_workers = 64;
    p->idle_timeout = 300;
    p->nbd_server = strdup("vimg");

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return vimgd_errf(err, errlen, "cannot open config '%s': %s", file, strerror(errno));
    }
    rc = check_owner(fd, "config file", file, false, err, errlen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq, *key, *val;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = vimgd_errf(err, errlen, "line too long");
            break;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') {
            continue;
        }
        if (*s == '[') {
            char *end = strchr(s, ']'), *sp, *name;
            if (!end || end[1] != '\0') {
                rc = vimgd_errf(err, errlen, "bad section header");
                break;
            }
            *end = '\0';
            s = trim(s + 1);
            sp = strchr(s, ' ');
            name = sp ? trim(sp + 1) : NULL;
            if (sp) {
                *sp = '\0';
            }
            if (strcmp(s, "daemon") == 0 && !name) {
                sec = S_DAEMON;
            } else if (strcmp(s, "rule") == 0 && name && *name) {
                struct rule *r;
                p->rules = realloc(p->rules, sizeof(*p->rules) * (p->nrules + 1));
                r = &p->rules[p->nrules++];
                memset(r, 0, sizeof(*r));
                r->name = strdup(name);
                r->line = lineno;
                r->open_root.fd = r->nbd_root.fd = -1;
                r->sched_policies = ALL_SCHED;
                sec = S_RULE;
            } else if (strcmp(s, "cgroup") == 0 && name && *name) {
                struct cgroup_target *t;
                p->cgroups = realloc(p->cgroups, sizeof(*p->cgroups) * (p->ncgroups + 1));
                t = &p->cgroups[p->ncgroups++];
                memset(t, 0, sizeof(*t));
                t->name = strdup(name);
                t->fd = -1;
                sec = S_CGROUP;
            } else if (strcmp(s, "plugin") == 0 && name && *name) {
                struct plugin *pl;
                p->plugins = realloc(p->plugins, sizeof(*p->plugins) * (p->nplugins + 1));
                pl = &p->plugins[p->nplugins++];
                memset(pl, 0, sizeof(*pl));
                pl->name = strdup(name);
                pl->args = calloc(1, sizeof(char *));
                sec = S_PLUGIN;
            } else {
                rc = vimgd_errf(err, errlen, "unknown section [%s%s%s]", s, name ? " " : "",
                          name ? name : "");
                break;
            }
            continue;
        }
        eq = strchr(s, '=');
        if (!eq) {
            rc = vimgd_errf(err, errlen, "expected 'key = value'");
            break;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        switch (sec) {
        case S_NONE:
            rc = vimgd_errf(err, errlen, "key '%s' outside a section", key);
            break;
        case S_DAEMON:
            rc = daemon_key(p, key, val, err, errlen);
            break;
        case S_RULE:
            rc = rule_key(&p->rules[p->nrules - 1], key, val, err, errlen);
            break;
        case S_CGROUP: {
            struct cgroup_target *t = &p->cgroups[p->ncgroups - 1];
            if (strcmp(key, "path") != 0 || val[0] != '/') {
                rc = vimgd_errf(err, errlen, "[cgroup %s] takes only 'path = /sys/fs/cgroup/...'",
                          t->name);
            } else {
                free(t->path);
                t->path = strdup(val);
            }
            break;
        }
        case S_PLUGIN: {
            struct plugin *pl = &p->plugins[p->nplugins - 1];
            if (strcmp(key, "path") == 0) {
                if (val[0] != '/') {
                    rc = vimgd_errf(err, errlen, "plugin path must be absolute");
                }
                free(pl->path);
                pl->path = strdup(val);
            } else {
                size_t n = strlen(key) + strlen(val) + 2;
                char *kv = malloc(n);
                snprintf(kv, n, "%s=%s", key, val);
                pl->args = realloc(pl->args, sizeof(char *) * (pl->nargs + 2));
                pl->args[pl->nargs++] = kv;
                pl->args[pl->nargs] = NULL;
            }
            break;
        }
        }
        if (rc < 0) {
            break;
        }
    }
    fclose(f);
    if (rc == 0) {
        int i;
        for (i = 0; i < p->nplugins && rc == 0; i++) {
            if (!p->plugins[i].path) {
                rc = vimgd_errf(err, errlen, "[plugin %s] has no path", p->plugins[i].name);
            }
        }
        if (rc == 0) {
            rc = finish(p, open_roots, err, errlen);
        }
        lineno = 0;
    }
    if (rc < 0 && lineno > 0) {
        snprintf(prefix, sizeof(prefix), "%s:%d: %s", file, lineno, err);
        snprintf(err, errlen, "%s", prefix);
    } else if (rc < 0 && strncmp(err, file, strlen(file)) != 0) {
        snprintf(prefix, sizeof(prefix), "%s: %s", file, err);
        snprintf(err, errlen, "%s", prefix);
    }
    return rc;
}

void
policy_free(struct policy *p)
{
    int i, j;

    for (i = 0; i < p->nrules; i++) {
        struct rule *r = &p->rules[i];
        free(r->name);
        for (j = 0; j < r->ncgroups; j++) {
            free(r->cgroups[j]);
        }
        for (j = 0; j < r->nallow_plugin; j++) {
            free(r->allow_plugin[j]);
        }
        for (j = 0; j < r->ndeny_plugin; j++) {
            free(r->deny_plugin[j]);
        }
        for (j = 0; j < r->ncgroup_targets; j++) {
            free(r->cgroup_targets[j]);
        }
        free(r->exe);
        free(r->open_root.path);
        free(r->nbd_root.path);
        if (r->open_root.fd >= 0) {
            close(r->open_root.fd);
        }
        if (r->nbd_root.fd >= 0) {
            close(r->nbd_root.fd);
        }
        free(r->nbd_secret);
        free(r->nbd_format);
    }
    for (i = 0; i < p->ncgroups; i++) {
        free(p->cgroups[i].name);
        free(p->cgroups[i].path);
        if (p->cgroups[i].fd >= 0) {
            close(p->cgroups[i].fd);
        }
    }
    for (i = 0; i < p->nplugins; i++) {
        free(p->plugins[i].name);
        free(p->plugins[i].path);
        for (j = 0; j < p->plugins[i].nargs; j++) {
            free(p->plugins[i].args[j]);
        }
        free(p->plugins[i].args);
    }
    free(p->rules);
    free(p->cgroups);
    free(p->plugins);
    free(p->file);
    free(p->socket_path);
    free(p->audit);
    free(p->nbd_server);
    free(p->nbd_server_path);
    memset(p, 0, sizeof(*p));
}

static void
print_ids(FILE *out, const char *key, const struct id_range *r, int n)
{
    int i;

    if (n == 0) {
        return;
    }
    fprintf(out, "  %s =", key);
    for (i = 0; i < n; i++) {
        if (r[i].lo == r[i].hi) {
            fprintf(out, "%s %u", i ? "," : "", r[i].lo);
        } else {
            fprintf(out, "%s %u-%u", i ? "," : "", r[i].lo, r[i].hi);
        }
    }
    fputc('\n', out);
}

static void
print_ops(FILE *out, const char *key, unsigned mask, char *const *plug, int nplug)
{
    unsigned op;
    int i, first = 1;

    if (!mask && !nplug) {
        return;
    }
    fprintf(out, "  %s =", key);
    for (op = 1; op <= VB_OP_MAX_; op++) {
        if (mask & (1u << op)) {
            fprintf(out, "%s %s", first ? "" : ",", vb_op_name(op));
            first = 0;
        }
    }
    for (i = 0; i < nplug; i++) {
        fprintf(out, "%s %s", first ? "" : ",", plug[i]);
        first = 0;
    }
    fputc('\n', out);
}

void
policy_print(const struct policy *p, FILE *out)
{
    int i, j;

    fprintf(out, "[daemon]\n  socket = %s\n  socket_mode = %04o\n  audit = %s\n"
            "  peer_pidfd = %s\n  max_workers = %d\n  idle_timeout = %d\n"
            "  nbd_server = %s\n", p->socket_path, p->socket_mode, p->audit,
            p->peer_pidfd == PEER_PIDFD_REQUIRE    ? "require"
            : p->peer_pidfd == PEER_PIDFD_FALLBACK ? "fallback"
                                                   : "pidfd_open", p->max_workers, p->idle_timeout,
            p->nbd_server);
    if (p->nbd_server_path) {
        fprintf(out, "  nbd_server_path = %s\n", p->nbd_server_path);
    }
    for (i = 0; i < p->nplugins; i++) {
        fprintf(out, "[plugin %s]\n  path = %s\n", p->plugins[i].name, p->plugins[i].path);
        for (j = 0; j < p->plugins[i].nargs; j++) {
            fprintf(out, "  %s\n", p->plugins[i].args[j]);
        }
    }
    for (i = 0; i < p->ncgroups; i++) {
        fprintf(out, "[cgroup %s]\n  path = %s\n", p->cgroups[i].name, p->cgroups[i].path);
    }
    for (i = 0; i < p->nrules; i++) {
        const struct rule *r = &p->rules[i];
        fprintf(out, "[rule %s]   (line %d, rule %d of %d)\n", r->name, r->line, i + 1,
                p->nrules);
        print_ids(out, "match.uid", r->uids, r->nuids);
        print_ids(out, "match.gid", r->gids, r->ngids);
        for (j = 0; j < r->ncgroups; j++) {
            fprintf(out, "  match.cgroup = %s\n", r->cgroups[j]);
        }
        if (r->has_exe) {
            fprintf(out, "  match.exe = %s (dev %lu, inode %lu)\n", r->exe,
                    (unsigned long)r->exe_dev, (unsigned long)r->exe_ino);
        }
        print_ops(out, "deny", r->deny, r->deny_plugin, r->ndeny_plugin);
        print_ops(out, "allow", r->allow, r->allow_plugin, r->nallow_plugin);
        if (r->open_root.path) {
            fprintf(out, "  open.root = %s\n  open.access = %s\n", r->open_root.path,
                    r->open_rw ? "rw" : "ro");
        }
        if (r->nbd_root.path) {
            fprintf(out, "  nbd.root = %s\n  nbd.access = %s\n  nbd.format = %s\n",
                    r->nbd_root.path, r->nbd_rw ? "rw" : "ro",
                    r->nbd_format ? r->nbd_format : "luks");
        }
        if (r->nbd_secret) {
            fprintf(out, "  nbd.secret = %s\n", r->nbd_secret);
        }
        if (r->has_memlock_max) {
            fprintf(out, "  memlock.max = %llu\n", (unsigned long long)r->memlock_max);
        }
        if (r->allow & (1u << VB_OP_SCHED)) {
            fprintf(out, "  sched.max_rtprio = %d\n  sched.policies =", r->sched_max_rtprio);
            for (j = 0; j < (int)(sizeof(sched_names) / sizeof(sched_names[0])); j++) {
                if (r->sched_policies & (1u << sched_names[j].policy)) {
                    fprintf(out, " %s", sched_names[j].name);
                }
            }
            fputc('\n', out);
        }
        for (j = 0; j < r->ncgroup_targets; j++) {
            fprintf(out, "  cgroup.target = %s\n", r->cgroup_targets[j]);
        }
    }
    if (p->nrules == 0) {
        fprintf(out, "(no rules: every request is denied)\n");
    }
}

/* ---- decisions ---------------------------------------------------------- */

static bool
in_ranges(const struct id_range *r, int n, uint32_t id)
{
    int i;

    for (i = 0; i < n; i++) {
        if (id >= r[i].lo && id <= r[i].hi) {
            return true;
        }
    }
    return false;
}

/* NULL if the peer matches, else why not. */
static const char *
match_peer(const struct rule *r, const struct vimgd_peer *peer, char *buf, size_t len)
{
    int i;

    if (r->nuids && !in_ranges(r->uids, r->nuids, peer->uid)) {
        snprintf(buf, len, "uid %u not in match.uid", (unsigned)peer->uid);
        return buf;
    }
    if (r->ngids) {
        bool ok = in_ranges(r->gids, r->ngids, peer->gid);
        for (i = 0; !ok && i < peer->ngroups; i++) {
            ok = in_ranges(r->gids, r->ngids, peer->groups[i]);
        }
        if (!ok) {
            snprintf(buf, len, "gid %u and supplementary groups not in match.gid",
                     (unsigned)peer->gid);
            return buf;
        }
    }
    if (r->ncgroups) {
        bool ok = false;
        for (i = 0; !ok && i < r->ncgroups; i++) {
            ok = fnmatch(r->cgroups[i], peer->cgroup, FNM_PATHNAME) == 0;
        }
        if (!ok) {
            snprintf(buf, len, "cgroup '%s' does not match match.cgroup", peer->cgroup);
            return buf;
        }
    }
    if (r->has_exe && (peer->exe_dev != r->exe_dev || peer->exe_ino != r->exe_ino)) {
        snprintf(buf, len, "executable '%s' is not match.exe (compared by device and inode)",
                 peer->exe);
        return buf;
    }
    return NULL;
}

static bool
in_names(char *const *list, int n, const char *name)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* A name that cannot leave its root lexically: relative, no ".." part.
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) enforces it again at open. */
static bool
name_beneath(const char *name)
{
    const char *p = name;

    if (name[0] == '/') {
        return false;
    }
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            return false;
        }
        p += n;
        p += strspn(p, "/");
    }
    return true;
}

/* Limits of rule @r for @req: NULL if within, else why not (in @buf). */
static const char *
check_limits(const struct policy *pol, const struct rule *r, const struct vb_request *req,
             struct decision *d, char *buf, size_t len)
{
    int i;

    switch (req->op) {
    case VB_OP_OPEN:
    case VB_OP_NBD: {
        bool rw = req->op == VB_OP_OPEN ? r->open_rw : r->nbd_rw;
        const char *key = req->op == VB_OP_OPEN ? "open" : "nbd";
        if (!name_beneath(req->name)) {
            snprintf(buf, len, "name '%s' is absolute or contains '..' (%s.root is the limit)",
                     req->name, key);
            return buf;
        }
        if ((req->flags & VB_OPEN_RW) && !rw) {
            snprintf(buf, len, "read-write access requested, %s.access is ro", key);
            return buf;
        }
        return NULL;
    }
    case VB_OP_MEMLOCK:
        if (req->bytes > r->memlock_max) {
            snprintf(buf, len, "%llu bytes exceeds memlock.max %llu",
                     (unsigned long long)req->bytes, (unsigned long long)r->memlock_max);
            return buf;
        }
        return NULL;
    case VB_OP_SCHED:
        if (req->policy >= 32 || !(r->sched_policies & (1u << req->policy))) {
            snprintf(buf, len, "scheduling policy %u not in sched.policies", req->policy);
            return buf;
        }
        if (req->policy == SCHED_FIFO || req->policy == SCHED_RR) {
            if (req->priority < 1 || req->priority > (uint32_t)r->sched_max_rtprio) {
                snprintf(buf, len, "priority %u outside 1..sched.max_rtprio (%d)",
                         req->priority, r->sched_max_rtprio);
                return buf;
            }
        } else if (req->priority != 0) {
            snprintf(buf, len, "priority must be 0 for non-real-time policies");
            return buf;
        }
        return NULL;
    case VB_OP_CGROUP:
        if (!in_names(r->cgroup_targets, r->ncgroup_targets, req->name)) {
            snprintf(buf, len, "cgroup target '%s' not in cgroup.targets", req->name);
            return buf;
        }
        for (i = 0; i < pol->ncgroups; i++) {
            if (strcmp(pol->cgroups[i].name, req->name) == 0) {
                d->target = &pol->cgroups[i];
            }
        }
        return NULL;
    default:
        return NULL;
    }
}

void
policy_decide(const struct policy *pol, const struct vimgd_peer *peer,
              const struct vb_request *req, struct decision *d, FILE *trace)
{
    const char *opname = req->op == VB_OP_PLUGIN ? req->name : vb_op_name(req->op);
    char last[512] = "";
    int i;

    memset(d, 0, sizeof(*d));
    if (req->op == VB_OP_PLUGIN) {
        const char *op;
        if (!plugin_find(pol, req->name, &op)) {
            snprintf(d->reason, sizeof(d->reason), "no plugin provides operation '%s'",
                     req->name);
            if (trace) {
                fprintf(trace, "%s\n", d->reason);
            }
            return;
        }
    }
    for (i = 0; i < pol->nrules; i++) {
        const struct rule *r = &pol->rules[i];
        char why[512];
        const char *no = match_peer(r, peer, why, sizeof(why));
        bool denies, allows;

        if (no) {
            if (trace) {
                fprintf(trace, "rule %s: does not match: %s\n", r->name, no);
            }
            continue;
        }
        if (req->op == VB_OP_PLUGIN) {
            denies = in_names(r->deny_plugin, r->ndeny_plugin, req->name);
            allows = in_names(r->allow_plugin, r->nallow_plugin, req->name);
        } else {
            denies = r->deny & (1u << req->op);
            allows = r->allow & (1u << req->op);
        }
        if (denies) {
            d->rule = r;
            snprintf(d->reason, sizeof(d->reason), "rule '%s' denies %s", r->name, opname);
            if (trace) {
                fprintf(trace, "rule %s: matches and denies %s: DENY\n", r->name, opname);
            }
            return;
        }
        if (!allows) {
            if (trace) {
                fprintf(trace, "rule %s: matches but does not allow %s\n", r->name, opname);
            }
            continue;
        }
        no = check_limits(pol, r, req, d, why, sizeof(why));
        if (no) {
            snprintf(last, sizeof(last), "rule '%s': %s", r->name, no);
            if (trace) {
                fprintf(trace, "rule %s: allows %s but %s\n", r->name, opname, no);
            }
            continue;
        }
        d->allow = true;
        d->rule = r;
        snprintf(d->reason, sizeof(d->reason), "allowed by rule '%s'", r->name);
        if (trace) {
            fprintf(trace, "rule %s: matches and allows %s: ALLOW\n", r->name, opname);
        }
        return;
    }
    if (last[0]) {
        snprintf(d->reason, sizeof(d->reason), "%s", last);
    } else {
        snprintf(d->reason, sizeof(d->reason),
                 "no rule allows %s for uid %u gid %u cgroup %s (default deny)", opname,
                 (unsigned)peer->uid, (unsigned)peer->gid, peer->cgroup[0] ? peer->cgroup : "?");
    }
    if (trace) {
        fprintf(trace, "result: DENY: %s\n", d->reason);
    }
}
