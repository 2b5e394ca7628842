#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 interoperability with the real qemu-img / qemu-io 7.2, both ways.
#
# qemu -> vimg: qemu-img/qemu-io make images (cluster sizes 512..2M, v2 and
# v3, refcount widths 1..64, patterns + unaligned writes + `write -z`,
# `convert -c` with zlib and zstd, extended L2 with subcluster writes, LUKS
# with writes and zero clusters); `$VIMG convert -O raw` must give exactly
# the bytes of `qemu-img convert -O raw`, and `$VIMG info --output=json`
# the same JSON as qemu-img.
#
# vimg -> qemu: `$VIMG create` must write the same bytes as qemu-img create
# (64 MiB, several option sets); images written by `$VIMG convert -O qcow2`
# (plain and LUKS, several cluster sizes) must pass `qemu-img check` (exit
# 0: no errors, no leaks) and read back identically in qemu-img; the
# random-write model images of the unit test (test-qcow2 with
# QCOW2_KEEP_DIR) likewise.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

LUKS_OPEN="encrypt.key-secret=s0"
SEC=$SECRET             # the secret qcheck/same_raw pass to qemu-img

# same_raw IMAGE WHAT [IMAGE-OPTS]: vimg and qemu-img produce the same raw.
same_raw()
{
    local img=$1 what=$2 io=${3:-}
    rm -f q.raw v.raw
    if [ -n "$io" ]; then
        expect_ok qemu-img convert --object "$SEC" --image-opts \
            "driver=qcow2,file.filename=$img,$io" -O raw q.raw
        expect_ok "$VIMG" convert --object "$SEC" --image-opts \
            "driver=qcow2,file.filename=$img,$io" -O raw v.raw
    else
        expect_ok qemu-img convert -O raw "$img" q.raw
        expect_ok "$VIMG" convert -O raw "$img" v.raw
    fi
    assert_same_file q.raw v.raw "$what"
}

# qcheck IMAGE WHAT [IMAGE-OPTS]: qemu-img check exits 0 (no errors or leaks).
qcheck()
{
    local img=$1 what=$2 io=${3:-}
    if [ -n "$io" ]; then
        run_cmd qemu-img check --object "$SEC" --image-opts \
            "driver=qcow2,file.filename=$img,$io"
    else
        run_cmd qemu-img check "$img"
    fi
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img check "$img"
        fail "$what: qemu-img check exit code $LAST_RC"
    fi
}

# ---- source data: random, zero runs, compressible text ----------------------

random_file src.raw 3
head -c 2097152 /dev/zero >>src.raw
head -c 1048576 /dev/urandom | base64 >>src.raw
truncate -s 8M src.raw

QIO=(-c 'write -P 0xaa 0 100k' -c 'write -P 0x11 1M 7k'
     -c 'write -z 2M 128k' -c 'write -P 0x33 3000k 3M'
     -c 'write -z 3100k 3k' -c 'write -P 0x44 3333 1111')

# ---- qemu -> vimg ------------------------------------------------------------

n=0
for cs in 512 4096 65536 2M; do
    for compat in 0.10 1.1; do
        rm -f q.qcow2
        expect_ok qemu-img create -q -f qcow2 \
            -o "cluster_size=$cs,compat=$compat" q.qcow2 8M
        expect_ok qemu-io "${QIO[@]}" q.qcow2
        same_raw q.qcow2 "qemu-io writes, cluster_size=$cs compat=$compat"
        same_as_qemu info --output=json q.qcow2

        rm -f c.qcow2
        expect_ok qemu-img convert -c -O qcow2 \
            -o "cluster_size=$cs,compat=$compat" src.raw c.qcow2
        same_raw c.qcow2 "zlib-compressed, cluster_size=$cs compat=$compat"
        n=$((n + 2))
    done
    rm -f z.qcow2
    expect_ok qemu-img convert -c -O qcow2 \
        -o "cluster_size=$cs,compression_type=zstd" src.raw z.qcow2
    same_raw z.qcow2 "zstd-compressed, cluster_size=$cs"
    same_as_qemu info --output=json z.qcow2
    n=$((n + 1))
done

for rb in 1 2 4 8 32 64; do
    rm -f r.qcow2
    expect_ok qemu-img convert -O qcow2 -o "cluster_size=4096,refcount_bits=$rb" \
        src.raw r.qcow2
    same_raw r.qcow2 "refcount_bits=$rb"
    n=$((n + 1))
done

for cs in 16384 65536 2M; do
    rm -f e.qcow2
    expect_ok qemu-img create -q -f qcow2 -o "cluster_size=$cs,extended_l2=on" \
        e.qcow2 8M
    expect_ok qemu-io "${QIO[@]}" -c 'write -P 0x55 7M 1k' e.qcow2
    same_raw e.qcow2 "extended L2, cluster_size=$cs"
    same_as_qemu info --output=json e.qcow2
    rm -f ec.qcow2
    expect_ok qemu-img convert -c -O qcow2 -o "cluster_size=$cs,extended_l2=on" \
        src.raw ec.qcow2
    same_raw ec.qcow2 "extended L2 compressed, cluster_size=$cs"
    n=$((n + 2))
done

# LUKS in qcow2 written by qemu-io (IV = host offset), with zero clusters.
rm -f l.qcow2
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
    l.qcow2 8M || fail "qemu-img create LUKS qcow2"
expect_ok qemu-io --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=l.qcow2,$LUKS_OPEN" \
    -c 'write -P 0x5a 0 64k' -c 'write -P 0x77 1M 4k' \
    -c 'write -P 0x12 3000k 5k' -c 'write -z 64k 64k' -c 'write -z 0 4k'
same_raw l.qcow2 "LUKS qcow2 written by qemu-io" "$LUKS_OPEN"
same_as_qemu info --output=json l.qcow2
same_as_qemu info l.qcow2
n=$((n + 1))

# qemu's error texts on a wrong or missing key.
expect_error 1 "Invalid password, cannot unlock any keyslot" \
    "$VIMG" convert --object secret,id=s1,data=wrong --image-opts \
    "driver=qcow2,file.filename=l.qcow2,encrypt.key-secret=s1" -O raw x.raw
expect_error 1 "Parameter 'encrypt.key-secret' is required for cipher" \
    "$VIMG" convert -O raw l.qcow2 x.raw

# Damaged headers: the same messages (and exit codes) as qemu-img info.
# poke FILE OFFSET BYTES: overwrite bytes of a fresh 1 MiB image.
poke()
{
    rm -f "$1"
    expect_ok qemu-img create -q -f qcow2 "$1" 1M
    printf '%b' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
poke bad-version.qcow2 4 '\x00\x00\x00\x04'
poke bad-feature.qcow2 72 '\x00\x00\x00\x00\x00\x00\x01\x20'
poke bad-clusterbits.qcow2 20 '\x00\x00\x00\x08'
poke bad-l1size.qcow2 36 '\x00\x00\x00\x00'
poke bad-reftable.qcow2 56 '\x00\x00\x00\x00'
poke bad-crypt.qcow2 32 '\x00\x00\x00\x05'
poke bad-extension.qcow2 116 '\x00\x01\x00\x00'
poke corrupt.qcow2 72 '\x00\x00\x00\x00\x00\x00\x00\x02'
for f in bad-*.qcow2 corrupt.qcow2; do
    same_as_qemu info "$f"
done
grep_last "corrupt: true"

echo "qemu -> vimg: $n images read identically"

# ---- vimg create: the same bytes as qemu-img create --------------------------

for o in "" compat=0.10 cluster_size=512 cluster_size=2M,refcount_bits=64 \
         extended_l2=on,compression_type=zstd,lazy_refcounts=on \
         cluster_size=4096,refcount_bits=1; do
    rm -f cq.qcow2 cv.qcow2
    expect_ok qemu-img create -q -f qcow2 ${o:+-o "$o"} cq.qcow2 64M
    expect_ok "$VIMG" create -q -f qcow2 ${o:+-o "$o"} cv.qcow2 64M
    assert_same_file cq.qcow2 cv.qcow2 "create -o '$o'"
done

# LUKS layout: header cluster, L1 at cluster 3, LUKS region at 0x40000.
rm -f lv.qcow2
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 \
    lv.qcow2 64M
assert_eq "$(stat -c %s lv.qcow2)" 2359296 "LUKS qcow2 file size"
qcheck lv.qcow2 "vimg-created LUKS qcow2" "$LUKS_OPEN"
run_cmd qemu-img info --output=json lv.qcow2
grep_last '"payload-offset": 2068480'

# ---- vimg writes, qemu checks and reads ---------------------------------------

for cs in 512 4096 65536 2M; do
    for compat in 0.10 1.1; do
        rm -f w.qcow2
        expect_ok "$VIMG" convert -O qcow2 -o "cluster_size=$cs,compat=$compat" \
            src.raw w.qcow2
        qcheck w.qcow2 "vimg convert, cluster_size=$cs compat=$compat"
        expect_ok qemu-img compare src.raw w.qcow2
    done
done
rm -f w.qcow2
expect_ok "$VIMG" convert -O qcow2 -o extended_l2=on,refcount_bits=8 src.raw \
    w.qcow2
qcheck w.qcow2 "vimg convert, extended L2"
expect_ok qemu-img compare src.raw w.qcow2

for cs in 512 65536; do
    rm -f wl.qcow2 back.raw
    expect_ok "$VIMG" convert --object "$SECRET" -O qcow2 \
        -o "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000,cluster_size=$cs" \
        src.raw wl.qcow2
    qcheck wl.qcow2 "vimg convert to LUKS qcow2, cluster_size=$cs" "$LUKS_OPEN"
    expect_ok qemu-img convert --object "$SECRET" --image-opts \
        "driver=qcow2,file.filename=wl.qcow2,$LUKS_OPEN" -O raw back.raw
    assert_same_file src.raw back.raw "LUKS qcow2 written by vimg, cs=$cs"
done

# Overwriting compressed clusters: copy-on-write, old data released.
rm -f cw.qcow2
expect_ok qemu-img convert -c -O qcow2 src.raw cw.qcow2
random_file new.raw 8
expect_ok "$VIMG" convert -n -O qcow2 new.raw cw.qcow2
qcheck cw.qcow2 "compressed clusters overwritten by vimg"
expect_ok qemu-img compare new.raw cw.qcow2

# The unit test's random-write model images (partial clusters, zeroes,
# reopen, all cluster sizes, refcount widths, extended L2, LUKS).
UNIT=$BUILDDIR/tests/test-qcow2
if [ -x "$UNIT" ]; then
    mkdir keep
    # The unit test's secret "sec0" is "123456".
    printf 123456 >model-pw
    SEC="secret,id=s0,file=$TEST_TMP/model-pw"
    QCOW2_KEEP_DIR=$TEST_TMP/keep run_cmd "$UNIT"
    [ "$LAST_RC" = 0 ] || { _show_last "$UNIT"; fail "test-qcow2 failed"; }
    m=0
    for img in keep/*.qcow2; do
        name=${img%.qcow2}
        case $img in
            *luks*)
                qcheck "$img" "model image $img" "$LUKS_OPEN"
                rm -f back.raw
                expect_ok qemu-img convert --object "$SEC" --image-opts \
                    "driver=qcow2,file.filename=$img,$LUKS_OPEN" -O raw back.raw
                assert_same_file "$name.raw" back.raw "model image $img"
                ;;
            *)
                qcheck "$img" "model image $img"
                expect_ok qemu-img compare -f raw -F qcow2 "$name.raw" "$img"
                ;;
        esac
        m=$((m + 1))
    done
    [ "$m" -ge 20 ] || fail "only $m model images"
    echo "vimg -> qemu: $m model images pass qemu-img check and compare"
else
    echo "note: $UNIT not built; model images skipped"
fi

# ---- compressed writes: vimg convert -c -------------------------------------

# Random, zero and compressible data; the image end is not cluster aligned.
head -c 3145728 /dev/urandom >cmp.raw
head -c 1048576 /dev/zero >>cmp.raw
yes "compressible text for qcow2" | head -c 2098688 >>cmp.raw
for ct in zlib zstd; do
    for cs in 4096 65536 2097152; do
        rm -f c.qcow2
        expect_ok "$VIMG" convert -c -O qcow2 \
            -o compression_type=$ct,cluster_size=$cs cmp.raw c.qcow2
        qcheck c.qcow2 "convert -c $ct cluster $cs"
        expect_ok qemu-img compare -f raw -F qcow2 cmp.raw c.qcow2
        expect_ok qemu-img check --output=json c.qcow2
        grep -q '"compressed-clusters": [1-9]' "$LAST_OUT" ||
            fail "convert -c $ct cluster $cs: no compressed clusters"
    done
done
# Smaller than qemu-img's output by at most a few percent either way.
rm -f c.qcow2 qc.qcow2
expect_ok "$VIMG" convert -c -O qcow2 cmp.raw c.qcow2
expect_ok qemu-img convert -c -O qcow2 cmp.raw qc.qcow2
vs=$(stat -c %s c.qcow2)
qs=$(stat -c %s qc.qcow2)
[ "$vs" -le $((qs + qs / 20)) ] || fail "convert -c: $vs bytes vs qemu's $qs"
rm -f cenc.qcow2
expect_stderr "Compression and encryption not supported at the same time" \
    "$VIMG" convert -c -O qcow2 --object "$SEC" \
    -o encrypt.format=luks,encrypt.key-secret=s0 cmp.raw cenc.qcow2
[ -e cenc.qcow2 ] && fail "convert -c with encryption left a file"
echo "convert -c: zlib/zstd images pass qemu-img check ($vs vs qemu $qs bytes)"

exit 0
