#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# LUKS2 round trips with cryptsetup 2.6 on plain files (no root or
# device-mapper needed), through tests/luks2-helper (lib/blockcrypt/luks2.c)
# until the raw luks format creates LUKS2 itself:
# (1) vimg-made headers (pbkdf2 / argon2id / argon2i keyslots, 512 and
#     4096-byte sectors, xts-plain64 and cbc-essiv): cryptsetup isLuks,
#     luksDump (version 2, keyslot kdf), --dump-master-key gives vimg's key,
#     open --test-passphrase accepts the password, luksAddKey works and vimg
#     unlocks the new keyslot; a keyslot vimg adds opens in cryptsetup.
# (2) data: vimg writes a pattern, `cryptsetup reencrypt` (userspace)
#     decrypts it with vimg's key and re-encrypts it with a new one; vimg
#     must read the pattern back through the new key.  cryptsetup-made
#     images are covered by tests/unit/test-luks2.c (fixtures).

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires cryptsetup
requires python3
H=${LUKS2_HELPER:-$BUILDDIR/tests/luks2-helper}
[ -x "$H" ] || skip "luks2-helper not built"

cd "$TEST_TMP" || exit 1
printf 'pw-one' > pw1
printf 'pw-two' > pw2
printf 'pw-three' > pw3

mk_hex()
{
    cryptsetup luksDump --dump-master-key --batch-mode --key-file "$2" "$1" |
        awk '/^MK dump:/ { f = 1; sub(/^MK dump:/, ""); print; next }
             f && /^[ \t]/ { print; next } { f = 0 }' | tr -d ' \t\n'
}

pattern()
{
    python3 -c "
import sys
sys.stdout.buffer.write(bytes((x * 7 + (x >> 12)) & 0xff for x in range($1)))"
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

    key=$("$H" create "$img" pw-one "$kdf" "$ss" "$cipher" $size) ||
        fail "$what: create"
    cryptsetup isLuks --type luks2 "$img" || fail "$what: isLuks"
    dump=$(cryptsetup luksDump "$img") || fail "$what: luksDump"
    grep -q '^Version:[[:space:]]*2' <<<"$dump" || fail "$what: version"
    grep -q "PBKDF:[[:space:]]*$kdf" <<<"$dump" || fail "$what: kdf in dump"
    grep -q "sector: $ss \[bytes\]" <<<"$dump" || fail "$what: sector size"
    [ "$(mk_hex "$img" pw1)" = "$key" ] ||
        fail "$what: cryptsetup's master key differs from vimg's"
    cryptsetup open --test-passphrase --key-file pw1 "$img" ||
        fail "$what: cryptsetup rejects the password"
    if cryptsetup open --test-passphrase --key-file pw2 "$img" 2>/dev/null; then
        fail "$what: cryptsetup accepts a wrong password"
    fi

    # cryptsetup adds a keyslot; vimg unlocks it.
    cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --key-file pw1 "$img" pw2 ||
        fail "$what: luksAddKey"
    out=$("$H" key "$img" pw-two) || fail "$what: vimg unlock of cryptsetup's keyslot"
    [ "$out" = "1 $key" ] || fail "$what: keyslot 1 key: $out"
    # vimg adds a keyslot; cryptsetup opens it.
    out=$("$H" addkey "$img" pw-one pw-three) || fail "$what: vimg addkey"
    [ "$out" = 2 ] || fail "$what: addkey slot $out"
    cryptsetup open --test-passphrase --key-slot 2 --key-file pw3 "$img" ||
        fail "$what: cryptsetup rejects vimg's keyslot 2"
    cryptsetup luksDump "$img" | grep -q '^  2: luks2' ||
        fail "$what: keyslot 2 not in luksDump"
    expect_rc=0
    "$H" key "$img" wrong >/dev/null 2>&1 || expect_rc=$?
    [ "$expect_rc" = 2 ] || fail "$what: wrong password exit $expect_rc (want 2, EPERM)"

    # Data through cryptsetup's own cipher code.
    pattern $size > plain
    "$H" write "$img" pw-one < plain || fail "$what: write"
    "$H" read "$img" pw-one | cmp - plain || fail "$what: vimg read back"
    cryptsetup reencrypt --batch-mode --force-offline-reencrypt \
        --key-file pw1 --key-slot 0 \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$img" >/dev/null ||
        fail "$what: cryptsetup reencrypt"
    newkey=$(mk_hex "$img" pw1)
    [ -n "$newkey" ] && [ "$newkey" != "$key" ] || fail "$what: key not changed"
    out=$("$H" key "$img" pw-one) || fail "$what: unlock after reencrypt"
    [ "${out#* }" = "$newkey" ] || fail "$what: vimg key after reencrypt"
    "$H" read "$img" pw-one | cmp - plain ||
        fail "$what: data re-encrypted by cryptsetup differs"
    echo "ok: $what"
done
echo "PASS: $TEST_NAME"
