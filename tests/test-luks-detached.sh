#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Raw LUKS with a detached header (header in one file, data in another),
# LUKS1 and LUKS2, against cryptsetup 2.6 and an independent decryption
# (XTS in python over openssl's AES-256-ECB, with the volume key
# cryptsetup dumps):
# - vimg create -o header=HDR DATA SIZE and -o detached-header=on HDR
#   (qemu 9's spelling, header only): cryptsetup isLuks / luksDump
#   --header see payload offset 0 and open --test-passphrase --header
#   accepts the password.
# - vimg writes through --image-opts driver=luks,file.filename=DATA,
#   header.file.filename=HDR (qemu 9's option names); openssl decrypts DATA
#   with cryptsetup's dumped key and finds the plaintext.
# - cryptsetup luksFormat --header: vimg info shows the volume, openssl
#   encrypts a pattern into DATA with the dumped key, vimg reads it back
#   and writes a patch that openssl decrypts.
# - amend on a detached header: vimg adds a key, cryptsetup opens with it.
# - errors: missing header file, header given for a volume that is not
#   LUKS; a detached header alone is refused by plain open as qemu 7.2 does.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires cryptsetup
requires openssl
requires python3
[ "$VIMG_IS_QEMU" = 0 ] || skip "qemu-img 7.2 has no detached LUKS headers"

printf 'pw-one' >pw1
printf 'pw-two' >pw2
OBJS=(--object secret,id=s1,file=pw1 --object secret,id=s2,file=pw2)
SECTORS=32
SIZE=$((SECTORS * 512))

dopts()
{
    echo "driver=luks,file.filename=$1,header.file.filename=$2,key-secret=${3:-s1}"
}

# xts MODE KEYFILE IN OUT: aes-xts-plain64 over IN's first $SECTORS
# 512-byte sectors (MODE -e or -d).  The AES block operations are openssl's
# (aes-256-ecb); the XTS tweak chaining (IEEE 1619) is done here in python,
# so vimg's own code is not used at all.
xts()
{
    python3 - "$@" "$SECTORS" <<'PY' || fail "xts $1 failed"
import subprocess, sys
mode, keyf, inf, outf, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
key = open(keyf, 'rb').read()
k1, k2 = key[:len(key) // 2].hex(), key[len(key) // 2:].hex()

def ecb(flag, k, data):
    return subprocess.run(['openssl', 'enc', flag, '-aes-256-ecb', '-K', k,
                           '-nopad'], input=data, capture_output=True,
                          check=True).stdout

def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))

data = open(inf, 'rb').read()
out = bytearray()
for s in range(n):
    t = int.from_bytes(ecb('-e', k2, s.to_bytes(16, 'little')), 'little')
    tweaks = []
    for _ in range(32):
        tweaks.append(t.to_bytes(16, 'little'))
        t <<= 1
        if t >> 128:
            t = (t & ((1 << 128) - 1)) ^ 0x87
    ts = b''.join(tweaks)
    sect = data[s * 512:(s + 1) * 512]
    out += xor(ecb(mode, k1, xor(sect, ts)), ts)
open(outf, 'wb').write(out)
PY
}

# dump_key HDR DATA OUT PWFILE: cryptsetup's volume key, binary.
dump_key()
{
    rm -f "$3"
    cryptsetup luksDump --dump-volume-key --volume-key-file "$3" --batch-mode \
        --key-file "$4" --header "$1" "$2" >/dev/null ||
        fail "cryptsetup --dump-volume-key --header $1"
}

pattern_file pat.bin 0x3c $SIZE

for ver in luks1 luks2; do
    extra=
    [ $ver = luks2 ] && extra=,encrypt.format=luks2,kdf=pbkdf2
    # ---- vimg-made: header=HDR ----------------------------------------------
    rm -f hdr data
    expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
        -o "key-secret=s1,iter-count=1000,header=hdr$extra" data $SIZE
    [ "$(stat -c %s data)" = $SIZE ] || fail "$ver: data file size"
    cryptsetup isLuks --header hdr data || fail "$ver: isLuks --header"
    cryptsetup isLuks --type $ver hdr || fail "$ver: header is not $ver"
    dump=$(cryptsetup luksDump --header hdr data) || fail "$ver: luksDump"
    if [ $ver = luks1 ]; then
        grep -q '^Payload offset:[[:space:]]*0$' <<<"$dump" ||
            fail "$ver: payload offset not 0"
    else
        grep -q '^[[:space:]]*offset: 0 \[bytes\]' <<<"$dump" ||
            fail "$ver: segment offset not 0"
    fi
    cryptsetup open --test-passphrase --header hdr --key-file pw1 data ||
        fail "$ver: cryptsetup rejects vimg's detached header"
    expect_ok "$VIMG" info --output=json --image-opts \
        "driver=luks,file.filename=data,header.file.filename=hdr"
    grep -q '"detached-header": "hdr"' "$LAST_OUT" || fail "$ver: info"
    grep -q "\"virtual-size\": $SIZE" "$LAST_OUT" || fail "$ver: info size"
    expect_ok "$VIMG" convert -n "${OBJS[@]}" -f raw pat.bin \
        --target-image-opts "$(dopts data hdr)"
    dump_key hdr data vk.bin pw1
    xts -d vk.bin data plain.out
    assert_same_file plain.out pat.bin "$ver: openssl decryption of vimg's data"
    # amend: a second key in the detached header
    expect_ok "$VIMG" amend "${OBJS[@]}" -o state=active,new-secret=s2,iter-count=1000 \
        --image-opts "$(dopts data hdr)"
    cryptsetup open --test-passphrase --header hdr --key-file pw2 data ||
        fail "$ver: cryptsetup rejects vimg's added key"
    echo "ok $ver: vimg header=HDR, cryptsetup and openssl agree"

    # ---- qemu 9 spelling: detached-header=on makes a header-only file ------
    rm -f honly
    expect_ok "$VIMG" create -q -f luks "${OBJS[@]}" \
        -o "key-secret=s1,iter-count=1000,detached-header=on$extra" honly $SIZE
    cryptsetup isLuks --type $ver honly || fail "$ver: header-only isLuks"
    truncate -s $SIZE data2
    cryptsetup open --test-passphrase --header honly --key-file pw1 data2 ||
        fail "$ver: cryptsetup rejects the header-only file"
    # qemu 7.2 refuses a header whose payload overlaps it; so does plain open
    expect_rc 1 "$VIMG" info honly
    echo "ok $ver: detached-header=on"

    # ---- cryptsetup-made: luksFormat --header --------------------------------
    rm -f chdr cdata
    truncate -s $SIZE cdata
    ss=()
    [ $ver = luks2 ] && ss=(--sector-size 512)
    cryptsetup luksFormat -q --type $ver "${ss[@]}" --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --cipher aes-xts-plain64 --key-size 512 \
        --key-file pw1 --header chdr cdata || fail "$ver: luksFormat --header"
    dump_key chdr cdata cvk.bin pw1
    xts -e cvk.bin pat.bin cdata
    expect_ok "$VIMG" info --image-opts \
        "driver=luks,file.filename=cdata,header.file.filename=chdr"
    grep_last "virtual size: 16 KiB ($SIZE bytes)"
    rm -f out.raw
    expect_ok "$VIMG" convert "${OBJS[@]}" --image-opts "$(dopts cdata chdr)" \
        -O raw out.raw
    assert_same_file out.raw pat.bin "$ver: vimg reads cryptsetup+openssl data"
    expect_ok "$VIMG" io "${OBJS[@]}" --image-opts "$(dopts cdata chdr)" \
        -c 'write -P 0xa5 1000 3000'
    xts -d cvk.bin cdata plain.out
    cp pat.bin want.bin
    printf '\xa5%.0s' $(seq 3000) | dd of=want.bin bs=1 seek=1000 conv=notrunc status=none
    assert_same_file plain.out want.bin "$ver: openssl reads vimg's patch"
    expect_error 1 "Invalid password, cannot unlock any keyslot" \
        "$VIMG" convert "${OBJS[@]}" --image-opts "$(dopts cdata chdr s2)" \
        -O raw bad.raw
    echo "ok $ver: cryptsetup luksFormat --header volume"
done

# ---- measure: the data file alone, or the header alone ----------------------------
expect_ok "$VIMG" measure -O luks -o header=h --size 1M
grep_last "required size: 1048576"
expect_ok "$VIMG" measure -O luks -o detached-header=on --size 1M
grep_last "required size: 2068480"

# ---- errors ---------------------------------------------------------------------
expect_error 1 "Could not open LUKS header 'nosuch': No such file or directory" \
    "$VIMG" info --image-opts "driver=luks,file.filename=data,header.file.filename=nosuch"
expect_error 1 "Volume is not in LUKS format" \
    "$VIMG" info --image-opts "driver=luks,file.filename=data,header.file.filename=pat.bin"
expect_error 1 "'header' and 'detached-header' are mutually exclusive" \
    "$VIMG" create -f luks "${OBJS[@]}" \
    -o key-secret=s1,iter-count=1000,header=x,detached-header=on y 1M
echo "PASS: $TEST_NAME"
