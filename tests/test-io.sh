#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg io against qemu-io: every command string runs once with qemu-io on
# one copy of an image and once with vimg io on another; stdout and stderr
# (without the timing lines, which differ naturally, and with the program
# prefixes normalised), the exit code and the resulting image bytes must be
# identical.  Covered: read/write/discard/write -z with patterns, size
# suffixes, unaligned ranges, -v hex dumps, -C, -q, -s pattern files, read
# -P verification failures (rc 1, later commands still run), out-of-range
# requests, parse errors, bad argument counts, unknown commands, info and
# length, read-only handles; on raw files and on luks images made by
# qemu-img and by vimg (opened with --object/--image-opts), plus data
# written by one tool and verified by the other.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-io
requires qemu-img

# vimg_io ARGS...: "vimg io" (or qemu-io when checking the script itself).
vimg_io()
{
    if [ "$VIMG_IS_QEMU" = 1 ]; then
        qemu-io "$@"
    else
        "$VIMG" io "$@"
    fi
}

# Drop timing lines and the fields of -C lines that are rates; normalise
# "qemu-io: " / "vimg: " prefixes; drop vimg's warning about data= secrets.
_norm()
{
    sed -E '/ ops; .* sec \(/d; s/^([0-9]+),1,[0-9:.]+,.*/\1,1,CSV/;
            s/^(qemu-io|[^ :]*vimg): //; /is passed on the command line/d' "$1"
}

# io_same BASE FILE ARGS...: copy BASE to FILE, run qemu-io ARGS, then the
# same with vimg io on a fresh copy; output, rc and file bytes must agree.
io_same()
{
    local base=$1 file=$2 qrc
    shift 2
    cp "$base" "$file"
    run_cmd qemu-io "$@"
    qrc=$LAST_RC
    _norm "$LAST_OUT" >qemu.out
    _norm "$LAST_ERR" >qemu.err
    cp "$file" qemu.img
    cp "$base" "$file"
    run_cmd vimg_io "$@"
    _norm "$LAST_OUT" >vimg.out
    _norm "$LAST_ERR" >vimg.err
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s qemu.out vimg.out ||
           ! cmp -s qemu.err vimg.err || ! cmp -s qemu.img "$file"; then
        echo "--- qemu-io $* (rc $qrc):" >&2
        cat qemu.out qemu.err >&2
        echo "--- vimg io (rc $LAST_RC):" >&2
        cat vimg.out vimg.err >&2
        cmp qemu.img "$file" >&2
        fail "vimg io and qemu-io disagree on: $*"
    fi
}

python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)' \
    >base.raw 2>/dev/null || random_file base.raw 1
printf 'PW' >src.bin

# Each entry is one -c command; every run ends with a hex dump of the
# start so that the effect of writes is visible in stdout too.
cmds=(
    'write -P 0xab 0 64k' 'write -P 0x11 1000 3000' 'write 100 10'
    'read -P 0 0 1' 'read -P 0xab 0 64k' 'read -v 990 40' 'read -v 0 256'
    'write -z 128k 64k' 'write -z -u 0 1k' 'write -z 1 1' 'discard 512k 64k'
    'length' 'info' 'flush' 'read 1k 2k' 'read 0 0' 'read 0.5k 1k'
    'read 0x10 0x10' 'read 0 1.5k' 'read 0 1b' 'read 1M 0' 'read 1048575 1'
    'write 1M 1' 'read 2M 0' 'read 1022k 4k' 'read 0 16m'
    'read -P 0 -s 2 -l 3 0 8' 'read -P 1 -s 1 0 4' 'read -q 0 1'
    'read 0 1 -q' 'read -q -v 0 16' 'read -v -P 1 0 16' 'read -C 0 1'
    'write -C -P 1 0 4k' 'discard -C 0 4k' 'discard -q 0 1' 'write -q 0 1'
    'write -P 010 0 1' 'write -P 0x0ff 0 1' 'write -s src.bin 0 5'
    'write -f 0 512' 'r 0 1' 'w 0 1' 'quit'
    'foo' 'read' 'read 0' 'read x 1' 'read 0 x' 'read 1.5 1' 'read 0 0x'
    'read 99999999999999999999999 1' 'read 0 1e' 'read 0 3G' 'write 0 3G'
    'write -P 300 0 1' 'write -P x 0 1' 'write -P -1 0 1' 'write -P 1k 0 1'
    'write -z -P 1 0 1' 'write -u 0 1' 'write -n 0 1' 'length 1' 'flush 1'
    'read -l 3 -P 1 0 2' 'read -s 3 -P 1 0 2' 'write -s missing.bin 0 5'
    'help foo' 'help length' 'help flush'
)
for c in "${cmds[@]}"; do
    io_same base.raw t.raw -f raw -c "$c" -c 'read -v 0 48' t.raw
    echo "ok io raw '$c' (rc $LAST_RC)"
done
# Several commands in one run: a failure sets rc 1, the rest still runs.
io_same base.raw t.raw -f raw -c 'read -P 5 0 1' -c 'write -P 5 0 1' \
    -c 'read -P 5 0 1' -c 'quit' -c 'write 0 1' t.raw
assert_eq "$LAST_RC" 1 "rc after a failed verification"
grep -qx 'Pattern verification failed at offset 0, 1 bytes' vimg.out ||
    fail "pattern message missing"
grep -qx 'wrote 1/1 bytes at offset 0' vimg.out || fail "write summary missing"
# the first line qemu-io prints for a write, literally
io_same base.raw t.raw -f raw -c 'write -P 0xab 0 64k' t.raw
assert_eq "$(head -1 vimg.out)" "wrote 65536/65536 bytes at offset 0" \
    "write summary"
echo "ok io sequences"

# read-only handles and open errors
for c in 'write 0 1' 'discard 0 1' 'write -z 0 1' 'truncate 2M' 'flush' \
         'read -P 0 0 1'; do
    io_same base.raw t.raw -r -f raw -c "$c" t.raw
    echo "ok io -r '$c' (rc $LAST_RC)"
done
io_same base.raw t.raw -f raw -c 'read 0 1' missing.raw
grep -q "can't open device missing.raw" vimg.err || fail "open error text"
io_same base.raw t.raw -f raw -c 'truncate 2M' -c length -c 'read 2047k 1k' t.raw
echo "ok io open errors and truncate"

# luks images made by qemu-img and by vimg
qemu_create_luks q.luks 1M
vimg_create_luks v.luks 1M
printf 'wrong' >bad.pw
luks_cmds=(
    'read -P 0x33 0 8k' 'write -P 5 100 10' 'write -P 7 1000 5000'
    'read -v 995 20' 'write -z 700 100' 'read -v 690 30' 'write -z -u 512 1024'
    'discard 0 1k' 'write 1M 1' 'read 1048575 1' 'read 1M 0' 'length' 'info'
    'flush' 'truncate 2M' 'read -P 0x33 4k 4097'
)
for img in q.luks v.luks; do
    cp "$img" base.luks
    for c in "${luks_cmds[@]}"; do
        io_same base.luks w.luks --object "$SECRET" --image-opts \
            "$(luks_opts w.luks)" -c 'write -P 0x33 0 8k' -c "$c" \
            -c 'read -v 0 32' -c 'read -v 1000 32' -c length
        echo "ok io luks $img '$c' (rc $LAST_RC)"
    done
    io_same base.luks w.luks --object "secret,id=s0,file=bad.pw" \
        --image-opts "$(luks_opts w.luks)" -c 'read 0 1'
    grep -q "Invalid password, cannot unlock any keyslot" vimg.err ||
        fail "wrong password message"
    io_same base.luks w.luks -f luks -c 'read 0 1' w.luks
    grep -q "Parameter 'key-secret' is required for cipher" vimg.err ||
        fail "missing key message"

    # one tool writes, the other verifies (unaligned, across sectors)
    cp base.luks w.luks
    run_cmd vimg_io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'write -P 0x4c 1000 70000' -c 'write -z 3000 100'
    assert_eq "$LAST_RC" 0 "vimg io write $img"
    run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'read -P 0x4c 1000 2000' -c 'read -P 0 3000 100' \
        -c 'read -P 0x4c 3100 67900'
    assert_eq "$LAST_RC" 0 "qemu-io verifies vimg's writes on $img"
    run_cmd qemu-io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'write -P 0x21 5000 10'
    run_cmd vimg_io --object "$SECRET" --image-opts "$(luks_opts w.luks)" \
        -c 'read -P 0x21 5000 10' -c 'read -P 0x4c 4990 10' \
        -c 'read -P 0x4c 5010 100'
    assert_eq "$LAST_RC" 0 "vimg io verifies qemu's writes on $img"
    echo "ok io luks $img cross-verified"
done

if [ "$VIMG_IS_QEMU" = 0 ]; then
    # commands from standard input when there is no -c
    cp base.raw t.raw
    run_cmd bash -c "printf 'write -P 9 0 1\nfoo\nread -P 9 0 1\n' | \"\$0\" io -f raw t.raw" "$VIMG"
    assert_eq "$LAST_RC" 1 "stdin mode rc"
    grep -q 'wrote 1/1 bytes at offset 0' "$LAST_OUT" || fail "stdin write"
    grep -q 'read 1/1 bytes at offset 0' "$LAST_OUT" || fail "stdin read"
    grep -q 'command "foo" not found' "$LAST_ERR" || fail "stdin unknown cmd"
    echo "ok io stdin mode"
fi
exit 0
