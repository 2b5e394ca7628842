#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash-consistency test of vimg convert with failpoints (lib/failpoint.c,
# docs/failpoints.md).  A first run with VIMG_FAILPOINT_COUNT counts the
# data-writing calls of each scenario; then the scenario is repeated with
# VIMG_FAILPOINT=KIND:N:crash (the process dies as with kill -9 right before
# its Nth call) and KIND:N:eio (that call fails) for N = 1..30 and every
# k-th point after that up to the total.  After each run:
#   a) convert -O luks (new target): the file is gone, or it has no LUKS
#      header yet and readers refuse or probe it cleanly (no reader
#      crashes), or it passes `cryptsetup isLuks` and opens with the
#      password in qemu-img.  Once the create step's writes are done the
#      header must be there.  With eio vimg exits 1 with one line on stderr;
#      an error while creating deletes the file (as qemu), an error in the
#      data phase leaves a target that opens (qemu 7.2 keeps it too: checked
#      against qemu-img convert into a full tmpfs).
#   b) convert -n into an existing LUKS image: it stays openable and every
#      512-byte sector reads back as the old or the new content.
#   c) the same into a raw file, and convert -O raw to a new file (sectors
#      are zero or new).
# Sector atomicity is the only guarantee for raw and raw-LUKS targets: no
# journal exists, so a crash leaves a mix of old and new sectors, never a
# torn or garbled one.  (With a crash before the write nothing is torn at
# all; the check also holds for real power loss on 512-byte-atomic disks.)
#
# Environment: VIMG, SRCDIR, BUILDDIR (tests/functions.sh); FP_KIND (default
# "any": every counted call, so flushes and truncates count once the
# formats route them through lib/io.c); FP_FIRST (30) and FP_SPREAD (20):
# points 1..FP_FIRST, then about FP_SPREAD more up to the total.

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "failpoints are a vimg feature"
requires qemu-img
requires cryptsetup
requires python3

KIND=${FP_KIND:-any}
FIRST=${FP_FIRST:-30}
SPREAD=${FP_SPREAD:-20}
QSECRET="secret,id=s0,file=$PWFILE"

# sectors.py OUT CAND...: every 512-byte sector of OUT equals the same
# sector of one of the candidate files ("zero" = all zeroes).
cat >"$TEST_TMP/sectors.py" <<'EOF'
import sys
out = open(sys.argv[1], 'rb').read()
cands = []
for name in sys.argv[2:]:
    cands.append(bytes(len(out)) if name == 'zero' else open(name, 'rb').read())
hits = [0] * len(cands)
bad = []
for off in range(0, len(out), 512):
    s = out[off:off + 512]
    for i, c in enumerate(cands):
        if c[off:off + 512] == s:
            hits[i] += 1
            break
    else:
        bad.append(off // 512)
print('sectors=%d matches=%s bad=%d%s' % (len(out) // 512, hits, len(bad),
      (' first-bad=%d' % bad[0]) if bad else ''))
sys.exit(1 if bad else 0)
EOF

# count_calls CMD...: run CMD (must succeed) with VIMG_FAILPOINT_COUNT and
# set TOTAL to its number of $KIND calls.
count_calls()
{
    rm -f "$TEST_TMP/count"
    VIMG_FAILPOINT_COUNT=$TEST_TMP/count expect_ok "$@"
    TOTAL=$(awk -v k="$KIND" '$1 == k { print $2 }' "$TEST_TMP/count")
    [ -n "$TOTAL" ] && [ "$TOTAL" -gt 0 ] ||
        fail "no $KIND calls counted for: $*"
}

# points TOTAL: the N values to try.
points()
{
    local total=$1 n step
    step=$(((total - FIRST) / SPREAD))
    [ "$step" -ge 1 ] || step=1
    for ((n = 1; n <= total && n <= FIRST; n++)); do
        echo "$n"
    done
    for ((n = FIRST + step; n < total; n += step)); do
        echo "$n"
    done
    [ "$total" -gt "$FIRST" ] && echo "$total"
    return 0
}

# run_fp SPEC CMD...: run CMD with VIMG_FAILPOINT=SPEC, output in LAST_*.
run_fp()
{
    local spec=$1
    shift
    LAST_RC=0
    # The subshell (no exec) reports the SIGKILL of its child as rc 137;
    # its "Killed" job message goes to /dev/null instead of the log.
    ( VIMG_FAILPOINT=$spec "$@" >"$LAST_OUT" 2>"$LAST_ERR"; exit $? ) \
        2>/dev/null || LAST_RC=$?
}

# expect_outcome ACTION WHAT: check rc/stderr of the last run_fp.
expect_outcome()
{
    local action=$1 what=$2 lines
    if [ "$action" = crash ]; then
        [ "$LAST_RC" = 137 ] ||
            { _show_last "$what"; fail "$what: expected SIGKILL (rc 137)"; }
        return
    fi
    [ "$LAST_RC" = 1 ] ||
        { _show_last "$what"; fail "$what: expected rc 1 for an I/O error"; }
    lines=$(wc -l <"$LAST_ERR")
    [ "$lines" = 1 ] ||
        { _show_last "$what"; fail "$what: expected one line of error"; }
    grep -q 'Input/output error' "$LAST_ERR" ||
        { _show_last "$what"; fail "$what: error does not say EIO"; }
}

# reader_ok RC WHAT: a reader may refuse (rc 1) but never crash.
reader_ok()
{
    case "$1" in
        0|1) ;;
        *) fail "$2: reader exit code $1 (crash?)" ;;
    esac
}

# check_luks_target FILE WHAT MUST_HAVE_HEADER: the invariant of scenario a.
check_luks_target()
{
    local f=$1 what=$2 must=$3 rc
    if [ ! -e "$f" ]; then
        [ "$must" = 0 ] || fail "$what: target vanished after the header was written"
        return 0
    fi
    if cryptsetup isLuks "$f" 2>/dev/null; then
        run_cmd qemu-img convert --object "$QSECRET" --image-opts \
            "$(luks_opts "$f")" -O raw "$TEST_TMP/out.raw"
        [ "$LAST_RC" = 0 ] ||
            { _show_last "qemu-img convert $f"; fail "$what: LUKS header present but qemu-img cannot open it"; }
        run_cmd qemu-img info "$f"
        [ "$LAST_RC" = 0 ] || { _show_last "qemu-img info"; fail "$what: qemu-img info"; }
        run_cmd "$VIMG" info --object "$QSECRET" --image-opts "$(luks_opts "$f")"
        [ "$LAST_RC" = 0 ] || { _show_last "vimg info"; fail "$what: vimg info"; }
        return 0
    fi
    [ "$must" = 0 ] || fail "$what: no LUKS header although create had finished"
    # No header (yet): readers must refuse or probe it, without crashing.
    run_cmd qemu-img info "$f"
    reader_ok "$LAST_RC" "$what: qemu-img info"
    run_cmd qemu-img info -f luks "$f"
    rc=$LAST_RC
    [ "$rc" = 1 ] || { _show_last "qemu-img info -f luks"; fail "$what: qemu-img accepted a headerless LUKS file"; }
    run_cmd "$VIMG" info "$f"
    reader_ok "$LAST_RC" "$what: vimg info"
    run_cmd "$VIMG" info -f luks "$f"
    [ "$LAST_RC" = 1 ] || { _show_last "vimg info -f luks"; fail "$what: vimg accepted a headerless LUKS file"; }
    run_cmd "$VIMG" convert --object "$QSECRET" --image-opts "$(luks_opts "$f")" \
        -O raw "$TEST_TMP/out2.raw"
    [ "$LAST_RC" = 1 ] || { _show_last "vimg convert"; fail "$what: vimg read a headerless LUKS file"; }
}

# sectors_ok OUT WHAT CAND...: sector-wise old-or-new check.
sectors_ok()
{
    local out=$1 what=$2
    shift 2
    python3 "$TEST_TMP/sectors.py" "$out" "$@" >"$TEST_TMP/sectors.log" ||
        fail "$what: torn or foreign sectors: $(cat "$TEST_TMP/sectors.log")"
}

# Source data: 8 MiB random with a 256 KiB zero run in every MiB (so the
# copy splits its writes and zero handling is exercised); the old content
# for the -n scenarios is other random data.
python3 - "$TEST_TMP" <<'EOF'
import os, sys
d = sys.argv[1]
b = bytearray(os.urandom(8 << 20))
for i in range(8):
    o = (i << 20) + (3 << 18)
    b[o:o + (1 << 18)] = bytes(1 << 18)
open(d + '/new.raw', 'wb').write(b)
open(d + '/old.raw', 'wb').write(os.urandom(8 << 20))
EOF
NEW=$TEST_TMP/new.raw
OLD=$TEST_TMP/old.raw

# Does this binary have failpoints?  (A convert makes counted writes.)
VIMG_FAILPOINT_COUNT=$TEST_TMP/probe.count "$VIMG" convert -O raw "$NEW" \
    "$TEST_TMP/probe.raw" >/dev/null 2>&1
[ -s "$TEST_TMP/probe.count" ] ||
    skip "$VIMG does not write VIMG_FAILPOINT_COUNT (built without failpoints)"
rm -f "$TEST_TMP/probe.raw"
LUKS_CREATE=(-o key-secret=s0,iter-count=1000)
TOTAL=0
tried=0

# ---- a) convert -O luks to a new file ------------------------------------
count_calls "$VIMG" create -q -f luks --object "$QSECRET" "${LUKS_CREATE[@]}" \
    "$TEST_TMP/c.luks" 8M
CREATE_CALLS=$TOTAL
CONVERT_LUKS=("$VIMG" convert -O luks --object "$QSECRET" "${LUKS_CREATE[@]}"
              "$NEW" "$TEST_TMP/t.luks")
rm -f "$TEST_TMP/t.luks"
count_calls "${CONVERT_LUKS[@]}"
expect_ok qemu-img compare --object "$QSECRET" --image-opts \
    "driver=raw,file.filename=$NEW" "$(luks_opts "$TEST_TMP/t.luks")"
A_TOTAL=$TOTAL
for action in crash eio; do
    for n in $(points "$A_TOTAL"); do
        rm -f "$TEST_TMP/t.luks"
        what="a) convert -O luks, $KIND:$n:$action"
        run_fp "$KIND:$n:$action" "${CONVERT_LUKS[@]}"
        expect_outcome "$action" "$what"
        must=0
        [ "$n" -gt "$CREATE_CALLS" ] && must=1
        if [ "$action" = eio ] && [ "$must" = 0 ] && [ -e "$TEST_TMP/t.luks" ]; then
            fail "$what: failed create left $TEST_TMP/t.luks behind"
        fi
        check_luks_target "$TEST_TMP/t.luks" "$what" "$must"
        tried=$((tried + 1))
    done
done
echo "a) convert -O luks: $A_TOTAL $KIND calls (create: $CREATE_CALLS), crash+eio ok"

# ---- b) convert -n into an existing LUKS image ---------------------------
rm -f "$TEST_TMP/base.luks"
vimg_create_luks "$TEST_TMP/base.luks" 8M
expect_ok "$VIMG" convert -n --object "$QSECRET" "$OLD" --target-image-opts \
    "$(luks_opts "$TEST_TMP/base.luks")"
CONVERT_N=("$VIMG" convert -n --object "$QSECRET" "$NEW" --target-image-opts
           "$(luks_opts "$TEST_TMP/w.luks")")
cp --sparse=always "$TEST_TMP/base.luks" "$TEST_TMP/w.luks"
count_calls "${CONVERT_N[@]}"
B_TOTAL=$TOTAL
expect_ok qemu-img compare --object "$QSECRET" --image-opts \
    "driver=raw,file.filename=$NEW" "$(luks_opts "$TEST_TMP/w.luks")"
for action in crash eio; do
    for n in $(points "$B_TOTAL"); do
        cp --sparse=always "$TEST_TMP/base.luks" "$TEST_TMP/w.luks"
        what="b) convert -n luks, $KIND:$n:$action"
        run_fp "$KIND:$n:$action" "${CONVERT_N[@]}"
        expect_outcome "$action" "$what"
        cryptsetup isLuks "$TEST_TMP/w.luks" || fail "$what: isLuks"
        expect_ok qemu-img convert --object "$QSECRET" --image-opts \
            "$(luks_opts "$TEST_TMP/w.luks")" -O raw "$TEST_TMP/out.raw"
        sectors_ok "$TEST_TMP/out.raw" "$what" "$OLD" "$NEW"
        tried=$((tried + 1))
    done
done
echo "b) convert -n luks: $B_TOTAL $KIND calls, crash+eio ok ($(cat "$TEST_TMP/sectors.log"))"

# ---- c) raw targets: convert -n into an existing file, and -O raw --------
CONVERT_RAW_N=("$VIMG" convert -n -O raw "$NEW" "$TEST_TMP/w.raw")
cp "$OLD" "$TEST_TMP/w.raw"
count_calls "${CONVERT_RAW_N[@]}"
C_TOTAL=$TOTAL
C_WRITES=$(awk '$1 == "write" { print $2 }' "$TEST_TMP/count")
assert_same_file "$TEST_TMP/w.raw" "$NEW" "c) complete raw -n convert"
for action in crash eio; do
    for n in $(points "$C_TOTAL"); do
        cp "$OLD" "$TEST_TMP/w.raw"
        what="c) convert -n raw, $KIND:$n:$action"
        run_fp "$KIND:$n:$action" "${CONVERT_RAW_N[@]}"
        expect_outcome "$action" "$what"
        sectors_ok "$TEST_TMP/w.raw" "$what" "$OLD" "$NEW"
        tried=$((tried + 1))
    done
done
# qemu-img's wording for a failed data write, e.g.
# "qemu-img: error while writing at byte 4194304: No space left on device".
# The last data write (the last counted call of any kind is the flush).
run_fp "write:$C_WRITES:eio" "${CONVERT_RAW_N[@]}"
if ! grep -qE '^[^ ]*: error while writing at byte [0-9]+: Input/output error$' \
        "$LAST_ERR"; then
    MSG_MISMATCH="convert write error: got '$(cat "$LAST_ERR")', qemu-img says 'error while writing at byte N: Input/output error'"
fi
echo "c) convert -n raw: $C_TOTAL $KIND calls, crash+eio ok ($(cat "$TEST_TMP/sectors.log"))"

# The create step of a raw target sets the new file's size through
# file_truncate (a counted call): a crash there leaves the empty file that
# open(O_CREAT) made, as a kill of qemu-img at that moment would.
rm -f "$TEST_TMP/c.raw"
count_calls "$VIMG" create -q -f raw "$TEST_TMP/c.raw" 8M
RAW_CREATE_CALLS=$TOTAL
CONVERT_RAW=("$VIMG" convert -O raw "$NEW" "$TEST_TMP/n.raw")
rm -f "$TEST_TMP/n.raw"
count_calls "${CONVERT_RAW[@]}"
D_TOTAL=$TOTAL
assert_same_file "$TEST_TMP/n.raw" "$NEW" "c) complete raw convert"
for action in crash eio; do
    for n in $(points "$D_TOTAL"); do
        rm -f "$TEST_TMP/n.raw"
        what="c) convert -O raw, $KIND:$n:$action"
        run_fp "$KIND:$n:$action" "${CONVERT_RAW[@]}"
        expect_outcome "$action" "$what"
        if [ -e "$TEST_TMP/n.raw" ]; then
            size=$(stat -c %s "$TEST_TMP/n.raw")
            if [ "$size" = 0 ] && [ "$action" = crash ] &&
                   [ "$n" -le "$RAW_CREATE_CALLS" ]; then
                :   # killed inside create, before the size was set
            else
                [ "$size" = $((8 << 20)) ] ||
                    fail "$what: target has the wrong size ($size)"
                sectors_ok "$TEST_TMP/n.raw" "$what" zero "$NEW"
            fi
        fi
        tried=$((tried + 1))
    done
done
echo "c) convert -O raw: $D_TOTAL $KIND calls, crash+eio ok"

# A failpoint past the last call never fires.
rm -f "$TEST_TMP/n.raw"
run_fp "$KIND:$((D_TOTAL + 1)):crash" "${CONVERT_RAW[@]}"
assert_eq "$LAST_RC" 0 "failpoint past the last call"
assert_same_file "$TEST_TMP/n.raw" "$NEW" "convert with an unreached failpoint"

# A mistyped spec must not pass silently: writes fail with EINVAL.
rm -f "$TEST_TMP/n.raw"
run_fp "write:1:bogus" "${CONVERT_RAW[@]}"
[ "$LAST_RC" = 1 ] && grep -q 'Invalid argument' "$LAST_ERR" ||
    { _show_last "bad spec"; fail "a bad VIMG_FAILPOINT went unnoticed"; }

echo "ok: $tried failpoint runs"
[ -z "${MSG_MISMATCH:-}" ] || fail "$MSG_MISMATCH"
exit 0
