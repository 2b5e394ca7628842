#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Cost of rotating the master key of a LUKS1 image, in one run:
#   vimg reencrypt       in place (journaled, two fdatasyncs per MiB)
#   qemu-img convert     the only way with qemu-img: copy into a new LUKS
#                        image (created beforehand, so its PBKDF
#                        calibration is not timed) and replace the file
# (cryptsetup reencrypt needs device-mapper, which this benchmark does not
# assume.)  SIZE_MIB of random data (default 512), aes-256-xts-plain64,
# iter-count/iter-time small for both.  Prints MB/s (10^6 bytes/s) and the
# ratio vimg/qemu-img; best of REPS runs (default 3).
#
# Usage: bench/reencrypt.sh [VIMG]   (default: build/tools/vimg)
# Environment: SIZE_MIB, REPS, BENCH_DIR (needs 3x SIZE_MIB; default /tmp).

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
VIMG=${1:-${VIMG:-$top/build/tools/vimg}}
SIZE_MIB=${SIZE_MIB:-512}
REPS=${REPS:-3}

command -v qemu-img >/dev/null || { echo "qemu-img not found" >&2; exit 1; }
[ -x "$VIMG" ] || { echo "vimg not found: $VIMG" >&2; exit 1; }

bench_scratch vimg-bench
O=(--object "$SECRET")
bytes=$((SIZE_MIB * 1048576))

echo "generating $SIZE_MIB MiB of random data..."
head -c "$bytes" /dev/urandom >in.raw
"$VIMG" create -q -f luks "${O[@]}" -o key-secret=s0,iter-count=1000 src.luks "$bytes"
"$VIMG" convert -n "${O[@]}" -f raw in.raw \
    --target-image-opts driver=luks,key-secret=s0,file.filename=src.luks

best_v=999999 best_q=999999
for ((i = 0; i < REPS; i++)); do
    t0=$(now)
    "$VIMG" reencrypt "${O[@]}" -o key-secret=s0,iter-count=1000 src.luks
    t1=$(now)
    best_v=$(awk -v a="$t0" -v b="$t1" -v m="$best_v" 'BEGIN { d = b - a; print (d < m) ? d : m }')

    rm -f new.luks
    retry_calibration qemu-img create -q -f luks "${O[@]}" \
        -o key-secret=s0,iter-time=10 new.luks "$bytes"
    t0=$(now)
    qemu-img convert -n "${O[@]}" --image-opts \
        driver=luks,key-secret=s0,file.filename=src.luks \
        --target-image-opts driver=luks,key-secret=s0,file.filename=new.luks
    sync -f new.luks
    t1=$(now)
    best_q=$(awk -v a="$t0" -v b="$t1" -v m="$best_q" 'BEGIN { d = b - a; print (d < m) ? d : m }')
done
qemu-img compare "${O[@]}" --image-opts driver=raw,file.filename=in.raw \
    driver=luks,key-secret=s0,file.filename=src.luks >/dev/null ||
    { echo "vimg reencrypt changed the data" >&2; exit 1; }
awk -v b=$bytes -v v=$best_v -v q=$best_q 'BEGIN {
    printf "vimg reencrypt (in place):   %8.1f MB/s (%.2f s)\n", b / v / 1e6, v
    printf "qemu-img convert (new copy): %8.1f MB/s (%.2f s)\n", b / q / 1e6, q
    printf "ratio vimg/qemu-img:         %8.2f\n", q / v
}'
