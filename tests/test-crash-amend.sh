#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash consistency of `vimg amend -o refcount_bits=N`: scenario "r" of
# tests/test-crash-qcow2.sh (failpoint crash and eio at every counted call,
# or about $CRASH_POINTS (20) of them; real qemu-img check, info and reads
# afterwards).  A separate test so it runs in parallel with the others.
here=$(cd "$(dirname "$0")" && pwd)
CRASH_POINTS=${CRASH_POINTS:-20} CRASH_SCENARIOS=${CRASH_SCENARIOS:-r} exec bash "$here/test-crash-qcow2.sh"
