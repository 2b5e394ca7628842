#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Help and usage errors of the vimg tool: global --help/--version, every
# command's --help (exit 0, mentions each of its options), `vimg help CMD`,
# and qemu-img style failures (exit 1) for unknown commands and options.
# Needs $VIMG (path to the binary); exit 77 = skip.

set -u
if [ -z "${VIMG:-}" ] || [ ! -x "$VIMG" ]; then
    echo "VIMG not set"
    exit 77
fi

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect RC CMD... : run, keep stdout/stderr in $tmp, check the exit code.
expect() {
    local want=$1; shift
    "$VIMG" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ "$rc" = "$want" ] || fail "vimg $* exited $rc, want $want"
}
mentions() {  # mentions FILE WORD...
    local f=$1; shift
    for w in "$@"; do
        grep -q -e "$w" "$f" || fail "'$w' not in $(basename "$f") of: $ctx"
    done
}

ctx="--help"
expect 0 --help
mentions "$tmp/out" create info convert dd compare io map measure resize
ctx="-h"; expect 0 -h
ctx="--version"; expect 0 --version
mentions "$tmp/out" "vimg version"
ctx="-V"; expect 0 -V

declare -A opts=(
    [create]="--object -q -f -o -b -F -u"
    [info]="--object --image-opts -f --output --backing-chain -U"
    [convert]="--object --image-opts --target-image-opts --target-is-zero -n -f -O -o -S -c -p -q -m -W -t -T -U"
    [dd]="--object --image-opts -f -O bs= count= skip= if= of= -U"
    [compare]="--object --image-opts -f -F -s -p -q -U"
    [io]="--object --image-opts -c --cmd -f --format -r --read-only -U"
    [map]="--object --image-opts -f --start-offset --max-length --output -U"
    [measure]="--output -O -o --size --object --image-opts -f -l"
    [resize]="--object --image-opts -f --preallocation -q --shrink"
)
for cmd in "${!opts[@]}"; do
    for h in --help -h; do
        ctx="$cmd $h"
        expect 0 "$cmd" "$h"
        mentions "$tmp/out" "usage: vimg $cmd"
        # shellcheck disable=SC2086
        mentions "$tmp/out" ${opts[$cmd]}
    done
    ctx="help $cmd"
    expect 0 help "$cmd"
    mentions "$tmp/out" "usage: vimg $cmd"

    ctx="$cmd --no-such-option"
    expect 1 "$cmd" --no-such-option x y
    mentions "$tmp/err" "vimg: unrecognized option '--no-such-option'" \
        "Try 'vimg --help'"
    ctx="$cmd -Z"
    expect 1 "$cmd" -Z x y
    mentions "$tmp/err" "unrecognized option '-Z'"
done

ctx="missing argument"
expect 1 create -f
mentions "$tmp/err" "vimg: missing argument for option '-f'"
expect 1 info --output
mentions "$tmp/err" "missing argument for option '--output'"

ctx="unknown command"
expect 1 no-such-command
mentions "$tmp/err" "vimg: Command not found: no-such-command"
expect 1 help no-such-command
expect 1
mentions "$tmp/err" "Not enough arguments"
expect 1 --no-such-global-option

ctx="create -o help"
expect 0 create -f raw -o help
mentions "$tmp/out" "Supported raw options:" "size=<size>"
expect 0 create -f luks -o '?'
mentions "$tmp/out" "key-secret=<str>" "cipher-alg=<str>" "iter-time=<num>"

ctx="compare usage"
expect 1 compare onlyone

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all help checks passed"
