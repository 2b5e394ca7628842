#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# LUKS2 through the raw luks format (`vimg create -f luks -o
# encrypt.format=luks2`), against cryptsetup 2.6 on plain files (no root or
# device-mapper needed):
# (1) vimg-made volumes (pbkdf2 / argon2id / argon2i keyslots, 512 and
#     4096-byte sectors, xts-plain64 and cbc-essiv): cryptsetup isLuks,
#     luksDump (version 2, kdf, sector size, label), --dump-master-key and
#     open --test-passphrase accept the password and refuse a wrong one;
#     cryptsetup luksAddKey adds a keyslot that vimg opens; `vimg amend`
#     adds one that cryptsetup opens; `info` lists the keyslots (human and
#     JSON); vimg erases cryptsetup's keyslot by password, cryptsetup
#     luksKillSlot erases vimg's; the last keyslot is refused without
#     --force (file untouched) and erased with it; a wrong password fails
#     with EPERM's message; kill -9 at every write/flush of an add and of
#     an erase leaves a volume cryptsetup opens with the old password.
# (2) data: vimg writes a pattern (convert) plus an unaligned patch (io,
#     read-modify-write inside a 4096-byte sector), `cryptsetup reencrypt`
#     (userspace) decrypts it with vimg's key and re-encrypts it with a new
#     one; vimg must read the same bytes back through the new key.
# (3) cryptsetup-made volumes (`cryptsetup reencrypt --encrypt` of a file
#     with known plaintext): probed as luks, `vimg info` describes them,
#     `vimg convert` reads the plaintext back.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires cryptsetup
requires python3

cd "$TEST_TMP" || exit 1
printf 'pw-one' > pw1
printf 'pw-two' > pw2
printf 'pw-three' > pw3
printf 'wrong' > pwx
OBJS=(--object secret,id=s1,file=pw1 --object secret,id=s2,file=pw2
      --object secret,id=s3,file=pw3 --object secret,id=sx,file=pwx)

lopts()
{
    echo "driver=luks,key-secret=$2,file.filename=$1"
}

pattern()
{
    python3 -c "
import sys
sys.stdout.buffer.write(bytes((x * 7 + (x >> 12)) & 0xff for x in range($1)))"
}

# patch FILE OFF LEN BYTE: overwrite LEN bytes at OFF with BYTE.
patch()
{
    python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2]))
f.write(bytes([int(sys.argv[4], 0)]) * int(sys.argv[3]))" "$@"
}

# vimg_read IMG SECRET OUT: the whole volume as raw through vimg.
vimg_read()
{
    rm -f "$3"
    expect_ok "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts "$1" "$2")" \
        -O raw "$3"
}

n=0
for combo in "pbkdf2 512 xts" "argon2id 4096 xts" "argon2i 512 cbc-essiv" \
             "pbkdf2 4096 cbc-essiv"; do
    set -- $combo
    kdf=$1 ss=$2 cipher=$3
    img=img$n.luks2
    n=$((n + 1))
    what="$kdf/$ss/$cipher"
    size=$((256 * 1024))

    o="key-secret=s1,encrypt.format=luks2,kdf=$kdf,sector-size=$ss,label=t$n"
    if [ "$kdf" = pbkdf2 ]; then
        o+=",iter-count=1000"
    else
        o+=",iter-count=4,memory=1024,parallel=1"
    fi
    if [ "$cipher" = cbc-essiv ]; then
        o+=",cipher-mode=cbc,ivgen-alg=essiv"
    fi
    expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" -o "$o" "$img" $size
    cryptsetup isLuks --type luks2 "$img" || fail "$what: isLuks"
    dump=$(cryptsetup luksDump "$img") || fail "$what: luksDump"
    grep -q '^Version:[[:space:]]*2' <<<"$dump" || fail "$what: version"
    grep -q "PBKDF:[[:space:]]*$kdf" <<<"$dump" || fail "$what: kdf in dump"
    grep -q "sector: $ss \[bytes\]" <<<"$dump" || fail "$what: sector size"
    grep -q "^Label:[[:space:]]*t$n\$" <<<"$dump" || fail "$what: label"
    if [ "$cipher" = cbc-essiv ]; then
        grep -q 'cipher: aes-cbc-essiv:sha256' <<<"$dump" ||
            fail "$what: cipher in dump"
    fi
    cryptsetup luksDump --dump-master-key --batch-mode --key-file pw1 "$img" |
        grep -q '^MK dump:' || fail "$what: --dump-master-key"
    cryptsetup open --test-passphrase --key-file pw1 "$img" ||
        fail "$what: cryptsetup rejects the password"
    if cryptsetup open --test-passphrase --key-file pw2 "$img" 2>/dev/null; then
        fail "$what: cryptsetup accepts a wrong password"
    fi

    # vimg's view: probed as luks, virtual size, LUKS2 info.
    expect_ok "$VIMG" info --output=json "$img"
    grep -q '"format": "luks"' "$LAST_OUT" || fail "$what: probe"
    grep -q "\"virtual-size\": $size" "$LAST_OUT" || fail "$what: size"
    grep -q '"format": "luks2"' "$LAST_OUT" || fail "$what: info data"
    grep -q "\"sector-size\": $ss" "$LAST_OUT" || fail "$what: info sector"

    # Wrong password: EPERM's message, exit 1.
    expect_error 1 "Invalid password, cannot unlock any keyslot" \
        "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts "$img" sx)" \
        -O raw bad.raw

    # Data: a pattern and an unaligned patch (read-modify-write).
    pattern $size > plain
    expect_ok "$VIMG" convert "${OBJS[@]}" -n -f raw plain \
        --target-image-opts "$(lopts "$img" s1)"
    expect_ok "$VIMG" io "${OBJS[@]}" --image-opts "$(lopts "$img" s1)" \
        -c 'write -P 0x5a 5000 300'
    patch plain 5000 300 0x5a
    vimg_read "$img" s1 out.raw
    assert_same_file out.raw plain "$what: vimg read back"

    # cryptsetup adds a keyslot; vimg reads through it.
    cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --key-file pw1 "$img" pw2 ||
        fail "$what: luksAddKey"
    vimg_read "$img" s2 out.raw
    assert_same_file out.raw plain "$what: read via cryptsetup's keyslot 1"
    # vimg adds a keyslot; cryptsetup opens it.
    expect_ok "$VIMG" amend "${OBJS[@]}" \
        -o state=active,new-secret=s3,iter-count=1000 \
        --image-opts "$(lopts "$img" s1)"
    cryptsetup open --test-passphrase --key-slot 2 --key-file pw3 "$img" ||
        fail "$what: cryptsetup rejects vimg's keyslot 2"
    cryptsetup luksDump "$img" | grep '^  2: luks2' >/dev/null ||
        fail "$what: keyslot 2 not in luksDump"
    # info lists the three keyslots (id, kdf iterations, stripes, offsets).
    expect_ok "$VIMG" info --output=json "$img"
    python3 - "$LAST_OUT" <<'PY' || fail "$what: info keyslots"
import json, sys
d = json.load(open(sys.argv[1]))["format-specific"]["data"]
ks = {k["id"]: k for k in d["keyslots"]}
assert sorted(ks) == [0, 1, 2], ks
for k in ks.values():
    assert k["af-stripes"] == 4000 and k["area-offset"] >= 32768, k
    assert k["area-size"] > 0 and k["kdf"]["type"], k
assert ks[2]["kdf"] == {"type": "pbkdf2", "hash": "sha256",
                        "iterations": 1000}, ks[2]
PY
    expect_ok "$VIMG" info "$img"
    grep -q '^            af stripes: 4000$' "$LAST_OUT" &&
        grep -q '^            area offset: ' "$LAST_OUT" ||
        fail "$what: human info lacks keyslot details"
    # vimg erases cryptsetup's keyslot 1 by its password.
    expect_ok "$VIMG" amend "${OBJS[@]}" -o state=inactive,old-secret=s2 \
        --image-opts "$(lopts "$img" s1)"
    cryptsetup luksDump "$img" | grep '^  1: luks2' >/dev/null &&
        fail "$what: keyslot 1 still in luksDump after vimg erased it"
    if cryptsetup open --test-passphrase --key-file pw2 "$img" 2>/dev/null; then
        fail "$what: cryptsetup still accepts the erased password"
    fi
    cryptsetup open --test-passphrase --key-file pw1 "$img" ||
        fail "$what: cryptsetup lost keyslot 0 after vimg's erase"
    # cryptsetup kills vimg's keyslot 2; vimg no longer opens with it.
    cryptsetup luksKillSlot --batch-mode "$img" 2 || fail "$what: luksKillSlot"
    expect_error 1 "Invalid password, cannot unlock any keyslot" \
        "$VIMG" convert "${OBJS[@]}" --image-opts "$(lopts "$img" s3)" \
        -O raw bad.raw
    # The last keyslot is refused without --force, the file untouched.
    before=$(sha "$img")
    expect_error 1 "Attempt to erase the only active keyslot 0 which will" \
        "$VIMG" amend "${OBJS[@]}" -o state=inactive,keyslot=0 \
        --image-opts "$(lopts "$img" s1)"
    expect_error 1 "All the active keyslots match the (old) password" \
        "$VIMG" amend "${OBJS[@]}" -o state=inactive,old-secret=s1 \
        --image-opts "$(lopts "$img" s1)"
    expect_error 1 "Given keyslot 5 is already erased (inactive)" \
        "$VIMG" amend "${OBJS[@]}" -o state=inactive,keyslot=5 \
        --image-opts "$(lopts "$img" s1)"
    expect_error 1 "Invalid keyslot 32 specified, must be between 0 and 31" \
        "$VIMG" amend "${OBJS[@]}" -o state=inactive,keyslot=32 \
        --image-opts "$(lopts "$img" s1)"
    expect_error 1 "No keyslots match given (old) password" \
        "$VIMG" amend "${OBJS[@]}" -o state=inactive,old-secret=sx \
        --image-opts "$(lopts "$img" s1)"
    assert_eq "$(sha "$img")" "$before" "$what: refused erase changed the file"

    # cryptsetup re-encrypts vimg's data with a new volume key.
    key=$(cryptsetup luksDump --dump-master-key --batch-mode --key-file pw1 \
          "$img" | grep -A3 '^MK dump:')
    cryptsetup reencrypt --batch-mode --force-offline-reencrypt \
        --key-file pw1 --key-slot 0 \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$img" >/dev/null ||
        fail "$what: cryptsetup reencrypt"
    newkey=$(cryptsetup luksDump --dump-master-key --batch-mode \
             --key-file pw1 "$img" | grep -A3 '^MK dump:')
    [ -n "$newkey" ] && [ "$newkey" != "$key" ] || fail "$what: key not changed"
    vimg_read "$img" s1 out.raw
    assert_same_file out.raw plain "$what: data re-encrypted by cryptsetup"
    echo "ok: $what"
done

# ---- erase with --force, and crashes during add and erase -------------------
img=crash.luks2
expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
    -o key-secret=s1,encrypt.format=luks2,kdf=pbkdf2,iter-count=1000 force.luks2 64k
expect_ok "$VIMG" amend --force "${OBJS[@]}" -o state=inactive,keyslot=0 \
    --image-opts "$(lopts force.luks2 s1)"
cryptsetup isLuks --type luks2 force.luks2 || fail "forced erase: not LUKS2"
cryptsetup luksDump force.luks2 | grep '^  0: luks2' >/dev/null &&
    fail "forced erase: keyslot 0 still listed"
if cryptsetup open --test-passphrase --key-file pw1 force.luks2 2>/dev/null; then
    fail "forced erase: cryptsetup still opens"
fi
echo "ok: --force erases the last keyslot"

# crash_loop OLD NEW ARGS...: kill vimg amend ARGS (on a copy of base.luks2)
# at every counted write and flush; cryptsetup must then open the volume
# with OLD, and NEW must work or be refused cleanly (NEW=- : must not work).
expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
    -o key-secret=s1,encrypt.format=luks2,kdf=pbkdf2,iter-count=1000 base.luks2 64k
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file pw1 base.luks2 pw2 || fail "luksAddKey on base"
crash_loop()
{
    local old=$1 new=$2 total n
    shift 2
    cp base.luks2 "$img"
    rm -f count.txt
    VIMG_FAILPOINT_COUNT=$TEST_TMP/count.txt run_cmd "$VIMG" amend "$@"
    [ "$LAST_RC" = 0 ] || { _show_last; fail "crash_loop: plain run failed"; }
    total=$(awk '$1 == "any" { print $2 }' count.txt)
    [ "${total:-0}" -ge 3 ] || fail "crash_loop: only ${total:-0} counted calls"
    for ((n = 1; n <= total; n++)); do
        cp base.luks2 "$img"
        { VIMG_FAILPOINT=any:$n:crash run_cmd "$VIMG" amend "$@"; } 2>/dev/null
        [ "$LAST_RC" = 137 ] || fail "crash_loop: any:$n:crash exited $LAST_RC"
        cryptsetup open --test-passphrase --key-file "$old" "$img" ||
            fail "crash at any:$n: cryptsetup refuses the old password ($*)"
        expect_ok "$VIMG" info "$img"
        if [ "$new" = - ]; then
            continue
        fi
        run_cmd cryptsetup open --test-passphrase --key-file "$new" "$img"
        [ "$LAST_RC" = 0 ] || [ "$LAST_RC" = 2 ] ||
            { _show_last; fail "crash at any:$n: new password breaks the volume"; }
    done
    echo "ok: kill -9 at each of $total writes/flushes: $*"
}
crash_loop pw1 pw3 "${OBJS[@]}" -o state=active,new-secret=s3,iter-count=1000 \
    --image-opts "$(lopts "$img" s1)"
crash_loop pw1 - "${OBJS[@]}" -o state=inactive,old-secret=s2 \
    --image-opts "$(lopts "$img" s1)"

# ---- cryptsetup-made volumes -------------------------------------------------
n=0
for combo in "argon2id 4096 aes-xts-plain64" "pbkdf2 512 aes-cbc-essiv:sha256" \
             "argon2i 2048 aes-cbc-plain64"; do
    set -- $combo
    kdf=$1 ss=$2 cipher=$3
    img=cs$n.luks2
    n=$((n + 1))
    what="cryptsetup $kdf/$ss/$cipher"
    pattern $((1024 * 1024)) > plain
    cp plain "$img"
    truncate -s $((33 * 1024 * 1024)) "$img"
    if [ "$kdf" = pbkdf2 ]; then
        kopt=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
    else
        kopt=(--pbkdf "$kdf" --pbkdf-force-iterations 4 --pbkdf-memory 1024
              --pbkdf-parallel 1)
    fi
    cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M \
        --batch-mode "${kopt[@]}" --sector-size "$ss" --cipher "$cipher" \
        --key-size 256 --key-file pw1 "$img" >/dev/null ||
        fail "$what: cryptsetup reencrypt --encrypt"

    expect_ok "$VIMG" info "$img"
    grep -q '^file format: luks$' "$LAST_OUT" || fail "$what: not probed as luks"
    grep -q '^    version: 2$' "$LAST_OUT" || fail "$what: info version"
    # 33 MiB - 32 MiB reduction: 1 MiB of data plus 16 MiB of the former
    # header area behind it (dynamic segment: to the end of the file).
    grep -q '^virtual size: 17 MiB (17825792 bytes)$' "$LAST_OUT" ||
        fail "$what: virtual size"
    vimg_read "$img" s1 out.raw
    head -c $((1024 * 1024)) out.raw | cmp - plain ||
        fail "$what: vimg reads other data than cryptsetup encrypted"
    # And vimg writes what cryptsetup reads: re-encrypt, read again.
    expect_ok "$VIMG" io "${OBJS[@]}" --image-opts "$(lopts "$img" s1)" \
        -c 'write -P 0xc3 4096 8192'
    patch plain 4096 8192 0xc3
    cryptsetup reencrypt --batch-mode --force-offline-reencrypt \
        --key-file pw1 "${kopt[@]}" "$img" >/dev/null ||
        fail "$what: cryptsetup reencrypt"
    vimg_read "$img" s1 out.raw
    head -c $((1024 * 1024)) out.raw | cmp - plain ||
        fail "$what: data after cryptsetup reencrypt"
    echo "ok: $what"
done
echo "PASS: $TEST_NAME"
