# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Shared pieces of the bench/*.sh scripts; sourced, not run:
#   . "$(dirname "$0")/lib.sh"

# now: wall-clock seconds, with nanoseconds.
now() { date +%s.%N; }

# bench_scratch PREFIX: make the scratch directory $dir under $BENCH_DIR
# (default /tmp), removed on exit, cd into it, write the password file pw
# and set SECRET to the --object definition that reads it (id s0).
bench_scratch()
{
    dir=$(mktemp -d "${BENCH_DIR:-/tmp}/$1.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
    cd "$dir"
    printf 'bench-password' >pw
    SECRET=secret,id=s0,file=$dir/pw
}

# retry_calibration CMD...: run CMD (in the scratch directory), again up to
# 12 times while it fails with qemu-img's flaky LUKS PBKDF calibration
# ("Unable to get accurate CPU usage"); any other failure is final and its
# message is printed.
retry_calibration()
{
    local i
    for i in $(seq 1 12); do
        "$@" 2>err.txt && return 0
        grep -q 'Unable to get accurate CPU usage' err.txt || break
    done
    cat err.txt >&2
    return 1
}
