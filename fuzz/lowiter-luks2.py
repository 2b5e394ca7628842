# SPDX-License-Identifier: LGPL-2.1-or-later
# Used by make-seeds.sh (fuzz-luks2-header seeds): python3 lowiter-luks2.py IMAGE VOLUME-KEY-FILE NSECTORS
# Rewrite keyslot 0 and digest 0 of a LUKS2 volume to 16 PBKDF2
# iterations (volume key known), recompute both header checksums, and
# append an encrypted payload of recognisable sectors.
import base64, hashlib, json, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
path, vkpath, nsec = sys.argv[1], sys.argv[2], int(sys.argv[3])
ITERS = 16
img = bytearray(open(path, "rb").read())
vk = open(vkpath, "rb").read()
hs = struct.unpack(">Q", img[8:16])[0]
meta = json.loads(bytes(img[4096:hs]).rstrip(b"\0"))
ks, dg, seg = meta["keyslots"]["0"], meta["digests"]["0"], meta["segments"]["0"]
assert ks["area"]["encryption"] == "aes-xts-plain64" and seg["encryption"] == "aes-xts-plain64"
assert ks["af"]["hash"] == "sha256" and ks["kdf"]["type"] == "pbkdf2"
rnd = __import__("random").Random(len(vk))  # deterministic stripes

def xts(key, data, first=0, enc=True):
    out = b""
    for i in range(0, len(data), 512):
        c = Cipher(algorithms.AES(key), modes.XTS(struct.pack("<Q", first + i // 512) + bytes(8)))
        x = c.encryptor() if enc else c.decryptor()
        out += x.update(data[i:i + 512]) + x.finalize()
    return out

def diffuse(d):
    out = b""
    for j in range(0, len(d), 32):
        chunk = d[j:j + 32]
        out += hashlib.sha256(struct.pack(">I", j // 32) + chunk).digest()[:len(chunk)]
    return out

d = bytes(len(vk))
mat = b""
for _ in range(ks["af"]["stripes"] - 1):
    s = bytes(rnd.getrandbits(8) for _ in range(len(vk)))
    mat += s
    d = diffuse(bytes(a ^ b for a, b in zip(d, s)))
mat += bytes(a ^ b for a, b in zip(d, vk))
mat += bytes(-len(mat) % 512)
ks["kdf"]["iterations"] = ITERS
akey = hashlib.pbkdf2_hmac("sha256", b"pw", base64.b64decode(ks["kdf"]["salt"]), ITERS, ks["area"]["key_size"])
off = int(ks["area"]["offset"])
img[off:off + len(mat)] = xts(akey, mat)
dg["iterations"] = ITERS
dg["digest"] = base64.b64encode(hashlib.pbkdf2_hmac(
    "sha256", vk, base64.b64decode(dg["salt"]), ITERS, len(base64.b64decode(dg["digest"])))).decode()
text = json.dumps(meta, separators=(",", ":")).encode()
for h in (0, hs):
    img[h + 4096:h + hs] = text.ljust(hs - 4096, b"\0")
    img[h + 448:h + 512] = bytes(64)
    img[h + 448:h + 480] = hashlib.sha256(bytes(img[h:h + hs])).digest()
data_off = int(seg["offset"])
plain = b"".join(b"vimg luks2 seed sector %4d\n" % i for i in range(nsec * 512 // 28 + 1))[:nsec * 512]
del img[data_off:]
img += bytes(data_off - len(img))
img += xts(vk, plain, int(seg["iv_tweak"]))
open(path, "wb").write(img)
