#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Persistent dirty bitmaps made by `qemu-img bitmap` stay valid for qemu
# after vimg writes to the image (QEMU 7.2).
#
# An image with an enabled bitmap (64k granularity), a second one (512k)
# and a disabled one gets the same writes (data, zeroes, a partial cluster,
# the last clusters) from `$VIMG io` and from qemu-io, twice (the second
# round changes bitmap clusters that exist by then).  Both images must
# pass `qemu-img check` with exit 0, `qemu-img info` must show the same
# bitmaps and flags (no "in-use" left), the set bits of every bitmap must
# be identical (tests/qcow2-bitmap-dump.py reads them from the files), and
# the guest data must compare equal.  `$VIMG check -r all`, `$VIMG convert
# -n` and `$VIMG amend` keep the bitmaps valid too; a crash during a vimg
# write (failpoint) leaves them flagged in-use, as a qemu crash does, and
# `qemu-img check` finds no corruption (leaks at most).  vimg refuses to resize such an image.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires python3
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

DUMP="python3 $SRCDIR/qcow2-bitmap-dump.py"

bitmaps_info()
{
    qemu-img info "$1" | sed -n '/bitmaps:/,/refcount bits/p'
}

# agree V Q WHAT: vimg's and qemu's images hold the same bitmaps and data.
agree()
{
    expect_ok qemu-img check "$1"
    expect_ok qemu-img check "$2"
    assert_eq "$(bitmaps_info "$1")" "$(bitmaps_info "$2")" "bitmaps ($3)"
    bitmaps_info "$1" | grep -q in-use && fail "bitmap left in use ($3)"
    assert_eq "$($DUMP "$1")" "$($DUMP "$2")" "bitmap bits ($3)"
    expect_ok qemu-img compare -f qcow2 -F qcow2 "$1" "$2"
}

expect_ok qemu-img create -f qcow2 b.qcow2 64M
expect_ok qemu-img bitmap --add b.qcow2 b0
expect_ok qemu-img bitmap --add -g 512k b.qcow2 b2
expect_ok qemu-img bitmap --add --disable b.qcow2 b1
cp b.qcow2 v.qcow2
cp b.qcow2 q.qcow2
W1=(-c 'write -P 1 0 64k' -c 'write -P 2 1M 100' -c 'write -z 5M 1M'
    -c 'write -P 3 60M 4M')
W2=(-c 'write -P 4 64k 64k' -c 'write -P 5 1000k 200k' -c 'write 30M 512')
expect_ok "$VIMG" io "${W1[@]}" v.qcow2
expect_ok qemu-io -f qcow2 "${W1[@]}" q.qcow2
agree v.qcow2 q.qcow2 "first writes"
expect_ok "$VIMG" io "${W2[@]}" v.qcow2
expect_ok qemu-io -f qcow2 "${W2[@]}" q.qcow2
agree v.qcow2 q.qcow2 "second writes"
echo "ok writes keep the bitmaps"

# check -r all, amend and convert -n open the image read-write too.
expect_ok "$VIMG" check -r all v.qcow2
expect_ok "$VIMG" amend -o lazy_refcounts=on v.qcow2
expect_ok qemu-img amend -o lazy_refcounts=on q.qcow2
agree v.qcow2 q.qcow2 "check -r all, amend"
expect_ok qemu-img create -f raw src.raw 64M
expect_ok qemu-io -f raw -c 'write -P 7 8M 256k' src.raw
expect_ok "$VIMG" convert -n -f raw -O qcow2 src.raw v.qcow2
expect_ok qemu-img convert -n -f raw -O qcow2 src.raw q.qcow2
expect_ok qemu-img check v.qcow2
bitmaps_info v.qcow2 | grep -q in-use && fail "bitmap left in use (convert -n)"
expect_ok qemu-img compare -f qcow2 -F qcow2 v.qcow2 q.qcow2
assert_eq "$($DUMP v.qcow2)" "$($DUMP q.qcow2)" "bitmap bits (convert -n)"
echo "ok check, amend, convert -n"

# Refused: resize.
sum=$(sha v.qcow2)
expect_error 1 "vimg cannot resize an image with persistent bitmaps" \
    "$VIMG" resize v.qcow2 128M
assert_eq "$(sha v.qcow2)" "$sum" "image after a refused resize"

# A crash while writing leaves the bitmaps in use, as a qemu crash does.
cp b.qcow2 c.qcow2
run_cmd env VIMG_FAILPOINT=flush:2:crash "$VIMG" io -c 'write 0 64k' c.qcow2
[ "$LAST_RC" = 0 ] && fail "the failpoint did not fire"
# (a crash may leak clusters, never corrupt: exit 0 or 3)
run_cmd qemu-img check c.qcow2
case "$LAST_RC" in
    0|3) ;;
    *) _show_last qemu-img check c.qcow2; fail "crash: qemu-img check" ;;
esac
bitmaps_info c.qcow2 | grep -q in-use || fail "crash: bitmaps not in use"
expect_ok qemu-io -f qcow2 -c 'write 0 64k' c.qcow2
echo "PASS: $TEST_NAME"
