#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Legacy AES in qcow2 (crypt_method 1) against the real qemu-img / qemu-io
# 7.2, both ways: `$VIMG create -o encrypt.format=aes` (and the deprecated
# encryption=on) writes the same file as qemu-img and warns that the
# scheme is insecure; the same writes through qemu-io and `$VIMG io` give
# byte-identical files (IV = guest sector); each tool reads the other's
# images identically; qemu-img check passes; a CRYPTO header extension in
# an AES image is refused with qemu's message; LUKS-only options are
# refused with qemu's message.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

AESO="encrypt.format=aes,encrypt.key-secret=s0"
expect_ok qemu-img create -q -f qcow2 --object "$SECRET" -o "$AESO" q.qcow2 4M
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" -o "$AESO" v.qcow2 4M
grep -qF "warning: AES-CBC encryption (encrypt.format=aes) is insecure" \
    "$LAST_ERR" || fail "no AES warning on create"
assert_same_file q.qcow2 v.qcow2 "create encrypt.format=aes"
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" \
    -o encryption=on,encrypt.key-secret=s0 v2.qcow2 4M
assert_same_file q.qcow2 v2.qcow2 "create encryption=on"
expect_stderr "Parameter 'encrypt.cipher-alg' is unexpected" \
    "$VIMG" create -q -f qcow2 --object "$SECRET" \
    -o "$AESO,encrypt.cipher-alg=aes-128" v3.qcow2 4M

W=(-c 'write -P 0x5a 1k 70k' -c 'write -P 0x5b 200k 64k' -c 'write -P 6 3000k 1k'
   -c 'write -P 7 4095k 1k')
expect_ok qemu-io --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=q.qcow2,encrypt.key-secret=s0" "${W[@]}"
expect_ok "$VIMG" io --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=v.qcow2,encrypt.key-secret=s0" "${W[@]}"
assert_same_file q.qcow2 v.qcow2 "AES data written by vimg and qemu-io"

for f in q v; do
    IO="driver=qcow2,file.filename=$f.qcow2,encrypt.key-secret=s0"
    rm -f a.raw b.raw
    expect_ok qemu-img convert --object "$SECRET" --image-opts "$IO" -O raw a.raw
    expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$IO" -O raw b.raw
    assert_same_file a.raw b.raw "AES read of $f.qcow2"
    expect_ok qemu-img check --object "$SECRET" --image-opts "$IO"
done
expect_stderr "Parameter 'encrypt.key-secret' is required for cipher" \
    "$VIMG" convert -O raw v.qcow2 x.raw
expect_ok "$VIMG" info --output=json v.qcow2
grep -q '"format": "aes"' "$LAST_OUT" || fail "info: encrypt format aes"

# raw -> AES qcow2 by convert, read back by qemu-img.
random_file src.raw 3
expect_ok "$VIMG" convert --object "$SECRET" -O qcow2 -o "$AESO" src.raw c.qcow2
grep -qF "warning: AES-CBC encryption" "$LAST_ERR" || fail "no AES warning on convert"
rm -f a.raw
expect_ok qemu-img convert --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=c.qcow2,encrypt.key-secret=s0" -O raw a.raw
assert_same_file src.raw a.raw "vimg convert to AES qcow2"

# A CRYPTO header extension in an AES image (replaces the feature table).
cp q.qcow2 bad.qcow2
printf '\x05\x37\xbe\x77\x00\x00\x00\x10\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00' |
    dd of=bad.qcow2 bs=1 seek=112 conv=notrunc status=none
MSG="CRYPTO header extension only expected with LUKS encryption method"
expect_stderr "$MSG" qemu-img info bad.qcow2
expect_stderr "$MSG" "$VIMG" info bad.qcow2

echo "PASS: $TEST_NAME"
