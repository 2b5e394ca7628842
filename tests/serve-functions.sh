# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers for the `vimg serve` tests (sourced after functions.sh): the
# plugin location, a server started in the background on a Unix socket,
# and reference images made by the real qemu-img.

requires nbdkit
requires nbdinfo
requires nbdcopy
requires qemu-io
requires_vimg
if [ -z "${VIMG_NBDKIT_PLUGIN:-}" ]; then
    VIMG_NBDKIT_PLUGIN=$BUILDDIR/server/nbdkit-vimg-plugin.so
fi
[ -r "$VIMG_NBDKIT_PLUGIN" ] ||
    skip "nbdkit plugin not built (nbdkit-plugin-dev missing?)"
export VIMG_NBDKIT_PLUGIN
# A sanitizer-built plugin loads into the uninstrumented nbdkit only with
# the sanitizer runtime preloaded.
if ldd "$VIMG_NBDKIT_PLUGIN" 2>/dev/null | grep libasan >/dev/null; then
    SERVE_PRELOAD=$(gcc -print-file-name=libasan.so)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0
else
    SERVE_PRELOAD=
fi

# vimg_serve ARGS...: `vimg serve ARGS` with the sanitizer preload (if any).
vimg_serve()
{
    env LD_PRELOAD="$SERVE_PRELOAD" "$VIMG" serve "$@"
}

SERVE_PID=
# serve_start SOCKET ARGS...: run `vimg serve -s SOCKET ARGS` in the
# background (stderr to serve.err) and wait until the socket answers.
serve_start()
{
    local sock=$1 i
    shift
    rm -f "$sock"
    LD_PRELOAD=$SERVE_PRELOAD "$VIMG" serve -s "$sock" "$@" \
        2>>"$TEST_TMP/serve.err" &
    SERVE_PID=$!
    cleanup_fn kill -9 "$SERVE_PID"
    for ((i = 0; i < 600; i++)); do
        if [ -S "$sock" ] && nbdinfo --size "nbd+unix:///?socket=$sock" \
                >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TEST_TMP/serve.err" >&2
    fail "vimg serve $* did not start"
}

# serve_stop: SIGTERM the server started last and wait for it (SIGKILL
# after 20 s: under the sanitizer preload nbdkit may not finish its exit
# after a refused TLS client; the data was flushed before).
serve_stop()
{
    local i
    kill "$SERVE_PID" 2>/dev/null
    for ((i = 0; i < 400; i++)); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        echo "note: server $SERVE_PID ignored SIGTERM for 20 s; killed" >&2
        kill -9 "$SERVE_PID" 2>/dev/null
    fi
    wait "$SERVE_PID" 2>/dev/null
    SERVE_PID=
}

# uri SOCKET [EXPORT]: the nbd+unix URI of an export.
uri()
{
    echo "nbd+unix:///${2:-}?socket=$1"
}
