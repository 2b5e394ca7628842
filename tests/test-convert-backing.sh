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
# qemu-img's targets (`qemu-img compare`).  vimg copies every range, also
# those the source takes from its own backing file (qemu leaves those to
# the target's backing file), so its targets may be larger.  The refusals
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

for out in "qcow2" "qcow2 -o compat=0.10" "qcow"; do
    for src in top.qcow2 flat.raw; do
        rm -f q.img v.img
        # shellcheck disable=SC2086
        run_cmd qemu-img convert -O $out -B base.raw -F raw "$src" q.img
        # shellcheck disable=SC2086
        expect_ok "$VIMG" convert -O $out -B base.raw -F raw "$src" v.img
        assert_eq "$(qemu-img info --output=json v.img | grep backing-filename)" \
            "$(qemu-img info --output=json q.img | grep backing-filename)" \
            "backing file of -O $out from $src"
        case "$out" in
            qcow) ;;    # qemu-img check does not support qcow
            *) expect_ok qemu-img check v.img ;;
        esac
        expect_ok qemu-img compare "$src" v.img
        expect_ok qemu-img compare q.img v.img
    done
done
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
