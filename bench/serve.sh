#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# NBD serving throughput: `vimg serve` against qemu-nbd (raw LUKS and
# qcow2+LUKS) and against nbdkit's luks filter (raw LUKS), same images,
# same clients, one run.  Workloads:
#   seq-read   nbdcopy EXPORT null:          (multi-conn as advertised)
#   seq-write  nbdcopy in.raw EXPORT
#   4k-rand-r  fio --ioengine=nbd randread,  bs=4k, iodepth=16
#   4k-rand-w  fio --ioengine=nbd randwrite, bs=4k, iodepth=16
# MB/s are 10^6 bytes/s of guest data (fio: IOPS*4096), best of REPS.
# Ratios are vimg / reference.  For the fio workloads the script also
# reports the server's own CPU time (user+sys of the server process, all
# threads, from /proc) per request, lowest of REPS: unlike throughput it
# hardly depends on what else the machine is doing, so it shows the
# servers' cost per request even on a loaded machine (ratio reference/vimg:
# higher is better for vimg).
#
# Usage: bench/serve.sh [VIMG]   (default build/tools/vimg)
# Environment: SIZE_MIB (512), REPS (2), FIO_SECS (8), BENCH_DIR (/tmp).

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
VIMG=${1:-${VIMG:-$top/build/tools/vimg}}
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
SIZE_MIB=${SIZE_MIB:-512}
REPS=${REPS:-2}
FIO_SECS=${FIO_SECS:-8}
export VIMG_NBDKIT_PLUGIN=${VIMG_NBDKIT_PLUGIN:-$top/build/server/nbdkit-vimg-plugin.so}
for t in qemu-img qemu-nbd nbdkit nbdcopy fio jq; do
    command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done

bench_scratch vimg-serve-bench
SRV=
trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null; rm -rf "$dir"' EXIT
S=$dir/s.sock
URI="nbd+unix:///?socket=$S"

echo "generating $SIZE_MIB MiB of random data and the images..."
head -c $((SIZE_MIB * 1048576)) /dev/urandom >in.raw
retry_calibration qemu-img convert -f raw -O luks --object "$SECRET" \
    -o key-secret=s0,iter-time=10 in.raw l.luks
retry_calibration qemu-img convert -f raw -O qcow2 --object "$SECRET" \
    -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 \
    in.raw ql.qcow2
L_OPTS="driver=luks,key-secret=s0,file.filename=$dir/l.luks"
Q_OPTS="driver=qcow2,encrypt.key-secret=s0,file.filename=$dir/ql.qcow2"

wait_sock() {
    local i
    for i in $(seq 1 200); do
        nbdinfo --size "$URI" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server did not start" >&2
    exit 1
}

start() {   # start SERVER IMAGE
    rm -f "$S"
    case "$1/$2" in
        vimg/l) "$VIMG" serve -s "$S" --object "$SECRET" --image-opts "$L_OPTS" 2>srv.err & ;;
        vimg/q) "$VIMG" serve -s "$S" --object "$SECRET" --image-opts "$Q_OPTS" 2>srv.err & ;;
        qemu-nbd/l) qemu-nbd -t -k "$S" -e 16 --object "$SECRET" --image-opts "$L_OPTS" 2>srv.err & ;;
        qemu-nbd/q) qemu-nbd -t -k "$S" -e 16 --object "$SECRET" --image-opts "$Q_OPTS" 2>srv.err & ;;
        nbdkit-luks/l) nbdkit -f -U "$S" --filter=luks file "$dir/l.luks" \
                          passphrase=+"$dir/pw" 2>srv.err & ;;
    esac
    SRV=$!
    wait_sock
}
stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; }

best=
keep_best() { # keep_best MBS [CPU-US]
    if [ -z "$best" ] || [ "$(echo "$1 > $best" | bc)" = 1 ]; then best=$1; fi
    if [ -n "${2:-}" ] && { [ -z "$bcpu" ] || [ "$(echo "$2 < $bcpu" | bc)" = 1 ]; }; then
        bcpu=$2
    fi
}

seq_read() {
    local t0 t1
    t0=$(now); nbdcopy "$URI" null:; t1=$(now)
    echo "scale=1; $SIZE_MIB * 1048576 / ($t1 - $t0) / 1000000" | bc
}
seq_write() {
    local t0 t1
    t0=$(now); nbdcopy in.raw "$URI"; t1=$(now)
    echo "scale=1; $SIZE_MIB * 1048576 / ($t1 - $t0) / 1000000" | bc
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
HZ=$(getconf CLK_TCK)
fio_run() { # fio_run randread|randwrite: prints "MB/s us-CPU-per-request"
    local c0 c1
    c0=$(cpu_ticks)
    fio --name=j --ioengine=nbd --uri="$URI" --rw="$1" --bs=4k \
        --iodepth=16 --size=${SIZE_MIB}M --time_based --runtime="$FIO_SECS" \
        --output-format=json --output=fio.json >fio.out 2>fio.err ||
        { cat fio.err >&2; exit 1; }
    c1=$(cpu_ticks)
    local key=read
    [ "$1" = randwrite ] && key=write
    jq -r --arg key "$key" --argjson cpu "$(( c1 - c0 ))" --argjson hz "$HZ" '
        .jobs[0][$key] | "\(.iops * 4096 / 1000000 | . * 10 | floor / 10) " +
        "\($cpu / $hz * 1000000 / .total_ios | . * 10 | floor / 10)"' fio.json
}

declare -A R C
measure() { # measure SERVER IMAGE
    local w i
    for w in seq-read seq-write 4k-rand-r 4k-rand-w; do
        start "$1" "$2"
        best= bcpu=
        for ((i = 0; i < REPS; i++)); do
            case $w in
                seq-read) keep_best "$(seq_read)" ;;
                seq-write) keep_best "$(seq_write)" ;;
                4k-rand-r) keep_best $(fio_run randread) ;;
                4k-rand-w) keep_best $(fio_run randwrite) ;;
            esac
        done
        stop
        R[$1/$2/$w]=$best
        C[$1/$2/$w]=$bcpu
    done
}

for img in l q; do
    for srv in vimg qemu-nbd nbdkit-luks; do
        [ "$srv/$img" = nbdkit-luks/q ] && continue
        echo "measuring $srv on $img..." >&2
        measure "$srv" "$img"
    done
done

ratio() { echo "scale=2; $1 / $2" | bc; }
echo
echo "vimg serve vs qemu-nbd $(qemu-nbd --version | head -1 | awk '{print $2}')" \
     "and nbdkit $(nbdkit --version | awk '{print $2}') luks filter;" \
     "$SIZE_MIB MiB, best of $REPS, fio ${FIO_SECS}s iodepth 16; MB/s"
printf '%-14s %-10s %9s %9s %11s %8s %8s\n' image workload vimg qemu-nbd nbdkit-luks \
    'x qemu' 'x nbdkit'
for img in l q; do
    name=raw-LUKS
    [ $img = q ] && name=qcow2+LUKS
    for w in seq-read seq-write 4k-rand-r 4k-rand-w; do
        v=${R[vimg/$img/$w]} q=${R[qemu-nbd/$img/$w]} k=${R[nbdkit-luks/$img/$w]:-}
        printf '%-14s %-10s %9s %9s %11s %8s %8s\n' $name $w "$v" "$q" "${k:--}" \
            "$(ratio "$v" "$q")" "$([ -n "$k" ] && ratio "$v" "$k" || echo -)"
    done
done
echo
echo "server CPU time per request (us, user+sys of the server process, lowest of $REPS)"
printf '%-14s %-10s %9s %9s %11s %8s %8s\n' image workload vimg qemu-nbd nbdkit-luks \
    'qemu/v' 'nbdkit/v'
for img in l q; do
    name=raw-LUKS
    [ $img = q ] && name=qcow2+LUKS
    for w in 4k-rand-r 4k-rand-w; do
        v=${C[vimg/$img/$w]} q=${C[qemu-nbd/$img/$w]} k=${C[nbdkit-luks/$img/$w]:-}
        printf '%-14s %-10s %9s %9s %11s %8s %8s\n' $name $w "$v" "$q" "${k:--}" \
            "$(ratio "$q" "$v")" "$([ -n "$k" ] && ratio "$k" "$v" || echo -)"
    done
done
