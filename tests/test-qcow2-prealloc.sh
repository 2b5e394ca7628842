#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 items checked against the real qemu-img / qemu-io 7.2:
#  - create -o preallocation=metadata|falloc|full writes the same bytes as
#    qemu-img create (several geometries), and with LUKS the same metadata
#    layout (tables, refcounts, FDE region after the data), clean check and
#    identical map;
#  - measure -O qcow2 gives qemu-img measure's figures (sizes, cluster
#    sizes, refcount widths, extended L2, LUKS, source images);
#  - commit into a base that has an internal snapshot, and commit of an
#    overlay that has one (make_empty on shared L2 tables): clean check,
#    committed data right, snapshot contents unchanged;
#  - broken snapshot tables are refused at open with qemu's messages.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires python3
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

# Metadata summary of a qcow2 file: header fields, L1, refcount table,
# L2 entries, the crypto extension and every non-zero refcount.
meta()
{
    python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
q = lambda o: struct.unpack('>Q', d[o:o + 8])[0]
u = lambda o: struct.unpack('>I', d[o:o + 4])[0]
cs = 1 << u(20); l1o, l1s, rto, rtc = q(40), u(36), q(48), u(56)
bits = 1 << u(96); l2e = 16 if u(72) & 16 else 8
print(len(d), l1o, l1s, rto, rtc)
p = u(100)
while p + 8 <= cs:
    t, ln = struct.unpack('>II', d[p:p + 8])
    if t == 0:
        break
    if t == 0x0537be77:
        print('crypto', q(p + 8), q(p + 16))
    p += 8 + ((ln + 7) & ~7)
for i in range(l1s):
    e = q(l1o + 8 * i); print('l1', i, hex(e))
    o = e & 0x00fffffffffffe00
    if o:
        print('l2', [hex(q(o + j)) for j in range(0, cs, l2e)])
n = cs * 8 // bits
for bi in range(rtc * cs // 8):
    rb = q(rto + 8 * bi)
    if not rb:
        continue
    print('rb', bi, hex(rb))
    for j in range(n):
        bit = j * bits
        v = int.from_bytes(d[rb + bit // 8:rb + bit // 8 + max(bits // 8, 1)], 'big')
        if bits < 8:
            v = (v >> (bit % 8)) & ((1 << bits) - 1)
        if v:
            print(bi * n + j, v)
PY
}

# ---- preallocation -------------------------------------------------------

for spec in ":64M" "cluster_size=512:1M" "cluster_size=512,refcount_bits=1:3M" \
            "cluster_size=4096,refcount_bits=64:9M" "compat=0.10:5M" \
            "extended_l2=on:4M" "cluster_size=2048:100001"; do
    o=${spec%%:*}
    size=${spec##*:}
    for m in metadata falloc full; do
        rm -f q.qcow2 v.qcow2
        expect_ok qemu-img create -q -f qcow2 -o "preallocation=$m${o:+,$o}" \
            q.qcow2 "$size"
        expect_ok "$VIMG" create -q -f qcow2 -o "preallocation=$m${o:+,$o}" \
            v.qcow2 "$size"
        assert_same_file q.qcow2 v.qcow2 "preallocation=$m $o $size"
        expect_ok qemu-img check -q v.qcow2
    done
done

for m in metadata falloc full; do
    rm -f q.qcow2 v.qcow2
    opts="preallocation=$m,encrypt.format=luks,encrypt.key-secret=s0"
    opts="$opts,encrypt.iter-time=10"
    # qemu-img's LUKS create can fail with "Unable to get accurate CPU
    # usage" on a busy machine (Debian 7.2 calibration bug): retry.
    qemu_retry qemu-img create -q --object "$SECRET" -f qcow2 -o "$opts" \
        q.qcow2 64M || fail "qemu-img create ($opts)"
    expect_ok "$VIMG" create -q --object "$SECRET" -f qcow2 -o "$opts" \
        v.qcow2 64M
    meta q.qcow2 >q.meta
    meta v.qcow2 >v.meta
    assert_same_file q.meta v.meta "LUKS preallocation=$m metadata"
    img="driver=qcow2,file.filename=v.qcow2,encrypt.key-secret=s0"
    expect_ok qemu-img check -q --object "$SECRET" --image-opts "$img"
    qemu-img map --output=json --object "$SECRET" --image-opts "$img" >v.map
    qemu-img map --output=json --object "$SECRET" --image-opts \
        "driver=qcow2,file.filename=q.qcow2,encrypt.key-secret=s0" >q.map
    assert_same_file q.map v.map "LUKS preallocation=$m map"
done

expect_error 1 "Backing file and preallocation can only be used at the same time if extended_l2 is on" \
    "$VIMG" create -q -f qcow2 -o preallocation=metadata,backing_file=v.qcow2,backing_fmt=qcow2 \
    b.qcow2 64M

# ---- measure ---------------------------------------------------------------

qemu-img create -q -f qcow2 src.qcow2 4M
qemu-io -c "write -P 0x11 1000 10" -c "write -P 0x22 700000 5000" \
    -c "write -z 800000 100000" -c "write 3M 64k" src.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 over.qcow2
qemu-io -c "write 2M 300k" over.qcow2 >/dev/null
qemu-img convert -O raw over.qcow2 over.raw

measure_same()
{
    local q v
    # qemu-img's LUKS measure runs a PBKDF calibration that fails now and
    # then ("Unable to get accurate CPU usage"): qemu_retry.
    qemu_retry qemu-img measure --object "$SECRET" --output=json "$@" ||
        fail "qemu-img measure $* failed"
    q=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["required"], d["fully-allocated"])' < "$LAST_OUT")
    v=$("$VIMG" measure --object "$SECRET" --output=json "$@" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["required"], d["fully-allocated"])')
    assert_eq "$v" "$q" "measure $*"
}
measure_same -O qcow2 --size 64M
measure_same -O qcow2 --size 0
measure_same -O qcow2 --size 1
measure_same -O qcow2 --size 1G -o cluster_size=512
measure_same -O qcow2 --size 100000 -o cluster_size=2M
measure_same -O qcow2 --size 10G -o refcount_bits=1
measure_same -O qcow2 --size 10G -o refcount_bits=64,cluster_size=4k
measure_same -O qcow2 --size 5G -o extended_l2=on
measure_same -O qcow2 --size 64M -o preallocation=full
measure_same -O qcow2 --size 64M -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10
measure_same -O qcow2 --size 64M -o encrypt.format=aes,encrypt.key-secret=s0
measure_same -O qcow2 src.qcow2
measure_same -O qcow2 over.qcow2
measure_same -O qcow2 over.raw
measure_same -O qcow2 over.qcow2 -o cluster_size=4k
measure_same -O qcow2 over.qcow2 -o preallocation=falloc
measure_same -O qcow2 over.qcow2 -o preallocation=metadata
measure_same -O qcow2 over.qcow2 -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10
"$VIMG" measure -O qcow2 --size 64M -o encrypt.format=luks,encrypt.key-secret=s0 \
    --object "$SECRET" | grep -q "required size: 2424832" ||
    fail "measure: LUKS 64 MiB required size is not 2424832"

# ---- commit with internal snapshots ----------------------------------------

rm -f base.qcow2 top.qcow2
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c "write -P 0x11 0 2M" base.qcow2 >/dev/null
qemu-img snapshot -c snap base.qcow2
qemu-img convert -O raw base.qcow2 snap.raw
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qemu-io -c "write -P 0x22 512k 2M" -c "write -P 0x33 3M 64k" top.qcow2 >/dev/null
qemu-img snapshot -c topsnap top.qcow2
qemu-img convert -O raw top.qcow2 expect.raw
expect_ok "$VIMG" commit top.qcow2
expect_ok qemu-img check -q base.qcow2
expect_ok qemu-img check -q top.qcow2
expect_ok qemu-img compare -q -f qcow2 -F raw base.qcow2 expect.raw
expect_ok qemu-img compare -q -f qcow2 -F raw top.qcow2 expect.raw
qemu-img convert -O raw -l snapshot.name=snap base.qcow2 snap2.raw
assert_same_file snap.raw snap2.raw "base snapshot after commit"
qemu-img convert -O raw -l snapshot.name=topsnap top.qcow2 topsnap.raw
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 chk.qcow2
# The overlay's own snapshot still holds what it had before the commit.
qemu-img convert -O raw -l snapshot.name=topsnap top.qcow2 t.raw
cmp -s t.raw expect.raw || fail "overlay snapshot content changed"
[ "$(qemu-img map --output=json top.qcow2 | grep -c '"depth": 0')" = 0 ] ||
    fail "overlay still has clusters after commit"

# ---- snapshot table checks at open -----------------------------------------

qemu-img create -q -f qcow2 s.qcow2 1M
qemu-img snapshot -c s1 s.qcow2
python3 - <<'PY'
import struct
d = open('s.qcow2', 'rb').read()
so = struct.unpack('>Q', d[64:72])[0]
def w(name, patches):
    b = bytearray(d)
    for off, fmt, v in patches:
        struct.pack_into(fmt, b, off, v)
    open(name, 'wb').write(b)
w('extra.qcow2', [(so + 36, '>I', 2000)])
w('many.qcow2', [(60, '>I', 65537)])
w('off.qcow2', [(64, '>Q', so + 8)])
w('far.qcow2', [(64, '>Q', (1 << 63) - 65536)])
PY
for f in extra many off far; do
    run_cmd qemu-img info "$f.qcow2"
    want=$(head -1 "$LAST_ERR" | sed 's/^qemu-img: //')
    [ -n "$want" ] || fail "qemu-img accepted $f.qcow2"
    expect_stderr "$want" "$VIMG" info "$f.qcow2"
done

echo "PASS: $TEST_NAME"
