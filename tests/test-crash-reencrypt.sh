#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash safety of vimg reencrypt (docs/reencrypt.md).  A first run with
# VIMG_FAILPOINT_COUNT counts the write/flush calls of a re-encryption;
# then, from a fresh copy each time, the run is killed (VIMG_FAILPOINT=
# any:N:crash, the process dies as with kill -9) before EVERY one of its
# calls, N = 1..total.  After each kill:
#   a) vimg still reads the image, with the same data (the journal says
#      which part has the new key and holds the chunk in flight);
#   b) the same command resumes and completes, the journal is gone;
#   c) qemu-img compare says the data is identical (and for qcow2 the
#      snapshot too, and qemu-img check finds no errors); every fourth
#      point the resumed run is itself killed once more before resuming.
# Then I/O errors (any:N:eio) at every fifth point: vimg exits 1 with one
# line, and the same command completes.  Finally a real kill -9 of a run
# on a larger image, at a random moment.
# (Crash safety of vimg amend is tested by test-amend.sh.)
#
# Scenarios: raw LUKS1 (4 MiB, 1 MiB chunks), qcow2+LUKS made by qemu-img
# with a snapshot (data clusters scattered over 16 MiB), and the same made
# as a plain qcow2 and encrypted in place, and a smaller legacy AES qcow2
# made by qemu-img (snapshot, a compressed cluster) migrated to LUKS; for
# qcow2 the killed image must never be corrupt for qemu-img check (leaks
# allowed, exit 0 or 3).

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "failpoints and reencrypt are vimg features"
requires qemu-img
requires qemu-io

OBJS=(--object "$SECRET")
lopts() { echo "driver=luks,key-secret=s0,file.filename=$1"; }
qopts() { echo "driver=qcow2,encrypt.key-secret=s0,file.filename=$1"; }

# vimg_same RAW OPTS WHAT / qemu_same RAW OPTS WHAT
vimg_same()
{
    run_cmd "$VIMG" compare "${OBJS[@]}" --image-opts \
        "driver=raw,file.filename=$1" "$2"
    [ "$LAST_RC" = 0 ] || { _show_last vimg compare; fail "$3"; }
}
qemu_same()
{
    run_cmd qemu-img compare "${OBJS[@]}" --image-opts \
        "driver=raw,file.filename=$1" "$2"
    [ "$LAST_RC" = 0 ] || { _show_last qemu-img compare; fail "$3"; }
}

# crash_loop BASE FILE RAW OPTS_FN EXTRA_CHECK -- REENCRYPT_ARGS...
crash_loop()
{
    local base=$1 file=$2 raw=$3 fn=$4 extra=$5 total n action
    shift 6
    cp "$base" "$file"
    rm -f count.txt
    VIMG_FAILPOINT_COUNT=$TEST_TMP/count.txt run_cmd "$VIMG" reencrypt "$@" "$file"
    [ "$LAST_RC" = 0 ] || { _show_last; fail "crash_loop: plain run failed"; }
    total=$(awk '$1 == "any" { print $2 }' count.txt)
    [ "${total:-0}" -ge 20 ] || fail "crash_loop: only ${total:-0} counted calls"
    for ((n = 1; n <= total; n++)); do
        cp "$base" "$file"
        rm -f "$file.reenc"
        { VIMG_FAILPOINT=any:$n:crash run_cmd "$VIMG" reencrypt "$@" "$file"; } 2>/dev/null
        assert_eq "$LAST_RC" 137 "any:$n:crash exit status"
        vimg_same "$raw" "$($fn "$file")" "any:$n:crash: vimg reads wrong data"
        if [ "$fn" = qopts ]; then
            run_cmd qemu-img check "${OBJS[@]}" --image-opts "$(qopts "$file")"
            [ "$LAST_RC" = 0 ] || [ "$LAST_RC" = 3 ] ||
                { _show_last; fail "any:$n:crash: qemu-img check of the killed image"; }
        fi
        if ((n % 4 == 0)); then
            # kill the resuming run too, at its 3rd call
            { VIMG_FAILPOINT=any:3:crash run_cmd "$VIMG" reencrypt "$@" "$file"; } 2>/dev/null
            vimg_same "$raw" "$($fn "$file")" "any:$n then 3: vimg reads wrong data"
        fi
        expect_ok "$VIMG" reencrypt "$@" "$file"
        [ ! -e "$file.reenc" ] || fail "any:$n:crash: journal left after resume"
        qemu_same "$raw" "$($fn "$file")" "any:$n:crash: qemu-img reads wrong data"
        $extra "$file" "any:$n:crash"
    done
    echo "ok killed before each of the $total write/flush calls, resumed: $file"
    for ((n = 1; n <= total; n += 5)); do
        cp "$base" "$file"
        rm -f "$file.reenc"
        VIMG_FAILPOINT=any:$n:eio run_cmd "$VIMG" reencrypt "$@" "$file"
        assert_eq "$LAST_RC" 1 "any:$n:eio exit status"
        assert_eq "$(wc -l <"$LAST_ERR")" 1 "any:$n:eio: one line on stderr"
        vimg_same "$raw" "$($fn "$file")" "any:$n:eio: vimg reads wrong data"
        expect_ok "$VIMG" reencrypt "$@" "$file"
        qemu_same "$raw" "$($fn "$file")" "any:$n:eio: qemu-img reads wrong data"
    done
    echo "ok I/O error at every fifth call, resumed: $file"
}

no_check() { :; }

# ---- raw LUKS ------------------------------------------------------------------
random_file data.raw 4
vimg_create_luks base.luks 4M
expect_ok "$VIMG" convert -n "${OBJS[@]}" -f raw data.raw \
    --target-image-opts "$(lopts base.luks)"
crash_loop base.luks x.luks data.raw lopts no_check -- \
    "${OBJS[@]}" -o key-secret=s0,iter-count=1000

# ---- qcow2 + LUKS with a snapshot -------------------------------------------------
qemu_retry qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 base.qcow2 16M ||
    fail "qemu-img create"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts base.qcow2)" \
    -c "write -P 0x11 0 2M" -c "write -P 0x22 9M 512k"
expect_ok qemu-img snapshot "${OBJS[@]}" -c snap1 --image-opts "$(qopts base.qcow2)"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts base.qcow2)" \
    -c "write -P 0x33 1M 1M" -c "write -P 0x44 13M 1M"
expect_ok qemu-img convert "${OBJS[@]}" --image-opts "$(qopts base.qcow2)" -O raw active.raw
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(qopts base.qcow2)" -O raw snap.raw

qcow2_check()
{
    expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
        --image-opts "$(qopts "$1")" -O raw snap-now.raw
    cmp -s snap.raw snap-now.raw || fail "$2: snapshot data differs"
    run_cmd qemu-img check "${OBJS[@]}" --image-opts "$(qopts "$1")"
    [ "$LAST_RC" = 0 ] || { _show_last; fail "$2: qemu-img check"; }
}
crash_loop base.qcow2 x.qcow2 active.raw qopts qcow2_check -- \
    "${OBJS[@]}" -o encrypt.key-secret=s0,encrypt.iter-count=1000

# ---- plain qcow2 with a snapshot, encrypted in place ------------------------------------
expect_ok qemu-img create -q -f qcow2 pbase.qcow2 16M
expect_ok qemu-io -c "write -P 0x11 0 2M" -c "write -P 0x22 9M 512k" pbase.qcow2
expect_ok qemu-img snapshot -c snap1 pbase.qcow2
expect_ok qemu-io -c "write -P 0x33 1M 1M" -c "write -P 0x44 13M 1M" pbase.qcow2
expect_ok qemu-img convert -O raw pbase.qcow2 active.raw
expect_ok qemu-img convert -l snapshot.name=snap1 -O raw pbase.qcow2 snap.raw
plain_check()
{
    qcow2_check "$@"
    expect_ok qemu-img info "$1"
    grep_last "format: luks"
}
crash_loop pbase.qcow2 x.qcow2 active.raw qopts plain_check -- \
    "${OBJS[@]}" -o encrypt.key-secret=s0,encrypt.iter-count=1000

# ---- legacy AES qcow2 with a snapshot, migrated to LUKS in place ---------------------
# Smaller (8 MiB, 2.5 MiB of data) to keep the run short; qemu-img made it.
expect_ok qemu-img create -q -f qcow2 "${OBJS[@]}" \
    -o encrypt.format=aes,encrypt.key-secret=s0 abase.qcow2 8M
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts abase.qcow2)" \
    -c "write -P 0x11 0 1M" -c "write -P 0x22 5M 512k"
expect_ok qemu-img snapshot "${OBJS[@]}" -c snap1 --image-opts "$(qopts abase.qcow2)"
expect_ok qemu-io "${OBJS[@]}" --image-opts "$(qopts abase.qcow2)" \
    -c "write -P 0x33 512k 512k" -c "write -P 0x44 7M 512k" -c "write -c -P 0x55 3M 64k"
expect_ok qemu-img convert "${OBJS[@]}" --image-opts "$(qopts abase.qcow2)" -O raw active.raw
expect_ok qemu-img convert "${OBJS[@]}" -l snapshot.name=snap1 \
    --image-opts "$(qopts abase.qcow2)" -O raw snap.raw
crash_loop abase.qcow2 x.qcow2 active.raw qopts plain_check -- \
    "${OBJS[@]}" -o encrypt.key-secret=s0,encrypt.iter-count=1000

# ---- a real kill -9 at a random moment ----------------------------------------------
random_file big.raw 32
vimg_create_luks big.luks 32M
expect_ok "$VIMG" convert -n "${OBJS[@]}" -f raw big.raw \
    --target-image-opts "$(lopts big.luks)"
"$VIMG" reencrypt "${OBJS[@]}" -o key-secret=s0,iter-count=1000 big.luks \
    >/dev/null 2>&1 &
pid=$!
sleep 0.$((RANDOM % 3 + 1))
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
vimg_same big.raw "$(lopts big.luks)" "after kill -9: vimg reads wrong data"
expect_ok "$VIMG" reencrypt "${OBJS[@]}" -o key-secret=s0,iter-count=1000 big.luks
qemu_same big.raw "$(lopts big.luks)" "after kill -9 and resume: qemu-img reads wrong data"
echo "ok kill -9 of a 32 MiB run at a random moment, resumed"
