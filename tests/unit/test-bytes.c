/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of common/bytes.h: big/little-endian loads and stores on
 * unaligned buffers, rounding macros and the overflow-checked arithmetic.
 */
#include "config.h"

#include <stdint.h>

#include "bytes.h"
#include "tap.h"

int
main(void)
{
    uint8_t buf[17];
    uint8_t *u = buf + 1;   /* deliberately unaligned */
    uint64_t r64;
    uint32_t r32;
    size_t rs;

    memset(buf, 0, sizeof(buf));
    st_be16(u, 0x1234);
    ok(u[0] == 0x12 && u[1] == 0x34, "st_be16 byte order");
    ok(ld_be16(u) == 0x1234, "ld_be16 round trip");

    st_be32(u, 0xdeadbeef);
    ok(u[0] == 0xde && u[1] == 0xad && u[2] == 0xbe && u[3] == 0xef,
       "st_be32 byte order");
    ok(ld_be32(u) == 0xdeadbeef, "ld_be32 round trip");

    st_be64(u, 0x0102030405060708ULL);
    {
        const uint8_t want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        ok_mem(u, want, 8, "st_be64 byte order");
    }
    ok(ld_be64(u) == 0x0102030405060708ULL, "ld_be64 round trip");

    st_le32(u, 0xdeadbeef);
    ok(u[0] == 0xef && u[1] == 0xbe && u[2] == 0xad && u[3] == 0xde,
       "st_le32 byte order");
    ok(ld_le32(u) == 0xdeadbeef, "ld_le32 round trip");

    st_le64(u, 0x0102030405060708ULL);
    {
        const uint8_t want[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };
        ok_mem(u, want, 8, "st_le64 byte order");
    }
    ok(ld_le64(u) == 0x0102030405060708ULL, "ld_le64 round trip");

    /* High bits must not sign-extend. */
    st_be32(u, 0x80000001);
    ok(ld_be32(u) == 0x80000001u, "ld_be32 high bit");
    st_be64(u, 0xff00000000000001ULL);
    ok(ld_be64(u) == 0xff00000000000001ULL, "ld_be64 high bits");
    st_le64(u, 0x8000000000000080ULL);
    ok(ld_le64(u) == 0x8000000000000080ULL, "ld_le64 high bits");

    /* LUKS1 header field, as on disk: key bytes 32 at offset 108. */
    {
        uint8_t hdr[4];
        hex2bin("00000020", hdr, sizeof(hdr));
        ok(ld_be32(hdr) == 32, "ld_be32 on a LUKS key-bytes field");
    }

    ok(DIV_ROUND_UP(0, 512) == 0, "DIV_ROUND_UP 0");
    ok(DIV_ROUND_UP(1, 512) == 1, "DIV_ROUND_UP 1");
    ok(DIV_ROUND_UP(512, 512) == 1, "DIV_ROUND_UP exact");
    ok(DIV_ROUND_UP(513, 512) == 2, "DIV_ROUND_UP 513");
    ok(ROUND_UP(1000, 512) == 1024, "ROUND_UP 1000 -> 1024");
    ok(ROUND_UP(1024, 512) == 1024, "ROUND_UP exact");
    ok(IS_ALIGNED(4096, 512) && !IS_ALIGNED(4097, 512), "IS_ALIGNED");
    ok(MIN(3, 5) == 3 && MAX(3, 5) == 5, "MIN/MAX");
    {
        int arr[7];
        ok(ARRAY_SIZE(arr) == 7, "ARRAY_SIZE");
    }

    ok(!ADD_OVERFLOW((uint64_t)1, (uint64_t)2, &r64) && r64 == 3,
       "ADD_OVERFLOW no overflow");
    ok(ADD_OVERFLOW(UINT64_MAX, (uint64_t)1, &r64), "ADD_OVERFLOW u64 wraps");
    ok(ADD_OVERFLOW((uint32_t)0xffffffff, (uint32_t)1, &r32),
       "ADD_OVERFLOW u32 wraps");
    ok(!MUL_OVERFLOW((uint64_t)1 << 31, (uint64_t)2, &r64) &&
       r64 == (uint64_t)1 << 32, "MUL_OVERFLOW no overflow");
    ok(MUL_OVERFLOW((uint64_t)1 << 32, (uint64_t)1 << 32, &r64),
       "MUL_OVERFLOW 2^64");
    ok(MUL_OVERFLOW((size_t)SIZE_MAX / 2 + 1, (size_t)2, &rs),
       "MUL_OVERFLOW size_t");
    /* A u32 product that only fits in 64 bits overflows a u32 result. */
    ok(MUL_OVERFLOW((uint32_t)4000, (uint32_t)4000000, &r32),
       "MUL_OVERFLOW into a narrower result");

    return tap_done();
}
