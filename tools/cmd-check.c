// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg check": metadata consistency check and repair, byte-compatible
 * with qemu-img 7.2 check (qemu-facts.md 7.3).  The findings of the check
 * ("ERROR cluster 5 refcount=0 reference=1", "Leaked cluster ...",
 * "Repairing ...") go to stderr as they come; the summary goes to stdout,
 * human or JSON (ImageCheck keys in QDict order, present only when
 * non-zero, check-errors always).  After a repair the image is checked
 * again without repairing, as qemu-img does, and that second result is
 * printed with the fixed counts of the first.
 *
 * Exit status: 0 clean, 1 the check failed or was incomplete (open
 * failure, internal errors), 2 corruptions left, 3 leaks left, 63 the
 * format has no checker ("This image format does not support checks").
 *
 * Keys: the check reads metadata only, so without driver options the
 * image is opened metadata-only and no key is needed (qemu needs one for
 * encrypted qcow2).  When driver options are given (e.g. a key-secret),
 * the image is opened normally, so a wrong key fails as in qemu.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "open-image.h"
#include "output.h"

static const char check_help[] =
    "Check FILENAME for metadata inconsistencies (reference counts, tables)\n"
    "and optionally repair them.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF     define a secret (repeatable); see vimg(1)\n"
    "  --image-opts           FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f FMT                 image format (probed by default)\n"
    "  -r leaks|all           repair leaked clusters only, or all errors\n"
    "  --output=FMT           'human' (default) or 'json'\n"
    "  -q                     quiet: print only errors\n"
    "  -T CACHE               accepted for qemu-img compatibility (ignored)\n"
    "  -U, --force-share      accepted (images are opened without locks)\n"
    "  -h, --help             show this help\n"
    "\n"
    "No key is needed for encrypted images unless driver options are given.\n"
    "Exit status: 0 no errors, 1 check failed, 2 corruptions, 3 leaked\n"
    "clusters, 63 the format does not support checks.\n";


static void
report_line(void *opaque, const char *line)
{
    (void)opaque;
    fflush(stdout);
    fprintf(stderr, "%s\n", line);
}

static void
print_human(const struct vimg_check_result *r)
{
    if (r->corruptions == 0 && r->leaks == 0 && r->check_errors == 0) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%" PRId64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image "
                   "may corrupt it.\n", r->corruptions);
        }
        if (r->leaks) {
            printf("\n%" PRId64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   r->leaks);
        }
        if (r->check_errors) {
            printf("\n%" PRId64 " internal errors have occurred during the "
                   "check.\n", r->check_errors);
        }
    }
    if (r->total_clusters != 0 && r->allocated_clusters != 0) {
        printf("%" PRId64 "/%" PRId64 " = %0.2f%% allocated, %0.2f%% "
               "fragmented, %0.2f%% compressed clusters\n",
               r->allocated_clusters, r->total_clusters,
               r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    }
    if (r->image_end_offset) {
        printf("Image end offset: %" PRId64 "\n", r->image_end_offset);
    }
}

static void
add_int(struct json_object *o, const char *key, int64_t v, bool always)
{
    if (always || v != 0) {
        json_object_object_add(o, key, json_object_new_int64(v));
    }
}

/* ImageCheck: members inserted in the QAPI order, printed in QDict order. */
static int
print_json(const struct vimg_check_result *r, const char *filename,
           const char *format)
{
    struct json_object *o = json_object_new_object();
    int ret;

    if (!o) {
        return -ENOMEM;
    }
    json_object_object_add(o, "filename", json_object_new_string(filename));
    json_object_object_add(o, "format", json_object_new_string(format));
    add_int(o, "check-errors", r->check_errors, true);
    add_int(o, "image-end-offset", r->image_end_offset, false);
    add_int(o, "corruptions", r->corruptions, false);
    add_int(o, "leaks", r->leaks, false);
    add_int(o, "corruptions-fixed", r->corruptions_fixed, false);
    add_int(o, "leaks-fixed", r->leaks_fixed, false);
    add_int(o, "total-clusters", r->total_clusters, false);
    add_int(o, "allocated-clusters", r->allocated_clusters, false);
    add_int(o, "fragmented-clusters", r->fragmented_clusters, false);
    add_int(o, "compressed-clusters", r->compressed_clusters, false);
    ret = qjson_print(o);
    json_object_put(o);
    return ret;
}

static int
run_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"repair", required_argument, NULL, 'r'},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_check};
    struct cli_image spec = {0};
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    struct vimg_check_result res;
    const char *output = "human";
    bool quiet, json;
    unsigned fix = 0, flags;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:r:T:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (strcmp(optarg, "leaks") == 0) {
                fix = VIMG_CHECK_FIX_LEAKS;
            } else if (strcmp(optarg, "all") == 0) {
                fix = VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS;
            } else {
                cli_error("Unknown option value for -r (expecting 'leaks' "
                          "or 'all'): %s", optarg);
                cli_try_help();
                goto out;
            }
            break;
        case 'T':
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
    quiet = ia.quiet;
    if (cli_expect_one_image(argc) < 0 ||
        cli_parse_output(output, &json) < 0 ||
        cli_image_args_objects(&ia) < 0 ||
        cli_image_args_parse(&ia, argv[optind], &spec) < 0) {
        goto out;
    }
    /* Metadata-only unless driver options (a key) were given. */
    flags = cli_metadata_flags(&spec) | (fix ? VIMG_OPEN_RDWR : 0) |
            VIMG_OPEN_CHECK;
    if (cli_image_open(&spec, flags, &img) < 0) {
        goto out;
    }

    r = vimg_check(img, fix, &res, report_line, NULL, &err);
    if (r == -ENOTSUP) {
        vimg_error_free(err);
        err = NULL;
        cli_error("This image format does not support checks");
        rc = 63;
        goto out;
    }
    if (r == 0 && (res.corruptions_fixed || res.leaks_fixed)) {
        int64_t cf = res.corruptions_fixed, lf = res.leaks_fixed;

        if (!json && !quiet) {
            printf("The following inconsistencies were found and repaired:"
                   "\n\n    %" PRId64 " leaked clusters\n    %" PRId64
                   " corruptions\n\nDouble checking the fixed image now...\n",
                   lf, cf);
        }
        r = vimg_check(img, 0, &res, report_line, NULL, &err);
        res.corruptions_fixed = cf;
        res.leaks_fixed = lf;
    }
    if (r == 0 && !quiet) {
        if (json) {
            if (print_json(&res, spec.arg, vimg_image_format(img)) < 0) {
                cli_error("%s", strerror(ENOMEM));
                goto out;
            }
        } else {
            print_human(&res);
        }
    }
    fflush(stdout);
    if (r < 0 || res.check_errors) {
        if (r == -EINVAL && err) {
            /* The header is invalid (e.g. qemu would not open it): say why. */
            cli_error("Check failed: %s", vimg_error_message(err));
        } else if (r < 0) {
            cli_error("Check failed: %s", strerror(-r));
        } else {
            cli_error("Check failed");
        }
        goto out;
    }
    rc = res.corruptions ? 2 : res.leaks ? 3 : 0;

out:
    fflush(stdout);
    vimg_error_free(err);
    if (img) {
        struct vimg_error *cerr = NULL;

        r = vimg_image_close(img, &cerr);
        if (r < 0 && rc != 1) {
            cli_error_vimg(cerr, r, NULL);
            rc = 1;
        } else {
            vimg_error_free(cerr);
        }
    }
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    return rc;
}

const struct cli_command cmd_check = {
    .name = "check",
    .run = run_check,
    .synopsis = "check [--object objectdef] [--image-opts] [-q] [-f fmt] "
                "[--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] "
                "filename",
    .help = check_help,
};
