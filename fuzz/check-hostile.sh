#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run the vimg CLI on every hostile LUKS1 header in
# tests/images/hostile/luks1/ and compare with the EXPECTED file there:
#   $VIMG info -f luks FILE
#   $VIMG convert --object secret,id=s0,data=pw
#         --image-opts driver=luks,key-secret=s0,file.filename=FILE out.raw
# Each run must exit with status 1 and print the expected message; an exit
# status >= 128 (a signal), a sanitizer report, an output file left behind
# or a changed input file is a failure.  Runs are limited to 60 s each.
#
# Usage: VIMG=build/tools/vimg fuzz/check-hostile.sh [DIR]
#        VIMG=qemu-img fuzz/check-hostile.sh   (re-checks the expectations)
# Prints one "ok"/"not ok" line per check and "N passed, N failed"; exit
# status 0 only if everything passed, 77 if $VIMG is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../tests/images/hostile/luks1}
VIMG=${VIMG:-$here/../build/tools/vimg}

# The commands run in a scratch directory: make a relative path absolute.
case $VIMG in
    /*) ;;
    */*) VIMG=$(pwd)/$VIMG ;;
esac
if ! command -v "$VIMG" >/dev/null 2>&1; then
    echo "SKIP: vimg not found ($VIMG); set VIMG=path/to/vimg"
    exit 77
fi
if [ ! -r "$dir/EXPECTED" ]; then
    echo "ERROR: $dir/EXPECTED missing" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0
failed=0

# check NAME WANT CMD...: run CMD in $work, judge rc/stderr against WANT.
check()
{
    local name=$1 want=$2 rc
    shift 2
    rm -f "$work/out.raw" "$work/stderr"
    (cd "$work" && timeout -k 5 60 "$@" >/dev/null 2>"$work/stderr")
    rc=$?
    local why=""
    if [ $rc -ge 124 ]; then
        why="exit status $rc (signal, timeout or cannot run)"
    elif grep -qE 'Sanitizer|runtime error:|AddressSanitizer|LeakSanitizer' "$work/stderr"; then
        why="sanitizer report"
    elif [ $rc -ne 1 ]; then
        why="exit status $rc, expected 1"
    elif ! grep -qF -- "$want" "$work/stderr"; then
        why="message lacks '$want'"
    elif [ -e "$work/out.raw" ]; then
        why="out.raw was created"
    fi
    if [ -z "$why" ]; then
        echo "ok - $name"
        pass=$((pass + 1))
    else
        echo "not ok - $name: $why"
        sed 's/^/#   /' "$work/stderr" | head -20
        failed=$((failed + 1))
    fi
}

while IFS=$'\t' read -r file info conv; do
    case $file in
        ''|'#'*) continue ;;
    esac
    img=$dir/$file
    if [ ! -r "$img" ]; then
        echo "not ok - $file: file missing"
        failed=$((failed + 1))
        continue
    fi
    before=$(sha256sum < "$img")
    check "info $file" "$info" "$VIMG" info -f luks "$img"
    check "convert $file" "$conv" "$VIMG" convert \
        --object secret,id=s0,data=pw \
        --image-opts "driver=luks,key-secret=s0,file.filename=$img" \
        -O raw out.raw
    if [ "$(sha256sum < "$img")" != "$before" ]; then
        echo "not ok - $file: image was modified"
        failed=$((failed + 1))
    fi
done < "$dir/EXPECTED"

echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
