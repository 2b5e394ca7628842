#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 multi-cluster write runs against the real qemu-io / qemu-img 7.2.
#
# vimg writes runs of clusters at once (one allocation, one data write, one
# L2 pass; lib/format/qcow2-cluster.c "write runs").  The same random
# workload of writes (random data from files with -s, patterns with -P,
# zeroes with -z; 512-byte aligned offsets and lengths from 512 bytes to
# 6 MiB, so runs start and end inside clusters, cross L2 tables and exceed
# the 4 MiB run limit, and overwrite earlier writes in place) is applied
# with `$VIMG io` to one copy of an image and with qemu-io to another.
# Both copies must then have the same guest content (`qemu-img compare`),
# and vimg's must pass `qemu-img check` and `$VIMG check` with no errors.
#
# Configurations: 64 KiB clusters; 4 KiB clusters (2 MiB per L2 table)
# over a raw backing file of random data that is shorter than the image
# (copy-on-write from the backing file, and zeroes past its end);
# LUKS-encrypted 64 KiB clusters over a raw backing file; 4 KiB clusters
# version 2 (compat=0.10, no zero flag); extended L2 (per-cluster path).

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires python3
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-io)"

SEC="secret,id=s0,file=$PWFILE"
SIZE=$((40 * 1048576))

for i in 0 1 2; do
    head -c $((6 * 1048576)) /dev/urandom >"src$i.bin"
done
head -c $((24 * 1048576)) /dev/urandom >base.raw

# workload SEED: one qemu-io command per line.
workload()
{
    python3 - "$1" "$SIZE" <<'EOF'
import random, sys
rnd = random.Random(int(sys.argv[1]))
size = int(sys.argv[2])
for i in range(40):
    kind = rnd.random()
    if kind < 0.3:
        n = rnd.randint(1, 64)                  # small: inside a cluster or two
    elif kind < 0.85:
        n = rnd.randint(64, 6 * 2048)           # up to 6 MiB
    else:
        n = rnd.randint(1, 3 * 2048)
    n *= 512
    off = rnd.randrange(0, (size - n) // 512 + 1) * 512
    if kind >= 0.85:
        print(f"write -q -z {off} {n}")
    elif rnd.random() < 0.3:
        print(f"write -q -P {rnd.randint(1, 255)} {off} {n}")
    else:
        print(f"write -q -s src{rnd.randint(0, 2)}.bin {off} {n}")
EOF
}

# run_config NAME CREATE_OPTS [BACKING]
run_config()
{
    local name=$1 opts=$2 backing=${3:-} seed cmds=() line qopts vopts
    local -a bopt=()

    [ -n "$backing" ] && bopt=(-b "$backing" -F raw)
    rm -f v.qcow2 q.qcow2
    expect_ok qemu-img create -q -f qcow2 --object "$SEC" -o "$opts" \
        "${bopt[@]}" v.qcow2 "$SIZE"
    cp v.qcow2 q.qcow2
    seed=$(cksum <<<"$name" | cut -d' ' -f1)
    while IFS= read -r line; do
        cmds+=(-c "$line")
    done < <(workload "$seed")
    qopts="driver=qcow2,file.filename=q.qcow2"
    vopts="driver=qcow2,file.filename=v.qcow2"
    case $opts in
        *encrypt.format=luks*)
            qopts+=",encrypt.key-secret=s0"
            vopts+=",encrypt.key-secret=s0" ;;
    esac
    expect_ok qemu-io --object "$SEC" --image-opts "$qopts" "${cmds[@]}"
    expect_ok "$VIMG" io --object "$SEC" --image-opts "$vopts" "${cmds[@]}"

    run_cmd qemu-img check --object "$SEC" --image-opts "$vopts"
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img check "$vopts"
        fail "$name: qemu-img check of vimg's image: exit code $LAST_RC"
    fi
    expect_ok "$VIMG" check --object "$SEC" --image-opts "$vopts"
    run_cmd qemu-img compare --object "$SEC" --image-opts "$qopts" "$vopts"
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img compare "$qopts" "$vopts"
        fail "$name: guest content differs from qemu-io's"
    fi
    echo "ok: $name"
}

run_config "64k" "cluster_size=64k"
run_config "4k-backing" "cluster_size=4k" base.raw
run_config "luks-backing" \
    "cluster_size=64k,encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10" \
    base.raw
run_config "4k-v2" "cluster_size=4k,compat=0.10"
run_config "extended-l2" "cluster_size=64k,extended_l2=on" base.raw
