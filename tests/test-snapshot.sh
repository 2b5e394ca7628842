#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 internal snapshots against the real qemu-img / qemu-io 7.2, both
# ways, for several layouts (v3 and v2, 4 KiB clusters with 8-bit
# refcounts, 512-byte clusters with 64-bit refcounts, extended L2, LUKS):
#   - snapshots made by `qemu-img snapshot -c` are listed (byte-identical
#     `snapshot -l` and `info --output=json`), applied and deleted by vimg,
#     and snapshots made by vimg by qemu-img;
#   - writes by vimg after a snapshot (partial, whole-cluster, zero,
#     over compressed clusters) leave the snapshot's content unchanged;
#   - after every step `qemu-img check` exits 0 and the current content
#     and each snapshot's content (`convert -l`, both tools) are what they
#     must be;
#   - vimg needs no key for -c/-l/-a/-d on LUKS images (qemu-img does);
#   - qemu-img's error messages and exit codes for bad requests.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

export TZ=UTC

# Per layout: QOPTS (qemu-img create -o), LUKS (1: encrypted).
QOPTS=""
LUKS=0

# img_arg IMG: how both tools name IMG for data access.
io_args()
{
    if [ "$LUKS" = 1 ]; then
        echo "--object $SECRET --image-opts driver=qcow2,file.filename=$1,encrypt.key-secret=s0"
    else
        echo "$1"
    fi
}

# qcheck IMG WHAT: qemu-img check exits 0.
qcheck()
{
    # shellcheck disable=SC2046
    run_cmd qemu-img check $(io_args "$1")
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img check "$1"
        fail "$2: qemu-img check exit code $LAST_RC"
    fi
}

# content IMG OUT [SNAPSHOT]: raw content as qemu-img sees it.
content()
{
    local img=$1 out=$2 sn=${3:-}
    rm -f "$out"
    # shellcheck disable=SC2046
    if [ -n "$sn" ]; then
        expect_ok qemu-img convert -l "$sn" -O raw $(io_args "$img") "$out"
    else
        expect_ok qemu-img convert -O raw $(io_args "$img") "$out"
    fi
}

# vcontent IMG OUT [SNAPSHOT]: the same with vimg.
vcontent()
{
    local img=$1 out=$2 sn=${3:-}
    rm -f "$out"
    # shellcheck disable=SC2046
    if [ -n "$sn" ]; then
        expect_ok "$VIMG" convert -l "$sn" -O raw $(io_args "$img") "$out"
    else
        expect_ok "$VIMG" convert -O raw $(io_args "$img") "$out"
    fi
}

# same_list IMG: `snapshot -l` and `info --output=json` equal qemu-img's.
same_list()
{
    local img=$1 qargs=$1
    [ "$LUKS" = 1 ] && qargs=$(io_args "$img")
    # shellcheck disable=SC2086
    expect_ok qemu-img snapshot -l $qargs
    cp "$LAST_OUT" q.list
    expect_ok "$VIMG" snapshot -l "$img"       # no key needed
    assert_same_file q.list "$LAST_OUT" "$img: snapshot -l"
    # shellcheck disable=SC2086
    expect_ok qemu-img info --output=json $qargs
    sed 's/"actual-size": [0-9]*/"actual-size": X/' "$LAST_OUT" >q.json
    # shellcheck disable=SC2086
    expect_ok "$VIMG" info --output=json $qargs
    sed 's/"actual-size": [0-9]*/"actual-size": X/' "$LAST_OUT" >v.json
    assert_same_file q.json v.json "$img: info --output=json"
}

qio()
{
    local img=$1
    shift
    local a=() c
    for c in "$@"; do a+=(-c "$c"); done
    # shellcheck disable=SC2046
    expect_ok qemu-io $(io_args "$img") "${a[@]}"
}

vio()
{
    local img=$1
    shift
    local a=() c
    for c in "$@"; do a+=(-c "$c"); done
    # shellcheck disable=SC2046
    expect_ok "$VIMG" io $(io_args "$img") "${a[@]}"
}

run_layout()
{
    local what=$1 img=sn.qcow2
    rm -f "$img" ./*.raw
    if [ "$LUKS" = 1 ]; then
        # vimg's fixed iteration count: qemu-img's iter-time calibration
        # fails on a loaded machine ("Unable to get accurate CPU usage").
        expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" \
            -o "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000${QOPTS:+,$QOPTS}" \
            "$img" 8M
    else
        expect_ok qemu-img create -q -f qcow2 ${QOPTS:+-o "$QOPTS"} "$img" 8M
    fi
    qio "$img" "write -P 0x11 0 1M" "write -P 0x12 1536k 5000" \
        "write -z 2M 256k" "write -P 0x13 7M 1M"
    if [ "$LUKS" = 0 ]; then
        qio "$img" "write -c -P 0x14 3M 64k"
    fi
    content "$img" s1.raw

    # qemu makes s1; vimg lists it, writes, makes s2.
    # shellcheck disable=SC2046
    expect_ok qemu-img snapshot -c s1 $(io_args "$img")
    same_list "$img"
    vio "$img" "write -P 0x21 4k 8k" "write -P 0x22 1M 1M" \
        "write -z 7M 4k" "write -P 0x23 3M 4k" "write -z 2M 64k" \
        "write -P 0x24 6M 100k"
    qcheck "$img" "$what: vimg writes after a qemu snapshot"
    content "$img" t.raw s1
    assert_same_file s1.raw t.raw "$what: snapshot s1 after vimg writes"
    content "$img" cur2.raw
    vcontent "$img" t.raw
    assert_same_file cur2.raw t.raw "$what: current content, vimg vs qemu"
    qio "$img" "read -P 0x21 4k 8k" "read -P 0x22 1M 1M" "read -P 0 7M 4k" \
        "read -P 0x13 7344128 4096" "read -P 0x24 6M 100k"

    expect_ok "$VIMG" snapshot -c s2 "$img"
    qcheck "$img" "$what: vimg snapshot -c"
    same_list "$img"
    content "$img" t.raw s2
    assert_same_file cur2.raw t.raw "$what: vimg's snapshot s2 in qemu-img"
    vcontent "$img" t.raw s1
    assert_same_file s1.raw t.raw "$what: vimg convert -l s1"

    # qemu writes over vimg's snapshot; vimg applies qemu's s1.
    qio "$img" "write -P 0x31 0 2M" "write -P 0x32 7M 512"
    qcheck "$img" "$what: qemu writes after a vimg snapshot"
    content "$img" t.raw s2
    assert_same_file cur2.raw t.raw "$what: s2 after qemu writes"
    content "$img" cur3.raw
    expect_ok "$VIMG" snapshot -a s1 "$img"
    qcheck "$img" "$what: vimg snapshot -a s1"
    content "$img" t.raw
    assert_same_file s1.raw t.raw "$what: content after vimg -a s1"
    vio "$img" "write -P 0x41 8k 64k"
    qcheck "$img" "$what: write after apply"
    content "$img" t.raw s1
    assert_same_file s1.raw t.raw "$what: s1 after apply + write"

    # qemu applies vimg's s2 (by id 2), vimg deletes qemu's s1.
    # shellcheck disable=SC2046
    expect_ok qemu-img snapshot -a 2 $(io_args "$img")
    content "$img" t.raw
    assert_same_file cur2.raw t.raw "$what: qemu -a on vimg's snapshot"
    expect_ok "$VIMG" snapshot -d s1 "$img"
    qcheck "$img" "$what: vimg snapshot -d s1"
    same_list "$img"
    content "$img" t.raw s2
    assert_same_file cur2.raw t.raw "$what: s2 after deleting s1"
    vio "$img" "write -P 0x51 1M 64k" "write -P 0x52 5M 4k"
    qcheck "$img" "$what: write after delete"
    # shellcheck disable=SC2046
    expect_ok qemu-img snapshot -d s2 $(io_args "$img")
    qcheck "$img" "$what: qemu snapshot -d on vimg's snapshot"
    expect_ok "$VIMG" snapshot -l "$img"
    assert_eq "$(cat "$LAST_OUT")" "" "$what: empty list"
    content "$img" t.raw
    vcontent "$img" t2.raw
    assert_same_file t.raw t2.raw "$what: final content"
    echo "ok: $what"
}

QOPTS="" LUKS=0 run_layout "v3, 64k clusters"
QOPTS="compat=0.10" LUKS=0 run_layout "v2"
QOPTS="cluster_size=4k,refcount_bits=8" LUKS=0 run_layout "4k clusters, 8-bit refcounts"
QOPTS="cluster_size=512,refcount_bits=64" LUKS=0 run_layout "512-byte clusters, 64-bit refcounts"
QOPTS="extended_l2=on,cluster_size=64k" LUKS=0 run_layout "extended L2"
QOPTS="" LUKS=1 run_layout "LUKS"

# A snapshot records the size: applying it after a resize restores it.
rm -f rs.qcow2
expect_ok qemu-img create -q -f qcow2 rs.qcow2 4M
qio rs.qcow2 "write -P 0x61 0 4M"
expect_ok "$VIMG" snapshot -c small rs.qcow2
expect_ok qemu-img resize rs.qcow2 300M
qio rs.qcow2 "write -P 0x62 200M 1M" "write -P 0x63 0 64k"
expect_ok "$VIMG" snapshot -a small rs.qcow2
qcheck rs.qcow2 "apply after resize"
expect_ok qemu-img info --output=json rs.qcow2
grep -q '"virtual-size": 4194304' "$LAST_OUT" || fail "size not restored"
qio rs.qcow2 "read -P 0x61 0 4M"
expect_ok "$VIMG" snapshot -c big rs.qcow2
expect_ok qemu-img resize rs.qcow2 1G
expect_ok "$VIMG" snapshot -d small rs.qcow2
qcheck rs.qcow2 "delete after resize"

# Many snapshots: the table spans clusters; ids keep growing.
rm -f many.qcow2
expect_ok qemu-img create -q -f qcow2 -o cluster_size=512 many.qcow2 1M
for i in $(seq 1 40); do
    expect_ok "$VIMG" snapshot -c "snapshot-number-$i-with-a-long-name" many.qcow2
    [ $((i % 8)) = 0 ] && qio many.qcow2 "write -P $i $((i * 4096)) 4096"
done
qcheck many.qcow2 "40 snapshots"
same_list many.qcow2
for i in $(seq 1 2 40); do
    expect_ok "$VIMG" snapshot -d "snapshot-number-$i-with-a-long-name" many.qcow2
done
expect_ok "$VIMG" snapshot -c last many.qcow2
qcheck many.qcow2 "20 deleted"
same_list many.qcow2
grep -q '^41 *last' q.list || fail "new id after deletions"

# Errors: qemu-img's messages and exit codes.
expect_ok qemu-img create -q -f qcow2 e.qcow2 1M
expect_ok qemu-img create -q -f raw e.raw 1M
for args in "-d nosuch e.qcow2" "-a nosuch e.qcow2" "-l -c x e.qcow2" \
            "-l" "-l e.qcow2 e.qcow2" "-c x -f raw e.raw" "-x e.qcow2" \
            "-a" "-d 1 e.qcow2" "-c x -U nonexist.qcow2"; do
    # shellcheck disable=SC2086
    run_cmd qemu-img snapshot $args
    qrc=$LAST_RC
    sed 's/^qemu-img: //; s/qemu-img/PROG/g' "$LAST_ERR" >q.err
    # shellcheck disable=SC2086
    run_cmd "$VIMG" snapshot $args
    sed 's/^vimg: //; s/vimg/PROG/g' "$LAST_ERR" >v.err
    assert_eq "$LAST_RC" "$qrc" "exit code of snapshot $args"
    cmp -s q.err v.err || { diff q.err v.err >&2; fail "stderr of snapshot $args"; }
done
expect_rc 1 "$VIMG" snapshot -c x e.raw
grep_last "Could not create snapshot 'x': -95 (Operation not supported)" stderr
expect_ok "$VIMG" snapshot -l e.raw
assert_eq "$(cat "$LAST_OUT")" "" "raw: empty list"
echo "ok: error messages"

# info prints the "Snapshot list:" table between the backing lines and
# "Format specific information:", exactly as qemu-img info (local time:
# TZ fixed).
qemu-img create -q -f qcow2 is.qcow2 1M
qemu-img snapshot -c first is.qcow2
qemu-img snapshot -c second is.qcow2
TZ=UTC same_as_qemu info is.qcow2
grep_last 'Snapshot list:'
TZ=UTC same_as_qemu info --output=json is.qcow2
echo "ok: info snapshot table"

exit 0
