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

. "$(dirname "$0")/hostile-lib.sh"
root=${1:-$here/../tests/images/hostile}
hostile_init
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

# check NAME RC MSG CMD...: hostile_run with the VIMG-DIFFERENCES row of
# the current file, if any.
check()
{
    local want_rc=$2 want=$3
    differ "$cur_dir" "$cur_file" "${1%% *}"
    hostile_run "$1" "$want_rc" "$want" "${@:4}"
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
            fail "$file: file missing"
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
                ok "convert $file: same bytes as qemu-img"
            else
                fail "convert $file: output differs from qemu-img's"
            fi
            rm -f "$work/vimg.raw" "$work/qemu.raw"
        fi
        if [ "$(sha256sum < "$img")" != "$before" ]; then
            fail "$file: image was modified"
        fi
    done < "$dir/EXPECTED"
}

run_dir qcow2 "$root/qcow2"
run_dir qcow "$root/qcow1"

hostile_summary
