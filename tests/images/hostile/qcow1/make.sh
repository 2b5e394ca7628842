#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate the hostile qcow (version 1) images of this folder
# (deterministic; python3 only).  Each is a small valid image (4 KiB
# clusters, l2_bits 9, 1 MiB virtual size: 48-byte header, L1 right after
# it, one L2 table, one data cluster) with one defect; valid.qcow has none.
# The expected qemu-img 7.2 results are in EXPECTED (see
# fuzz/check-hostile-images.sh).
set -euo pipefail
cd "$(dirname "$0")"
rm -f ./*.qcow
python3 - <<'PY'
import struct


def image(version=1, cluster_bits=12, l2_bits=9, size=1 << 20, crypt=0,
          l1_off=48, l1_entry=0x1000, l2_entry=0x2000, backing=None,
          backing_off=None, backing_len=None):
    cs = 1 << 12
    img = bytearray(3 * cs)
    h = b"QFI\xfb" + struct.pack(">IQIIQBBHIQ", version, 0, 0, 0, size,
                                 cluster_bits, l2_bits, 0, crypt, l1_off)
    img[:48] = h
    if backing is not None:
        off = 48 if backing_off is None else backing_off
        img[8:16] = struct.pack(">Q", off)
        img[16:20] = struct.pack(">I", len(backing) if backing_len is None
                                 else backing_len)
        img[off:off + len(backing)] = backing
        if l1_off == 48:
            l1_off = 48 + (len(backing) + 7) // 8 * 8
            img[40:48] = struct.pack(">Q", l1_off)
    if l1_off + 8 <= len(img):
        img[l1_off:l1_off + 8] = struct.pack(">Q", l1_entry)
    img[0x1000:0x1008] = struct.pack(">Q", l2_entry)
    img[0x2000:0x3000] = (b"vimg hostile qcow data\n" * 200)[:cs]
    return bytes(img)


def put(name, data):
    with open(name + ".qcow", "wb") as f:
        f.write(data)


put("valid", image())
put("version-2", image(version=2))
put("cluster-bits-8", image(cluster_bits=8))
put("cluster-bits-17", image(cluster_bits=17))
put("cluster-bits-255", image(cluster_bits=255))
put("l2-bits-5", image(l2_bits=5))
put("l2-bits-14", image(l2_bits=14))
put("l2-bits-0", image(l2_bits=0))
put("size-0", image(size=0))
put("size-1", image(size=1))
put("size-huge", image(size=1 << 62))
put("size-max", image(size=0xffffffffffffffff))
put("crypt-method-2", image(crypt=2))
put("l1-offset-past-eof", image(l1_off=0x100000))
put("l1-offset-huge", image(l1_off=0xfffffffffffff000))
put("l1-entry-past-eof", image(l1_entry=0x100000))
put("l2-entry-past-eof", image(l2_entry=0x100000))
put("l2-entry-unaligned", image(l2_entry=0x2001))
put("l2-entry-compressed-garbage", image(l2_entry=(1 << 63) | (100 << 51)
                                         | 0x2000))
put("backing-name-too-long", image(backing=b"b" * 16, backing_len=1024))
put("backing-offset-past-eof", image(backing=b"base", backing_off=0x2ff0,
                                     backing_len=0x100))
PY
ls ./*.qcow | wc -l
