#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `vimg serve --fd N` (the contract the privilege broker relies on) and
# systemd socket activation, with the real nbdcopy, nbdinfo and qemu-io.
#  - --fd N on an accepted Unix connection serves exactly that client and
#    exits 0 when it disconnects; the secret comes from
#    --object secret,id=s0,file=/dev/fd/M (a pipe), read once.
#  - -r refuses writes; a bad --fd is a one-line error, exit 1.
#  - socket activation: libnbd's "[ CMD ]" form starts CMD with LISTEN_FDS.

. "$(dirname "$0")/functions.sh"
. "$SRCDIR/serve-functions.sh"
requires python3
requires qemu-img

qemu_create_luks l.img 8M
expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts l.img)" \
    -c 'write -P 0x5a 0 1M' -c 'write -P 0x77 3M 64k'
# The reference: qemu-img's own decryption (never-written LUKS sectors
# decrypt to noise, so only the real tool can say what the disk holds).
expect_ok qemu-img convert -O raw --object "$SECRET" --image-opts \
    "$(luks_opts l.img)" ref.raw

# serve_fd NAME ARGS...: run the broker stand-in with `vimg serve --fd`,
# the secret on a pipe; the client then connects to $PWD/NAME.sock.
serve_fd()
{
    local name=$1 i
    shift
    rm -f "$name.sock" "$name.status"
    python3 "$SRCDIR/serve-fd-helper.py" \
        "$PWD/$name.sock" "$name.status" --secret "$PWFILE" -- \
        env LD_PRELOAD="$SERVE_PRELOAD" "$VIMG" serve --fd '{fd}' \
        --object 'secret,id=s0,file=/dev/fd/{secretfd}' "$@" \
        2>>"$name.err" &
    HELPER_PID=$!
    cleanup_fn kill -9 "$HELPER_PID"
    for ((i = 0; i < 100; i++)); do
        [ -S "$name.sock" ] && break
        sleep 0.05
    done
    [ -S "$name.sock" ] || fail "helper did not listen"
}

# wait_fd NAME: the server must have exited 0.
wait_fd()
{
    wait "$HELPER_PID" || fail "helper failed: $(cat "$1.err")"
    grep -qx 'rc=0' "$1.status" ||
        fail "vimg serve --fd exit: $(cat "$1.status") $(cat "$1.err")"
}

# 1. Read the whole decrypted disk with nbdcopy.
serve_fd c1 --image-opts "$(luks_opts l.img)"
expect_ok nbdcopy "nbd+unix:///?socket=$PWD/c1.sock" out.raw
wait_fd c1
assert_same_file out.raw ref.raw "nbdcopy through --fd"

# 2. Write with qemu-io through --fd, check with qemu-io directly.
serve_fd c2 --image-opts "$(luks_opts l.img)"
expect_ok qemu-io -f raw -c 'write -P 0x31 1048576 512k' -c flush \
    "nbd+unix:///?socket=$PWD/c2.sock"
wait_fd c2
expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts l.img)" \
    -c 'read -P 0x31 1048576 512k' -c 'read -P 0x5a 0 1M'
grep -q 'Pattern verification failed' "$LAST_OUT" && fail "data not written"

# 3. Read-only: writes are refused, the image is untouched.
before=$(sha l.img)
serve_fd c3 -r --image-opts "$(luks_opts l.img)"
run_cmd qemu-io -f raw -c 'write -P 0x99 0 4k' \
    "nbd+unix:///?socket=$PWD/c3.sock"
[ "$LAST_RC" != 0 ] &&
    grep -qiE 'read-only|Operation not permitted|Permission denied' \
        "$LAST_OUT" "$LAST_ERR" ||
    { _show_last qemu-io; fail "read-only export accepted a write"; }
wait_fd c3
assert_eq "$(sha l.img)" "$before" "image after refused write"

# 4. nbdinfo sees the right size and a read-only flag.
serve_fd c4 -r --image-opts "$(luks_opts l.img)"
expect_ok nbdinfo "nbd+unix:///?socket=$PWD/c4.sock"
wait_fd c4
grep -q 'export-size: 8388608' "$LAST_OUT" || fail "size: $(cat "$LAST_OUT")"
grep -q 'is_read_only: true' "$LAST_OUT" || fail "not read-only"

# 5. Bad --fd values: one line, exit 1.
expect_error 1 "vimg: --fd 0: not a socket" vimg_serve --fd 0 l.img </dev/null
expect_error 1 "is not a file descriptor number" vimg_serve --fd x l.img
expect_error 1 "cannot be combined" vimg_serve --fd 1 -s x.sock l.img

# 6. Socket activation: libnbd starts "[ CMD ]" with LISTEN_PID/LISTEN_FDS.
expect_ok env LD_PRELOAD="$SERVE_PRELOAD" nbdcopy -- \
    [ "$VIMG" serve --object "$SECRET" --image-opts "$(luks_opts l.img)" ] \
    act.raw
expect_ok qemu-img convert -O raw --object "$SECRET" --image-opts \
    "$(luks_opts l.img)" direct.raw
assert_same_file act.raw direct.raw "socket-activated copy"
echo "PASS: $TEST_NAME"
