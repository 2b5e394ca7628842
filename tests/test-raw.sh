#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The raw format: create (sparse, sizes rounded like qemu-img), probe,
# info, convert raw -> raw of random and sparse data, sizes that are not a
# multiple of 512, reading a raw image through --image-opts, and a luks
# image opened explicitly as raw (-f raw) giving the ciphertext bytes.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

expect_ok "$VIMG" create -q -f raw big.raw 10G
assert_eq "$(stat -c %s big.raw)" 10737418240 "10G raw size"
[ "$(stat -c %b big.raw)" -lt 64 ] || fail "10G raw image is not sparse"
expect_ok "$VIMG" info --output=json big.raw
assert_eq "$(jq -r .format "$LAST_OUT")" raw "probed format"
assert_eq "$(jq '."virtual-size"' "$LAST_OUT")" 10737418240 "virtual size"

random_file r.raw 5
rm -f r2.raw
expect_ok "$VIMG" convert -f raw -O raw r.raw r2.raw
assert_same_file r2.raw r.raw "raw -> raw"
rm -f r3.raw
expect_ok "$VIMG" convert --image-opts "driver=raw,file.filename=r.raw" -O raw r3.raw
assert_same_file r3.raw r.raw "raw via --image-opts"
expect_rc 0 "$VIMG" compare r.raw r2.raw

# raw -> raw of a sparse 10G image stays sparse and fast
rm -f big2.raw
expect_ok timeout 120 "$VIMG" convert -O raw big.raw big2.raw
assert_eq "$(stat -c %s big2.raw)" 10737418240 "sparse copy size"
[ "$(stat -c %b big2.raw)" -lt 64 ] || fail "sparse copy is not sparse"

# odd sizes: create rounds up to 512 like qemu-img
for size in 1 511 513 1000; do
    rm -f o.raw q.raw
    expect_ok "$VIMG" create -q -f raw o.raw "$size"
    expect_ok qemu-img create -q -f raw q.raw "$size"
    assert_eq "$(stat -c %s o.raw)" "$(stat -c %s q.raw)" "create size $size"
done
assert_eq "$(stat -c %s o.raw)" 1024 "create 1000 -> 1024"

# a luks image read as raw yields its file bytes
vimg_create_luks l.luks 1M
rm -f l.raw
expect_ok "$VIMG" convert -f raw -O raw l.luks l.raw
assert_same_file l.raw l.luks "luks file read with -f raw"
echo "ok raw"
exit 0
