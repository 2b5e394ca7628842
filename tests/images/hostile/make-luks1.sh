#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate tests/images/hostile/luks1/: small LUKS1 header files with one
# defect each, built from a deterministic, otherwise valid header (aes
# xts-plain64 sha256, 32-byte master key, QEMU's slot geometry: slots at
# sector 8 + 256*i, payload at sector 2056; slot 0 active, 1000
# iterations; all salts and digests are fixed filler bytes).  Each file is
# 4096 bytes: the 592-byte header padded with zeroes, so everything past
# the header (key material, payload) lies beyond the end of the file.
#
# The expected messages are in luks1/EXPECTED (qemu-img 7.2's texts, see
# shared/spec/qemu-facts.md 5.6); fuzz/check-hostile.sh checks vimg
# against it.  Usage: make-luks1.sh [OUTDIR]
set -euo pipefail

out=${1:-$(cd "$(dirname "$0")" && pwd)/luks1}
mkdir -p "$out"

python3 - "$out" <<'PY'
import os
import struct
import sys

out = sys.argv[1]
ACTIVE, INACTIVE = 0x00AC71F3, 0x0000DEAD


def base():
    """Field values of the valid base header (host order)."""
    return {
        "magic": b"LUKS\xba\xbe", "version": 1,
        "cipher": b"aes", "mode": b"xts-plain64", "hash": b"sha256",
        "payload": 2056, "key_bytes": 32,
        "mk_digest": bytes(range(20)), "mk_salt": bytes(range(32, 64)),
        "mk_iter": 1000,
        "uuid": b"6b3ea4e3-1a6f-4d52-9a43-6a0cb3a5f0de",
        "slots": [[ACTIVE if i == 0 else INACTIVE, 1000 if i == 0 else 0,
                   bytes([i + 1] * 32) if i == 0 else bytes(32),
                   8 + 256 * i, 4000] for i in range(8)],
    }


def name32(v):
    # Raw 32 bytes are written as they are (used for unterminated names).
    return v if len(v) == 32 else v.ljust(32, b"\0")


def pack(h):
    b = bytearray()
    b += h["magic"] + struct.pack(">H", h["version"])
    b += name32(h["cipher"]) + name32(h["mode"]) + name32(h["hash"])
    b += struct.pack(">II", h["payload"], h["key_bytes"])
    b += h["mk_digest"] + h["mk_salt"] + struct.pack(">I", h["mk_iter"])
    b += h["uuid"].ljust(40, b"\0")
    for active, iters, salt, off, stripes in h["slots"]:
        b += struct.pack(">II", active, iters) + salt
        b += struct.pack(">II", off, stripes)
    assert len(b) == 592
    return bytes(b).ljust(4096, b"\0")


def case(name, **changes):
    h = base()
    slot_changes = changes.pop("slot", {})
    h.update(changes)
    for (i, field), v in slot_changes.items():
        h["slots"][i][field] = v
    with open(os.path.join(out, name + ".luks"), "wb") as f:
        f.write(pack(h))


ACT, ITER, SALT, OFF, STRIPES = range(5)
case("valid-header")  # reference: loads; key material is past EOF
case("bad-magic", magic=b"LUKS\xba\xbf")
case("version-2", version=2)
case("version-0", version=0)
case("key-bytes-0", key_bytes=0)
case("key-bytes-65", key_bytes=65)
case("key-bytes-ffffffff", key_bytes=0xFFFFFFFF)
case("stripes-0", slot={(0, STRIPES): 0})
case("stripes-3999", slot={(0, STRIPES): 3999})
case("stripes-ffffffff", slot={(3, STRIPES): 0xFFFFFFFF})
case("key-offset-0", slot={(0, OFF): 0})
case("key-offset-beyond-file", payload=0xFFFFFF00,
     slot={(0, OFF): 0x7FFFFF00})
case("keyslots-overlap", slot={(2, OFF): 8 + 256 + 8})
case("slot-overlaps-payload", slot={(7, OFF): 2056 - 8})
case("payload-offset-0", payload=0)
case("payload-offset-7", payload=7)
case("mk-iterations-0", mk_iter=0)
case("active-slot-0-iterations", slot={(0, ITER): 0})
case("slot-state-corrupt", slot={(5, ACT): 0x00AC71F2})
case("cipher-name-unterminated", cipher=b"a" * 32)
case("cipher-mode-unterminated", mode=b"x" * 32)
case("hash-spec-unterminated", hash=b"s" * 32)
case("unknown-cipher", cipher=b"blowfish")
case("unknown-cipher-des", cipher=b"des")
case("unknown-mode", mode=b"gcm-plain64")
case("mode-without-ivgen", mode=b"xtsplain64")
case("unknown-ivgen", mode=b"xts-bogus")
case("unknown-hash", hash=b"whirlpool")
case("unknown-ivgen-hash", mode=b"cbc-essiv:crc32")
case("essiv-without-hash", mode=b"cbc-essiv", key_bytes=16)
case("essiv-sha1-aes", mode=b"cbc-essiv:sha1", key_bytes=16)
case("cast5-xts", cipher=b"cast5", key_bytes=32)
PY
ls "$out"/*.luks | wc -l
