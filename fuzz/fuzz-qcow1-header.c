/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for qcow version 1 images (lib/format/qcow.c): the header
 * checks (cluster_bits, l2_bits, size, L1 table offset and size,
 * crypt_method, backing file name), block status, reads with the legacy
 * AES key "pw" when the header says the image is encrypted (the password
 * is the key: no key derivation), info, and the refusals of check and the
 * snapshot list (-ENOTSUP).  The steps, invariants and the filesystem
 * safety rule are those of fuzz-qcow2-open.c, which this file builds with
 * FUZZ_QCOW_V1 defined and format "qcow".
 */
#define FUZZ_QCOW_V1 1
#include "fuzz-qcow2-open.c"
