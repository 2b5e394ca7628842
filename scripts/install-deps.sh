#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Install the Debian 12 packages needed to build and test vimg, but only
# those that are missing (checked with dpkg -s first; apt-get update runs
# only when something must be installed).  Run as root, or with sudo
# available.  Safe to run repeatedly.

set -euo pipefail

PKGS=(
    build-essential meson ninja-build pkg-config
    libgcrypt20-dev libjson-c-dev zlib1g-dev libzstd-dev libkeyutils-dev
    keyutils qemu-utils cryptsetup-bin nbdkit libnbd-bin
    xz-utils openssl jq clang valgrind groff-base
    coreutils diffutils xxd util-linux bc
    strace python3
    nbdkit-plugin-dev gnutls-bin fio
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg -s "$p" >/dev/null 2>&1 ||
           ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages already installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
