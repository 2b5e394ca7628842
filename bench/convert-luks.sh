#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Throughput of LUKS conversion, vimg against qemu-img, in one run:
# 1 GiB of random data is converted raw -> luks (convert -n into an image
# each tool created beforehand, so PBKDF calibration is not timed) and
# luks -> raw, with the same cipher (default aes-256-xts-plain64) and
# iter-time=10 for both.  Prints MB/s (10^6 bytes/s) per tool and the
# ratio vimg/qemu-img.  Best of REPS runs (default 3).
#
# Usage: bench/convert-luks.sh [VIMG]   (default: build/tools/vimg;
#        VIMG=qemu-img compares qemu-img with itself, ratio ~1.0)
# Environment: SIZE_MIB (1024), REPS (3), CIPHER_OPTS (extra -o for both,
# e.g. cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv), BENCH_DIR
# (scratch directory, needs 4x SIZE_MIB free; default /tmp).

set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
VIMG=${1:-${VIMG:-$top/build/tools/vimg}}
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-3}
opts="iter-time=10${CIPHER_OPTS:+,$CIPHER_OPTS}"

command -v qemu-img >/dev/null || { echo "qemu-img not found" >&2; exit 1; }
[ -x "$VIMG" ] || command -v "$VIMG" >/dev/null ||
    { echo "vimg not found: $VIMG (build it or pass its path)" >&2; exit 1; }

bench_scratch vimg-bench
bytes=$((SIZE_MIB * 1048576))

echo "generating $SIZE_MIB MiB of random data..."
head -c "$bytes" /dev/urandom >in.raw

# create_luks TOOL FILE: an empty luks image of the right size.
create_luks()
{
    rm -f "$2"
    retry_calibration "$1" create -q -f luks --object "$SECRET" \
        -o "key-secret=s0,$opts" "$2" "$bytes"
}

# measure TOOL: sets ENC_S and DEC_S (best seconds).
measure()
{
    local tool=$1 r t0 t1 e d
    ENC_S= DEC_S=
    create_luks "$tool" out.luks
    for ((r = 1; r <= REPS; r++)); do
        settle in.raw
        t0=$(now)
        "$tool" convert --object "$SECRET" -n -f raw in.raw \
            --target-image-opts "driver=luks,key-secret=s0,file.filename=out.luks"
        sync out.luks 2>/dev/null || sync
        t1=$(now)
        e=$(echo "$t1 - $t0" | bc -l)
        rm -f back.raw
        settle out.luks
        t0=$(now)
        "$tool" convert --object "$SECRET" \
            --image-opts "driver=luks,key-secret=s0,file.filename=out.luks" -O raw back.raw
        sync back.raw 2>/dev/null || sync
        t1=$(now)
        d=$(echo "$t1 - $t0" | bc -l)
        cmp -s back.raw in.raw || { echo "$tool: data mismatch!" >&2; exit 1; }
        if [ -z "$ENC_S" ] || [ "$(echo "$e < $ENC_S" | bc -l)" = 1 ]; then ENC_S=$e; fi
        if [ -z "$DEC_S" ] || [ "$(echo "$d < $DEC_S" | bc -l)" = 1 ]; then DEC_S=$d; fi
    done
    rm -f out.luks back.raw
}

mbs() { echo "scale=1; $bytes / $1 / 1000000" | bc -l; }

measure qemu-img
q_enc=$ENC_S q_dec=$DEC_S
measure "$VIMG"
v_enc=$ENC_S v_dec=$DEC_S

cipher=${CIPHER_OPTS:-aes-256-xts-plain64 (default)}
echo
echo "LUKS convert, $SIZE_MIB MiB random data, $cipher, best of $REPS"
printf '%-14s %14s %14s\n' "" "raw->luks" "luks->raw"
printf '%-14s %9s MB/s %9s MB/s\n' qemu-img "$(mbs "$q_enc")" "$(mbs "$q_dec")"
printf '%-14s %9s MB/s %9s MB/s\n' "$(basename "$VIMG")" "$(mbs "$v_enc")" "$(mbs "$v_dec")"
printf '%-14s %13.2fx %13.2fx\n' "vimg/qemu-img" \
    "$(echo "$q_enc / $v_enc" | bc -l)" "$(echo "$q_dec / $v_dec" | bc -l)"
