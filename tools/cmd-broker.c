// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vimg broker: the requester side of the vimgd privilege broker from the
 * shell.  Each sub-command makes one request through libvimgd-client; with
 * "-- CMD ARGS..." it then execs CMD, which inherits the effect (the FD, the
 * raised limit, the scheduling policy, the cgroup).  "{fd}" in CMD's
 * arguments is replaced by the number of the received descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "options.h"
#include "vimgd-client.h"

static const char broker_help[] =
    "  'SOCKET'  the broker's socket (default $VIMGD_SOCKET, else " VIMGD_DEFAULT_SOCKET ")\n"
    "  'open'    open image NAME beneath the root the policy allows; without CMD\n"
    "            copy it to stdout\n"
    "  'nbd'     get a connected NBD socket serving the decrypted image NAME (the\n"
    "            key stays with the broker); needs CMD, e.g.\n"
    "            -- qemu-img convert -O raw --image-opts \\\n"
    "               driver=raw,file.driver=nbd,file.server.type=fd,file.server.str={fd} out\n"
    "  'memlock' raise this process's RLIMIT_MEMLOCK to SIZE (suffixes k M G T)\n"
    "  'sched'   set POLICY (other, batch, idle, fifo, rr) and PRIO on this process's\n"
    "            thread (kept across exec, reset on fork)\n"
    "  'cgroup'  move this process into the cgroup the policy calls TARGET\n"
    "  'plugin'  run plugin operation NAME.OP with optional ARG; prints the reply\n"
    "  '--rw'    read-write access (open, nbd)\n"
    "  'CMD'     run after a successful request; '{fd}' in its arguments is replaced\n"
    "            by the received descriptor\n"
    "Exit status: 0 done, 1 refused or failed (the broker's reason is printed).\n";

static int
parse_policy(const char *s)
{
    static const struct {
        const char *name;
        int policy;
    } names[] = {{"other", SCHED_OTHER}, {"batch", SCHED_BATCH}, {"idle", SCHED_IDLE},
                 {"fifo", SCHED_FIFO},   {"rr", SCHED_RR}};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(names[i].name, s) == 0) {
            return names[i].policy;
        }
    }
    return -1;
}

/* exec @cmd with "{fd}" replaced by @fd. */
static int
run_cmd(char **cmd, int fd)
{
    char num[16], **argv;
    int i, n;

    for (n = 0; cmd[n]; n++) {
    }
    argv = calloc((size_t)n + 1, sizeof(char *));
    if (!argv) {
        cli_error("%s", strerror(ENOMEM));
        return 1;
    }
    snprintf(num, sizeof(num), "%d", fd);
    for (i = 0; i < n; i++) {
        const char *at = strstr(cmd[i], "{fd}");
        if (at && fd >= 0) {
            size_t len = strlen(cmd[i]) + sizeof(num);
            argv[i] = malloc(len);
            snprintf(argv[i], len, "%.*s%s%s", (int)(at - cmd[i]), cmd[i], num, at + 4);
        } else {
            argv[i] = cmd[i];
        }
    }
    if (fd >= 0) {
        /* the descriptor is for CMD: keep it across exec */
        (void)fcntl(fd, F_SETFD, 0);
    }
    fflush(stdout);
    execvp(argv[0], argv);
    cli_error("cannot run '%s': %s", argv[0], strerror(errno));
    return 1;
}

static int
copy_out(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            cli_error("write error: %s", strerror(errno));
            return 1;
        }
    }
    if (n < 0) {
        cli_error("read error: %s", strerror(errno));
        return 1;
    }
    return 0;
}

static int
run_broker(int argc, char **argv)
{
    const char *sock = NULL, *sub;
    struct vimgd_client *c = NULL;
    char **cmd = NULL;
    unsigned flags = 0;
    int i = 1, rc, fd = -1, nargs;
    char *args[4] = {NULL};

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            cli_print_command_help(&cmd_broker);
            return 0;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            sock = argv[++i];
        } else {
            cli_error("unrecognized option '%s'", argv[i]);
            cli_try_help();
            return 1;
        }
    }
    if (i >= argc) {
        cli_error("Expecting a broker operation");
        cli_try_help();
        return 1;
    }
    sub = argv[i++];
    for (nargs = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            cmd = argv + i + 1;
            if (!cmd[0]) {
                cli_error("missing command after '--'");
                return 1;
            }
            break;
        } else if (strcmp(argv[i], "--rw") == 0) {
            flags |= VIMGD_OPEN_RW;
        } else if (nargs < 3) {
            args[nargs++] = argv[i];
        } else {
            cli_error("too many arguments for 'broker %s'", sub);
            return 1;
        }
    }
    static const struct {
        const char *name;
        int min, max;
    } subs[] = {{"open", 1, 1},   {"nbd", 1, 1},    {"memlock", 1, 1},
                {"sched", 2, 2},  {"cgroup", 1, 1}, {"plugin", 1, 2}};
    size_t k;
    for (k = 0; k < sizeof(subs) / sizeof(subs[0]); k++) {
        if (strcmp(subs[k].name, sub) == 0) {
            break;
        }
    }
    if (k == sizeof(subs) / sizeof(subs[0])) {
        cli_error("unknown broker operation '%s' (open, nbd, memlock, sched, cgroup, plugin)",
                  sub);
        return 1;
    }
    if (nargs < subs[k].min || nargs > subs[k].max) {
        cli_error("wrong number of arguments for 'broker %s'", sub);
        cli_try_help();
        return 1;
    }
    if (strcmp(sub, "nbd") == 0 && !cmd) {
        cli_error("'broker nbd' needs a command after '--' to use the NBD socket");
        return 1;
    }
    rc = vimgd_client_connect(sock, &c);
    if (rc < 0) {
        cli_error("cannot connect to vimgd at '%s': %s%s%s",
                  sock ? sock : (getenv("VIMGD_SOCKET") ? getenv("VIMGD_SOCKET")
                                                        : VIMGD_DEFAULT_SOCKET),
                  strerror(-rc), c && *vimgd_client_reason(c) ? ": " : "",
                  c ? vimgd_client_reason(c) : "");
        vimgd_client_close(c);
        return 1;
    }
    if (strcmp(sub, "open") == 0) {
        rc = vimgd_client_open(c, args[0], flags, &fd);
    } else if (strcmp(sub, "nbd") == 0) {
        rc = vimgd_client_nbd(c, args[0], flags, &fd);
    } else if (strcmp(sub, "memlock") == 0) {
        uint64_t bytes;
        if (cli_parse_size(args[0], &bytes) < 0) {
            cli_error("invalid size '%s'", args[0]);
            vimgd_client_close(c);
            return 1;
        }
        rc = vimgd_client_memlock(c, bytes);
    } else if (strcmp(sub, "sched") == 0) {
        int pol = parse_policy(args[0]);
        char *end;
        long prio = strtol(args[1], &end, 10);
        if (pol < 0 || *end || prio < 0 || prio > 99) {
            cli_error("invalid scheduling policy or priority '%s %s'", args[0], args[1]);
            vimgd_client_close(c);
            return 1;
        }
        rc = vimgd_client_sched(c, pol, (int)prio, NULL, 0);
    } else if (strcmp(sub, "cgroup") == 0) {
        rc = vimgd_client_cgroup(c, args[0]);
    } else {
        rc = vimgd_client_plugin(c, args[0], args[1], args[1] ? strlen(args[1]) : 0, &fd);
    }
    if (rc < 0) {
        cli_error("broker refused %s: %s (%s)", sub, vimgd_client_reason(c), strerror(-rc));
        vimgd_client_close(c);
        return 1;
    }
    if (!cmd) {
        if (strcmp(sub, "open") == 0) {
            rc = copy_out(fd);
            close(fd);
            vimgd_client_close(c);
            return rc;
        }
        printf("%s\n", vimgd_client_reason(c));
        if (fd >= 0) {
            close(fd);
        }
        vimgd_client_close(c);
        return 0;
    }
    if (strcmp(sub, "nbd") == 0) {
        /* The broker stops the NBD server when this connection ends (in
         * case its client never connects), so keep it open while CMD runs. */
        pid_t pid = fork();
        int status;

        if (pid == 0) {
            _exit(run_cmd(cmd, fd));
        }
        close(fd);
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            cli_error("cannot run '%s': %s", cmd[0], strerror(errno));
            vimgd_client_close(c);
            return 1;
        }
        vimgd_client_close(c);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    vimgd_client_close(c);
    return run_cmd(cmd, fd);
}

const struct cli_command cmd_broker = {
    .name = "broker",
    .run = run_broker,
    .synopsis = "broker [--socket SOCKET] {open [--rw] NAME | nbd [--rw] NAME | memlock SIZE |"
                " sched POLICY PRIO | cgroup TARGET | plugin NAME.OP [ARG]} [-- CMD [ARGS...]]",
    .help = broker_help,
};
