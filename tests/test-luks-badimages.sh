#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Damaged and unsupported LUKS images: vimg must refuse them with qemu-img
# 7.2's messages and exit code 1, never write an output file, and never
# modify the image.  Cases: wrong passphrase, header cut short, payload cut
# short, file ending exactly at the payload (size 0), bad magic, zeroed
# keyslot 0, corrupt keyslot state word, changed stripes, a LUKS2 volume,
# missing key-secret, unknown secret id.  Where qemu-img's exact text is
# known from the spec it is asserted; each case is also checked against
# qemu-img's own message on the same file when qemu-img is installed.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg

vimg_create_luks good.luks 1M
good_sha=$(sha good.luks)
WRONG="secret,id=s0,data=wrong-password"

# refuse NAME FILE TEXT [--info]: vimg convert (or info) of FILE must fail
# with rc 1 and TEXT on stderr, leave no out.raw, and not touch FILE.
# TEXT "" means "any message".  If qemu-img is present and QEMU_SAME=1,
# its message must contain TEXT too (keeps the expectations honest).
refuse()
{
    local name=$1 file=$2 text=$3 mode=${4:-convert} before
    before=$(sha "$file")
    rm -f out.raw
    if [ "$mode" = --info ]; then
        run_cmd "$VIMG" info -f luks "$file"
    else
        run_cmd "$VIMG" convert --object "$SECRET" \
            --image-opts "$(luks_opts "$file")" -O raw out.raw
    fi
    if [ "$LAST_RC" != 1 ]; then
        _show_last "$name"
        fail "$name: expected exit code 1, got $LAST_RC"
    fi
    [ -s "$LAST_ERR" ] || fail "$name: no error message"
    if [ -n "$text" ] && ! grep -qF -- "$text" "$LAST_ERR"; then
        _show_last "$name"
        fail "$name: stderr lacks '$text'"
    fi
    [ ! -e out.raw ] || fail "$name: out.raw was created"
    assert_eq "$(sha "$file")" "$before" "$name: image modified"
    echo "ok $name: $(head -1 "$LAST_ERR")"
    if [ -n "$text" ] && command -v qemu-img >/dev/null; then
        if [ "$mode" = --info ]; then
            run_cmd qemu-img info -f luks "$file"
        else
            run_cmd qemu-img convert --object "$SECRET" \
                --image-opts "$(luks_opts "$file")" -O raw out.raw
        fi
        grep -qF -- "$text" "$LAST_ERR" ||
            fail "$name: qemu-img says '$(cat "$LAST_ERR")', not '$text'"
        rm -f out.raw
    fi
}

# put FILE OFFSET HEXBYTES: overwrite bytes in place.
put()
{
    printf '%b' "$(echo "$3" | sed 's/\(..\)/\\x\1/g')" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ---- wrong passphrase -------------------------------------------------------
rm -f out.raw
expect_error 1 "Invalid password, cannot unlock any keyslot" \
    "$VIMG" convert --object "$WRONG" --image-opts "$(luks_opts good.luks)" \
    -O raw out.raw
[ ! -e out.raw ] || fail "wrong password: out.raw created"
expect_error 1 "Invalid password, cannot unlock any keyslot" \
    "$VIMG" convert --object "$WRONG" -n -f raw /dev/null \
    --target-image-opts "$(luks_opts good.luks)"
assert_eq "$(sha good.luks)" "$good_sha" "wrong password: image modified"
# info does not need the key at all (qemu: NO_IO open).
expect_ok "$VIMG" info --object "$WRONG" --image-opts "$(luks_opts good.luks)"
grep_last "file format: luks"
echo "ok wrong passphrase"

# ---- truncations ------------------------------------------------------------
payload=$("$VIMG" info --output=json good.luks |
              jq '."format-specific".data."payload-offset"')
assert_eq "$payload" 2068480 "payload offset of the default aes-256-xts"
head -c 300 good.luks >hdrcut.luks
# qemu reads past EOF as zeroes and then finds keyslot 1 broken.
refuse "header cut at 300 bytes" hdrcut.luks ""
head -c 100 good.luks >hdrcut2.luks
refuse "header cut at 100 bytes" hdrcut2.luks ""
head -c 1000000 good.luks >paycut.luks
refuse "key material/payload cut" paycut.luks ""
# A file that ends exactly at the payload is a valid, empty disk.
head -c "$payload" good.luks >empty.luks
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts empty.luks)" \
    -O raw empty.raw
assert_eq "$(stat -c %s empty.raw)" 0 "size of the empty disk"
echo "ok truncated images"

# ---- header corruption ------------------------------------------------------
cp good.luks magic.luks
put magic.luks 0 58585858
refuse "bad magic (-f luks)" magic.luks "Volume is not in LUKS format"
refuse "bad magic (info -f luks)" magic.luks "Volume is not in LUKS format" --info
# Without -f, a file without the magic is probed as raw.
expect_ok "$VIMG" info --output=json magic.luks
assert_eq "$(jq -r .format "$LAST_OUT")" raw "probe of a bad-magic file"

cp good.luks zslot.luks
dd if=/dev/zero of=zslot.luks bs=1 seek=208 count=48 conv=notrunc status=none
# All 48 bytes zero: the stripes check runs before the state check.
refuse "zeroed keyslot 0" zslot.luks "Keyslot 0 is corrupted (stripes 0 != 4000)"

cp good.luks state.luks
put state.luks 208 12345678
refuse "keyslot 0 state word" state.luks "Keyslot 0 state (active/disable) is corrupted"

cp good.luks stripes.luks
put stripes.luks $((208 + 44)) 00000f00
refuse "keyslot 0 stripes" stripes.luks "Keyslot 0 is corrupted (stripes 3840 != 4000)"
cp good.luks stripes3.luks
put stripes3.luks $((208 + 3 * 48 + 44)) 00000fa1
refuse "keyslot 3 stripes" stripes3.luks "Keyslot 3 is corrupted (stripes 4001 != 4000)"

cp good.luks version.luks
put version.luks 6 0003
refuse "version 3" version.luks "LUKS version 3 is not supported"

cp good.luks payload.luks
put payload.luks 104 00000004
refuse "payload inside header" payload.luks "LUKS payload is overlapping with the header"

cp good.luks mkiter.luks
put mkiter.luks 164 00000000
refuse "zero master key iterations" mkiter.luks "LUKS key iteration count is zero"

cp good.luks slotiter.luks
put slotiter.luks $((208 + 4)) 00000000
refuse "zero slot iterations" slotiter.luks "Keyslot 0 iteration count is zero"

cp good.luks nul.luks
put nul.luks 8 "$(printf '61%.0s' {1..32})"
refuse "cipher name without NUL" nul.luks "LUKS header cipher name is not NUL terminated"
echo "ok header corruption"

# ---- LUKS2 ------------------------------------------------------------------
# qemu-img 7.2 refuses LUKS2 with -f luks and probes it as raw; vimg reads it
# as luks (never as raw), so only the wrong-key path is a refusal here.
if command -v cryptsetup >/dev/null; then
    head -c 20M /dev/zero >luks2.img
    expect_ok cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --key-file "$PWFILE" luks2.img
    if [ "$VIMG_IS_QEMU" = 0 ]; then
        run_cmd "$VIMG" info luks2.img
        [ "$LAST_RC" = 0 ] && grep -q '^file format: luks$' "$LAST_OUT" ||
            fail "vimg info does not probe LUKS2 as luks: $(cat "$LAST_OUT" "$LAST_ERR")"
        before=$(sha luks2.img)
        printf 'wrong' >wrong.pw
        run_cmd "$VIMG" convert --object secret,id=s0,file=wrong.pw \
            --image-opts "$(luks_opts luks2.img)" -O raw l2.raw
        [ "$LAST_RC" = 1 ] && [ ! -e l2.raw ] &&
            grep -qF "Invalid password, cannot unlock any keyslot" "$LAST_ERR" ||
            fail "LUKS2 wrong key: rc $LAST_RC: $(cat "$LAST_ERR")"
        assert_eq "$(sha luks2.img)" "$before" "LUKS2 wrong key: image modified"
        expect_ok "$VIMG" convert --object "$SECRET" \
            --image-opts "$(luks_opts luks2.img)" -O raw l2.raw
        echo "ok LUKS2 opens as luks, wrong key refused"
    else
        refuse "LUKS2 (-f luks)" luks2.img "LUKS version 2 is not supported"
        echo "ok LUKS2 refused by qemu-img"
    fi
else
    echo "note: cryptsetup missing, LUKS2 case skipped"
fi

# ---- secrets ----------------------------------------------------------------
expect_error 1 "Parameter 'key-secret' is required for cipher" \
    "$VIMG" convert --image-opts "driver=luks,file.filename=good.luks" -O raw out.raw
[ ! -e out.raw ] || fail "missing key-secret: out.raw created"
expect_error 1 "Parameter 'key-secret' is required for cipher" \
    "$VIMG" convert -f luks good.luks -O raw out.raw
expect_error 1 "No secret with id 's9'" \
    "$VIMG" convert --object "$SECRET" \
    --image-opts "driver=luks,key-secret=s9,file.filename=good.luks" -O raw out.raw
[ ! -e out.raw ] || fail "unknown secret: out.raw created"
assert_eq "$(sha good.luks)" "$good_sha" "good.luks modified by the tests"
echo "ok secret errors"
exit 0
