/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Endian loads/stores on unaligned byte buffers, rounding and overflow-checked
 * arithmetic.  Header-only leaf code. */
#ifndef VIMG_BYTES_H
#define VIMG_BYTES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t ld_be16(const void *p) { const uint8_t *b = p; return (uint16_t)(b[0] << 8 | b[1]); }
static inline uint32_t ld_be32(const void *p) { const uint8_t *b = p; return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static inline uint64_t ld_be64(const void *p) { const uint8_t *b = p; return (uint64_t)ld_be32(b) << 32 | ld_be32(b + 4); }
static inline void st_be16(void *p, uint16_t v) { uint8_t *b = p; b[0] = v >> 8; b[1] = (uint8_t)v; }
static inline void st_be32(void *p, uint32_t v) { uint8_t *b = p; b[0] = v >> 24; b[1] = (uint8_t)(v >> 16); b[2] = (uint8_t)(v >> 8); b[3] = (uint8_t)v; }
static inline void st_be64(void *p, uint64_t v) { st_be32(p, (uint32_t)(v >> 32)); st_be32((uint8_t *)p + 4, (uint32_t)v); }
static inline uint32_t ld_le32(const void *p) { const uint8_t *b = p; return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0]; }
static inline uint64_t ld_le64(const void *p) { const uint8_t *b = p; return (uint64_t)ld_le32(b + 4) << 32 | ld_le32(b); }
static inline void st_le32(void *p, uint32_t v) { uint8_t *b = p; b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = v >> 24; }
static inline void st_le64(void *p, uint64_t v) { st_le32(p, (uint32_t)v); st_le32((uint8_t *)p + 4, (uint32_t)(v >> 32)); }

#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, a) (DIV_ROUND_UP((n), (a)) * (a))
#define IS_ALIGNED(n, a) (((n) % (a)) == 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Overflow-checked arithmetic: true on overflow. */
#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow((a), (b), (r))
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow((a), (b), (r))

#endif /* VIMG_BYTES_H */
