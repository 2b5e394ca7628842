#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg reencrypt of qcow version 1 images (docs/reencrypt.md): the image is
# replaced by a qcow2 + LUKS copy (crash-safe: temp file, fsync, rename).
# Checked with the real qemu-img / qemu-io 7.2:
# - qcow v1 AES made by qemu-img, data written by qemu-io: after the
#   migration qemu-img info says qcow2 with encrypt.format luks, qemu-img
#   check exits 0, qemu-img compare with the passphrase finds the original
#   plaintext; the file keeps its name and permissions, no temp file left;
# - plain qcow v1 the same; one over a raw backing file keeps the backing
#   reference (qemu-img info) and only the top layer's data (qemu-img map:
#   backing-only ranges stay at depth 1), and reads the same through qemu;
# - kill -9 (failpoint) at every 3rd write/flush of the copy: the original
#   is byte-identical (cmp), and the same command then deletes the partial
#   temp file and completes; an I/O error does the same with exit 1;
# - wrong passphrase on AES (decrypted data looks random) is refused unless
#   --force, missing key, bad options: one clear line, image untouched.

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "reencrypt is a vimg command"
requires qemu-img
requires qemu-io

printf 'other-passphrase' >pw2
OBJS=(--object "$SECRET" --object "secret,id=s2,file=$TEST_TMP/pw2")
KEYOPT=encrypt.key-secret=s0,encrypt.iter-count=1000
q1opts() { echo "driver=qcow,encrypt.key-secret=${2:-s0},file.filename=$1"; }
q2opts() { echo "driver=qcow2,encrypt.key-secret=${2:-s0},file.filename=$1"; }

# same_data RAW OPTS WHAT: qemu-img compare finds the guest data equal RAW.
same_data()
{
    run_cmd qemu-img compare "${OBJS[@]}" --image-opts \
        "driver=raw,file.filename=$1" "$2"
    [ "$LAST_RC" = 0 ] || { _show_last qemu-img compare "$1" "$2"; fail "$3"; }
}

# migrated FILE RAW WHAT: FILE is qcow2+LUKS now, clean, with RAW's data.
migrated()
{
    expect_ok qemu-img info "$1"
    grep_last "file format: qcow2"
    grep_last "format: luks"
    expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(q2opts "$1")"
    same_data "$2" "$(q2opts "$1")" "$3: data differs after migration"
    [ ! -e "$1.reenc-new" ] || fail "$3: temp file left"
}

# ---- qcow v1 AES ----------------------------------------------------------------
expect_ok qemu-img create -q -f qcow "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 aes.qcow 8M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(q1opts aes.qcow)" \
    -c "write -P 0x5a 0 1M" -c "write -P 0x11 3M 64k" -c "write -P 0 5M 8k" \
    -c "write -P 0xc3 8388096 512"
expect_ok qemu-img convert "${OBJS[@]}" --image-opts "$(q1opts aes.qcow)" \
    -O raw aes.raw
chmod 640 aes.qcow
cp aes.qcow aes-orig.qcow
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o "$KEYOPT" aes.qcow
grep_last "the format becomes qcow2" stderr
migrated aes.qcow aes.raw "AES qcow"
assert_eq "$(stat -c %a aes.qcow)" 640 "permissions of the migrated file"
# the new LUKS passphrase is the old AES one only
run_cmd qemu-img compare "${OBJS[@]}" --image-opts \
    "driver=raw,file.filename=aes.raw" "$(q2opts aes.qcow s2)"
grep -q "Invalid password" "$LAST_ERR" || fail "another passphrase opens the LUKS image"
echo "ok qcow v1 AES (qemu-img/qemu-io) migrated to qcow2+LUKS; qemu-img info/check/compare"

# ---- plain qcow v1, and one with a backing file -----------------------------------
expect_ok qemu-img create -q -f qcow plain.qcow 4M
expect_ok qemu-io -c "write -P 0x77 64k 200k" -c "write -P 0x01 2M 4k" plain.qcow
expect_ok qemu-img convert -O raw plain.qcow plain.raw
expect_ok "$VIMG" reencrypt -q "${OBJS[@]}" -o "$KEYOPT" plain.qcow
[ ! -s "$LAST_ERR" ] || fail "-q printed: $(cat "$LAST_ERR")"
migrated plain.qcow plain.raw "plain qcow"
echo "ok plain qcow v1 migrated to qcow2+LUKS"

mkdir sub
random_file sub/base.raw 4
expect_ok qemu-img create -q -f qcow -b base.raw -F raw sub/top.qcow
expect_ok qemu-io -c "write -P 0x42 1M 128k" -c "write -z 3M 64k" sub/top.qcow
expect_ok qemu-img convert -O raw sub/top.qcow top.raw
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o "$KEYOPT" sub/top.qcow
migrated sub/top.qcow top.raw "qcow with a backing file"
expect_ok qemu-img info sub/top.qcow
grep_last "backing file: base.raw"
grep_last "backing file format: raw"
expect_ok qemu-img map "${OBJS[@]}" --output=json --image-opts "$(q2opts sub/top.qcow)"
python3 - "$LAST_OUT" <<'EOF' || fail "top layer holds more or less than before"
import json, sys
m = json.load(open(sys.argv[1]))
def depth(off):
    return next(e['depth'] for e in m if e['start'] <= off < e['start'] + e['length'])
assert depth(0) == 1 and depth(2 << 20) == 1, m        # backing only
assert depth(1 << 20) == 0 and depth(3 << 20) == 0, m  # written in the top
EOF
echo "ok qcow v1 over raw: backing reference kept, only the top layer copied"

# ---- crash safety ------------------------------------------------------------------
cp aes-orig.qcow c.qcow
rm -f count.txt
VIMG_FAILPOINT_COUNT=$TEST_TMP/count.txt run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
    -o "$KEYOPT" c.qcow
[ "$LAST_RC" = 0 ] || { _show_last; fail "counting run failed"; }
total=$(awk '$1 == "any" { print $2 }' count.txt)
[ "${total:-0}" -ge 10 ] || fail "only ${total:-0} counted calls"
for ((n = 1; n <= total; n += 3)); do
    cp aes-orig.qcow c.qcow
    { VIMG_FAILPOINT=any:$n:crash run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
        -o "$KEYOPT" c.qcow; } 2>/dev/null
    assert_eq "$LAST_RC" 137 "any:$n:crash exit status"
    assert_same_file aes-orig.qcow c.qcow "any:$n:crash: original changed"
    [ -e c.qcow.reenc-new ] || fail "any:$n:crash: no partial temp file"
    expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o "$KEYOPT" c.qcow
    grep_last "left by an interrupted run" stderr
    migrated c.qcow aes.raw "any:$n:crash then rerun"
done
for n in 2 $((total / 2)) $total; do
    cp aes-orig.qcow c.qcow
    VIMG_FAILPOINT=any:$n:eio run_cmd "$VIMG" reencrypt "${OBJS[@]}" -o "$KEYOPT" c.qcow
    assert_eq "$LAST_RC" 1 "any:$n:eio exit status"
    assert_same_file aes-orig.qcow c.qcow "any:$n:eio: original changed"
    [ ! -e c.qcow.reenc-new ] || fail "any:$n:eio: temp file left"
done
echo "ok killed at every 3rd of $total write/flush calls: original intact, rerun completes; I/O errors leave it"

# ---- refusals leave the image untouched ---------------------------------------------
refuse()
{
    local file=$1 text=$2 sum
    shift 2
    sum=$(sha256sum <"$file")
    expect_error 1 "$text" "$VIMG" reencrypt "$@" "$file"
    assert_eq "$(wc -l <"$LAST_ERR")" 1 "one line on stderr: $text"
    assert_eq "$(sha256sum <"$file")" "$sum" "refusal touched $file: $text"
    [ ! -e "$file.reenc-new" ] || fail "temp file left after: $text"
}
cp aes-orig.qcow r.qcow
refuse r.qcow "the decrypted data looks random: wrong passphrase?" \
    "${OBJS[@]}" -o encrypt.key-secret=s2,encrypt.iter-count=1000
refuse r.qcow "Parameter 'encrypt.key-secret' is required" "${OBJS[@]}"
refuse r.qcow "No secret with id 'nope'" "${OBJS[@]}" -o encrypt.key-secret=nope
refuse r.qcow "Invalid parameter 'cluster_size'" "${OBJS[@]}" \
    -o encrypt.key-secret=s0,cluster_size=4096
refuse r.qcow "Invalid parameter 'encrypt.format'" "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.format=aes
refuse r.qcow "Parameter 'encrypt.key-secret' is required" "${OBJS[@]}" -o key-secret=s0
ln -s r.qcow link.qcow
refuse link.qcow "is not a regular file" "${OBJS[@]}" -o "$KEYOPT"
echo "ok refusals: wrong AES passphrase, missing key, bad options, symlink"

# --force: random guest data (or a wrong passphrase) is migrated anyway
expect_ok qemu-img create -q -f qcow "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 rnd.qcow 1M
random_file rnd.raw 1
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(q1opts rnd.qcow)" \
    -c "write -s $TEST_TMP/rnd.raw 0 1M"
refuse rnd.qcow "looks random" "${OBJS[@]}" -o "$KEYOPT"
expect_ok "$VIMG" reencrypt --force "${OBJS[@]}" -o "$KEYOPT" rnd.qcow
migrated rnd.qcow rnd.raw "random data with --force"
echo "ok --force migrates data that looks random"
