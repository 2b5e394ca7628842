#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg map against qemu-img map on the same files: a sparse raw image with
# data runs at several (also unaligned) places, human table and JSON, with
# --start-offset/--max-length windows (including empty and past-the-end
# ones, where qemu prints a zero-length entry); luks images made by
# qemu-img and by vimg opened with their key (JSON has no "offset"; the
# human table fails with "File contains external, encrypted or compressed
# clusters." after its header, rc 1); and the argument errors.  stdout,
# stderr (prefix normalised) and the exit code must be identical.
# vimg-only: without driver options map needs no key for luks images.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires qemu-io

# A 12 MiB sparse raw file: data at 0 (4 KiB), one byte at 100000, 192 KiB
# at 2.5 MiB, 1 MiB right at the end.  The size stays a multiple of 512
# (qemu counts raw files in whole sectors).
truncate -s 12M s.raw
printf 'A' | dd of=s.raw bs=1 conv=notrunc status=none
printf 'x' | dd of=s.raw bs=1 seek=100000 conv=notrunc status=none
dd if=/dev/urandom of=s.raw bs=64k seek=40 count=3 conv=notrunc status=none
dd if=/dev/urandom of=s.raw bs=1M seek=11 count=1 conv=notrunc status=none
truncate -s 0 empty.raw

for args in "s.raw" "-f raw s.raw" "--output=json -f raw s.raw" \
            "--output=json s.raw" "-U --output=json s.raw" \
            "--output=json --start-offset=1M --max-length=2M s.raw" \
            "--output=json --start-offset=1000 --max-length=1000 s.raw" \
            "--output=json --start-offset=98305 --max-length=100 s.raw" \
            "--start-offset=2M --max-length=1M s.raw" \
            "--output=json --max-length=0 s.raw" \
            "--output=json --start-offset=20M s.raw" \
            "--start-offset=20M s.raw" "--output=json -f raw empty.raw" \
            "-f raw empty.raw" "-s 4096 -l 1M --output=json s.raw" \
            "--output=json --image-opts driver=raw,file.filename=s.raw" \
            "--start-offset=xx s.raw" "--start-offset=-1 s.raw" \
            "--max-length=xx s.raw" "--max-length=16E s.raw" \
            "--output=xx s.raw" "s.raw s.raw" "" "missing.raw" \
            "--image-opts -f raw s.raw" "--bogus s.raw"; do
    # shellcheck disable=SC2086
    same_as_qemu map $args
    echo "ok map $args (rc $LAST_RC)"
done
# The data runs, independently of qemu: 0-4K, 96K-100K, 2.5M+192K, 11M+1M.
expect_ok "$VIMG" map -f raw s.raw
assert_eq "$(sed -n 2p "$LAST_OUT")" \
    "0               0x1000          0               s.raw" "first run"
assert_eq "$(wc -l <"$LAST_OUT")" 5 "human map line count"
expect_ok "$VIMG" map -f raw --output=json s.raw
grep_last '{ "start": 11534336, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true, "offset": 11534336}]'

# luks images: made by qemu-img and by vimg, then written to.
qemu_create_luks q.luks 4M
vimg_create_luks v.luks 3M
run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts q.luks)" \
    -c 'write -P 0x5a 64k 64k'
assert_eq "$LAST_RC" 0 "qemu-io write to q.luks"
for img in q.luks v.luks; do
    for args in "--output=json" "" "--output=json --start-offset=1000 --max-length=5000" \
                "--start-offset=1M" "--output=json --start-offset=3M"; do
        # shellcheck disable=SC2086
        same_as_qemu map $args --object "$SECRET" --image-opts "$(luks_opts $img)"
        echo "ok map $args luks $img (rc $LAST_RC)"
    done
done
same_as_qemu map --object "$SECRET" --image-opts "$(luks_opts s.raw)"
grep_last "Volume is not in LUKS format" stderr
printf 'wrong' >bad.pw
same_as_qemu map --object "secret,id=s0,file=bad.pw" --output=json \
    --image-opts "$(luks_opts q.luks)"
assert_eq "$LAST_RC" 1 "wrong password rc"
grep_last "Invalid password, cannot unlock any keyslot" stderr
expect_rc 1 "$VIMG" map --object "$SECRET" --image-opts "$(luks_opts q.luks)"
assert_eq "$(cat "$LAST_OUT")" \
    "Offset          Length          Mapped to       File" "luks human header"
grep_last "File contains external, encrypted or compressed clusters." stderr

# Backing chains: depth, present and zero follow qemu's walk down the chain
# (a shorter backing image ends in "present": false, "zero": true at the
# depth where the range ran out), and the human table names the layer the
# data is in (relative names resolved against the referring image).
mkdir -p ch/sub
qemu-img create -q -f qcow2 ch/sub/b.qcow2 2M
qemu-io -c 'write -P 1 0 512k' -c 'write -z 1M 128k' ch/sub/b.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b sub/b.qcow2 -F qcow2 ch/m.qcow2 3M
qemu-io -c 'write -P 2 256k 64k' -c 'write -z 0 64k' -c 'write -P 5 2560k 64k' \
    ch/m.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b m.qcow2 -F qcow2 ch/t.qcow2 5M
qemu-io -c 'write -P 3 128k 64k' -c 'write -z 1024k 64k' -c 'write -P 4 4M 64k' \
    ch/t.qcow2 >/dev/null
qemu-img create -q -f raw ch/r.raw 1M
qemu-io -f raw -c 'write -P 6 0 64k' ch/r.raw >/dev/null
qemu-img create -q -f qcow2 -b r.raw -F raw ch/tr.qcow2 2M
for img in ch/t.qcow2 ch/m.qcow2 ch/tr.qcow2; do
    for o in human json; do
        same_as_qemu map --output=$o "$img"
        same_as_qemu map --output=$o -s 1536k -l 2M "$img"
    done
done
expect_ok "$VIMG" map --output=json ch/t.qcow2
grep_last '{ "start": 65536, "length": 65536, "depth": 2, "present": true, "zero": false, "data": true, "offset": 393216}'
grep_last '{ "start": 2097152, "length": 524288, "depth": 1, "present": false, "zero": true, "data": false}'
echo "ok map of backing chains"

if [ "$VIMG_IS_QEMU" = 0 ]; then
    # vimg reads only metadata for map: no key needed without driver options.
    expect_ok "$VIMG" map --output=json -f luks q.luks
    assert_eq "$(cat "$LAST_OUT")" \
        '[{ "start": 0, "length": 4194304, "depth": 0, "present": true, "zero": false, "data": true}]' \
        "keyless luks map"
    expect_ok "$VIMG" map --output=json q.luks
    grep_last '"length": 4194304'
    echo "ok keyless luks map"
fi
exit 0
