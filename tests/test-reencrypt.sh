#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg reencrypt (docs/reencrypt.md): in-place master-key rotation of raw
# LUKS1 volumes and of qcow2 images with LUKS, checked with the real tools:
# - raw LUKS made by vimg, qemu-img and cryptsetup (2 MiB payload offset):
#   qemu-img compare against the guest data before and after, cryptsetup
#   isLuks/luksDump (MK digest and dumped master key change, UUID stays),
#   the payload ciphertext changes everywhere;
# - a new cipher (serpent) with the same key size; a larger key that does
#   not fit the header area is refused and the image is untouched;
# - qcow2+LUKS made by qemu-img with a snapshot: active layer and snapshot
#   identical through qemu-img, qemu-img check clean, digest changed;
# - refusals leave the image untouched (sha256): wrong passphrase, several
#   key slots without --force (with --force the other passphrase is gone),
#   LUKS2, raw, qcow v1 without a key,
#   compressed plain qcow2, bad options;
# - legacy AES qcow2 made by qemu-img/qemu-io (backing file, snapshot that
#   shares clusters, a compressed cluster) migrated to qcow2+LUKS in place:
#   qemu-img info says luks, check clean, compare/convert -l equal to the
#   original plaintext, every data cluster rewritten, compressed cluster
#   kept and read by qemu-io; an unfinished migration reads correctly in
#   vimg and refuses writes; a host cluster at two guest offsets is refused;
# - plain qcow2 made by qemu-img/qemu-io with a snapshot and a backing file
#   name, encrypted in place: qemu-img info says LUKS, qemu-img check is
#   clean, qemu-img compare (with the passphrase) finds the active layer and
#   the snapshot equal to the original plaintext, no plaintext sector left,
#   qemu-io writes to it afterwards; an unfinished run reads correctly and
#   refuses writes;
# - while a run is unfinished vimg reads the image correctly, refuses
#   writes and amend; every read-write open (io, snapshot -c/-d/-a, resize,
#   check -r, amend, rebase -u, commit, convert -n) of a killed run is
#   refused with the image and journal byte-identical (cmp), and the resume
#   completes; -p shows progress; --help.
# - a wrong passphrase for a legacy AES migration (qemu-io pattern data) is
#   refused, image unchanged (qemu-img compare); random guest data made by
#   qemu-img convert is refused without --force and migrates with it.

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "reencrypt is a vimg command"
requires qemu-img
requires qemu-io
requires cryptsetup

printf 'other-passphrase' >pw2
OBJS=(--object "$SECRET" --object "secret,id=s2,file=$TEST_TMP/pw2")
lopts() { echo "driver=luks,key-secret=${2:-s0},file.filename=$1"; }
qopts() { echo "driver=qcow2,encrypt.key-secret=${2:-s0},file.filename=$1"; }

# same_data RAW OPTS: qemu-img compare says the guest data equals RAW.
same_data()
{
    run_cmd qemu-img compare "${OBJS[@]}" --image-opts \
        "driver=raw,file.filename=$1" "$2"
    [ "$LAST_RC" = 0 ] || { _show_last qemu-img compare "$1" "$2"; fail "$3"; }
}

mk_dump()
{
    cryptsetup luksDump --dump-master-key --batch-mode --key-file "$PWFILE" \
        "$1" | sed -n '/MK dump/,/^[^ \t]/p' | tr -d ' \t\n'
}

luks_field()
{
    cryptsetup luksDump "$1" | sed -n "s/^$2:[ \t]*//p" | head -1
}

# payload_differs A B OFFSET: no 512-byte sector after OFFSET is equal.
payload_differs()
{
    python3 - "$1" "$2" "$3" <<'EOF' || fail "ciphertext unchanged somewhere"
import sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
off = int(sys.argv[3])
same = [o for o in range(off, len(a), 512) if a[o:o+512] == b[o:o+512]]
sys.exit(1 if same or len(a) != len(b) else 0)
EOF
}

random_file data.raw 8

# ---- raw LUKS made by three tools ----------------------------------------------
vimg_create_luks v.luks 8M
qemu_create_luks q.luks 8M
truncate -s $((8 * 1048576 + 2 * 1048576)) c.luks   # payload at 2 MiB
expect_ok cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
    --key-file "$PWFILE" c.luks
for img in v.luks q.luks c.luks; do
    expect_ok qemu-img convert -n "${OBJS[@]}" -f raw data.raw \
        --target-image-opts "$(lopts $img)"
    cp $img $img.orig
    old_mk=$(mk_dump $img)
    old_digest=$(luks_field $img "MK digest")
    uuid=$(cryptsetup luksUUID $img)
    payload=$(( $(luks_field $img "Payload offset") * 512 ))
    expect_ok "$VIMG" reencrypt -p "${OBJS[@]}" -o key-secret=s0,iter-count=1000 $img
    grep_last "(100.00/100%)"
    [ ! -e $img.reenc ] || fail "$img: journal left behind"
    same_data data.raw "$(lopts $img)" "$img: data changed by reencrypt"
    cryptsetup isLuks $img || fail "$img: cryptsetup isLuks fails"
    new_mk=$(mk_dump $img)
    [ -n "$new_mk" ] && [ "$new_mk" != "$old_mk" ] ||
        fail "$img: master key unchanged"
    [ "$(luks_field $img "MK digest")" != "$old_digest" ] ||
        fail "$img: MK digest unchanged"
    assert_eq "$(cryptsetup luksUUID $img)" "$uuid" "$img: UUID kept"
    assert_eq "$(( $(luks_field $img "Payload offset") * 512 ))" "$payload" \
        "$img: payload offset kept"
    payload_differs $img.orig $img "$payload"
    cryptsetup luksOpen --test-passphrase --key-file "$PWFILE" $img ||
        fail "$img: cryptsetup rejects the passphrase after reencrypt"
done
echo "ok raw LUKS from vimg, qemu-img and cryptsetup re-keyed; qemu-img reads the same data"

# A second rotation of an already rotated image, and vimg's own reading.
expect_ok "$VIMG" reencrypt -q "${OBJS[@]}" -o key-secret=s0,iter-count=1000 v.luks
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=data.raw" \
    "$(lopts v.luks)"
echo "ok rotating twice"

# ---- new algorithms ---------------------------------------------------------------
cp v.luks s.luks
expect_ok "$VIMG" reencrypt "${OBJS[@]}" \
    -o key-secret=s0,iter-count=1000,cipher-alg=serpent-256,hash-alg=sha512 s.luks
assert_eq "$(luks_field s.luks "Cipher name")" serpent "serpent header"
assert_eq "$(luks_field s.luks "Hash spec")" sha512 "sha512 header"
same_data data.raw "$(lopts s.luks)" "serpent: data changed"
echo "ok re-encrypting aes-256-xts to serpent-256-xts/sha512"

vimg_create_luks small.luks 4M cipher-alg=aes-128
sum=$(sha256sum <small.luks)
expect_error 1 "use 'vimg convert' instead" "$VIMG" reencrypt "${OBJS[@]}" \
    -o key-secret=s0,cipher-alg=aes-256 small.luks
assert_eq "$(sha256sum <small.luks)" "$sum" "too large header: image touched"
[ ! -e small.luks.reenc ] || fail "journal left after refusal"
echo "ok a header that does not fit is refused, image untouched"

# ---- qcow2 + LUKS with a snapshot ---------------------------------------------------
qemu_retry qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 q.qcow2 16M ||
    fail "qemu-img create qcow2"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts q.qcow2)" \
    -c "write -P 0x11 0 3M" -c "write -P 0x22 9M 1M"
expect_ok qemu-img snapshot "${OBJS[@]}" -c snap1 --image-opts "$(qopts q.qcow2)"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts q.qcow2)" \
    -c "write -P 0x33 1M 1M" -c "write -P 0x44 13M 2M"
expect_ok qemu-img convert "${OBJS[@]}" --image-opts "$(qopts q.qcow2)" -O raw q-active.raw
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(qopts q.qcow2)" -O raw q-snap.raw
cmp -s q-active.raw q-snap.raw && fail "snapshot and active layer should differ"
cp q.qcow2 q.qcow2.orig
qdigest() { python3 -c "
import sys; d = open(sys.argv[1], 'rb').read(); i = d.find(b'LUKS\xba\xbe')
print(d[i + 112:i + 132].hex())" "$1"; }
old_digest=$(qdigest q.qcow2)
expect_ok "$VIMG" reencrypt "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 q.qcow2
[ "$(qdigest q.qcow2)" != "$old_digest" ] || fail "qcow2: MK digest unchanged"
same_data q-active.raw "$(qopts q.qcow2)" "qcow2: active layer changed"
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(qopts q.qcow2)" -O raw q-snap2.raw
assert_same_file q-snap.raw q-snap2.raw "qcow2: snapshot data changed"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(qopts q.qcow2)"
grep_last "No errors were found on the image."
expect_ok "$VIMG" check q.qcow2
echo "ok qcow2+LUKS with a snapshot re-keyed; qemu-img reads both, check clean"

# ---- refusals leave the image untouched ---------------------------------------------
refuse()
{
    local file=$1 text=$2 sum
    shift 2
    sum=$(sha256sum <"$file")
    expect_error 1 "$text" "$VIMG" reencrypt "$@" "$file"
    assert_eq "$(sha256sum <"$file")" "$sum" "refusal touched $file: $text"
    [ ! -e "$file.reenc" ] || fail "journal left after: $text"
}
refuse q.luks "Invalid password" "${OBJS[@]}" -o key-secret=s2
refuse q.luks "key-secret" "${OBJS[@]}"
refuse q.luks "No secret with id 'nope'" "${OBJS[@]}" -o key-secret=nope
refuse q.luks "Parameter 'cipher-alg' does not accept value 'rot13'" \
    "${OBJS[@]}" -o key-secret=s0,cipher-alg=rot13
refuse q.luks "Parameter 'bogus' is unexpected" "${OBJS[@]}" -o key-secret=s0,bogus=1

cp q.luks two.luks
expect_ok "$VIMG" amend "${OBJS[@]}" -o state=active,new-secret=s2,iter-count=1000 \
    --image-opts "$(lopts two.luks)"
refuse two.luks "has 2 active key slots" "${OBJS[@]}" -o key-secret=s0
expect_ok "$VIMG" reencrypt --force "${OBJS[@]}" -o key-secret=s0,iter-count=1000 two.luks
same_data data.raw "$(lopts two.luks)" "--force: data changed"
run_cmd qemu-img compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=data.raw" \
    "$(lopts two.luks s2)"
grep -q "Invalid password" "$LAST_ERR" || fail "dropped slot still opens"
echo "ok several key slots need --force; the dropped passphrase no longer opens"

expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
    -o key-secret=s0,encrypt.format=luks2,kdf=pbkdf2,iter-count=1000 l2.luks 4M
refuse l2.luks "LUKS2 volumes is not supported" "${OBJS[@]}" -o key-secret=s0
head -c 1M /dev/zero >plain.raw
refuse plain.raw "does not support re-encryption" -f raw
expect_ok qemu-img create -q -f qcow2 plain.qcow2 4M
expect_ok qemu-io -c "write -P 0x55 0 1M" plain.qcow2
expect_ok qemu-img convert -c -O qcow2 plain.qcow2 comp.qcow2
refuse comp.qcow2 "Compressed clusters cannot be encrypted in place" \
    "${OBJS[@]}" -o encrypt.key-secret=s0
expect_ok qemu-img create -q -f qcow "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 aes.qcow 4M
# (qcow v1 is migrated by a replace: tests/test-reencrypt-qcow1.sh)
refuse aes.qcow "Parameter 'encrypt.key-secret' is required" -f qcow
expect_error 1 "Expecting one image file name" "$VIMG" reencrypt
echo "ok refusals: wrong key, options, LUKS2, raw, compressed plain qcow2, qcow v1 without a key"

# ---- plain qcow2 -> qcow2+LUKS ---------------------------------------------------------
expect_ok qemu-img create -q -f qcow2 back.qcow2 16M
expect_ok qemu-img create -q -f qcow2 -b back.qcow2 -F qcow2 p.qcow2 16M
expect_ok qemu-io -c "write -P 0x11 0 3M" -c "write -P 0x22 9M 1M" p.qcow2
expect_ok qemu-img snapshot -c snap1 p.qcow2
expect_ok qemu-io -c "write -P 0x33 1M 1M" -c "write -P 0x44 13M 2M" p.qcow2
expect_ok qemu-img convert -O raw p.qcow2 p-active.raw
expect_ok qemu-img convert -l snapshot.name=snap1 -O raw p.qcow2 p-snap.raw
cp p.qcow2 p.qcow2.orig
expect_ok "$VIMG" reencrypt -p "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 p.qcow2
[ ! -e p.qcow2.reenc ] || fail "plain: journal left"
expect_ok qemu-img info p.qcow2
grep_last "encrypted: yes"
grep_last "format: luks"
grep_last "backing file: back.qcow2"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(qopts p.qcow2)"
grep_last "No errors were found on the image."
expect_ok qemu-img compare "${OBJS[@]}" --image-opts \
    "driver=qcow2,file.filename=p.qcow2.orig" "$(qopts p.qcow2)"
same_data p-active.raw "$(qopts p.qcow2)" "plain: active layer changed"
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(qopts p.qcow2)" -O raw p-snap2.raw
assert_same_file p-snap.raw p-snap2.raw "plain: snapshot data changed"
python3 - p.qcow2 <<'PYEOF' || fail "plain: plaintext sectors left"
import sys
d = open(sys.argv[1], 'rb').read()
sys.exit(any(d[o:o + 512] == bytes([b]) * 512
             for o in range(0, len(d), 512) for b in (0x11, 0x22, 0x33, 0x44)))
PYEOF
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts p.qcow2)" -c "write -P 0x66 5M 64k" \
    -c "read -P 0x66 5M 64k" -c "read -P 0x33 1M 1M"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(qopts p.qcow2)"
echo "ok plain qcow2 with a snapshot and a backing file encrypted in place: LUKS, check clean, same data"

cp p.qcow2.orig pu.qcow2
{ VIMG_FAILPOINT=write:4:crash run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 pu.qcow2; } 2>/dev/null
assert_eq "$LAST_RC" 137 "plain: failpoint crash"
[ -e pu.qcow2.reenc ] || fail "plain: no journal after an interrupted run"
expect_ok qemu-img check pu.qcow2
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=p-active.raw" \
    "$(qopts pu.qcow2)"
expect_error 2 "Encryption of '$TEST_TMP/pu.qcow2' is unfinished" \
    "$VIMG" compare -f raw p-active.raw "$TEST_TMP/pu.qcow2"
expect_error 1 "Re-encryption of 'pu.qcow2' is unfinished; run 'vimg reencrypt' to complete it" \
    "$VIMG" io "${OBJS[@]}" --image-opts "$(qopts pu.qcow2)" -c "write -P 1 0 512"
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o encrypt.key-secret=s0 pu.qcow2
same_data p-active.raw "$(qopts pu.qcow2)" "plain: resumed image differs"
echo "ok plain qcow2, unfinished run: vimg reads correctly, refuses writes; resume completes"

# ---- legacy AES qcow2 -> qcow2+LUKS ----------------------------------------------------
# Made by qemu-img 7.2 (it still creates crypt_method 1), data by qemu-io:
# a plain backing file, a compressed cluster (qemu writes those unencrypted
# even in AES images), a snapshot sharing clusters with the active layer.
aopts() { echo "driver=qcow2,encrypt.key-secret=${2:-s0},file.filename=$1"; }
expect_ok qemu-img create -q -f qcow2 aback.qcow2 16M
expect_ok qemu-io -c "write -P 0x77 4M 1M" aback.qcow2
expect_ok qemu-img create -q -f qcow2 "${OBJS[@]}" -b aback.qcow2 -F qcow2 \
    -o encrypt.format=aes,encrypt.key-secret=s0 a.qcow2 16M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts a.qcow2)" \
    -c "write -P 0x11 0 3M" -c "write -P 0x22 9M 1M" -c "write -c -P 0x55 6M 64k"
expect_ok qemu-img snapshot "${OBJS[@]}" -c snap1 --image-opts "$(aopts a.qcow2)"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts a.qcow2)" \
    -c "write -P 0x33 1M 1M" -c "write -P 0x44 13M 2M" -c "write -P 0x66 4M 64k"
expect_ok qemu-img convert "${OBJS[@]}" --image-opts "$(aopts a.qcow2)" -O raw a-active.raw
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(aopts a.qcow2)" -O raw a-snap.raw
expect_ok qemu-img info a.qcow2
grep_last "format: aes"
cp a.qcow2 a.qcow2.orig
# vimg reads qemu's AES image before (the same data as qemu-img)
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=a-active.raw" \
    "$(aopts a.qcow2)"
expect_ok "$VIMG" reencrypt -p "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 a.qcow2
grep_last "(100.00/100%)"
[ ! -e a.qcow2.reenc ] || fail "aes: journal left"
expect_ok qemu-img info a.qcow2
grep_last "encrypted: yes"
grep_last "format: luks"
grep_last "cipher alg: aes-256"
grep_last "cipher mode: xts"
grep_last "backing file: aback.qcow2"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(aopts a.qcow2)"
grep_last "No errors were found on the image."
expect_ok "$VIMG" check a.qcow2
same_data a-active.raw "$(aopts a.qcow2)" "aes: active layer changed"
expect_ok qemu-img compare "${OBJS[@]}" --image-opts \
    "$(aopts a.qcow2.orig)" "$(aopts a.qcow2)"
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(aopts a.qcow2)" -O raw a-snap2.raw
assert_same_file a-snap.raw a-snap2.raw "aes: snapshot data changed"
# the compressed cluster is still there, and still read by qemu
expect_ok qemu-img map "${OBJS[@]}" --output=json --image-opts "$(aopts a.qcow2)"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts a.qcow2)" -c "read -P 0x55 6M 64k" \
    -c "read -P 0x77 4160k 64k" -c "read -P 0x66 4M 64k"
expect_ok qemu-img check --output=json "${OBJS[@]}" --image-opts "$(aopts a.qcow2)"
grep_last '"compressed-clusters": 1'
# every uncompressed data cluster changed: no old AES ciphertext left
python3 - a.qcow2.orig a.qcow2 <<'PYEOF' || fail "aes: data clusters unchanged"
import struct, sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
cs = 1 << struct.unpack('>I', a[20:24])[0]
l1n, l1o = struct.unpack('>IQ', a[36:48])
hosts = set()
for i in range(l1n):
    l2 = struct.unpack('>Q', a[l1o + 8 * i:l1o + 8 * i + 8])[0] & 0x00fffffffffffe00
    for k in range(l2 and cs // 8):
        e = struct.unpack('>Q', a[l2 + 8 * k:l2 + 8 * k + 8])[0]
        if e and not e >> 62 & 1 and e & 0x00fffffffffffe00:
            hosts.add(e & 0x00fffffffffffe00)
same = [h for h in hosts if any(a[o:o + 512] == b[o:o + 512]
                                for o in range(h, h + cs, 512))]
print(len(hosts), 'data clusters', len(same), 'with an unchanged sector')
sys.exit(1 if same or len(hosts) < 40 else 0)
PYEOF
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts a.qcow2)" -c "write -P 0x67 5M 64k" \
    -c "read -P 0x67 5M 64k" -c "read -P 0x33 1M 1M"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(aopts a.qcow2)"
echo "ok legacy AES qcow2 (qemu-img, backing file, snapshot, compressed cluster) migrated to LUKS: check clean, same data"

# An unfinished migration: vimg reads it (new key below the boundary, the
# AES key above), refuses writes; qemu-img check finds the structure intact.
cp a.qcow2.orig au.qcow2
{ VIMG_FAILPOINT=write:5:crash run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 au.qcow2; } 2>/dev/null
assert_eq "$LAST_RC" 137 "aes: failpoint crash"
[ -e au.qcow2.reenc ] || fail "aes: no journal after an interrupted run"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(aopts au.qcow2)"
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=a-active.raw" \
    "$(aopts au.qcow2)"
expect_ok "$VIMG" convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(aopts au.qcow2)" -O raw au-snap.raw
assert_same_file a-snap.raw au-snap.raw "aes: unfinished run, snapshot read by vimg"
expect_ok "$VIMG" io -r "${OBJS[@]}" --image-opts "$(aopts au.qcow2)" -c "read -P 0x11 0 512"
# Every read-write open is refused, with or without the key (metadata
# changes too: they would race the resume), and the image stays as it is.
cp au.qcow2 au.qcow2.mid
cp au.qcow2.reenc au.qcow2.reenc.mid
busy="Re-encryption of 'au.qcow2' is unfinished; run 'vimg reencrypt' to complete it"
expect_error 1 "$busy" "$VIMG" io "${OBJS[@]}" --image-opts "$(aopts au.qcow2)" \
    -c "write -P 1 0 512"
expect_error 1 "$busy" "$VIMG" io "${OBJS[@]}" --image-opts "$(aopts au.qcow2)" \
    -c "write -z 0 64k"
expect_error 1 "$busy" "$VIMG" snapshot -c snap2 au.qcow2
expect_error 1 "$busy" "$VIMG" snapshot -d snap1 au.qcow2
expect_error 1 "$busy" "$VIMG" snapshot -a snap1 au.qcow2
expect_error 1 "$busy" "$VIMG" resize au.qcow2 32M
expect_error 1 "$busy" "$VIMG" check -r all au.qcow2
expect_error 1 "$busy" "$VIMG" amend -o lazy_refcounts=on au.qcow2
expect_error 1 "$busy" "$VIMG" rebase -u -b "" au.qcow2
expect_error 1 "$busy" "$VIMG" commit "${OBJS[@]}" --image-opts "$(aopts au.qcow2)"
cmp au.qcow2 au.qcow2.mid || fail "aes: a refused command changed the image"
cmp au.qcow2.reenc au.qcow2.reenc.mid || fail "aes: a refused command changed the journal"
expect_ok "$VIMG" snapshot -l au.qcow2
expect_ok "$VIMG" check au.qcow2
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o encrypt.key-secret=s0 au.qcow2
same_data a-active.raw "$(aopts au.qcow2)" "aes: resumed image differs"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(aopts au.qcow2)"
echo "ok AES qcow2, unfinished run: vimg reads correctly, refuses writes; resume completes"

# A host cluster at two guest offsets (crafted: L2 entry 1 points at the
# cluster of entry 0) has two meanings under AES: refused, image untouched.
expect_ok qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 dup.qcow2 4M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts dup.qcow2)" -c "write -P 0x11 0 128k"
python3 - dup.qcow2 <<'PYEOF' || fail "crafting dup.qcow2"
import struct, sys
f = open(sys.argv[1], 'r+b'); d = f.read()
l1o = struct.unpack('>Q', d[40:48])[0]
l2 = struct.unpack('>Q', d[l1o:l1o + 8])[0] & 0x00fffffffffffe00
f.seek(l2 + 8); f.write(d[l2:l2 + 8])
PYEOF
refuse dup.qcow2 "is used at guest offsets 0 and 0x10000" "${OBJS[@]}" -o encrypt.key-secret=s0
echo "ok AES qcow2 with one host cluster at two guest offsets is refused"

# Legacy AES has no key check: a wrong passphrase would turn every cluster
# into garbage under the new key.  vimg decrypts a sample first and refuses
# when all of it looks random (qemu-io pattern data is anything but).
expect_ok qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 wk.qcow2 8M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts wk.qcow2)" \
    -c "write -P 0x11 0 1M" -c "write -P 0x22 5M 64k"
cp wk.qcow2 wk.qcow2.orig
refuse wk.qcow2 "The decrypted data of 'wk.qcow2' looks random: wrong passphrase?" \
    "${OBJS[@]}" -o encrypt.key-secret=s2,encrypt.iter-count=1000
expect_ok qemu-img compare "${OBJS[@]}" --image-opts "$(aopts wk.qcow2.orig)" \
    "$(aopts wk.qcow2)"
expect_ok qemu-img info wk.qcow2
grep_last "format: aes"
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o encrypt.key-secret=s0,encrypt.iter-count=1000 \
    wk.qcow2
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(aopts wk.qcow2)" \
    -c "read -P 0x11 0 1M" -c "read -P 0x22 5M 64k"
echo "ok AES qcow2 with a wrong passphrase is refused, untouched; the right one migrates"

# Guest data that really is random looks like a wrong key: refused unless
# --force, which migrates it unchanged.
random_file rnd.raw 2
expect_ok qemu-img convert "${OBJS[@]}" -f raw -O qcow2 \
    -o encrypt.format=aes,encrypt.key-secret=s0 rnd.raw rnd.qcow2
refuse rnd.qcow2 "looks random: wrong passphrase? (--force if the guest data really is random)" \
    "${OBJS[@]}" -o encrypt.key-secret=s0,encrypt.iter-count=1000
expect_ok "$VIMG" reencrypt --force "${OBJS[@]}" \
    -o encrypt.key-secret=s0,encrypt.iter-count=1000 rnd.qcow2
[ ! -e rnd.qcow2.reenc ] || fail "random: journal left"
expect_ok qemu-img info rnd.qcow2
grep_last "format: luks"
same_data rnd.raw "$(aopts rnd.qcow2)" "random: data changed by the forced migration"
echo "ok AES qcow2 with random guest data: refused, migrated with --force, same data"

# ---- an unfinished run: reads work, writes are refused ------------------------------
cp q.luks.orig u.luks
{ VIMG_FAILPOINT=write:6:crash run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
    -o key-secret=s0,iter-count=1000 u.luks; } 2>/dev/null
assert_eq "$LAST_RC" 137 "failpoint crash"
[ -e u.luks.reenc ] || fail "no journal after an interrupted run"
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=data.raw" \
    "$(lopts u.luks)"
cp u.luks u.luks.mid
expect_error 1 "is unfinished" "$VIMG" io "${OBJS[@]}" --image-opts "$(lopts u.luks)" \
    -c "write -P 1 0 512"
expect_error 1 "is unfinished" "$VIMG" resize "${OBJS[@]}" --image-opts "$(lopts u.luks)" 16M
expect_error 1 "is unfinished" "$VIMG" convert -n "${OBJS[@]}" \
    -f raw data.raw --target-image-opts "$(lopts u.luks)"
expect_error 1 "is unfinished" "$VIMG" amend "${OBJS[@]}" \
    -o state=active,new-secret=s2,iter-count=1000 --image-opts "$(lopts u.luks)"
cmp u.luks u.luks.mid || fail "a refused command changed u.luks"
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o key-secret=s0 u.luks
[ ! -e u.luks.reenc ] || fail "journal left after resume"
same_data data.raw "$(lopts u.luks)" "resumed image differs"
echo "ok unfinished run: vimg reads correctly, refuses writes and amend; resume completes"

# Killed while the new header replaces the old one, and the old header torn:
# vimg reads through the journal's header and the resume rewrites it.
cp q.luks.orig t.luks
VIMG_FAILPOINT_COUNT=$TEST_TMP/count.txt expect_ok "$VIMG" reencrypt "${OBJS[@]}" \
    -o key-secret=s0,iter-count=1000 t.luks
total=$(awk '$1 == "any" { print $2 }' count.txt)
cp q.luks.orig t.luks
{ VIMG_FAILPOINT=any:$((total - 1)):crash run_cmd "$VIMG" reencrypt "${OBJS[@]}" \
    -o key-secret=s0,iter-count=1000 t.luks; } 2>/dev/null
assert_eq "$LAST_RC" 137 "crash before the header copy"
dd if=/dev/urandom of=t.luks bs=1 count=300 seek=100 conv=notrunc 2>/dev/null
expect_ok "$VIMG" compare "${OBJS[@]}" --image-opts "driver=raw,file.filename=data.raw" \
    "$(lopts t.luks)"
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o key-secret=s0 t.luks
same_data data.raw "$(lopts t.luks)" "torn header: resumed image differs"
echo "ok a torn header during the final copy: vimg reads via the journal, resume repairs it"

expect_ok "$VIMG" reencrypt --help
grep_last "usage: vimg reencrypt"
echo "ok --help"
