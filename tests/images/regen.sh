#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Recreate the LUKS1 fixture images in this folder with the real tools
# (qemu-img/qemu-io 7.2, cryptsetup 2.6, nbdkit luks filter + nbdcopy,
# openssl).  Each image holds the same 12 KiB of plaintext at the start of
# its payload (4 KiB of 0xab, 4 KiB of 0x00, 4 KiB of 0x5c), written by
# qemu-io, by nbdkit's luks filter, or (24-byte key, which both of those
# refuse) with the openssl CLI from the master key cryptsetup reports.
# Next to each NAME.img.xz: NAME.info.json, the format-specific data of
# `qemu-img info --output=json`, and NAME.mk, the master key in hex from
# `cryptsetup luksDump --dump-master-key` (when cryptsetup can open the
# slot here).  See README.md.
#
# The unused key-slot areas (slots 1..7), which cryptsetup fills with
# random bytes, are zeroed so that the compressed images stay small; this
# does not change the header or anything a reader looks at.
#
# Usage: tests/images/regen.sh   (writes into the folder of this script)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pw=vimg-fixture
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s' "$pw" > "$tmp/key"

# The 12 KiB plaintext written to every payload.
{
    head -c 4096 /dev/zero | tr '\0' '\253'
    head -c 4096 /dev/zero
    head -c 4096 /dev/zero | tr '\0' '\134'
} > "$tmp/pattern.bin"

# Zero key-slot areas 1..7 (offsets/lengths taken from the header).
zero_unused_slots() {
    local f=$1
    python3 - "$f" <<'EOF'
import struct, sys
f = sys.argv[1]
with open(f, 'r+b') as fh:
    h = fh.read(592)
    key_bytes = struct.unpack('>I', h[108:112])[0]
    sectors = -(-key_bytes * 4000 // 512)
    area = -(-sectors // 8) * 8
    for i in range(1, 8):
        active, _, off, _ = struct.unpack('>II32xII', h[208 + 48 * i:256 + 48 * i])
        assert active == 0xDEAD
        fh.seek(off * 512)
        fh.write(bytes(area * 512))
EOF
}

dump_mk() {
    cryptsetup luksDump --dump-master-key --batch-mode --key-file "$tmp/key" "$1" |
        awk '/^MK dump:/ { on = 1; sub(/^MK dump:/, ""); print; next }
             on && /^[ \t]/ { print; next }
             { on = 0 }' |
        tr -cd '0-9a-f'
}

finish() {
    local name=$1 f=$2
    zero_unused_slots "$f"
    # cryptsetup decrypts key slots through the kernel crypto API; for
    # ciphers the kernel lacks here it needs device-mapper, which is not
    # available, and then no .mk file is written.
    rm -f "$here/$name.mk"
    if mk=$(dump_mk "$f" 2>/dev/null) && [ -n "$mk" ]; then
        echo "$mk" > "$here/$name.mk"
    fi
    # qemu's view of the header (format-specific data of `qemu-img info`).
    qemu-img info --output=json -f luks "$f" |
        python3 -c 'import json, sys
print(json.dumps(json.load(sys.stdin)["format-specific"]["data"], indent=4))' \
        > "$here/$name.info.json"
    xz -9 -c "$f" > "$here/$name.img.xz"
    echo "$name: $(stat -c %s "$here/$name.img.xz") bytes compressed"
}

# qemu-img create -f luks; retried because Debian's qemu-img 7.2 sometimes
# fails its PBKDF benchmark with "Unable to get accurate CPU usage".
qemu_fixture() {
    local name=$1 opts=$2 f="$tmp/$1.img" i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if qemu-img create -q -f luks --object "secret,id=s0,data=$pw" \
               -o "key-secret=s0,iter-time=10,$opts" "$f" 64K 2>"$tmp/err"; then
            break
        fi
        grep -q 'accurate CPU usage' "$tmp/err" || { cat "$tmp/err"; exit 1; }
    done
    [ -f "$f" ] || { echo "qemu-img create kept failing" >&2; exit 1; }
    write_qemu_io "$f"
    finish "$name" "$f"
}

# Write the pattern into a LUKS volume through qemu-io (-f luks).
write_qemu_io() {
    qemu-io --object "secret,id=s0,data=$pw" \
        --image-opts "driver=luks,key-secret=s0,file.filename=$1" \
        -c 'write -P 0xab 0 4k' -c 'write -P 0x00 4k 4k' \
        -c 'write -P 0x5c 8k 4k' >/dev/null
}

# Write the pattern through nbdkit's luks filter (its own LUKS code).
write_nbdkit() {
    nbdkit -U - file "$1" --filter=luks passphrase="$pw" \
        --run "nbdcopy '$tmp/pattern.bin' \"\$uri\""
}

# Neither qemu 7.2 nor nbdkit 1.32 can unlock a 24-byte-key volume, so for
# aes-192-cbc-essiv:sha256 the payload is encrypted with the openssl CLI
# using the master key cryptsetup reports: IV(n) = AES-256-ECB(key =
# SHA-256(mk), LE64(n) || 0^8), data = AES-192-CBC(mk, IV(n)) per sector.
write_openssl_aes192_essiv() {
    local f=$1 mk salt off n iv sec
    mk=$(dump_mk "$f")
    salt=$(printf '%s' "$mk" | xxd -r -p | openssl dgst -sha256 -binary | xxd -p -c 64)
    off=$(python3 -c 'import struct,sys; print(struct.unpack(">I", open(sys.argv[1],"rb").read()[104:108])[0] * 512)' "$f")
    for n in $(seq 0 23); do
        sec=$(printf '%016x' "$n" | sed 's/\(..\)/\1 /g' | awk '{for (i = NF; i > 0; i--) printf "%s", $i}')
        iv=$(printf '%s0000000000000000' "$sec" | xxd -r -p |
             openssl enc -aes-256-ecb -K "$salt" -nopad | xxd -p -c 64)
        dd if="$tmp/pattern.bin" bs=512 skip="$n" count=1 status=none |
            openssl enc -aes-192-cbc -K "$mk" -iv "$iv" -nopad |
            dd of="$f" bs=512 seek=$((off / 512 + n)) conv=notrunc status=none
    done
}

# cryptsetup luksFormat --type luks1 on a regular file (no root needed).
# Only AES works here: cryptsetup encrypts key slots through the kernel
# crypto API and falls back to device-mapper (unavailable) for serpent and
# twofish, so those families come from qemu-img only.
cryptsetup_fixture() {
    local name=$1 writer=$2 f="$tmp/$1.img"
    shift 2
    truncate -s 2112K "$f"
    cryptsetup luksFormat --type luks1 --batch-mode --key-file "$tmp/key" \
        --pbkdf-force-iterations 1000 "$@" "$f"
    "$writer" "$f"
    finish "$name" "$f"
}

qemu_fixture qemu-aes256-xts-plain64-sha256 "cipher-alg=aes-256"
qemu_fixture qemu-aes128-cbc-essiv-sha256 \
    "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256"
qemu_fixture qemu-twofish128-ctr-plain64-sha1 \
    "cipher-alg=twofish-128,cipher-mode=ctr,hash-alg=sha1"
qemu_fixture qemu-serpent128-xts-plain64-sha512 \
    "cipher-alg=serpent-128,cipher-mode=xts,hash-alg=sha512"
qemu_fixture qemu-cast5-cbc-plain-ripemd160 \
    "cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=ripemd160"

cryptsetup_fixture cs-aes-xts-plain64-sha256 write_nbdkit \
    --cipher aes-xts-plain64 --key-size 256 --hash sha256
cryptsetup_fixture cs-aes192-cbc-essiv-sha256 write_openssl_aes192_essiv \
    --cipher aes-cbc-essiv:sha256 --key-size 192 --hash sha256
cryptsetup_fixture cs-aes128-cbc-plain-sha512 write_nbdkit \
    --cipher aes-cbc-plain --key-size 128 --hash sha512
