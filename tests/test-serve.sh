#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `vimg serve` on a Unix socket against the real NBD clients: qcow2+LUKS,
# raw LUKS, plain raw and plain qcow2 made by qemu-img, served at once
# under four export names.  Every change made through NBD (qemu-io writes,
# write-zeroes, unaligned writes, qemu-img convert into the export) is
# replayed by qemu-io on a plain model file; at the end the images, read
# directly by qemu-img, must equal their models and `qemu-img check` must be
# clean.  Also: nbdcopy/qemu-img convert/compare reading the exports,
# read-only export, block status (nbdinfo --map, a sparse nbdcopy), the
# passphrase never in nbdkit's argv or environment, and kill -9 after a
# flushed write.

. "$(dirname "$0")/functions.sh"
. "$SRCDIR/serve-functions.sh"
requires qemu-img

S=$PWD/s.sock
SIZE=16M
QOPTS="encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" -o "$QOPTS" \
    ql.qcow2 $SIZE || fail "qemu-img create qcow2+luks"
qemu_create_luks l.luks $SIZE
expect_ok qemu-img create -q -f raw p.raw $SIZE
expect_ok qemu-img create -q -f qcow2 p.qcow2 $SIZE

EXPORTS=(ql l p q)
declare -A IOPTS=(
    [ql]="driver=qcow2,file.filename=ql.qcow2,encrypt.key-secret=s0"
    [l]="$(luks_opts l.luks)"
    [p]="driver=raw,file.filename=p.raw"
    [q]="driver=qcow2,file.filename=p.qcow2"
)

# Initial content written directly, then the models decrypted by qemu-img.
for e in "${EXPORTS[@]}"; do
    expect_ok qemu-io --object "$SECRET" --image-opts "${IOPTS[$e]}" \
        -c 'write -P 0x11 0 1M' -c 'write -P 0x22 5M 300k'
    expect_ok qemu-img convert -O raw --object "$SECRET" --image-opts \
        "${IOPTS[$e]}" "model-$e.raw"
done

# The passphrase goes in inline (data=), the worst case for leaking it.
args=(--object "secret,id=s0,data=$PW" --image-opts)
for e in "${EXPORTS[@]}"; do
    args+=(-e "$e" "${IOPTS[$e]}")
done
serve_start "$S" "${args[@]}"
grep -q "warning: secret 's0' is passed on the command line" serve.err ||
    fail "no data= warning"

# 1. No secret in the server's argv or environment (vimg execs nbdkit).
tr '\0' ' ' </proc/"$SERVE_PID"/cmdline >cmdline
grep -q 'nbdkit' cmdline || fail "server is not nbdkit: $(cat cmdline)"
grep -qF "$PW" cmdline && fail "passphrase in argv: $(cat cmdline)"
grep -qF "$PW" /proc/"$SERVE_PID"/environ && fail "passphrase in environ"
ps -o args= -p "$SERVE_PID" >ps.txt
grep -q nbdkit ps.txt || fail "ps: $(cat ps.txt)"
grep -qF "$PW" ps.txt && fail "passphrase visible in ps"

# 2. Export list.
expect_ok nbdinfo --list "$(uri "$S")"
for e in "${EXPORTS[@]}"; do
    grep -q "export=\"$e\"" "$LAST_OUT" || fail "export $e not listed"
done

# 3. Reading: nbdcopy, qemu-img convert and compare against the models.
for e in "${EXPORTS[@]}"; do
    expect_ok nbdcopy "$(uri "$S" "$e")" "copy-$e.raw"
    assert_same_file "copy-$e.raw" "model-$e.raw" "nbdcopy of $e"
    expect_ok qemu-img convert -f raw -O raw "$(uri "$S" "$e")" "conv-$e.raw"
    assert_same_file "conv-$e.raw" "model-$e.raw" "qemu-img convert of $e"
done
expect_rc 0 qemu-img compare -f raw -F raw "$(uri "$S" ql)" model-ql.raw

# 4. Writing: the same qemu-io commands on the export and on the model.
random_file src.raw 2
truncate -s $SIZE src.raw
for e in "${EXPORTS[@]}"; do
    cmds=(-c 'write -P 0xa5 1M 256k' -c 'write -z 2M 64k'
          -c 'write -P 0x3c 12345 1000' -c 'write -P 0x4d 8M 4k'
          -c 'write -z 5M 4096' -c flush)
    expect_ok qemu-io -f raw "${cmds[@]}" "$(uri "$S" "$e")"
    grep -q 'wrote 1000/1000 bytes at offset 12345' "$LAST_OUT" ||
        fail "qemu-io output: $(cat "$LAST_OUT")"
    expect_ok qemu-io -f raw "${cmds[@]}" "model-$e.raw"
    expect_ok qemu-io -f raw -c 'read -P 0xa5 1M 256k' -c 'read -P 0 2M 64k' \
        "$(uri "$S" "$e")"
    grep -q 'Pattern verification failed' "$LAST_OUT" &&
        fail "read back through $e: $(cat "$LAST_OUT")"
done
# qemu-img convert into an export (write, write-zeroes for zero runs).
expect_ok qemu-img convert -n -f raw -O raw src.raw "$(uri "$S" ql)"
cp src.raw model-ql.raw
expect_rc 0 qemu-img compare -f raw -F raw "$(uri "$S" ql)" src.raw

# 5. Block status: the unwritten tail of plain qcow2 is a hole.
expect_ok nbdinfo --map "$(uri "$S" q)"
grep -qE '^ *[0-9]+ +[0-9]+ +3 +hole,zero' "$LAST_OUT" ||
    fail "no hole in the map: $(cat "$LAST_OUT")"

# 6. kill -9 after a flushed write: the write (new qcow2 clusters in the
#    encrypted image) must be on disk and the metadata consistent.
expect_ok qemu-io -f raw -c 'write -P 0x6e 12M 1M' -c flush "$(uri "$S" ql)"
expect_ok qemu-io -f raw -c 'write -P 0x6e 12M 1M' model-ql.raw
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
expect_ok qemu-img check --object "$SECRET" --image-opts "${IOPTS[ql]}"
grep -q 'No errors were found on the image.' "$LAST_OUT" ||
    fail "check after kill -9: $(cat "$LAST_OUT")"
expect_ok qemu-io --object "$SECRET" --image-opts "${IOPTS[ql]}" \
    -c 'read -P 0x6e 12M 1M'
grep -q 'Pattern verification failed' "$LAST_OUT" &&
    fail "flushed write lost after kill -9"

# 7. Every image, read by qemu-img directly, equals its model.
for e in "${EXPORTS[@]}"; do
    expect_ok qemu-img convert -O raw --object "$SECRET" --image-opts \
        "${IOPTS[$e]}" "final-$e.raw"
    assert_same_file "final-$e.raw" "model-$e.raw" "content of $e"
done
for e in ql q; do
    expect_ok qemu-img check --object "$SECRET" --image-opts "${IOPTS[$e]}"
done

# 8. Read-only export: nbdinfo says so, qemu-io cannot write, image intact.
before=$(sha l.luks)
serve_start "$S" -r --object "$SECRET" --image-opts "${IOPTS[l]}"
expect_ok nbdinfo "$(uri "$S")"
grep -q 'is_read_only: true' "$LAST_OUT" || fail "export not read-only"
run_cmd qemu-io -f raw -c 'write -P 0x99 0 4k' "$(uri "$S")"
[ "$LAST_RC" != 0 ] || fail "write to a read-only export succeeded"
expect_ok nbdcopy "$(uri "$S")" ro.raw
assert_same_file ro.raw model-l.raw "read-only export content"
serve_stop
assert_eq "$(sha l.luks)" "$before" "read-only image"

# 9. Sparse copy through block status: a 256 MiB qcow2+LUKS image with
#    1 MiB of data copies into a sparse file.
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" -o "$QOPTS" \
    big.qcow2 256M || fail "qemu-img create big"
expect_ok qemu-io --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=big.qcow2,encrypt.key-secret=s0" \
    -c 'write -P 0x42 100M 1M'
serve_start "$S" -r --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=big.qcow2,encrypt.key-secret=s0"
expect_ok nbdinfo --map "$(uri "$S")"
assert_eq "$(grep -c 'data' "$LAST_OUT")" 1 "data extents in the map"
expect_ok nbdcopy "$(uri "$S")" sparse.raw
serve_stop
kib=$(du -k sparse.raw | cut -f1)
[ "$kib" -le 4096 ] || fail "sparse copy allocated $kib KiB"
expect_ok qemu-img compare --object "$SECRET" --image-opts \
    "driver=raw,file.filename=sparse.raw" \
    "driver=qcow2,file.filename=big.qcow2,encrypt.key-secret=s0"

# 10. Wrong passphrase and missing file: clear errors, exit 1.
printf 'wrong' >bad
expect_stderr "Invalid password" vimg_serve -s "$PWD/x.sock" \
    --object secret,id=s0,file=bad --image-opts "${IOPTS[l]}"
expect_error 1 "vimg: Could not open 'nope.img'" vimg_serve -s x.sock nope.img
expect_error 1 "several images are exported" vimg_serve -s "$PWD/x.sock" \
    p.raw p.qcow2

# 11. --self-contained (what vimgd runs): images whose header names another
# file are refused by the open that would serve them (qemu-img made them).
expect_ok qemu-img create -q -f qcow2 -b "$PWD/p.raw" -F raw sc-backing.qcow2 $SIZE
expect_ok qemu-img create -q -f qcow2 -o data_file=sc-data.raw sc-data.qcow2 $SIZE
expect_ok qemu-img create -q -f qcow -b "$PWD/p.raw" -F raw sc-backing.qcow $SIZE
for img in sc-backing.qcow2 sc-backing.qcow; do
    expect_error 1 "The image names a backing file; only self-contained images are opened here" \
        vimg_serve -s "$PWD/x.sock" --self-contained "$img"
done
expect_error 1 "The image names an external data file; only self-contained images are opened here" \
    vimg_serve -s "$PWD/x.sock" --self-contained sc-data.qcow2
serve_start "$S" --self-contained -r p.qcow2
expect_ok nbdinfo --size "$(uri "$S")"
[ "$(cat "$LAST_OUT")" = "$(qemu-img info --output=json p.qcow2 | jq '."virtual-size"')" ] ||
    fail "--self-contained: size of p.qcow2 over NBD"
serve_stop
serve_start "$S" -r sc-backing.qcow2
serve_stop
echo "PASS: $TEST_NAME"
