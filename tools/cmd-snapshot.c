// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg snapshot": list, create, apply or delete the internal snapshots of
 * a qcow2 image, with qemu-img snapshot's syntax, messages and exit codes.
 * Only metadata changes, so the image is opened without its key
 * (VIMG_OPEN_NO_IO): encrypted images need no secret, unlike qemu-img.
 *
 * The "Snapshot list:" table (output.c) is shared with `info`.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "open-image.h"
#include "output.h"

static const char snapshot_help[] =
    "List, create, apply or delete the internal snapshots of FILENAME\n"
    "(qcow2).  No key is needed, even for encrypted images.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable; accepted, not "
    "needed)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -l                   list the snapshots\n"
    "  -c SNAPSHOT          create a snapshot named SNAPSHOT\n"
    "  -a SNAPSHOT          apply (revert to) snapshot SNAPSHOT (id or "
    "name)\n"
    "  -d SNAPSHOT          delete the snapshot named SNAPSHOT\n"
    "  -q                   quiet\n"
    "  -U, --force-share    accepted with -l (images are opened without "
    "locks)\n"
    "  -h, --help           show this help\n";

enum { SN_NONE, SN_LIST, SN_CREATE, SN_APPLY, SN_DELETE };

static int
do_list(struct vimg_image *img)
{
    struct vimg_snapshot *v = NULL;
    struct vimg_error *err = NULL;
    size_t n = 0, i;
    int r;

    r = vimg_snapshot_list(img, &v, &n, &err);
    if (r == -ENOTSUP) {
        vimg_error_free(err);   /* no snapshots in this format: nothing */
        return 0;
    }
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return r;
    }
    if (n > 0) {
        print_snapshot_header(stdout);
    }
    for (i = 0; i < n; i++) {
        print_snapshot_row(stdout, v[i].id, v[i].name, v[i].vm_state_size,
                           v[i].date_sec, v[i].vm_clock_nsec, v[i].icount);
    }
    vimg_snapshot_list_free(v, n);
    return 0;
}

static int
run_snapshot(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_snapshot};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    const char *name = NULL;
    int action = SN_NONE, c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":la:c:d:hqU", longopts, NULL)) !=
           -1) {
        int want = SN_NONE;

        switch (c) {
        case 'l':
            want = SN_LIST;
            break;
        case 'a':
            want = SN_APPLY;
            break;
        case 'c':
            want = SN_CREATE;
            break;
        case 'd':
            want = SN_DELETE;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
        if (want != SN_NONE) {
            if (action != SN_NONE) {
                cli_error("Cannot mix '-l', '-a', '-c', '-d'");
                cli_try_help();
                goto out;
            }
            action = want;
            name = want == SN_LIST ? NULL : optarg;
        }
    }
    /* No -f here: ia.format stays NULL (probed). */
    if (cli_expect_one_image(argc) < 0 || cli_image_args_objects(&ia) < 0 ||
        cli_image_args_parse(&ia, argv[optind], &spec) < 0) {
        goto out;
    }
    if (ia.force_share && action != SN_LIST && action != SN_NONE) {
        cli_error("Could not open '%s': force-share=on can only be used with "
                  "read-only images", argv[optind]);
        goto out;
    }
    /* Metadata only: no key is needed, and no data is read or written. */
    if (cli_image_open(&spec, VIMG_OPEN_NO_IO |
                       (action == SN_LIST || action == SN_NONE ? 0
                                                               : VIMG_OPEN_RDWR),
                       &img) < 0) {
        goto out;
    }

    switch (action) {
    case SN_LIST:
        if (do_list(img) < 0) {
            goto out;
        }
        break;
    case SN_CREATE:
        r = vimg_snapshot_create(img, name, &err);
        if (r < 0) {
            /* qemu-img prints the bare errno here. */
            vimg_error_free(err);
            err = NULL;
            cli_error("Could not create snapshot '%s': %d (%s)", name, r,
                      strerror(-r));
            goto out;
        }
        break;
    case SN_APPLY:
        r = vimg_snapshot_apply(img, name, &err);
        if (r < 0) {
            /* qemu: the driver's message (if any) on its own line, then
             * the generic one with the errno text. */
            if (r != -ENOENT && r != -ENOTSUP && err) {
                cli_error("%s", vimg_error_message(err));
            }
            vimg_error_free(err);
            err = NULL;
            cli_error("Could not apply snapshot '%s': Failed to load "
                      "snapshot: %s", name, strerror(-r));
            goto out;
        }
        break;
    case SN_DELETE:
        r = vimg_snapshot_delete(img, NULL, name, &err);
        if (r < 0) {
            if (r == -ENOENT || r == -ENOTSUP) {
                vimg_error_free(err);
                err = NULL;
                cli_error("Could not delete snapshot '%s': snapshot not "
                          "found", name);
            } else {
                cli_error_vimg(err, r, "Could not delete snapshot '%s': ",
                               name);
                err = NULL;
            }
            goto out;
        }
        break;
    default:
        break;
    }
    if (cli_image_close(&img) < 0) {
        goto out;
    }
    rc = 0;

out:
    vimg_image_close(img, NULL);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_snapshot = {
    .name = "snapshot",
    .run = run_snapshot,
    .synopsis = "snapshot [--object objectdef] [--image-opts] [-U] [-q] "
                "[-l | -a snapshot | -c snapshot | -d snapshot] filename",
    .help = snapshot_help,
};
