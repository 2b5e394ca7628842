// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg info": show image metadata like qemu-img info, in human form or as
 * JSON byte-identical to qemu's (QDict key order, 4-space indentation).
 * The image is opened metadata-only (VIMG_OPEN_NO_IO), so no key is needed
 * and a wrong one does not matter.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "open-image.h"
#include "output.h"

static const char info_help[] =
    "Show information about the disk image FILENAME.  No key is needed, "
    "even for\nencrypted images.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT               image format (probed by default)\n"
    "  --output=FMT         'human' (default) or 'json'\n"
    "  --backing-chain      show the whole backing chain\n"
    "  -U, --force-share    accepted (images are opened without locks)\n"
    "  -h, --help           show this help\n";

static int
run_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"backing-chain", no_argument, NULL, OPT_BACKING_CHAIN},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_info};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct json_object *info = NULL;
    const char *output = "human";
    char *name = NULL;
    bool chain = false, json;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_OUTPUT:
            output = optarg;
            break;
        case OPT_BACKING_CHAIN:
            chain = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    if (cli_expect_one_image(argc) < 0 ||
        cli_parse_output(output, &json) < 0 ||
        cli_image_args_objects(&ia) < 0 ||
        cli_image_args_open(&ia, argv[optind], VIMG_OPEN_NO_IO, &spec,
                            &img) < 0) {
        goto out;
    }
    r = vimg_image_info(img, &info, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        goto out;
    }
    name = cli_image_display_name(&spec, vimg_image_format(img));
    if (!name) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    json_object_object_add(info, "filename", json_object_new_string(name));

    if (chain) {
        /* The image, then each backing layer (array elements in JSON). */
        struct json_object *arr = json_object_new_array();
        struct vimg_image *b;

        if (!arr || json_object_array_add(arr, info) < 0) {
            json_object_put(arr);
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
        info = arr;
        for (b = vimg_image_backing(img); b; b = vimg_image_backing(b)) {
            struct json_object *binfo = NULL;

            r = vimg_image_info(b, &binfo, &err);
            if (r < 0) {
                cli_error_vimg(err, r, NULL);
                goto out;
            }
            if (json_object_array_add(arr, binfo) < 0) {
                json_object_put(binfo);
                cli_error("%s", strerror(ENOMEM));
                goto out;
            }
        }
    }

    if (json) {
        if (qjson_print(info) < 0) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    } else if (chain) {
        size_t k, nl = json_object_array_length(info);

        for (k = 0; k < nl; k++) {
            struct json_object *layer = json_object_array_get_idx(info, k);
            struct json_object *fn = NULL;

            if (k > 0) {
                printf("\n");
            }
            json_object_object_get_ex(layer, "filename", &fn);
            print_info_human(stdout, layer,
                             k == 0 || !fn ? name : json_object_get_string(fn));
        }
    } else {
        print_info_human(stdout, info, name);
    }
    rc = 0;

out:
    json_object_put(info);
    free(name);
    vimg_image_close(img, NULL);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_info = {
    .name = "info",
    .run = run_info,
    .synopsis = "info [--object objectdef] [--image-opts] [-f fmt] "
                "[--output=ofmt] [--backing-chain] [-U] filename",
    .help = info_help,
};
