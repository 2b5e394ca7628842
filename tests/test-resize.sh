#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg resize against qemu-img resize: the same command on two copies of
# one image must give the same output, exit code and resulting file size.
# Raw: absolute and +/- sizes, --shrink, -q, preallocation modes, the size
# parse errors and qemu's refusals ("Use the --shrink option...", "New image
# size must be positive", "Preallocation can only be used for growing
# images", the maximum length).  luks (made by qemu-img and by vimg), with
# the key: grow and shrink (the file becomes payload + size) and the data
# before the old end survives, checked with qemu-io; qemu-img info reads the
# new size.  vimg-only: without driver options no key is needed, and
# --preallocation=full makes the new range read as zeroes.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires qemu-io

# resize_same BASE FILE ARGS...: copy BASE to FILE, run qemu-img resize
# ARGS, note output and size; again with vimg; all must agree.
resize_same()
{
    local base=$1 file=$2 qrc qsize
    shift 2
    cp "$base" "$file"
    run_cmd qemu-img resize "$@"
    qrc=$LAST_RC
    qsize=$(stat -c %s "$file")
    sed 's/^qemu-img: /PROG: /' "$LAST_ERR" >qemu.err
    cp "$LAST_OUT" qemu.out
    cp "$file" qemu.img
    cp "$base" "$file"
    run_cmd "$VIMG" resize "$@"
    sed 's/^[^ :]*vimg: /PROG: /; s/^qemu-img: /PROG: /; s/vimg --help/qemu-img --help/' \
        "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s qemu.out "$LAST_OUT" ||
           ! cmp -s qemu.err vimg.err ||
           [ "$qsize" != "$(stat -c %s "$file")" ]; then
        echo "--- qemu-img resize $* (rc $qrc, size $qsize):" >&2
        cat qemu.out qemu.err >&2
        echo "--- vimg (rc $LAST_RC, size $(stat -c %s "$file")):" >&2
        cat "$LAST_OUT" vimg.err >&2
        fail "vimg and qemu-img disagree on: resize $*"
    fi
    echo "ok resize $* (rc $LAST_RC, size $qsize)"
}

random_file base.raw 2
for args in "r.raw 3M" "r.raw +1M" "r.raw +512" "r.raw -1M" "--shrink r.raw -1M" \
            "--shrink r.raw 1000" "-q r.raw 4M" "-q --shrink r.raw -- -1M" \
            "r.raw 1000" "r.raw 2M" "r.raw +0" "r.raw 0x300000" "r.raw 2.5M" \
            "r.raw 1500000" "--preallocation=off r.raw 3M" \
            "--preallocation=full r.raw +1M" "--preallocation=falloc r.raw +1M" \
            "--preallocation=metadata r.raw +1M" "--preallocation=xx r.raw +1M" \
            "--shrink --preallocation=full r.raw 1M" "--preallocation=full r.raw 1M" \
            "--image-opts driver=raw,file.filename=r.raw 5M" \
            "r.raw" "r.raw 1M 2M" "r.raw xx" "r.raw -- -5M" "--shrink r.raw -5M" \
            "r.raw 0" "r.raw +8E" "r.raw 8E" "r.raw 16E" \
            "r.raw 9223372036854775807" "-x r.raw 1M" "missing.raw 1M" \
            "--image-opts r.raw 1M"; do
    # shellcheck disable=SC2086
    resize_same base.raw r.raw -f raw $args
done
# without -f: qemu probes raw and warns on stderr; compare stdout and size.
cp base.raw p1.raw
cp base.raw p2.raw
expect_ok qemu-img resize p1.raw +1M
expect_ok "$VIMG" resize p2.raw +1M
assert_eq "$(cat "$LAST_OUT")" "Image resized." "probed raw resize"
assert_eq "$(stat -c %s p2.raw)" "$(stat -c %s p1.raw)" "probed raw size"
assert_same_file p1.raw p2.raw "probed raw content"
# grown raw: old data intact, new range reads as zeroes.
cmp -n 2097152 base.raw p2.raw || fail "raw resize lost data"
cmp -n 1048576 -i 2097152 p2.raw /dev/zero || fail "raw grown range not zero"
echo "ok raw content after resize"

# luks, with the key
qemu_create_luks q.luks 2M
vimg_create_luks v.luks 2M
for img in q.luks v.luks; do
    run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts $img)" \
        -c 'write -P 0x6b 0 2M'
    assert_eq "$LAST_RC" 0 "qemu-io fill $img"
    cp "$img" base.luks
    for args in "3M" "+1M" "+512" "1M" "--shrink 1M" "--shrink -- -512k" \
                "-q 4M" "--preallocation=falloc 3M" "--preallocation=full 3M" \
                "--preallocation=metadata 3M" "0" "xx"; do
        # shellcheck disable=SC2086
        resize_same base.luks w.luks --object "$SECRET" \
            --image-opts "$(luks_opts w.luks)" $args
    done
    printf 'wrong' >bad.pw
    resize_same base.luks w.luks --object "secret,id=s0,file=bad.pw" \
        --image-opts "$(luks_opts w.luks)" 3M
    grep_last "Invalid password, cannot unlock any keyslot" stderr

    # vimg grows and shrinks; qemu reads the old data and the new size.
    cp base.luks w.luks
    expect_ok "$VIMG" resize --object "$SECRET" --image-opts "$(luks_opts w.luks)" 5M
    run_cmd qemu-img info --output=json "w.luks"
    grep_last '"virtual-size": 5242880'
    run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'read -P 0x6b 0 2M' -c 'write -P 0x11 4M 1M' -c 'read -P 0x11 4M 1M'
    assert_eq "$LAST_RC" 0 "qemu-io on vimg-grown $img"
    expect_ok "$VIMG" resize --shrink --object "$SECRET" \
        --image-opts "$(luks_opts w.luks)" 1536k
    run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'read -P 0x6b 0 1536k' -c length
    assert_eq "$LAST_RC" 0 "qemu-io on vimg-shrunk $img"
    grep_last "1.500 MiB"
    echo "ok luks $img grow/shrink read back by qemu-io"

    if [ "$VIMG_IS_QEMU" = 0 ]; then
        # No key needed to change the size of a luks file.
        cp base.luks w.luks
        expect_ok "$VIMG" resize -f luks w.luks +1M
        assert_eq "$(cat "$LAST_OUT")" "Image resized." "keyless luks resize"
        assert_eq "$(stat -c %s w.luks)" "$(($(stat -c %s base.luks) + 1048576))" \
            "keyless luks file size"
        run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
            -c 'read -P 0x6b 0 2M' -c length
        assert_eq "$LAST_RC" 0 "qemu-io after keyless resize"
        grep_last "3 MiB"
        expect_ok "$VIMG" resize --shrink w.luks -- -2M
        grep_last "Image resized."
        assert_eq "$(stat -c %s w.luks)" "$(($(stat -c %s base.luks) - 1048576))" \
            "keyless luks shrink"
        # full preallocation writes encrypted zeroes: the new range reads 0.
        cp base.luks w.luks
        expect_ok "$VIMG" resize --preallocation=full --object "$SECRET" \
            --image-opts "$(luks_opts w.luks)" 3M
        run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
            -c 'read -P 0 2M 1M' -c 'read -P 0x6b 0 2M'
        assert_eq "$LAST_RC" 0 "preallocated luks range reads as zeroes"
        # ... which needs the key.
        expect_error 1 "Parameter 'key-secret' is required for cipher" \
            "$VIMG" resize --preallocation=full -f luks w.luks 4M
        echo "ok vimg-only luks resize $img"
    fi
done
exit 0
