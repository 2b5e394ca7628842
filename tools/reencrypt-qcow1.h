/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vimg reencrypt of a qcow v1 image: a crash-safe replace by a new
 * qcow2 + LUKS file (tools/reencrypt-qcow1.c, docs/reencrypt.md).
 */
#ifndef VIMG_TOOLS_REENCRYPT_QCOW1_H
#define VIMG_TOOLS_REENCRYPT_QCOW1_H

#include <stdbool.h>

#include "vimg.h"

/**
 * reencrypt_qcow1 - replace the qcow v1 image @path by a qcow2 + LUKS copy.
 * @opts: the -o options: encrypt.key-secret=ID (the AES passphrase, if
 *   any, and the new LUKS passphrase) and optional encrypt.* header options.
 * @progress: show -p progress.
 * @quiet: no notes.
 * @force: migrate even if AES-decrypted data looks random.
 * Return: 0, or -errno after printing the error (the original untouched).
 */
int reencrypt_qcow1(const char *path, struct vimg_opts *opts, bool progress,
                    bool quiet, bool force);

#endif
