#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Dirty (lazy refcounts, not closed) and corrupt-flagged qcow2 images
# against the real qemu-img / qemu-io 7.2.
#
# qemu-io writes to a lazy_refcounts=on image and aborts, leaving the dirty
# bit set and the refcounts of the new clusters at zero.  Then:
# - `$VIMG check` (human and JSON) agrees with `qemu-img check`: output,
#   error lines and exit code;
# - `$VIMG check -r all` and `-r leaks` give qemu-img's output and exit
#   code; the repaired image passes `qemu-img check` with qemu's status,
#   holds the same data, and `-r all` clears the dirty bit as qemu does
#   (after `-r leaks` with corruptions left qemu clears it too, vimg keeps
#   it so that the next read-write open repairs);
# - a read-write open by vimg (`$VIMG io` write) repairs the image first,
#   as qemu-io does: the result passes `qemu-img check` (exit 0), is clean,
#   and reads like the same write done by qemu-io; a read-only open leaves
#   the file untouched.
# An image with the corrupt bit is refused read-write with qemu's message,
# and `check -r all` repairs it and clears the bit, as qemu-img does.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

# incompat FILE: the dirty (1) and corrupt (2) bits of the header.
incompat()
{
    echo $((0x$(od -An -tx1 -j79 -N1 "$1" | tr -d ' \n') & 3))
}

# repair ORIG MODE: both tools repair a copy; same output, exit code and
# outcome.
repair()
{
    local orig=$1 mode=$2 qrc qout
    cp "$orig" q.qcow2
    run_cmd qemu-img check -r "$mode" q.qcow2
    qrc=$LAST_RC
    qout=$(cat "$LAST_OUT")
    sed 's/^qemu-img: /PROG: /' "$LAST_ERR" >qemu.err
    cp "$orig" v.qcow2
    run_cmd "$VIMG" check -r "$mode" v.qcow2
    sed 's/^vimg: /PROG: /' "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$LAST_RC" ] || [ "$qout" != "$(cat "$LAST_OUT")" ] ||
           ! cmp -s qemu.err vimg.err; then
        echo "--- qemu-img (rc $qrc):" >&2
        echo "$qout" >&2
        cat qemu.err >&2
        echo "--- vimg (rc $LAST_RC):" >&2
        cat "$LAST_OUT" vimg.err >&2
        fail "check -r $mode differs on $orig"
    fi
    # qemu clears the dirty bit on close even when corruptions remain
    # (-r leaks); vimg keeps it then, so the next read-write open repairs.
    [ "$mode" = all ] && assert_eq "$(incompat v.qcow2)" "$(incompat q.qcow2)" \
        "incompatible features after check -r $mode"
    run_cmd qemu-img check q.qcow2
    qrc=$LAST_RC
    run_cmd qemu-img check v.qcow2
    assert_eq "$LAST_RC" "$qrc" "qemu-img check after vimg check -r $mode"
    expect_ok qemu-img compare -f qcow2 -F qcow2 q.qcow2 v.qcow2
}

for create in "" "-o cluster_size=4096" "-o refcount_bits=64" \
              "-o extended_l2=on"; do
    rm -f d.qcow2
    # shellcheck disable=SC2086
    expect_ok qemu-img create -f qcow2 -o lazy_refcounts=on $create d.qcow2 64M
    expect_ok qemu-io -f qcow2 -c 'write -P 1 0 64k' d.qcow2
    # (a subshell, so that bash's "Aborted" note goes to /dev/null too)
    (qemu-io -f qcow2 -c 'write -P 2 1M 1M' -c 'write -P 3 40M 64k' \
        -c 'write -z 8M 1M' -c abort d.qcow2) >/dev/null 2>&1
    assert_eq "$(incompat d.qcow2)" 1 "dirty bit ($create)"
    same_as_qemu check d.qcow2
    same_as_qemu check --output=json d.qcow2
    repair d.qcow2 leaks
    repair d.qcow2 all
    assert_eq "$(incompat v.qcow2)" 0 "dirty bit after -r all"

    # A read-only open changes nothing.
    sum=$(sha d.qcow2)
    expect_ok "$VIMG" io -r -c 'read -P 2 1M 1M' d.qcow2
    assert_eq "$(sha d.qcow2)" "$sum" "dirty image after a read-only open"

    # A read-write open repairs first, like qemu-io.
    cp d.qcow2 v.qcow2
    cp d.qcow2 q.qcow2
    expect_ok "$VIMG" io -c 'write -P 4 1M 64k' -c 'write -P 5 50M 64k' v.qcow2
    expect_ok qemu-io -f qcow2 -c 'write -P 4 1M 64k' -c 'write -P 5 50M 64k' \
        q.qcow2
    assert_eq "$(incompat v.qcow2)" 0 "dirty bit after rw open"
    expect_ok qemu-img check v.qcow2
    expect_ok qemu-img compare -f qcow2 -F qcow2 q.qcow2 v.qcow2
    expect_ok qemu-io -f qcow2 -c 'read -P 1 0 64k' -c 'read -P 4 1M 64k' \
        -c 'read -P 2 1088k 960k' -c 'read -P 3 40M 64k' -c 'read -P 0 8M 1M' \
        v.qcow2
    echo "ok dirty image ($create)"
done

# The corrupt bit: refused read-write; check -r all clears it.
rm -f c.qcow2
expect_ok qemu-img create -f qcow2 c.qcow2 64M
expect_ok qemu-io -f qcow2 -c 'write -P 1 0 128k' c.qcow2
printf '\x02' | dd of=c.qcow2 bs=1 seek=79 conv=notrunc status=none
sum=$(sha c.qcow2)
expect_error 1 "qcow2: Image is corrupt; cannot be opened read/write" \
    "$VIMG" io -c 'write 0 512' c.qcow2
assert_eq "$(sha c.qcow2)" "$sum" "corrupt image after a refused open"
expect_ok "$VIMG" io -r -c 'read -P 1 0 128k' c.qcow2
same_as_qemu check c.qcow2
repair c.qcow2 all
assert_eq "$(incompat v.qcow2)" 0 "corrupt bit after -r all"
expect_ok "$VIMG" io -c 'write -P 2 0 512' v.qcow2
expect_ok qemu-img check v.qcow2
echo "PASS: $TEST_NAME"
