#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Basic vimg usage side by side with qemu-img: --version, the "Formatting"
# line of create (raw and luks, same options), -q silence, info (human)
# of the created images, and a create/convert/compare round trip using
# only vimg.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

expect_ok "$VIMG" --version
[ -s "$LAST_OUT" ] || fail "--version printed nothing"
head -1 "$LAST_OUT" | grep -q 'version [0-9]' || fail "--version: $(head -1 "$LAST_OUT")"
expect_ok "$VIMG" --help
grep_last "create"

# create: identical Formatting lines and files
for size in 1M 1536 1000 64k 1G 0; do
    rm -f q.raw v.raw
    expect_ok qemu-img create -f raw q.raw "$size"
    sed 's/q\.raw/X/' "$LAST_OUT" >q.txt
    expect_ok "$VIMG" create -f raw v.raw "$size"
    sed 's/v\.raw/X/' "$LAST_OUT" >v.txt
    assert_same_file v.txt q.txt "Formatting line for size $size"
    assert_eq "$(stat -c %s v.raw)" "$(stat -c %s q.raw)" "file size for $size"
    echo "ok create -f raw $size: $(cat v.txt)"
done
assert_eq "$(stat -c %s v.raw)" 0 "size 0"
rm -f v.raw
expect_ok "$VIMG" create -q -f raw v.raw 1M
[ ! -s "$LAST_OUT" ] && [ ! -s "$LAST_ERR" ] || fail "create -q printed something"
assert_eq "$(stat -c %s v.raw)" 1048576 "create -q size"
# -o size= and an existing file is truncated
head -c 3M /dev/urandom >v.raw
expect_ok "$VIMG" create -q -f raw -o size=2M v.raw
assert_eq "$(stat -c %s v.raw)" 2097152 "-o size=2M over an existing file"
cmp -s v.raw <(head -c 2M /dev/zero) || fail "recreated raw image is not zero"

# luks Formatting line (same options for both tools)
for opts in "key-secret=s0,iter-time=10" \
            "key-secret=s0,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1"; do
    rm -f q.luks v.luks
    qemu_retry qemu-img create -f luks --object "$SECRET" -o "$opts" q.luks 4M ||
        fail "qemu-img create luks"
    sed 's/q\.luks/X/' "$LAST_OUT" >q.txt
    run_cmd "$VIMG" create -f luks --object "$SECRET" -o "$opts" v.luks 4M
    if [ "$VIMG_IS_QEMU" = 1 ] && [ "$LAST_RC" != 0 ]; then
        qemu_retry "$VIMG" create -f luks --object "$SECRET" -o "$opts" v.luks 4M ||
            fail "create luks"
    fi
    [ "$LAST_RC" = 0 ] || { _show_last create; fail "vimg create -f luks -o $opts"; }
    sed 's/v\.luks/X/' "$LAST_OUT" >v.txt
    assert_same_file v.txt q.txt "luks Formatting line ($opts)"
    assert_eq "$(stat -c %s v.luks)" "$(stat -c %s q.luks)" "luks file size ($opts)"
    echo "ok create -f luks: $(cat v.txt)"
    # human info is the same, apart from uuid, iteration counts and disk size
    expect_ok qemu-img info q.luks
    grep -v 'uuid:\|iters:\|disk size:' "$LAST_OUT" | sed 's/q\.luks/X/' >q.txt
    expect_ok "$VIMG" info v.luks
    grep -v 'uuid:\|iters:\|disk size:' "$LAST_OUT" | sed 's/v\.luks/X/' >v.txt
    assert_same_file v.txt q.txt "info of luks images ($opts)"
    grep -q '^encrypted: yes$' v.txt || fail "info lacks 'encrypted: yes'"
done

# round trip with vimg alone
random_file data.raw 2
vimg_create_luks rt.luks 2M
expect_ok "$VIMG" convert --object "$SECRET" -n -f raw data.raw \
    --target-image-opts "$(luks_opts rt.luks)"
expect_rc 0 "$VIMG" compare --object "$SECRET" --image-opts \
    "driver=raw,file.filename=data.raw" "$(luks_opts rt.luks)"
grep_last "Images are identical."
rm -f rt.raw
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts rt.luks)" -O raw rt.raw
assert_same_file rt.raw data.raw "vimg round trip"
echo "ok vimg round trip"
# Sizes with a leading '+', typed -o values (y/n booleans too) and
# --image-opts with a plain file name (a node reference in qemu).
for args in "-f raw c1.raw +1M" "-f raw c1.raw ' +1.5k'" "-f raw c1.raw ++1M" \
            "-f raw -o size=+2M c1.raw" "-f raw -o nocow=y c1.raw 1M" \
            "-f raw -o nocow=n c1.raw 1M" "-f raw -o nocow=Y c1.raw 1M" \
            "-f raw -o nocow=1 c1.raw 1M"; do
    rm -f c1.raw
    eval "same_as_qemu create $args"
done
for arg in nosuch c1.raw file=c1.raw driver=raw,file=c1.raw c1.raw,driver=raw; do
    same_as_qemu info --image-opts "$arg"
done
echo "ok sizes with +, typed -o values, --image-opts node names"

exit 0
