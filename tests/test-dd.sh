#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg dd against qemu-img dd: for many bs/count/skip combinations (and
# errors) both tools run on the same input; exit code, messages and the
# output file (existence, size, bytes) must be identical.  Also dd out of a
# luks image through --object/--image-opts, and -O luks is refused the way
# qemu-img refuses it (no -o, so no key-secret).

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

random_file in.raw 3

# dd_same ARGS...: "dd ARGS of=OUT" with both tools.
dd_same()
{
    local qrc
    rm -f out.img q.out v.out
    run_cmd qemu-img dd "$@" of=out.img
    qrc=$LAST_RC
    sed 's/^qemu-img: /PROG: /' "$LAST_ERR" >q.err
    cp "$LAST_OUT" q.stdout
    [ -e out.img ] && mv out.img q.out
    run_cmd "$VIMG" dd "$@" of=out.img
    sed 's/^[^ :]*vimg: /PROG: /; s/^qemu-img: /PROG: /' "$LAST_ERR" >v.err
    [ -e out.img ] && mv out.img v.out
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s q.err v.err ||
           ! cmp -s q.stdout "$LAST_OUT"; then
        echo "--- qemu-img (rc $qrc):" >&2
        cat q.stdout q.err >&2
        echo "--- vimg (rc $LAST_RC):" >&2
        cat "$LAST_OUT" v.err >&2
        fail "dd $*: tools disagree"
    fi
    if [ -e q.out ]; then
        [ -e v.out ] || fail "dd $*: vimg made no output file"
        cmp q.out v.out >&2 || fail "dd $*: output files differ"
    else
        [ ! -e v.out ] || fail "dd $*: vimg made an output file, qemu-img did not"
    fi
    echo "ok dd $* (rc $LAST_RC, $(stat -c %s v.out 2>/dev/null || echo no) bytes)"
}

for a in "bs=4k count=10" "bs=1M skip=1" "count=3" "bs=512 skip=5 count=7" \
         "bs=3000 count=2" "bs=1M count=10" "bs=1k bs=2k" "bs=64k skip=47" \
         "bs=1M skip=3" "bs=4097 skip=3 count=100" \
         "bs=1k count=1k" "bs=0" "count=-1" "bs=abc" "bs=3G" "count=9E" \
         "foo=1" "-f raw bs=1M" "-O raw count=2"; do
    # shellcheck disable=SC2086
    dd_same $a if=in.raw
done
dd_same if=missing.raw
# Exact content, independent of qemu-img.  Note qemu-img 7.2's count
# includes the skipped blocks: skip=5 count=7 copies blocks 5 and 6 only.
expect_ok "$VIMG" dd bs=512 skip=5 count=7 if=in.raw of=v2.out
dd if=in.raw bs=512 skip=5 count=2 status=none >want.out
assert_same_file v2.out want.out "vimg dd bs=512 skip=5 count=7"
expect_ok "$VIMG" dd bs=64k count=5 if=in.raw of=v3.out
head -c $((5 * 65536)) in.raw >want.out
assert_same_file v3.out want.out "vimg dd bs=64k count=5"

# From a luks image made by vimg.
vimg_create_luks in.luks 3M
expect_ok "$VIMG" convert --object "$SECRET" -n -f raw in.raw \
    --target-image-opts "$(luks_opts in.luks)"
for a in "bs=1M" "bs=4k skip=3 count=9" "bs=1000 skip=7 count=13"; do
    # shellcheck disable=SC2086
    dd_same --object "$SECRET" --image-opts $a "if=$(luks_opts in.luks)"
done
expect_ok "$VIMG" dd --object "$SECRET" --image-opts bs=4k skip=3 count=9 \
    "if=$(luks_opts in.luks)" of=l.out
dd if=in.raw bs=4k skip=3 count=6 status=none >want.out
assert_same_file l.out want.out "dd out of luks"
printf wrong >wrong.pw
dd_same -O luks count=1 if=in.raw
dd_same --object "secret,id=s0,file=$TEST_TMP/wrong.pw" --image-opts bs=1M "if=$(luks_opts in.luks)"
grep_last "Invalid password, cannot unlock any keyslot" stderr
# Skipping past the end: qemu-img 7.2 prints "cannot skip to specified
# offset" yet exits 0 with an empty output file; vimg must do the same.
dd_same bs=1M skip=5 if=in.raw
grep_last "cannot skip to specified offset" stderr
dd_same skip=1 count=0 if=in.raw
exit 0
