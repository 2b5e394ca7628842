// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg luks SUBCOMMAND": LUKS header maintenance that qemu-img has no
 * command for, in the file format of cryptsetup 2.6:
 *   header-backup FILE BACKUP    (cryptsetup luksHeaderBackup)
 *   header-restore [--force] FILE BACKUP   (cryptsetup luksHeaderRestore)
 * FILE is a raw LUKS1/LUKS2 image or a detached header file.  No key is
 * needed: the header area is copied byte for byte.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "options.h"

static const char luks_help[] =
    "LUKS header maintenance (cryptsetup's header backup file format).\n"
    "\n"
    "Subcommands:\n"
    "  header-backup FILE BACKUP\n"
    "        copy the LUKS header area of FILE (a raw LUKS1/LUKS2 image or "
    "a detached\n"
    "        header) into the new file BACKUP (mode 0400), as cryptsetup\n"
    "        luksHeaderBackup does\n"
    "  header-restore [--force] FILE BACKUP\n"
    "        write BACKUP (made by vimg or cryptsetup luksHeaderBackup) over "
    "the header\n"
    "        area of FILE.  Refused unless FILE's current header has the "
    "same UUID,\n"
    "        version and layout; --force restores over a different or "
    "unreadable\n"
    "        header (the payload offset must still match).  Everything is "
    "checked\n"
    "        before one write at offset 0, which is flushed.\n"
    "\n"
    "Options:\n"
    "  -q                 quiet\n"
    "  -h, --help         show this help\n"
    "\n"
    "No key is needed.  A restored header holds the backup's keyslots: "
    "passphrases\n"
    "added or removed since the backup are undone.\n";

enum {
    OPT_FORCE = OPT_HELP + 1,
};

static int
run_luks(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force", no_argument, NULL, OPT_FORCE },
        { NULL, 0, NULL, 0 },
    };
    struct vimg_error *err = NULL;
    const char *sub;
    bool force = false, quiet = false;
    int c, r;

    if (argc >= 2 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        cli_print_command_help(&cmd_luks);
        return 0;
    }
    if (argc < 2) {
        cli_error("Expecting a subcommand: header-backup or header-restore");
        cli_try_help();
        return 1;
    }
    sub = argv[1];
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hq", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cli_print_command_help(&cmd_luks);
            return 0;
        case 'q':
            quiet = true;
            break;
        case OPT_FORCE:
            force = true;
            break;
        default:
            return cli_getopt_error(c, argv);
        }
    }
    if (strcmp(sub, "header-backup") != 0 &&
        strcmp(sub, "header-restore") != 0) {
        cli_error("Unknown luks subcommand '%s'", sub);
        cli_try_help();
        return 1;
    }
    if (optind != argc - 2) {
        cli_error("Expecting FILE and BACKUP");
        cli_try_help();
        return 1;
    }
    if (strcmp(sub, "header-backup") == 0) {
        if (force) {
            cli_error("--force is only valid for header-restore");
            return 1;
        }
        r = vimg_luks_header_backup(argv[optind], argv[optind + 1], &err);
    } else {
        r = vimg_luks_header_restore(argv[optind], argv[optind + 1], force,
                                     &err);
    }
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return 1;
    }
    if (!quiet) {
        printf("%s\n", strcmp(sub, "header-backup") == 0
                       ? "Header backed up." : "Header restored.");
    }
    return 0;
}

const struct cli_command cmd_luks = {
    .name = "luks",
    .run = run_luks,
    .synopsis = "luks {header-backup | header-restore [--force]} [-q] "
                "filename backup",
    .help = luks_help,
};
