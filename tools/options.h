/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared pieces of the vimg command-line tool: the command table entry type,
 * error printing ("vimg: message"), qemu-style size parsing, --object
 * handling with the process-wide secret store, and the description of an
 * image argument (plain filename, --image-opts option string or json:{...}
 * pseudo-filename) together with the helper that opens it.
 */
#ifndef VIMG_TOOLS_OPTIONS_H
#define VIMG_TOOLS_OPTIONS_H

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vimg.h"

#define CLI_NAME "vimg"

/* Long-option values shared by the commands (above the char range). */
enum {
    OPT_OBJECT = 256,
    OPT_IMAGE_OPTS,
    OPT_TARGET_IMAGE_OPTS,
    OPT_TARGET_IS_ZERO,
    OPT_OUTPUT,
    OPT_BACKING_CHAIN,
    OPT_FORCE_SHARE,
    OPT_HELP,
};

/**
 * struct cli_command - one entry of the command table.
 * @name: the command word ("create").
 * @run: entry point; receives argv with argv[0] == the command word and
 *   returns the process exit status.
 * @synopsis: the one-line usage without the "vimg " prefix.
 * @help: per-command option list (multi-line), printed by --help.
 */
struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
    const char *help;
};

extern const struct cli_command cmd_amend;
extern const struct cli_command cmd_create;
extern const struct cli_command cmd_info;
extern const struct cli_command cmd_convert;
extern const struct cli_command cmd_dd;
extern const struct cli_command cmd_compare;
extern const struct cli_command cmd_check;
extern const struct cli_command cmd_io;
extern const struct cli_command cmd_map;
extern const struct cli_command cmd_measure;
extern const struct cli_command cmd_resize;
extern const struct cli_command cmd_snapshot;
extern const struct cli_command cmd_commit;
extern const struct cli_command cmd_rebase;
extern const struct cli_command cmd_luks;
extern const struct cli_command cmd_broker;
extern const struct cli_command cmd_serve;
extern const struct cli_command cmd_reencrypt;

/**
 * cli_error - print "vimg: <message>" and a newline to stderr.
 * @fmt: printf format.
 */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * cli_error_vimg - print "vimg: <prefix><library message>" and free @err.
 * @err: library error object (may be NULL: then strerror of @code is used).
 * @code: the negative errno the library returned.
 * @fmt: printf format of the prefix (may be NULL for no prefix).
 */
void cli_error_vimg(struct vimg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** cli_try_help - print qemu's "Try 'vimg --help'..." hint to stderr. */
void cli_try_help(void);

/**
 * cli_getopt_error - report a getopt_long failure like qemu-img does.
 * @c: the value getopt_long returned (':' or '?').
 * @argv: the argument vector that was being parsed.
 * Return: 1 (the exit status to use).
 */
int cli_getopt_error(int c, char **argv);

/**
 * cli_print_command_help - print "usage: vimg SYNOPSIS" and the option list.
 * @cmd: the command.
 */
void cli_print_command_help(const struct cli_command *cmd);

/**
 * cli_parse_size - parse a size like qemu-img: blanks, an optional '+',
 * decimal or 0x-hex, optional fraction (only with a k/M/G/T/P/E suffix),
 * optional suffix b/k/M/G/T/P/E.
 * @str: the text.
 * @out: receives the value in bytes.
 * Return: 0, -EINVAL (syntax) or -ERANGE (does not fit in 64 bits).
 */
int cli_parse_size(const char *str, uint64_t *out);

/**
 * cli_parse_size_plus - the same as cli_parse_size(), which now takes the
 * leading '+' itself; kept for the callers that still use this name.
 * @str: the text.
 * @out: receives the value in bytes.
 * Return: as cli_parse_size().
 */
static inline int
cli_parse_size_plus(const char *str, uint64_t *out)
{
    return cli_parse_size(str, out);
}

/** cli_print_size_error - print qemu's two-line "Invalid WHAT specified" hint.
 */
void cli_print_size_error(const char *what);

/**
 * cli_add_object - pass one --object definition to the secret store.
 * @spec: the option argument, normally a string of vimg's argv.  Once it is
 *        parsed, the values of its data= parameters are overwritten with
 *        '*' in place, so /proc/PID/cmdline no longer shows them.
 * @quiet: suppress the warning about secrets given inline (data=).
 * Return: 0, or -errno after printing the error.
 */
int cli_add_object(char *spec, bool quiet);

/**
 * cli_warn_plaintext - print one warning line on stderr (unless @quiet)
 * when decrypted guest data is about to be written into an unencrypted
 * image: @src or a layer of its backing chain down to (not including)
 * @stop is encrypted and @dst is not.  Return: whether it warned.
 */
bool cli_warn_plaintext(const struct vimg_image *src,
                        const struct vimg_image *stop,
                        const struct vimg_image *dst, bool quiet);

/** cli_secrets - the process-wide secret store (created on first use). */
struct vimg_secrets *cli_secrets(void);

/** cli_secrets_release - wipe and free the secret store (idempotent). */
void cli_secrets_release(void);

/**
 * struct cli_image - an image argument, resolved.
 * @arg: the argument as typed (used in "Could not open 'ARG'").
 * @path: the file name.
 * @format: driver/format name or NULL to probe.
 * @opts: remaining driver options for vimg_image_open() or NULL.
 * @structured: the name came from --image-opts or json:{...}.
 */
struct cli_image {
    const char *arg;
    char *path;
    char *format;
    struct vimg_opts *opts;
    bool structured;
};

/**
 * cli_image_parse - resolve an image argument.
 * @arg: filename, option string (with @image_opts) or "json:{...}".
 * @image_opts: @arg is an --image-opts string.
 * @format: -f value or NULL.
 * @img: filled in; release with cli_image_clear().
 * Return: 0, or -errno after printing the error.
 */
int cli_image_parse(const char *arg, bool image_opts, const char *format,
                    struct cli_image *img);

/** cli_image_clear - free what cli_image_parse() allocated. */
void cli_image_clear(struct cli_image *img);

/**
 * cli_image_open - open a resolved image, printing
 * "vimg: Could not open 'ARG': <reason>" on failure.
 * @img: the resolved argument.
 * @flags: VIMG_OPEN_* flags.
 * @out: receives the handle.
 * Return: 0 or -errno.
 */
int cli_image_open(struct cli_image *img, unsigned flags,
                   struct vimg_image **out);

/**
 * cli_image_display_name - the name qemu-img shows for an image: the plain
 * file name, or a json:{...} pseudo-filename when driver options were given.
 * @img: the resolved argument.
 * @format: the format actually used (from the open image).
 * Return: a malloc'd string (caller frees) or NULL on allocation failure.
 */
char *cli_image_display_name(const struct cli_image *img, const char *format);

/**
 * cli_find_opt_desc - look @name up in a create-option list.
 * @desc: list terminated by name == NULL (may be NULL).
 * Return: the entry or NULL.
 */
const struct vimg_opt_desc *cli_find_opt_desc(const struct vimg_opt_desc *desc,
                                              const char *name);

/**
 * cli_check_opt_value - check one -o value against the type of its creation
 * option, as qemu-img does while parsing -o (before "Formatting ..." or
 * anything is created): sizes as cli_parse_size(), numbers as strtoull() in
 * any base, booleans on/yes/true/y or off/no/false/n.
 * @prefix: message prefix, e.g. "FILENAME: " (create), or NULL (convert).
 * @d: the option's description.
 * @v: the value.
 * Return: 0, or -EINVAL after printing qemu's message (and, for sizes, its
 * two-line suffix hint).
 */
int cli_check_opt_value(const char *prefix, const struct vimg_opt_desc *d,
                        const char *v);

/**
 * cli_is_help_option - whether an -o string asks for help ("help" or "?"
 * as one of its comma-separated elements).
 */
bool cli_is_help_option(const char *opts);

/**
 * cli_print_create_help - print "-o help" for @format like qemu-img.
 * @format: a known format name.
 * @with_filename: a target filename was given (qemu then lists the merged
 *   option set under "Supported options:").
 */
void cli_print_create_help(const char *format, bool with_filename);

/**
 * cli_append_opts - append ",@more" to the heap string *@dst (qemu joins
 * repeated -o options with commas).
 * Return: 0, or -ENOMEM after printing the error.
 */
int cli_append_opts(char **dst, const char *more);

/**
 * cli_collect_object - remember one --object argument; the definitions are
 * applied once every option is parsed (qemu-img's order).  Prints the
 * error itself.
 * Return: 0, or -ENOMEM.
 */
int cli_collect_object(char ***objects, size_t *n_objects, char *arg);

#endif /* VIMG_TOOLS_OPTIONS_H */
