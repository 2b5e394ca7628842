#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A short demonstration of vimg: install what is missing, build a release
# binary, then create an encrypted LUKS image, write a text file into it,
# read it back, show that the bytes match, and print `vimg info`.  Every
# command is printed before it runs.  Nothing outside a temporary
# directory (and build-release/) is touched.

set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    ./scripts/install-deps.sh
fi
bdir=${DEMO_BUILDDIR:-build-release}
./scripts/build.sh "$bdir" --buildtype=release >/dev/null
vimg=$top/$bdir/tools/vimg

work=$(mktemp -d /tmp/vimg-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

run()
{
    printf '\n$ %s\n' "$*"
    "$@"
}

echo "== vimg demo in $work"
umask 077
printf 'correct horse battery staple' >secret.txt
cat >hello.txt <<'TEXT'
Hello from vimg!
This text travels through a LUKS1 image (aes-256-xts-plain64, sha256),
encrypted by libvimg exactly the way qemu-img and cryptsetup expect.
TEXT
# The text padded to a whole 512-byte sector: that is the image's content.
run truncate -s 512 hello.txt

run "$vimg" --version
run "$vimg" create -f luks --object secret,id=sec0,file=secret.txt \
    -o key-secret=sec0,iter-time=10 disk.luks 1M
run "$vimg" convert -n --object secret,id=sec0,file=secret.txt -f raw hello.txt \
    --target-image-opts driver=luks,key-secret=sec0,file.filename=disk.luks
run "$vimg" convert --object secret,id=sec0,file=secret.txt \
    --image-opts driver=luks,key-secret=sec0,file.filename=disk.luks -O raw back.raw
run cmp -n 512 hello.txt back.raw
echo "-> the first 512 bytes read back match hello.txt:"
head -c 512 back.raw | tr -d '\0'
echo "-> while the image file itself holds no plaintext:"
if grep -q 'Hello from vimg' disk.luks; then
    echo "PLAINTEXT FOUND IN disk.luks" >&2
    exit 1
fi
echo "   (grep 'Hello from vimg' disk.luks finds nothing)"
run "$vimg" info disk.luks
printf 'wrong' >wrong.txt
echo "-> and a wrong password is refused:"
run "$vimg" convert --object secret,id=sec0,file=wrong.txt \
    --image-opts driver=luks,key-secret=sec0,file.filename=disk.luks -O raw x.raw ||
    echo "(exit code $?)"
echo
echo "== demo finished"
