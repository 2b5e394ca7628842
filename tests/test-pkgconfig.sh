#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# libvimg as an external user sees it: a small C program is compiled
# against the pkg-config file meson generated (first the uninstalled one
# from $BUILDDIR/meson-uninstalled, then meson-private/libvimg.pc after a
# DESTDIR install), opens a raw image through the public API and reads it;
# the bytes must equal the file's.  The public header must compile alone
# under -std=c99 -Wall -Wextra -Werror and as C++.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires pkg-config
requires cc
[ -f "$BUILDDIR/meson-private/libvimg.pc" ] || skip "no libvimg.pc in $BUILDDIR"
[ "$VIMG_IS_QEMU" = 0 ] || skip "needs the vimg build"

# A sanitizer build's library needs the runtime linked into the program.
SAN=()
lib=$(find "$BUILDDIR/lib" -maxdepth 1 -name 'libvimg.so*' | head -1)
[ -n "$lib" ] || skip "libvimg.so not built"
if readelf -d "$lib" 2>/dev/null | grep 'libasan' >/dev/null; then
    SAN=(-fsanitize=address,undefined)
fi

cat >prog.c <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vimg.h>

int
main(int argc, char **argv)
{
    struct vimg_image *img = NULL;
    struct vimg_error *err = NULL;
    unsigned char buf[4096];
    int r;

    if (argc != 2) {
        return 2;
    }
    r = vimg_image_open(argv[1], "raw", NULL, NULL, 0, &img, &err);
    if (r < 0) {
        fprintf(stderr, "open: %s (%d)\n", vimg_error_message(err), r);
        vimg_error_free(err);
        return 1;
    }
    fprintf(stderr, "libvimg %s, format %s, size %llu\n", vimg_version(),
            vimg_image_format(img),
            (unsigned long long)vimg_image_size(img));
    r = vimg_image_pread(img, buf, sizeof(buf), 1000, &err);
    if (r < 0) {
        fprintf(stderr, "pread: %s\n", vimg_error_message(err));
        vimg_error_free(err);
        vimg_image_close(img, NULL);
        return 1;
    }
    fwrite(buf, 1, sizeof(buf), stdout);
    /* reading past the end must fail */
    r = vimg_image_pread(img, buf, sizeof(buf), vimg_image_size(img), &err);
    vimg_error_free(err);
    vimg_image_close(img, NULL);
    return r < 0 ? 0 : 3;
}
C
head -c 65536 /dev/urandom >img.raw
dd if=img.raw bs=1 skip=1000 count=4096 status=none >want.bin

# 1. uninstalled .pc against the build tree
export PKG_CONFIG_PATH=$BUILDDIR/meson-uninstalled
if pkg-config --exists libvimg; then
    # shellcheck disable=SC2046
    expect_ok cc "${SAN[@]}" -std=gnu17 -Wall -Wextra -Werror -o prog prog.c \
        $(pkg-config --cflags --libs libvimg)
    libdir=$(dirname "$lib")
    LD_LIBRARY_PATH=$libdir expect_ok ./prog img.raw
    cp "$LAST_OUT" got.bin
    assert_same_file got.bin want.bin "read through the uninstalled library"
    grep_last "format raw, size 65536" stderr
    echo "ok uninstalled pkg-config"
fi

# 2. DESTDIR install, generated meson-private/libvimg.pc
dest=$TEST_TMP/dest
expect_ok meson install -C "$BUILDDIR" --no-rebuild --destdir "$dest"
pc=$(find "$dest" -name libvimg.pc | head -1)
[ -n "$pc" ] || fail "libvimg.pc not installed"
cmp -s "$pc" "$BUILDDIR/meson-private/libvimg.pc" || fail "installed .pc differs from meson-private"
grep -q '^Libs: .*-lvimg' "$pc" || fail "libvimg.pc lacks -lvimg"
grep -q '^Requires: .*json-c' "$pc" || fail "libvimg.pc lacks json-c"
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest
# shellcheck disable=SC2046
expect_ok cc "${SAN[@]}" -std=gnu17 -Wall -Wextra -Werror -o prog2 prog.c \
    $(pkg-config --cflags --libs libvimg)
LD_LIBRARY_PATH=$(dirname "$(find "$dest" -name 'libvimg.so.0' | head -1)") \
    expect_ok ./prog2 img.raw
cp "$LAST_OUT" got2.bin
assert_same_file got2.bin want.bin "read through the installed library"
unset PKG_CONFIG_SYSROOT_DIR
echo "ok installed pkg-config"

# 3. the public header on its own
hdr=$(find "$dest" -name vimg.h | head -1)
echo '#include <vimg.h>' >h.c
expect_ok cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$(dirname "$hdr")" h.c
if command -v c++ >/dev/null; then
    cp h.c h.cc
    expect_ok c++ -Wall -Wextra -Werror -fsyntax-only -I"$(dirname "$hdr")" h.cc
fi
echo "ok header compiles alone"
exit 0
