# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Shared pieces of the bench/*.sh scripts; sourced, not run:
#   . "$(dirname "$0")/lib.sh"

# now: wall-clock seconds, with nanoseconds.
now() { date +%s.%N; }

# bench_scratch PREFIX: make the scratch directory $dir under $BENCH_DIR
# (default /tmp), removed on exit, cd into it, write the password file pw
# and set SECRET to the --object definition that reads it (id s0).  A
# relative VIMG path (build/tools/vimg) or BENCH_DIR is made absolute first,
# as it would not be found from the scratch directory.
bench_scratch()
{
    case ${VIMG:-} in
        /*|'') ;;
        */*) VIMG=$PWD/$VIMG ;;
    esac
    dir=$(mktemp -d "${BENCH_DIR:-/tmp}/$1.XXXXXX")
    dir=$(cd "$dir" && pwd)
    trap 'rm -rf "$dir"' EXIT
    cd "$dir"
    printf 'bench-password' >pw
    SECRET=secret,id=s0,file=$dir/pw
}

# retry_calibration CMD...: run CMD (in the scratch directory), again up to
# 12 times while it fails with qemu-img's flaky LUKS PBKDF calibration
# ("Unable to get accurate CPU usage"); any other failure is final and its
# message is printed.  (The tests get this from tests/peers/qemu-img on
# PATH; the benchmarks keep it to the untimed creates, so every timed run
# calls the real qemu-img with nothing in between.)
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

# settle FILE...: put the page cache in the same state before every timed
# run: write back dirty pages, drop the clean ones (root only; without it
# this step is skipped and said once), then read FILE... (the run's input)
# back in, so that input is warm and the output's pages are fresh for each
# tool and mode alike.  Why: on the project VM a write run that follows
# another 2 GiB run without this took 2.2-2.7x as long (kernel copy time
# 0.7 -> 4 s) whichever of plain and LUKS came second; with it every run
# took the time of a first one.
SETTLE_WARNED=
settle()
{
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 >/proc/sys/vm/drop_caches
    elif [ -z "$SETTLE_WARNED" ]; then
        echo "note: not root, page cache not dropped between runs" >&2
        SETTLE_WARNED=1
    fi
    cat "$@" >/dev/null
}
