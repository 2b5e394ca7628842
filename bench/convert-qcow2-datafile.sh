#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Throughput of qcow2 with an external data file, vimg against qemu-img in
# one run: SIZE_MIB of random data is converted raw -> qcow2 with
# -o data_file=... (each tool creates its own target) and back from that
# image to raw.  Prints MB/s (10^6 bytes/s) per tool and the ratio
# vimg/qemu-img, best of REPS runs; the tools alternate within each run.
#
# Usage: bench/convert-qcow2-datafile.sh [VIMG]  (default build/tools/vimg)
# Environment: SIZE_MIB (256), REPS (3), DATA_RAW (off|on: data_file_raw),
# BENCH_DIR (scratch, needs 5x SIZE_MIB free; default /tmp).

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
VIMG=${1:-${VIMG:-$top/build/tools/vimg}}
SIZE_MIB=${SIZE_MIB:-256}
REPS=${REPS:-3}
RAW=${DATA_RAW:-off}

command -v qemu-img >/dev/null || { echo "qemu-img not found" >&2; exit 1; }
[ -x "$VIMG" ] || command -v "$VIMG" >/dev/null ||
    { echo "vimg not found: $VIMG (build it or pass its path)" >&2; exit 1; }

bench_scratch vimg-bench
bytes=$((SIZE_MIB * 1048576))
echo "generating $SIZE_MIB MiB of random data..."
head -c "$bytes" /dev/urandom >in.raw

mbps() { echo "scale=1; $bytes / ($2 - $1) / 1000000" | bc; }

declare -A best
for ((rep = 1; rep <= REPS; rep++)); do
    for tool in qemu-img "$VIMG"; do
        name=$(basename "$tool")
        rm -f out.qcow2 out.data back.raw
        t0=$(now)
        "$tool" convert -O qcow2 -o "data_file=out.data,data_file_raw=$RAW" \
            in.raw out.qcow2
        t1=$(now)
        "$tool" convert -O raw out.qcow2 back.raw
        t2=$(now)
        cmp -s in.raw back.raw || { echo "$name: round trip differs" >&2; exit 1; }
        for k in to from; do
            if [ $k = to ]; then v=$(mbps "$t0" "$t1"); else v=$(mbps "$t1" "$t2"); fi
            cur=${best[$name.$k]:-0}
            if [ "$(echo "$v > $cur" | bc)" = 1 ]; then best[$name.$k]=$v; fi
        done
    done
done
v=$(basename "$VIMG")
for k in to from; do
    what="raw -> qcow2+data file"
    [ $k = from ] && what="qcow2+data file -> raw"
    printf '%-24s qemu-img %8s MB/s  %s %8s MB/s  ratio %s\n' "$what" \
        "${best[qemu-img.$k]}" "$v" "${best[$v.$k]}" \
        "$(echo "scale=2; ${best[$v.$k]} / ${best[qemu-img.$k]}" | bc)"
done
