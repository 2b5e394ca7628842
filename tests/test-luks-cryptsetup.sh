#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# cryptsetup <-> vimg.  (1) cryptsetup luksFormat --type luks1 makes
# volumes in regular files (no root or device-mapper needed) with several
# ciphers and key sizes; an independent writer puts known plaintext into
# them (qemu-io, or openssl per sector for the 24-byte key that qemu
# cannot handle) and vimg must read exactly that back.  (2) vimg-made
# images must satisfy cryptsetup isLuks, luksDump (fields, UUID) and
# luksDump --dump-master-key, and the nbdkit luks filter must read the data
# vimg wrote.  The kernel here only offers AES to cryptsetup; formats
# cryptsetup cannot make ("Cannot initialize device-mapper") are reported
# and skipped, not failed.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires cryptsetup
requires qemu-io
requires openssl

# mk_hex FILE: the master key as hex, from cryptsetup --dump-master-key.
mk_hex()
{
    cryptsetup luksDump --dump-master-key --batch-mode --key-file "$PWFILE" \
        "$1" | awk '/^MK dump:/ { f = 1; sub(/^MK dump:/, ""); print; next }
                    f && /^[ \t]/ { print; next } { f = 0 }' | tr -d ' \t\n'
}

# field FILE NAME: a luksDump field value ("Payload offset" ...).
field()
{
    cryptsetup luksDump "$1" | sed -n "s/^$2:[[:space:]]*//p"
}

formatted=0
unavailable=()

# ---- (1) cryptsetup-made volumes read by vimg -----------------------------
for spec in "aes-xts-plain64 256 sha256" "aes-xts-plain64 512 sha512" \
            "aes-cbc-essiv:sha256 256 sha1" "serpent-xts-plain64 512 sha256" \
            "twofish-cbc-plain 256 sha256" "aes-cbc-plain64 192 sha256" \
            "aes-ctr-plain 128 ripemd160"; do
    set -- $spec
    cipher=$1 keysize=$2 hash=$3
    rm -f cs.img
    head -c 6M /dev/zero >cs.img
    run_cmd cryptsetup luksFormat --type luks1 --batch-mode \
        --pbkdf-force-iterations 1000 --cipher "$cipher" --key-size "$keysize" \
        --hash "$hash" --key-file "$PWFILE" cs.img
    if [ "$LAST_RC" != 0 ]; then
        if grep -q 'device-mapper\|dm-crypt key mapping' "$LAST_ERR"; then
            echo "note: cryptsetup cannot format $cipher here (no kernel cipher, no dm)"
            unavailable+=("$cipher")
            continue
        fi
        _show_last cryptsetup luksFormat
        fail "cryptsetup luksFormat $spec"
    fi
    formatted=$((formatted + 1))
    payload=$(field cs.img 'Payload offset')
    vsize=$((6 * 1048576 - payload * 512))

    # vimg agrees on the geometry.
    expect_ok "$VIMG" info --output=json cs.img
    assert_eq "$(jq -r '."virtual-size"' "$LAST_OUT")" "$vsize" "virtual size of $spec"
    assert_eq "$(jq -r '.format' "$LAST_OUT")" luks "probed format of $spec"
    assert_eq "$(jq -r '."format-specific".data.uuid' "$LAST_OUT")" \
        "$(cryptsetup luksUUID cs.img)" "uuid of $spec"

    if [ "$keysize" = 192 ] && [ "$VIMG_IS_QEMU" = 1 ]; then
        echo "note: $spec not readable by qemu-img 7.2 (aborts), skipped"
        continue
    elif [ "$keysize" = 192 ]; then
        # qemu aborts on 24-byte keys and nbdkit cannot unlock them, so
        # encrypt 16 sectors with openssl (cbc, IV = LE64(sector) || 0^8).
        mk=$(mk_hex cs.img)
        assert_eq "${#mk}" 48 "master key length of $spec"
        head -c 8192 /dev/urandom >plain.bin
        for ((s = 0; s < 16; s++)); do
            iv=$(printf '%02x%030x' "$s" 0)
            dd if=plain.bin bs=512 skip="$s" count=1 status=none |
                openssl enc -aes-192-cbc -nopad -K "$mk" -iv "$iv" |
                dd of=cs.img bs=512 seek=$((payload + s)) conv=notrunc status=none
        done
        expect_ok "$VIMG" convert --object "$SECRET" \
            --image-opts "$(luks_opts cs.img)" -O raw out.raw
        head -c 8192 out.raw >out.head
        assert_same_file out.head plain.bin "openssl-written $spec"
        echo "ok cryptsetup $spec, written by openssl, read by vimg"
        continue
    fi

    # qemu-io writes a pattern over the whole disk plus an odd stripe.
    expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts cs.img)" \
        -c "write -P 0x3c 0 $vsize" -c 'write -P 0xc3 65536 4096'
    pattern_file want.raw 0x3c "$vsize"
    pattern_file stripe.raw 0xc3 4096
    dd if=stripe.raw of=want.raw bs=4096 seek=16 conv=notrunc status=none
    expect_ok "$VIMG" convert --object "$SECRET" \
        --image-opts "$(luks_opts cs.img)" -O raw out.raw
    assert_same_file out.raw want.raw "qemu-io-written $spec"

    # And the other way: vimg writes, qemu-io verifies the pattern.
    pattern_file new.raw 0x96 "$vsize"
    expect_ok "$VIMG" convert --object "$SECRET" -n -f raw new.raw \
        --target-image-opts "$(luks_opts cs.img)"
    expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts cs.img)" \
        -c "read -P 0x96 0 $vsize"
    grep_last "read $vsize/$vsize bytes"
    # The header (and keyslot) is still cryptsetup's: unchanged and usable.
    expect_ok cryptsetup luksDump --dump-master-key --batch-mode \
        --key-file "$PWFILE" cs.img
    echo "ok cryptsetup $spec <-> vimg (qemu-io writer and checker)"
done
[ "$formatted" -ge 4 ] || fail "only $formatted cryptsetup volumes could be made"

# cryptsetup's "aes-ecb" writes the mode "ecb" without an IV generator,
# which QEMU 7.2 refuses; vimg must refuse it the same way.
head -c 6M /dev/zero >ecb.img
expect_ok cryptsetup luksFormat --type luks1 --batch-mode \
    --pbkdf-force-iterations 1000 --cipher aes-ecb --key-size 128 \
    --key-file "$PWFILE" ecb.img
assert_eq "$(field ecb.img 'Cipher mode')" ecb "cryptsetup aes-ecb mode string"
expect_error 1 "Unexpected cipher mode string format 'ecb'" \
    "$VIMG" info ecb.img
expect_error 1 "Unexpected cipher mode string format 'ecb'" \
    "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts ecb.img)" \
    -O raw ecb.raw
[ ! -e ecb.raw ] || fail "a failed convert left ecb.raw behind"
echo "ok cryptsetup aes-ecb (mode 'ecb') refused like qemu-img"
[ ${#unavailable[@]} = 0 ] ||
    echo "note: not testable with this kernel: ${unavailable[*]}"

# ---- (2) vimg-made volumes checked by cryptsetup and nbdkit ---------------
random_file data.raw 2
for spec in ":aes:xts-plain64:sha256:512" \
            "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha1:aes:cbc-essiv\:sha256:sha1:128" \
            "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=plain64,hash-alg=sha512:aes:cbc-plain64:sha512:256" \
            "cipher-alg=serpent-256,cipher-mode=xts,hash-alg=sha256:serpent:xts-plain64:sha256:512" \
            "cipher-alg=twofish-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha256:twofish:cbc-plain:sha256:128"; do
    IFS=: read -r opts family mode hash bits <<<"${spec//\\:/%}"
    mode=${mode//%/:}
    rm -f v.luks
    vimg_create_luks v.luks 2M "$opts"
    expect_ok "$VIMG" convert --object "$SECRET" -n -f raw data.raw \
        --target-image-opts "$(luks_opts v.luks)"

    expect_ok cryptsetup isLuks v.luks
    expect_ok cryptsetup luksDump v.luks
    grep -qP "^Version:\s+1$" "$LAST_OUT" || fail "$spec: version"
    grep -qP "^Cipher name:\s+$family$" "$LAST_OUT" || fail "$spec: cipher"
    grep -qP "^Cipher mode:\s+\Q$mode\E$" "$LAST_OUT" || fail "$spec: mode"
    grep -qP "^Hash spec:\s+$hash$" "$LAST_OUT" || fail "$spec: hash"
    grep -qP "^MK bits:\s+$bits$" "$LAST_OUT" || fail "$spec: MK bits"
    grep -qP "^Key Slot 0: ENABLED$" "$LAST_OUT" || fail "$spec: slot 0"
    [ "$(grep -c ': DISABLED$' "$LAST_OUT")" = 7 ] || fail "$spec: slots 1-7"
    uuid=$(cryptsetup luksUUID v.luks)
    [[ $uuid =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
        fail "$spec: UUID '$uuid' is not a random v4 UUID"

    if [ "$family" = aes ]; then
        expect_ok cryptsetup luksDump --dump-master-key --batch-mode \
            --key-file "$PWFILE" v.luks
        grep_last "MK bits:"
        mk=$(mk_hex v.luks)
        assert_eq "${#mk}" $((bits / 4)) "$spec: dumped master key length"
        # A wrong key file does not unlock it.
        printf 'not-the-password' >wrong.key
        run_cmd cryptsetup luksDump --dump-master-key --batch-mode \
            --key-file wrong.key v.luks
        [ "$LAST_RC" != 0 ] || fail "$spec: cryptsetup unlocked with a wrong key"
    fi

    # nbdkit's luks filter (plain/plain64 ivgens only) reads vimg's data.
    if [[ $family = aes && $mode != *essiv* ]] && command -v nbdkit >/dev/null &&
           command -v nbdcopy >/dev/null; then
        rm -f nbd.raw
        run_cmd timeout 120 nbdkit -U - file v.luks --filter=luks \
            passphrase=+"$PWFILE" --run 'nbdcopy "$uri" nbd.raw'
        [ "$LAST_RC" = 0 ] || { _show_last nbdkit; fail "$spec: nbdkit read"; }
        assert_same_file nbd.raw data.raw "$spec: read by nbdkit luks filter"
        echo "ok vimg $spec read by nbdkit"
    fi
    echo "ok vimg $spec accepted by cryptsetup"
done
exit 0
