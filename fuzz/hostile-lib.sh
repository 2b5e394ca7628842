# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Shared by the hostile-image checkers (check-hostile.sh,
# check-hostile-luks2.sh, check-hostile-images.sh); sourced, not run.
# Sets $here (the fuzz/ folder); the checker then calls hostile_init.

here=$(cd "$(dirname "$0")" && pwd)

# hostile_init: resolve $VIMG (default build/tools/vimg; a relative path is
# made absolute, as the commands run in a scratch directory), exit 77 if it
# is missing, make the scratch directory $work (removed on exit) and zero
# the counters.
hostile_init()
{
    VIMG=${VIMG:-$here/../build/tools/vimg}
    case $VIMG in
        /*) ;;
        */*) VIMG=$(pwd)/$VIMG ;;
    esac
    if ! command -v "$VIMG" >/dev/null 2>&1; then
        echo "SKIP: vimg not found ($VIMG); set VIMG=path/to/vimg"
        exit 77
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    pass=0
    failed=0
}

ok() { echo "ok - $1"; pass=$((pass + 1)); }
fail() { echo "not ok - $1"; failed=$((failed + 1)); }

# hostile_run NAME RC MSG CMD...: run CMD in $work (60 s at most) and judge
# it: exit status RC, MSG a substring of its output ('-': any).  The output
# is stdout and stderr, or stderr alone with HOSTILE_STDERR_ONLY=1.  With
# HOSTILE_NO_OUT_RAW=1, an out.raw left behind by a failed run is a
# failure too.  An exit status >= 124 (a signal, a timeout) or a sanitizer
# report always is.  Prints ok / not ok (with the first HOSTILE_SHOW lines
# of the output, default 10), counts, sets last_rc; returns 0 if it passed.
hostile_run()
{
    local name=$1 want_rc=$2 want=$3 rc why=""
    shift 3
    rm -f "$work/out.raw" "$work/output"
    if [ "${HOSTILE_STDERR_ONLY:-0}" = 1 ]; then
        (cd "$work" && timeout -k 5 60 "$@" >/dev/null 2>"$work/output")
    else
        (cd "$work" && timeout -k 5 60 "$@" >"$work/output" 2>&1)
    fi
    rc=$?
    last_rc=$rc
    if [ $rc -ge 124 ]; then
        why="exit status $rc (signal, timeout or cannot run)"
    elif grep -qE 'Sanitizer|runtime error:' "$work/output"; then
        why="sanitizer report"
    elif [ "$rc" != "$want_rc" ]; then
        why="exit status $rc, expected $want_rc"
    elif [ "$want" != - ] && ! grep -qF -- "$want" "$work/output"; then
        why="output lacks '$want'"
    elif [ "${HOSTILE_NO_OUT_RAW:-0}" = 1 ] && [ "$rc" != 0 ] &&
         [ -e "$work/out.raw" ]; then
        why="out.raw left behind after a failure"
    fi
    if [ -z "$why" ]; then
        ok "$name"
        return 0
    fi
    fail "$name: $why"
    sed 's/^/#   /' "$work/output" | head -"${HOSTILE_SHOW:-10}"
    return 1
}

# hostile_summary: print the counts; the exit status of the checker.
hostile_summary()
{
    echo "$pass passed, $failed failed"
    [ $failed -eq 0 ]
}
