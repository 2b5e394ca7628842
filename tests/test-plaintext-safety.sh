#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Ciphertext never lands where plaintext belongs, nor the reverse, and
# writing decrypted guest data into an unencrypted image is announced by a
# one-line warning on stderr (-q silences it):
# - convert raw LUKS -> raw: the target equals qemu-img's decryption of the
#   same image (not the ciphertext); warning printed.  -n into an existing
#   raw file and a qcow2+LUKS -> qcow2 convert: same.  -q: no warning.
# - convert raw -> LUKS / LUKS -> qcow2+LUKS: no warning; qemu-img reads
#   the plaintext back and the target file does not hold it in the clear.
# - commit of a qcow2+LUKS overlay (written by qemu-io) into a plain raw
#   backing file: warning; qemu-img reads the committed plaintext from the
#   raw file.  The reverse, a plain qcow2 overlay committed into a
#   qcow2+LUKS backing image: no warning; qemu-img decrypts the new data
#   from the base and the base file does not hold the pattern in the clear.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires qemu-io
[ "$VIMG_IS_QEMU" = 0 ] || skip "checks vimg's own warning"

WARN="warning: writing decrypted data of encrypted image"
MARK=0x6b

qopts()
{
    echo "driver=qcow2,encrypt.key-secret=s0,file.filename=$1"
}

# no_pattern FILE: FILE must not contain 4 KiB of the MARK byte in clear.
no_pattern()
{
    pattern_file mark.bin $MARK 4096
    python3 - "$1" <<'PY' || fail "$1 holds the plaintext pattern in clear"
import sys
data = open(sys.argv[1], 'rb').read()
sys.exit(1 if open('mark.bin', 'rb').read() in data else 0)
PY
}

random_file plain.raw 1
vimg_create_luks a.luks 1M
expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts a.luks)" \
    -c "write -P $MARK 65536 65536"
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(luks_opts a.luks)" \
    -O raw ref.raw
no_pattern a.luks

# ---- convert LUKS -> raw -------------------------------------------------------
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts a.luks)" \
    -O raw out.raw
grep_last "$WARN 'a.luks' into unencrypted image 'out.raw'" stderr
[ "$(wc -l <"$LAST_ERR")" = 1 ] || fail "warning is not one line"
assert_same_file out.raw ref.raw "convert luks->raw differs from qemu-img's"
# -n into an existing file
cp plain.raw n.raw
expect_ok "$VIMG" convert -n --object "$SECRET" \
    --image-opts "$(luks_opts a.luks)" -O raw n.raw
grep_last "$WARN" stderr
assert_same_file n.raw ref.raw "convert -n luks->raw"
# -q silences the warning
rm -f q.raw
expect_ok "$VIMG" convert -q --object "$SECRET" \
    --image-opts "$(luks_opts a.luks)" -O raw q.raw
[ ! -s "$LAST_ERR" ] || fail "convert -q printed: $(cat "$LAST_ERR")"
assert_same_file q.raw ref.raw "convert -q luks->raw"
echo "ok convert LUKS -> raw: plaintext, warned"

# ---- convert into encrypted targets: no warning, no plaintext -------------------
rm -f b.luks
expect_ok "$VIMG" convert --object "$SECRET" -f raw ref.raw -O luks \
    -o key-secret=s0,iter-count=1000 b.luks
! grep -q "$WARN" "$LAST_ERR" || fail "raw -> luks warned"
no_pattern b.luks
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(luks_opts b.luks)" \
    -O raw b.raw
assert_same_file b.raw ref.raw "raw -> luks read by qemu-img"
rm -f c.qcow2
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts a.luks)" \
    -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 \
    c.qcow2
[ ! -s "$LAST_ERR" ] || fail "luks -> qcow2+luks printed: $(cat "$LAST_ERR")"
no_pattern c.qcow2
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(qopts c.qcow2)" \
    -O raw c.raw
assert_same_file c.raw ref.raw "luks -> qcow2+luks read by qemu-img"
# qcow2+LUKS -> plain qcow2: warned, qemu-img reads the same plaintext.
rm -f d.qcow2
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(qopts c.qcow2)" \
    -O qcow2 d.qcow2
grep_last "$WARN 'c.qcow2' into unencrypted image 'd.qcow2'" stderr
expect_ok qemu-img convert -f qcow2 d.qcow2 -O raw d.raw
assert_same_file d.raw ref.raw "qcow2+luks -> qcow2 read by qemu-img"
echo "ok convert into encrypted targets: no warning, ciphertext only"

# ---- commit: encrypted overlay into a plain backing file -----------------------
cp plain.raw base.raw
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" -b base.raw -F raw \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 top.qcow2
expect_ok qemu-io --object "$SECRET" --image-opts "$(qopts top.qcow2)" \
    -c "write -P $MARK 131072 65536"
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(qopts top.qcow2)" \
    -O raw want.raw
expect_ok "$VIMG" commit --object "$SECRET" --image-opts "$(qopts top.qcow2)"
grep_last "$WARN 'top.qcow2' into unencrypted image 'base.raw'" stderr
grep_last "Image committed."
expect_ok qemu-img convert -f raw base.raw -O raw got.raw
assert_same_file got.raw want.raw "committed plaintext in base.raw"
echo "ok commit qcow2+LUKS overlay into plain raw: plaintext, warned"

# ---- commit: plain overlay into an encrypted backing image ---------------------
rm -f ebase.qcow2
expect_ok "$VIMG" convert --object "$SECRET" -f raw plain.raw -O qcow2 \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 ebase.qcow2
expect_ok "$VIMG" create -q -f qcow2 -b ebase.qcow2 -F qcow2 ptop.qcow2
expect_ok qemu-io --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=ptop.qcow2,backing.encrypt.key-secret=s0" \
    -c "write -P $MARK 196608 65536"
expect_ok qemu-img convert --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=ptop.qcow2,backing.encrypt.key-secret=s0" \
    -O raw want2.raw
expect_ok "$VIMG" commit --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=ptop.qcow2,backing.encrypt.key-secret=s0"
! grep -q "$WARN" "$LAST_ERR" || fail "commit into an encrypted base warned"
no_pattern ebase.qcow2
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(qopts ebase.qcow2)" \
    -O raw got2.raw
assert_same_file got2.raw want2.raw "commit into qcow2+LUKS base"
echo "ok commit plain overlay into qcow2+LUKS: ciphertext, no warning"
echo "PASS: $TEST_NAME"
