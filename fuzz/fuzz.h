/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared helpers of the fuzz targets: the libFuzzer entry point prototype
 * and FUZZ_CHECK(), an invariant check that prints what failed and aborts,
 * so both libFuzzer and the corpus replay driver report it as a crash.
 */
#ifndef VIMG_FUZZ_H
#define VIMG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,  \
                    __LINE__, #cond);                                   \
            abort();                                                    \
        }                                                               \
    } while (0)

#endif /* VIMG_FUZZ_H */
