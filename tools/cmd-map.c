// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg map": the allocation map of an image, byte-compatible with
 * qemu-img 7.2 map.  The runs come from vimg_map() (merged like qemu);
 * this file only prints them:
 *
 * - JSON: one entry per line, keys in qemu's fixed order start, length,
 *   depth, present, zero, data and, only when the data has a file offset,
 *   offset.  An empty range still prints one entry of length 0 (qemu
 *   prints its initial, all-false entry).
 * - human: the "Offset Length Mapped to File" table listing the data runs
 *   that have a file offset.  A data run without one (encrypted or
 *   compressed data) ends the command with qemu's "File contains external,
 *   encrypted or compressed clusters." and exit status 1, after the header.
 *   The "File" of a run from a backing layer (depth > 0) is that layer's
 *   file name as opened (relative to the image's directory).
 *
 * Key handling: the map is metadata, so without driver options the image is
 * opened metadata-only and no key is needed (qemu needs one for encrypted
 * images).  When driver options are given (e.g. key-secret), the image is
 * opened normally, so a wrong key fails as in qemu.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "open-image.h"

static const char map_help[] =
    "Show which ranges of FILENAME hold data, read as zeroes or are "
    "unallocated.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF     define a secret (repeatable); see vimg(1)\n"
    "  --image-opts           FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT                 image format (probed by default)\n"
    "  -s, --start-offset=OFF first guest byte to map (default 0)\n"
    "  -l, --max-length=LEN   map at most LEN bytes (default: to the end)\n"
    "  --output=FMT           'human' (default) or 'json'\n"
    "  -U, --force-share      accepted (images are opened without locks)\n"
    "  -h, --help             show this help\n"
    "\n"
    "No key is needed unless driver options are given (then they are "
    "checked).\nEncrypted images have no file offsets: the human table "
    "then fails with\n\"File contains external, encrypted or compressed "
    "clusters.\" (use --output=json).\n";

struct map_out {
    bool json;
    bool first;
    const char *file; /* the "File" column of the human table (depth 0) */
    struct vimg_image *img; /* the image, for the names of backing layers */
    char *data_file;  /* qcow2 external data file of depth 0, or NULL */
    bool failed;
};

static void
print_json_entry(struct map_out *o, const struct vimg_map_entry *e)
{
    printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64
           ", \"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
           o->first ? "[" : ",\n", e->start, e->length, e->depth,
           e->present ? "true" : "false", e->zero ? "true" : "false",
           e->data ? "true" : "false");
    if (e->has_offset) {
        printf(", \"offset\": %" PRIu64, e->offset);
    }
    printf("}");
    o->first = false;
}

/*
 * A qcow2 image with an external data file: its data offsets point into
 * that file, so qemu names it in the "File" column.  Returns a copy of the
 * name, or NULL.
 */
static char *
data_file_name(struct vimg_image *img)
{
    struct json_object *info = NULL, *spec, *data, *df, *raw;
    char *name = NULL;

    if (vimg_image_info(img, &info, NULL) < 0) {
        return NULL;
    }
    /* data-file-raw is there only when the data file bit is set. */
    if (json_object_object_get_ex(info, "format-specific", &spec) &&
        json_object_object_get_ex(spec, "data", &data) &&
        json_object_object_get_ex(data, "data-file", &df) &&
        json_object_object_get_ex(data, "data-file-raw", &raw)) {
        name = strdup(json_object_get_string(df));
    }
    json_object_put(info);
    return name;
}

/* The "File" column: the name of the layer at @depth of the chain. */
static const char *
layer_name(const struct map_out *o, int depth)
{
    struct vimg_image *b = o->img;
    int d;

    if (depth == 0) {
        return o->data_file ? o->data_file : o->file;
    }
    for (d = 0; d < depth && b; d++) {
        b = vimg_image_backing(b);
    }
    return b ? vimg_image_filename(b) : "";
}

static int
map_entry(void *opaque, const struct vimg_map_entry *e)
{
    struct map_out *o = opaque;

    if (o->json) {
        print_json_entry(o, e);
        return 0;
    }
    if (!e->data) {
        return 0;
    }
    if (!e->has_offset) {
        fflush(stdout);
        cli_error("File contains external, encrypted or compressed "
                  "clusters.");
        o->failed = true;
        return -ENOTSUP;
    }
    printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start,
           e->length, e->offset, layer_name(o, e->depth));
    return 0;
}

/* --start-offset / --max-length: qemu's two messages for bad values. */
static int
parse_offset_arg(const char *arg, const char *what, uint64_t *out)
{
    int r = cli_parse_size(arg, out);

    if (r == -ERANGE || (r == 0 && *out > INT64_MAX)) {
        cli_error("Invalid %s specified. Must be between 0 and %" PRId64 ".",
                  what, INT64_MAX);
        return -1;
    }
    if (r < 0) {
        cli_print_size_error(what);
        return -1;
    }
    return 0;
}

static int
run_map(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"force-share", no_argument, NULL, 'U'},
        {"start-offset", required_argument, NULL, 's'},
        {"max-length", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_map};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct map_out out = {.first = true};
    const char *output = "human";
    uint64_t start = 0, max_len = UINT64_MAX;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":f:s:l:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (parse_offset_arg(optarg, "start offset", &start) < 0) {
                goto out;
            }
            break;
        case 'l':
            if (parse_offset_arg(optarg, "max length", &max_len) < 0) {
                goto out;
            }
            break;
        case OPT_OUTPUT:
            output = optarg;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    /* Metadata-only unless driver options (a key) were given. */
    if (cli_expect_one_image(argc) < 0 ||
        cli_parse_output(output, &out.json) < 0 ||
        cli_image_args_objects(&ia) < 0 ||
        cli_image_args_parse(&ia, argv[optind], &spec) < 0 ||
        cli_image_open(&spec, cli_metadata_flags(&spec), &img) < 0) {
        goto out;
    }
    out.file = spec.path;
    out.data_file = out.json ? NULL : data_file_name(img);
    out.img = img;

    if (!out.json) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    r = vimg_map(img, start, max_len, map_entry, &out, &err);
    if (r < 0) {
        if (!out.failed) {
            fflush(stdout);
            cli_error_vimg(err, r, NULL);
        } else {
            vimg_error_free(err);
        }
        goto out;
    }
    if (out.json) {
        if (out.first) {
            /* Nothing mapped: qemu prints its empty initial entry. */
            struct vimg_map_entry empty = {.start = start};

            print_json_entry(&out, &empty);
        }
        printf("]\n");
    }
    rc = 0;

out:
    fflush(stdout);
    free(out.data_file);
    vimg_image_close(img, NULL);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_map = {
    .name = "map",
    .run = run_map,
    .synopsis = "map [--object objectdef] [--image-opts] [-f fmt] "
                "[--start-offset=offset] [--max-length=len] "
                "[--output=ofmt] [-U] filename",
    .help = map_help,
};
