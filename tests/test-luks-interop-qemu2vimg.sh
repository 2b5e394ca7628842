#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qemu-img -> vimg interoperability.  For every LUKS1 combination qemu-img
# 7.2 can create (the 117 of luks_combos minus the 27 with 24-byte keys,
# which abort qemu-img; 90 in all) the real qemu-img creates a 4 MiB raw
# luks image (iter-time=10), qemu-io writes patterns (aligned, unaligned,
# write -z) covering the whole disk, and vimg convert must return exactly
# the expected bytes.  Then, for a handful of ciphers, qemu-img convert -O
# luks encrypts 4 MiB of random data and vimg must read it back identically.
#
# Set COMBO_FILTER=REGEX to run a subset.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

# build_expected FILE: the plain content the qemu-io commands below produce.
build_expected()
{
    local f=$1
    pattern_file p5a 0x5a 1048576
    pattern_file pa5 0xa5 1048576
    pattern_file p33 0x33 1048576
    pattern_file p77 0x77 1000
    cat p5a pa5 /dev/null >"$f"
    head -c 1048576 /dev/zero >>"$f"
    cat p33 >>"$f"
    # the unaligned write at 3 MiB + 100
    dd if=p77 of="$f" bs=1 seek=$((3145728 + 100)) conv=notrunc status=none
    rm -f p5a pa5 p33 p77
}

QEMU_IO_CMDS=(-c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 1M 1M'
              -c 'write -z 2M 1M' -c 'write -P 0x33 3M 1M'
              -c 'write -P 0x77 3145828 1000')

one_combo()
{
    local cipher=$1 mode=$2 ivgen=$3 ivhash=$4 hash=$5
    local name="$cipher-$mode-$ivgen${ivhash:+:$ivhash}/$hash" opts

    if [ "$(combo_keybytes "$cipher" "$mode")" = 24 ]; then
        echo "skip $name: qemu-img 7.2 aborts on 24-byte keys"
        return
    fi
    opts=$(combo_opts "$@")
    # qemu-img's PBKDF calibration costs ~2 s of CPU per create, so the
    # images qemu made are kept in a cache shared by the normal and the
    # sanitizer build (keyed by the qemu-img version and the write script);
    # they are made afresh whenever either changes.
    local img=$CACHE/${name//\//_}.luks
    if [ ! -s "$img" ]; then
        ( qemu_create_luks img.luks 4M "$opts" ) >/dev/null 2>&1 ||
            { echo "FAIL $name: qemu-img create"; return; }
        run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts img.luks)" \
            "${QEMU_IO_CMDS[@]}"
        [ "$LAST_RC" = 0 ] && ! grep -q 'error\|failed' "$LAST_OUT" ||
            { echo "FAIL $name: qemu-io: $(cat "$LAST_OUT" "$LAST_ERR")"; return; }
        mv img.luks "$img.tmp$$" && mv "$img.tmp$$" "$img"
    fi
    run_cmd "$VIMG" convert --object "$SECRET" \
        --image-opts "$(luks_opts "$img")" -O raw out.raw
    [ "$LAST_RC" = 0 ] ||
        { echo "FAIL $name: vimg convert: $(cat "$LAST_ERR")"; return; }
    cmp -s out.raw "$EXPECTED" ||
        { echo "FAIL $name: vimg read different data"; return; }
    echo "ok $name"
}

if [ "${1:-}" = --one ]; then
    shift
    one_combo "$@"
    exit 0
fi

requires_vimg
requires qemu-img
requires qemu-io
requires xargs

build_expected expected.raw
assert_eq "$(stat -c %s expected.raw)" 4194304 "expected file size"
export EXPECTED=$TEST_TMP/expected.raw

CACHE=${VIMG_TEST_CACHE:-${TMPDIR:-/tmp}/vimg-test-cache}/qemu2vimg-$(
    { qemu-img --version | head -1; declare -p QEMU_IO_CMDS; echo "$PW"; } |
    sha256sum | cut -c1-16)
mkdir -p "$CACHE"
export CACHE

luks_combos combos
assert_eq "$COMBO_COUNT" 117 "number of accepted combinations"
echo "combinations: $COMBO_COUNT (running $(wc -l <combos))"
run_combos combos

# qemu-img convert -O luks of random data, read back by vimg.
random_file rand.raw 4
for o in "" "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1" \
         "cipher-alg=serpent-256,cipher-mode=xts,hash-alg=sha512" \
         "cipher-alg=twofish-128,cipher-mode=ctr,ivgen-alg=plain" \
         "cipher-alg=cast5-128,cipher-mode=cbc,ivgen-alg=plain64"; do
    qemu_retry qemu-img convert --object "$SECRET" -f raw -O luks \
        -o "key-secret=s0,iter-time=10${o:+,$o}" rand.raw conv.luks ||
        fail "qemu-img convert -O luks ($o)"
    expect_ok "$VIMG" convert --object "$SECRET" \
        --image-opts "$(luks_opts conv.luks)" -O raw conv.raw
    assert_same_file conv.raw rand.raw "qemu-img convert -O luks ($o)"
    echo "ok qemu-img convert -O luks ${o:-default} read by vimg"
    rm -f conv.luks conv.raw
done
exit 0
