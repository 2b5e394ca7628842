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

. "$(dirname "$0")/hostile-lib.sh"
dir=${1:-$here/../tests/images/hostile/luks1}
hostile_init
if [ ! -r "$dir/EXPECTED" ]; then
    echo "ERROR: $dir/EXPECTED missing" >&2
    exit 1
fi
# Only stderr counts; a failed run must not leave out.raw.
HOSTILE_STDERR_ONLY=1 HOSTILE_NO_OUT_RAW=1 HOSTILE_SHOW=20

while IFS=$'\t' read -r file info conv; do
    case $file in
        ''|'#'*) continue ;;
    esac
    img=$dir/$file
    if [ ! -r "$img" ]; then
        fail "$file: file missing"
        continue
    fi
    before=$(sha256sum < "$img")
    hostile_run "info $file" 1 "$info" "$VIMG" info -f luks "$img"
    hostile_run "convert $file" 1 "$conv" "$VIMG" convert \
        --object secret,id=s0,data=pw \
        --image-opts "driver=luks,key-secret=s0,file.filename=$img" \
        -O raw out.raw
    if [ "$(sha256sum < "$img")" != "$before" ]; then
        fail "$file: image was modified"
    fi
done < "$dir/EXPECTED"

hostile_summary
