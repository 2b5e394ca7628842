#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build and run bench-pbkdf2: vimg's PBKDF2-HMAC-SHA256 rate next to the
# rate qemu-img calibrates into a LUKS header (see bench-pbkdf2.c).
# Usage: bench/bench-pbkdf2.sh [BUILDDIR] [extra bench-pbkdf2 args...]
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$srcdir/build}
shift || true

if [ ! -f "$builddir/build.ninja" ]; then
    echo "$0: $builddir is not a configured meson build directory" >&2
    exit 1
fi
ninja -C "$builddir" bench/bench-pbkdf2 >/dev/null
if ! command -v qemu-img >/dev/null; then
    echo "$0: qemu-img not found; printing vimg figures only" >&2
fi
exec "$builddir/bench/bench-pbkdf2" "$@"
