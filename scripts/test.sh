#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The full test run (what CI executes): install missing packages, build
# twice - build/ (normal, --werror) and build-asan/ (AddressSanitizer +
# UndefinedBehaviorSanitizer, --werror) - run `meson test` in both, then
# read meson-logs/testlog.json of each run, print one line per test and
# finally "N passed, N failed, N skipped".  Exits non-zero if any test
# failed (or timed out, or a build failed).
#
# Environment: SKIP_DEPS=1 skips install-deps.sh; BUILDS="build" limits
# the builds; MESON_TEST_ARGS adds arguments to `meson test`.

set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    ./scripts/install-deps.sh
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

builds=(${BUILDS:-build build-asan})
status=0

for b in "${builds[@]}"; do
    case $b in
        *asan*) args=(--werror -Db_sanitize=address,undefined -Db_lundef=false) ;;
        *) args=(--werror) ;;
    esac
    echo "=== $b: configure and build (${args[*]})"
    rm -f "$b/meson-logs/testlog.json" "$b/meson-logs/qemu-img-retries.log"
    if ! ./scripts/build.sh "$b" "${args[@]}"; then
        echo "=== $b: BUILD FAILED"
        status=1
        continue
    fi
    echo "=== $b: meson test"
    # shellcheck disable=SC2086
    meson test -C "$b" --print-errorlogs ${MESON_TEST_ARGS:-} || status=1
done

echo
echo "=== results"
passed=0 failed=0 skipped=0
for b in "${builds[@]}"; do
    log=$top/$b/meson-logs/testlog.json
    if [ ! -f "$log" ]; then
        echo "$b: no test log (build failed?) - counted as 1 failure"
        failed=$((failed + 1))
        continue
    fi
    while IFS=$'\t' read -r name result duration; do
        printf '%-12s %-40s %-8s %6.1fs\n' "$b" "$name" "$result" "$duration"
        case $result in
            OK|EXPECTEDFAIL) passed=$((passed + 1)) ;;
            SKIP) skipped=$((skipped + 1)) ;;
            *) failed=$((failed + 1)) ;;
        esac
    done < <(jq -r '[.name, .result, .duration] | @tsv' "$log")
done
for b in "${builds[@]}"; do
    # tests/peers/qemu-img's retries of qemu-img's PBKDF calibration flake.
    r=$top/$b/meson-logs/qemu-img-retries.log
    [ -f "$r" ] && echo "$b: qemu-img calibration retries: $(wc -l <"$r")"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || status=1
exit $status
