// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Unit test (TAP) of the vimg tool's qemu-compatible output: the QDict hash
 * ordering on the key sets qemu-img 7.2 was observed to print, the newest-
 * first rule inside one bucket, qemu's JSON escaping and layout, and the
 * size_to_str() rendering.  Links tools/output.c directly.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../tests/unit/tap.h"
#include "output.h"

/* Insert @keys (NULL-terminated) in REVERSE order, so insertion order alone
 * can never produce the expected order; then check the printed order. */
static void
check_order(const char *const *expect, const char *what)
{
    struct json_object *o = json_object_new_object();
    const char **got;
    size_t n = 0, count = 0, i;
    int same = 1;

    while (expect[count]) {
        count++;
    }
    for (i = count; i-- > 0;) {
        json_object_object_add(o, expect[i], json_object_new_int(1));
    }
    got = qdict_order(o, &n);
    if (n != count || !got) {
        same = 0;
    }
    for (i = 0; same && i < n; i++) {
        if (strcmp(got[i], expect[i]) != 0) {
            printf("# %s: position %zu is '%s', want '%s'\n", what, i, got[i],
                   expect[i]);
            same = 0;
        }
    }
    ok(same, "%s", what);
    free(got);
    json_object_put(o);
}

int
main(void)
{
    static const char *const top[] = {
        "virtual-size",    "filename",  "cluster-size", "format", "actual-size",
        "format-specific", "encrypted", "dirty-flag",   NULL};
    static const char *const qcow2[] = {"compat",
                                        "compression-type",
                                        "lazy-refcounts",
                                        "bitmaps",
                                        "refcount-bits",
                                        "data-file",
                                        "encrypt",
                                        "data-file-raw",
                                        "corrupt",
                                        "extended-l2",
                                        NULL};
    static const char *const luks[] = {
        "ivgen-alg",        "hash-alg",    "cipher-alg", "uuid",
        "ivgen-hash-alg",   "cipher-mode", "slots",      "payload-offset",
        "master-key-iters", NULL};
    static const char *const slot[] = {"active", "iters", "key-offset",
                                       "stripes", NULL};
    static const char *const backing[] = {"backing-filename-format",
                                          "virtual-size",
                                          "filename",
                                          "cluster-size",
                                          "format",
                                          "actual-size",
                                          "format-specific",
                                          "full-backing-filename",
                                          "backing-filename",
                                          "dirty-flag",
                                          NULL};
    static const char *const jsonname[] = {"driver", "file", "key-secret",
                                           NULL};
    struct json_object *o, *f;
    char buf[32], *s;

    ok(qdict_bucket("virtual-size") == 309, "bucket of virtual-size");
    ok(qdict_bucket("filename") == 313, "bucket of filename");
    ok(qdict_bucket("") == 12345 % 512, "bucket of the empty key");
    ok(qdict_bucket("aa") == qdict_bucket("aq"), "aa and aq share a bucket");

    check_order(top, "ImageInfo top level (luks)");
    check_order(backing, "ImageInfo top level with backing file");
    check_order(qcow2, "qcow2 format-specific data");
    check_order(luks, "luks format-specific data (essiv)");
    check_order(slot, "luks slot");
    check_order(jsonname, "json: pseudo-filename");

    /* Same bucket: the key inserted last comes first. */
    o = json_object_new_object();
    json_object_object_add(o, "aa", json_object_new_int(1));
    json_object_object_add(o, "aq", json_object_new_int(2));
    s = qjson_to_string(o, false);
    ok_str(s, "{\"aq\": 2, \"aa\": 1}", "collision: newest first");
    free(s);
    json_object_put(o);

    /* Layout and escaping as qemu-img --output=json. */
    o = json_object_new_object();
    json_object_object_add(o, "filename",
                           json_object_new_string("/a\"b\\c\x01\xc3\xa9"
                                                  "\xf0\x9f\x98\x80\xff"));
    json_object_object_add(o, "dirty-flag", json_object_new_boolean(0));
    f = json_object_new_array();
    json_object_array_add(f, json_object_new_int64(4096));
    json_object_object_add(o, "slots", f);
    json_object_object_add(o, "format-specific", json_object_new_object());
    s = qjson_to_string(o, true);
    ok_str(s,
           "{\n"
           "    \"filename\": \"/a\\\"b\\\\c\\u0001\\u00E9\\uD83D\\uDE00"
           "\\uFFFD\",\n"
           "    \"format-specific\": {},\n"
           "    \"slots\": [\n"
           "        4096\n"
           "    ],\n"
           "    \"dirty-flag\": false\n"
           "}",
           "pretty JSON layout and escaping");
    free(s);
    json_object_put(o);

    /* json: name of --image-opts driver=luks,file.filename=l1,key-secret=s0,
     * as qemu-img info prints it. */
    o = json_object_new_object();
    f = json_object_new_object();
    json_object_object_add(o, "driver", json_object_new_string("luks"));
    json_object_object_add(f, "driver", json_object_new_string("file"));
    json_object_object_add(f, "filename", json_object_new_string("l1"));
    json_object_object_add(o, "file", f);
    json_object_object_add(o, "key-secret", json_object_new_string("s0"));
    s = qjson_to_string(o, false);
    ok_str(s,
           "{\"driver\": \"luks\", \"file\": {\"driver\": \"file\", "
           "\"filename\": \"l1\"}, \"key-secret\": \"s0\"}",
           "compact json: name");
    free(s);
    json_object_put(o);

    /* size_to_str, values checked against qemu-img info. */
    ok_str(size_to_str(buf, sizeof(buf), 0), "0 B", "size 0");
    ok_str(size_to_str(buf, sizeof(buf), 512), "512 B", "size 512");
    ok_str(size_to_str(buf, sizeof(buf), 1024), "1 KiB", "size 1024");
    ok_str(size_to_str(buf, sizeof(buf), 1536), "1.5 KiB", "size 1536");
    ok_str(size_to_str(buf, sizeof(buf), 1000448), "977 KiB", "size 1000448");
    ok_str(size_to_str(buf, sizeof(buf), 1024000), "0.977 MiB", "size 1024000");
    ok_str(size_to_str(buf, sizeof(buf), 1048064), "1 MiB", "size 1048064");
    ok_str(size_to_str(buf, sizeof(buf), 123457024), "118 MiB",
           "size 123457024");
    ok_str(size_to_str(buf, sizeof(buf), 67108864), "64 MiB", "size 64M");

    return tap_done();
}
