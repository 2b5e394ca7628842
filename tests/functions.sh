# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash disable=SC2034
#
# Shared helpers for the interop shell tests (tests/test-*.sh).  Each test
# sources this file first.  It provides a private temporary directory that is
# removed on exit (the test runs inside it), skip/fail helpers following the
# meson convention (exit 77 = skipped), assertions on exit codes and stderr,
# and wrappers that create LUKS images with either vimg or the real qemu-img.
#
# Environment (set by tests/meson.build, defaults for running by hand):
#   VIMG      path of the vimg binary under test (may be "qemu-img" to check
#             the scripts themselves against the reference implementation)
#   SRCDIR    the tests/ source directory
#   BUILDDIR  the build root
# Optional: QEMU_RETRIES (default 12), KEEP_TMP=1 (keep the temp directory).

set -u -o pipefail

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
BUILDDIR=${BUILDDIR:-$SRCDIR/../build}
if [ -z "${VIMG:-}" ]; then
    if [ -x "$BUILDDIR/tools/vimg" ]; then
        VIMG=$BUILDDIR/tools/vimg
    else
        VIMG=vimg
    fi
fi
# Make paths absolute: the test runs inside its temporary directory.
SRCDIR=$(cd "$SRCDIR" && pwd)
case "$VIMG" in
    /*) ;;
    */*) VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG") ;;
esac
case "$BUILDDIR" in
    /*) ;;
    *) BUILDDIR=$(cd "$BUILDDIR" 2>/dev/null && pwd || echo "$PWD/$BUILDDIR") ;;
esac
export VIMG SRCDIR BUILDDIR
TEST_NAME=$(basename "$0" .sh)
TEST_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

# The password used by most tests, and the secret file holding it (no
# trailing newline).  Secrets are passed with file= so that vimg's warning
# about data= on the command line does not pollute stderr checks.
PW=vimg-test-passw0rd

# VIMG_IS_QEMU=1 when the scripts are run against qemu-img itself.
case "$(basename "$VIMG")" in
    qemu-img*) VIMG_IS_QEMU=1 ;;
    *) VIMG_IS_QEMU=0 ;;
esac

# ---- skip / fail ----------------------------------------------------------

# skip MSG: end the test as skipped (meson counts exit 77 as SKIP).
skip()
{
    echo "SKIP: $TEST_NAME: $*"
    exit 77
}

# fail MSG: end the test as failed.
fail()
{
    echo "FAIL: $TEST_NAME: $*" >&2
    exit 1
}

# requires CMD [ARGS...]: with one word, skip unless CMD is in $PATH; with
# more, skip unless running the whole command succeeds.
requires()
{
    if [ $# -eq 1 ]; then
        command -v "$1" >/dev/null 2>&1 || skip "$1 not found"
    else
        "$@" >/dev/null 2>&1 || skip "'$*' failed"
    fi
}

# requires_vimg: skip (rather than fail obscurely) if the binary is missing.
requires_vimg()
{
    if [ "$VIMG_IS_QEMU" = 0 ] && [ ! -x "$VIMG" ] && \
           ! command -v "$VIMG" >/dev/null 2>&1; then
        skip "vimg binary '$VIMG' not built"
    fi
}

# ---- temporary directory and cleanup --------------------------------------

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/$TEST_NAME.XXXXXX") || exit 1
CLEANUP_FNS=()

# cleanup_fn CMD [ARGS...]: run this command on exit (last added runs first).
cleanup_fn()
{
    CLEANUP_FNS+=("$(printf '%q ' "$@")")
}

_run_cleanup()
{
    local rc=$? i
    for ((i = ${#CLEANUP_FNS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUP_FNS[i]}" >/dev/null 2>&1 || true
    done
    cd / || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TEST_TMP" >&2
    else
        rm -rf "$TEST_TMP"
    fi
    exit $rc
}
trap _run_cleanup EXIT
trap 'exit 130' INT TERM
cd "$TEST_TMP" || exit 1

printf '%s' "$PW" >"$TEST_TMP/pw"
PWFILE=$TEST_TMP/pw
SECRET="secret,id=s0,file=$PWFILE"

# ---- running commands -----------------------------------------------------

# After every run_cmd / expect_*: LAST_RC, and the files $TEST_TMP/last.out
# and $TEST_TMP/last.err.
LAST_RC=0
LAST_OUT=$TEST_TMP/last.out
LAST_ERR=$TEST_TMP/last.err

# run_cmd CMD...: run, capturing stdout and stderr; never fails itself.
run_cmd()
{
    LAST_RC=0
    "$@" >"$LAST_OUT" 2>"$LAST_ERR" || LAST_RC=$?
}

_show_last()
{
    echo "--- command: $*" >&2
    echo "--- rc: $LAST_RC" >&2
    echo "--- stdout:" >&2
    head -c 4000 "$LAST_OUT" >&2
    echo "--- stderr:" >&2
    head -c 4000 "$LAST_ERR" >&2
}

# expect_rc RC CMD...: the command must exit with RC.
expect_rc()
{
    local want=$1
    shift
    run_cmd "$@"
    if [ "$LAST_RC" != "$want" ]; then
        _show_last "$@"
        fail "expected exit code $want, got $LAST_RC: $*"
    fi
}

# expect_ok CMD...: shorthand for expect_rc 0.
expect_ok()
{
    expect_rc 0 "$@"
}

# expect_stderr TEXT CMD...: the command must fail (non-zero exit) and its
# stderr must contain TEXT (a fixed string).
expect_stderr()
{
    local text=$1
    shift
    run_cmd "$@"
    if [ "$LAST_RC" = 0 ]; then
        _show_last "$@"
        fail "expected failure with '$text', command succeeded: $*"
    fi
    if ! grep -qF -- "$text" "$LAST_ERR"; then
        _show_last "$@"
        fail "stderr lacks '$text': $*"
    fi
}

# expect_error RC TEXT CMD...: exact exit code and stderr containing TEXT.
expect_error()
{
    local want=$1 text=$2
    shift 2
    expect_stderr "$text" "$@"
    if [ "$LAST_RC" != "$want" ]; then
        _show_last "$@"
        fail "expected exit code $want, got $LAST_RC: $*"
    fi
}

# assert_eq GOT WANT WHAT: compare two strings.
assert_eq()
{
    if [ "$1" != "$2" ]; then
        fail "$3: got '$1', expected '$2'"
    fi
}

# assert_same_file A B WHAT: byte-identical files (cmp).
assert_same_file()
{
    cmp -- "$1" "$2" >&2 || fail "$3: $1 and $2 differ"
}

# grep_last TEXT [stdout|stderr]: the last command's output contains TEXT.
grep_last()
{
    local f=$LAST_OUT
    [ "${2:-stdout}" = stderr ] && f=$LAST_ERR
    grep -qF -- "$1" "$f" || { _show_last "(previous)"; fail "output lacks '$1'"; }
}

# ---- qemu-img helpers -----------------------------------------------------

# qemu_retry CMD...: run a qemu tool that must succeed; on failure show its
# output and return 1.  Output and rc are left in LAST_*.  (Debian 7.2's
# flaky PBKDF calibration error, "Unable to get accurate CPU usage", is
# retried below this, by tests/peers/qemu-img, which meson puts first on
# PATH for every test.)
qemu_retry()
{
    run_cmd "$@"
    if [ "$LAST_RC" != 0 ]; then
        _show_last "$@"
        return 1
    fi
    return 0
}

# qemu_create_luks FILE SIZE [EXTRA_OPTS]: real qemu-img create -f luks
# with secret s0 (=$PW), iter-time=10 and optional extra -o options.
qemu_create_luks()
{
    local file=$1 size=$2 extra=${3:+,$3}
    qemu_retry qemu-img create -q -f luks --object "$SECRET" \
        -o "key-secret=s0,iter-time=10$extra" "$file" "$size" ||
        fail "qemu-img create -f luks $file $size $extra failed"
}

# vimg_create_luks FILE SIZE [EXTRA_OPTS]: the same with $VIMG, using
# vimg's explicit iter-count=1000 (qemu-img: iter-time=10 with retries).
vimg_create_luks()
{
    local file=$1 size=$2 extra=${3:+,$3}
    if [ "$VIMG_IS_QEMU" = 1 ]; then
        qemu_retry "$VIMG" create -q -f luks --object "$SECRET" \
            -o "key-secret=s0,iter-time=10$extra" "$file" "$size" ||
            fail "$VIMG create -f luks $file $size $extra failed"
    else
        expect_ok "$VIMG" create -q -f luks --object "$SECRET" \
            -o "key-secret=s0,iter-count=1000$extra" "$file" "$size"
    fi
}

# luks_opts FILE [SECRET_ID]: the --image-opts string opening FILE as luks.
luks_opts()
{
    echo "driver=luks,key-secret=${2:-s0},file.filename=$1"
}

# random_file FILE SIZE_MIB: SIZE_MIB MiB of random data.
random_file()
{
    head -c "$(($2 * 1048576))" /dev/urandom >"$1" ||
        fail "cannot write $1"
}

# pattern_file FILE BYTE SIZE: SIZE bytes all equal to BYTE (e.g. 0x5a).
pattern_file()
{
    head -c "$3" /dev/zero | tr '\0' "\\$(printf '%03o' "$2")" >"$1"
}

# sha FILE: the sha256 of FILE.
sha()
{
    sha256sum "$1" | cut -d' ' -f1
}

# luks_combos FILE: write every LUKS1 cipher combination QEMU 7.2 accepts,
# one per line "cipher mode ivgen ivhash hash" (ivhash '' unless essiv),
# 117 in all (see test-luks-interop-vimg2qemu.sh for the arithmetic).  The
# PBKDF hash rotates over HASHES (default: sha256 sha1 sha512 sha224 sha384
# ripemd160 md5).  COMBO_FILTER=REGEX keeps the matching names only, where
# the name is "cipher-mode-ivgen[:ivhash]/hash".  Sets COMBO_COUNT to the
# number before filtering.
luks_combos()
{
    local out=$1 cipher mode ivgen ivhash h name
    local -a hashes=(${HASHES:-sha256 sha1 sha512 sha224 sha384 ripemd160 md5})
    COMBO_COUNT=0
    : >"$out"
    for cipher in aes-128 aes-192 aes-256 serpent-128 serpent-192 \
                  serpent-256 twofish-128 twofish-192 twofish-256 cast5-128; do
        for mode in ecb cbc ctr xts; do
            [ "$cipher" = cast5-128 ] && [ "$mode" = xts ] && continue
            for ivgen in plain plain64 essiv; do
                ivhash=
                if [ "$ivgen" = essiv ]; then
                    ivhash=sha256
                    [ "$cipher" = cast5-128 ] && ivhash=md5
                fi
                h=${hashes[COMBO_COUNT % ${#hashes[@]}]}
                COMBO_COUNT=$((COMBO_COUNT + 1))
                name="$cipher-$mode-$ivgen${ivhash:+:$ivhash}/$h"
                if [ -n "${COMBO_FILTER:-}" ] && \
                       ! [[ $name =~ $COMBO_FILTER ]]; then
                    continue
                fi
                echo "$cipher $mode $ivgen ${ivhash:-''} $h" >>"$out"
            done
        done
    done
}

# run_combos FILE: run this test script with --one on each line of FILE, two
# at a time (each child sources functions.sh again and so gets its own temp
# dir), print the children's "ok" / "FAIL" / "skip" lines and fail unless
# every line passed or was skipped.
run_combos()
{
    local total passed failed skipped
    xargs -P2 -L1 bash "$TEST_SCRIPT" --one <"$1" >results || true
    cat results
    total=$(wc -l <"$1")
    passed=$(grep -c '^ok ' results || true)
    failed=$(grep -c '^FAIL ' results || true)
    skipped=$(grep -c '^skip ' results || true)
    echo "$passed/$total combinations passed, $failed failed, $skipped skipped"
    [ "$failed" = 0 ] || fail "$failed combination(s) failed"
    assert_eq "$((passed + skipped))" "$total" "combinations with a result"
}

# combo_opts CIPHER MODE IVGEN IVHASH HASH: the luks -o options string.
combo_opts()
{
    local o="cipher-alg=$1,cipher-mode=$2,ivgen-alg=$3,hash-alg=$5"
    [ -n "$4" ] && o+=",ivgen-hash-alg=$4"
    echo "$o"
}

# combo_keybytes CIPHER MODE: master key length in bytes.
combo_keybytes()
{
    local k=$((${1#*-} / 8))
    [ "$2" = xts ] && k=$((k * 2))
    echo "$k"
}

# same_as_qemu ARGS...: run "$VIMG ARGS" and "qemu-img ARGS"; exit code,
# stdout and stderr must match (stderr's "qemu-img:"/"vimg:" prefixes are
# normalised).  Only for commands without side effects on shared files.
# Leaves vimg's results in LAST_*.
same_as_qemu()
{
    local qrc
    run_cmd qemu-img "$@"
    qrc=$LAST_RC
    sed "s/^qemu-img: /PROG: /; s/'qemu-img --help'/'PROG --help'/" \
        "$LAST_ERR" >"$TEST_TMP/qemu.err"
    cp "$LAST_OUT" "$TEST_TMP/qemu.out"
    run_cmd "$VIMG" "$@"
    sed "s/^[^ :]*vimg: /PROG: /; s/^qemu-img: /PROG: /;
         s/'[^ ']*vimg --help'/'PROG --help'/; s/'qemu-img --help'/'PROG --help'/" \
        "$LAST_ERR" >"$TEST_TMP/vimg.err"
    if [ "$qrc" != "$LAST_RC" ] || ! cmp -s "$TEST_TMP/qemu.out" "$LAST_OUT" ||
           ! cmp -s "$TEST_TMP/qemu.err" "$TEST_TMP/vimg.err"; then
        echo "--- qemu-img $* (rc $qrc):" >&2
        cat "$TEST_TMP/qemu.out" "$TEST_TMP/qemu.err" >&2
        echo "--- vimg (rc $LAST_RC):" >&2
        cat "$LAST_OUT" "$TEST_TMP/vimg.err" >&2
        fail "vimg and qemu-img disagree on: $*"
    fi
}

# qcheck ARGS...: `qemu-img check ARGS` must exit 0 (a clean image).
qcheck()
{
    run_cmd qemu-img check "$@"
    if [ "$LAST_RC" != 0 ]; then
        _show_last qemu-img check "$@"
        fail "qemu-img check $*: exit code $LAST_RC"
    fi
}
