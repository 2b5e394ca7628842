#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg amend (LUKS key slots) against the real tools:
# - vimg adds a slot to a qemu-img-made raw luks and qcow2+luks image;
#   qemu-io then reads the data with the new and with the old password,
#   cryptsetup luksDump lists the slot and --test-passphrase accepts it.
# - qemu-img amend adds a slot, vimg opens the image with it.
# - erase by keyslot and by old-secret (both formats), --force overwrite.
# - every refusal: the same stderr, exit code and untouched file as
#   qemu-img amend on a copy of the same image.
# - cryptsetup luksAddKey / luksKillSlot on a vimg-made image; vimg opens
#   with the new key and no longer with the killed one.
# - crash/EIO injection (VIMG_FAILPOINT=any:N:crash|eio) at every write and
#   flush of an add and of an erase: the image always opens with the old
#   password, and the new one works only in addition ("never neither").

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires qemu-io
[ "$VIMG_IS_QEMU" = 0 ] || skip "uses vimg-only options (iter-count, failpoints)"

for i in 1 2 3; do
    printf 'second-passw0rd-%s' "$i" >"pw$i"
done
OBJS=(--object "$SECRET")
for i in 1 2 3; do
    OBJS+=(--object "secret,id=s$i,file=$TEST_TMP/pw$i")
done
PAT=0x5a

# qio_reads OPTS: qemu-io opens the image with OPTS and reads the pattern.
qio_reads()
{
    run_cmd qemu-io "${OBJS[@]}" --image-opts "$1" -c "read -P $PAT 0 64k"
    [ "$LAST_RC" = 0 ] && grep -q '^read 65536/65536' "$LAST_OUT" &&
        ! grep -q 'Pattern verification failed' "$LAST_OUT"
}

# must_read OPTS WHAT / must_not_open OPTS WHAT
must_read()
{
    qio_reads "$1" || { _show_last qemu-io "$1"; fail "$2: cannot read with $1"; }
}
must_not_open()
{
    if qio_reads "$1"; then
        fail "$2: still opens with $1"
    fi
    grep -q 'Invalid password, cannot unlock any keyslot' "$LAST_ERR" ||
        { _show_last qemu-io "$1"; fail "$2: unexpected error"; }
}

# vimg_reads OPTS: vimg opens the image with OPTS and reads the pattern.
vimg_reads()
{
    run_cmd "$VIMG" io "${OBJS[@]}" --image-opts "$1" -c "read -P $PAT 0 64k"
    [ "$LAST_RC" = 0 ] && ! grep -q 'Pattern verification failed' "$LAST_OUT"
}

active_slots()
{
    qemu-img info --output=json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)["format-specific"]["data"]
d = d.get("encrypt", d)
print(" ".join(str(i) for i, s in enumerate(d["slots"]) if s["active"]))'
}

lopts() { echo "driver=luks,file.filename=$1,key-secret=$2"; }
qopts() { echo "driver=qcow2,file.filename=$1,encrypt.key-secret=$2"; }

# ---- base images made by qemu-img -------------------------------------------
qemu_create_luks base1.luks 4M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(lopts base1.luks s0)" \
    -c "write -P $PAT 0 64k"
qemu_retry qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
    base1.qcow2 4M || fail "qemu-img create qcow2+luks"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts base1.qcow2 s0)" \
    -c "write -P $PAT 0 64k"

# ---- vimg adds a slot; qemu-io and cryptsetup use it ------------------------
cp base1.luks a.luks
expect_ok "$VIMG" amend "${OBJS[@]}" \
    -o state=active,new-secret=s1,iter-count=1000 --image-opts "$(lopts a.luks s0)"
assert_eq "$(cat "$LAST_OUT" "$LAST_ERR")" "" "amend prints nothing"
assert_eq "$(active_slots a.luks)" "0 1" "raw luks slots after add"
must_read "$(lopts a.luks s1)" "raw add"
must_read "$(lopts a.luks s0)" "raw add (old)"
if command -v cryptsetup >/dev/null 2>&1; then
    cryptsetup luksDump a.luks >dump.txt || fail "luksDump"
    grep -q 'Key Slot 1: ENABLED' dump.txt || fail "luksDump: slot 1 not enabled"
    grep -q 'Key Slot 2: DISABLED' dump.txt || fail "luksDump: slot 2"
    cryptsetup luksOpen --test-passphrase --key-file pw1 a.luks ||
        fail "cryptsetup rejects the vimg-added passphrase"
    echo "ok cryptsetup sees the vimg-added slot"
fi
echo "ok vimg adds a slot to a qemu-made raw luks"

cp base1.qcow2 a.qcow2
expect_ok "$VIMG" amend "${OBJS[@]}" \
    -o encrypt.state=active,encrypt.new-secret=s1,encrypt.iter-count=1000 \
    --image-opts "$(qopts a.qcow2 s0)"
assert_eq "$(active_slots a.qcow2)" "0 1" "qcow2 slots after add"
must_read "$(qopts a.qcow2 s1)" "qcow2 add"
must_read "$(qopts a.qcow2 s0)" "qcow2 add (old)"
expect_ok qemu-img check "${OBJS[@]}" --image-opts "$(qopts a.qcow2 s1)"
echo "ok vimg adds a slot to a qemu-made qcow2+luks"

# ---- qemu-img adds a slot, vimg opens with it ------------------------------
cp base1.luks b.luks
qemu_retry qemu-img amend "${OBJS[@]}" -o state=active,new-secret=s2,iter-time=10 \
    --image-opts "$(lopts b.luks s0)" || fail "qemu-img amend add"
vimg_reads "$(lopts b.luks s2)" || { _show_last; fail "vimg cannot use a qemu-added slot"; }
cp base1.qcow2 b.qcow2
qemu_retry qemu-img amend "${OBJS[@]}" \
    -o encrypt.state=active,encrypt.new-secret=s2,encrypt.iter-time=10 \
    --image-opts "$(qopts b.qcow2 s0)" || fail "qemu-img amend add qcow2"
vimg_reads "$(qopts b.qcow2 s2)" || { _show_last; fail "vimg cannot use a qemu-added qcow2 slot"; }
echo "ok vimg opens with slots qemu-img added"

# ---- erase by slot and by old-secret ----------------------------------------
cp a.luks e1.luks
expect_ok "$VIMG" amend "${OBJS[@]}" -o state=inactive,keyslot=0 \
    --image-opts "$(lopts e1.luks s1)"
assert_eq "$(active_slots e1.luks)" "1" "erase by keyslot"
must_not_open "$(lopts e1.luks s0)" "erased slot 0"
must_read "$(lopts e1.luks s1)" "erase by keyslot keeps slot 1"
cp a.luks e2.luks
expect_ok "$VIMG" amend "${OBJS[@]}" -o state=inactive,old-secret=s1 \
    --image-opts "$(lopts e2.luks s0)"
assert_eq "$(active_slots e2.luks)" "0" "erase by old-secret"
must_not_open "$(lopts e2.luks s1)" "erased by old-secret"
must_read "$(lopts e2.luks s0)" "erase by old-secret keeps slot 0"
# the erased key material is gone, not just the header entry
cmp -s -i 262144:262144 -n 128000 a.luks e2.luks &&
    fail "key material of the erased slot unchanged"
cp a.qcow2 e.qcow2
expect_ok "$VIMG" amend "${OBJS[@]}" \
    -o encrypt.state=inactive,encrypt.old-secret=s0 --image-opts "$(qopts e.qcow2 s1)"
assert_eq "$(active_slots e.qcow2)" "1" "qcow2 erase by old-secret"
must_not_open "$(qopts e.qcow2 s0)" "qcow2 erased slot"
must_read "$(qopts e.qcow2 s1)" "qcow2 erase keeps slot 1"
echo "ok erase by keyslot and by old-secret"

# --force overwrite of an active slot, then the old password of that slot fails
cp a.luks f.luks
expect_ok "$VIMG" amend "${OBJS[@]}" --force \
    -o state=active,new-secret=s3,keyslot=1,iter-count=1000 --image-opts "$(lopts f.luks s0)"
must_read "$(lopts f.luks s3)" "forced overwrite"
must_not_open "$(lopts f.luks s1)" "overwritten slot"
echo "ok --force overwrites an active slot"

# ---- refusals: identical to qemu-img amend ---------------------------------
# same_amend BASE FILE ARGS...: qemu-img amend and vimg amend on copies of
# BASE: the same rc, stdout, stderr (prefix normalised) and resulting file.
same_amend()
{
    local base=$1 file=$2 qrc
    shift 2
    cp "$base" "$file"
    qemu_retry qemu-img amend "$@" 2>/dev/null || true
    qrc=$LAST_RC
    sed 's/^qemu-img: /PROG: /; s/qemu-img --help/PROG --help/' "$LAST_ERR" >qemu.err
    cp "$LAST_OUT" qemu.out
    cp "$file" qemu.img
    cp "$base" "$file"
    run_cmd "$VIMG" amend "$@"
    sed 's/^vimg: /PROG: /; s/vimg --help/PROG --help/' "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s qemu.out "$LAST_OUT" ||
           ! cmp -s qemu.err vimg.err; then
        echo "--- qemu-img amend $* (rc $qrc):" >&2
        cat qemu.out qemu.err >&2
        echo "--- vimg (rc $LAST_RC):" >&2
        cat "$LAST_OUT" vimg.err >&2
        fail "vimg and qemu-img disagree on: amend $*"
    fi
    if [ "$qrc" != 0 ]; then
        cmp -s qemu.img "$file" && cmp -s "$base" "$file" ||
            fail "a refused amend changed the image: $*"
    fi
    echo "ok amend $* (rc $qrc)"
}

# base2.luks: slots 0 (s0) and 1 (s1); base1.luks: slot 0 only.
cp a.luks base2.luks
L2=(--image-opts "$(lopts r.luks s0)")
for o in state=active "state=active,new-secret=s2,old-secret=s0" \
         "state=active,new-secret=s2,keyslot=8" "state=active,new-secret=s2,keyslot=-1" \
         "state=active,new-secret=s2,keyslot=1" "state=active,new-secret=s9,keyslot=1" \
         "state=active,new-secret=s9" "state=active,keyslot=9,old-secret=s0" \
         state=foo state=ACTIVE foo=bar new-secret=s1 "keyslot=abc,state=active" \
         "state=active,new-secret=s2,iter-time=abc" "state=active,new-secret=s2,iter-time=1k" \
         state=inactive "state=inactive,new-secret=s1" "state=inactive,iter-time=10" \
         "state=inactive,keyslot=5" "state=inactive,keyslot=9" "state=inactive,keyslot=-1" \
         "state=inactive,keyslot=010" "state=inactive,keyslot=18446744073709551617" \
         "state=inactive,keyslot=1,old-secret=s0" "state=inactive,keyslot=5,old-secret=s1" \
         "state=inactive,old-secret=s2" "state=inactive,old-secret=s9" \
         "state=inactive,keyslot=5,old-secret=s9" "state=inactive,keyslot=9,old-secret=s9" \
         key-secret=s0 cipher-alg=aes-128 "key-secret=s0,foo=1" "foo=1,key-secret=s0" \
         "state=inactive,keyslot=1" "state=inactive,keyslot=4294967297" \
         "state=inactive,old-secret=s1" "state=active,new-secret=s2,keyslot=0x3,iter-time=0" \
         "state=active,new-secret=s2,iter-time=0"; do
    same_amend base2.luks r.luks "${OBJS[@]}" -o "$o" "${L2[@]}"
done
same_amend base2.luks r.luks "${OBJS[@]}" --force \
    -o state=active,new-secret=s2,keyslot=1,iter-time=0 "${L2[@]}"
for o in "state=inactive,keyslot=0" "state=inactive,old-secret=s0" \
         "state=inactive,keyslot=0,old-secret=s0"; do
    same_amend base1.luks r.luks "${OBJS[@]}" -o "$o" "${L2[@]}"
done
same_amend base1.luks r.luks "${OBJS[@]}" --force -o state=inactive,keyslot=0 "${L2[@]}"
same_amend base1.luks r.luks "${OBJS[@]}" -o state=active,new-secret=s1 r.luks
same_amend base1.luks r.luks "${OBJS[@]}" -f raw -o state=active r.luks
same_amend base1.luks r.luks "${OBJS[@]}" r.luks
same_amend base1.luks r.luks "${OBJS[@]}" -o "" r.luks
same_amend base1.luks r.luks "${OBJS[@]}" -o "state=active," r.luks
same_amend base1.luks r.luks "${OBJS[@]}" -o state=active
same_amend base1.luks r.luks "${OBJS[@]}" -o state=active "${L2[@]}" extra
same_amend base1.luks r.luks "${OBJS[@]}" -o state=inactive,keyslot=0 \
    --image-opts "$(lopts r.luks s2)"

# all eight slots in use
cp base2.luks full.luks
for s in 2 3 4 5 6 7; do
    expect_ok "$VIMG" amend "${OBJS[@]}" -o state=active,new-secret=s2,iter-count=1000 \
        --image-opts "$(lopts full.luks s0)"
done
assert_eq "$(active_slots full.luks)" "0 1 2 3 4 5 6 7" "eight slots"
same_amend full.luks r.luks "${OBJS[@]}" -o state=active,new-secret=s2 "${L2[@]}"
same_amend full.luks r.luks "${OBJS[@]}" -o state=active,new-secret=s9 "${L2[@]}"
# erase every slot holding s2 (six of them) at once
expect_ok "$VIMG" amend "${OBJS[@]}" -o state=inactive,old-secret=s2 \
    --image-opts "$(lopts full.luks s0)"
assert_eq "$(active_slots full.luks)" "0 1" "erase all slots matching"

# qcow2 (slots 0 = s0, 1 = s1)
Q2=(--image-opts "$(qopts r.qcow2 s0)")
for o in encrypt.format=luks encrypt.key-secret=s0 encrypt.foo=1 state=inactive \
         encrypt.state=inactive "encrypt.state=inactive,encrypt.keyslot=5" \
         encrypt.keyslot=1 encrypt.state=foo "encrypt.state=inactive,encrypt.keyslot=abc" \
         "encrypt.format=luks,encrypt.keyslot=abc" "encrypt.keyslot=abc,encrypt.format=luks" \
         "encrypt.format=luks,foo=1" "encrypt.format=luks,encrypt.cipher-alg=aes-128" \
         "encrypt.state=inactive,encrypt.keyslot=-1" \
         "encrypt.state=active,encrypt.new-secret=s2,encrypt.keyslot=-1" \
         "encrypt.state=active,encrypt.new-secret=s2,encrypt.keyslot=1" \
         "encrypt.state=inactive,encrypt.keyslot=1" \
         "encrypt.state=inactive,encrypt.old-secret=s1,encrypt.keyslot=0"; do
    same_amend a.qcow2 r.qcow2 "${OBJS[@]}" -o "$o" "${Q2[@]}"
done
same_amend base1.qcow2 r.qcow2 "${OBJS[@]}" -o encrypt.state=inactive,encrypt.keyslot=0 "${Q2[@]}"
same_amend base1.qcow2 r.qcow2 "${OBJS[@]}" -o encrypt.state=active,encrypt.new-secret=s1 -f qcow2 r.qcow2
expect_ok qemu-img create -q -f qcow2 plain.qcow2 1M
same_amend plain.qcow2 r.qcow2 "${OBJS[@]}" \
    -o encrypt.state=active,encrypt.new-secret=s2 -f qcow2 r.qcow2
same_amend plain.qcow2 r.qcow2 "${OBJS[@]}" -o encrypt.state=active -f qcow2 r.qcow2
if qemu-img create -q -f qcow2 "${OBJS[@]}" -o encrypt.format=aes,encrypt.key-secret=s0 \
       aes.qcow2 1M 2>/dev/null; then
    same_amend aes.qcow2 r.qcow2 "${OBJS[@]}" -o encrypt.state=active,encrypt.new-secret=s2 \
        --image-opts "$(qopts r.qcow2 s0)"
fi
if qemu-img create -q -f qcow "${OBJS[@]}" -o encrypt.format=aes,encrypt.key-secret=s0 \
       v1.qcow 1M 2>/dev/null; then
    same_amend v1.qcow r.qcow "${OBJS[@]}" -o encrypt.state=active,encrypt.new-secret=s2 \
        --image-opts "driver=qcow,file.filename=r.qcow,encrypt.key-secret=s0"
fi

# -o help: qemu's five lines first (vimg adds iter-count after them)
expect_ok "$VIMG" amend -f luks -o help
head -6 "$LAST_OUT" >vimg.help
expect_ok qemu-img amend -f luks -o help
cmp -s "$LAST_OUT" vimg.help || fail "amend -o help differs"
echo "ok amend -o help"

# ---- cryptsetup on a vimg-made image ---------------------------------------
if command -v cryptsetup >/dev/null 2>&1; then
    vimg_create_luks c.luks 4M
    expect_ok "$VIMG" io "${OBJS[@]}" --image-opts "$(lopts c.luks s0)" \
        -c "write -P $PAT 0 64k"
    expect_ok cryptsetup luksAddKey --batch-mode --key-file pw --pbkdf-force-iterations 1000 \
        c.luks pw1
    vimg_reads "$(lopts c.luks s1)" || { _show_last; fail "vimg: cryptsetup-added key"; }
    expect_ok cryptsetup luksKillSlot --batch-mode --key-file pw1 c.luks 0
    vimg_reads "$(lopts c.luks s1)" || { _show_last; fail "vimg after luksKillSlot"; }
    run_cmd "$VIMG" io "${OBJS[@]}" --image-opts "$(lopts c.luks s0)" -c "read 0 512"
    [ "$LAST_RC" != 0 ] && grep -q 'Invalid password' "$LAST_ERR" ||
        fail "vimg still opens a killed slot"
    # and vimg amend after cryptsetup: add s2, cryptsetup accepts it
    expect_ok "$VIMG" amend "${OBJS[@]}" -o state=active,new-secret=s2,iter-count=1000 \
        --image-opts "$(lopts c.luks s1)"
    cryptsetup luksOpen --test-passphrase --key-file pw2 c.luks ||
        fail "cryptsetup rejects a vimg-added key after luksKillSlot"
    echo "ok cryptsetup luksAddKey/luksKillSlot interoperate"
fi

# ---- crash and I/O-error injection -------------------------------------------
# fault_loop BASE FILE OLD NEW OPTS_FN ARGS...: run vimg amend ARGS with a
# failpoint at every counted call; afterwards the image must read with OLD,
# and NEW must either read or be refused cleanly.  NEW='-' means NEW must
# never open (erase of NEW).
fault_loop()
{
    local base=$1 file=$2 old=$3 new=$4 fn=$5 total n action
    shift 5
    cp "$base" "$file"
    rm -f count.txt
    VIMG_FAILPOINT_COUNT=$TEST_TMP/count.txt run_cmd "$VIMG" amend "$@"
    [ "$LAST_RC" = 0 ] || { _show_last; fail "fault_loop: plain run failed"; }
    total=$(awk '$1 == "any" { print $2 }' count.txt)
    [ "${total:-0}" -ge 4 ] || fail "fault_loop: only ${total:-0} counted calls"
    for ((n = 1; n <= total; n++)); do
        for action in crash eio; do
            cp "$base" "$file"
            { VIMG_FAILPOINT=any:$n:$action run_cmd "$VIMG" amend "$@"; } 2>/dev/null
            if [ "$action" = crash ] && [ "$LAST_RC" != 137 ]; then
                fail "fault_loop: any:$n:crash exited $LAST_RC"
            fi
            must_read "$($fn "$file" "$old")" "after any:$n:$action"
            if [ "$new" != - ]; then
                qio_reads "$($fn "$file" "$new")" ||
                    grep -q 'Invalid password' "$LAST_ERR" ||
                    { _show_last; fail "new password broken after any:$n:$action"; }
            fi
        done
    done
    echo "ok fault injection at all $total write/flush points: $*"
}
fault_loop base1.luks x.luks s0 s1 lopts "${OBJS[@]}" \
    -o state=active,new-secret=s1,iter-count=1000 --image-opts "$(lopts x.luks s0)"
fault_loop base2.luks x.luks s0 - lopts "${OBJS[@]}" \
    -o state=inactive,old-secret=s1 --image-opts "$(lopts x.luks s0)"
fault_loop base2.luks x.luks s0 s2 lopts "${OBJS[@]}" --force \
    -o state=active,new-secret=s2,keyslot=1,iter-count=1000 --image-opts "$(lopts x.luks s0)"
fault_loop base1.qcow2 x.qcow2 s0 s1 qopts "${OBJS[@]}" \
    -o encrypt.state=active,encrypt.new-secret=s1,encrypt.iter-count=1000 \
    --image-opts "$(qopts x.qcow2 s0)"
fault_loop a.qcow2 x.qcow2 s0 - qopts "${OBJS[@]}" \
    -o encrypt.state=inactive,encrypt.keyslot=1 --image-opts "$(qopts x.qcow2 s0)"

echo "PASS: $TEST_NAME"
