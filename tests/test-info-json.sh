#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg info (JSON and human) must print what qemu-img info prints for the
# same file: raw images, luks images made by qemu-img with several ciphers,
# a luks image made by vimg and one made by cryptsetup, plain and with
# --image-opts/--object.  The texts are compared byte for byte (so key order
# counts) after dropping the "actual-size" / "disk size" lines, which
# depend on block allocation; "filename" is kept since both get the same
# argument.  jq checks a few values independently.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires jq

# same_info ARGS...: vimg info ARGS and qemu-img info ARGS agree, in JSON
# and in human form.
same_info()
{
    local out
    for out in json human; do
        run_cmd qemu-img info --output="$out" "$@"
        [ "$LAST_RC" = 0 ] || { _show_last qemu-img info "$@"; fail "qemu-img info $*"; }
        grep -v '"actual-size":\|^disk size:' "$LAST_OUT" >qemu.$out
        run_cmd "$VIMG" info --output="$out" "$@"
        [ "$LAST_RC" = 0 ] || { _show_last vimg info "$@"; fail "vimg info $*"; }
        grep -v '"actual-size":\|^disk size:' "$LAST_OUT" >vimg.$out
        if ! cmp -s qemu.$out vimg.$out; then
            diff -u qemu.$out vimg.$out >&2
            fail "info --output=$out differs for: $*"
        fi
    done
    jq -e . vimg.json >/dev/null || fail "vimg info --output=json is not JSON"
    echo "ok info $*"
}

# raw images
head -c 3M /dev/urandom >data.raw
expect_ok qemu-img create -q -f raw empty.raw 10M
same_info data.raw
same_info empty.raw
same_info -f raw empty.raw

# luks images made by qemu-img
qemu_create_luks q1.luks 4M
same_info q1.luks
assert_eq "$(jq -r '.encrypted' vimg.json)" true "encrypted"
assert_eq "$(jq -r '."format-specific".data."cipher-alg"' vimg.json)" aes-256 "cipher-alg"
assert_eq "$(jq -r '."format-specific".data."payload-offset"' vimg.json)" 2068480 "payload-offset"
assert_eq "$(jq '."format-specific".data.slots | length' vimg.json)" 8 "slot count"
assert_eq "$(jq '[."format-specific".data.slots[] | select(.active)] | length' vimg.json)" 1 "active slots"
assert_eq "$(jq '."virtual-size"' vimg.json)" 4194304 "luks virtual size"
same_info -f luks q1.luks
same_info --object "$SECRET" --image-opts "$(luks_opts q1.luks)"

qemu_create_luks q2.luks 1M cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1
same_info q2.luks
assert_eq "$(jq -r '."format-specific".data."ivgen-hash-alg"' vimg.json)" sha256 "essiv hash"
qemu_create_luks q3.luks 1M cipher-alg=serpent-128,cipher-mode=ctr,ivgen-alg=plain,hash-alg=sha512
same_info q3.luks
qemu_create_luks q4.luks 1M cipher-alg=cast5-128,cipher-mode=ecb,ivgen-alg=plain64,hash-alg=ripemd160
same_info q4.luks

# a luks image made by vimg, read by both
vimg_create_luks v.luks 2M cipher-alg=twofish-256,cipher-mode=xts,hash-alg=sha224
same_info v.luks
assert_eq "$(jq -r '."format-specific".data."hash-alg"' vimg.json)" sha224 "vimg-made hash-alg"
if [ "$VIMG_IS_QEMU" = 0 ]; then
    assert_eq "$(jq '."format-specific".data."master-key-iters"' vimg.json)" 1000 "iter-count=1000 (MK)"
    assert_eq "$(jq '."format-specific".data.slots[0].iters' vimg.json)" 1000 "iter-count=1000 (slot)"
fi

# a cryptsetup volume (1 MiB-aligned payload)
if command -v cryptsetup >/dev/null; then
    head -c 4M /dev/zero >cs.img
    expect_ok cryptsetup luksFormat --type luks1 --batch-mode \
        --pbkdf-force-iterations 1000 --key-file "$PWFILE" cs.img
    same_info cs.img
fi

# qemu rounds a raw file's size up to whole 512-byte sectors in info.
truncate -s 1000 odd.raw
same_info odd.raw
assert_eq "$(jq '."virtual-size"' vimg.json)" 1024 "virtual size of a 1000-byte raw"
assert_eq "$(jq -r .format vimg.json)" raw "format of odd.raw"
exit 0
