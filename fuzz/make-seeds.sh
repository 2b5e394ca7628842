#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate the seed corpora of the fuzz targets (fuzz/corpus/*/seed-*).
# Option strings and object definitions come from qemu-img's usage and
# -o help texts; LUKS1 seeds are made by the real qemu-img and cryptsetup
# (password "pw", the one fuzz-luks1-header tries) and cut down to the
# header plus slot 0's key material, so they stay small but still unlock.
# Crash regressions (crash-*, timeout-*, oom-*) in the same folders are
# left alone.  Needs qemu-img and cryptsetup for the LUKS seeds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ==== LUKS2 seeds for fuzz-luks2-header ====
# Real cryptsetup 2.6 volumes (password "pw"), cut after both header
# copies (.hdr) where the key material would only make the files large,
# plus one whole small volume (.full) whose keyslot 0 and digest were
# rewritten to 16 PBKDF2 iterations by an independent Python
# implementation (volume key known from --volume-key-file): the only seed
# that unlocks in fuzzing builds (PBKDF2 capped at 16 iterations);
# cryptsetup must accept its password and vimg must decrypt its payload.
# `make-seeds.sh luks2` regenerates only these.
luks2_seeds()
{
    local D=$corpus/luks2-header w=$tmp/l2
    local vimg=${VIMG:-$here/../build/tools/vimg}
    mkdir -p "$D" "$w"
    rm -f "$D"/seed-*
    printf pw > "$w/pw"
    cs2() {     # name cut-bytes cryptsetup-options...
        local name=$1 cut=$2
        shift 2
        rm -f "$w/v.img"
        truncate -s 20M "$w/v.img"
        cryptsetup luksFormat --type luks2 --batch-mode --key-file "$w/pw" \
            "$@" "$w/v.img"
        head -c "$cut" "$w/v.img" > "$D/seed-cs-$name.hdr"
    }
    cs2 pbkdf2-aes-xts 32768 --cipher aes-xts-plain64 --key-size 512 \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256
    cs2 argon2id-aes-xts 32768 --pbkdf argon2id --pbkdf-force-iterations 4 \
        --pbkdf-memory 32 --pbkdf-parallel 1
    cs2 argon2i-cbc-essiv-4k 32768 --cipher aes-cbc-essiv:sha256 \
        --key-size 256 --sector-size 4096 --label vimg-fuzz \
        --subsystem seed --pbkdf argon2i --pbkdf-force-iterations 4 \
        --pbkdf-memory 64 --pbkdf-parallel 2 --hash sha512
    cs2 metadata-64k 131072 --luks2-metadata-size 65536 \
        --luks2-keyslots-size 1048576 --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --cipher aes-cbc-plain64 --key-size 128
    # Two keyslots (priorities normal and high) and a token.
    printf pw2 > "$w/pw2"
    cryptsetup luksAddKey --batch-mode --key-file "$w/pw" --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 "$w/v.img" "$w/pw2"
    cryptsetup config --priority prefer --key-slot 1 "$w/v.img"
    printf '{"type":"vimg-seed","keyslots":["0"],"x":1}' |
        cryptsetup token import --token-id 0 "$w/v.img"
    head -c 131072 "$w/v.img" > "$D/seed-cs-two-slots-token.hdr"

    # The low-iteration volume: 256-bit aes-xts, keyslots area 256 KiB
    # (room for a second keyslot: the target adds one), data at 288 KiB,
    # 8 sectors of payload.
    rm -f "$w/v.img"
    truncate -s 300k "$w/v.img"
    head -c 32 /dev/urandom > "$w/vk"
    cryptsetup luksFormat --type luks2 --batch-mode --key-file "$w/pw" \
        --cipher aes-xts-plain64 --key-size 256 --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --hash sha256 \
        --luks2-keyslots-size 262144 --offset 576 \
        --volume-key-file "$w/vk" "$w/v.img" 2>/dev/null
    python3 "$here/lowiter-luks2.py" "$w/v.img" "$w/vk" 8
    cryptsetup luksOpen --test-passphrase --key-file "$w/pw" "$w/v.img" ||
        { echo "lowiter LUKS2 seed: cryptsetup refuses the password" >&2; exit 1; }
    if [ -x "$vimg" ]; then
        "$vimg" convert --object "secret,id=s0,file=$w/pw" --image-opts \
            "driver=luks,key-secret=s0,file.filename=$w/v.img" -O raw "$w/p.raw"
        head -c 28 "$w/p.raw" | grep -q 'vimg luks2 seed sector    0' ||
            { echo "lowiter LUKS2 seed does not decrypt with vimg" >&2; exit 1; }
    else
        echo "make-seeds: $vimg not found, lowiter LUKS2 payload not checked" >&2
    fi
    cp "$w/v.img" "$D/seed-lowiter-aes-xts.full"
    # Damaged primary: only the secondary header is valid.
    cp "$w/v.img" "$w/d.img"
    dd if=/dev/zero of="$w/d.img" bs=4096 count=1 conv=notrunc status=none
    head -c 32768 "$w/d.img" > "$D/seed-lowiter-secondary-only.hdr"

    local f
    for f in "$here"/../tests/images/hostile/luks2/*.luks; do
        [ -e "$f" ] && cp "$f" "$D/seed-hostile-$(basename "$f" .luks)"
    done
    du -sh "$D"
}
if [ "${1:-all}" = luks2 ]; then
    luks2_seeds
    exit 0
fi

mkdir -p "$corpus/opts" "$corpus/object" "$corpus/luks1-header"
rm -f "$corpus"/opts/seed-* "$corpus"/object/seed-* "$corpus"/luks1-header/seed-*

# ---- fuzz-opts: byte 0 is the mode (see fuzz-opts.c), then option strings
# separated by NUL.  '@' no implied key, 'A' implied qom-type, 'B' driver,
# 'C' size; +4 ('D'..'G') takes every key before check_unused.
n=0
opt_seed()
{
    local mode=$1
    shift
    n=$((n + 1))
    {
        printf '%s' "$mode"
        local first=1 s
        for s in "$@"; do
            [ $first = 1 ] || printf '\0'
            printf '%s' "$s"
            first=0
        done
    } > "$(printf '%s/opts/seed-%02d' "$corpus" $n)"
}
opt_seed D 'key-secret=s0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256,iter-time=10'
opt_seed @ 'cipher-alg=twofish-128,cipher-mode=ctr,ivgen-alg=essiv,ivgen-hash-alg=sha1,iter-time=0'
opt_seed E 'secret,id=s0,data=pw'
opt_seed A 'secret,id=s0,data=a,,b,,,format=raw'
opt_seed A 'secret_keyring,id=k,serial=12345'
opt_seed F 'driver=luks,key-secret=s0,file.filename=disk.img'
opt_seed B 'qcow2,file.filename=a.qcow2,encrypt.key-secret=sec0'
opt_seed G '64M'
opt_seed C '1.5k,preallocation=off'
opt_seed D 'size=0x1000,cluster_size=64k,compat=1.1,lazy_refcounts=on,refcount_bits=16'
opt_seed @ 'encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encryption=off'
opt_seed D 'lazy_refcounts,noextended_l2,data_file_raw=yes,extended_l2=false'
opt_seed @ 'a=1,a=2,b=,,,c' 'a=3,d=E' 'size=18446744073709551615'
opt_seed D 'size=16E,x=1.k,y=+ 12G,z=-1,w=0x,v=010,u=99999999999999999999'
opt_seed @ ',,' '=x' 'k=v,'
opt_seed E 'iter-time=-1,iter-count=1000,size=1b,preallocation=full'

# ---- fuzz-object: one --object definition per line.
obj_seed()
{
    n=$((n + 1))
    printf '%s\n' "$@" > "$(printf '%s/object/seed-%02d' "$corpus" $n)"
}
n=0
obj_seed 'secret,id=s0,data=pw'
obj_seed 'secret,id=s0,data=cHcK,format=base64'
obj_seed 'secret,id=s0,file=/dev/null' 'secret,id=s0,data=x'
obj_seed 'secret,id=s1,data=a,,b,format=raw' 'secret,id=s1,data=again'
# "pw" encrypted with k0 (bytes 00..1f) and IV 00..0f, AES-256-CBC, PKCS#7.
obj_seed "secret,id=e0,keyid=k0,iv=AAECAwQFBgcICQoLDA0ODw==,format=base64,data=$(
    printf pw | openssl enc -aes-256-cbc -K "$(printf '%02x' $(seq 0 31))" \
        -iv "$(printf '%02x' $(seq 0 15))" -nosalt | base64)"
obj_seed 'secret,id=e1,keyid=k1,iv=AAECAwQFBgcICQoLDA0ODw==,data=xxxxxxxxxxxxxxxx'
obj_seed 'secret,id=e2,keyid=k0,iv=AAEC,data=xxxxxxxxxxxxxxxx'
obj_seed 'secret,id=e3,keyid=nokey,iv=AAECAwQFBgcICQoLDA0ODw==,data=x'
obj_seed 'secret,id=e4,keyid=k0,data=xxxxxxxxxxxxxxxx'
obj_seed 'secret_keyring,id=k9,serial=12345'
obj_seed 'secret_keyring,id=k9,serial=0'
obj_seed 'secret,id=s0,data=x,file=/dev/null'
obj_seed 'secret,id=s0'
obj_seed 'secret,id=9bad,data=x' 'secret,data=x' 'iothread,id=io0'
obj_seed 'secret,id=s0,data=x,loaded=on' 'secret,id=s1,data=x,bogus=1'
obj_seed 'secret,id=s0,data=x,a.b=1' 'secret,id=s0,data=x,format=hex'
obj_seed 'secret,id=s0,data=***,format=base64' 'secret,id=u,data=\xff'
obj_seed 'secret,id=s0,data=x,novalue' 'secret,,id=s0' ',id=s0'

# ---- fuzz-luks1-header: real volumes, cut after slot 0's key material.
luks_cut()
{
    local img=$1 name=$2 keybytes=$3 full=${4:-}
    local end=$((4096 + (keybytes * 4000 + 511) / 512 * 512))
    if [ "$full" = full ]; then
        cp "$img" "$corpus/luks1-header/seed-$name.full"
    elif [ "$full" != hdr ]; then
        head -c $end "$img" > "$corpus/luks1-header/seed-$name.slot0"
    fi
    head -c 4096 "$img" > "$corpus/luks1-header/seed-$name.hdr"
}
qemu_luks()
{
    local name=$1 keybytes=$2 full=$3
    shift 3
    local try
    # Debian's qemu-img 7.2 sometimes fails a short iter-time with "Unable
    # to get accurate CPU usage"; try again.
    for try in 1 2 3 4 5 6 7 8; do
        qemu-img create -q -f luks --object secret,id=s0,data=pw \
            -o key-secret=s0,iter-time=10"$*" "$tmp/$name.luks" 4K && break
        [ $try != 8 ] || exit 1
    done
    luks_cut "$tmp/$name.luks" "qemu-$name" "$keybytes" "$full"
}
cs_luks()
{
    local name=$1 keybytes=$2
    shift 2
    printf pw > "$tmp/key"
    truncate -s 3M "$tmp/$name.img"
    cryptsetup luksFormat --type luks1 --batch-mode \
        --pbkdf-force-iterations 1000 --key-file "$tmp/key" "$@" "$tmp/$name.img"
    luks_cut "$tmp/$name.img" "cs-$name" "$keybytes"
}
qemu_luks aes256-xts-plain64-sha256 64 hdr
qemu_luks aes128-cbc-essiv-sha256 16 '' \
    ,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv
qemu_luks cast5-cbc-plain-ripemd160 16 '' \
    ,cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=ripemd160
qemu_luks twofish128-ctr-plain64-sha1 16 '' \
    ,cipher-alg=twofish-128,cipher-mode=ctr,ivgen-alg=plain64,hash-alg=sha1
qemu_luks serpent128-ecb-plain-sha512 16 '' \
    ,cipher-alg=serpent-128,cipher-mode=ecb,ivgen-alg=plain,hash-alg=sha512
cs_luks aes-xts-plain64-sha256 32 --cipher aes-xts-plain64 --key-size 256
cs_luks aes-cbc-essiv-sha256 16 --cipher aes-cbc-essiv:sha256 --key-size 128
# cryptsetup checks ciphers with the kernel's crypto API: here only AES.
cs_luks aes-cbc-plain-sha512 32 --cipher aes-cbc-plain --key-size 256 --hash sha512
cs_luks aes-ecb-sha1 16 --cipher aes-ecb --key-size 128 --hash sha1
# Keep the header of this one only: 32 KB less to mutate.
rm -f "$corpus/luks1-header/seed-cs-aes-cbc-plain-sha512.slot0"
# Volumes with 16 PBKDF2 iterations (slot and master key): the only ones
# that unlock in -Dfuzzing=true builds, where lib/crypto caps PBKDF2 at 16
# iterations (real volumes use >= 1000).  Written by an independent Python
# implementation (hashlib + cryptography); qemu-img reads them (checked
# below), so they also cross-check vimg's unlock path.
lowiter()
{
    python3 - "$@" <<'PY'
import hashlib, os, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

path, mode, keybytes, payload_sectors = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = __import__("random").Random(keybytes * 1000 + len(mode))  # deterministic
rb = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))
HASH, ITERS, STRIPES = "sha256", 16, 4000
mk = rb(keybytes)

def sectors_crypt(key, data, first_sector=0):
    out = bytearray()
    for i in range(0, len(data), 512):
        sec = first_sector + i // 512
        chunk = data[i:i + 512]
        if mode == "xts-plain64":
            c = Cipher(algorithms.AES(key), modes.XTS(struct.pack("<Q", sec) + bytes(8)))
        elif mode == "cbc-essiv:sha256":
            ek = hashlib.sha256(key).digest()
            e = Cipher(algorithms.AES(ek), modes.ECB()).encryptor()
            iv = e.update(struct.pack("<Q", sec) + bytes(8)) + e.finalize()
            c = Cipher(algorithms.AES(key), modes.CBC(iv))
        elif mode == "cbc-plain":
            c = Cipher(algorithms.AES(key), modes.CBC(struct.pack("<I", sec & 0xffffffff) + bytes(12)))
        else:
            c = Cipher(algorithms.AES(key), modes.ECB())
        enc = c.encryptor()
        out += enc.update(chunk) + enc.finalize()
    return bytes(out)

def diffuse(d):
    hl = hashlib.new(HASH).digest_size
    out = b""
    for j in range(0, len(d), hl):
        chunk = d[j:j + hl]
        out += hashlib.new(HASH, struct.pack(">I", j // hl) + chunk).digest()[:len(chunk)]
    return out

def afsplit(key):
    d = bytes(len(key))
    stripes = []
    for _ in range(STRIPES - 1):
        s = rb(len(key))
        stripes.append(s)
        d = diffuse(bytes(a ^ b for a, b in zip(d, s)))
    stripes.append(bytes(a ^ b for a, b in zip(d, key)))
    return b"".join(stripes)

area = -(-keybytes * STRIPES // 512)
area = (area + 7) // 8 * 8
payload = 8 + 8 * area
mk_salt, slot_salt = rb(32), rb(32)
digest = hashlib.pbkdf2_hmac(HASH, mk, mk_salt, ITERS, 20)
slot_key = hashlib.pbkdf2_hmac(HASH, b"pw", slot_salt, ITERS, keybytes)
material = afsplit(mk)
material += bytes(-len(material) % 512)
h = b"LUKS\xba\xbe" + struct.pack(">H", 1)
h += b"aes".ljust(32, b"\0") + mode.encode().ljust(32, b"\0") + HASH.encode().ljust(32, b"\0")
h += struct.pack(">II", payload, keybytes) + digest + mk_salt + struct.pack(">I", ITERS)
h += b"00000000-0000-4000-8000-000000000000".ljust(40, b"\0")
for i in range(8):
    if i == 0:
        h += struct.pack(">II", 0x00AC71F3, ITERS) + slot_salt
    else:
        h += struct.pack(">II", 0x0000DEAD, 0) + bytes(32)
    h += struct.pack(">II", 8 + i * area, STRIPES)
img = bytearray(h.ljust(4096, b"\0"))
img += sectors_crypt(slot_key, material)
if payload_sectors:
    img += bytes(payload * 512 - len(img))
    plain = b"".join(b"vimg fuzz seed sector %4d\n" % i for i in range(payload_sectors * 512 // 26 + 1))
    img += sectors_crypt(mk, plain[:payload_sectors * 512])
open(path, "wb").write(img)
PY
}
L=$corpus/luks1-header
lowiter "$L/seed-lowiter-aes-xts-plain64-sha256.slot0" xts-plain64 32 0
lowiter "$L/seed-lowiter-aes-cbc-plain-sha256.slot0" cbc-plain 16 0
lowiter "$L/seed-lowiter-aes-ecb-sha256.slot0" ecb-plain 16 0
lowiter "$L/seed-lowiter-aes-cbc-essiv-sha256.full" cbc-essiv:sha256 16 8
# qemu-img must decrypt the payload the generator wrote.
qemu-img convert --object secret,id=s0,data=pw --image-opts \
    "driver=luks,key-secret=s0,file.filename=$L/seed-lowiter-aes-cbc-essiv-sha256.full" \
    -O raw "$tmp/plain.raw"
head -c 26 "$tmp/plain.raw" | grep -q 'vimg fuzz seed sector    0' ||
    { echo "lowiter seed does not decrypt with qemu-img" >&2; exit 1; }

# The hostile headers (one defect each) reach every validation message.
for f in "$here"/../tests/images/hostile/luks1/*.luks; do
    cp "$f" "$corpus/luks1-header/seed-hostile-$(basename "$f" .luks)"
done
du -sh "$corpus"/*

# ==== qcow2 / qcow (v1) seeds for fuzz-qcow2-open and fuzz-qcow1-header ====
# Small images from the real qemu-img / qemu-io (data written with
# recognisable patterns), cut down where the whole file would be large.
# LUKS-in-qcow2 seeds use password "pw"; the one made with vimg
# (encrypt.iter-count=16) gets its master-key iterations rewritten to 16
# (digest recomputed from the AF-merged master key) so it unlocks in
# fuzzing builds, where PBKDF2 is capped at 16 iterations; qemu-io must
# still read its data back (VIMG=path/to/vimg for that seed; it is
# skipped when vimg is not found).
qcow_seeds()
{
    local Q=$corpus/qcow2-open V=$corpus/qcow1-header w=$tmp/q
    local vimg=${VIMG:-$here/../build/tools/vimg}
    local sec=(--object secret,id=s0,data=pw)
    mkdir -p "$Q" "$V" "$w"
    rm -f "$Q"/seed-* "$V"/seed-*
    qio() { qemu-io -f "$1" "${@:3}" "$2" >/dev/null; }
    qio_luks() { local f=$1; shift
        qemu-io "${sec[@]}" --image-opts \
            "driver=qcow2,encrypt.key-secret=s0,file.filename=$f" "$@" >/dev/null; }
    qio_aes() { local d=$1 f=$2; shift 2
        qemu-io "${sec[@]}" --image-opts \
            "driver=$d,encrypt.key-secret=s0,file.filename=$f" "$@" >/dev/null; }
    seed2() { cp "$1" "$Q/seed-$2"; }
    cut2() { head -c "$3" "$1" > "$Q/seed-$2"; }

    # Plain images, several cluster sizes, v2 and v3.
    local c
    for c in 512 4096 65536; do
        qemu-img create -q -f qcow2 -o cluster_size=$c "$w/c$c.qcow2" 1M
        qio qcow2 "$w/c$c.qcow2" -c 'write -P 0x11 0 4k' -c 'write -P 0x22 512k 3k'
        seed2 "$w/c$c.qcow2" "v3-c$c"
    done
    qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$w/v2.qcow2" 1M
    qio qcow2 "$w/v2.qcow2" -c 'write -P 0x44 8k 8k'
    seed2 "$w/v2.qcow2" v2-c4096
    qemu-img create -q -f qcow2 -o cluster_size=2M "$w/c2m.qcow2" 64M
    cut2 "$w/c2m.qcow2" v3-c2M.hdr 4096
    qemu-img create -q -f qcow2 "$w/big.qcow2" 1P
    cut2 "$w/big.qcow2" v3-1P.hdr 4096
    # Zero clusters (v3 zero flag), lazy refcounts, refcount widths.
    qemu-img create -q -f qcow2 -o cluster_size=4096,lazy_refcounts=on \
        "$w/z.qcow2" 1M
    qio qcow2 "$w/z.qcow2" -c 'write -P 0x55 0 16k' -c 'write -z 4k 8k' \
        -c 'write -z 64k 64k'
    seed2 "$w/z.qcow2" zero-lazy
    for c in 1 64; do
        qemu-img create -q -f qcow2 -o cluster_size=4096,refcount_bits=$c \
            "$w/r$c.qcow2" 1M
        qio qcow2 "$w/r$c.qcow2" -c 'write -P 0x66 4k 4k'
        seed2 "$w/r$c.qcow2" refcount-bits-$c
    done
    # Extended L2 (needs >= 16 KiB clusters): subcluster writes.
    qemu-img create -q -f qcow2 -o cluster_size=16384,extended_l2=on \
        "$w/x.qcow2" 1M
    qio qcow2 "$w/x.qcow2" -c 'write -P 0x77 0 1k' -c 'write -z 8k 2k' \
        -c 'write -P 0x78 40k 512'
    seed2 "$w/x.qcow2" extended-l2
    # Compressed clusters, zlib and zstd.
    head -c 65536 /dev/urandom > "$w/rand"
    { python3 -c 'print("vimg fuzz seed compressible line\n" * 1986, end="")'
      head -c 98 /dev/zero; cat "$w/rand"; } > "$w/src.raw"
    qemu-img convert -q -c -O qcow2 -o cluster_size=4096 "$w/src.raw" "$w/cz.qcow2"
    seed2 "$w/cz.qcow2" compressed-zlib
    qemu-img convert -q -c -O qcow2 -o cluster_size=4096,compression_type=zstd \
        "$w/src.raw" "$w/cs.qcow2"
    seed2 "$w/cs.qcow2" compressed-zstd
    # Internal snapshots and persistent bitmaps.
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$w/s.qcow2" 1M
    qio qcow2 "$w/s.qcow2" -c 'write -P 0x12 0 8k'
    qemu-img snapshot -c first "$w/s.qcow2"
    qio qcow2 "$w/s.qcow2" -c 'write -P 0x13 4k 8k'
    qemu-img snapshot -c second "$w/s.qcow2"
    seed2 "$w/s.qcow2" snapshots
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$w/b.qcow2" 1M
    qemu-img bitmap --add "$w/b.qcow2" bm0
    qemu-img bitmap --add -g 65536 "$w/b.qcow2" bm1
    qio qcow2 "$w/b.qcow2" -c 'write -P 0x21 0 4k'
    seed2 "$w/b.qcow2" bitmaps
    # Backing files: a name that does not exist, and the image itself
    # (the fuzz targets name their input img.qcow2: a loop).
    qemu-img create -q -f qcow2 -u -b missing.raw -F raw -o cluster_size=4096 \
        "$w/o1.qcow2" 1M
    seed2 "$w/o1.qcow2" backing-missing
    qemu-img create -q -f qcow2 -u -b img.qcow2 -F qcow2 -o cluster_size=4096 \
        "$w/o2.qcow2" 1M
    seed2 "$w/o2.qcow2" backing-self
    # Legacy AES (crypt_method 1): the password is the key.
    qemu-img create -q -f qcow2 "${sec[@]}" \
        -o encrypt.format=aes,encrypt.key-secret=s0,cluster_size=4096 "$w/aes.qcow2" 1M
    qio_aes qcow2 "$w/aes.qcow2" -c 'write -P 0x31 0 6k'
    seed2 "$w/aes.qcow2" aes
    # LUKS made by qemu-img: only the first 64 KiB (header, FDE pointer,
    # LUKS header; key material cut off).
    # (On a loaded machine qemu's calibration can fail with "Unable to get
    # accurate CPU usage": try again.)
    local try
    for try in 1 2 3 4 5; do
        qemu-img create -q -f qcow2 "${sec[@]}" \
            -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,cluster_size=4096 \
            "$w/lq.qcow2" 1M && break
        [ $try -lt 5 ] || exit 1
    done
    cut2 "$w/lq.qcow2" luks-qemu.hdr 65536
    # LUKS with 16 iterations (unlocks in fuzzing builds), with data.
    if [ -x "$vimg" ]; then
        "$vimg" create -q -f qcow2 "${sec[@]}" \
            -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=16,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,cluster_size=4096 \
            "$w/l16.qcow2" 1M 2>/dev/null
        qio_luks "$w/l16.qcow2" -c 'write -P 0x5a 0 8k' -c 'write -z 16k 4k' \
            -c 'write -P 0x33 64k 4k'
        python3 - "$w/l16.qcow2" 16 <<'PY'
# Rewrite the master-key iterations of the LUKS header that the FDE
# extension of a qcow2 image points at (password "pw", slot 0, aes).
import hashlib, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
path, new_iters = sys.argv[1], int(sys.argv[2])
img = bytearray(open(path, "rb").read())
pos = struct.unpack(">I", img[100:104])[0]
base = None
while pos + 8 <= 1 << struct.unpack(">I", img[20:24])[0]:
    t, ln = struct.unpack(">II", img[pos:pos + 8])
    if t == 0:
        break
    if t == 0x0537BE77:
        base = struct.unpack(">Q", img[pos + 8:pos + 16])[0]
    pos += 8 + (ln + 7) // 8 * 8
h = img[base:base + 592]
assert h[:6] == b"LUKS\xba\xbe"
mode = h[40:72].rstrip(b"\0").decode()
hname = h[72:104].rstrip(b"\0").decode()
kb = struct.unpack(">I", h[108:112])[0]
mksalt = bytes(h[132:164])
active, it = struct.unpack(">II", h[208:216])
salt = bytes(h[216:248])
koff, stripes = struct.unpack(">II", h[248:256])
assert mode.startswith("cbc-essiv:") and active == 0x00AC71F3
skey = hashlib.pbkdf2_hmac(hname, b"pw", salt, it, kb)
n = -(-kb * stripes // 512) * 512
mat = bytes(img[base + koff * 512:base + koff * 512 + n])
ek = hashlib.new(mode[10:], skey).digest()
out = b""
for i in range(0, n, 512):
    e = Cipher(algorithms.AES(ek), modes.ECB()).encryptor()
    iv = e.update(struct.pack("<Q", i // 512) + bytes(8)) + e.finalize()
    d = Cipher(algorithms.AES(skey), modes.CBC(iv)).decryptor()
    out += d.update(mat[i:i + 512]) + d.finalize()
mat = out[:kb * stripes]
def diffuse(d):
    hl = hashlib.new(hname).digest_size
    o = b""
    for j in range(0, len(d), hl):
        ch = d[j:j + hl]
        o += hashlib.new(hname, struct.pack(">I", j // hl) + ch).digest()[:len(ch)]
    return o
d = bytes(kb)
for i in range(stripes - 1):
    d = diffuse(bytes(a ^ b for a, b in zip(d, mat[i * kb:(i + 1) * kb])))
mk = bytes(a ^ b for a, b in zip(d, mat[(stripes - 1) * kb:]))
old = struct.unpack(">I", h[164:168])[0]
assert hashlib.pbkdf2_hmac(hname, mk, mksalt, old, 20) == bytes(h[112:132])
img[base + 112:base + 132] = hashlib.pbkdf2_hmac(hname, mk, mksalt, new_iters, 20)
img[base + 164:base + 168] = struct.pack(">I", new_iters)
open(path, "wb").write(img)
PY
        qio_luks "$w/l16.qcow2" -c 'read -P 0x5a 0 8k' -c 'read -P 0x33 64k 4k' ||
            { echo "lowiter qcow2 seed does not read back in qemu-io" >&2; exit 1; }
        seed2 "$w/l16.qcow2" luks-lowiter
    else
        echo "make-seeds: $vimg not found, no luks-lowiter qcow2 seed" >&2
    fi

    # qcow (v1): default geometry, encrypted, compressed, backing, large.
    qemu-img create -q -f qcow "$w/v1.qcow" 1M
    qio qcow "$w/v1.qcow" -c 'write -P 0x41 0 6k' -c 'write -P 0x42 600k 512'
    cp "$w/v1.qcow" "$V/seed-default"
    qemu-img create -q -f qcow "${sec[@]}" \
        -o encrypt.format=aes,encrypt.key-secret=s0 "$w/v1a.qcow" 1M
    qio_aes qcow "$w/v1a.qcow" -c 'write -P 0x43 4k 5k'
    cp "$w/v1a.qcow" "$V/seed-aes"
    # (qemu-img 7.2 convert -c -O qcow fails with status 1 and no message;
    # qemu-io write -c works.)
    qemu-img create -q -f qcow "$w/v1c.qcow" 1M
    qio qcow "$w/v1c.qcow" -c 'write -c -P 0x61 0 4k' -c 'write -c -P 0x62 8k 4k'
    cp "$w/v1c.qcow" "$V/seed-compressed"
    qemu-img create -q -f qcow -u -b missing.raw -F raw "$w/v1b.qcow" 1M
    cp "$w/v1b.qcow" "$V/seed-backing"
    qemu-img create -q -f qcow "$w/v1big.qcow" 1T
    head -c 4096 "$w/v1big.qcow" > "$V/seed-1T.hdr"
    # The hostile images of tests/images/hostile/ reach the header checks.
    local f
    for f in "$here"/../tests/images/hostile/qcow2/*.qcow2; do
        [ -e "$f" ] && cp "$f" "$Q/seed-hostile-$(basename "$f" .qcow2)"
    done
    for f in "$here"/../tests/images/hostile/qcow1/*.qcow; do
        [ -e "$f" ] && cp "$f" "$V/seed-hostile-$(basename "$f" .qcow)"
    done
    du -sh "$Q" "$V"
}
qcow_seeds
luks2_seeds
