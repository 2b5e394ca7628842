#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow (version 1) backing files and compressed writes against the real
# qemu-img / qemu-io 7.2, both ways.
#
# - `$VIMG create -f qcow -b/-F` (with and without a size, a relative name
#   in a subdirectory) writes the same file as qemu-img, byte for byte;
# - the same qemu-io writes (partial clusters copied from the backing file,
#   zeroes over backing data, whole clusters) done by `$VIMG io` and by
#   qemu-io give byte-identical files;
# - chains made by qemu-img (qcow over raw, qcow over qcow2, qcow over
#   qcow) read identically (`convert -O raw`), `map` and `info` (human,
#   JSON, --backing-chain) print what qemu-img prints, a missing backing
#   file gives qemu's error;
# - `$VIMG convert -c -O qcow` writes the same file as `qemu-img convert
#   -c -O qcow` (compressed clusters appended sector-aligned, clusters that
#   do not shrink stored plainly, zeroes left out; qemu-img itself exits 1
#   there after writing the file); qemu reads it back
#   identically, and writes over compressed clusters work both ways;
#   compression with encryption is refused with qemu's message.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

same_raw()
{
    rm -f q.raw v.raw
    expect_ok qemu-img convert "$@" -O raw q.raw
    expect_ok "$VIMG" convert "$@" -O raw v.raw
    assert_same_file q.raw v.raw "guest content of $*"
}

# ---- create -----------------------------------------------------------------

mkdir sub
expect_ok qemu-img create -f raw base.raw 10M
expect_ok qemu-io -f raw -c 'write -P 0x11 0 10M' -c 'write -z 4M 64k' base.raw
for args in "-b base.raw -F raw" "-b base.raw -F raw 20M" \
            "-b ../base.raw -F raw sub/" "-b base.raw -F raw 3M"; do
    set -- $args
    dir=
    sz=
    for a in "$@"; do
        case "$a" in
            */) dir=$a ;;
            [0-9]*) sz=$a ;;
        esac
    done
    rm -f "${dir}q.qcow" "${dir}v.qcow"
    # shellcheck disable=SC2086
    expect_ok qemu-img create -f qcow $1 $2 $3 $4 "${dir}q.qcow" $sz
    # shellcheck disable=SC2086
    expect_ok "$VIMG" create -f qcow $1 $2 $3 $4 "${dir}v.qcow" $sz
    assert_same_file "${dir}q.qcow" "${dir}v.qcow" "create -f qcow $args"
done
echo "ok create with a backing file"

# ---- writes over a backing file ------------------------------------------------

WRITES=(-c 'write -P 1 100 1000' -c 'write -P 2 5M 64k' -c 'write -z 6M 4k'
        -c 'write -P 3 9437100 1200' -c 'write -z 4M 1k' -c 'write 8M 512')
expect_ok qemu-img create -f qcow -b base.raw -F raw q.qcow
cp q.qcow v.qcow
expect_ok qemu-io -f qcow "${WRITES[@]}" q.qcow
expect_ok "$VIMG" io -f qcow "${WRITES[@]}" v.qcow
assert_same_file q.qcow v.qcow "qcow writes over a backing file"
same_raw v.qcow
expect_ok qemu-img compare -f qcow -F qcow q.qcow v.qcow
for out in human json; do
    expect_ok qemu-img map --output=$out v.qcow
    cp "$LAST_OUT" q.map
    expect_ok "$VIMG" map --output=$out v.qcow
    assert_same_file q.map "$LAST_OUT" "map --output=$out"
done
echo "ok writes over a backing file"

# ---- qemu-made chains -------------------------------------------------------------

expect_ok qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 0x22 1M 100k' -c 'write -z 2M 64k' mid.qcow2
expect_ok qemu-img create -f qcow -b mid.qcow2 -F qcow2 top.qcow
expect_ok qemu-io -f qcow -c 'write -P 0x33 1050k 3k' -c 'write -c -P 0x34 7M 512' top.qcow
expect_ok qemu-img create -f qcow -b ../top.qcow -F qcow sub/top2.qcow 12M
expect_ok qemu-io -f qcow -c 'write -P 0x44 0 9k' -c 'write -P 0x45 11M 9k' sub/top2.qcow
same_raw top.qcow
same_raw sub/top2.qcow
for args in "info top.qcow" "info --output=json top.qcow" \
            "info --backing-chain sub/top2.qcow" \
            "info --backing-chain --output=json sub/top2.qcow" \
            "map sub/top2.qcow" "map --output=json sub/top2.qcow"; do
    # shellcheck disable=SC2086
    same_as_qemu $args
done
expect_ok qemu-img create -f qcow -b gone.raw -F raw -u orphan.qcow 1M
run_cmd qemu-io -c 'read 0 512' orphan.qcow
qerr=$(sed 's/^qemu-io: //' "$LAST_ERR")
expect_rc 1 "$VIMG" io -c 'read 0 512' orphan.qcow
assert_eq "$(sed 's/^vimg: //' "$LAST_ERR")" "$qerr" "missing backing file error"
expect_ok "$VIMG" info orphan.qcow
echo "ok qemu-made chains"

# ---- compressed writes ---------------------------------------------------------------

{
    head -c 1500000 /dev/urandom
    for _ in $(seq 20000); do echo "vimg compressed qcow cluster"; done
    head -c 300000 /dev/zero
    head -c 70000 /dev/urandom
} >src.raw
truncate -s 5000000 src.raw
# qemu-img 7.2 writes the whole file but exits 1 without a message after
# `convert -c -O qcow` (its final zero-length compressed write is refused by
# the qcow driver); vimg exits 0.
run_cmd qemu-img convert -c -O qcow src.raw q.qcow
expect_ok "$VIMG" convert -c -O qcow src.raw v.qcow
assert_same_file q.qcow v.qcow "convert -c -O qcow"
expect_ok qemu-img compare -f raw -F qcow src.raw v.qcow
expect_ok "$VIMG" compare -f raw -F qcow src.raw q.qcow
# Over compressed clusters: a partial write keeps the rest of the cluster.
cp v.qcow w.qcow
expect_ok "$VIMG" io -c 'write -P 5 2000000 100' -c 'write -z 1600k 4k' v.qcow
expect_ok qemu-io -f qcow -c 'write -P 5 2000000 100' -c 'write -z 1600k 4k' q.qcow
expect_ok qemu-img compare -f qcow -F qcow q.qcow v.qcow
expect_ok qemu-io -f qcow -c 'read -P 5 2000000 100' -c 'read -P 0 1600k 4k' v.qcow
expect_error 1 "Compression and encryption not supported at the same time" \
    "$VIMG" convert -c -O qcow -o encrypt.format=aes,encrypt.key-secret=s0 \
    --object "secret,id=s0,file=$PWFILE" src.raw e.qcow
echo "ok compressed writes"

# ---- commit and rebase -----------------------------------------------------
# qemu-img 7.2 commits a qcow overlay and empties it (the L1 table zeroed,
# the file cut after it); `$VIMG commit` must leave byte-identical files
# (top and raw base; a qcow2 base compares equal and passes qemu-img
# check), also with -d.  qemu's qcow driver cannot change a backing file:
# rebase (safe and -u) fails with "Could not change the backing file ...:
# Operation not supported", exit 1, a safe rebase having written the
# clusters that differ first; vimg gives the same message and exit code
# and leaves the same file.
# chain DIR BASE-FMT: DIR/top.qcow over DIR/base (raw or qcow2), by qemu.
chain()
{
    rm -rf "$1"
    mkdir "$1"
    expect_ok qemu-img create -f "$2" "$1/base" 4M
    expect_ok qemu-io -f "$2" -c 'write -P 1 0 4M' "$1/base"
    expect_ok qemu-img create -f qcow -b base -F "$2" "$1/top.qcow"
    expect_ok qemu-io -f qcow -c 'write -P 3 100k 300k' -c 'write -z 2M 8k' \
        -c 'write -P 4 4095k 1k' "$1/top.qcow"
}
for fmt in raw qcow2; do
    for d in "" "-d"; do
        chain cq "$fmt"
        chain cv "$fmt"
        # shellcheck disable=SC2086
        expect_ok qemu-img commit $d cq/top.qcow
        # shellcheck disable=SC2086
        expect_ok "$VIMG" commit $d cv/top.qcow
        assert_same_file cq/top.qcow cv/top.qcow "top after commit $d ($fmt)"
        if [ "$fmt" = raw ]; then
            assert_same_file cq/base cv/base "base after commit $d"
        else
            expect_ok qemu-img check cv/base
            expect_ok qemu-img compare -f qcow2 -F qcow2 cq/base cv/base
        fi
        expect_ok qemu-img compare -f qcow -F qcow cq/top.qcow cv/top.qcow
        expect_ok qemu-io -f qcow -c 'read -P 3 100k 300k' -c 'read -P 1 1M 1M' \
            cv/top.qcow
    done
done
echo "ok commit"
for u in "" "-u"; do
    chain rq raw
    chain rv raw
    for d in rq rv; do
        expect_ok qemu-img create -f raw "$d/other" 4M
        expect_ok qemu-io -f raw -c 'write -P 9 0 2M' "$d/other"
    done
    # shellcheck disable=SC2086
    run_cmd qemu-img rebase $u -b other -F raw rq/top.qcow
    qrc=$LAST_RC
    qerr=$(sed 's/^qemu-img: //' "$LAST_ERR")
    assert_eq "$qrc" 1 "qemu-img rebase $u of a qcow image"
    # shellcheck disable=SC2086
    run_cmd "$VIMG" rebase $u -b other -F raw rv/top.qcow
    assert_eq "$LAST_RC" "$qrc" "exit code of rebase $u"
    assert_eq "$(sed 's/^vimg: //' "$LAST_ERR")" "$qerr" "message of rebase $u"
    assert_same_file rq/top.qcow rv/top.qcow "top after rebase $u"
done
echo "ok rebase refused as qemu-img refuses it"
echo "PASS: $TEST_NAME"
