#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Print the persistent bitmaps of a qcow2 image (name, flags, granularity
and the indices of the set bits, as runs), to compare images written by
vimg and by qemu independently of where their clusters are."""
import struct
import sys


def main(path):
    with open(path, 'rb') as f:
        data = f.read()
    (cluster_bits,) = struct.unpack_from('>I', data, 20)
    cs = 1 << cluster_bits
    (autoclear,) = struct.unpack_from('>Q', data, 88)
    (hlen,) = struct.unpack_from('>I', data, 100)
    print('autoclear', autoclear)
    off = hlen
    while off + 8 <= cs:
        typ, ln = struct.unpack_from('>II', data, off)
        if typ == 0:
            break
        if typ == 0x23852875:
            nb, _, dsize, doff = struct.unpack_from('>IIQQ', data, off + 8)
            pos = doff
            for _ in range(nb):
                toff, tsize, flags, btype, gbits, nlen, elen = \
                    struct.unpack_from('>QIIBBHI', data, pos)
                name = data[pos + 24 + elen:pos + 24 + elen + nlen].decode()
                pos += (24 + elen + nlen + 7) & ~7
                runs, start, prev = [], None, None
                zero, ones = bytes(cs), b'\xff' * cs
                for k in range(tsize):
                    (e,) = struct.unpack_from('>Q', data, toff + 8 * k)
                    host = e & 0x00fffffffffffe00
                    if host:
                        cl = data[host:host + cs]
                    else:
                        cl = ones if e & 1 else zero
                    # Whole clusters and bytes that continue the current
                    # state (no run / inside a run) need no bit walk.
                    if cl == (zero if start is None else ones):
                        continue
                    for j, byte in enumerate(cl):
                        if byte == (0 if start is None else 0xff):
                            continue
                        for b in range(8):
                            bit = byte >> b & 1
                            i = (k * cs + j) * 8 + b
                            if bit and start is None:
                                start = i
                            if not bit and start is not None:
                                runs.append((start, i))
                                start = None
                if start is not None:
                    runs.append((start, tsize * cs * 8))
                print(name, 'flags', flags, 'type', btype, 'g', gbits, runs)
        off += 8 + ((ln + 7) & ~7)


main(sys.argv[1])
