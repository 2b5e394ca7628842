#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg check against qemu-img check on the same qcow2 files: stdout (human
# and JSON), stderr (the "ERROR cluster ...", "Leaked cluster ...",
# "Repairing ..." lines, prefix normalised) and the exit code must match.
#
# Clean images: plain v3 and v2 with qemu-io workloads, compressed,
# extended L2 with subcluster writes, 512 B and 2 MiB clusters, refcount
# widths 1 and 64, internal snapshots (shared clusters, OFLAG_COPIED
# clear), bitmaps, LUKS (qemu needs the key, vimg does not), images written
# by vimg itself.  Damage made by byte edits: a leaked cluster (refcount 2
# for one reference), a zeroed refcount (corruption, needs a rebuild), a
# zeroed refcount of a LUKS header cluster, a truncated file (tables past
# EOF), a misaligned data offset, reserved bits, OFLAG_COPIED cleared in
# L1 and L2.  Repairs (-r leaks / -r all) run on copies with both tools:
# the exit code and the stdout summary must match, and afterwards both
# repaired files must pass qemu-img check and read back identically.
# Unsupported formats give rc 63; a sparse 1 TiB image checks in small
# memory.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires qemu-io

# poke FILE OFFSET BYTES: overwrite bytes (printf escapes, e.g. '\x00\x02').
poke()
{
    printf "$3" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none ||
        fail "cannot patch $1"
}

# be64 FILE OFFSET: the big-endian u64 at OFFSET, in decimal.
be64()
{
    echo $((0x$(od -An -tx1 -j "$(($2))" -N8 "$1" | tr -d ' \n')))
}

# qio FILE CMD...: run qemu-io commands on FILE (must succeed).
qio()
{
    local f=$1 a=()
    shift
    for c in "$@"; do
        a+=(-c "$c")
    done
    qemu_retry qemu-io -f qcow2 "${a[@]}" "$f" || fail "qemu-io on $f"
}

# same FILE [ARGS]: vimg check and qemu-img check agree, human and JSON.
same()
{
    local f=$1
    shift
    same_as_qemu check "$@" "$f"
    same_as_qemu check --output=json "$@" "$f"
}

# same_luks FILE: like same, but qemu gets the key and vimg does not
# (human output only: the JSON filename differs, being the argument).
same_luks()
{
    local f=$1 qrc
    run_cmd qemu-img check --object "$SECRET" --image-opts \
        "driver=qcow2,encrypt.key-secret=s0,file.filename=$f"
    qrc=$LAST_RC
    sed 's/^qemu-img: /PROG: /' "$LAST_ERR" >qemu.err
    cp "$LAST_OUT" qemu.out
    run_cmd "$VIMG" check "$f"
    sed 's/^[^ :]*vimg: /PROG: /' "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s qemu.out "$LAST_OUT" ||
           ! cmp -s qemu.err vimg.err; then
        cat qemu.out qemu.err vimg.err "$LAST_OUT" >&2
        fail "vimg and qemu-img check disagree on LUKS image $f"
    fi
}

# repair ORIG MODE: repair copies of ORIG with both tools (-r MODE) and
# compare: exit code, stdout, stderr; then both results must pass qemu-img
# check with the same status and hold the same data.
repair()
{
    local orig=$1 mode=$2 qrc qout vrc
    cp "$orig" w.qcow2
    run_cmd qemu-img check -r "$mode" w.qcow2
    qrc=$LAST_RC
    qout=$(cat "$LAST_OUT")
    sed 's/^qemu-img: /PROG: /' "$LAST_ERR" >qemu.err
    mv w.qcow2 fixed-q.qcow2
    cp "$orig" w.qcow2
    run_cmd "$VIMG" check -r "$mode" w.qcow2
    vrc=$LAST_RC
    sed 's/^[^ :]*vimg: /PROG: /' "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$vrc" ] || [ "$qout" != "$(cat "$LAST_OUT")" ] ||
           ! cmp -s qemu.err vimg.err; then
        echo "--- qemu-img (rc $qrc):" >&2
        echo "$qout" >&2
        cat qemu.err >&2
        echo "--- vimg (rc $vrc):" >&2
        cat "$LAST_OUT" vimg.err >&2
        fail "check -r $mode differs on $orig"
    fi
    mv w.qcow2 fixed-v.qcow2
    run_cmd qemu-img check fixed-q.qcow2
    qrc=$LAST_RC
    run_cmd qemu-img check fixed-v.qcow2
    assert_eq "$LAST_RC" "$qrc" "qemu-img check after vimg check -r $mode $orig"
    same fixed-v.qcow2
    if [ "$qrc" = 0 ]; then
        expect_ok qemu-img compare -f qcow2 -F qcow2 fixed-q.qcow2 \
            fixed-v.qcow2
    fi
}

# ---- clean images ------------------------------------------------------------

expect_ok qemu-img create -q -f qcow2 plain.qcow2 64M
same plain.qcow2
qio plain.qcow2 'write -P 0xaa 0 128k' 'write -P 1 1M 64k' \
    'write -z 2M 64k' 'write -P 2 3M 4k' 'discard 1M 64k'
same plain.qcow2
same plain.qcow2 -q
same plain.qcow2 -U

# Random workload, several L2 tables (2 GiB = 4 L2 tables).
expect_ok qemu-img create -q -f qcow2 rand.qcow2 2G
cmds=()
for i in $(seq 1 60); do
    off=$(( (RANDOM * 32768 + RANDOM) % (2048 * 1024) * 1024 ))
    len=$(( (RANDOM % 300 + 1) * 1024 ))
    case $((RANDOM % 4)) in
        0) cmds+=("write -z $off $len") ;;
        1) cmds+=("discard $off $len") ;;
        *) cmds+=("write -P $((RANDOM % 256)) $off $len") ;;
    esac
done
qio rand.qcow2 "${cmds[@]}"
same rand.qcow2

expect_ok qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 64M
qio v2.qcow2 'write -P 3 0 200k' 'write -P 4 10M 64k'
same v2.qcow2

random_file src.raw 4
head -c 2M /dev/zero >>src.raw
expect_ok qemu-img convert -c -O qcow2 src.raw comp.qcow2
same comp.qcow2
expect_ok qemu-img convert -c -O qcow2 -o compression_type=zstd src.raw \
    zstd.qcow2
qio zstd.qcow2 'write -P 7 64k 4k'
same zstd.qcow2

expect_ok qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k \
    ext.qcow2 64M
qio ext.qcow2 'write -P 5 0 4k' 'write -P 6 100k 8k' 'write -z 1M 128k' \
    'write -P 7 2M 256k' 'write -z 2M 4k'
same ext.qcow2

for cs in 512 2M; do
    expect_ok qemu-img create -q -f qcow2 -o cluster_size=$cs cs$cs.qcow2 64M
    qio cs$cs.qcow2 'write -P 8 0 100k' 'write -P 9 5M 3M' 'write -z 60M 1M'
    same cs$cs.qcow2
done

for rb in 1 64; do
    expect_ok qemu-img create -q -f qcow2 -o refcount_bits=$rb rb$rb.qcow2 64M
    qio rb$rb.qcow2 'write -P 10 0 300k' 'write -P 11 7M 64k'
    same rb$rb.qcow2
done

# Internal snapshots: shared clusters have refcount 2 and no COPIED flag.
expect_ok qemu-img create -q -f qcow2 snap.qcow2 64M
qio snap.qcow2 'write -P 1 0 256k'
expect_ok qemu-img snapshot -c first snap.qcow2
qio snap.qcow2 'write -P 2 64k 64k' 'write -P 3 8M 64k'
expect_ok qemu-img snapshot -c second snap.qcow2
qio snap.qcow2 'write -P 4 0 64k'
same snap.qcow2

# Bitmaps: directory, tables and data clusters are references.
expect_ok qemu-img create -q -f qcow2 bm.qcow2 64M
expect_ok qemu-img bitmap --add bm.qcow2 b0
expect_ok qemu-img bitmap --add -g 64k bm.qcow2 b1
qio bm.qcow2 'write -P 1 0 1M'
expect_ok qemu-img bitmap --enable bm.qcow2 b0
same bm.qcow2

# LUKS inside qcow2: the header region counts as metadata.
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
    luks.qcow2 64M || fail "qemu-img create luks.qcow2"
qemu_retry qemu-io --object "$SECRET" --image-opts \
    -c 'write -P 0x5a 0 128k' -c 'write -P 1 5M 4k' \
    "driver=qcow2,encrypt.key-secret=s0,file.filename=luks.qcow2" ||
    fail "qemu-io on luks.qcow2"
same_luks luks.qcow2
# vimg needs no key: its JSON is complete.
expect_ok "$VIMG" check --output=json luks.qcow2
grep -q '"allocated-clusters": 3,' "$LAST_OUT" || fail "luks JSON: $(cat "$LAST_OUT")"

# Images vimg wrote.
expect_ok "$VIMG" convert -O qcow2 src.raw vw.qcow2
same vw.qcow2
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
    vluks.qcow2 16M
expect_ok "$VIMG" convert --object "$SECRET" --target-image-opts -n \
    src.raw "driver=qcow2,encrypt.key-secret=s0,file.filename=vluks.qcow2"
same_luks vluks.qcow2

# ---- damaged images ----------------------------------------------------------

# plain.qcow2 layout: header 0, reftable 1, refblock 2, L1 3, L2 4, data
# 5, 6 (guest 0..128k), 7 (guest 1M, discarded again) ...
expect_ok qemu-img create -q -f qcow2 base.qcow2 64M
qio base.qcow2 'write -P 0xaa 0 128k' 'write -P 1 1M 64k'
RB=$(be64 base.qcow2 0x10000)

cp base.qcow2 leak.qcow2
poke leak.qcow2 $((RB + 12)) '\x00\x02'            # cluster 6: refcount 2
same leak.qcow2
grep -q '^Leaked cluster 6 refcount=2 reference=1$' "$TEST_TMP/qemu.err" ||
    fail "leak not seen"
repair leak.qcow2 leaks
repair leak.qcow2 all

cp base.qcow2 free.qcow2
poke free.qcow2 $((RB + 16)) '\x00\x01'            # cluster 8, past EOF
poke free.qcow2 $((RB + 12)) '\x00\x03'
same free.qcow2
repair free.qcow2 leaks

cp base.qcow2 zero.qcow2
poke zero.qcow2 $((RB + 10)) '\x00\x00'            # cluster 5: refcount 0
same zero.qcow2
repair zero.qcow2 leaks                             # needs a rebuild: rc 1
repair zero.qcow2 all

cp base.qcow2 low.qcow2                             # refcount 1, two refs
L2=$(be64 base.qcow2 0x30000)
L2=$((L2 & 0xffffffffffff))
poke low.qcow2 $((L2 + 8)) '\x80\x00\x00\x00\x00\x05\x00\x00'
same low.qcow2
repair low.qcow2 all

cp base.qcow2 trunc.qcow2
truncate -s $((0x60000)) trunc.qcow2
same trunc.qcow2
repair trunc.qcow2 all

cp base.qcow2 misal.qcow2
poke misal.qcow2 $((L2 + 16 * 8 + 6)) '\x02'       # 0x70000 -> 0x70200
same misal.qcow2

cp base.qcow2 rsv.qcow2
poke rsv.qcow2 $((L2 + 16 * 8 + 7)) '\x10'
same rsv.qcow2

cp base.qcow2 l1copied.qcow2
poke l1copied.qcow2 0x30000 '\x00'
same l1copied.qcow2
repair l1copied.qcow2 leaks
repair l1copied.qcow2 all

cp base.qcow2 l2copied.qcow2
poke l2copied.qcow2 "$L2" '\x00'
same l2copied.qcow2
repair l2copied.qcow2 all

cp base.qcow2 both.qcow2
poke both.qcow2 $((RB + 12)) '\x00\x02'
poke both.qcow2 $((RB + 10)) '\x00\x00'
same both.qcow2
repair both.qcow2 all

cp snap.qcow2 snapleak.qcow2
SRB=$(be64 snap.qcow2 0x10000)
poke snapleak.qcow2 $((SRB + 8)) '\x00\x05'         # L2 of a snapshot
same snapleak.qcow2
repair snapleak.qcow2 leaks

# LUKS header cluster: refcount 0 is a corruption, 2 is a leak.
LRB=$(be64 luks.qcow2 0x10000)
cp luks.qcow2 luks0.qcow2
poke luks0.qcow2 $((LRB + 10)) '\x00\x00'
same_luks luks0.qcow2
grep -qx 'ERROR cluster 5 refcount=0 reference=1' vimg.err ||
    fail "LUKS header cluster corruption not reported"
cp luks.qcow2 luks2.qcow2
poke luks2.qcow2 $((LRB + 12)) '\x00\x02'
same_luks luks2.qcow2
grep -qx 'Leaked cluster 6 refcount=2 reference=1' vimg.err ||
    fail "LUKS header cluster leak not reported"
for f in luks0 luks2; do
    cp $f.qcow2 fix.qcow2
    expect_ok "$VIMG" check -r all fix.qcow2
    same_luks fix.qcow2
    expect_ok qemu-img compare --object "$SECRET" --image-opts \
        "driver=qcow2,encrypt.key-secret=s0,file.filename=luks.qcow2" \
        "driver=qcow2,encrypt.key-secret=s0,file.filename=fix.qcow2"
done

# ---- other formats, argument errors ------------------------------------------

expect_ok qemu-img create -q -f raw r.raw 1M
same_as_qemu check r.raw
assert_eq "$LAST_RC" 63 "check of a raw image"
same_as_qemu check -f raw --output=json r.raw
same_as_qemu check -r foo plain.qcow2
same_as_qemu check --output=xml plain.qcow2
same_as_qemu check
same_as_qemu check nonexistent.qcow2

# ---- memory: a sparse 1 TiB image --------------------------------------------

if [ -x /usr/bin/time ]; then
    expect_ok qemu-img create -q -f qcow2 big.qcow2 1T
    qio big.qcow2 'write -P 1 0 64k' 'write -P 2 512G 64k' \
        'write -P 3 1023G 1M'
    same big.qcow2
    run_cmd /usr/bin/time -v "$VIMG" check big.qcow2
    assert_eq "$LAST_RC" 0 "check of the 1 TiB image"
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$LAST_ERR")
    echo "vimg check 1 TiB sparse image: max RSS ${rss} KiB"
    [ "$rss" -lt 32768 ] || fail "check of a sparse 1 TiB image used ${rss} KiB"
fi

exit 0
