#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg luks header-backup / header-restore against cryptsetup 2.6's
# luksHeaderBackup / luksHeaderRestore, for LUKS1 and LUKS2 images and a
# detached LUKS1 header:
# - vimg's backup is byte-identical to cryptsetup's (mode 0400), and an
#   existing backup file is refused.
# - vimg's backup restored by cryptsetup luksHeaderRestore, and
#   cryptsetup's backup restored by vimg, after the header was changed
#   (a key added) or destroyed: the old password works again (cryptsetup
#   and vimg), the added one no longer does, the data reads back the same.
# - refusals leave the file untouched: a backup of another volume (UUID),
#   of the other LUKS version, a file that is no backup, a truncated
#   backup, a target smaller than the backup, a destroyed header without
#   --force; --force restores over a destroyed header.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires cryptsetup
[ "$VIMG_IS_QEMU" = 0 ] || skip "vimg-only command"

printf 'pw-one' >pw1
printf 'pw-two' >pw2
OBJS=(--object secret,id=s1,file=pw1 --object secret,id=s2,file=pw2)

lopts()
{
    echo "driver=luks,key-secret=$2,file.filename=$1"
}

# opens PW IMG [HDR]: cryptsetup accepts PW
opens()
{
    local h=()
    [ -n "${3:-}" ] && h=(--header "$3")
    cryptsetup open --test-passphrase "${h[@]}" --key-file "$1" "$2"
}

random_file data.bin 1

for ver in luks1 luks2; do
    extra=
    [ $ver = luks2 ] && extra=,encrypt.format=luks2,kdf=pbkdf2
    rm -f img img.other vimg.bak cs.bak
    expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
        -o "key-secret=s1,iter-count=1000$extra" img 1M
    expect_ok "$VIMG" convert -n "${OBJS[@]}" -f raw data.bin \
        --target-image-opts "$(lopts img s1)"

    # ---- backups: byte-identical to cryptsetup's ------------------------------
    expect_ok "$VIMG" luks header-backup img vimg.bak
    grep_last "Header backed up."
    cryptsetup luksHeaderBackup img --header-backup-file cs.bak ||
        fail "$ver: luksHeaderBackup"
    assert_same_file vimg.bak cs.bak "$ver: vimg and cryptsetup backups"
    assert_eq "$(stat -c %a vimg.bak)" 400 "$ver: backup mode"
    expect_error 1 "Requested header backup file 'vimg.bak' already exists" \
        "$VIMG" luks header-backup img vimg.bak
    echo "ok $ver: backup identical to cryptsetup's"

    # ---- vimg's backup, cryptsetup restores ------------------------------------
    expect_ok "$VIMG" amend "${OBJS[@]}" \
        -o state=active,new-secret=s2,iter-count=1000 --image-opts "$(lopts img s1)"
    opens pw2 img || fail "$ver: added key"
    cryptsetup luksHeaderRestore --batch-mode img --header-backup-file vimg.bak ||
        fail "$ver: cryptsetup restores vimg's backup"
    opens pw1 img || fail "$ver: old key after cryptsetup restore"
    if opens pw2 img 2>/dev/null; then
        fail "$ver: key added after the backup survived the restore"
    fi
    rm -f out.raw
    expect_ok "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts img s1)" -O raw out.raw
    assert_same_file out.raw data.bin "$ver: data after cryptsetup restore"
    echo "ok $ver: cryptsetup luksHeaderRestore of vimg's backup"

    # ---- cryptsetup's backup, vimg restores ------------------------------------
    expect_ok "$VIMG" amend "${OBJS[@]}" \
        -o state=active,new-secret=s2,iter-count=1000 --image-opts "$(lopts img s1)"
    expect_ok "$VIMG" luks header-restore img cs.bak
    grep_last "Header restored."
    opens pw1 img || fail "$ver: old key after vimg restore"
    if opens pw2 img 2>/dev/null; then
        fail "$ver: key added after the backup survived vimg's restore"
    fi
    cmp -n "$(stat -c %s cs.bak)" img cs.bak || fail "$ver: header area differs"
    rm -f out.raw
    expect_ok "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts img s1)" -O raw out.raw
    assert_same_file out.raw data.bin "$ver: data after vimg restore"
    echo "ok $ver: vimg header-restore of cryptsetup's backup"

    # ---- refusals: file untouched ------------------------------------------------
    expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
        -o "key-secret=s1,iter-count=1000$extra" img.other 1M
    rm -f other.bak
    cryptsetup luksHeaderBackup img.other --header-backup-file other.bak ||
        fail "$ver: backup of the other volume"
    before=$(sha img)
    expect_error 1 "does not match the volume's UUID" \
        "$VIMG" luks header-restore img other.bak
    expect_error 1 "'pw1' is not a LUKS header backup" \
        "$VIMG" luks header-restore img pw1
    head -c 8192 cs.bak >short.bak
    expect_stderr "'short.bak' is not a LUKS header backup" \
        "$VIMG" luks header-restore img short.bak
    truncate -s 4096 small.img
    expect_error 1 "'small.img' is smaller (4096 bytes) than the header backup" \
        "$VIMG" luks header-restore small.img cs.bak
    assert_eq "$(sha img)" "$before" "$ver: a refused restore changed the file"

    # a destroyed header: refused without --force, restored with it
    dd if=/dev/zero of=img bs=4096 count=1 conv=notrunc status=none
    [ $ver = luks2 ] && dd if=/dev/zero of=img bs=4096 seek=4 count=1 \
        conv=notrunc status=none
    expect_error 1 "has no readable LUKS header to check the backup against" \
        "$VIMG" luks header-restore img cs.bak
    expect_ok "$VIMG" luks header-restore --force img cs.bak
    opens pw1 img || fail "$ver: forced restore"
    rm -f out.raw
    expect_ok "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts img s1)" -O raw out.raw
    assert_same_file out.raw data.bin "$ver: data after forced restore"
    echo "ok $ver: refusals and --force"
done

# LUKS1 vs LUKS2 backup on the other version's volume
rm -f l1 l1.bak
expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" -o key-secret=s1,iter-count=1000 l1 16M
expect_error 1 "Header backup is LUKS2 but 'l1' holds LUKS1" \
    "$VIMG" luks header-restore l1 cs.bak

# ---- detached header ------------------------------------------------------------
rm -f hdr data hdr.bak hdr.cs
truncate -s 1M data
cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 \
    --key-file pw1 --header hdr data || fail "luksFormat --header"
expect_ok "$VIMG" luks header-backup hdr hdr.bak
cryptsetup luksHeaderBackup hdr --header-backup-file hdr.cs || fail "backup hdr"
assert_same_file hdr.bak hdr.cs "detached header backups"
cryptsetup luksAddKey --batch-mode --pbkdf-force-iterations 1000 \
    --key-file pw1 --header hdr data pw2 || fail "luksAddKey --header"
expect_ok "$VIMG" luks header-restore hdr hdr.cs
opens pw1 data hdr || fail "detached: old key after restore"
if opens pw2 data hdr 2>/dev/null; then
    fail "detached: added key survived the restore"
fi
echo "ok detached header backup/restore"
echo "PASS: $TEST_NAME"
