#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash consistency of `vimg snapshot` -c / -d / -a: scenario "s" of
# tests/test-crash-qcow2.sh (failpoint crash and eio at every counted call,
# or about $CRASH_POINTS of them; real qemu-img check and qemu-img reads
# afterwards).  A separate test so the two run in parallel.
here=$(cd "$(dirname "$0")" && pwd)
CRASH_SCENARIOS=${CRASH_SCENARIOS:-s} exec bash "$here/test-crash-qcow2.sh"
