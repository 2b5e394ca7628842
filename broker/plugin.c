// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Plugin loader.  Only .so files named in the root-owned config are loaded,
 * once, at start, before the socket accepts anyone.  The file must be owned
 * by root and not writable by group or others.  Any problem (missing
 * symbol, a different VIMGD_PLUGIN_ABI_VERSION, a name that does not match
 * the config section, init() refusing) stops vimgd: a broker with a policy
 * that silently lost a plugin would be worse than no broker.
 */
#include "vimgd.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
host_log(const char *msg)
{
    vimgd_log("plugin: %s", msg);
}

static int
host_peer_alive(const struct vimgd_peer *peer)
{
    return peer_alive(peer);
}

static const struct vimgd_plugin_host host = {
    .abi_version = VIMGD_PLUGIN_ABI_VERSION,
    .log = host_log,
    .peer_alive = host_peer_alive,
};

int
plugins_load(struct policy *pol, char *err, size_t errlen)
{
    int i;

    for (i = 0; i < pol->nplugins; i++) {
        struct plugin *pl = &pol->plugins[i];
        const struct vimgd_plugin *e;
        struct stat st;
        char msg[512] = "";
        int rc;

        if (stat(pl->path, &st) < 0) {
            return vimgd_errf(err, errlen, "plugin '%s': %s", pl->path, strerror(errno));
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
            return vimgd_errf(err, errlen, "plugin '%s' must be a regular file owned by root and not "
                        "writable by group or others", pl->path);
        }
        pl->handle = dlopen(pl->path, RTLD_NOW | RTLD_LOCAL);
        if (!pl->handle) {
            return vimgd_errf(err, errlen, "plugin '%s': %s", pl->path, dlerror());
        }
        e = dlsym(pl->handle, "vimgd_plugin_entry");
        if (!e) {
            return vimgd_errf(err, errlen, "plugin '%s' has no vimgd_plugin_entry symbol (not a vimgd "
                        "plugin?)", pl->path);
        }
        if (e->abi_version != VIMGD_PLUGIN_ABI_VERSION) {
            return vimgd_errf(err, errlen, "plugin '%s' was built for vimgd plugin ABI version %u, "
                        "but this vimgd has ABI version %u; rebuild the plugin against this "
                        "vimgd's vimgd-plugin.h (the plugin interface is unstable)",
                        pl->path, (unsigned)e->abi_version, VIMGD_PLUGIN_ABI_VERSION);
        }
        if (e->struct_size != sizeof(struct vimgd_plugin)) {
            return vimgd_errf(err, errlen, "plugin '%s': struct size %u, expected %zu", pl->path,
                        (unsigned)e->struct_size, sizeof(struct vimgd_plugin));
        }
        if (!e->name || strcmp(e->name, pl->name) != 0) {
            return vimgd_errf(err, errlen, "plugin '%s' calls itself '%s', but the config section is "
                        "[plugin %s]", pl->path, e->name ? e->name : "(null)", pl->name);
        }
        if (!e->ops || !e->act) {
            return vimgd_errf(err, errlen, "plugin '%s' declares no operations", pl->path);
        }
        pl->entry = e;
        if (e->init) {
            rc = e->init(&host, (const char *const *)pl->args, msg, sizeof(msg));
            if (rc < 0) {
                pl->entry = NULL;
                return vimgd_errf(err, errlen, "plugin '%s' refused to start: %s", pl->path,
                            msg[0] ? msg : strerror(-rc));
            }
        }
    }
    return 0;
}

void
plugins_unload(struct policy *pol)
{
    int i;

    for (i = 0; i < pol->nplugins; i++) {
        struct plugin *pl = &pol->plugins[i];
        if (pl->entry && pl->entry->fini) {
            pl->entry->fini();
        }
        if (pl->handle) {
            dlclose(pl->handle);
        }
        pl->entry = NULL;
        pl->handle = NULL;
    }
}

/* "NAME.OP": the plugin NAME (from config) and, once loaded, that it lists OP. */
const struct plugin *
plugin_find(const struct policy *pol, const char *name, const char **op)
{
    const char *dot = strchr(name, '.');
    int i, j;

    if (!dot) {
        return NULL;
    }
    for (i = 0; i < pol->nplugins; i++) {
        const struct plugin *pl = &pol->plugins[i];
        if (strlen(pl->name) != (size_t)(dot - name) ||
            strncmp(pl->name, name, (size_t)(dot - name)) != 0) {
            continue;
        }
        *op = dot + 1;
        if (!pl->entry) {
            return pl; /* not loaded yet (config check) */
        }
        for (j = 0; pl->entry->ops[j]; j++) {
            if (strcmp(pl->entry->ops[j], dot + 1) == 0) {
                return pl;
            }
        }
        return NULL;
    }
    return NULL;
}

int
op_plugin(const struct policy *pol, const struct decision *d, const struct vimgd_peer *peer,
          const struct vb_request *req, struct op_result *res)
{
    const char *op;
    const struct plugin *pl = plugin_find(pol, req->name, &op);
    struct vimgd_plugin_request preq = {.arg = req->arg, .arg_len = req->arg_len};
    struct vimgd_plugin_reply reply = {.fd = -1};
    int rc;

    if (!pl || !pl->entry) {
        snprintf(res->text, sizeof(res->text), "no plugin provides '%.200s'", req->name);
        return -EOPNOTSUPP;
    }
    preq.op = op;
    if (pl->entry->decide) {
        char reason[512] = "";
        rc = pl->entry->decide(peer, &preq, reason, sizeof(reason));
        if (rc < 0) {
            snprintf(res->text, sizeof(res->text), "plugin %.64s refused: %.500s", pl->name,
                     reason[0] ? reason : strerror(-rc));
            return rc > -4096 ? rc : -EPERM;
        }
    }
    rc = pl->entry->act(peer, &preq, &reply);
    reply.text[sizeof(reply.text) - 1] = '\0';
    snprintf(res->text, sizeof(res->text), "%s", reply.text);
    if (rc < 0) {
        if (reply.fd >= 0) {
            close(reply.fd);
        }
        return rc > -4096 ? rc : -EIO;
    }
    res->fd = reply.fd;
    return 0;
}
