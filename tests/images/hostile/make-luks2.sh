#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate tests/images/hostile/luks2/: LUKS2 volumes with one defect
# each, built from a deterministic, otherwise valid volume (aes
# cbc-essiv:sha256, 16-byte volume key, 16 KiB header copies, keyslots
# area 64 KiB from 32 KiB, data at 96 KiB; keyslot 0 pbkdf2-sha256 1000
# iterations, password "pw"; salts from a fixed PRNG).  valid.luks is
# whole (key material and 8 sectors of payload, "vimg hostile luks2
# sector N" lines); the others are the two header copies only (32 KiB):
# every defect is in the headers.  Checksums are recomputed after each
# defect unless the defect is the checksum.
#
# What cryptsetup 2.6 and vimg do with each file is in luks2/EXPECTED;
# fuzz/check-hostile-luks2.sh checks both.  Usage: make-luks2.sh [OUTDIR]
set -euo pipefail

out=${1:-$(cd "$(dirname "$0")" && pwd)/luks2}
mkdir -p "$out"

python3 - "$out" <<'PY'
import base64, copy, hashlib, json, os, random, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

out = sys.argv[1]
rnd = random.Random(20261205)
rb = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))
HS, KS_OFF, KS_SIZE, DATA = 16384, 32768, 65536, 98304
KEY, STRIPES, ITERS = 16, 4000, 1000
vk = rb(KEY)
ks_salt, dg_salt = rb(32), rb(32)
salts = (rb(64), rb(64))
b64 = lambda b: base64.b64encode(b).decode()


def essiv(key, data, first=0, enc=True):
    ek = hashlib.sha256(key).digest()
    res = b""
    for i in range(0, len(data), 512):
        e = Cipher(algorithms.AES(ek), modes.ECB()).encryptor()
        iv = e.update(struct.pack("<Q", first + i // 512) + bytes(8)) + e.finalize()
        c = Cipher(algorithms.AES(key), modes.CBC(iv))
        x = c.encryptor() if enc else c.decryptor()
        res += x.update(data[i:i + 512]) + x.finalize()
    return res


def diffuse(d):
    res = b""
    for j in range(0, len(d), 32):
        chunk = d[j:j + 32]
        res += hashlib.sha256(struct.pack(">I", j // 32) + chunk).digest()[:len(chunk)]
    return res


def afsplit(key):
    d, mat = bytes(len(key)), b""
    for _ in range(STRIPES - 1):
        s = rb(len(key))
        mat += s
        d = diffuse(bytes(a ^ b for a, b in zip(d, s)))
    return mat + bytes(a ^ b for a, b in zip(d, key))


def base_meta():
    return {
        "keyslots": {"0": {
            "type": "luks2", "key_size": KEY,
            "af": {"type": "luks1", "stripes": STRIPES, "hash": "sha256"},
            "area": {"type": "raw", "offset": str(KS_OFF), "size": str(KS_SIZE),
                     "encryption": "aes-cbc-essiv:sha256", "key_size": KEY},
            "kdf": {"type": "pbkdf2", "hash": "sha256", "iterations": ITERS,
                    "salt": b64(ks_salt)}}},
        "tokens": {},
        "segments": {"0": {"type": "crypt", "offset": str(DATA), "size": "dynamic",
                           "iv_tweak": "0", "encryption": "aes-cbc-essiv:sha256",
                           "sector_size": 512}},
        "digests": {"0": {"type": "pbkdf2", "keyslots": ["0"], "segments": ["0"],
                          "hash": "sha256", "iterations": ITERS,
                          "salt": b64(dg_salt),
                          "digest": b64(hashlib.pbkdf2_hmac("sha256", vk, dg_salt, ITERS, 32))}},
        "config": {"json_size": str(HS - 4096), "keyslots_size": str(KS_SIZE)},
    }


def binhdr(i, hs=HS, seqid=1, off=None):
    h = (b"LUKS\xba\xbe" if i == 0 else b"SKUL\xba\xbe") + struct.pack(">HQQ", 2, hs, seqid)
    h += bytes(48) + b"sha256".ljust(32, b"\0") + salts[i]
    h += b"0b5e2f3c-1d4a-4e6b-9f70-8a1b2c3d4e5f".ljust(40, b"\0") + bytes(48)
    h += struct.pack(">Q", (0 if i == 0 else hs) if off is None else off)
    return bytearray(h.ljust(4096, b"\0"))


def image(meta=None, text=None, hs=HS, fix=True, tweak=None, whole=False):
    meta = base_meta() if meta is None else meta
    if text is None:
        text = json.dumps(meta, separators=(",", ":")).encode()
    img = bytearray()
    for i in (0, 1):
        h = binhdr(i, hs)
        if tweak:
            tweak(i, h)
        area = text[:hs - 4096].ljust(hs - 4096, b"\0")
        copy_ = h + area
        if fix:
            copy_[448:512] = bytes(64)
            copy_[448:480] = hashlib.sha256(bytes(copy_)).digest()
        img += copy_
    if whole:
        akey = hashlib.pbkdf2_hmac("sha256", b"pw", ks_salt, ITERS, KEY)
        mat = afsplit(vk)
        mat += bytes(-len(mat) % 512)
        img += bytes(KS_OFF - len(img)) + essiv(akey, mat)
        img += bytes(DATA - len(img))
        plain = b"".join(b"vimg hostile luks2 sector %3d\n" % (i // 16) for i in range(128))
        img += essiv(vk, plain[:4096].ljust(4096, b"\0"))
    return bytes(img)


def edit(fn):
    m = base_meta()
    fn(m)
    return m


def put(name, data):
    with open(os.path.join(out, name + ".luks"), "wb") as f:
        f.write(data)


ks = lambda m: m["keyslots"]["0"]
seg = lambda m: m["segments"]["0"]
put("valid", image(whole=True))
put("valid-header-only", image())
put("checksum-mismatch", image(fix=False))
put("json-garbage", image(text=b"{\"keyslots\": [1, 2,"))
put("json-not-object", image(text=b"[1,2,3]"))
put("json-unterminated", image(text=b"{" + b" " * (HS - 4096 - 1)))
put("json-deep-nesting", image(text=b"[" * 5000 + b"]" * 5000))
put("hdr-size-12345", image(tweak=lambda i, h: h.__setitem__(slice(8, 16), struct.pack(">Q", 12345))))
put("hdr-size-huge", image(tweak=lambda i, h: h.__setitem__(slice(8, 16), struct.pack(">Q", 1 << 62))))
put("hdr-offset-wrong", image(tweak=lambda i, h: h.__setitem__(slice(256, 264), struct.pack(">Q", 4096))))
put("version-3", image(tweak=lambda i, h: h.__setitem__(slice(6, 8), b"\0\3")))
put("checksum-alg-unknown", image(fix=False, tweak=lambda i, h: h.__setitem__(slice(72, 104), b"whirlpool-9".ljust(32, b"\0"))))
put("json-size-mismatch", image(edit(lambda m: m["config"].__setitem__("json_size", "4096"))))
put("keyslots-size-huge", image(edit(lambda m: m["config"].__setitem__("keyslots_size", "18446744073709547520"))))
put("segment-offset-unaligned", image(edit(lambda m: seg(m).__setitem__("offset", "98305"))))
put("segment-offset-in-header", image(edit(lambda m: seg(m).__setitem__("offset", "16384"))))
put("segment-offset-huge", image(edit(lambda m: seg(m).__setitem__("offset", "18446744073709551104"))))
put("segment-size-overflow", image(edit(lambda m: seg(m).update(size="18446744073709451264"))))
put("segment-size-not-number", image(edit(lambda m: seg(m).update(size="12abc"))))
put("segment-sector-size-768", image(edit(lambda m: seg(m).update(sector_size=768))))
put("segment-integrity", image(edit(lambda m: seg(m).update(integrity={"type": "hmac(sha256)", "journal_encryption": "none", "journal_integrity": "none"}))))
put("segment-cipher-unknown", image(edit(lambda m: seg(m).update(encryption="nosuch-cbc-plain64"))))
put("keyslot-area-in-header", image(edit(lambda m: ks(m)["area"].update(offset="4096"))))
put("keyslot-area-past-keyslots", image(edit(lambda m: ks(m)["area"].update(offset="131072"))))
put("keyslot-area-size-huge", image(edit(lambda m: ks(m)["area"].update(size="18446744073709547520"))))
put("keyslot-area-too-small", image(edit(lambda m: ks(m)["area"].update(size="4096"))))
put("keyslot-key-size-0", image(edit(lambda m: ks(m).update(key_size=0))))
put("keyslot-key-size-huge", image(edit(lambda m: ks(m).update(key_size=4194304))))
put("keyslot-stripes-0", image(edit(lambda m: ks(m)["af"].update(stripes=0))))
put("keyslot-stripes-huge", image(edit(lambda m: ks(m)["af"].update(stripes=4294967295))))
put("keyslot-id-99", image(edit(lambda m: m["keyslots"].__setitem__("99", m["keyslots"].pop("0")))))
put("keyslot-iterations-0", image(edit(lambda m: ks(m)["kdf"].update(iterations=0))))
put("keyslot-argon2-memory-huge", image(edit(lambda m: ks(m).update(kdf={"type": "argon2id", "time": 4, "memory": 4294967295, "cpus": 4, "salt": b64(ks_salt)}))))
put("keyslot-argon2-cpus-huge", image(edit(lambda m: ks(m).update(kdf={"type": "argon2id", "time": 4, "memory": 65536, "cpus": 1000000, "salt": b64(ks_salt)}))))


def overlap(m):
    m["keyslots"]["1"] = copy.deepcopy(ks(m))
    m["digests"]["0"]["keyslots"].append("1")


put("keyslots-overlap", image(edit(overlap)))
put("digest-keyslot-missing", image(edit(lambda m: m["digests"]["0"].update(keyslots=["0", "5"]))))
put("digest-salt-bad-base64", image(edit(lambda m: m["digests"]["0"].update(salt="!!!not base64!!!"))))
put("requirement-online-reencrypt", image(edit(lambda m: m["config"].update(requirements={"mandatory": ["online-reencrypt-v2"]}))))
put("no-segments", image(edit(lambda m: m.update(segments={}))))
PY
ls "$out" | wc -l
