#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash consistency of vimg's qcow2 writer, with failpoints (docs/
# failpoints.md).  Each scenario is run once with VIMG_FAILPOINT_COUNT to
# learn how many counted calls it makes (kind $FP_KIND, default "any"),
# then again with VIMG_FAILPOINT=KIND:N:crash and KIND:N:eio for N = 1..T
# (sampled down to about $CRASH_POINTS points when T is larger).  After
# every run the real `qemu-img check` must find no corruption (exit status
# 0, or 3 = leaked clusters only; `vimg check` likewise), and data must
# read back through qemu-img:
#   a) vimg convert -O qcow2 of 16 MiB of random data to a new file: the
#      file may be missing or not (yet) a qcow2 image only while the create
#      step runs (its call count is measured with vimg create); once the
#      convert succeeded the data must be identical.
#   b) vimg io with several write -P / write -z commands and -c flush on an
#      existing qcow2: every 512-byte sector must hold what it held after
#      the last flush known to have completed (the run made more calls than
#      the same workload cut after that flush makes in total), or the data
#      of a write issued after that flush.
#   c) the same on qcow2 with LUKS encryption (read back with the key).
#   d) vimg resize of a qcow2 from 16 MiB to 8 GiB (4 KiB clusters: the L1
#      table and the refcount structures grow): the virtual size is the old
#      or the new one and the first 16 MiB read back unchanged.
#   s) vimg snapshot -c / -d / -a on a qcow2 with an internal snapshot (see
#      scenario_s; run by tests/test-crash-snapshot.sh).
#   r) vimg amend -o refcount_bits=2 / =64 on a qcow2 with an internal
#      snapshot (see scenario_r; run by tests/test-crash-amend.sh).
# With eio, vimg must exit with status 1 (no signal).
#
# Environment: VIMG, SRCDIR, BUILDDIR (tests/functions.sh); FP_KIND (any,
# write or flush); CRASH_POINTS (60); CRASH_SCENARIOS (default "a b c d";
# "s" is the snapshot scenario).
# On failure the exact command line to reproduce is printed.

. "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
[ "$VIMG_IS_QEMU" = 0 ] || skip "failpoints are a vimg feature"
requires qemu-img
requires python3

KIND=${FP_KIND:-any}
POINTS=${CRASH_POINTS:-60}
SCENARIOS=${CRASH_SCENARIOS:-a b c d}
QSEC="secret,id=s0,file=$PWFILE"
nfail=0
nrun=0

# points TOTAL: nothing when TOTAL is 0, 1..TOTAL, or about $POINTS of them spread evenly (always
# 1, 2, 3 and TOTAL).
points()
{
    [ "$1" -gt 0 ] || return 0
    python3 - "$1" "$POINTS" <<'EOF'
import sys
t, n = int(sys.argv[1]), int(sys.argv[2])
if t <= n:
    pts = range(1, t + 1)
else:
    pts = sorted({1, 2, 3, t} | {1 + (i * (t - 1)) // (n - 1) for i in range(n)})
print(" ".join(map(str, pts)))
EOF
}

# count VAR CMD...: run CMD (it must succeed) and store its $KIND calls.
count()
{
    local var=$1
    shift
    rm -f "$TEST_TMP/count"
    VIMG_FAILPOINT_COUNT=$TEST_TMP/count "$@" >/dev/null 2>&1 ||
        fail "counting run failed: $*"
    printf -v "$var" '%s' "$(awk -v k="$KIND" '$1 == k { print $2 }' \
        "$TEST_TMP/count" 2>/dev/null || echo 0)"
    [ -n "${!var}" ] || printf -v "$var" 0
}

bad()
{
    echo "not ok - $*"
    nfail=$((nfail + 1))
}

# need_calls TOTAL WHAT: a scenario without any call of kind $KIND cannot
# be tested (a write path that bypasses lib/io.c?): a failure.
need_calls()
{
    [ "$1" -gt 0 ] || bad "$2: no '$KIND' calls counted, nothing to interrupt"
}

# qcheck IMG OPTS...: qemu-img check must report no corruption, and so
# must vimg check (both exit status 0 or 3).
qcheck()
{
    local img=$1 rc tool
    shift
    for tool in qemu-img "$VIMG"; do
        "$tool" check "$@" "$img" >"$TEST_TMP/check.out" 2>&1
        rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
            echo "#   $(basename "$tool") check: exit status $rc"
            sed 's/^/#   /' "$TEST_TMP/check.out" | head -8
            return 1
        fi
    done
    return 0
}

# fprun ACTION N CMD...: run CMD with the failpoint; judge the exit status.
fprun()
{
    local action=$1 n=$2 rc
    shift 2
    # (A subshell, so bash's "Killed" notice goes to /dev/null.)
    (VIMG_FAILPOINT=$KIND:$n:$action "$@" >/dev/null 2>"$TEST_TMP/fp.err"
     exit $?) 2>/dev/null
    rc=$?
    if [ "$action" = crash ] && [ $rc -ne 137 ] && [ $rc -ne 0 ]; then
        echo "# unexpected status $rc after crash point (stderr follows)"
        head -3 "$TEST_TMP/fp.err" | sed 's/^/#   /'
    fi
    if [ "$action" = eio ] && [ $rc -ne 1 ] && [ $rc -ne 0 ]; then
        return 1
    fi
    if grep -qE 'Sanitizer|runtime error:' "$TEST_TMP/fp.err"; then
        return 1
    fi
    return 0
}

# ---- sectors.py: per-sector check of a raw dump against a workload ------
cat >"$TEST_TMP/sectors.py" <<'EOF'
# sectors.py DUMP BASE K OPS...: OPS are "P:off:len:byte", "Z:off:len" or
# "F" (flush).  The state after the K-th flush is BASE with every op before
# it applied.  Each 512-byte sector of DUMP must equal that state, or the
# data of one op after the K-th flush that covers it.
import sys
dump = open(sys.argv[1], "rb").read()
state = bytearray(open(sys.argv[2], "rb").read())
k = int(sys.argv[3])
ops = sys.argv[4:]
flushes = 0
later = []
for op in ops:
    f = op.split(":")
    if f[0] == "F":
        flushes += 1
        continue
    off, ln = int(f[1]), int(f[2])
    data = bytes([int(f[3], 0)]) * ln if f[0] == "P" else bytes(ln)
    if flushes < k:
        state[off:off + ln] = data
    else:
        later.append((off, ln, data[:512]))
if len(dump) != len(state):
    sys.exit("size %d, expected %d" % (len(dump), len(state)))
bad = 0
for s in range(0, len(dump), 512):
    sec = dump[s:s + 512]
    if sec == state[s:s + 512]:
        continue
    if any(o <= s and s + 512 <= o + l and sec == d for o, l, d in later):
        continue
    if bad < 3:
        print("#   sector at %d: neither the flushed state nor a later write"
              % s)
    bad += 1
sys.exit(1 if bad else 0)
EOF

# ---- a) convert -O qcow2 -------------------------------------------------
scenario_a()
{
    local total create n action
    head -c $((16 << 20)) /dev/urandom > src.raw
    count create "$VIMG" create -q -f qcow2 c.qcow2 16M
    rm -f c.qcow2
    count total "$VIMG" convert -O qcow2 src.raw c.qcow2
    { qemu-img convert -f qcow2 -O raw c.qcow2 out.raw && cmp -s out.raw src.raw; } ||
        bad "a: reference convert does not read back"
    echo "# a) convert: $total $KIND calls ($create in the create step)"
    need_calls "$total" "a) convert"
    for n in $(points "$total"); do
        for action in crash eio; do
            rm -f c.qcow2 out.raw
            nrun=$((nrun + 1))
            local repro="VIMG_FAILPOINT=$KIND:$n:$action $VIMG convert -O qcow2 src.raw c.qcow2"
            if ! fprun $action "$n" "$VIMG" convert -O qcow2 src.raw c.qcow2; then
                bad "a $action $n: bad exit or sanitizer report: $repro"
                continue
            fi
            [ -e c.qcow2 ] || continue
            if ! qemu-img info -f qcow2 c.qcow2 >/dev/null 2>&1; then
                [ "$n" -le "$create" ] ||
                    bad "a $action $n: qcow2 unreadable after the create step: $repro"
                continue
            fi
            qcheck c.qcow2 -f qcow2 ||
                bad "a $action $n: qemu-img check finds corruption: $repro"
        done
    done
}

# ---- b/c) io workloads ---------------------------------------------------
OPS=("P:0:1048576:0x11" "P:2097152:524288:0x22" F
     "P:524288:1048576:0x33" "P:8388608:65536:0x44" F
     "P:102400:3072:0x55" "Z:2097152:65536" F
     "P:4194304:2097152:0x66" "P:15728640:1048576:0x77" F)

# io_args K: the vimg io -c arguments of OPS up to the K-th flush (all for
# K < 0).
io_args()
{
    local k=$1 f=0 op
    IO=()
    for op in "${OPS[@]}"; do
        IFS=: read -r t o l p <<<"$op"
        case $t in
            P) IO+=(-c "write -P $p $o $l") ;;
            Z) IO+=(-c "write -z $o $l") ;;
            F) IO+=(-c flush); f=$((f + 1))
               [ "$k" -ge 0 ] && [ $f -ge "$k" ] && return ;;
        esac
    done
}

# scenario_io NAME LUKS: b (LUKS 0) or c (LUKS 1).
scenario_io()
{
    local name=$1 luks=$2 img=io.qcow2 total n action k nflush=0 op
    local -a open qopen ca
    if [ "$luks" = 1 ]; then
        open=(--object "$QSEC" --image-opts "driver=qcow2,encrypt.key-secret=s0,file.filename=$img")
        qopen=(--object "$QSEC" --image-opts "driver=qcow2,encrypt.key-secret=s0,file.filename=$img")
        ca=(--object "$QSEC" -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10)
    else
        open=(-f qcow2 "$img")
        qopen=(-f qcow2 "$img")
        ca=()
    fi
    for op in "${OPS[@]}"; do [ "$op" = F ] && nflush=$((nflush + 1)); done
    # Base image: a pattern over the first 12 MiB, made by qemu-io.
    make_base()
    {
        rm -f "$img"
        qemu_retry qemu-img create -q -f qcow2 "${ca[@]}" "$img" 16M ||
            fail "$name: qemu-img create failed"
        qemu-io "${qopen[@]}" -c 'write -P 0xa5 0 12M' >/dev/null ||
            fail "$name: qemu-io base write failed"
    }
    make_base
    qemu-img convert "${qopen[@]}" -O raw base.raw ||
        fail "$name: cannot read the base image"
    cp "$img" base.qcow2
    # Calls needed to finish the workload up to each flush (C_k).
    local -a C
    C[0]=0
    for k in $(seq 1 $nflush); do
        cp base.qcow2 "$img"
        io_args "$k"
        count "C[$k]" "$VIMG" io "${open[@]}" "${IO[@]}"
    done
    cp base.qcow2 "$img"
    io_args -1
    count total "$VIMG" io "${open[@]}" "${IO[@]}"
    echo "# $name) io: $total $KIND calls; flush k done after: ${C[*]:1}"
    need_calls "$total" "$name) io"
    for n in $(points "$total"); do
        for action in crash eio; do
            cp base.qcow2 "$img"
            nrun=$((nrun + 1))
            io_args -1
            local repro="cp base.qcow2 $img; VIMG_FAILPOINT=$KIND:$n:$action $VIMG io ${open[*]} $(printf "%q " "${IO[@]}")"
            if ! fprun $action "$n" "$VIMG" io "${open[@]}" "${IO[@]}"; then
                bad "$name $action $n: bad exit or sanitizer report: $repro"
                continue
            fi
            if ! qcheck "${qopen[-1]}" "${qopen[@]:0:${#qopen[@]}-1}"; then
                bad "$name $action $n: qemu-img check finds corruption: $repro"
                continue
            fi
            # Flushes known complete: C_k <= n - 1.
            k=0
            while [ $k -lt $nflush ] && [ "${C[$((k + 1))]}" -le $((n - 1)) ]; do
                k=$((k + 1))
            done
            rm -f out.raw
            if ! qemu-img convert "${qopen[@]}" -O raw out.raw 2>"$TEST_TMP/conv.err"; then
                bad "$name $action $n: qemu-img cannot read the image: $(head -1 "$TEST_TMP/conv.err"): $repro"
                continue
            fi
            python3 "$TEST_TMP/sectors.py" out.raw base.raw $k "${OPS[@]}" ||
                bad "$name $action $n: data flushed by flush $k lost: $repro"
        done
    done
}

# ---- d) resize -----------------------------------------------------------
scenario_d()
{
    local total n action size
    rm -f r.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=4096 r0.qcow2 16M
    qemu-io -f qcow2 -c 'write -P 0x3c 0 16M' r0.qcow2 >/dev/null
    qemu-img convert -f qcow2 -O raw r0.qcow2 r0.raw
    cp r0.qcow2 r.qcow2
    count total "$VIMG" resize -f qcow2 r.qcow2 8G
    [ "$(qemu-img info --output=json r.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 8589934592 ] ||
        bad "d: reference resize did not give 8 GiB"
    echo "# d) resize: $total $KIND calls"
    need_calls "$total" "d) resize"
    for n in $(points "$total"); do
        for action in crash eio; do
            cp r0.qcow2 r.qcow2
            nrun=$((nrun + 1))
            local repro="cp r0.qcow2 r.qcow2; VIMG_FAILPOINT=$KIND:$n:$action $VIMG resize -f qcow2 r.qcow2 8G"
            if ! fprun $action "$n" "$VIMG" resize -f qcow2 r.qcow2 8G; then
                bad "d $action $n: bad exit or sanitizer report: $repro"
                continue
            fi
            if ! qcheck r.qcow2 -f qcow2; then
                bad "d $action $n: qemu-img check finds corruption: $repro"
                continue
            fi
            size=$(qemu-img info --output=json r.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
            if [ "$size" != 16777216 ] && [ "$size" != 8589934592 ]; then
                bad "d $action $n: virtual size $size: $repro"
                continue
            fi
            if ! qemu-io -f qcow2 -r -c 'read -P 0x3c 0 16M' r.qcow2 >/dev/null 2>&1 ||
                    { [ "$size" = 8589934592 ] &&
                      ! qemu-io -f qcow2 -r -c 'read -P 0 16M 1M' -c 'read -P 0 8191M 1M' r.qcow2 >/dev/null 2>&1; }; then
                bad "d $action $n: data does not read back: $repro"
            fi
        done
    done
}

# ---- s) internal snapshots: create, delete, apply -------------------------
# Base: 16 MiB qcow2 (64 KiB clusters) with 0xa5 over 0-12 MiB, snapshot s1
# taken by qemu-img, then 0x5a over 4-6 MiB and zeroes over 8-9 MiB (so the
# active state shares some clusters with s1 and not others).  Everything
# in the base was flushed before the vimg command starts, so after any
# crash or I/O error: qemu-img check finds no corruption; s1 (where it
# still exists) reads back as s1's data and a new snapshot s2 as the active
# data; create and delete leave the active data unchanged; after apply
# every sector holds either the old active data or s1's.
snap_raw()      # snap_raw IMG NAME OUT: a snapshot's data through qemu-img
{
    qemu-img convert -f qcow2 -O raw -l "snapshot.name=$2" "$1" "$3" 2>/dev/null
}
has_snap()
{
    qemu-img snapshot -l "$1" 2>/dev/null | awk '{ print $2 }' | grep -qx "$2"
}
# The one inconsistency a crash inside a snapshot operation may leave:
# qemu-img check wants OFLAG_COPIED set exactly when the refcount is 1, but
# the refcount block and the L2/L1 entry are different clusters, so
# between the two writes they disagree (qemu's own snapshot code has the
# same window).  Accepted only if qemu-img check reports nothing else, vimg
# check agrees (status 2), the disagreement is the safe one (copied_safe)
# and qemu-img check -r all then repairs the image to status 0.
ncopied=0
copied_window()
{
    qemu-img check -f qcow2 s.qcow2 >"$TEST_TMP/check.out" 2>&1
    [ $? = 2 ] || return 1
    grep -E '^ERROR' "$TEST_TMP/check.out" | grep -qv 'OFLAG_COPIED' && return 1
    "$VIMG" check -f qcow2 s.qcow2 >/dev/null 2>&1
    [ $? = 2 ] || { echo "#   vimg check does not report the OFLAG_COPIED window"; return 1; }
    return 0
}
# copied_safe OP: write all of the active disk through qemu-io without
# repairing first; every snapshot must still read back unchanged (an
# OFLAG_COPIED flag on a cluster a snapshot still uses would let the write
# land in place), then qemu-img check -r all must leave status 0.
copied_safe()
{
    cp s.qcow2 w.qcow2
    qemu-io -f qcow2 -c 'write -P 0xee 0 16M' w.qcow2 >/dev/null 2>&1 || return 1
    if has_snap w.qcow2 s1; then
        snap_raw w.qcow2 s1 sn.raw && cmp -s sn.raw s1.raw || return 1
    fi
    if [ "$1" = "-c s2" ] && has_snap w.qcow2 s2; then
        snap_raw w.qcow2 s2 sn.raw && cmp -s sn.raw act.raw || return 1
    fi
    qemu-img check -q -r all -f qcow2 s.qcow2 >/dev/null 2>&1
    qemu-img check -f qcow2 s.qcow2 >/dev/null 2>&1
}
scenario_s()
{
    local op total n action what copied
    rm -f s0.qcow2
    qemu-img create -q -f qcow2 s0.qcow2 16M
    qemu-io -f qcow2 -c 'write -P 0xa5 0 12M' s0.qcow2 >/dev/null
    qemu-img snapshot -c s1 s0.qcow2
    qemu-io -f qcow2 -c 'write -P 0x5a 4M 2M' -c 'write -z 8M 1M' s0.qcow2 >/dev/null
    snap_raw s0.qcow2 s1 s1.raw || fail "s: cannot read snapshot s1"
    qemu-img convert -f qcow2 -O raw s0.qcow2 act.raw
    for op in "-c s2" "-d s1" "-a s1"; do
        cp s0.qcow2 s.qcow2
        # shellcheck disable=SC2086
        count total "$VIMG" snapshot $op s.qcow2
        echo "# s) snapshot $op: $total $KIND calls"
        need_calls "$total" "s) snapshot $op"
        for n in $(points "$total"); do
            for action in crash eio; do
                cp s0.qcow2 s.qcow2
                rm -f out.raw sn.raw
                nrun=$((nrun + 1))
                local repro="cp s0.qcow2 s.qcow2; VIMG_FAILPOINT=$KIND:$n:$action $VIMG snapshot $op s.qcow2"
                what="s snapshot $op $action $n"
                # shellcheck disable=SC2086
                if ! fprun $action "$n" "$VIMG" snapshot $op s.qcow2; then
                    bad "$what: bad exit or sanitizer report: $repro"
                    continue
                fi
                copied=0
                if ! qcheck s.qcow2 -f qcow2; then
                    if ! copied_window; then
                        bad "$what: qemu-img check finds corruption: $repro"
                        continue
                    fi
                    copied=1
                    ncopied=$((ncopied + 1))
                fi
                if ! qemu-img convert -f qcow2 -O raw s.qcow2 out.raw 2>/dev/null; then
                    bad "$what: qemu-img cannot read the image: $repro"
                    continue
                fi
                if has_snap s.qcow2 s1; then
                    snap_raw s.qcow2 s1 sn.raw && cmp -s sn.raw s1.raw ||
                        bad "$what: snapshot s1 does not read back: $repro"
                elif [ "$op" != "-d s1" ]; then
                    bad "$what: snapshot s1 disappeared: $repro"
                fi
                if [ "$op" = "-c s2" ] && has_snap s.qcow2 s2; then
                    snap_raw s.qcow2 s2 sn.raw && cmp -s sn.raw act.raw ||
                        bad "$what: new snapshot s2 does not hold the active data: $repro"
                fi
                if [ "$op" = "-a s1" ]; then
                    python3 - out.raw act.raw s1.raw <<'PY' ||
import sys
out, old, new = (open(f, "rb").read() for f in sys.argv[1:4])
sys.exit(len(out) != len(old) or any(
    out[i:i + 512] not in (old[i:i + 512], new[i:i + 512])
    for i in range(0, len(out), 512)))
PY
                        bad "$what: a sector is neither the old active data nor s1's: $repro"
                else
                    cmp -s out.raw act.raw ||
                        bad "$what: active data changed: $repro"
                fi
                [ $copied = 1 ] && ! copied_safe "$op" &&
                    bad "$what: a write after the crash changed a snapshot: $repro"
            done
        done
    done
    echo "# s) $ncopied runs stopped in a refcount/OFLAG_COPIED window (see copied_window)"
}

# ---- r) amend -o refcount_bits: the refcount structures rewritten -------
# Base: 8 MiB qcow2 with 512-byte clusters (many refcount blocks), data
# written by qemu-io, snapshot s1, more data.  vimg writes the new blocks
# and table past the last used cluster, syncs, then switches the header
# (offset, clusters, order) in one write.  After any crash or I/O error:
# qemu-img check and vimg check find no corruption (leaks at worst), the
# width is the old or the new one, the active data and s1 read back
# unchanged, and a second vimg amend then succeeds.
scenario_r()
{
    local bits total n action what rb
    rm -f r0.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=512 r0.qcow2 8M
    qemu-io -f qcow2 -c 'write -P 0xa5 0 2M' -c 'write -P 0x11 6M 512k' \
        r0.qcow2 >/dev/null
    qemu-img snapshot -c s1 r0.qcow2
    qemu-io -f qcow2 -c 'write -P 0x5a 1M 512k' r0.qcow2 >/dev/null
    snap_raw r0.qcow2 s1 s1.raw || fail "r: cannot read snapshot s1"
    qemu-img convert -f qcow2 -O raw r0.qcow2 act.raw
    for bits in 2 64; do
        cp r0.qcow2 r.qcow2
        count total "$VIMG" amend -o "refcount_bits=$bits" r.qcow2
        echo "# r) amend -o refcount_bits=$bits: $total $KIND calls"
        need_calls "$total" "r) amend refcount_bits=$bits"
        for n in $(points "$total"); do
            for action in crash eio; do
                cp r0.qcow2 r.qcow2
                rm -f out.raw sn.raw
                nrun=$((nrun + 1))
                local repro="cp r0.qcow2 r.qcow2; VIMG_FAILPOINT=$KIND:$n:$action $VIMG amend -o refcount_bits=$bits r.qcow2"
                what="r refcount_bits=$bits $action $n"
                if ! fprun $action "$n" "$VIMG" amend -o "refcount_bits=$bits" r.qcow2; then
                    bad "$what: bad exit or sanitizer report: $repro"
                    continue
                fi
                if ! qcheck r.qcow2 -f qcow2; then
                    bad "$what: check finds corruption: $repro"
                    continue
                fi
                rb=$(qemu-img info r.qcow2 2>/dev/null | awk '/refcount bits:/ { print $3 }')
                [ "$rb" = 16 ] || [ "$rb" = "$bits" ] ||
                    bad "$what: refcount bits '$rb': $repro"
                if ! qemu-img convert -f qcow2 -O raw r.qcow2 out.raw 2>/dev/null; then
                    bad "$what: qemu-img cannot read the image: $repro"
                    continue
                fi
                cmp -s out.raw act.raw || bad "$what: active data changed: $repro"
                snap_raw r.qcow2 s1 sn.raw && cmp -s sn.raw s1.raw ||
                    bad "$what: snapshot s1 does not read back: $repro"
                "$VIMG" amend -o "refcount_bits=$bits" r.qcow2 >/dev/null 2>&1 &&
                    qemu-img check -f qcow2 r.qcow2 >/dev/null 2>&1 ||
                    bad "$what: amend after the failure does not succeed cleanly: $repro"
            done
        done
    done
}

cd "$TEST_TMP" || fail "no temp dir"
for s in $SCENARIOS; do
    case $s in
        a) scenario_a ;;
        b) scenario_io b 0 ;;
        c) scenario_io c 1 ;;
        d) scenario_d ;;
        s) scenario_s ;;
        r) scenario_r ;;
        *) fail "unknown scenario $s" ;;
    esac
done
echo "# $nrun failpoint runs, $nfail failures"
[ $nfail -eq 0 ] || fail "$nfail crash-consistency failures"
echo "ok - crash consistency of qcow2 ($nrun runs)"
