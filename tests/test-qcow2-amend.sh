#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 amend of the non-encryption options against the real qemu-img /
# qemu-io 7.2.
#
# The same qemu-io workload (data, zero clusters allocated and not,
# compressed clusters; with and without a backing file) is amended by
# `$VIMG amend` and by `qemu-img amend` with the same options
# (compat=0.10/v2 <-> 1.1/v3, lazy_refcounts, size grow and shrink): the
# two files must be byte-identical (cmp), pass `qemu-img check` with exit 0
# and read back identically (`qemu-img compare`, `qemu-img map` without
# the file system's hole status).  An
# image with an unknown compatible header extension keeps it through an
# upgrade and a downgrade.  Refused combinations give qemu's message and
# exit 1 and leave the image untouched; `-o help` lists qemu's lines.
# refcount_bits changes (vimg places the new structures elsewhere than
# qemu) are checked with qemu-img check/info/compare instead of cmp.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

expect_ok qemu-img create -f raw base.raw 8M
expect_ok qemu-io -f raw -c 'write -P 9 0 8M' base.raw

# make NAME CREATE-ARGS...: the workload on a new image.
make()
{
    local name=$1
    shift
    rm -f "$name"
    expect_ok qemu-img create -f qcow2 "$@" "$name" 8M
    expect_ok qemu-io -f qcow2 -c 'write -P 1 0 64k' -c 'write -z 1M 128k' \
        -c 'write -P 2 2M 64k' -c 'write -c -P 3 3M 64k' \
        -c 'write -z 5M 1k' "$name"
    # An allocated cluster turned into a zero cluster (v3 only).
    qemu-io -f qcow2 -c 'write -z 2M 64k' "$name" >/dev/null 2>&1 || true
}

# same AMEND-OPTS CREATE-ARGS...: vimg and qemu-img amend the same image.
same()
{
    local o=$1
    shift
    make v.qcow2 "$@"
    cp v.qcow2 q.qcow2
    expect_ok "$VIMG" amend -o "$o" v.qcow2
    expect_ok qemu-img amend -o "$o" q.qcow2
    cmp v.qcow2 q.qcow2 >&2 || fail "amend -o $o ($*): files differ"
    qcheck v.qcow2
    expect_ok qemu-img compare -f qcow2 -F qcow2 q.qcow2 v.qcow2
    # Whether a zeroed cluster is a hole in the file is the file system's
    # business: compare the map without "zero".
    qemu-img map --output=json v.qcow2 | sed 's/"zero": [a-z]*, //' >v.map
    qemu-img map --output=json q.qcow2 | sed 's/"zero": [a-z]*, //' >q.map
    cmp v.map q.map >&2 || fail "amend -o $o ($*): maps differ"
}

for create in "" "-b base.raw -F raw" "-o lazy_refcounts=on,cluster_size=4096"; do
    # shellcheck disable=SC2086
    {
        same compat=0.10 $create
        same compat=v2,size=16M $create
        same size=4M $create
        same lazy_refcounts=on $create
        same lazy_refcounts=off $create
    }
done
for o in compat=1.1 compat=v3,lazy_refcounts=on,size=12M; do
    same "$o" -o compat=0.10
    same "$o" -o compat=0.10 -b base.raw -F raw
done
echo "ok amend matches qemu-img byte for byte"

# Upgrade then downgrade keeps an unknown compatible extension.
make v.qcow2 -o compat=0.10
python3 - v.qcow2 <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(72)
    f.write(struct.pack('>II', 0x12345678, 5) + b'vimg!\0\0\0' + b'\0' * 8)
PY
expect_ok qemu-img check v.qcow2
expect_ok "$VIMG" amend -o compat=1.1 v.qcow2
qcheck v.qcow2
grep -c 'vimg!' v.qcow2 >/dev/null || fail "unknown extension lost on upgrade"
expect_ok qemu-img info --output=json v.qcow2
grep_last '"compat": "1.1"'
expect_ok "$VIMG" amend -o compat=0.10 v.qcow2
qcheck v.qcow2
grep -c 'vimg!' v.qcow2 >/dev/null || fail "unknown extension lost on downgrade"
expect_ok qemu-io -f qcow2 -c 'read -P 1 0 64k' -c 'read -P 3 3M 64k' v.qcow2
echo "ok unknown extensions kept"

# Refusals: qemu's message and exit code, image untouched.
refuse()
{
    local o=$1 img=$2
    cp "$img" t.qcow2
    run_cmd qemu-img amend -o "$o" t.qcow2
    local qrc=$LAST_RC qerr
    qerr=$(sed 's/^qemu-img: //' "$LAST_ERR")
    cp "$img" t.qcow2
    local sum
    sum=$(sha t.qcow2)
    run_cmd "$VIMG" amend -o "$o" t.qcow2
    assert_eq "$LAST_RC" "$qrc" "exit code of amend -o $o"
    assert_eq "$(sed 's/^vimg: //' "$LAST_ERR")" "$qerr" "message of amend -o $o"
    assert_eq "$(sha t.qcow2)" "$sum" "image after refused amend -o $o"
}
expect_ok qemu-img create -f qcow2 -o compat=0.10 r2.qcow2 8M
expect_ok qemu-img create -f qcow2 -o extended_l2=on r3.qcow2 8M
expect_ok qemu-img create -f qcow2 -o refcount_bits=8 r8.qcow2 8M
expect_ok qemu-img create -f qcow2 -b base.raw -F raw rb.qcow2 8M
refuse lazy_refcounts=on r2.qcow2
refuse refcount_bits=8 r2.qcow2
refuse compat=0.10 r3.qcow2
refuse compat=0.10 r8.qcow2
refuse compat=0.9 r8.qcow2
refuse refcount_bits=3 r8.qcow2
refuse backing_file=base.raw rb.qcow2
refuse backing_fmt=qcow2 rb.qcow2
refuse size=1000 rb.qcow2
refuse data_file=x rb.qcow2
refuse data_file_raw=on rb.qcow2
refuse cluster_size=4k rb.qcow2
refuse lazy_refcounts=maybe rb.qcow2
refuse compat=0.10,lazy_refcounts=on rb.qcow2
refuse compat=0.10,refcount_bits=8 r8.qcow2
refuse compat=0.10,refcount_bits=4 r8.qcow2
echo "ok refusals"

# refcount_bits: vimg rewrites the refcount structures at its own place
# (after the last used cluster), so the file is not byte-identical to
# qemu's; it must pass qemu-img check with exit 0, show the width in
# qemu-img info, read like the original and like qemu's result, snapshots
# included, and take further writes by qemu-io.
rbits()     # rbits IMG: the refcount width qemu-img info reports
{
    qemu-img info --output=json "$1" | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["format-specific"]["data"]["refcount-bits"])'
}
# width IMG BITS [SNAP]: vimg and qemu-img amend copies of IMG.
width()
{
    local img=$1 bits=$2 snap=${3:-}
    cp "$img" v.qcow2
    cp "$img" q.qcow2
    expect_ok "$VIMG" amend -o "refcount_bits=$bits" v.qcow2
    expect_ok qemu-img amend -o "refcount_bits=$bits" q.qcow2
    qcheck v.qcow2
    assert_eq "$(rbits v.qcow2)" "$bits" "refcount bits after amend ($img)"
    expect_ok qemu-img compare -f qcow2 -F qcow2 "$img" v.qcow2
    expect_ok qemu-img compare -f qcow2 -F qcow2 q.qcow2 v.qcow2
    if [ -n "$snap" ]; then
        expect_ok qemu-img convert -f qcow2 -O raw -l "snapshot.name=$snap" \
            "$img" s.raw
        expect_ok qemu-img convert -f qcow2 -O raw -l "snapshot.name=$snap" \
            v.qcow2 sv.raw
        cmp s.raw sv.raw >&2 || fail "snapshot $snap changed ($bits bits)"
    fi
    expect_ok "$VIMG" check v.qcow2
}
make w.qcow2
expect_ok qemu-img create -f qcow2 -o cluster_size=512 w512.qcow2 16M
expect_ok qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 9M 512k' \
    -c 'write -P 3 15M 256k' w512.qcow2
expect_ok qemu-img snapshot -c s1 w512.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 4 512k 1M' -c 'write -z 9M 64k' \
    w512.qcow2
# 16 compressed guest clusters in one host cluster: refcount 16.
expect_ok qemu-img create -f qcow2 wc.qcow2 8M
expect_ok qemu-io -f qcow2 -c 'write -c -P 3 0 1M' wc.qcow2
for bits in 8 64; do
    width w.qcow2 "$bits"
done
width wc.qcow2 32
for bits in 2 8 64; do
    width w512.qcow2 "$bits" s1
done
# A chain of changes (several blocks and tables with 512-byte clusters),
# starting from an image qemu-img amended, then written by qemu-io.
cp w512.qcow2 c.qcow2
expect_ok qemu-img amend -o refcount_bits=64 c.qcow2
for bits in 2 32 4 16; do
    expect_ok "$VIMG" amend -o "refcount_bits=$bits" c.qcow2
    qcheck c.qcow2
    assert_eq "$(rbits c.qcow2)" "$bits" "refcount bits in the chain"
    expect_ok qemu-img compare -f qcow2 -F qcow2 w512.qcow2 c.qcow2
done
expect_ok "$VIMG" amend -o refcount_bits=2 c.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 7 5M 1M' c.qcow2
expect_ok qemu-img snapshot -c s2 c.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 8 6M 1M' c.qcow2
qcheck c.qcow2
expect_ok qemu-io -f qcow2 -c 'read -P 7 5M 1M' -c 'read -P 8 6M 1M' c.qcow2
# Upgrade and width in one amend; the width back to 16 and a downgrade.
width r2.qcow2 16
cp r2.qcow2 u.qcow2
expect_ok "$VIMG" amend -o compat=1.1,refcount_bits=4 u.qcow2
qcheck u.qcow2
assert_eq "$(rbits u.qcow2)" 4 "refcount bits after upgrade"
cp r8.qcow2 d.qcow2
expect_ok "$VIMG" amend -o compat=0.10,refcount_bits=16 d.qcow2
qcheck d.qcow2
expect_ok qemu-img info d.qcow2
grep_last 'compat: 0.10'
# Counts that do not fit a narrower width: qemu's message (the first
# cluster that overflows), exit 1, image untouched.
refuse refcount_bits=1 w512.qcow2   # refcount 2 (snapshot)
refuse refcount_bits=4 wc.qcow2     # 16 compressed clusters in one
refuse refcount_bits=1 c.qcow2
echo "ok refcount_bits width changes"

# -o help: qemu's lines, plus vimg's encrypt.iter-count.
expect_ok "$VIMG" amend -f qcow2 -o help
grep -v 'iter-count' "$LAST_OUT" >vimg.help
expect_ok qemu-img amend -f qcow2 -o help
cmp "$LAST_OUT" vimg.help >&2 || fail "amend -f qcow2 -o help differs"
echo "PASS: $TEST_NAME"
