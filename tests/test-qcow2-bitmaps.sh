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
# `qemu-img check` finds no corruption (leaks at most).  `$VIMG resize`
# (grow, shrink, bitmap tables of one and two clusters, an all-ones table
# entry) gives the same bitmaps as `qemu-img resize`; with a bitmap that
# is inconsistent (in use) both refuse with the same message, and a write
# leaves it in use in both.

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

# resize: qemu-img resizes its in-memory bitmaps and stores them anew
# (bits past the smaller size cleared, table sized for the new size);
# vimg's result must hold the same bitmaps, flags and bits, pass
# qemu-img check, and keep following writes (qemu-io) the same way.
# g.qcow2: 4 KiB clusters and a 512-byte granularity, so a grow to 9 GiB
# needs a second bitmap table cluster; a shrink to an odd size ends
# inside a granule and inside a bitmap data cluster.
resized()   # resized IMG RESIZE-ARGS...: both tools resize copies of IMG
{
    local img=$1
    shift
    cp "$img" v.qcow2
    cp "$img" q.qcow2
    expect_ok "$VIMG" resize v.qcow2 "$@"
    expect_ok qemu-img resize q.qcow2 "$@"
    agree v.qcow2 q.qcow2 "resize $*"
    expect_ok "$VIMG" io -c 'write -P 6 512 64k' v.qcow2
    expect_ok qemu-io -f qcow2 -c 'write -P 6 512 64k' q.qcow2
    agree v.qcow2 q.qcow2 "write after resize $*"
}
cp v.qcow2 big.qcow2
resized big.qcow2 128M
resized big.qcow2 --shrink 8M
expect_ok qemu-img create -f qcow2 -o cluster_size=4096 g.qcow2 16M
expect_ok qemu-img bitmap --add -g 512 g.qcow2 a
expect_ok qemu-img bitmap --add -g 64k g.qcow2 c
expect_ok qemu-img bitmap --add --disable g.qcow2 d
expect_ok qemu-io -f qcow2 -c 'write -P 1 0 64k' -c 'write 15M 1M' \
    -c 'write 4M 3k' g.qcow2
resized g.qcow2 9G
cp v.qcow2 g9.qcow2
expect_ok qemu-io -f qcow2 -c 'write 8G 1M' g9.qcow2
resized g9.qcow2 --shrink 5243392
# poke_first IMG table|in-use: in the first bitmap of IMG, make the first
# table entry "all ones" (1, no cluster), or set the in-use flag.
poke_first()
{
    python3 - "$@" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    d = f.read()
    off = struct.unpack_from('>I', d, 100)[0]
    while True:
        t, ln = struct.unpack_from('>II', d, off)
        if t == 0x23852875:
            doff = struct.unpack_from('>Q', d, off + 24)[0]
            break
        off += 8 + ((ln + 7) & ~7)
    if sys.argv[2] == 'table':
        f.seek(struct.unpack_from('>Q', d, doff)[0])
        f.write(struct.pack('>Q', 1))
    else:
        flags = struct.unpack_from('>I', d, doff + 12)[0]
        f.seek(doff + 12)
        f.write(struct.pack('>I', flags | 1))
PY
}
# An "all ones" table entry (1, no cluster) cut by a shrink.
cp g.qcow2 g1.qcow2
poke_first g1.qcow2 table
expect_ok qemu-img check -r leaks g1.qcow2
resized g1.qcow2 --shrink 1049088
echo "ok resize keeps the bitmaps as qemu-img does"

# An inconsistent bitmap (in use at open, as after a crash): resize is
# refused with qemu's message and the image stays untouched; a write
# leaves it in use, as qemu-io does.
cp g.qcow2 iu.qcow2
poke_first iu.qcow2 in-use
cp iu.qcow2 t.qcow2
run_cmd qemu-img resize t.qcow2 32M
qrc=$LAST_RC
qerr=$(sed 's/^qemu-img: //' "$LAST_ERR")
[ "$qrc" = 1 ] || fail "qemu-img resized an inconsistent bitmap (exit $qrc)"
sum=$(sha iu.qcow2)
run_cmd "$VIMG" resize iu.qcow2 32M
assert_eq "$LAST_RC" "$qrc" "exit code of resize with an inconsistent bitmap"
assert_eq "$(sed 's/^vimg: //' "$LAST_ERR")" "$qerr" "message of the refused resize"
assert_eq "$(sha iu.qcow2)" "$sum" "image after a refused resize"
cp iu.qcow2 q.qcow2
expect_ok "$VIMG" io -c 'write 0 64k' iu.qcow2
expect_ok qemu-io -f qcow2 -c 'write 0 64k' q.qcow2
assert_eq "$(bitmaps_info iu.qcow2)" "$(bitmaps_info q.qcow2)" \
    "flags after a write with an inconsistent bitmap"
bitmaps_info iu.qcow2 | grep -q in-use || fail "inconsistent bitmap no longer in use"
echo "ok inconsistent bitmaps stay in use, resize refused"

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
