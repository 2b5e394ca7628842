// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg convert": copy the guest content of one or more images (concatenated
 * like qemu-img) into a new or, with -n, an existing target.  A new target is
 * made with vimg_image_create() from the -o options and then opened
 * read-write; its key-secret options are reused to open it.  One source goes
 * through vimg_copy(); several are copied one after another here.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"
#include "progress.h"

static const char convert_help[] =
    "Convert (copy) FILENAME... into OUTPUT_FILENAME; several sources are\n"
    "concatenated.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         source names are option strings\n"
    "  --target-image-opts  the target name is an option string (needs -n)\n"
    "  -f FMT               source format (probed by default)\n"
    "  -O OUTPUT_FMT        target format (default raw)\n"
    "  -o OPTIONS           target creation options, e.g. "
    "key-secret=sec0;\n"
    "                       '-o help' lists them\n"
    "  -n                   do not create the target; it must exist\n"
    "  --target-is-zero     the existing target reads as zeroes (needs -n)\n"
    "  -S SPARSE_SIZE       zero runs of this size are not written "
    "(default 4k,\n"
    "                       0 writes everything)\n"
    "  -c                   compress (not supported by raw and luks)\n"
    "  -B BACKING_FILE      give the new target this backing file "
    "(qcow2, qcow);\n"
    "                       what the source reads from its own backing "
    "file is\n"
    "                       not copied (as qemu-img)\n"
    "  -F BACKING_FMT       its format (required with -B)\n"
    "  -l SNAPSHOT_PARAM    convert a qcow2 snapshot: an id or name, or\n"
    "                       'snapshot.id=ID,snapshot.name=NAME'\n"
    "  -p                   show progress\n"
    "  -q                   quiet\n"
    "  -m NUM, -W           accepted for compatibility (1 <= NUM <= 16)\n"
    "  -t CACHE, -T CACHE   accepted and ignored\n"
    "  -U, --force-share    accepted\n"
    "  -h, --help           show this help\n";

#define COPY_CHUNK (2u << 20)

/* convert -l: "snapshot.id=ID,snapshot.name=NAME", or an id or name. */
struct snapshot_param {
    bool given;
    char *id;           /* from snapshot.id= */
    char *name;         /* from snapshot.name= */
    const char *plain;  /* an id or a name */
};

static int
parse_snapshot_param(const char *arg, struct snapshot_param *sp)
{
    struct vimg_opts *o;
    struct vimg_error *err = NULL;
    size_t i, n;
    int r;

    free(sp->id);
    free(sp->name);
    memset(sp, 0, sizeof(*sp));
    sp->given = true;
    if (strncmp(arg, "snapshot.", 9) != 0) {
        sp->plain = arg;
        return 0;
    }
    o = vimg_opts_new();
    if (!o) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    r = vimg_opts_parse(o, arg, NULL, &err);
    n = r < 0 ? 0 : vimg_opts_count(o);
    for (i = 0; r == 0 && i < n; i++) {
        const char *k = vimg_opts_key(o, i);
        char **dst = strcmp(k, "snapshot.id") == 0     ? &sp->id
                     : strcmp(k, "snapshot.name") == 0 ? &sp->name
                                                       : NULL;

        if (!dst) {
            cli_error("Invalid parameter '%s'", k);
            r = -EINVAL;
        } else {
            free(*dst);
            *dst = strdup(vimg_opts_value(o, i));
            if (!*dst) {
                r = -ENOMEM;
            }
        }
    }
    if (r < 0) {
        if (err) {
            cli_error_vimg(err, r, NULL);
        }
        cli_error("Failed in parsing snapshot param '%s'", arg);
    }
    vimg_opts_free(o);
    return r;
}

/* Show the snapshot's content instead of the current one (read-only). */
static int
load_snapshot(struct vimg_image *img, const struct snapshot_param *sp)
{
    struct vimg_error *err = NULL;
    int r;

    if (sp->plain) {
        r = vimg_snapshot_load(img, sp->plain, NULL, &err);
        if (r == -ENOENT) {
            vimg_error_free(err);
            err = NULL;
            r = vimg_snapshot_load(img, NULL, sp->plain, &err);
        }
    } else {
        r = vimg_snapshot_load(img, sp->id, sp->name, &err);
    }
    if (r == -ENOTSUP) {
        vimg_error_free(err);
        cli_error("Failed to load snapshot: Block format '%s' used by device "
                  "'' does not support temporarily loading internal "
                  "snapshots", vimg_image_format(img));
    } else if (r < 0) {
        cli_error_vimg(err, r, "Failed to load snapshot: ");
    }
    return r;
}

static bool
all_zero(const unsigned char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/* Copy @src to @dst at @base (used when there are several sources). */
static int
copy_at(struct vimg_image *src, struct vimg_image *dst, uint64_t base,
        const struct vimg_copy_params *params, struct cli_progress *prog)
{
    uint64_t size = vimg_image_size(src), off;
    struct vimg_error *err = NULL;
    unsigned char *buf = malloc(COPY_CHUNK);
    bool zero_ok = params->target_is_zero || params->target_has_zero_init;
    int r = 0;

    if (!buf) {
        cli_error("%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    for (off = 0; off < size; off += COPY_CHUNK) {
        size_t n = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;

        r = vimg_image_pread(src, buf, n, off, &err);
        if (r < 0) {
            /* qemu: the target offset and just the errno text. */
            vimg_error_free(err);
            err = NULL;
            cli_error_vimg(NULL, r, "error while reading at byte %" PRIu64
                           ": ", base + off);
            break;
        }
        if (params->sparse_size && all_zero(buf, n)) {
            if (!zero_ok) {
                r = vimg_image_zero(dst, base + off, n, 0, &err);
            }
        } else {
            r = vimg_image_pwrite(dst, buf, n, base + off, &err);
        }
        if (r < 0) {
            vimg_error_free(err);
            err = NULL;
            cli_error_vimg(NULL, r, "error while writing at byte %" PRIu64
                           ": ", base + off);
            break;
        }
        progress_cb(prog, off + n, size);
    }
    free(buf);
    return r < 0 ? r : 0;
}

/* Build open options for a freshly created target: its key secrets. */
static int
target_open_opts(struct vimg_opts *create, struct vimg_opts **out)
{
    size_t i, n = create ? vimg_opts_count(create) : 0;
    struct vimg_opts *o = NULL;

    *out = NULL;
    for (i = 0; i < n; i++) {
        const char *k = vimg_opts_key(create, i);
        size_t kl = strlen(k);

        if (kl >= 10 && strcmp(k + kl - 10, "key-secret") == 0) {
            if (!o && !(o = vimg_opts_new())) {
                return -ENOMEM;
            }
            if (vimg_opts_set(o, k, vimg_opts_value(create, i)) < 0) {
                vimg_opts_free(o);
                return -ENOMEM;
            }
        }
    }
    *out = o;
    return 0;
}

static int
run_convert(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"target-image-opts", no_argument, NULL, OPT_TARGET_IMAGE_OPTS},
        {"target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_convert};
    struct cli_image *srcs = NULL, target = {0};
    struct vimg_image **src_imgs = NULL, *dst = NULL;
    struct vimg_opts *copts = NULL, *open_opts = NULL;
    struct vimg_error *err = NULL;
    struct vimg_copy_params params = {0};
    struct cli_progress prog = {0};
    const char *out_fmt = NULL, *out_name;
    const char *out_base = NULL, *out_base_fmt = NULL;
    const struct vimg_opt_desc *desc;
    char *optstr = NULL;
    size_t n_src = 0, i, n;
    bool tgt_image_opts = false, tgt_is_zero = false;
    bool no_create = false, quiet, show_progress = false;
    bool compress = false, created = false;
    struct snapshot_param snap = {0};
    uint64_t sparse = 4096, total = 0, base = 0;
    int c, rc = 1, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:",
                            longopts, NULL)) != -1) {
        switch (c) {
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            if (cli_append_opts(&optstr, optarg) < 0) {
                goto out;
            }
            break;
        case 'c':
            compress = true;
            break;
        case 'n':
            no_create = true;
            break;
        case 'p':
            show_progress = true;
            break;
        case 'S': {
            uint64_t v;

            if (cli_parse_size(optarg, &v) < 0 || v % 512 != 0 ||
                v > 16u * 1024 * 1024) {
                cli_error("Invalid buffer size for sparse output specified. "
                          "Valid sizes are multiples of 512 up to 16777216. "
                          "Select 0 to disable sparse detection (fully "
                          "allocates output).");
                goto out;
            }
            sparse = v;
            break;
        }
        case 'm': {
            char *end;
            long v = strtol(optarg, &end, 10);

            if (*optarg == '\0' || *end || v < 1 || v > 16) {
                cli_error("Invalid number of coroutines. Allowed number of "
                          "coroutines is between 1 and 16");
                goto out;
            }
            break;
        }
        case 'B':
            out_base = optarg;
            break;
        case 'F':
            out_base_fmt = optarg;
            break;
        case 'l':
            if (parse_snapshot_param(optarg, &snap) < 0) {
                goto out;
            }
            break;
        case 'C':
        case 'W':
        case 't':
        case 'T':
        case 'r':
            break;
        case OPT_TARGET_IMAGE_OPTS:
            tgt_image_opts = true;
            break;
        case OPT_TARGET_IS_ZERO:
            tgt_is_zero = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    quiet = ia.quiet;
    if (cli_image_args_objects(&ia) < 0 || cli_image_args_check(&ia) < 0) {
        goto out;
    }
    if (tgt_image_opts && !no_create) {
        cli_error("--target-image-opts requires use of -n flag");
        goto out;
    }
    if (tgt_is_zero && !no_create) {
        cli_error("--target-is-zero requires use of -n flag");
        goto out;
    }
    if (!out_fmt && !tgt_image_opts && !no_create) {
        out_fmt = "raw";
    }

    if (optstr && cli_is_help_option(optstr)) {
        const char *f = out_fmt ? out_fmt : "raw";

        if (!vimg_format_known(f)) {
            cli_error("Unknown file format '%s'", f);
            goto out;
        }
        cli_print_create_help(f, optind < argc);
        rc = 0;
        goto out;
    }

    if (argc - optind < 2) {
        cli_error("Must specify image file name");
        goto out;
    }
    n_src = (size_t)(argc - optind - 1);
    out_name = argv[argc - 1];

    if (out_fmt && !vimg_format_known(out_fmt)) {
        cli_error("Unknown file format '%s'", out_fmt);
        goto out;
    }
    if (compress && strcmp(out_fmt, "qcow2") != 0 &&
        strcmp(out_fmt, "qcow") != 0) {
        cli_error("Compression not supported for this file format");
        goto out;
    }
    srcs = calloc(n_src, sizeof(*srcs));
    src_imgs = calloc(n_src, sizeof(*src_imgs));
    if (!srcs || !src_imgs) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    for (i = 0; i < n_src; i++) {
        if (cli_image_args_open(&ia, argv[optind + i], 0, &srcs[i],
                                &src_imgs[i]) < 0) {
            goto out;
        }
        if (snap.given && n_src > 1) {
            cli_error("No support for concatenating multiple snapshot");
            goto out;
        }
        if (snap.given && load_snapshot(src_imgs[i], &snap) < 0) {
            goto out;
        }
        total += vimg_image_size(src_imgs[i]);
    }

    copts = vimg_opts_new();
    if (!copts) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }
    if (optstr) {
        r = vimg_opts_parse(copts, optstr, NULL, &err);
        if (r < 0) {
            cli_error_vimg(err, r, NULL);
            goto out;
        }
    }
    if (out_base && n_src > 1) {
        cli_error("Having a backing file for the target makes no sense when "
                  "concatenating multiple input images");
        goto out;
    }
    if (!no_create && (out_base || out_base_fmt)) {
        /* -B/-F: the target's backing file (what the source reads from
         * its own backing file is left to it, see vimg_copy()). */
        if (out_base &&
            !cli_find_opt_desc(vimg_format_create_opts(out_fmt),
                               "backing_file")) {
            cli_error("Backing file not supported for file format '%s'",
                      out_fmt);
            goto out;
        }
        if (out_base && !out_base_fmt &&
            !vimg_opts_get(copts, "backing_fmt")) {
            cli_error("Use of backing file requires explicit backing format");
            goto out;
        }
        if ((out_base && vimg_opts_set(copts, "backing_file", out_base) < 0) ||
            (out_base_fmt &&
             vimg_opts_set(copts, "backing_fmt", out_base_fmt) < 0)) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
    }
    {
        /* qcow2-core: encryption vs -c, and the legacy AES warning. */
        const char *ef = vimg_opts_get(copts, "encrypt.format");
        const char *eo = vimg_opts_get(copts, "encryption");
        bool enc_on = eo && strcmp(eo, "off") && strcmp(eo, "no") &&
                      strcmp(eo, "false");

        if (compress && !no_create && (ef || enc_on)) {
            cli_error("Compression and encryption not supported at the same "
                      "time");
            goto out;
        }
        if (!no_create && ((ef && strcmp(ef, "aes") == 0) || enc_on)) {
            fprintf(stderr, CLI_NAME ": warning: AES-CBC encryption "
                    "(encrypt.format=aes) is insecure and only supported for "
                    "compatibility; use encrypt.format=luks\n");
        }
    }

    if (!no_create) {
        struct vimg_opts *cleaned = vimg_opts_new();

        desc = vimg_format_create_opts(out_fmt);
        if (!cleaned) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
        n = vimg_opts_count(copts);
        for (i = 0; i < n; i++) {
            const char *k = vimg_opts_key(copts, i);
            const struct vimg_opt_desc *d = cli_find_opt_desc(desc, k);

            if (!d) {
                cli_error("Invalid parameter '%s'", k);
                vimg_opts_free(cleaned);
                goto out;
            }
            if (cli_check_opt_value(NULL, d, vimg_opts_value(copts, i)) < 0) {
                vimg_opts_free(cleaned);
                goto out;
            }
            /* The size is always the total size of the sources. */
            if (strcmp(k, "size") != 0 &&
                vimg_opts_set(cleaned, k, vimg_opts_value(copts, i)) < 0) {
                cli_error("%s", strerror(ENOMEM));
                vimg_opts_free(cleaned);
                goto out;
            }
        }
        vimg_opts_free(copts);
        copts = cleaned;
        r = vimg_image_create(out_name, out_fmt, total, copts, cli_secrets(),
                              &err);
        if (r < 0) {
            cli_error_vimg(err, r, "%s: error while converting %s: ", out_name,
                           out_fmt);
            goto out;
        }
        created = true;
    }

    if (tgt_image_opts) {
        if (cli_image_parse(out_name, true, NULL, &target) < 0) {
            goto out;
        }
    } else {
        if (cli_image_parse(out_name, false, out_fmt, &target) < 0) {
            goto out;
        }
        if (target_open_opts(copts, &open_opts) < 0) {
            cli_error("%s", strerror(ENOMEM));
            goto out;
        }
        target.opts = open_opts;
        open_opts = NULL;
    }
    if (cli_image_open(&target, VIMG_OPEN_RDWR, &dst) < 0) {
        goto out;
    }
    if (vimg_image_size(dst) < total) {
        cli_error("output file is smaller than input file");
        goto out;
    }
    for (i = 0; i < n_src; i++) {
        if (cli_warn_plaintext(src_imgs[i], NULL, dst, quiet)) {
            break;
        }
    }

    params.sparse_size = sparse;
    params.compress = compress;
    params.target_is_zero = tgt_is_zero;
    params.target_has_zero_init =
        created && strcmp(vimg_image_format(dst), "raw") == 0;
    params.progress = progress_cb;
    params.progress_opaque = &prog;
    params.target_has_backing =
        created && vimg_opts_get(copts, "backing_file") != NULL;

    progress_start(&prog, show_progress && !quiet);
    if (n_src == 1) {
        r = vimg_copy(src_imgs[0], dst, &params, &err);
        if (r < 0) {
            progress_finish(&prog, false);
            cli_error_vimg(err, r, NULL);
            goto out;
        }
    } else {
        prog.total = total;
        for (i = 0; i < n_src; i++) {
            prog.base = base;
            if (copy_at(src_imgs[i], dst, base, &params, &prog) < 0) {
                progress_finish(&prog, false);
                goto out;
            }
            base += vimg_image_size(src_imgs[i]);
        }
    }
    r = vimg_image_close(dst, &err);
    dst = NULL;
    if (r < 0) {
        progress_finish(&prog, false);
        cli_error_vimg(err, r, NULL);
        goto out;
    }
    progress_finish(&prog, true);
    rc = 0;

out:
    vimg_image_close(dst, NULL);
    for (i = 0; i < n_src; i++) {
        if (src_imgs) {
            vimg_image_close(src_imgs[i], NULL);
        }
        if (srcs) {
            cli_image_clear(&srcs[i]);
        }
    }
    free(srcs);
    free(src_imgs);
    cli_image_clear(&target);
    vimg_opts_free(copts);
    vimg_opts_free(open_opts);
    free(optstr);
    cli_image_args_clear(&ia);
    free(snap.id);
    free(snap.name);
    return rc;
}

const struct cli_command cmd_convert = {
    .name = "convert",
    .run = run_convert,
    .synopsis = "convert [--object objectdef] [--image-opts] "
                "[--target-image-opts] [--target-is-zero] [-U] [-c] [-p] "
                "[-q] [-n] [-f fmt] [-t cache] [-T src_cache] "
                "[-O output_fmt] [-o options] [-l snapshot_param] [-S sparse_size] [-m num] [-W] "
                "filename [filename2 [...]] output_filename",
    .help = convert_help,
};
