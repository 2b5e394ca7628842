#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 `resize --shrink` against the real qemu-img / qemu-io 7.2.
#
# The same qemu-io workload (plain, compressed, zero and partial clusters,
# data past every new end) is shrunk by `$VIMG resize --shrink` and by
# `qemu-img resize --shrink` to the same sizes: the two images must pass
# `qemu-img check` with exit 0, compare identical with `qemu-img compare`,
# have the same file size (the file is cut after its last used cluster, as
# qemu does) and the same virtual size.  With an internal snapshot, the
# snapshot keeps its data after the active layer shrinks (qemu reads it back
# after `$VIMG snapshot -a`).  qemu's refusals (a size not a multiple of 512,
# shrinking without --shrink) come with qemu's message and exit 1.  Finally
# a shrunk image grows again in vimg and qemu-io writes past the old end.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

workload()
{
    rm -f "$1"
    expect_ok qemu-img create -f qcow2 "$@" 700M
    expect_ok qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 60M 2M' \
        -c 'write -c -P 3 40M 64k' -c 'write -P 4 32M 100k' \
        -c 'write -z 33M 128k' -c 'write -P 5 600M 64k' \
        -c 'write -P 6 699M 1M' "$1"
}

for opts in "" "-o compat=0.10" "-o cluster_size=4096" \
            "-o extended_l2=on" "-o refcount_bits=1"; do
    sizes="33M 512"
    [ -z "$opts" ] && sizes="600M 512M 33M 32868k 1M 512"
    # shellcheck disable=SC2086
    for size in $sizes; do
        workload v.qcow2 $opts
        cp v.qcow2 q.qcow2
        expect_ok "$VIMG" resize --shrink v.qcow2 "$size"
        grep_last "Image resized."
        expect_ok qemu-img resize --shrink q.qcow2 "$size"
        qcheck v.qcow2
        expect_ok qemu-img compare q.qcow2 v.qcow2
        assert_eq "$(stat -c %s v.qcow2)" "$(stat -c %s q.qcow2)" \
            "file size after shrinking to $size ($opts)"
        assert_eq "$(qemu-img info --output=json v.qcow2 | grep virtual-size)" \
            "$(qemu-img info --output=json q.qcow2 | grep virtual-size)" \
            "virtual size after shrinking to $size ($opts)"
    done
done

# Refusals, image untouched.
workload v.qcow2
sum=$(sha v.qcow2)
expect_error 1 "Use the --shrink option to perform a shrink operation." \
    "$VIMG" resize v.qcow2 1M
expect_error 1 "The new size must be a multiple of 512" \
    "$VIMG" resize --shrink v.qcow2 1000
expect_error 1 "The new size must be a multiple of 512" \
    "$VIMG" resize v.qcow2 734003201
assert_eq "$(sha v.qcow2)" "$sum" "image after refused resizes"

# An internal snapshot keeps its clusters; the active layer loses them.
workload v.qcow2
expect_ok qemu-img snapshot -c s1 v.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 7 600M 64k' v.qcow2
expect_ok "$VIMG" resize --shrink v.qcow2 16M
qcheck v.qcow2
expect_ok qemu-io -f qcow2 -c 'read -P 1 0 1M' v.qcow2
expect_ok "$VIMG" snapshot -a s1 v.qcow2
qcheck v.qcow2
expect_ok qemu-io -f qcow2 -c 'read -P 5 600M 64k' -c 'read -P 6 699M 1M' \
    -c 'read -P 2 60M 2M' v.qcow2

# Shrink, then grow again: the old tail reads as zeroes, new writes work.
workload v.qcow2
expect_ok "$VIMG" resize --shrink v.qcow2 1M
expect_ok "$VIMG" resize v.qcow2 2G
qcheck v.qcow2
expect_ok qemu-io -f qcow2 -c 'read -P 0 600M 64k' -c 'read -P 1 0 1M' \
    -c 'write -P 8 1500M 1M' v.qcow2
qcheck v.qcow2
expect_ok "$VIMG" io -c 'read -P 8 1500M 1M' v.qcow2
echo "PASS: $TEST_NAME"
