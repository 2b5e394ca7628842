// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * vimg: command-line tool for encrypted VM disk images, mirroring the syntax,
 * messages and exit codes of qemu-img 7.2.  This file holds main(): process
 * hygiene (no core dumps, not ptrace-able by other users, so secrets cannot
 * leak that way), global options, the command table and help.  Each command
 * lives in its own cmd-*.c; adding one is one table entry plus one file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "config.h"
#include "options.h"

static const struct cli_command *const commands[] = {
    &cmd_amend,
    &cmd_broker,
    &cmd_check,
    &cmd_commit,
    &cmd_compare,
    &cmd_convert,
    &cmd_create,
    &cmd_dd,
    &cmd_info,
    &cmd_io,
    &cmd_luks,
    &cmd_map,
    &cmd_measure,
    &cmd_rebase,
    &cmd_reencrypt,
    &cmd_resize,
    &cmd_serve,
    &cmd_snapshot,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_command *
find_command(const char *name)
{
    size_t i;

    for (i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            return commands[i];
        }
    }
    return NULL;
}

static void
print_version(void)
{
    printf(CLI_NAME " version %s (libvimg %s)\n", VIMG_VERSION, vimg_version());
    printf("Encrypted VM disk images, compatible with qemu-img 7.2 and "
           "cryptsetup 2.6 (LUKS1)\n");
}

static void
print_help(void)
{
    const char *const *fmts;
    size_t i;

    printf("usage: " CLI_NAME " [standard options] command [command options]\n"
           "Create, inspect, convert and compare (encrypted) VM disk images.\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "    '-T', '--trace' ARG  accepted for qemu-img compatibility "
           "(ignored)\n"
           "\n"
           "Commands:\n");
    for (i = 0; i < N_COMMANDS; i++) {
        printf("  %s\n", commands[i]->synopsis);
    }
    printf("\n"
           "Run '" CLI_NAME " help COMMAND' or '" CLI_NAME
           " COMMAND --help' for the options of one command.\n"
           "\n"
           "Arguments:\n"
           "  'filename'   a disk image file name; with --image-opts an "
           "option string\n"
           "               such as 'driver=luks,file.filename=F,"
           "key-secret=sec0'; a name\n"
           "               'json:{...}' gives the same options as JSON\n"
           "  'objectdef'  a secret: 'secret,id=ID,file=PATH' (or data=STR, "
           "format=base64,\n"
           "               keyid=ID2,iv=B64) or 'secret_keyring,id=ID,"
           "serial=N'\n"
           "  'fmt'        image format; probed when omitted "
           "(LUKS1 header -> luks, else raw)\n"
           "  'size'       bytes, optional suffix k, M, G, T, P or E "
           "(powers of 1024)\n"
           "  'options'    comma-separated name=value list; '-o help' "
           "lists them\n"
           "  '-q'         quiet: print nothing except errors\n"
           "  '-p'         show progress\n"
           "\n"
           "Supported formats:");
    fmts = vimg_format_list();
    for (i = 0; fmts && fmts[i]; i++) {
        printf(" %s", fmts[i]);
    }
    printf("\n\nSee vimg(1) for details.\n");
}

static void
harden_process(void)
{
    struct rlimit rl = {0, 0};

    /* Secrets and keys live in this process: keep them out of core dumps
     * and away from same-user ptrace. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void)setrlimit(RLIMIT_CORE, &rl);
}

int
main(int argc, char **argv)
{
    const struct cli_command *cmd;
    int argi = 1;
    int rc;

    harden_process();

    while (argi < argc && argv[argi][0] == '-') {
        const char *a = argv[argi];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help();
            return 0;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            print_version();
            return 0;
        } else if (strcmp(a, "-T") == 0 || strcmp(a, "--trace") == 0) {
            if (argi + 1 >= argc) {
                cli_error("missing argument for option '%s'", a);
                cli_try_help();
                return 1;
            }
            argi += 2;
        } else if (strncmp(a, "--trace=", 8) == 0) {
            argi++;
        } else {
            cli_error("unrecognized option '%s'", a);
            cli_try_help();
            return 1;
        }
    }
    if (argi >= argc) {
        cli_error("Not enough arguments");
        cli_try_help();
        return 1;
    }

    if (strcmp(argv[argi], "help") == 0) {
        if (argi + 1 >= argc) {
            print_help();
            return 0;
        }
        cmd = find_command(argv[argi + 1]);
        if (!cmd) {
            cli_error("Command not found: %s", argv[argi + 1]);
            cli_try_help();
            return 1;
        }
        cli_print_command_help(cmd);
        return 0;
    }

    cmd = find_command(argv[argi]);
    if (!cmd) {
        cli_error("Command not found: %s", argv[argi]);
        cli_try_help();
        return 1;
    }
    rc = cmd->run(argc - argi, argv + argi);
    cli_secrets_release();
    fflush(stdout);
    return rc;
}
