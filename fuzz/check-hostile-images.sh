#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run the vimg CLI on every hostile qcow2 and qcow (v1) image of
# tests/images/hostile/qcow2/ and tests/images/hostile/qcow1/ and compare
# with the EXPECTED file of each folder (recorded from qemu-img 7.2):
#   qcow2:  $VIMG info -f qcow2 FILE,  $VIMG check -f qcow2 FILE  and
#           $VIMG convert -f qcow2 -O raw FILE out.raw
#   qcow:   $VIMG info -f qcow FILE         and  $VIMG convert -f qcow -O raw
#                                                 FILE out.raw
# Each run must exit with the expected status and print the expected
# message (a substring of stdout+stderr, '-' = any).  An exit status >= 124
# (a signal, a timeout), a sanitizer report or a changed input file is
# always a failure.  When a convert succeeds and qemu-img is
# installed, out.raw must be byte-identical to qemu-img's conversion.
# Runs are limited to 60 s each.
#
# Usage: VIMG=build/tools/vimg fuzz/check-hostile-images.sh [ROOT]
#        VIMG=qemu-img fuzz/check-hostile-images.sh  (re-checks EXPECTED)
# ROOT defaults to tests/images/hostile.  Prints one "ok"/"not ok" line per
# check and "N passed, N failed"; exit status 0 only if everything passed,
# 77 if $VIMG is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$here/../tests/images/hostile}
VIMG=${VIMG:-$here/../build/tools/vimg}

case $VIMG in
    /*) ;;
    */*) VIMG=$(pwd)/$VIMG ;;
esac
if ! command -v "$VIMG" >/dev/null 2>&1; then
    echo "SKIP: vimg not found ($VIMG); set VIMG=path/to/vimg"
    exit 77
fi
for d in qcow2 qcow1; do
    if [ ! -r "$root/$d/EXPECTED" ]; then
        echo "ERROR: $root/$d/EXPECTED missing" >&2
        exit 1
    fi
done
have_qemu=0
if command -v qemu-img >/dev/null 2>&1 && [ "$(basename "$VIMG")" != qemu-img ]; then
    have_qemu=1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0
failed=0

# differ DIR FILE CMD: when running vimg, the row of DIR/VIMG-DIFFERENCES for
# FILE and CMD, if any, replaces qemu's expectation (want_rc, want).
differ()
{
    local f c rc msg reason
    [ "$(basename "$VIMG")" != qemu-img ] && [ -r "$1/VIMG-DIFFERENCES" ] || return 0
    while IFS=$'\t' read -r f c rc msg reason; do
        if [ "$f" = "$2" ] && [ "$c" = "$3" ]; then
            want_rc=$rc want=$msg
            echo "# $3 $2: vimg differs from qemu-img: $reason"
        fi
    done < "$1/VIMG-DIFFERENCES"
}

# check NAME RC MSG CMD...: run CMD in $work, judge status and output.
check()
{
    local name=$1 want_rc=$2 want=$3 rc why=""
    shift 3
    differ "$cur_dir" "$cur_file" "${name%% *}"
    rm -f "$work/out.raw" "$work/output"
    (cd "$work" && timeout -k 5 60 "$@" >"$work/output" 2>&1)
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
    fi
    if [ -z "$why" ]; then
        echo "ok - $name"
        pass=$((pass + 1))
        return 0
    fi
    echo "not ok - $name: $why"
    sed 's/^/#   /' "$work/output" | head -10
    failed=$((failed + 1))
    return 1
}

run_dir()
{
    local fmt=$1 dir=$2 file irc imsg rc2 msg2 rc3 msg3 img before
    while IFS=$'\t' read -r file irc imsg rc2 msg2 rc3 msg3; do
        case $file in
            ''|'#'*) continue ;;
        esac
        img=$dir/$file
        cur_dir=$dir cur_file=$file
        if [ ! -r "$img" ]; then
            echo "not ok - $file: file missing"
            failed=$((failed + 1))
            continue
        fi
        before=$(sha256sum < "$img")
        check "info $fmt $file" "$irc" "$imsg" "$VIMG" info -f "$fmt" "$img"
        if [ "$fmt" = qcow2 ]; then
            check "check $file" "$rc2" "$msg2" "$VIMG" check -f qcow2 "$img"
            # qcow2 rows have a third command: convert.
            rc2=$rc3 msg2=$msg3
        fi
        if check "convert $file" "$rc2" "$msg2" \
                "$VIMG" convert -f "$fmt" -O raw "$img" out.raw &&
                [ "$last_rc" = 0 ] && [ $have_qemu = 1 ]; then
            mv "$work/out.raw" "$work/vimg.raw"
            qemu-img convert -f "$fmt" -O raw "$img" "$work/qemu.raw" 2>/dev/null
            if cmp -s "$work/vimg.raw" "$work/qemu.raw"; then
                echo "ok - convert $file: same bytes as qemu-img"
                pass=$((pass + 1))
            else
                echo "not ok - convert $file: output differs from qemu-img's"
                failed=$((failed + 1))
            fi
            rm -f "$work/vimg.raw" "$work/qemu.raw"
        fi
        if [ "$(sha256sum < "$img")" != "$before" ]; then
            echo "not ok - $file: image was modified"
            failed=$((failed + 1))
        fi
    done < "$dir/EXPECTED"
}

run_dir qcow2 "$root/qcow2"
run_dir qcow "$root/qcow1"

echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
