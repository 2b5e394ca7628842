#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 backing files against the real qemu-img / qemu-io 7.2, both ways.
#
# qemu -> vimg: chains made by qemu-img (raw and qcow2 backing, a relative
# name in a subdirectory, three levels, a LUKS overlay on a LUKS base with
# different keys) read identically (`$VIMG convert -O raw` == qemu-img's),
# `$VIMG info` prints the same backing keys (JSON and human), and the
# open errors carry qemu's wording.
#
# vimg -> qemu: `$VIMG create -b/-F` writes the same file as qemu-img;
# partial-cluster writes through vimg (copy-on-write from the backing
# image, plain and LUKS over LUKS) give the same guest content as the same
# qemu-io writes, and the images pass `qemu-img check`.
#
# commit and rebase: `$VIMG commit` (plain, -d, -b BASE) and `$VIMG rebase`
# (safe, -u, removing the backing file) leave every layer with the same
# guest content as qemu-img's, and the images pass `qemu-img check`.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

SEC0="secret,id=s0,file=$PWFILE"
printf 'other-pass' >"$TEST_TMP/pw1"
SEC1="secret,id=s1,file=$TEST_TMP/pw1"

# raw_of CMD IMAGE-ARGS... > out: guest content through CMD convert.
same_content()
{
    local what=$1
    shift
    rm -f q.raw v.raw
    expect_ok qemu-img convert --object "$SEC0" --object "$SEC1" "$@" -O raw q.raw
    expect_ok "$VIMG" convert --object "$SEC0" --object "$SEC1" "$@" -O raw v.raw
    assert_same_file q.raw v.raw "$what"
}

qcheck()
{
    run_cmd qemu-img check --object "$SEC0" --object "$SEC1" "$@"
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img check "$@"
        fail "qemu-img check $*: exit code $LAST_RC"
    fi
}

# ---- qemu-made chains -------------------------------------------------------

mkdir sub
expect_ok qemu-img create -f raw base.raw 3M
expect_ok qemu-io -f raw -c 'write -P 0x11 0 3M' -c 'write -z 1M 64k' base.raw
expect_ok qemu-img create -f qcow2 -b ../base.raw -F raw sub/mid.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 0x22 60k 10k' -c 'write -z 200k 64k' \
    -c 'write -P 0x23 2500k 1k' sub/mid.qcow2
expect_ok qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 sub/top.qcow2 4M
expect_ok qemu-io -f qcow2 -c 'write -P 0x33 0 5k' -c 'write -P 0x34 190k 100k' \
    -c 'write -P 0x35 3500k 64k' sub/top.qcow2
same_content "3-level chain, relative names" sub/top.qcow2
same_content "2-level chain" sub/mid.qcow2
for f in sub/top.qcow2 sub/mid.qcow2; do
    expect_ok qemu-img info --output=json "$f"
    cp "$LAST_OUT" q.json
    expect_ok "$VIMG" info --output=json "$f"
    assert_same_file q.json "$LAST_OUT" "info --output=json $f"
    expect_ok qemu-img info "$f"
    grep -v '^disk size' "$LAST_OUT" >q.txt
    expect_ok "$VIMG" info "$f"
    grep -v '^disk size' "$LAST_OUT" >v.txt
    assert_same_file q.txt v.txt "info $f"
done

# Extended L2 overlay (subcluster COW) on a qcow2 base.
expect_ok qemu-img create -f qcow2 -o extended_l2=on,cluster_size=64k \
    -b sub/mid.qcow2 -F qcow2 ext.qcow2
expect_ok qemu-io -c 'write -P 0x44 3k 5k' -c 'write -z 70k 2k' ext.qcow2
same_content "extended L2 overlay" ext.qcow2

# LUKS overlay on a LUKS base, different keys.
qemu_retry qemu-img create -f qcow2 --object "$SEC0" -o \
    encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 lbase.qcow2 2M ||
    fail "qemu-img create (LUKS base)"
expect_ok qemu-io --object "$SEC0" --image-opts \
    driver=qcow2,file.filename=lbase.qcow2,encrypt.key-secret=s0 \
    -c 'write -P 0x55 0 2M'
qemu_retry qemu-img create -f qcow2 --object "$SEC1" -o \
    encrypt.format=luks,encrypt.key-secret=s1,encrypt.iter-time=10 \
    -b lbase.qcow2 -F qcow2 ltop.qcow2 || fail "qemu-img create (LUKS overlay)"
LIO="driver=qcow2,file.filename=ltop.qcow2,encrypt.key-secret=s1,backing.encrypt.key-secret=s0"
expect_ok qemu-io --object "$SEC0" --object "$SEC1" --image-opts "$LIO" \
    -c 'write -P 0x66 100k 3k' -c 'write -z 300k 64k'
same_content "LUKS over LUKS" --image-opts "$LIO"
expect_stderr "Could not open backing file: Parameter 'encrypt.key-secret' is required for cipher" \
    "$VIMG" convert --object "$SEC1" --image-opts \
    "driver=qcow2,file.filename=ltop.qcow2,encrypt.key-secret=s1" -O raw x.raw
expect_stderr "Could not open backing file: Invalid password, cannot unlock any keyslot" \
    "$VIMG" convert --object "$SEC1" --image-opts \
    "driver=qcow2,file.filename=ltop.qcow2,encrypt.key-secret=s1,backing.encrypt.key-secret=s1" \
    -O raw x.raw

# A missing backing file: I/O opens fail like qemu, info still works.
expect_ok qemu-img create -f qcow2 -u -b gone.raw -F raw orphan.qcow2 1M
expect_stderr "Could not open 'orphan.qcow2': Could not open backing file: Could not open 'gone.raw': No such file or directory" \
    "$VIMG" convert -O raw orphan.qcow2 x.raw
expect_ok "$VIMG" info orphan.qcow2
grep -q '^backing file: gone.raw$' "$LAST_OUT" || fail "info of an orphan overlay"

# ---- vimg-made chains -------------------------------------------------------

expect_ok qemu-img create -f qcow2 -b base.raw -F raw q1.qcow2
expect_ok "$VIMG" create -q -f qcow2 -b base.raw -F raw v1.qcow2
assert_same_file q1.qcow2 v1.qcow2 "create -b base.raw -F raw"
expect_stderr "Backing file specified without backing format" \
    "$VIMG" create -q -f qcow2 -b base.raw v2.qcow2 1M
expect_stderr "Could not open 'nothere.raw': No such file or directory" \
    "$VIMG" create -q -f qcow2 -b nothere.raw -F raw v2.qcow2 1M

WRITES=(-c 'write -P 0x71 1k 2k' -c 'write -P 0x72 130k 70k' -c 'write -z 400k 8k'
        -c 'write -P 0x73 1020k 8k' -c 'write -z 2M 64k')
for f in q1 v1; do
    cp q1.qcow2 "w$f.qcow2"
done
expect_ok qemu-io "${WRITES[@]}" wq1.qcow2
expect_ok "$VIMG" io "${WRITES[@]}" wv1.qcow2
qcheck wv1.qcow2
same_content "qemu-io vs vimg io writes on an overlay (qemu reads)" wq1.qcow2
rm -f q.raw v.raw
expect_ok qemu-img convert -O raw wq1.qcow2 q.raw
expect_ok qemu-img convert -O raw wv1.qcow2 v.raw
assert_same_file q.raw v.raw "COW from the backing file"

# LUKS overlay made by vimg on the qemu LUKS base.
expect_ok "$VIMG" create -q -f qcow2 --object "$SEC1" -o \
    encrypt.format=luks,encrypt.key-secret=s1,encrypt.iter-count=1000 \
    -b lbase.qcow2 -F qcow2 vltop.qcow2
VLIO="driver=qcow2,file.filename=vltop.qcow2,encrypt.key-secret=s1,backing.encrypt.key-secret=s0"
expect_ok "$VIMG" io --object "$SEC0" --object "$SEC1" --image-opts "$VLIO" \
    -c 'write -P 0x66 100k 3k' -c 'write -z 300k 64k'
qcheck --image-opts "$VLIO"
rm -f q.raw v.raw
expect_ok qemu-img convert --object "$SEC0" --object "$SEC1" --image-opts "$LIO" -O raw q.raw
expect_ok qemu-img convert --object "$SEC0" --object "$SEC1" --image-opts "$VLIO" -O raw v.raw
assert_same_file q.raw v.raw "vimg LUKS overlay on LUKS base"

# ---- commit -----------------------------------------------------------------

mkchain()
{
    local p=$1
    rm -f "${p}base.raw" "${p}mid.qcow2" "${p}top.qcow2"
    qemu-img create -q -f raw "${p}base.raw" 1M
    qemu-io -f raw -c 'write -P 1 0 1M' "${p}base.raw" >/dev/null
    qemu-img create -q -f qcow2 -b "${p}base.raw" -F raw "${p}mid.qcow2"
    qemu-io -c 'write -P 2 64k 100k' "${p}mid.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b "${p}mid.qcow2" -F qcow2 "${p}top.qcow2" 2M
    qemu-io -c 'write -P 3 128k 100k' -c 'write -z 400k 64k' \
        -c 'write -P 4 1500k 3k' "${p}top.qcow2" >/dev/null
}

for args in "" "-d" "-b @base.raw"; do
    mkchain q
    mkchain v
    # shellcheck disable=SC2086
    expect_ok qemu-img commit ${args//@/q} qtop.qcow2
    cp "$LAST_OUT" q.out
    # shellcheck disable=SC2086
    expect_ok "$VIMG" commit ${args//@/v} vtop.qcow2
    assert_same_file q.out "$LAST_OUT" "commit $args output"
    for f in top.qcow2 mid.qcow2 base.raw; do
        rm -f q.raw v.raw
        expect_ok qemu-img convert -O raw "q$f" q.raw
        expect_ok qemu-img convert -O raw "v$f" v.raw
        assert_same_file q.raw v.raw "commit $args: $f"
    done
    qcheck vtop.qcow2
    qcheck vmid.qcow2
done
expect_stderr "Did not find 'nothere' in the backing chain of 'vtop.qcow2'" \
    "$VIMG" commit -b nothere vtop.qcow2
expect_stderr "Image does not have a backing file" "$VIMG" commit -f raw vbase.raw

# ---- rebase -----------------------------------------------------------------

mkrebase()
{
    local p=$1
    rm -f "${p}a.raw" "${p}b.raw" "${p}t.qcow2"
    qemu-img create -q -f raw "${p}a.raw" 1M
    qemu-io -f raw -c 'write -P 1 0 1M' "${p}a.raw" >/dev/null
    qemu-img create -q -f raw "${p}b.raw" 512k
    qemu-io -f raw -c 'write -P 1 0 256k' -c 'write -P 1 300k 1k' "${p}b.raw" >/dev/null
    qemu-img create -q -f qcow2 -b "${p}a.raw" -F raw "${p}t.qcow2"
    qemu-io -c 'write -P 3 128k 10k' "${p}t.qcow2" >/dev/null
}

for args in "-b @b.raw -F raw" "-u -b @b.raw -F raw" "-b ''" "-u -b ''"; do
    mkrebase q
    mkrebase v
    eval "qemu-img rebase ${args//@/q} qt.qcow2" || fail "qemu-img rebase $args"
    eval "\"\$VIMG\" rebase ${args//@/v} vt.qcow2" || fail "vimg rebase $args"
    rm -f q.raw v.raw
    expect_ok qemu-img convert -O raw qt.qcow2 q.raw
    expect_ok qemu-img convert -O raw vt.qcow2 v.raw
    assert_same_file q.raw v.raw "rebase $args"
    qcheck vt.qcow2
    expect_ok qemu-img info vt.qcow2
    grep '^backing' "$LAST_OUT" | sed 's/vb\.raw/qb.raw/' >v.txt
    expect_ok qemu-img info qt.qcow2
    grep '^backing' "$LAST_OUT" >q.txt
    assert_same_file q.txt v.txt "rebase $args: backing lines"
done
expect_stderr "backing format must be specified" "$VIMG" rebase -b vb.raw vt.qcow2
expect_stderr "Must specify backing file (-b) or use unsafe mode (-u)" \
    "$VIMG" rebase vt.qcow2

# create: -u (backing file not opened, size required), no size with -b
# (the backing image's size, rounded up to 512, shown on the Formatting
# line), the errors when the backing file cannot be used, and typed -o
# values checked before "Formatting".
mkdir -p cr/sub
qemu-img create -q -f qcow2 cr/sub/base.qcow2 3M
qemu-img create -q -f raw cr/sub/odd.raw 1000
for args in "-b base.qcow2 -F qcow2 cr/sub/n.qcow2" \
            "-b odd.raw -F raw cr/sub/n.qcow2" \
            "-u -b nonexist.qcow2 -F qcow2 cr/sub/n.qcow2" \
            "-u -b nonexist.qcow2 -F qcow2 cr/sub/n.qcow2 1M" \
            "-b nonexist.qcow2 -F qcow2 cr/sub/n.qcow2" \
            "-b nonexist.qcow2 -F qcow2 cr/sub/n.qcow2 1M" \
            "-u -b base.qcow2 -F qcow2 cr/sub/n.qcow2 +5M" \
            "-o lazy_refcounts=maybe -b base.qcow2 -F qcow2 cr/sub/n.qcow2" \
            "-o extent_size_hint=abc cr/sub/n.qcow2 1M" \
            "-o refcount_bits=x,nosuch=1 cr/sub/n.qcow2 1M" \
            "-o nosuch=1,refcount_bits=x cr/sub/n.qcow2 1M" \
            "-o size=abc,lazy_refcounts=maybe cr/sub/n.qcow2" \
            "-o lazy_refcounts=y cr/sub/n.qcow2 1M"; do
    rm -f cr/sub/n.qcow2
    # shellcheck disable=SC2086
    same_as_qemu create -f qcow2 $args
done
rm -f cr/sub/n.qcow2
expect_ok "$VIMG" create -q -f qcow2 -b odd.raw -F raw cr/sub/n.qcow2
expect_ok qemu-img info --output=json cr/sub/n.qcow2
grep_last '"virtual-size": 1024,'
echo "ok create -u and backing sizes"

# info --backing-chain: every layer, human (blank line between layers, the
# snapshot table of a layer that has snapshots) and JSON (an array), with
# relative names two directories deep; -U and --image-opts too.
mkdir -p bc/d1/d2
qemu-img create -q -f qcow2 bc/d1/d2/base.qcow2 4M
qemu-io -c 'write -P 1 0 1M' bc/d1/d2/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b d2/base.qcow2 -F qcow2 bc/d1/mid.qcow2
qemu-img snapshot -c snap1 bc/d1/mid.qcow2
qemu-img create -q -f qcow2 -b d1/mid.qcow2 -F qcow2 bc/top.qcow2 6M
for o in human json; do
    TZ=UTC same_as_qemu info --backing-chain --output=$o bc/top.qcow2
    TZ=UTC same_as_qemu info --backing-chain -U --output=$o --image-opts \
        driver=qcow2,file.filename=bc/top.qcow2
done
TZ=UTC same_as_qemu info --backing-chain bc/d1/d2/base.qcow2
expect_ok "$VIMG" info --backing-chain bc/top.qcow2
assert_eq "$(grep -c '^image: ' "$LAST_OUT")" 3 "three layers shown"
grep_last 'image: bc/d1/d2/base.qcow2'
echo "ok info --backing-chain"

echo "PASS: $TEST_NAME"
