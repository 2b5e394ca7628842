// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The shared options and the opening of an image argument (open-image.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "open-image.h"

int
cli_image_args_option(struct cli_image_args *a, int c, char **argv, int *rc)
{
    switch (c) {
    case 'h':
        cli_print_command_help(a->cmd);
        *rc = 0;
        return -1;
    case 'f':
        a->format = optarg;
        break;
    case 'U':
        a->force_share = true;
        break;
    case 'q':
        a->quiet = true;
        break;
    case OPT_IMAGE_OPTS:
        a->image_opts = true;
        break;
    case OPT_OBJECT:
        if (cli_collect_object(&a->objects, &a->n_objects, optarg) < 0) {
            return -1;      /* *rc: the command's failure status */
        }
        break;
    case ':':
    case '?':
        *rc = cli_getopt_error(c, argv);
        return -1;
    default:
        break;              /* an option the command accepts and ignores */
    }
    return 0;
}

int
cli_image_args_objects(const struct cli_image_args *a)
{
    size_t i;

    for (i = 0; i < a->n_objects; i++) {
        if (cli_add_object(a->objects[i], a->quiet) < 0) {
            return -1;
        }
    }
    return 0;
}

int
cli_image_args_check(const struct cli_image_args *a)
{
    if (a->image_opts && a->format) {
        cli_error("--image-opts and --format are mutually exclusive");
        return -1;
    }
    return 0;
}

int
cli_image_args_parse(const struct cli_image_args *a, const char *arg,
                     struct cli_image *spec)
{
    if (cli_image_args_check(a) < 0 ||
        cli_image_parse(arg, a->image_opts, a->format, spec) < 0) {
        return -1;
    }
    return 0;
}

int
cli_image_args_open(const struct cli_image_args *a, const char *arg,
                    unsigned flags, struct cli_image *spec,
                    struct vimg_image **img)
{
    if (cli_image_args_parse(a, arg, spec) < 0 ||
        cli_image_open(spec, flags, img) < 0) {
        return -1;
    }
    return 0;
}

int
cli_image_close(struct vimg_image **img)
{
    struct vimg_error *err = NULL;
    int r = vimg_image_close(*img, &err);

    *img = NULL;
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return -1;
    }
    return 0;
}

void
cli_image_args_clear(struct cli_image_args *a)
{
    free(a->objects);
    a->objects = NULL;
    a->n_objects = 0;
}

int
cli_expect_one_image(int argc)
{
    if (optind != argc - 1) {
        cli_error("Expecting one image file name");
        cli_try_help();
        return -1;
    }
    return 0;
}

int
cli_parse_output(const char *output, bool *json)
{
    if (strcmp(output, "json") == 0) {
        *json = true;
    } else if (strcmp(output, "human") == 0) {
        *json = false;
    } else {
        cli_error("--output must be used with human or json as argument.");
        return -1;
    }
    return 0;
}

char *
cli_path_combine(const char *image, const char *name)
{
    const char *slash = strrchr(image, '/');
    char *out;

    if (name[0] == '/' || !slash) {
        return strdup(name);
    }
    if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, name) < 0) {
        return NULL;
    }
    return out;
}
