#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `convert -B BACKING -F FMT` (the new target gets a backing file) against
# the real qemu-img 7.2.
#
# Targets made by `$VIMG convert -B` (qcow2 v3 and v2, qcow; from a qcow2
# overlay of the same base, and from a raw image whose zeroes lie over
# backing data) name the backing file as qemu-img's do (`qemu-img info`),
# pass `qemu-img check` and read exactly like the source and like
# qemu-img's targets (`qemu-img compare`).  Like qemu-img, vimg does not
# copy what the source takes from its own backing file, nor write zero runs
# past the end of the target's backing file: `qemu-img map` of both targets
# must agree (allocation, depth, zero/data; host offsets aside) and the
# files must have the same size.  Sources: a qcow2 overlay (backing file
# as large, shorter, or a two-level chain), a raw image, a qcow2 without a
# backing file; targets with an 8 MiB and a 4 MiB backing file.  The refusals
# (-B with several sources, a format without backing files, -B without -F,
# -F without -B) give qemu's messages and exit 1.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

expect_ok qemu-img create -f raw base.raw 8M
expect_ok qemu-io -f raw -c 'write -P 0x11 0 8M' base.raw
expect_ok qemu-img create -f qcow2 -b base.raw -F raw top.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 0x22 1M 100k' -c 'write -z 3M 64k' \
    -c 'write -P 0x23 7M 1k' top.qcow2
expect_ok qemu-img create -f raw flat.raw 8M
expect_ok qemu-io -f raw -c 'write -P 0x33 0 2M' -c 'write -P 0x34 6M 1M' flat.raw

# top4: 8 MiB over a 4 MiB backing file; chain: over top.qcow2 (qcow2).
expect_ok qemu-img create -f raw base4.raw 4M
expect_ok qemu-io -f raw -c 'write -P 0x11 0 4M' base4.raw
expect_ok qemu-img create -f qcow2 -b base4.raw -F raw top4.qcow2 8M
expect_ok qemu-io -f qcow2 -c 'write -P 5 6M 64k' top4.qcow2
expect_ok qemu-img create -f qcow2 -b top.qcow2 -F qcow2 chain.qcow2
expect_ok qemu-io -f qcow2 -c 'write -P 6 2M 64k' -c 'write -z 7M 4k' chain.qcow2
expect_ok qemu-img create -f qcow2 nob.qcow2 8M
expect_ok qemu-io -f qcow2 -c 'write -P 5 6M 64k' nob.qcow2

# map_of IMG: qemu-img map without host offsets.
map_of()
{
    qemu-img map --output=json "$1" | sed 's/, "offset": [0-9]*//'
}

for out in "qcow2" "qcow2 -o compat=0.10" "qcow"; do
    # SOURCE:TARGET-BACKING:FORMAT (the chain's target gets the
    # source's own backing file, as qemu-img's documentation asks).
    for sbf in top.qcow2:base.raw:raw flat.raw:base.raw:raw \
               top4.qcow2:base.raw:raw chain.qcow2:top.qcow2:qcow2 \
               nob.qcow2:base.raw:raw flat.raw:base4.raw:raw; do
        IFS=: read -r src b bf <<<"$sbf"
        rm -f q.img v.img
        # shellcheck disable=SC2086
        run_cmd qemu-img convert -O $out -B $b -F $bf "$src" q.img
        # shellcheck disable=SC2086
        expect_ok "$VIMG" convert -O $out -B $b -F $bf "$src" v.img
        assert_eq "$(qemu-img info --output=json v.img | grep backing-filename)" \
            "$(qemu-img info --output=json q.img | grep backing-filename)" \
            "backing file of -O $out -B $b from $src"
        case "$out" in
            qcow) ;;    # qemu-img check does not support qcow
            *) expect_ok qemu-img check v.img ;;
        esac
        # (qemu's own rule leaves top4's 4-6 MiB to the target's
        # backing file, which holds other data there.)
        [ "$src" = top4.qcow2 ] || expect_ok qemu-img compare "$src" v.img
        expect_ok qemu-img compare q.img v.img
        assert_eq "$(map_of v.img)" "$(map_of q.img)" \
            "qemu-img map of -O $out -B $b from $src"
        assert_eq "$(stat -c %s v.img)" "$(stat -c %s q.img)" \
            "file size of -O $out -B $b from $src"
    done
done
# -o backing_file= is -B.
rm -f q.img v.img
expect_ok qemu-img convert -O qcow2 -o backing_file=base.raw,backing_fmt=raw \
    top.qcow2 q.img
expect_ok "$VIMG" convert -O qcow2 -o backing_file=base.raw,backing_fmt=raw \
    top.qcow2 v.img
assert_eq "$(map_of v.img)" "$(map_of q.img)" "qemu-img map with -o backing_file"
expect_ok qemu-img compare top.qcow2 v.img
# Without a target backing file everything is copied, as before.
rm -f q.img v.img
expect_ok qemu-img convert -O qcow2 top.qcow2 q.img
expect_ok "$VIMG" convert -O qcow2 top.qcow2 v.img
assert_eq "$(map_of v.img)" "$(map_of q.img)" "qemu-img map without -B"
echo "ok convert -B"

expect_ok qemu-img create -f raw s2.raw 1M
for args in "-O qcow2 -B base.raw -F raw flat.raw s2.raw o.qcow2" \
            "-O raw -B base.raw -F raw flat.raw o.raw" \
            "-O qcow2 -B base.raw flat.raw o.qcow2" \
            "-O qcow2 -F raw flat.raw o.qcow2"; do
    rm -f o.qcow2 o.raw
    # shellcheck disable=SC2086
    same_as_qemu convert $args
done
echo "PASS: $TEST_NAME"
