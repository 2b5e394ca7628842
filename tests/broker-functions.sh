# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers shared by tests/test-broker*.sh (sourced after functions.sh):
# dropping clients to nobody or to a uid without a passwd entry, and
# starting vimgd on a private socket.

VIMGD=${VIMGD:-$BUILDDIR/broker/vimgd}
id nobody >/dev/null 2>&1 || skip "no user 'nobody'"
OTHER_UID=4242      # no passwd entry: matched by number
AS_NOBODY=(setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups
           --inh-caps=-all --bounding-set=-all)
AS_OTHER=(setpriv --reuid=$OTHER_UID --regid=$OTHER_UID --clear-groups
          --inh-caps=-all --bounding-set=-all)

# wait_socket PATH: wait up to 5 s for a unix socket to appear.
wait_socket()
{
    local _
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    return 1
}

# start_vimgd CONF SOCKET [LOG]: run vimgd in the background (log in
# $TEST_TMP/vimgd.log by default), stopped at exit; sets VIMGD_PID.
start_vimgd()
{
    "$VIMGD" --config "$1" 2>"${3:-$TEST_TMP/vimgd.log}" &
    VIMGD_PID=$!
    cleanup_fn bg_stop "$VIMGD_PID"
    wait_socket "$2" || { cat "${3:-$TEST_TMP/vimgd.log}" >&2; fail "vimgd did not create $2"; }
}

# nobody_broker ARGS...: vimg broker as nobody, on $SOCK.
nobody_broker()
{
    "${AS_NOBODY[@]}" "$VIMG" broker --socket "$SOCK" "$@"
}

# bg_stop PID: kill and reap PID if it is still one of this shell's
# background jobs (never a pid that may have been recycled meanwhile).
bg_stop()
{
    local p
    for p in $(jobs -p); do
        if [ "$p" = "$1" ]; then
            kill "$1" 2>/dev/null
            wait "$1" 2>/dev/null
            return 0
        fi
    done
    return 0
}

# check_vimgd_log [LOG...]: no sanitizer report from vimgd or its workers.
check_vimgd_log()
{
    local f
    for f in "${@:-$TEST_TMP/vimgd.log}"; do
        if grep -q 'Sanitizer\|runtime error:' "$f" 2>/dev/null; then
            cat "$f" >&2
            fail "sanitizer report in $f"
        fi
    done
}
