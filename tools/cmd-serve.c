// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * "vimg serve": export images as plain (decrypted) NBD disks.  The server
 * is nbdkit with vimg's plugin (server/nbdkit-vimg-plugin.c); this command
 * translates qemu-nbd-like options into an nbdkit command line and execs
 * nbdkit in its place (same PID, so systemd socket activation's LISTEN_PID
 * still matches, and --fd keeps its inherited descriptors).
 *
 * Secrets: the --object definitions are written, NUL-separated, into an
 * anonymous memfd that nbdkit inherits; the plugin reads them from
 * objects-fd=N.  So no definition (and no data= secret) ever appears in
 * nbdkit's argv or environment, and file=/dev/fd/M secrets keep working
 * because descriptor M is inherited too.
 *
 * --fd N: the broker hands an already-connected stream socket; it becomes
 * nbdkit's stdin/stdout and nbdkit -s serves exactly that one client
 * (fixed newstyle handshake), then exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "open-image.h"

#define PLUGIN_NAME "nbdkit-vimg-plugin.so"

static const char serve_help[] =
    "Export each FILENAME as a plain NBD disk (decrypted with its key) "
    "through\nnbdkit and vimg's plugin.  Several images get one export "
    "name each.\n"
    "\n"
    "Options:\n"
    "  --object OBJECTDEF     define a secret (repeatable); passed to the "
    "server\n"
    "                         through an inherited descriptor, never its "
    "argv\n"
    "  --image-opts           FILENAME is an option string "
    "(driver=...,file.filename=...)\n"
    "  -f, --format FMT       image format (probed by default)\n"
    "  -r, --read-only        export read-only (writes are refused)\n"
    "  -e, -x, --export-name NAME\n"
    "                         export name of the FILENAME that follows "
    "(needed\n"
    "                         for each image when there are several)\n"
    "  -s, -k, --socket PATH  listen on a Unix socket\n"
    "  -p, --port PORT        listen on TCP PORT (default 10809)\n"
    "  -b, --bind ADDR        listen on this TCP address only\n"
    "  --fd N                 serve one client on the connected socket N, "
    "then exit\n"
    "  --tls-creds DIR        require TLS with x509 files in DIR "
    "(ca-cert.pem,\n"
    "                         server-cert.pem, server-key.pem)\n"
    "  --tls-psk FILE         require TLS with the pre-shared keys in FILE "
    "(psktool)\n"
    "  --tls-verify-peer      with --tls-creds: require client "
    "certificates\n"
    "  --pid-file FILE        write the server's PID to FILE\n"
    "  --self-contained       refuse images whose header names another "
    "file (a\n"
    "                         backing or external data file); for "
    "servers with more\n"
    "                         rights than the image's writers (vimgd "
    "uses it)\n"
    "  -t, --threads N        nbdkit worker threads per connection\n"
    "  -v, --verbose          nbdkit debug messages on stderr\n"
    "  -h, --help             show this help\n"
    "\n"
    "Without -s, -p or --fd, a socket passed by systemd socket activation "
    "(LISTEN_FDS)\nis used, else TCP port 10809.  The server runs in the "
    "foreground until killed.\nEnvironment: VIMG_NBDKIT (the nbdkit "
    "program), VIMG_NBDKIT_PLUGIN (the plugin).\n";

enum {
    OPT_FD = OPT_HELP + 1,
    OPT_TLS_CREDS,
    OPT_TLS_PSK,
    OPT_TLS_VERIFY_PEER,
    OPT_PID_FILE,
    OPT_SELF_CONTAINED,
};

struct serve_export {
    const char *name;   /* NULL: none given */
    const char *arg;
};

struct argvec {
    char **v;
    size_t n;
    bool oom;
};

static void
push(struct argvec *a, const char *s)
{
    char **p;

    if (a->oom) {
        return;
    }
    p = realloc(a->v, (a->n + 2) * sizeof(*p));
    if (!p || !(p[a->n] = strdup(s))) {
        a->oom = true;
        if (p) {
            a->v = p;
        }
        return;
    }
    a->v = p;
    a->v[++a->n] = NULL;
}

static void
pushf(struct argvec *a, const char *key, const char *value)
{
    char *s = NULL;

    if (asprintf(&s, "%s%s", key, value) < 0) {
        a->oom = true;
        return;
    }
    push(a, s);
    free(s);
}

/* vimg_opts back to "k=v,k2=v2" (commas doubled), or NULL if empty. */
static char *
opts_string(const struct vimg_opts *o)
{
    size_t i, n = o ? vimg_opts_count(o) : 0, len = 1;
    char *s, *p;

    if (n == 0) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        len += 2 * (strlen(vimg_opts_key(o, i)) +
                    strlen(vimg_opts_value(o, i))) + 2;
    }
    p = s = malloc(len);
    if (!s) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *parts[2] = {vimg_opts_key(o, i), vimg_opts_value(o, i)};
        int k;

        if (i) {
            *p++ = ',';
        }
        for (k = 0; k < 2; k++) {
            const char *c;

            for (c = parts[k]; *c; c++) {
                if (*c == ',') {
                    *p++ = ',';
                }
                *p++ = *c;
            }
            if (k == 0) {
                *p++ = '=';
            }
        }
    }
    *p = '\0';
    return s;
}

/* Warn (as the other commands do) when a secret is inline (data=). */
static void
warn_inline_secret(const char *spec)
{
    struct vimg_opts *o = vimg_opts_new();

    if (o && vimg_opts_parse(o, spec, "qom-type", NULL) == 0 &&
        vimg_opts_get(o, "data")) {
        const char *id = vimg_opts_get(o, "id");

        fprintf(stderr,
                CLI_NAME ": warning: secret '%s' is passed on the command "
                         "line (data=), where other users can read it; use "
                         "file= or secret_keyring instead\n",
                id ? id : "?");
    }
    vimg_opts_free(o);
}

/*
 * The --object definitions in an inheritable memfd, read position 0.
 * Return the descriptor (>= 3, so --fd's dup2 onto 0/1 cannot hit it) or
 * -1 after printing the error.
 */
static int
objects_memfd(char **objects, size_t n)
{
    int fd = memfd_create("vimg-objects", 0);
    size_t i;

    if (fd >= 0 && fd < 3) {
        int hi = fcntl(fd, F_DUPFD, 3);

        close(fd);
        fd = hi;
    }
    if (fd < 0) {
        cli_error("memfd_create: %s", strerror(errno));
        return -1;
    }
    for (i = 0; i < n; i++) {
        size_t len = strlen(objects[i]) + 1;   /* with its NUL */

        if (write(fd, objects[i], len) != (ssize_t)len) {
            cli_error("writing the secret definitions: %s", strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        cli_error("lseek: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The plugin: $VIMG_NBDKIT_PLUGIN, the build tree, or the install dir. */
static char *
find_plugin(void)
{
    const char *env = getenv("VIMG_NBDKIT_PLUGIN");
    char exe[PATH_MAX];
    ssize_t n;
    char *p = NULL;

    if (env && *env) {
        return strdup(env);
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (asprintf(&p, "%s/../server/" PLUGIN_NAME, dirname(exe)) >= 0 &&
            access(p, R_OK) == 0) {
            return p;
        }
        free(p);
    }
    return strdup(VIMG_NBDKIT_PLUGIN_PATH);
}

static int
parse_fd(const char *arg, int *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    struct stat st;

    if (!*arg || *end || v < 0 || v > INT_MAX) {
        cli_error("--fd: '%s' is not a file descriptor number", arg);
        return -1;
    }
    if (fstat((int)v, &st) < 0) {
        cli_error("--fd %ld: %s", v, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        cli_error("--fd %ld: not a socket", v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Plugin parameters for one image (no secret among them). */
static int
push_export(struct argvec *a, const struct serve_export *e,
            const struct cli_image_args *ia, bool readonly)
{
    struct cli_image ci;
    char *opts;

    if (cli_image_parse(e->arg, ia->image_opts, ia->format, &ci) < 0) {
        return -1;
    }
    if (access(ci.path, F_OK) < 0) {
        cli_error("Could not open '%s': %s", ci.path, strerror(errno));
        cli_image_clear(&ci);
        return -1;
    }
    if (ci.format && !vimg_format_known(ci.format)) {
        cli_error("Unknown file format '%s'", ci.format);
        cli_image_clear(&ci);
        return -1;
    }
    pushf(a, "file=", ci.path);
    if (ci.format) {
        pushf(a, "format=", ci.format);
    }
    opts = opts_string(ci.opts);
    if (opts) {
        pushf(a, "opts=", opts);
        free(opts);
    }
    if (e->name) {
        pushf(a, "export=", e->name);
    }
    if (readonly) {
        push(a, "readonly=on");
    }
    cli_image_clear(&ci);
    return 0;
}

static int
serve_run(int argc, char **argv)
{
    static const struct option long_opts[] = {
        CLI_IMAGE_LONGOPTS,
        {"format", required_argument, NULL, 'f'},
        {"read-only", no_argument, NULL, 'r'},
        {"export-name", required_argument, NULL, 'e'},
        {"socket", required_argument, NULL, 's'},
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"fd", required_argument, NULL, OPT_FD},
        {"tls-creds", required_argument, NULL, OPT_TLS_CREDS},
        {"tls-psk", required_argument, NULL, OPT_TLS_PSK},
        {"tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY_PEER},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"self-contained", no_argument, NULL, OPT_SELF_CONTAINED},
        {"threads", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    struct serve_export *exps = NULL;
    size_t n_exps = 0, i;
    struct cli_image_args ia = {.cmd = &cmd_serve};
    const char *pending_name = NULL, *sock = NULL;
    const char *port = NULL, *bind = NULL, *tls_creds = NULL;
    const char *tls_psk = NULL, *pid_file = NULL, *threads = NULL;
    const char *fd_arg = NULL;
    const char *nbdkit;
    bool readonly = false, verify_peer = false, self_contained = false;
    bool verbose = false;
    int fd = -1, objfd, c, rc = 1;
    struct argvec a = {0};
    char *plugin = NULL;

    optind = 0;
    while ((c = getopt_long(argc, argv, "-:hf:re:x:s:k:p:b:t:v", long_opts,
                            NULL)) != -1) {
        switch (c) {
        case 1: {
            struct serve_export *p =
                realloc(exps, (n_exps + 1) * sizeof(*exps));

            if (!p) {
                cli_error("%s", strerror(ENOMEM));
                goto out;
            }
            exps = p;
            exps[n_exps].name = pending_name;
            exps[n_exps].arg = optarg;
            n_exps++;
            pending_name = NULL;
            break;
        }
        case 'r':
            readonly = true;
            break;
        case 'e':
        case 'x':
            pending_name = optarg;
            break;
        case 's':
        case 'k':
            sock = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'b':
            bind = optarg;
            break;
        case OPT_FD:
            fd_arg = optarg;
            break;
        case OPT_TLS_CREDS:
            tls_creds = optarg;
            break;
        case OPT_TLS_PSK:
            tls_psk = optarg;
            break;
        case OPT_TLS_VERIFY_PEER:
            verify_peer = true;
            break;
        case OPT_PID_FILE:
            pid_file = optarg;
            break;
        case OPT_SELF_CONTAINED:
            self_contained = true;
            break;
        case 't':
            threads = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        default:
            if (cli_image_args_option(&ia, c, argv, &rc) < 0) {
                goto out;
            }
        }
    }

    if (n_exps == 0) {
        cli_error("Expecting one image file name");
        cli_try_help();
        goto out;
    }
    if (pending_name) {
        cli_error("--export-name '%s' is not followed by an image",
                  pending_name);
        goto out;
    }
    if (fd_arg && (sock || port || bind || n_exps > 1)) {
        cli_error("--fd serves one image on its own socket: it cannot be "
                  "combined with --socket, --port, --bind or several images");
        goto out;
    }
    if (sock && (port || bind)) {
        cli_error("--socket cannot be combined with --port or --bind");
        goto out;
    }
    if (tls_creds && tls_psk) {
        cli_error("--tls-creds and --tls-psk are exclusive");
        goto out;
    }
    if (verify_peer && !tls_creds) {
        cli_error("--tls-verify-peer needs --tls-creds");
        goto out;
    }
    if (fd_arg && parse_fd(fd_arg, &fd) < 0) {
        goto out;
    }
    for (i = 0; i < ia.n_objects; i++) {
        warn_inline_secret(ia.objects[i]);
    }

    nbdkit = getenv("VIMG_NBDKIT");
    if (!nbdkit || !*nbdkit) {
        nbdkit = "nbdkit";
    }
    plugin = find_plugin();
    if (!plugin || access(plugin, R_OK) < 0) {
        cli_error("cannot find the nbdkit plugin '%s' (set "
                  "VIMG_NBDKIT_PLUGIN)",
                  plugin ? plugin : PLUGIN_NAME);
        goto out;
    }

    push(&a, nbdkit);
    if (fd >= 0) {
        push(&a, "-s");
    } else {
        push(&a, "-f");
        if (sock) {
            push(&a, "-U");
            push(&a, sock);
        } else if (port || bind || !getenv("LISTEN_FDS")) {
            push(&a, "-p");
            push(&a, port ? port : "10809");
            if (bind) {
                push(&a, "-i");
                push(&a, bind);
            }
        }
    }
    if (readonly) {
        push(&a, "-r");
    }
    if (tls_creds) {
        push(&a, "--tls=require");
        pushf(&a, "--tls-certificates=", tls_creds);
        if (verify_peer) {
            push(&a, "--tls-verify-peer");
        }
    } else if (tls_psk) {
        push(&a, "--tls=require");
        pushf(&a, "--tls-psk=", tls_psk);
    }
    if (pid_file) {
        pushf(&a, "--pidfile=", pid_file);
    }
    if (threads) {
        pushf(&a, "--threads=", threads);
    }
    if (verbose) {
        push(&a, "-v");
    }
    push(&a, plugin);
    for (i = 0; i < n_exps; i++) {
        if (push_export(&a, &exps[i], &ia, readonly) < 0) {
            goto out;
        }
    }
    if (fd >= 0) {
        /* One connection only: clients must not try to open more. */
        push(&a, "multi-conn=off");
    }
    if (self_contained) {
        push(&a, "self-contained=on");
    }
    if (ia.n_objects) {
        char num[16];

        objfd = objects_memfd(ia.objects, ia.n_objects);
        if (objfd < 0) {
            goto out;
        }
        snprintf(num, sizeof(num), "%d", objfd);
        pushf(&a, "objects-fd=", num);
    }
    if (a.oom) {
        cli_error("%s", strerror(ENOMEM));
        goto out;
    }

    if (fd >= 0) {
        if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) {
            cli_error("--fd %d: %s", fd, strerror(errno));
            goto out;
        }
        if (fd > 2) {
            close(fd);
        }
    }
    fflush(stdout);
    fflush(stderr);
    execvp(a.v[0], a.v);
    cli_error("cannot run '%s': %s", a.v[0], strerror(errno));
    rc = 1;
out:
    for (i = 0; a.v && i < a.n; i++) {
        free(a.v[i]);
    }
    free(a.v);
    free(plugin);
    cli_image_args_clear(&ia);
    free(exps);
    return rc;
}

const struct cli_command cmd_serve = {
    .name = "serve",
    .run = serve_run,
    .synopsis = "serve [--object objectdef] [--image-opts] [-f fmt] [-r] "
                "[-s path | -p port [-b addr] | --fd N] [--tls-creds dir | "
                "--tls-psk file] [[-e name] filename]...",
    .help = serve_help,
};
