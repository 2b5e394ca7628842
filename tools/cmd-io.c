// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg io": a small qemu-io.  It opens one image (read-write unless -r;
 * encrypted images need their key) and runs the commands given with -c, in
 * order, or read from standard input when there is none.  Commands:
 * read, write (pattern, -z zeroes, -s file), discard, flush, truncate,
 * length, info, sleep, help, quit - with qemu-io 7.2's syntax, size
 * suffixes, messages and output: the summary line
 * "wrote 65536/65536 bytes at offset 0", the statistics line (sizes and
 * rates as qemu-io prints them; the times naturally differ), -C's
 * machine-readable line, -v's hex dump and "Pattern verification failed
 * at offset N, N bytes" for read -P.
 *
 * Exit status as qemu-io: 1 if the image cannot be opened or any command
 * failed (later commands still run), else 0.  As in qemu-io, the results
 * and most command errors go to stdout, unknown commands and argument
 * count errors to stderr.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "open-image.h"
#include "output.h"

/* qemu's largest single request (2 GiB - 512). */
#define IO_MAX_REQUEST 2147483136ULL
#define IO_MAX_ARGS 64

static const char io_help[] =
    "Open FILENAME and run qemu-io commands on it: each -c CMD in turn, or "
    "lines\nfrom standard input when there is no -c.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF   define a secret (repeatable); see vimg(1)\n"
    "  --image-opts         FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -c, --cmd CMD        run CMD (repeatable), e.g. 'write -P 0xab 0 "
    "64k'\n"
    "  -f, --format FMT     image format (probed by default)\n"
    "  -r, --read-only      open read-only\n"
    "  -U, --force-share    accepted (images are opened without locks)\n"
    "  -n, -t CACHE, -d DISCARD, -i AIO, -k, -m, -C, -T TRACE\n"
    "                       accepted for qemu-io compatibility (ignored)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Commands (run 'help' or 'help CMD' inside for details):\n"
    "  read [-Cqv] [-P pattern [-s off] [-l len]] off len\n"
    "  write [-Cfnquz] [-P pattern | -z | -s source_file] off len\n"
    "  discard [-Cq] off len\n"
    "  truncate [-m prealloc_mode] off\n"
    "  flush, length, info, sleep ms, help [cmd], quit\n"
    "Sizes take the suffixes k, M, G, T, P, E (powers of 1024).\n"
    "Exit status: 1 if a command failed, else 0.\n";

struct io_ctx {
    struct vimg_image *img;
    bool failed;
    bool quit;
};

struct io_cmd {
    const char *name;
    const char *altname;
    int (*fn)(struct io_ctx *ctx, int argc, char **argv);
    int argmin;
    int argmax; /* -1: no limit */
    const char *args;
    const char *oneline;
    const char *help;
};

static const struct io_cmd *find_cmd(const char *name);

/* ---- numbers, sizes and reports ------------------------------------------ */

/*
 * qemu-io's number argument: a size with optional suffix; errors print
 * qemu-io's "Parsing error" line.  Return 0 or -1.
 */
static int
cvtnum(const char *s, uint64_t *out)
{
    int r = cli_parse_size(s, out);

    if (r == -ERANGE || (r == 0 && *out > INT64_MAX)) {
        printf("Parsing error: argument too large -- %s\n", s);
        return -1;
    }
    if (r < 0 || *s == ' ' || *s == '\t') {
        printf("Parsing error: non-numeric argument, or extraneous/"
               "unrecognized suffix -- %s\n",
               s);
        return -1;
    }
    return 0;
}

/*
 * qemu-io's human size: three decimals and a binary unit from KiB up, six
 * decimals for plain bytes, and a ".000..." tail dropped.
 */
static char *
cvtstr(double v, char *buf, size_t len)
{
    static const char *const units[] = {" KiB", " MiB", " GiB",
                                        " TiB", " PiB", " EiB"};
    const char *unit = " bytes";
    char num[40], *dot;
    int i = -1;

    while (i < 5 && v >= 1024.0) {
        v /= 1024.0;
        i++;
    }
    if (i >= 0) {
        unit = units[i];
        snprintf(num, sizeof(num), "%.3f", v);
    } else {
        snprintf(num, sizeof(num), "%f", v);
    }
    dot = strstr(num, ".000");
    if (dot) {
        *dot = '\0';
    }
    snprintf(buf, len, "%.39s%s", num, unit);
    return buf;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
timestr(double secs, bool compact, char *buf, size_t len)
{
    unsigned long cs = (unsigned long)(secs * 100.0 + 0.5);
    unsigned long h = cs / 360000, m = cs / 6000 % 60, s = cs / 100 % 60;

    if (compact) {
        snprintf(buf, len, "%lu:%02lu:%02lu.%02lu", h, m, s, cs % 100);
    } else if (h) {
        snprintf(buf, len, "%lu:%02lu:%02lu.%02lu", h, m, s, cs % 100);
    } else if (m) {
        snprintf(buf, len, "%02lu:%02lu.%02lu sec", m, s, cs % 100);
    } else {
        snprintf(buf, len, "%02lu.%02lu sec", s, cs % 100);
    }
}

/* The two report lines (or -C's one) after a successful request. */
static void
report(const char *op, double secs, uint64_t offset, uint64_t count,
       bool compact)
{
    char t[64], a[64], b[64];
    double s = secs > 0 ? secs : 1e-9;

    timestr(secs, compact, t, sizeof(t));
    if (compact) {
        printf("%" PRIu64 ",1,%s,%.3f,%.3f\n", count, t, (double)count / s,
               1.0 / s);
        return;
    }
    printf("%s %" PRIu64 "/%" PRIu64 " bytes at offset %" PRIu64 "\n", op,
           count, count, offset);
    printf("%s, 1 ops; %s (%s/sec and %.4f ops/sec)\n",
           cvtstr((double)count, a, sizeof(a)), t,
           cvtstr((double)count / s, b, sizeof(b)), 1.0 / s);
}

static void
usage_line(const struct io_cmd *c)
{
    printf("%s %s%s-- %s\n", c->name, c->args ? c->args : "",
           c->args ? " " : "", c->oneline);
}

/*
 * The OFFSET and LENGTH operands of a request (argv[optind] and the next),
 * and qemu-io's limit on the length (@limit_how: "" or " without -n", or
 * NULL for no limit).  Return 0 or -1 after the message.
 */
static int
parse_request(char **argv, const char *limit_how, uint64_t *offset,
              uint64_t *count)
{
    if (cvtnum(argv[optind], offset) < 0 ||
        cvtnum(argv[optind + 1], count) < 0) {
        return -1;
    }
    if (limit_how && *count > IO_MAX_REQUEST) {
        printf("length cannot exceed %llu%s, given %s\n", IO_MAX_REQUEST,
               limit_how, argv[optind + 1]);
        return -1;
    }
    return 0;
}

static int
usage_fail(const char *name)
{
    usage_line(find_cmd(name));
    return -1;
}

/* Reset getopt for a command's own options (glibc: optind 0 re-inits). */
static void
getopt_reset(void)
{
    optind = 0;
    opterr = 1;
}

static int
parse_pattern(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 0);
    if (errno || end == s || *end || v < 0 || v > 255) {
        printf("%s is not a valid pattern byte\n", s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The request must lie in the image; qemu-io reports EIO otherwise. */
static bool
in_range(struct io_ctx *ctx, uint64_t off, uint64_t len)
{
    uint64_t size = vimg_image_size(ctx->img);

    return off <= size && len <= size - off;
}

static int
need_writable(struct io_ctx *ctx)
{
    if (!vimg_image_writable(ctx->img)) {
        cli_error("Block node is read-only");
        return -1;
    }
    return 0;
}

static void
hexdump(const uint8_t *p, uint64_t offset, size_t len)
{
    size_t i, j;

    for (i = 0; i < len; i += 16) {
        size_t n = len - i < 16 ? len - i : 16;

        printf("%08" PRIx64 ":  ", offset + i);
        for (j = 0; j < n; j++) {
            printf("%02x ", p[i + j]);
        }
        putchar(' ');
        for (j = 0; j < n; j++) {
            putchar(isalnum(p[i + j]) ? p[i + j] : '.');
        }
        putchar('\n');
    }
}

/* ---- commands ------------------------------------------------------------ */

/*
 * What follows "read failed: " and the like: qemu-io's errno text, but the
 * library's message when vimg refuses the request (an unfinished
 * re-encryption, a handle outdated by one): there the errno text
 * ("Device or resource busy") does not say why.
 */
static const char *
fail_reason(int r, const struct vimg_error *err)
{
    if (err && (r == -EBUSY || r == -ESTALE)) {
        return vimg_error_message(err);
    }
    return strerror(-r);
}

static int
do_read(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    uint64_t offset, count, poff = 0, plen = 0;
    bool cflag = false, qflag = false, vflag = false, pflag = false;
    bool sflag = false, lflag = false;
    int pattern = 0, c, r, ret = 0;
    uint8_t *buf;
    double t0, t1;

    getopt_reset();
    while ((c = getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        switch (c) {
        case 'b':
            printf("-b: the VM state is not supported\n");
            return -1;
        case 'C':
            cflag = true;
            break;
        case 'l':
            lflag = true;
            if (cvtnum(optarg, &plen) < 0) {
                return -1;
            }
            break;
        case 'p':
            break;
        case 'P':
            pflag = true;
            if (parse_pattern(optarg, &pattern) < 0) {
                return -1;
            }
            break;
        case 'q':
            qflag = true;
            break;
        case 's':
            sflag = true;
            if (cvtnum(optarg, &poff) < 0) {
                return -1;
            }
            break;
        case 'v':
            vflag = true;
            break;
        default:
            return usage_fail("read");
        }
    }
    if (optind != argc - 2) {
        return usage_fail("read");
    }
    if (parse_request(argv, "", &offset, &count) < 0) {
        return -1;
    }
    if (!pflag && (lflag || sflag)) {
        return usage_fail("read");
    }
    if (!lflag) {
        plen = count >= poff ? count - poff : UINT64_MAX;
    }
    if (plen == UINT64_MAX || poff > count || plen > count - poff) {
        printf("pattern verification range exceeds end of read data\n");
        return -1;
    }
    if (!in_range(ctx, offset, count)) {
        printf("read failed: %s\n", strerror(EIO));
        return -1;
    }
    buf = malloc(count ? count : 1);
    if (!buf) {
        printf("read failed: %s\n", strerror(ENOMEM));
        return -1;
    }
    t0 = now();
    r = vimg_image_pread(ctx->img, buf, count, offset, &err);
    t1 = now();
    if (r < 0) {
        printf("read failed: %s\n", fail_reason(r, err));
        vimg_error_free(err);
        free(buf);
        return -1;
    }
    if (pflag) {
        uint64_t i;

        for (i = 0; i < plen; i++) {
            if (buf[poff + i] != pattern) {
                printf("Pattern verification failed at offset %" PRIu64
                       ", %" PRIu64 " bytes\n",
                       offset + poff, plen);
                ret = -1;
                break;
            }
        }
    }
    if (!qflag) {
        if (vflag) {
            hexdump(buf, offset, count);
        }
        report("read", t1 - t0, offset, count, cflag);
    }
    free(buf);
    return ret;
}

/* Fill @buf with the content of @path, repeated (qemu-io write -s). */
static int
fill_from_file(const char *path, uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "rb");
    size_t got = 0, n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    while (got < len && (n = fread(buf + got, 1, len - got, f)) > 0) {
        got += n;
    }
    fclose(f);
    if (got == 0 && len > 0) {
        fprintf(stderr, "%s: file is empty\n", path);
        return -1;
    }
    for (n = got; n < len; n++) {
        buf[n] = buf[n - got];
    }
    return 0;
}

static int
do_write(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    const char *src = NULL;
    uint64_t offset, count;
    bool cflag = false, qflag = false, zflag = false, pflag = false;
    bool fua = false, nofallback = false, unmap = false;
    int pattern = 0xcd, c, r;
    uint8_t *buf = NULL;
    double t0, t1;

    getopt_reset();
    while ((c = getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'b':
            printf("-b: the VM state is not supported\n");
            return -1;
        case 'c':
            printf("-c: compressed writes are not supported\n");
            return -1;
        case 'C':
            cflag = true;
            break;
        case 'f':
            fua = true;
            break;
        case 'n':
            nofallback = true;
            break;
        case 'p':
            break;
        case 'P':
            pflag = true;
            if (parse_pattern(optarg, &pattern) < 0) {
                return -1;
            }
            break;
        case 'q':
            qflag = true;
            break;
        case 's':
            src = optarg;
            break;
        case 'u':
            unmap = true;
            break;
        case 'z':
            zflag = true;
            break;
        default:
            return usage_fail("write");
        }
    }
    if (optind != argc - 2) {
        return usage_fail("write");
    }
    if (nofallback && !zflag) {
        printf("-n requires -z to be specified\n");
        return -1;
    }
    if (unmap && !zflag) {
        printf("-u requires -z to be specified\n");
        return -1;
    }
    if ((int)zflag + (int)pflag + (int)(src != NULL) > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same "
               "time\n");
        return -1;
    }
    if (parse_request(argv, nofallback ? NULL : " without -n", &offset,
                      &count) < 0) {
        return -1;
    }
    if (need_writable(ctx) < 0) {
        return -1;
    }
    if (!in_range(ctx, offset, count)) {
        printf("write failed: %s\n", strerror(EIO));
        return -1;
    }
    if (!zflag) {
        buf = malloc(count ? count : 1);
        if (!buf) {
            printf("write failed: %s\n", strerror(ENOMEM));
            return -1;
        }
        if (src) {
            if (fill_from_file(src, buf, count) < 0) {
                free(buf);
                return -1;
            }
        } else {
            memset(buf, pattern, count);
        }
    }
    t0 = now();
    if (zflag) {
        r = vimg_image_zero(ctx->img, offset, count,
                            unmap ? VIMG_ZERO_MAY_UNMAP : 0, &err);
    } else {
        r = vimg_image_pwrite(ctx->img, buf, count, offset, &err);
    }
    if (r == 0 && fua) {
        r = vimg_image_flush(ctx->img, &err);
    }
    t1 = now();
    free(buf);
    if (r < 0) {
        printf("write failed: %s\n", fail_reason(r, err));
        vimg_error_free(err);
        return -1;
    }
    if (!qflag) {
        report("wrote", t1 - t0, offset, count, cflag);
    }
    return 0;
}

static int
do_discard(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    uint64_t offset, count;
    bool cflag = false, qflag = false;
    double t0, t1;
    int c, r;

    getopt_reset();
    while ((c = getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C':
            cflag = true;
            break;
        case 'q':
            qflag = true;
            break;
        default:
            return usage_fail("discard");
        }
    }
    if (optind != argc - 2) {
        return usage_fail("discard");
    }
    if (parse_request(argv, "", &offset, &count) < 0) {
        return -1;
    }
    if (need_writable(ctx) < 0) {
        return -1;
    }
    if (!in_range(ctx, offset, count)) {
        printf("discard failed: %s\n", strerror(EIO));
        return -1;
    }
    t0 = now();
    r = vimg_image_discard(ctx->img, offset, count, &err);
    t1 = now();
    if (r < 0) {
        printf("discard failed: %s\n", fail_reason(r, err));
        vimg_error_free(err);
        return -1;
    }
    if (!qflag) {
        report("discard", t1 - t0, offset, count, cflag);
    }
    return 0;
}

static int
do_flush(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    int r = vimg_image_flush(ctx->img, &err);

    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return -1;
    }
    return 0;
}

static int
do_truncate(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    uint64_t size;
    int c, r;

    getopt_reset();
    while ((c = getopt(argc, argv, "m:")) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "off") != 0) {
                cli_error("Unsupported preallocation mode: %s", optarg);
                return -1;
            }
            break;
        default:
            return usage_fail("truncate");
        }
    }
    if (optind != argc - 1) {
        return usage_fail("truncate");
    }
    if (cvtnum(argv[optind], &size) < 0) {
        return -1;
    }
    if (need_writable(ctx) < 0) {
        return -1;
    }
    r = vimg_image_truncate(ctx->img, size, true, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return -1;
    }
    return 0;
}

static int
do_length(struct io_ctx *ctx, int argc, char **argv)
{
    char s[64];

    printf("%s\n", cvtstr((double)vimg_image_size(ctx->img), s, sizeof(s)));
    return 0;
}

/*
 * qcow2's VM state starts after the guest data, at the size rounded up to
 * what one L2 table maps.  Other formats have none (offset 0).
 */
static uint64_t
vm_state_offset(const char *fmt, struct json_object *info, uint64_t size)
{
    struct json_object *cs, *spec, *data, *ext;
    uint64_t cluster, span;
    unsigned entry = 8;

    if (strcmp(fmt, "qcow2") != 0 ||
        !json_object_object_get_ex(info, "cluster-size", &cs)) {
        return 0;
    }
    cluster = (uint64_t)json_object_get_int64(cs);
    if (json_object_object_get_ex(info, "format-specific", &spec) &&
        json_object_object_get_ex(spec, "data", &data) &&
        json_object_object_get_ex(data, "extended-l2", &ext) &&
        json_object_get_boolean(ext)) {
        entry = 16;
    }
    if (cluster < 512 || cluster > (1u << 21)) {
        return 0;
    }
    span = cluster * (cluster / entry);
    return (size + span - 1) / span * span;
}

static int
do_info(struct io_ctx *ctx, int argc, char **argv)
{
    struct vimg_error *err = NULL;
    struct json_object *info = NULL, *cs;
    const char *fmt = vimg_image_format(ctx->img);
    uint64_t cluster = 0;
    char a[64], b[64];
    int r;

    r = vimg_image_info(ctx->img, &info, &err);
    if (r < 0) {
        cli_error_vimg(err, r, NULL);
        return -1;
    }
    if (json_object_object_get_ex(info, "cluster-size", &cs)) {
        cluster = (uint64_t)json_object_get_int64(cs);
    }
    printf("format name: %s\n", fmt);
    printf("cluster size: %s\n", cvtstr((double)cluster, a, sizeof(a)));
    printf("vm state offset: %s\n",
           cvtstr((double)vm_state_offset(fmt, info, vimg_image_size(ctx->img)),
                  b, sizeof(b)));
    print_info_format_specific(stdout, info);
    json_object_put(info);
    return 0;
}

static int
do_sleep(struct io_ctx *ctx, int argc, char **argv)
{
    char *end;
    long ms = strtol(argv[1], &end, 10);
    struct timespec ts;

    if (*end || ms < 0) {
        printf("%s is not a valid number\n", argv[1]);
        return -1;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    return 0;
}

static int
do_quit(struct io_ctx *ctx, int argc, char **argv)
{
    ctx->quit = true;
    return 0;
}

static int do_help(struct io_ctx *ctx, int argc, char **argv);

static const struct io_cmd io_cmds[] = {
    {"discard", "d", do_discard, 2, -1, "[-Cq] off len",
     "discards a number of bytes at a specified offset",
     " discards a range of bytes from the given offset\n\n"
     " Example:\n 'discard 512 1k' - discards 1 kilobyte from 512 bytes "
     "into the file\n\n"
     " Discards a segment of the currently open file.\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -q, -- quiet mode, do not show I/O statistics\n"},
    {"flush", "f", do_flush, 0, 0, NULL, "flush all in-core file state to disk",
     NULL},
    {"help", "?", do_help, 0, 1, "[command]", "help for one or all commands",
     NULL},
    {"info", "i", do_info, 0, 0, NULL,
     "prints information about the current file", NULL},
    {"length", "len", do_length, 0, 0, NULL,
     "gets the length of the current file", NULL},
    {"quit", "q", do_quit, 0, 0, NULL, "exit the program", NULL},
    {"read", "r", do_read, 2, -1,
     "[-Cqv] [-P pattern [-s off] [-l len]] "
     "off len",
     "reads a number of bytes at a specified offset",
     " reads a range of bytes from the given offset\n\n"
     " Example:\n 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes "
     "into the file\n\n"
     " Reads a segment of the currently open file, optionally dumping it "
     "to the\n standard output stream (with -v option) for subsequent "
     "inspection.\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -l, -- length for pattern verification (only with -P)\n"
     " -p, -- ignored for backwards compatibility\n"
     " -P, -- use a pattern to verify read data\n"
     " -q, -- quiet mode, do not show I/O statistics\n"
     " -s, -- start offset for pattern verification (only with -P)\n"
     " -v, -- dump buffer to standard output\n"},
    {"sleep", NULL, do_sleep, 1, 1, NULL,
     "waits for the given value in milliseconds", NULL},
    {"truncate", "t", do_truncate, 1, 3, "[-m prealloc_mode] off",
     "truncates the current file at the given offset", NULL},
    {"write", "w", do_write, 2, -1,
     "[-Cfnquz] [-P pattern | -s "
     "source_file] off len",
     "writes a number of bytes at a specified offset",
     " writes a range of bytes from the given offset\n\n"
     " Example:\n 'write 512 1k' - writes 1 kilobyte at 512 bytes into the "
     "open file\n\n"
     " Writes into a segment of the currently open file, using a buffer\n"
     " filled with a set pattern (0xcdcdcdcd).\n"
     " -f, -- use Force Unit Access semantics (flush after the write)\n"
     " -n, -- with -z, don't allow slow fallback\n"
     " -p, -- ignored for backwards compatibility\n"
     " -P, -- use different pattern to fill file\n"
     " -s, -- use a pattern file to fill the write buffer\n"
     " -C, -- report statistics in a machine parsable format\n"
     " -q, -- quiet mode, do not show I/O statistics\n"
     " -u, -- with -z, allow unmapping\n"
     " -z, -- write zeroes\n"},
};

#define N_IO_CMDS (sizeof(io_cmds) / sizeof(io_cmds[0]))

static const struct io_cmd *
find_cmd(const char *name)
{
    size_t i;

    for (i = 0; i < N_IO_CMDS; i++) {
        if (strcmp(io_cmds[i].name, name) == 0 ||
            (io_cmds[i].altname && strcmp(io_cmds[i].altname, name) == 0)) {
            return &io_cmds[i];
        }
    }
    return NULL;
}

static int
do_help(struct io_ctx *ctx, int argc, char **argv)
{
    const struct io_cmd *c;
    size_t i;

    if (argc == 1) {
        for (i = 0; i < N_IO_CMDS; i++) {
            usage_line(&io_cmds[i]);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    c = find_cmd(argv[1]);
    if (!c) {
        printf("command %s not found\n", argv[1]);
        return -1;
    }
    usage_line(c);
    if (c->help) {
        printf("\n%s\n", c->help);
    }
    return 0;
}

/* ---- driver -------------------------------------------------------------- */

/* Split one command line at blanks (qemu-io has no quoting) and run it. */
static void
run_line(struct io_ctx *ctx, const char *line)
{
    char *copy = strdup(line), *tok, *save = NULL;
    char *argv[IO_MAX_ARGS + 1];
    const struct io_cmd *c;
    int argc = 0;

    if (!copy) {
        cli_error("%s", strerror(ENOMEM));
        ctx->failed = true;
        return;
    }
    for (tok = strtok_r(copy, " \t\n", &save); tok && argc < IO_MAX_ARGS;
         tok = strtok_r(NULL, " \t\n", &save)) {
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    if (argc == 0) {
        free(copy);
        return;
    }
    c = find_cmd(argv[0]);
    if (!c) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        ctx->failed = true;
    } else if (argc - 1 < c->argmin ||
               (c->argmax >= 0 && argc - 1 > c->argmax)) {
        if (c->argmax == c->argmin) {
            fprintf(stderr,
                    "bad argument count %d to %s, expected %d "
                    "arguments\n",
                    argc - 1, argv[0], c->argmin);
        } else if (c->argmax < 0) {
            fprintf(stderr,
                    "bad argument count %d to %s, expected at least "
                    "%d arguments\n",
                    argc - 1, argv[0], c->argmin);
        } else {
            fprintf(stderr,
                    "bad argument count %d to %s, expected between "
                    "%d and %d arguments\n",
                    argc - 1, argv[0], c->argmin, c->argmax);
        }
        ctx->failed = true;
    } else {
        /* Commands print their own messages under their full name. */
        argv[0] = (char *)c->name;
        if (c->fn(ctx, argc, argv) < 0) {
            ctx->failed = true;
        }
    }
    fflush(stdout);
    free(copy);
}

static void
run_stdin(struct io_ctx *ctx)
{
    char *line = NULL;
    size_t cap = 0;

    while (!ctx->quit) {
        printf(CLI_NAME " io> ");
        fflush(stdout);
        if (getline(&line, &cap, stdin) < 0) {
            break;
        }
        run_line(ctx, line);
    }
    free(line);
}

static int
run_io(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_IMAGE_LONGOPTS,
        {"cmd", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"read-only", no_argument, NULL, 'r'},
        {"snapshot", no_argument, NULL, 's'},
        {"nocache", no_argument, NULL, 'n'},
        {"copy-on-read", no_argument, NULL, 'C'},
        {"misalign", no_argument, NULL, 'm'},
        {"native-aio", no_argument, NULL, 'k'},
        {"aio", required_argument, NULL, 'i'},
        {"discard", required_argument, NULL, 'd'},
        {"cache", required_argument, NULL, 't'},
        {"trace", required_argument, NULL, 'T'},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct cli_image_args ia = {.cmd = &cmd_io};
    struct cli_image spec = {0};
    struct io_ctx ctx = {0};
    char **cmds = NULL;
    size_t n_cmds = 0, i;
    bool readonly = false;
    int c, rc = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, ":hc:d:f:rsnCmki:t:T:U", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            /* The same list as --object's: in order, argv not copied. */
            if (cli_collect_object(&cmds, &n_cmds, optarg) < 0) {
                goto out;
            }
            break;
        case 'r':
            readonly = true;
            break;
        case 's':
            cli_error("-s (snapshot mode) is not supported");
            goto out;
        case 'n':
        case 'C':
        case 'm':
        case 'k':
        case 'i':
        case 'd':
        case 't':
        case 'T':
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }
    if (cli_expect_one_image(argc) < 0 || cli_image_args_objects(&ia) < 0 ||
        cli_image_args_parse(&ia, argv[optind], &spec) < 0) {
        goto out;
    }
    {
        struct vimg_error *err = NULL;
        int r =
            vimg_image_open(spec.path, spec.format, spec.opts, cli_secrets(),
                            readonly ? 0 : VIMG_OPEN_RDWR, &ctx.img, &err);

        if (r < 0) {
            if (spec.structured) {
                cli_error_vimg(err, r, "can't open: ");
            } else {
                cli_error_vimg(err, r, "can't open device %s: ", spec.arg);
            }
            goto out;
        }
    }

    if (n_cmds == 0) {
        run_stdin(&ctx);
    }
    for (i = 0; i < n_cmds && !ctx.quit; i++) {
        run_line(&ctx, cmds[i]);
    }
    rc = ctx.failed ? 1 : 0;
    if (cli_image_close(&ctx.img) < 0) {
        rc = 1;
    }

out:
    fflush(stdout);
    vimg_image_close(ctx.img, NULL);
    cli_image_clear(&spec);
    cli_image_args_clear(&ia);
    free(cmds);
    return rc;
}

const struct cli_command cmd_io = {
    .name = "io",
    .run = run_io,
    .synopsis = "io [--object objectdef] [--image-opts] [-f fmt] [-r] "
                "[-c command]... filename",
    .help = io_help,
};
