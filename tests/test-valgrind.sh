#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Memory checks of the vimg CLI's main paths under valgrind (memcheck):
# create raw/luks, info (human and JSON), convert raw -> luks -> raw, dd,
# compare (equal and different), map, measure, resize, io; qcow2 (create,
# convert plain/compressed/LUKS, check and repair, snapshots, amend,
# hostile images), qcow (v1) and LUKS2 (create, both directions, hostile
# headers); plus the usual
# failures (wrong password, bad options, missing file) and I/O errors
# injected with VIMG_FAILPOINT.  Each run must end with its expected exit
# code and without a valgrind error: invalid accesses, uninitialised
# values, and definitely or indirectly lost memory all make valgrind exit
# with 99.  "Still reachable" memory (libgcrypt's and json-c's
# process-lifetime state) is not an error.
#
# Skipped (77) without valgrind, and when vimg was built with ASan (the two
# do not mix).  PBKDF2 stays cheap with iter-count=1000.
#
# Environment: VIMG, SRCDIR, BUILDDIR (tests/functions.sh); VALGRIND_EXTRA
# (extra valgrind options, e.g. --gen-suppressions=all).

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "valgrind checks are for vimg"
requires valgrind
VIMG_PATH=$(command -v "$VIMG")
if ldd "$VIMG_PATH" 2>/dev/null | grep 'libasan\|libclang_rt.asan' >/dev/null ||
        nm -D "$VIMG_PATH" 2>/dev/null | grep '__asan_init' >/dev/null; then
    skip "$VIMG is built with AddressSanitizer; valgrind cannot run it"
fi

VG=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --track-origins=yes
    --num-callers=30 ${VALGRIND_EXTRA:-})
# A valgrind that cannot run the binary at all (unsupported instructions,
# ...) is a skip, not a vimg bug.
run_cmd "${VG[@]}" "$VIMG" --version
[ "$LAST_RC" = 0 ] || { cat "$LAST_ERR" >&2; skip "valgrind cannot run $VIMG"; }

runs=0
# vg RC CMD_ARGS...: run "vimg CMD_ARGS" under valgrind; exit code RC.
vg()
{
    local want=$1
    shift
    run_cmd "${VG[@]}" "$VIMG" "$@"
    runs=$((runs + 1))
    if [ "$LAST_RC" = 99 ]; then
        _show_last "valgrind vimg $*"
        fail "valgrind found errors in: vimg $*"
    fi
    if [ "$LAST_RC" != "$want" ]; then
        _show_last "valgrind vimg $*"
        fail "expected exit code $want, got $LAST_RC: vimg $*"
    fi
    # Valgrind reports (==PID==) must not appear even when rc matched.
    if grep -q '^==[0-9]*==' "$LAST_ERR"; then
        _show_last "valgrind vimg $*"
        fail "valgrind printed a report for: vimg $*"
    fi
}

LUKS_OPTS=(--object "$SECRET" -o key-secret=s0,iter-count=1000)
printf 'wrong-password' >"$TEST_TMP/badpw"

random_file src.raw 4

# create
vg 0 create -q -f raw a.raw 4M
vg 0 create -f raw -o preallocation=full b.raw 1M
vg 0 create -q -f luks "${LUKS_OPTS[@]}" a.luks 4M
vg 0 create -q -f luks --object "$SECRET" \
    -o key-secret=s0,iter-count=1000,cipher-alg=twofish-192,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha1 \
    tf.luks 1M

# info
vg 0 info a.raw
vg 0 info --output=json a.raw
vg 0 info a.luks
vg 0 info --output=json a.luks
vg 0 info --object "$SECRET" --image-opts "$(luks_opts a.luks)"
vg 0 info --output=json tf.luks

# convert raw -> luks -> raw, then compare
vg 0 convert -O luks "${LUKS_OPTS[@]}" src.raw c.luks
vg 0 convert --object "$SECRET" --image-opts "$(luks_opts c.luks)" -O raw c.raw
assert_same_file c.raw src.raw "raw -> luks -> raw round trip"
vg 0 convert -n --object "$SECRET" src.raw --target-image-opts \
    "$(luks_opts a.luks)"
vg 0 convert -p -O raw src.raw d.raw
vg 0 compare src.raw c.raw
vg 0 compare --object "$SECRET" --image-opts "driver=raw,file.filename=src.raw" \
    "$(luks_opts c.luks)"
head -c 4096 /dev/zero | dd of=d.raw bs=4096 seek=100 conv=notrunc 2>/dev/null
vg 1 compare src.raw d.raw
vg 0 convert -O luks "${LUKS_OPTS[@]}" --image-opts "$(luks_opts tf.luks)" \
    e.luks

# dd
vg 0 dd if=src.raw of=dd.raw bs=64k count=16
vg 0 dd --object "$SECRET" --image-opts -O raw bs=1M \
    "if=$(luks_opts c.luks)" of=dd2.raw
assert_same_file dd2.raw src.raw "dd out of luks"

# map, measure, resize
vg 0 map --output=json src.raw
vg 0 map --output=json a.luks
vg 0 measure -O luks --size 64M
vg 0 measure --output=json -O raw src.raw
vg 0 resize -q d.raw 8M

# io (qemu-io commands), on raw and luks
cp src.raw io.raw
vg 0 io -f raw -c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k' io.raw
vg 0 io --object "$SECRET" --image-opts -c 'write -P 0x5a 512 64k' \
    -c 'read -P 0x5a 512 64k' -c 'write -z 1M 64k' -c 'read -P 0 1M 64k' \
    -c flush "$(luks_opts c.luks)"
vg 1 io -f raw -c 'read -P 0x11 0 512' io.raw
vg 1 io -f raw -c 'bogus' io.raw

# failures
vg 1 convert --object "secret,id=s0,file=$TEST_TMP/badpw" --image-opts \
    "$(luks_opts c.luks)" -O raw f.raw
grep -q 'Invalid password' "$LAST_ERR" || fail "wrong password message"
vg 2 compare --object "secret,id=s0,file=$TEST_TMP/badpw" \
    --image-opts "driver=raw,file.filename=src.raw" "$(luks_opts c.luks)"
vg 1 create -f luks --object "$SECRET" -o key-secret=s0,bogus=1 g.luks 1M
vg 1 create -f luks -o key-secret=nosuch g.luks 1M
vg 1 create -f raw h.raw 1Q
vg 1 info --bogus a.raw
vg 1 info nonexistent.img
vg 1 info --object "secret,id=s0,nonsense=1" a.raw
vg 1 convert -O luks -o key-secret=s0 src.raw i.luks
vg 1 convert -O nosuchfmt src.raw j.img
vg 1 dd if=src.raw of=k.raw bs=0
vg 1 dd --object "$SECRET" --image-opts "if=$(luks_opts a.luks s9)" of=l.raw
vg 1 info -f luks src.raw

# I/O errors injected by failpoints (docs/failpoints.md): error paths in
# the middle of create and of the (pipelined) copy must not leak either.
for n in 1 2 3 5; do
    rm -f fp.luks
    VIMG_FAILPOINT=write:$n:eio vg 1 convert -O luks "${LUKS_OPTS[@]}" \
        src.raw fp.luks
done
VIMG_FAILPOINT=any:2:eio vg 1 convert -n -O raw src.raw d.raw
VIMG_FAILPOINT=write:2:eio vg 1 convert -n --object "$SECRET" src.raw \
    --target-image-opts "$(luks_opts a.luks)"
VIMG_FAILPOINT=write:1:eio vg 1 dd if=src.raw of=fp.raw bs=64k
VIMG_FAILPOINT=write:1:eio vg 1 create -q -f luks "${LUKS_OPTS[@]}" fp2.luks 1M
VIMG_FAILPOINT=write:1:eio vg 1 io -f raw -c 'write -P 1 0 4k' io.raw

# a truncated LUKS header is refused cleanly
head -c 300 c.luks >short.luks
vg 1 info -f luks short.luks

# qcow2: create, convert (plain, compressed, LUKS-encrypted), info, map,
# check (and a leak repair), snapshots, resize, io, reading back;
# the result must be what qemu-img reads when it is installed.
vg 0 create -q -f qcow2 -o cluster_size=4096 q.qcow2 4M
vg 0 convert -O qcow2 src.raw q2.qcow2
vg 0 convert -c -O qcow2 -o cluster_size=4096 src.raw qc.qcow2
vg 0 info --output=json q2.qcow2
vg 0 check q2.qcow2
vg 0 io -f qcow2 -c 'write -P 0x5a 4k 64k' -c 'write -z 1M 128k' -c flush \
    -c 'read -P 0x5a 4k 64k' q.qcow2
vg 0 snapshot -c s1 q2.qcow2
vg 0 io -f qcow2 -c 'write -P 0x33 0 8k' q2.qcow2
vg 0 snapshot -a s1 q2.qcow2
vg 0 snapshot -d s1 q2.qcow2
vg 0 resize -f qcow2 q2.qcow2 64M
vg 0 amend -f qcow2 -o lazy_refcounts=on q2.qcow2
vg 0 amend -f qcow2 -o compat=0.10,lazy_refcounts=off q2.qcow2
vg 1 amend -f qcow2 -o refcount_bits=8 q2.qcow2   # width changes: refused
vg 0 resize -f qcow2 --shrink q2.qcow2 48M
vg 0 convert -f qcow2 -O raw qc.qcow2 qc.raw
assert_same_file qc.raw src.raw "raw -> compressed qcow2 -> raw"
vg 0 convert -f qcow2 -O raw q2.qcow2 q2.raw
cmp -s q2.raw src.raw --bytes=$((4 << 20)) || fail "qcow2 snapshot apply: data differs"
vg 0 convert -O qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 \
    src.raw ql.qcow2
vg 0 convert --object "$SECRET" --image-opts \
    "driver=qcow2,encrypt.key-secret=s0,file.filename=ql.qcow2" -O raw ql.raw
assert_same_file ql.raw src.raw "raw -> qcow2+LUKS -> raw"
vg 0 check ql.qcow2
if command -v qemu-img >/dev/null 2>&1; then
    qemu-img check -q q2.qcow2 || fail "qemu-img check after the valgrind runs"
    qemu-img convert -f qcow2 -O raw qc.qcow2 qq.raw &&
        cmp -s qq.raw src.raw || fail "qemu-img reads the compressed qcow2 differently"
fi
# a leak made by a crash mid-write, then repaired
cp q.qcow2 leak.qcow2
(VIMG_FAILPOINT=write:2:crash "$VIMG" io -f qcow2 -c 'write -P 7 2M 1M' \
    leak.qcow2 >/dev/null 2>&1) 2>/dev/null
vg 0 check -r leaks leak.qcow2
VIMG_FAILPOINT=write:3:eio vg 1 convert -O qcow2 src.raw fpq.qcow2
VIMG_FAILPOINT=write:2:eio vg 1 snapshot -c s2 q.qcow2
# hostile qcow2 / qcow (v1) images: refused (or checked) without leaks
H=$SRCDIR/images/hostile
vg 1 info -f qcow2 "$H/qcow2/ext-bitmaps-bad-length.qcow2"
vg 2 check -f qcow2 "$H/qcow2/refcount-block-self.qcow2"
vg 2 check -f qcow2 "$H/qcow2/l2-entry-past-eof.qcow2"
vg 0 convert -f qcow -O raw "$H/qcow1/valid.qcow" v1.raw
vg 1 info -f qcow "$H/qcow1/l2-bits-14.qcow"

# LUKS2: create, info, convert both ways, hostile headers
L2OPTS=(--object "$SECRET" -o key-secret=s0,encrypt.format=luks2,kdf=pbkdf2,iter-count=1000)
vg 0 create -q -f luks "${L2OPTS[@]}" l2.luks 4M
vg 0 info --output=json l2.luks
vg 0 convert -n --object "$SECRET" src.raw --target-image-opts "$(luks_opts l2.luks)"
vg 0 convert --object "$SECRET" --image-opts "$(luks_opts l2.luks)" -O raw l2.raw
assert_same_file l2.raw src.raw "raw -> LUKS2 -> raw"
vg 0 convert -O luks "${L2OPTS[@]}" src.raw l2b.luks
vg 1 info -f luks "$H/luks2/keyslots-overlap.luks"
vg 1 convert --object "$SECRET" --image-opts \
    "$(luks_opts "$H/luks2/keyslot-argon2-memory-huge.luks")" -O raw h.raw

echo "ok: $runs vimg runs under valgrind without errors"
exit 0
