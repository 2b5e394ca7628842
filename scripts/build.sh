#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Configure (once) and build vimg.  Usage:
#   scripts/build.sh [BUILDDIR [MESON_SETUP_ARGS...]]
# Default BUILDDIR is "build" (debugoptimized, --werror).  Re-running
# reconfigures with the given arguments and rebuilds.

set -euo pipefail
cd "$(dirname "$0")/.."

builddir=${1:-build}
shift || true
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--werror)

if [ -f "$builddir/build.ninja" ]; then
    meson setup --reconfigure "$builddir" "${args[@]}" >/dev/null
else
    meson setup "$builddir" "${args[@]}"
fi
ninja -C "$builddir"
