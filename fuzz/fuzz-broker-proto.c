// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Fuzz target for the vimgd protocol parser (broker/protocol.c): any
 * datagram either is rejected or parses into a request that re-encodes to
 * exactly the same bytes (no field is silently dropped or normalised, so
 * the daemon and the audit log see what the client sent).
 */
#include <string.h>

#include "fuzz.h"
#include "protocol.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vb_msg m;
    static struct vb_request r;
    static uint8_t out[VB_MAX_MSG];
    const char *why;
    int n;

    if (vb_decode(data, size, &m) < 0) {
        return 0;
    }
    FUZZ_CHECK(m.len == size - VB_HDR_LEN);
    if (vb_parse_request(&m, &r, &why) < 0) {
        return 0;
    }
    FUZZ_CHECK(r.op >= VB_OP_HELLO && r.op <= VB_OP_MAX_);
    FUZZ_CHECK(strlen(r.name) <= VB_MAX_NAME);
    FUZZ_CHECK(r.ntids <= VB_MAX_TIDS && r.arg_len <= VB_MAX_ARG);
    n = vb_encode_request(out, &r);
    FUZZ_CHECK(n == (int)size);
    FUZZ_CHECK(memcmp(out, data, size) == 0);
    return 0;
}
