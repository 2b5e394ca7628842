#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg convert: raw -> luks (created by vimg, read by qemu-img), luks ->
# raw (made by qemu-img, read by vimg), luks -> luks with a different cipher
# and secret, -n into existing targets (raw and luks; bytes beyond the
# source untouched, same result as qemu-img), -S sparse detection (holes
# like qemu-img's; -S 0 allocates everything), several sources concatenated,
# -p progress output (qemu-img's format, data unharmed), an unaligned raw
# source, and failing converts leaving no half-made target.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

# luks -o options for vimg-created targets
if [ "$VIMG_IS_QEMU" = 1 ]; then ITER=iter-time=10; else ITER=iter-count=1000; fi

random_file a.raw 3
random_file b.raw 1

# ---- raw -> luks (vimg creates the target) -----------------------------------
run_cmd "$VIMG" convert --object "$SECRET" -O luks -o "key-secret=s0,$ITER" \
    a.raw a.luks
if [ "$VIMG_IS_QEMU" = 1 ] && [ "$LAST_RC" != 0 ]; then
    qemu_retry "$VIMG" convert --object "$SECRET" -O luks \
        -o "key-secret=s0,$ITER" a.raw a.luks || fail "convert -O luks"
fi
[ "$LAST_RC" = 0 ] || { _show_last convert; fail "vimg convert -O luks"; }
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(luks_opts a.luks)" \
    -O raw a.back
assert_same_file a.back a.raw "raw -> luks (vimg) -> raw (qemu-img)"
expect_ok qemu-img info --output=json a.luks
assert_eq "$(jq '."virtual-size"' "$LAST_OUT")" 3145728 "luks target size"
echo "ok raw -> luks"

# ---- luks (qemu-img) -> raw (vimg) ---------------------------------------------
qemu_retry qemu-img convert --object "$SECRET" -O luks \
    -o key-secret=s0,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv \
    a.raw q.luks || fail "qemu-img convert -O luks"
rm -f a.back
expect_ok "$VIMG" convert --object "$SECRET" --image-opts "$(luks_opts q.luks)" \
    -O raw a.back
assert_same_file a.back a.raw "luks (qemu-img) -> raw (vimg)"
echo "ok luks -> raw"

# ---- luks -> luks, other cipher and other secret ------------------------------
printf 'second secret' >pw2
run_cmd "$VIMG" convert --object "$SECRET" --object "secret,id=s1,file=$TEST_TMP/pw2" \
    --image-opts "$(luks_opts q.luks)" -O luks \
    -o "key-secret=s1,$ITER,cipher-alg=serpent-256,cipher-mode=xts,hash-alg=sha512" c.luks
if [ "$VIMG_IS_QEMU" = 1 ] && [ "$LAST_RC" != 0 ]; then
    qemu_retry "$VIMG" convert --object "$SECRET" --object "secret,id=s1,file=$TEST_TMP/pw2" \
        --image-opts "$(luks_opts q.luks)" -O luks \
        -o "key-secret=s1,$ITER,cipher-alg=serpent-256,cipher-mode=xts,hash-alg=sha512" \
        c.luks || fail "convert luks -> luks"
fi
[ "$LAST_RC" = 0 ] || { _show_last convert; fail "vimg convert luks -> luks"; }
expect_ok qemu-img info --output=json c.luks
assert_eq "$(jq -r '."format-specific".data."cipher-alg"' "$LAST_OUT")" serpent-256 "cipher"
rm -f c.back
expect_ok qemu-img convert --object "secret,id=s1,file=$TEST_TMP/pw2" \
    --image-opts "$(luks_opts c.luks s1)" -O raw c.back
assert_same_file c.back a.raw "luks -> luks"
echo "ok luks -> luks"

# ---- -n into existing targets -------------------------------------------------
# raw target larger than the source: the tail must survive, as with qemu-img
random_file big1.raw 4
cp big1.raw big2.raw
expect_ok qemu-img convert -n -f raw -O raw b.raw big1.raw
expect_ok "$VIMG" convert -n -f raw -O raw b.raw big2.raw
assert_same_file big2.raw big1.raw "-n raw target, vimg vs qemu-img"
{ cat b.raw; tail -c +$((1048576 + 1)) big1.raw; } >want.raw
assert_same_file big2.raw want.raw "-n raw target content"
# luks target made by qemu-img, written by vimg -n
qemu_create_luks n.luks 3M
expect_ok "$VIMG" convert --object "$SECRET" -n -f raw a.raw \
    --target-image-opts "$(luks_opts n.luks)"
rm -f n.back
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(luks_opts n.luks)" \
    -O raw n.back
assert_same_file n.back a.raw "-n luks target"
# a smaller target is refused
expect_ok qemu-img create -q -f raw small.raw 512k
same_as_qemu convert -n -f raw -O raw a.raw small.raw
[ "$LAST_RC" != 0 ] || fail "-n into a smaller target succeeded"
# --target-image-opts needs -n
same_as_qemu convert -f raw a.raw --target-image-opts "driver=raw,file.filename=x.raw"
grep_last "--target-image-opts requires use of -n flag" stderr
[ ! -e x.raw ] || fail "x.raw created"
echo "ok -n"

# ---- -S sparse ------------------------------------------------------------------
{ head -c 2M /dev/zero; cat b.raw; head -c 5M /dev/zero; } >sp.raw
for s in "" "-S 64k" "-S 0"; do
    rm -f sq.raw sv.raw
    # shellcheck disable=SC2086
    expect_ok qemu-img convert $s -f raw -O raw sp.raw sq.raw
    # shellcheck disable=SC2086
    expect_ok "$VIMG" convert $s -f raw -O raw sp.raw sv.raw
    assert_same_file sv.raw sp.raw "convert $s content"
    qb=$(stat -c %b sq.raw)
    vb=$(stat -c %b sv.raw)
    if [ "$s" = "-S 0" ]; then
        [ "$vb" -ge 16384 ] || fail "-S 0 left holes ($vb blocks)"
    else
        # 1 MiB of data = 2048 blocks; qemu-img allocates ~2056
        [ "$vb" -le $((qb + 64)) ] && [ "$vb" -lt 4096 ] ||
            fail "convert $s: vimg allocated $vb blocks, qemu-img $qb"
    fi
    echo "ok convert ${s:-(default -S)}: vimg $vb blocks, qemu-img $qb blocks"
done
same_as_qemu convert -S 1000 -O raw sp.raw bad.raw
[ "$LAST_RC" = 1 ] || fail "-S 1000 accepted"
rm -f bad.raw

# ---- several sources are concatenated -----------------------------------------
truncate -s 1536 c.raw
printf 'tail' | dd of=c.raw bs=1 seek=1000 conv=notrunc status=none
rm -f cat.raw catq.raw
expect_ok "$VIMG" convert -O raw a.raw b.raw c.raw cat.raw
cat a.raw b.raw c.raw >want.raw
assert_same_file cat.raw want.raw "multi-source concatenation"
expect_ok qemu-img convert -O raw a.raw b.raw c.raw catq.raw
assert_same_file cat.raw catq.raw "concatenation vs qemu-img"
# raw + luks sources into one luks target
rm -f cat.luks
run_cmd "$VIMG" convert --object "$SECRET" --image-opts -O luks \
    -o "key-secret=s0,$ITER" "driver=raw,file.filename=b.raw" "$(luks_opts q.luks)" cat.luks
if [ "$VIMG_IS_QEMU" = 1 ] && [ "$LAST_RC" != 0 ]; then
    qemu_retry "$VIMG" convert --object "$SECRET" --image-opts -O luks \
        -o "key-secret=s0,$ITER" "driver=raw,file.filename=b.raw" "$(luks_opts q.luks)" \
        cat.luks || fail "multi-source to luks"
fi
[ "$LAST_RC" = 0 ] || { _show_last convert; fail "multi-source to luks"; }
rm -f cat.back
expect_ok qemu-img convert --object "$SECRET" --image-opts "$(luks_opts cat.luks)" \
    -O raw cat.back
cat b.raw a.raw >want.raw
assert_same_file cat.back want.raw "raw + luks -> luks"
echo "ok multi-source"

# ---- -p progress ----------------------------------------------------------------
rm -f p.raw
expect_ok "$VIMG" convert -p -O raw sp.raw p.raw
assert_same_file p.raw sp.raw "convert -p content"
grep -q '(100.00/100%)' "$LAST_OUT" || fail "no 100% progress line"
grep -q '(0.00/100%)' "$LAST_OUT" || fail "no 0% progress line"
rm -f pl.raw
expect_ok "$VIMG" convert -p --object "$SECRET" --image-opts "$(luks_opts q.luks)" \
    -O raw pl.raw
assert_same_file pl.raw a.raw "convert -p from luks"
grep -q '(100.00/100%)' "$LAST_OUT" || fail "no 100% progress line (luks)"
echo "ok -p"

# ---- unaligned raw source --------------------------------------------------------
truncate -s 1000 odd.raw
printf 'odd' >>odd.raw
rm -f oddq.raw oddv.raw
expect_ok qemu-img convert -O raw odd.raw oddq.raw
expect_ok "$VIMG" convert -O raw odd.raw oddv.raw
assert_same_file oddv.raw oddq.raw "unaligned source, vimg vs qemu-img"
echo "ok unaligned source"

# ---- failures leave nothing behind ---------------------------------------------
rm -f fail.luks
expect_error 1 "Parameter 'key-secret' is required for cipher" \
    "$VIMG" convert -O luks a.raw fail.luks
[ ! -e fail.luks ] || fail "failed create left fail.luks"
expect_error 1 "Could not open 'missing.raw'" "$VIMG" convert -O raw missing.raw fail.raw
[ ! -e fail.raw ] || fail "failed convert left fail.raw"
exit 0
