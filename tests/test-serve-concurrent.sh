#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `vimg serve` under concurrent clients, where raw and LUKS exports run
# requests in parallel on a pool of image handles (qcow2 keeps one locked
# handle).  Images made by qemu-img: LUKS1, LUKS2 with 4 KiB sectors and
# qcow2+LUKS.  Per image:
#   - nbdcopy writes random data over 4 connections (multi-conn, flush);
#   - then 6 qemu-io clients at once write patterns into disjoint ranges,
#     including unaligned writes whose edges share a sector with another
#     client's write (the read-modify-write path), and write-zeroes;
#   - on the LUKS images fio (nbd engine, iodepth 16) writes 4 KiB random
#     blocks with verification at the same time, into its own range;
#   - the same qemu-io commands replayed on a plain model file.
# After the server stops, the image read directly by qemu-img must equal
# the model outside fio's range, and inside it what the server returned.
# The pool is also driven directly through nbdkit with handles=4.

. "$(dirname "$0")/functions.sh"
. "$SRCDIR/serve-functions.sh"
requires qemu-img

S=$PWD/s.sock
SIZE_MIB=24
FIO_OFF=16M      # fio's range: [16M, 24M)
FIO_LEN=8M
QOPTS="encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"
qemu_create_luks l1.luks ${SIZE_MIB}M
# qemu 7.2 has no LUKS2: vimg creates it (its LUKS2 is checked against
# cryptsetup in test-luks2.sh) and reads it back directly at the end.
expect_ok "$VIMG" create -q -f luks --object "$SECRET" -o \
    "key-secret=s0,encrypt.format=luks2,kdf=pbkdf2,iter-count=1000,sector-size=4096" \
    l2.luks ${SIZE_MIB}M
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" -o "$QOPTS" \
    ql.qcow2 ${SIZE_MIB}M || fail "qemu-img create qcow2+luks"

declare -A IOPTS=(
    [l1]="$(luks_opts l1.luks)"
    [l2]="$(luks_opts l2.luks)"
    [ql]="driver=qcow2,file.filename=ql.qcow2,encrypt.key-secret=s0"
)
random_file src.raw $SIZE_MIB
have_fio=0
command -v fio >/dev/null && fio --enghelp=nbd >/dev/null 2>&1 && have_fio=1
[ $have_fio = 1 ] || echo "note: fio with the nbd engine not found; the" \
    "fio part is not run" >&2

# client_io K TARGET: client K's writes, a pattern in its own 2 MiB stripe
# plus an unaligned 100-byte write that crosses into stripe K+1 (sharing a
# sector with client K+1's first write, 700 bytes into it).
client_io() {
    local k=$1 base=$(($1 * 2097152))
    qemu-io -f raw \
        -c "write -P $((0x30 + k)) $((base + 700)) 300000" \
        -c "write -P $((0x50 + k)) $((base + 2097152 - 100)) 100" \
        -c "write -z $((base + 500000)) 70000" \
        -c "write -P $((0x70 + k)) $((base + 1048576)) 65536" \
        "$2"
}

run_image() { # run_image NAME URI
    local e=$1 u=$2 k pids=() fpid=
    expect_ok nbdcopy --connections=4 src.raw "$u"
    cp src.raw "model-$e.raw"
    if [ $have_fio = 1 ] && [ "$e" != ql ]; then
        fio --name=v --ioengine=nbd --uri="$u" --rw=randwrite --bs=4k \
            --iodepth=16 --offset=$FIO_OFF --size=$FIO_LEN \
            --verify=crc32c --do_verify=1 --verify_fatal=1 \
            --output=fio-$e.out >fio-$e.log 2>&1 &
        fpid=$!
    fi
    for k in 0 1 2 3 4 5; do
        client_io $k "$u" >"qio-$e-$k.out" 2>&1 </dev/null &
        pids+=($!)
    done
    for k in 0 1 2 3 4 5; do
        wait "${pids[$k]}" || { cat "qio-$e-$k.out" >&2; fail "qemu-io $k on $e"; }
    done
    if [ -n "$fpid" ]; then
        wait "$fpid" || { cat fio-$e.log fio-$e.out >&2; fail "fio verify on $e"; }
    fi
    for k in 0 1 2 3 4 5; do
        expect_ok client_io $k "model-$e.raw"
    done
    # What the server returns in fio's range becomes the model there.
    expect_ok nbdcopy "$u" "served-$e.raw"
    dd if="served-$e.raw" of="model-$e.raw" bs=1M skip=16 seek=16 count=8 \
        conv=notrunc status=none || fail "dd"
}

check_image() { # check_image NAME: direct read by qemu-img equals the model
    local e=$1
    local tool=qemu-img
    [ "$e" = l2 ] && tool=$VIMG
    expect_ok "$tool" convert -O raw --object "$SECRET" --image-opts \
        "${IOPTS[$e]}" "direct-$e.raw"
    assert_same_file "direct-$e.raw" "model-$e.raw" "$e after concurrent clients"
    cmp -s "served-$e.raw" "model-$e.raw" ||
        fail "$e: served content differs from the model"
}

# 1. vimg serve (default pool size), three exports at once.
EXPORTS=(l1 l2 ql)
if [ -n "$SERVE_PRELOAD" ]; then
    # nbdkit with libasan preloaded deadlocks in glibc's newlocale() when
    # json-c parses the LUKS2 header in get_ready (single-threaded, before
    # any pool thread; seen 2026-12-05), so the sanitizer run leaves it out.
    echo "note: LUKS2 export left out under the sanitizer preload" >&2
    EXPORTS=(l1 ql)
fi
args=(--object "$SECRET" --image-opts)
for e in "${EXPORTS[@]}"; do
    args+=(-e "$e" "${IOPTS[$e]}")
done
serve_start "$S" "${args[@]}"
for e in "${EXPORTS[@]}"; do
    run_image "$e" "$(uri "$S" "$e")"
done
serve_stop
for e in "${EXPORTS[@]}"; do
    check_image "$e"
done

# 2. nbdkit with the plugin and handles=4 on the LUKS1 image (again), and
# a bad handles= value refused.
expect_error 1 "handles: 0 is not between 1 and 64" \
    env LD_PRELOAD="$SERVE_PRELOAD" nbdkit -f -U "$PWD/n.sock" \
    "$VIMG_NBDKIT_PLUGIN" handles=0 file=l1.luks
rm -f n.sock
env LD_PRELOAD="$SERVE_PRELOAD" nbdkit -f -U "$PWD/n.sock" \
    "$VIMG_NBDKIT_PLUGIN" handles=4 object="$SECRET" file=l1.luks \
    key-secret=s0 2>nbdkit.err &
NPID=$!
cleanup_fn kill -9 "$NPID"
for ((i = 0; i < 600; i++)); do
    nbdinfo --size "$(uri "$PWD/n.sock")" >/dev/null 2>&1 && break
    kill -0 "$NPID" 2>/dev/null || { cat nbdkit.err >&2; fail "nbdkit died"; }
    sleep 0.05
done
run_image l1 "$(uri "$PWD/n.sock")"
kill "$NPID"
wait "$NPID" 2>/dev/null
check_image l1
echo PASS
