#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate the hostile qcow2 images of this folder (deterministic: the
# same bytes on every run; python3 only).  Each image is a small valid
# qcow2 v3 file (4 KiB clusters, 1 MiB virtual size: header, refcount
# table, refcount block, L1, L2, one data cluster; refcounts exactly
# right) with one defect.  valid.qcow2 is the image without a defect.
# The expected qemu-img 7.2 results are in EXPECTED (see
# fuzz/check-hostile-images.sh).
set -euo pipefail
cd "$(dirname "$0")"
rm -f ./*.qcow2
python3 - <<'PY'
import struct

CB = 12
CS = 1 << CB
SIZE = 1 << 20


def be32(v):
    return struct.pack(">I", v & 0xffffffff)


def be64(v):
    return struct.pack(">Q", v & 0xffffffffffffffff)


def ext(t, data):
    return be32(t) + be32(len(data)) + data + bytes(-len(data) % 8)


def image(version=3, cluster_bits=CB, size=SIZE, crypt=0, l1_size=1,
          l1_off=3 * CS, rt_off=CS, rt_clusters=1, nb_snap=0, snap_off=0,
          refcount_order=4, header_length=112, exts=b"", backing=None,
          backing_off=None, l1_entry=None, l2_entry=None, rt_entry=None,
          refblock=None, tail=b"", file_clusters=6, incompat=0,
          autoclear=0):
    img = bytearray(file_clusters * CS)
    h = b"QFI\xfb" + be32(version)
    h += be64(0) + be32(0)                      # backing (patched below)
    h += be32(cluster_bits) + be64(size) + be32(crypt) + be32(l1_size)
    h += be64(l1_off) + be64(rt_off) + be32(rt_clusters)
    h += be32(nb_snap) + be64(snap_off)
    if version >= 3:
        h += be64(incompat) + be64(0) + be64(autoclear) + be32(refcount_order)
        h += be32(header_length) + bytes(8)
    img[:len(h)] = h
    hl = header_length if version >= 3 else 72
    area = exts + be32(0) + be32(0)
    img[hl:hl + len(area)] = area
    if backing is not None:
        off = backing_off if backing_off is not None else hl + len(area)
        img[8:16] = be64(off)
        img[16:20] = be32(len(backing))
        if off + len(backing) <= len(img):
            img[off:off + len(backing)] = backing
    # refcount table -> block at cluster 2; clusters 0..5 have refcount 1
    img[CS:CS + 8] = be64(2 * CS if rt_entry is None else rt_entry)
    if refblock is None:
        for i in range(6):
            img[2 * CS + 2 * i:2 * CS + 2 * i + 2] = b"\0\1"
    else:
        img[2 * CS:2 * CS + len(refblock)] = refblock
    img[3 * CS:3 * CS + 8] = be64((1 << 63) | 4 * CS if l1_entry is None
                                  else l1_entry)
    img[4 * CS:4 * CS + 8] = be64((1 << 63) | 5 * CS if l2_entry is None
                                  else l2_entry)
    img[5 * CS:6 * CS] = (b"vimg hostile qcow2 data\n" * 200)[:CS]
    return bytes(img) + tail


def put(name, data):
    with open(name + ".qcow2", "wb") as f:
        f.write(data)


FDE = 0x0537BE77
put("valid", image())
# Header fields.
put("bad-magic", b"QFX\xfb" + image()[4:])
put("version-1", image(version=1))
put("version-4", image(version=4))
put("cluster-bits-8", image(cluster_bits=8))
put("cluster-bits-22", image(cluster_bits=22))
put("size-huge", image(size=1 << 62))
put("size-overflow", image(size=0xfffffffffffffe00))
put("header-length-100", image(header_length=100))
put("header-length-116", image(header_length=116))
put("header-length-8192", image(header_length=8192))
put("refcount-order-7", image(refcount_order=7))
put("refcount-table-clusters-0", image(rt_clusters=0))
put("crypt-method-3", image(crypt=3))
put("l1-size-0", image(l1_size=0))
put("l1-size-huge", image(l1_size=0x10000000))
put("l1-size-lying", image(l1_size=0x100000))
put("l1-offset-unaligned", image(l1_off=3 * CS + 8))
put("l1-offset-past-eof", image(l1_off=0x100000))
put("refcount-table-past-eof", image(rt_off=0x100000))
put("refcount-table-huge", image(rt_clusters=0x100000))
put("backing-offset-past-cluster", image(backing=b"base.raw",
                                         backing_off=CS + 8))
put("backing-name-too-long", image(backing=b"b" * 1100))
# Header extensions.
put("ext-length-past-cluster", image(exts=be32(0x12345678) + be32(0x10000)))
put("ext-backing-fmt-too-long", image(exts=ext(0xE2792ACA, b"q" * 20)))
put("ext-bitmaps-bad-length", image(exts=ext(0x23852875, bytes(16))))
# Table entries (the header is fine: info opens, check must find them).
put("l1-entry-past-eof", image(l1_entry=(1 << 63) | 0x100000))
put("l1-entry-unaligned", image(l1_entry=(1 << 63) | (4 * CS + 512)))
put("l2-entry-past-eof", image(l2_entry=(1 << 63) | 0x200000))
put("l2-entry-unaligned", image(l2_entry=(1 << 63) | (5 * CS + 512)))
put("refcount-entry-past-eof", image(rt_entry=0x100000))
put("refcount-block-self", image(rt_entry=CS))
put("refcount-block-zero", image(refblock=bytes(12)))
put("refcount-too-high", image(refblock=b"\0\1" * 5 + b"\0\2"))
# Snapshot table.
put("snapshot-table-past-eof", image(nb_snap=1, snap_off=0x100000))
put("snapshot-table-unaligned", image(nb_snap=1, snap_off=5 * CS + 8))
put("nb-snapshots-huge", image(nb_snap=0xffffffff, snap_off=5 * CS))
# Encryption.
put("fde-offset-unaligned", image(crypt=2,
                                  exts=ext(FDE, be64(CS + 1) + be64(4096))))
put("fde-length-24", image(crypt=2, exts=ext(FDE, be64(6 * CS) + be64(4096)
                                             + be64(0))))
put("fde-offset-past-eof", image(crypt=2,
                                 exts=ext(FDE, be64(0x100000) + be64(2068480))))
put("fde-length-huge", image(crypt=2,
                             exts=ext(FDE, be64(6 * CS) + be64(1 << 62))))
put("fde-no-luks-magic", image(crypt=2,
                               exts=ext(FDE, be64(5 * CS) + be64(4096))))
put("crypt-luks-without-fde", image(crypt=2))
put("crypt-aes-with-fde", image(crypt=1,
                                exts=ext(FDE, be64(6 * CS) + be64(4096))))
# External data file (incompatible bit 2, autoclear bit 1, extension
# 0x44415441): guest cluster 0 at host offset 0 of the data file (L2 entry
# OFLAG_COPIED | 0), cluster 5 unused.
DATA = 0x44415441
DF = dict(incompat=4, l2_entry=1 << 63, refblock=b"\0\1" * 5)
put("datafile-missing", image(exts=ext(DATA, b"no-such-data.raw"), **DF))
put("datafile-bit-no-ext", image(**DF))
put("datafile-name-nul", image(exts=ext(DATA, b"no-such\0.raw"), **DF))
put("datafile-ext-no-bit", image(exts=ext(DATA, b"no-such-data.raw")))
put("datafile-raw-no-bit", image(autoclear=2))
PY
ls ./*.qcow2 | wc -l
