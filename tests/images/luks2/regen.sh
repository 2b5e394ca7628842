#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Regenerate the LUKS2 fixtures with cryptsetup (2.6.1 for the committed
# ones).  Each image is a plain file: a known plaintext pattern encrypted in
# place by `cryptsetup reencrypt --encrypt` (userspace, no device-mapper),
# so the payload is cryptsetup's own ciphertext.  For every image NAME:
#   NAME.img.xz  the image
#   NAME.key     the volume key (hex) from `luksDump --dump-master-key`
#   NAME.json    `luksDump --dump-json-metadata`
# The plaintext byte at payload offset x is (x + 3 * (x >> 9)) & 0xff over
# PLAIN_SIZE bytes (see tests/unit/test-luks2.c).  Passwords: "vimg-pw1"
# for keyslot 0, "vimg-pw2" for keyslot 1 where there is one.
set -euo pipefail
cd "$(dirname "$0")"
command -v cryptsetup >/dev/null || { echo "cryptsetup needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'vimg-pw1' > "$tmp/pw1"
printf 'vimg-pw2' > "$tmp/pw2"
PLAIN_SIZE=$((64 * 1024))
REDUCE=$((2 * 1024 * 1024))   # -> data offset 1 MiB

plain() {
    python3 -c "
import sys
n = $PLAIN_SIZE + $REDUCE
sys.stdout.buffer.write(bytes((x + 3 * (x >> 9)) & 0xff for x in range(n)))
" > "$1"
}

# make NAME "luksFormat/reencrypt options" [addkey options]
make() {
    local name=$1 opts=$2 add=${3:-}
    plain "$tmp/$name.img"
    # shellcheck disable=SC2086
    cryptsetup reencrypt --encrypt --type luks2 --batch-mode \
        --reduce-device-size $((REDUCE / 1024))K --key-file "$tmp/pw1" $opts \
        "$tmp/$name.img"
    if [ -n "$add" ]; then
        # shellcheck disable=SC2086
        cryptsetup luksAddKey --batch-mode --key-file "$tmp/pw1" $add \
            "$tmp/$name.img" "$tmp/pw2"
    fi
    cryptsetup luksDump --dump-master-key --batch-mode --key-file "$tmp/pw1" \
        "$tmp/$name.img" | sed -n '/MK dump/,$p' | sed 's/MK dump://' |
        tr -d ' \t\n' > "$name.key"
    echo >> "$name.key"
    cryptsetup luksDump --dump-json-metadata "$tmp/$name.img" > "$name.json"
    # Keep the fixture small: zero the unused parts of the keyslots area
    # (cryptsetup fills it with random bytes; nothing checks them) and cut
    # the payload to PLAIN_SIZE bytes.
    python3 - "$tmp/$name.img" "$name.json" "$PLAIN_SIZE" <<'PY'
import json, sys
img, meta, plain = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
hdr = int(meta["config"]["json_size"]) + 4096
off = int(meta["segments"]["0"]["offset"])
used = sorted((int(k["area"]["offset"]), int(k["area"]["size"]))
              for k in meta["keyslots"].values())
with open(img, "r+b") as f:
    pos = 2 * hdr
    for a, n in used + [(off, 0)]:
        if a > pos:
            f.seek(pos)
            f.write(bytes(a - pos))
        pos = max(pos, a + n)
    f.truncate(off + plain)
PY
    xz -9 -c "$tmp/$name.img" > "$name.img.xz"
}

make cs-pbkdf2-xts256-s4096 \
    "--cipher aes-xts-plain64 --key-size 256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha256"
make cs-argon2id-xts256-s512 \
    "--cipher aes-xts-plain64 --key-size 256 --sector-size 512 --pbkdf argon2id --pbkdf-memory 1024 --pbkdf-parallel 2 --pbkdf-force-iterations 4" \
    "--pbkdf argon2i --pbkdf-memory 2048 --pbkdf-parallel 1 --pbkdf-force-iterations 4"
make cs-pbkdf2-cbc-essiv-s4096 \
    "--cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha512" \
    "--pbkdf pbkdf2 --pbkdf-force-iterations 1200 --hash sha1"
ls -la
