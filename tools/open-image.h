/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The part of every image command that is the same: the options that
 * describe an image argument (-f, --image-opts, --object, -U, -q, -h and
 * getopt's errors), the "Expecting one image file name" and --output
 * checks, and opening the argument with qemu-img's messages.  A command
 * passes each getopt_long() result to cli_image_args_option() first and
 * handles only its own options.
 */
#ifndef VIMG_TOOLS_OPEN_IMAGE_H
#define VIMG_TOOLS_OPEN_IMAGE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "options.h"

/*
 * The getopt_long() table entries of the long options that every image
 * command takes and cli_image_args_option() handles (-f, -U and -q are in
 * the commands' own tables where they exist).
 */
#define CLI_IMAGE_LONGOPTS                                                    \
    {"help", no_argument, NULL, 'h'},                                         \
    {"object", required_argument, NULL, OPT_OBJECT},                          \
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS}

/**
 * struct cli_image_args - the shared options of an image command.
 * @cmd: the command (its help is printed for -h / --help).
 * @format: -f FMT, or NULL to probe.
 * @image_opts: --image-opts was given.
 * @force_share: -U / --force-share was given.
 * @quiet: -q was given (also silences the inline-secret warning).
 * @objects: the --object arguments, defined by cli_image_args_objects().
 * @n_objects: their number.
 */
struct cli_image_args {
    const struct cli_command *cmd;
    const char *format;
    bool image_opts;
    bool force_share;
    bool quiet;
    char **objects;
    size_t n_objects;
};

/**
 * cli_image_args_option - handle one getopt_long() result that is not the
 * command's own (call it from the default: of the command's switch): the
 * shared options 'h' (help), 'f', 'U', 'q', OPT_IMAGE_OPTS, OPT_OBJECT, and
 * getopt's ':' / '?' errors.  Only what the command's option string and
 * table allow reaches here, so a command without -q never sets @a->quiet.
 * @a: the shared options.
 * @c: the value getopt_long() returned.
 * @argv: the argument vector being parsed (for the error messages).
 * @rc: receives the exit status when the command must stop.
 * Return: 0, or -1 if the command must return *@rc now: 0 after the help,
 * 1 after a usage error; left unchanged (the command's failure status)
 * when out of memory.
 */
int cli_image_args_option(struct cli_image_args *a, int c, char **argv,
                          int *rc);

/**
 * cli_image_args_objects - define the collected --object secrets (in the
 * order given, after all options are parsed, as qemu-img does).
 * Return: 0, or -1 after printing the error.
 */
int cli_image_args_objects(const struct cli_image_args *a);

/**
 * cli_image_args_check - refuse --image-opts together with -f.
 * Return: 0, or -1 after printing qemu-img's message.
 */
int cli_image_args_check(const struct cli_image_args *a);

/**
 * cli_image_args_parse - cli_image_args_check(), then resolve @arg with
 * cli_image_parse() (the format is @a->format).
 * Return: 0, or -1 after printing the error.
 */
int cli_image_args_parse(const struct cli_image_args *a, const char *arg,
                         struct cli_image *spec);

/**
 * cli_image_args_open - cli_image_args_parse(), then cli_image_open() with
 * @flags ("Could not open 'ARG': ..." on failure).
 * @spec: filled in; release with cli_image_clear() in any case.
 * Return: 0, or -1 after printing the error.
 */
int cli_image_args_open(const struct cli_image_args *a, const char *arg,
                        unsigned flags, struct cli_image *spec,
                        struct vimg_image **img);

/**
 * cli_image_close - close *@img (which becomes NULL), printing the library's
 * message if that fails (the last writes and the flush happen there).
 * Return: 0, or -1 after the message.
 */
int cli_image_close(struct vimg_image **img);

/** cli_image_args_clear - free what the option parsing collected. */
void cli_image_args_clear(struct cli_image_args *a);

/**
 * cli_expect_one_image - the check that exactly one argument is left after
 * the options: "Expecting one image file name" and the --help hint if not.
 * @argc: the argument count (compared with getopt's optind).
 * Return: 0, or -1 after the message.
 */
int cli_expect_one_image(int argc);

/**
 * cli_parse_output - the value of --output: "human" or "json".
 * @output: the text.
 * @json: set to whether it is "json".
 * Return: 0, or -1 after qemu-img's message.
 */
int cli_parse_output(const char *output, bool *json);

/**
 * cli_metadata_flags - the open flags of a command that only needs the
 * metadata: VIMG_OPEN_NO_IO (no key needed), unless driver options (a key)
 * were given, which are then checked by a normal open as in qemu-img.
 */
static inline unsigned
cli_metadata_flags(const struct cli_image *spec)
{
    return spec->opts ? 0 : VIMG_OPEN_NO_IO;
}

/**
 * cli_path_combine - @name relative to the directory of @image, as qemu
 * resolves backing file names ("dir/img" + "base" -> "dir/base"; an
 * absolute @name or an @image without a directory gives @name).
 * Return: a malloc'd string, or NULL when out of memory.
 */
char *cli_path_combine(const char *image, const char *name);

#endif /* VIMG_TOOLS_OPEN_IMAGE_H */
