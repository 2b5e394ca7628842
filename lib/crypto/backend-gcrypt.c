/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libgcrypt backend of crypto.h: library initialisation, hashes, HMAC,
 * PBKDF2 (RFC 8018) and its CPU-time calibration, getrandom(2)-based random
 * bytes, and block ciphers (AES, Serpent, Twofish, CAST5 in ECB, CBC, CTR,
 * XTS).  libgcrypt was chosen over OpenSSL by measurement (see
 * docs/architecture.md): per-sector XTS and PBKDF2-HMAC-SHA256 are both
 * markedly faster, and it has every cipher and hash LUKS1 uses.
 *
 * Two things are done here without libgcrypt:
 * - PBKDF2-HMAC-SHA256 on CPUs with the x86 SHA extensions runs its
 *   iteration loop on SHA-NI directly (as fast as nettle, the library qemu
 *   uses, and 1.35x qemu for 64-byte keys; gcry_kdf_derive is 15-35% slower).
 * - Twofish-192: libgcrypt only has 128- and 256-bit Twofish keys, so a
 *   small table-driven Twofish with its own ECB/CBC/CTR/XTS is built in.
 *
 * Leaf code: functions return 0 or a negative errno and never log.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <gcrypt.h>

#include "crypto/crypto.h"
#include "crypto/crypto-internal.h"

#include "bytes.h"
#include "safemem.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

/* PBKDF2-HMAC-SHA256 with the SHA extensions, when the CPU has them. */
#define HAVE_SHANI_PATH 1
static bool have_shani;
static void detect_shani(void);
#endif

/* Oldest libgcrypt with everything used here (XTS since 1.8, md_hash_buffers
 * with HMAC since 1.7); meson asks for >= 1.9. */
#define GCRYPT_MIN_VERSION "1.9.0"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -EIO;

/*
 * Key material inside libgcrypt.  Every cipher handle (which holds the
 * expanded key schedule, two of them for XTS) and every HMAC or key-hashing
 * md handle is opened with GCRY_CIPHER_SECURE / GCRY_MD_FLAG_SECURE, so
 * libgcrypt takes it from its "secure" allocator.  When vimg initialises
 * libgcrypt, that allocator is routed to safe_alloc() through
 * gcry_set_allocation_handler (still honoured by libgcrypt 1.10): the
 * handles land in mlocked, MADV_DONTDUMP pages that are wiped on free.
 * Ordinary (non-secure) allocations keep going to malloc.  libgcrypt's own
 * secure pool (GCRYCTL_INIT_SECMEM) was not used: its first pool is a
 * private mmap that libgcrypt gives no way to find (to madvise it), it is
 * 32 KiB by default, and when it runs out 1.10 grows it with plain malloc'd,
 * unlocked, dumpable pools.  The safemem page cache keeps the cost of a
 * secure handle to a memset; AES-XTS throughput is unchanged (see
 * docs/architecture.md, "Key material in memory").
 *
 * Argon2's working memory (gcry_kdf_open's block array, up to 4 GiB, all
 * of it derived from the passphrase) is an ordinary allocation inside
 * libgcrypt.  While crypto_argon2() runs, its thread sets kdf_scratch and
 * the ordinary allocator hands out safe_alloc_unlocked() memory instead:
 * MADV_DONTDUMP and wiped on free like the secure kind, but not mlocked
 * (locking gigabytes fails beyond RLIMIT_MEMLOCK, or pins them for root).
 *
 * If the application initialised libgcrypt itself, its choices stand (a
 * library must not replace them): the SECURE flags then use whatever secure
 * memory the application set up, and Argon2 memory is ordinary heap.
 */
static __thread bool kdf_scratch;

void
crypto_kdf_scratch(bool on)
{
    kdf_scratch = on;
}

static void *
gcry_safe_alloc(size_t n)
{
    return safe_alloc(n);
}

static void *
gcry_plain_alloc(size_t n)
{
    return kdf_scratch ? safe_alloc_unlocked(n) : malloc(n);
}

static int
gcry_safe_is_secure(const void *p)
{
    return safe_owns(p);
}

static void *
gcry_safe_realloc(void *p, size_t n)
{
    void *q;

    if (!safe_owns(p)) {
        return realloc(p, n);
    }
    q = safe_alloc(n);
    if (q) {
        size_t old = safe_len(p);

        memcpy(q, p, old < n ? old : n);
        safe_free(p);
    }
    return q;
}

static void
gcry_safe_release(void *p)
{
    if (safe_owns(p)) {
        safe_free(p);
    } else {
        free(p);
    }
}

static void
do_init(void)
{
    if (!gcry_check_version(GCRYPT_MIN_VERSION)) {
        init_result = -ENOTSUP;
        return;
    }
#ifdef HAVE_SHANI_PATH
    detect_shani();
#endif
    /* Only when vimg is the one initialising libgcrypt (see above). */
    if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
        gcry_set_allocation_handler(gcry_plain_alloc, gcry_safe_alloc,
                                    gcry_safe_is_secure, gcry_safe_realloc,
                                    gcry_safe_release);
        gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    init_result = 0;
}

int
crypto_init(void)
{
    pthread_once(&init_once, do_init);
    return init_result;
}

/* Translate a libgcrypt error into a negative errno. */
static int
gcry_to_errno(gcry_error_t err)
{
    gcry_err_code_t code = gcry_err_code(err);

    switch (code) {
    case GPG_ERR_NO_ERROR:
        return 0;
    case GPG_ERR_ENOMEM:
        return -ENOMEM;
    case GPG_ERR_INV_KEYLEN:
    case GPG_ERR_INV_ARG:
    case GPG_ERR_INV_VALUE:
    case GPG_ERR_INV_LENGTH:
    case GPG_ERR_WEAK_KEY:
        return -EINVAL;
    case GPG_ERR_NOT_SUPPORTED:
    case GPG_ERR_DIGEST_ALGO:
    case GPG_ERR_CIPHER_ALGO:
        return -ENOTSUP;
    default:
        if (code & GPG_ERR_SYSTEM_ERROR) {
            int e = gcry_err_code_to_errno(code);
            return e > 0 ? -e : -EIO;
        }
        return -EIO;
    }
}

/* ---- hashes ---- */

static const int md_algos[CRYPTO_HASH__MAX] = {
    [CRYPTO_HASH_MD5] = GCRY_MD_MD5,
    [CRYPTO_HASH_SHA1] = GCRY_MD_SHA1,
    [CRYPTO_HASH_SHA224] = GCRY_MD_SHA224,
    [CRYPTO_HASH_SHA256] = GCRY_MD_SHA256,
    [CRYPTO_HASH_SHA384] = GCRY_MD_SHA384,
    [CRYPTO_HASH_SHA512] = GCRY_MD_SHA512,
    [CRYPTO_HASH_RIPEMD160] = GCRY_MD_RMD160,
};

/*
 * Overwrite the stack below the caller's frame, where libgcrypt's hash code
 * may have left block copies.  Not inlined, so it reuses the frames the
 * callee just left.
 */
static void __attribute__((noinline))
burn_stack(void)
{
    uint8_t area[4096];

    explicit_bzero(area, sizeof(area));
    __asm__ __volatile__("" : : "r"(area) : "memory");
}

/*
 * Hash (or, with GCRY_MD_FLAG_HMAC, HMAC keyed by iov[0]) of @n buffers.
 * Every caller hashes key material (ESSIV salt-keys, AF-split diffusion,
 * HMAC keys) or does it rarely (LUKS2 header checksums), so the context is
 * always a secure handle, not gcry_md_hash_buffers' unwiped stack context.
 */
static int
md_buffers(enum crypto_hash_alg h, unsigned flags, gcry_buffer_t *iov, int n,
           uint8_t *out)
{
    gcry_md_hd_t md = NULL;
    gcry_error_t err;
    int r;

    if ((unsigned)h >= CRYPTO_HASH__MAX || !out) {
        return -EINVAL;
    }
    r = crypto_init();
    if (r < 0) {
        return r;
    }
    for (int i = 0; i < n; i++) {
        if (iov[i].len && !iov[i].data) {
            return -EINVAL;
        }
    }
    err = gcry_md_open(&md, md_algos[h], flags | GCRY_MD_FLAG_SECURE);
    if (!err && (flags & GCRY_MD_FLAG_HMAC)) {
        err = gcry_md_setkey(md, iov[0].len ? iov[0].data : "", iov[0].len);
        iov++;
        n--;
    }
    if (!err) {
        for (int i = 0; i < n; i++) {
            gcry_md_write(md, iov[i].data, iov[i].len);
        }
        memcpy(out, gcry_md_read(md, 0), gcry_md_get_algo_dlen(md_algos[h]));
    }
    gcry_md_close(md);
    burn_stack();
    return gcry_to_errno(err);
}

int
crypto_hash(enum crypto_hash_alg h, const void *in, size_t len, uint8_t *out)
{
    gcry_buffer_t iov[1] = {
        { .data = (void *)in, .len = len },
    };

    return md_buffers(h, 0, iov, 1, out);
}

int
crypto_hash2(enum crypto_hash_alg h, const void *a, size_t alen,
             const void *b, size_t blen, uint8_t *out)
{
    gcry_buffer_t iov[2] = {
        { .data = (void *)a, .len = alen },
        { .data = (void *)b, .len = blen },
    };

    return md_buffers(h, 0, iov, 2, out);
}

int
crypto_hmac(enum crypto_hash_alg h, const void *key, size_t keylen,
            const void *in, size_t len, uint8_t *out)
{
    /* md_buffers takes the HMAC key as the first buffer. */
    gcry_buffer_t iov[2] = {
        { .data = (void *)key, .len = keylen },
        { .data = (void *)in, .len = len },
    };

    return md_buffers(h, GCRY_MD_FLAG_HMAC, iov, 2, out);
}

/* ---- PBKDF2 ---- */

/*
 * Generic PBKDF2 on top of gcrypt's HMAC, for inputs gcry_kdf_derive()
 * refuses (an empty salt).  Slower than gcry_kdf_derive; LUKS never needs
 * it (its salts are 32 bytes).
 */
static int
pbkdf2_generic(enum crypto_hash_alg h, const void *pw, size_t pwlen,
               const void *salt, size_t saltlen, uint64_t iterations,
               uint8_t *out, size_t outlen)
{
    size_t hlen = crypto_hash_len(h);
    gcry_md_hd_t md = NULL;
    gcry_error_t err;
    uint8_t u[CRYPTO_MAX_DIGEST], t[CRYPTO_MAX_DIGEST];
    int r = 0;

    err = gcry_md_open(&md, md_algos[h],
                       GCRY_MD_FLAG_HMAC | GCRY_MD_FLAG_SECURE);
    if (!err) {
        err = gcry_md_setkey(md, pwlen ? pw : "", pwlen);
    }
    if (err) {
        r = gcry_to_errno(err);
        goto out;
    }
    for (uint32_t block = 1; outlen > 0; block++) {
        uint8_t be[4] = { block >> 24, block >> 16, block >> 8, block };
        size_t n = outlen < hlen ? outlen : hlen;

        gcry_md_reset(md);
        if (saltlen) {
            gcry_md_write(md, salt, saltlen);
        }
        gcry_md_write(md, be, sizeof(be));
        memcpy(u, gcry_md_read(md, 0), hlen);
        memcpy(t, u, hlen);
        for (uint64_t i = 1; i < iterations; i++) {
            gcry_md_reset(md);
            gcry_md_write(md, u, hlen);
            memcpy(u, gcry_md_read(md, 0), hlen);
            for (size_t j = 0; j < hlen; j++) {
                t[j] ^= u[j];
            }
        }
        memcpy(out, t, n);
        out += n;
        outlen -= n;
    }
out:
    gcry_md_close(md);    /* wipes the HMAC key and state */
    explicit_bzero(u, sizeof(u));
    explicit_bzero(t, sizeof(t));
    return r;
}

/*
 * Fast PBKDF2-HMAC-SHA256 with the x86 SHA extensions.
 *
 * Every iteration after the first is HMAC(P, U) with a 32-byte U, i.e. two
 * SHA-256 compressions of a single, fixed-layout block each (U, 0x80,
 * zeros, bit length 768) starting from the precomputed inner/outer pad
 * states.  Doing exactly that, with no per-iteration context handling and
 * the state in registers, runs at nettle's speed (what qemu-img uses) for
 * one output block and 1.35x qemu for two (64-byte keys, where two chains
 * run side by side), against gcry_kdf_derive's 7.3 M and 3.7 M it/s
 * (bench/bench-pbkdf2, 2-core EPYC: 8.5 M and 5.8 M it/s).  The first
 * iteration (any salt length) goes through gcrypt's HMAC.  Without the SHA
 * extensions, gcry_kdf_derive is used.
 */
#ifdef HAVE_SHANI_PATH
static void
detect_shani(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return;
    }
    /* SSSE3 (ECX bit 9) and SSE4.1 (ECX bit 19) */
    if (!(c & (1u << 9)) || !(c & (1u << 19))) {
        return;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        return;
    }
    have_shani = (b & (1u << 29)) != 0;   /* SHA extensions */
}

static const uint32_t sha256_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t sha256_iv[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define SHANI_FN __attribute__((target("sha,sse4.1,ssse3")))
#define SHANI_INLINE SHANI_FN __attribute__((always_inline)) static inline

/*
 * The SHA-NI round instruction keeps the state as {a,b,e,f} and {c,d,g,h}
 * (highest lane first in the comments below); digests and message words
 * are {a,b,c,d}, {e,f,g,h} with a in lane 0.
 */
SHANI_INLINE void
shani_from_words(__m128i abcd, __m128i efgh, __m128i *abef, __m128i *cdgh)
{
    abcd = _mm_shuffle_epi32(abcd, 0xb1);          /* c d a b */
    efgh = _mm_shuffle_epi32(efgh, 0x1b);          /* e f g h */
    *abef = _mm_alignr_epi8(abcd, efgh, 8);        /* a b e f */
    *cdgh = _mm_blend_epi16(efgh, abcd, 0xf0);     /* c d g h */
}

SHANI_INLINE void
shani_to_words(__m128i abef, __m128i cdgh, __m128i *abcd, __m128i *efgh)
{
    __m128i t = _mm_shuffle_epi32(abef, 0x1b);     /* f e b a */

    cdgh = _mm_shuffle_epi32(cdgh, 0xb1);          /* d c h g */
    *abcd = _mm_blend_epi16(t, cdgh, 0xf0);        /* d c b a */
    *efgh = _mm_alignr_epi8(cdgh, t, 8);           /* h g f e */
}

/* The 64 rounds over message words m[0..3] (no feed-forward addition). */
SHANI_INLINE void
shani_rounds(__m128i *abef_p, __m128i *cdgh_p, __m128i m0, __m128i m1,
             __m128i m2, __m128i m3)
{
    __m128i abef = *abef_p, cdgh = *cdgh_p;
    __m128i m[4] = { m0, m1, m2, m3 };

    for (int g = 0; g < 16; g++) {
        __m128i cur, wk;

        if (g < 4) {
            cur = m[g];
        } else {
            /* 4 new schedule words from W[t-16..], W[t-15..] (msg1),
             * W[t-7..] and W[t-2..] (msg2). */
            cur = _mm_sha256msg1_epu32(m[g & 3], m[(g + 1) & 3]);
            cur = _mm_add_epi32(cur, _mm_alignr_epi8(m[(g + 3) & 3],
                                                     m[(g + 2) & 3], 4));
            cur = _mm_sha256msg2_epu32(cur, m[(g + 3) & 3]);
            m[g & 3] = cur;
        }
        wk = _mm_add_epi32(cur, _mm_load_si128((const __m128i *)
                                               (sha256_k + 4 * g)));
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
        wk = _mm_shuffle_epi32(wk, 0x0e);
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
    }
    *abef_p = abef;
    *cdgh_p = cdgh;
}

/* One compression: @state (a..h) updated with block @w (16 words). */
SHANI_FN static void
sha256_block_shani(uint32_t state[8], const uint32_t w[16])
{
    __m128i abef, cdgh, abef0, cdgh0, abcd, efgh;

    shani_from_words(_mm_loadu_si128((const __m128i *)state),
                     _mm_loadu_si128((const __m128i *)(state + 4)),
                     &abef, &cdgh);
    abef0 = abef;
    cdgh0 = cdgh;
    shani_rounds(&abef, &cdgh, _mm_loadu_si128((const __m128i *)w),
                 _mm_loadu_si128((const __m128i *)(w + 4)),
                 _mm_loadu_si128((const __m128i *)(w + 8)),
                 _mm_loadu_si128((const __m128i *)(w + 12)));
    shani_to_words(_mm_add_epi32(abef, abef0), _mm_add_epi32(cdgh, cdgh0),
                   &abcd, &efgh);
    _mm_storeu_si128((__m128i *)state, abcd);
    _mm_storeu_si128((__m128i *)(state + 4), efgh);
}

/*
 * Iterations 2..@count+1 of one PBKDF2 block: @u holds U_1 on entry, @t the
 * running XOR.  U_{j+1} = H(opad-state, H(ipad-state, U_j)) where each H
 * is one compression of U_j || 0x80 || 0 .. || bitlen(64 + 32).  All state
 * stays in registers.
 */
SHANI_FN static void
pbkdf2_sha256_iterate(const uint32_t istate[8], const uint32_t ostate[8],
                      uint32_t u[8], uint32_t t[8], uint64_t count)
{
    const __m128i pad0 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);
    const __m128i pad1 = _mm_set_epi32((64 + 32) * 8, 0, 0, 0);
    __m128i iabef, icdgh, oabef, ocdgh, abef, cdgh;
    __m128i u0 = _mm_loadu_si128((const __m128i *)u);
    __m128i u1 = _mm_loadu_si128((const __m128i *)(u + 4));
    __m128i t0 = _mm_loadu_si128((const __m128i *)t);
    __m128i t1 = _mm_loadu_si128((const __m128i *)(t + 4));

    shani_from_words(_mm_loadu_si128((const __m128i *)istate),
                     _mm_loadu_si128((const __m128i *)(istate + 4)),
                     &iabef, &icdgh);
    shani_from_words(_mm_loadu_si128((const __m128i *)ostate),
                     _mm_loadu_si128((const __m128i *)(ostate + 4)),
                     &oabef, &ocdgh);
    for (uint64_t i = 0; i < count; i++) {
        abef = iabef;
        cdgh = icdgh;
        shani_rounds(&abef, &cdgh, u0, u1, pad0, pad1);
        shani_to_words(_mm_add_epi32(abef, iabef), _mm_add_epi32(cdgh, icdgh),
                       &u0, &u1);
        abef = oabef;
        cdgh = ocdgh;
        shani_rounds(&abef, &cdgh, u0, u1, pad0, pad1);
        shani_to_words(_mm_add_epi32(abef, oabef), _mm_add_epi32(cdgh, ocdgh),
                       &u0, &u1);
        t0 = _mm_xor_si128(t0, u0);
        t1 = _mm_xor_si128(t1, u1);
    }
    _mm_storeu_si128((__m128i *)u, u0);
    _mm_storeu_si128((__m128i *)(u + 4), u1);
    _mm_storeu_si128((__m128i *)t, t0);
    _mm_storeu_si128((__m128i *)(t + 4), t1);
}

/*
 * Two output blocks at once: the iterations of one block form a serial
 * chain bound by the latency of the round instruction, so running two
 * independent chains side by side nearly doubles the throughput for 64-byte
 * keys (aes-256-xts, the LUKS default).
 */
SHANI_FN static void
pbkdf2_sha256_iterate2(const uint32_t istate[8], const uint32_t ostate[8],
                       uint32_t u[16], uint32_t t[16], uint64_t count)
{
    const __m128i pad0 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);
    const __m128i pad1 = _mm_set_epi32((64 + 32) * 8, 0, 0, 0);
    __m128i iabef, icdgh, oabef, ocdgh, xabef, xcdgh, yabef, ycdgh;
    __m128i xu0 = _mm_loadu_si128((const __m128i *)u);
    __m128i xu1 = _mm_loadu_si128((const __m128i *)(u + 4));
    __m128i yu0 = _mm_loadu_si128((const __m128i *)(u + 8));
    __m128i yu1 = _mm_loadu_si128((const __m128i *)(u + 12));
    __m128i xt0 = _mm_loadu_si128((const __m128i *)t);
    __m128i xt1 = _mm_loadu_si128((const __m128i *)(t + 4));
    __m128i yt0 = _mm_loadu_si128((const __m128i *)(t + 8));
    __m128i yt1 = _mm_loadu_si128((const __m128i *)(t + 12));

    shani_from_words(_mm_loadu_si128((const __m128i *)istate),
                     _mm_loadu_si128((const __m128i *)(istate + 4)),
                     &iabef, &icdgh);
    shani_from_words(_mm_loadu_si128((const __m128i *)ostate),
                     _mm_loadu_si128((const __m128i *)(ostate + 4)),
                     &oabef, &ocdgh);
    for (uint64_t i = 0; i < count; i++) {
        xabef = yabef = iabef;
        xcdgh = ycdgh = icdgh;
        shani_rounds(&xabef, &xcdgh, xu0, xu1, pad0, pad1);
        shani_rounds(&yabef, &ycdgh, yu0, yu1, pad0, pad1);
        shani_to_words(_mm_add_epi32(xabef, iabef),
                       _mm_add_epi32(xcdgh, icdgh), &xu0, &xu1);
        shani_to_words(_mm_add_epi32(yabef, iabef),
                       _mm_add_epi32(ycdgh, icdgh), &yu0, &yu1);
        xabef = yabef = oabef;
        xcdgh = ycdgh = ocdgh;
        shani_rounds(&xabef, &xcdgh, xu0, xu1, pad0, pad1);
        shani_rounds(&yabef, &ycdgh, yu0, yu1, pad0, pad1);
        shani_to_words(_mm_add_epi32(xabef, oabef),
                       _mm_add_epi32(xcdgh, ocdgh), &xu0, &xu1);
        shani_to_words(_mm_add_epi32(yabef, oabef),
                       _mm_add_epi32(ycdgh, ocdgh), &yu0, &yu1);
        xt0 = _mm_xor_si128(xt0, xu0);
        xt1 = _mm_xor_si128(xt1, xu1);
        yt0 = _mm_xor_si128(yt0, yu0);
        yt1 = _mm_xor_si128(yt1, yu1);
    }
    _mm_storeu_si128((__m128i *)u, xu0);
    _mm_storeu_si128((__m128i *)(u + 4), xu1);
    _mm_storeu_si128((__m128i *)(u + 8), yu0);
    _mm_storeu_si128((__m128i *)(u + 12), yu1);
    _mm_storeu_si128((__m128i *)t, xt0);
    _mm_storeu_si128((__m128i *)(t + 4), xt1);
    _mm_storeu_si128((__m128i *)(t + 8), yt0);
    _mm_storeu_si128((__m128i *)(t + 12), yt1);
}

/* Work area in safe memory: everything here derives from the password. */
struct pbkdf2_sha256_work {
    uint32_t istate[8], ostate[8];   /* after the ipad / opad block */
    uint32_t blk[16];                /* a pad block */
    uint32_t u[16];                  /* the current U of 1 or 2 blocks */
    uint32_t t[16];                  /* running XOR of the U values */
    uint8_t key[64];
    uint8_t u1[64];
};

static int
pbkdf2_sha256_shani(const void *pw, size_t pwlen, const void *salt,
                    size_t saltlen, uint64_t iterations, uint8_t *out,
                    size_t outlen)
{
    struct pbkdf2_sha256_work *wk;
    uint8_t *msg = NULL;
    int r = 0;

    wk = safe_alloc(sizeof(*wk));
    if (!wk) {
        return -ENOMEM;
    }
    /* K0: the password, or its digest if longer than the block. */
    if (pwlen > 64) {
        r = crypto_hash(CRYPTO_HASH_SHA256, pw, pwlen, wk->key);
        if (r < 0) {
            goto out;
        }
    } else if (pwlen) {
        memcpy(wk->key, pw, pwlen);
    }
    for (int i = 0; i < 16; i++) {
        wk->blk[i] = ld_be32(wk->key + 4 * i) ^ 0x36363636u;
    }
    memcpy(wk->istate, sha256_iv, sizeof(sha256_iv));
    sha256_block_shani(wk->istate, wk->blk);
    for (int i = 0; i < 16; i++) {
        wk->blk[i] = ld_be32(wk->key + 4 * i) ^ 0x5c5c5c5cu;
    }
    memcpy(wk->ostate, sha256_iv, sizeof(sha256_iv));
    sha256_block_shani(wk->ostate, wk->blk);

    /* salt || INT(i) for the first iteration of each output block. */
    msg = safe_alloc(saltlen + 4);
    if (!msg) {
        r = -ENOMEM;
        goto out;
    }
    if (saltlen) {
        memcpy(msg, salt, saltlen);
    }

    for (uint32_t block = 1; outlen > 0;) {
        /* Two blocks side by side when at least 33 bytes remain. */
        int nb = outlen > 32 ? 2 : 1;
        size_t n = outlen < 32 * (size_t)nb ? outlen : 32 * (size_t)nb;

        for (int b = 0; b < nb; b++) {
            st_be32(msg + saltlen, block + (uint32_t)b);
            r = crypto_hmac(CRYPTO_HASH_SHA256, pw, pwlen, msg, saltlen + 4,
                            wk->u1 + 32 * b);
            if (r < 0) {
                goto out;
            }
        }
        for (int i = 0; i < 8 * nb; i++) {
            wk->u[i] = ld_be32(wk->u1 + 4 * i);
            wk->t[i] = wk->u[i];
        }
        if (nb == 2) {
            pbkdf2_sha256_iterate2(wk->istate, wk->ostate, wk->u, wk->t,
                                   iterations - 1);
        } else {
            pbkdf2_sha256_iterate(wk->istate, wk->ostate, wk->u, wk->t,
                                  iterations - 1);
        }
        for (int i = 0; i < 8 * nb; i++) {
            st_be32(wk->u1 + 4 * i, wk->t[i]);
        }
        memcpy(out, wk->u1, n);
        out += n;
        outlen -= n;
        block += (uint32_t)nb;
    }
out:
    safe_free(msg);
    safe_free(wk);
    burn_stack();    /* register spills of the SHA-NI loops */
    return r;
}
#endif /* __x86_64__ */

/* PBKDF2 without the fuzzing cap; the argument checks are the caller's. */
static int
pbkdf2_derive(enum crypto_hash_alg h, const void *pw, size_t pwlen,
              const void *salt, size_t saltlen, uint64_t iterations,
              uint8_t *out, size_t outlen)
{
#ifdef HAVE_SHANI_PATH
    if (h == CRYPTO_HASH_SHA256 && have_shani) {
        return pbkdf2_sha256_shani(pw, pwlen, salt, saltlen, iterations, out,
                                   outlen);
    }
#endif
    return crypto_pbkdf2_portable(h, pw, pwlen, salt, saltlen, iterations,
                                  out, outlen);
}

int
crypto_pbkdf2_portable(enum crypto_hash_alg h, const void *pw, size_t pwlen,
                       const void *salt, size_t saltlen, uint64_t iterations,
                       uint8_t *out, size_t outlen)
{
    if ((unsigned)h >= CRYPTO_HASH__MAX || iterations == 0 || !out ||
        outlen == 0 || (pwlen && !pw) || (saltlen && !salt)) {
        return -EINVAL;
    }
#if ULONG_MAX < UINT64_MAX
    if (iterations > ULONG_MAX) {
        return -EINVAL;
    }
#endif
    if (saltlen == 0) {
        return pbkdf2_generic(h, pw, pwlen, salt, saltlen, iterations, out,
                              outlen);
    }
    /* gcry_kdf_derive is the fastest path measured (bench/bench-pbkdf2).
     * Its HMAC context is secure memory when @pw or @out is (is_secure
     * handler above), i.e. whenever the caller holds them in safe memory. */
    gcry_error_t err = gcry_kdf_derive(pwlen ? pw : "", pwlen,
                                       GCRY_KDF_PBKDF2, md_algos[h],
                                       salt, saltlen,
                                       (unsigned long)iterations, outlen, out);

    burn_stack();
    return gcry_to_errno(err);
}

int
crypto_pbkdf2(enum crypto_hash_alg h, const void *pw, size_t pwlen,
              const void *salt, size_t saltlen, uint64_t iterations,
              uint8_t *out, size_t outlen)
{
    int r;

    if ((unsigned)h >= CRYPTO_HASH__MAX || iterations == 0 || !out ||
        outlen == 0 || (pwlen && !pw) || (saltlen && !salt)) {
        return -EINVAL;
    }
    /* RFC 8018: dkLen <= (2^32 - 1) * hLen; salt || INT(i) must fit. */
    if (outlen / crypto_hash_len(h) >= UINT32_MAX || saltlen > SIZE_MAX - 4) {
        return -EINVAL;
    }
    r = crypto_init();
    if (r < 0) {
        return r;
    }
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Let fuzzers get past key derivation in reasonable time. */
    if (iterations > 16) {
        iterations = 16;
    }
#endif
    return pbkdf2_derive(h, pw, pwlen, salt, saltlen, iterations, out,
                         outlen);
}

static uint64_t
thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
crypto_pbkdf2_rate(enum crypto_hash_alg h, size_t outlen,
                   uint64_t *iters_per_sec)
{
    static const char pw[] = "vimg pbkdf2 calibration";
    uint8_t salt[32], out[256];
    uint64_t iters = 1u << 15, ns = 0;
    int r;

    if ((unsigned)h >= CRYPTO_HASH__MAX || outlen == 0 ||
        outlen > sizeof(out) || !iters_per_sec) {
        return -EINVAL;
    }
    r = crypto_init();
    if (r < 0) {
        return r;
    }
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* crypto_pbkdf2 is capped here, so a real rate means nothing. */
    *iters_per_sec = 1000;
    return 0;
#endif
    memset(salt, 0x5a, sizeof(salt));
    /*
     * As qemu: grow the run until it takes more than 500 ms of this
     * thread's CPU time; a run under 100 ms (including 0 ns on a coarse
     * clock) grows 10x, otherwise the count is scaled to about one second.
     * The 2^44 bound only stops a broken clock from looping forever.
     */
    for (;;) {
        uint64_t t0 = thread_cpu_ns();

        r = pbkdf2_derive(h, pw, sizeof(pw) - 1, salt, sizeof(salt), iters,
                          out, outlen);
        if (r < 0) {
            return r;
        }
        ns = thread_cpu_ns() - t0;
        if (ns > 500000000u || iters >= (UINT64_C(1) << 44)) {
            break;
        }
        if (ns < 100000000u) {
            iters *= 10;
        } else {
            iters = iters * 1000000000u / ns;
        }
    }
    explicit_bzero(out, sizeof(out));
    if (ns == 0) {
        *iters_per_sec = iters;
        return 0;
    }
    /* iters < 2^45 and 1e9 < 2^30: no overflow. */
    *iters_per_sec = iters * 1000000000u / ns;
    if (*iters_per_sec == 0) {
        *iters_per_sec = 1;
    }
    return 0;
}

/* ---- random ---- */

int
crypto_random(void *buf, size_t len)
{
    uint8_t *p = buf;

    if (len && !buf) {
        return -EINVAL;
    }
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- block ciphers ---- */

/*
 * Software Twofish (Schneier et al., "Twofish: A 128-Bit Block Cipher",
 * 1998), used for Twofish-192 only: libgcrypt implements 128- and 256-bit
 * Twofish keys but not 192 (and a 192-bit key zero-padded to 256 bits is a
 * different cipher), while qemu built with nettle accepts twofish-192.
 * The key schedule folds the key-dependent S-boxes and the MDS matrix into
 * four 256-entry tables, so g() is four lookups.  ECB, CBC, CTR and XTS are
 * implemented on top of the block function below.
 */
struct soft_twofish {
    uint32_t k[40];            /* whitening and round subkeys */
    uint32_t sbox[4][256];     /* g() per input byte, MDS column included */
};

/* GF(2^8) multiplication modulo @poly (the MDS and RS fields differ). */
static uint8_t
gf_mul(uint8_t a, uint8_t b, unsigned poly)
{
    unsigned x = a, r = 0;

    while (b) {
        if (b & 1) {
            r ^= x;
        }
        x <<= 1;
        if (x & 0x100) {
            x ^= poly;
        }
        b >>= 1;
    }
    return (uint8_t)r;
}

#define TF_MDS_POLY 0x169      /* x^8 + x^6 + x^5 + x^3 + 1 */
#define TF_RS_POLY 0x14d       /* x^8 + x^6 + x^3 + x^2 + 1 */

static const uint8_t tf_mds[4][4] = {
    { 0x01, 0xef, 0x5b, 0x5b },
    { 0x5b, 0xef, 0xef, 0x01 },
    { 0xef, 0x5b, 0x01, 0xef },
    { 0xef, 0x01, 0xef, 0x5b },
};

static const uint8_t tf_rs[4][8] = {
    { 0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e },
    { 0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5 },
    { 0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19 },
    { 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03 },
};

/* The 4-bit tables t0..t3 of the fixed permutations q0 and q1. */
static const uint8_t tf_qt[2][4][16] = {
    { { 0x8, 0x1, 0x7, 0xd, 0x6, 0xf, 0x3, 0x2,
        0x0, 0xb, 0x5, 0x9, 0xe, 0xc, 0xa, 0x4 },
      { 0xe, 0xc, 0xb, 0x8, 0x1, 0x2, 0x3, 0x5,
        0xf, 0x4, 0xa, 0x6, 0x7, 0x0, 0x9, 0xd },
      { 0xb, 0xa, 0x5, 0xe, 0x6, 0xd, 0x9, 0x0,
        0xc, 0x8, 0xf, 0x3, 0x2, 0x4, 0x7, 0x1 },
      { 0xd, 0x7, 0xf, 0x4, 0x1, 0x2, 0x6, 0xe,
        0x9, 0xb, 0x3, 0x0, 0x8, 0x5, 0xc, 0xa } },
    { { 0x2, 0x8, 0xb, 0xd, 0xf, 0x7, 0x6, 0xe,
        0x3, 0x1, 0x9, 0x4, 0x0, 0xa, 0xc, 0x5 },
      { 0x1, 0xe, 0x2, 0xb, 0x4, 0xc, 0x3, 0x7,
        0x6, 0xd, 0xa, 0x5, 0xf, 0x9, 0x0, 0x8 },
      { 0x4, 0xc, 0x7, 0x5, 0x1, 0x6, 0x9, 0xa,
        0x0, 0xe, 0xd, 0x8, 0x2, 0xb, 0x3, 0xf },
      { 0xb, 0x9, 0x5, 0x1, 0xc, 0x3, 0xd, 0xe,
        0x6, 0x4, 0x7, 0xf, 0x2, 0x0, 0x8, 0xa } },
};

static uint8_t
tf_q(int which, uint8_t x)
{
    const uint8_t (*t)[16] = tf_qt[which];
    uint8_t a = x >> 4, b = x & 15, a2, b2;

    a2 = t[0][a ^ b];
    b2 = t[1][(a ^ (uint8_t)(((b >> 1) | (b << 3)) & 15) ^ (uint8_t)(8 * a)) & 15];
    a = a2 ^ b2;
    b = (a2 ^ (uint8_t)(((b2 >> 1) | (b2 << 3)) & 15) ^ (uint8_t)(8 * a2)) & 15;
    return (uint8_t)(t[3][b] << 4 | t[2][a]);
}

static inline uint32_t
rol32(uint32_t x, unsigned n)
{
    return x << n | x >> (32 - n);
}

static inline uint32_t
ror32(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

/* The q-permutation chain of byte @j of h() for k 64-bit key words @l. */
static uint8_t
tf_chain(const uint8_t q[2][256], int j, uint8_t y, const uint32_t *l, int k)
{
    /* Which permutation each stage applies, per byte (stages 4..0). */
    static const uint8_t qsel[5][4] = {
        { 1, 0, 0, 1 },   /* before XOR with l[3] (k == 4) */
        { 1, 1, 0, 0 },   /* before XOR with l[2] (k >= 3) */
        { 0, 1, 0, 1 },   /* before XOR with l[1] */
        { 0, 0, 1, 1 },   /* before XOR with l[0] */
        { 1, 0, 1, 0 },   /* final */
    };

    if (k == 4) {
        y = q[qsel[0][j]][y] ^ (uint8_t)(l[3] >> (8 * j));
    }
    if (k >= 3) {
        y = q[qsel[1][j]][y] ^ (uint8_t)(l[2] >> (8 * j));
    }
    y = q[qsel[2][j]][y] ^ (uint8_t)(l[1] >> (8 * j));
    y = q[qsel[3][j]][y] ^ (uint8_t)(l[0] >> (8 * j));
    return q[qsel[4][j]][y];
}

static uint32_t
tf_mds_column(int j, uint8_t y)
{
    uint32_t z = 0;

    for (int i = 0; i < 4; i++) {
        z |= (uint32_t)gf_mul(tf_mds[i][j], y, TF_MDS_POLY) << (8 * i);
    }
    return z;
}

/* h(X, L): the full function, used by the key schedule. */
static uint32_t
tf_h(const uint8_t q[2][256], uint32_t x, const uint32_t *l, int k)
{
    uint32_t z = 0;

    for (int j = 0; j < 4; j++) {
        z ^= tf_mds_column(j, tf_chain(q, j, (uint8_t)(x >> (8 * j)), l, k));
    }
    return z;
}

static void
tf_setkey(struct soft_twofish *tf, const uint8_t *key, size_t keylen)
{
    uint8_t q[2][256];
    uint32_t me[4], mo[4], sv[4];
    int k = (int)(keylen / 8);

    for (int i = 0; i < 256; i++) {
        q[0][i] = tf_q(0, (uint8_t)i);
        q[1][i] = tf_q(1, (uint8_t)i);
    }
    for (int i = 0; i < k; i++) {
        uint32_t s = 0;

        me[i] = ld_le32(key + 8 * i);
        mo[i] = ld_le32(key + 8 * i + 4);
        for (int r = 0; r < 4; r++) {
            uint8_t acc = 0;
            for (int c = 0; c < 8; c++) {
                acc ^= gf_mul(tf_rs[r][c], key[8 * i + c], TF_RS_POLY);
            }
            s |= (uint32_t)acc << (8 * r);
        }
        sv[k - 1 - i] = s;       /* S is used in reverse order */
    }
    for (int i = 0; i < 20; i++) {
        uint32_t a = tf_h(q, 2u * (uint32_t)i * 0x01010101u, me, k);
        uint32_t b = rol32(tf_h(q, (2u * (uint32_t)i + 1) * 0x01010101u, mo,
                                k), 8);

        tf->k[2 * i] = a + b;
        tf->k[2 * i + 1] = rol32(a + 2 * b, 9);
    }
    for (int j = 0; j < 4; j++) {
        for (int x = 0; x < 256; x++) {
            tf->sbox[j][x] = tf_mds_column(j, tf_chain(q, j, (uint8_t)x, sv,
                                                       k));
        }
    }
    explicit_bzero(me, sizeof(me));
    explicit_bzero(mo, sizeof(mo));
    explicit_bzero(sv, sizeof(sv));
}

static inline uint32_t
tf_g(const struct soft_twofish *tf, uint32_t x)
{
    return tf->sbox[0][x & 0xff] ^ tf->sbox[1][(x >> 8) & 0xff] ^
           tf->sbox[2][(x >> 16) & 0xff] ^ tf->sbox[3][x >> 24];
}

static void
tf_encrypt_block(const struct soft_twofish *tf, uint8_t *b)
{
    uint32_t r0 = ld_le32(b) ^ tf->k[0], r1 = ld_le32(b + 4) ^ tf->k[1];
    uint32_t r2 = ld_le32(b + 8) ^ tf->k[2], r3 = ld_le32(b + 12) ^ tf->k[3];

    for (int r = 0; r < 16; r++) {
        uint32_t t0 = tf_g(tf, r0), t1 = tf_g(tf, rol32(r1, 8));
        uint32_t f0 = t0 + t1 + tf->k[2 * r + 8];
        uint32_t f1 = t0 + 2 * t1 + tf->k[2 * r + 9];
        uint32_t n0 = ror32(r2 ^ f0, 1), n1 = rol32(r3, 1) ^ f1;

        r2 = r0;
        r3 = r1;
        r0 = n0;
        r1 = n1;
    }
    /* Undo the last swap and whiten. */
    st_le32(b, r2 ^ tf->k[4]);
    st_le32(b + 4, r3 ^ tf->k[5]);
    st_le32(b + 8, r0 ^ tf->k[6]);
    st_le32(b + 12, r1 ^ tf->k[7]);
}

static void
tf_decrypt_block(const struct soft_twofish *tf, uint8_t *b)
{
    uint32_t r2 = ld_le32(b) ^ tf->k[4], r3 = ld_le32(b + 4) ^ tf->k[5];
    uint32_t r0 = ld_le32(b + 8) ^ tf->k[6], r1 = ld_le32(b + 12) ^ tf->k[7];

    for (int r = 15; r >= 0; r--) {
        /* (r0, r1) are round r+1's first half; (r2, r3) its inputs. */
        uint32_t t0 = tf_g(tf, r2), t1 = tf_g(tf, rol32(r3, 8));
        uint32_t f0 = t0 + t1 + tf->k[2 * r + 8];
        uint32_t f1 = t0 + 2 * t1 + tf->k[2 * r + 9];
        uint32_t p2 = rol32(r0, 1) ^ f0, p3 = ror32(r1 ^ f1, 1);

        r0 = r2;
        r1 = r3;
        r2 = p2;
        r3 = p3;
    }
    st_le32(b, r0 ^ tf->k[0]);
    st_le32(b + 4, r1 ^ tf->k[1]);
    st_le32(b + 8, r2 ^ tf->k[2]);
    st_le32(b + 12, r3 ^ tf->k[3]);
}

/* XTS tweak update: multiply by x in GF(2^128), little-endian bytes. */
static void
xts_mul_alpha(uint8_t t[16])
{
    unsigned carry = 0;

    for (int i = 0; i < 16; i++) {
        unsigned next = t[i] >> 7;
        t[i] = (uint8_t)(t[i] << 1 | carry);
        carry = next;
    }
    if (carry) {
        t[0] ^= 0x87;
    }
}

/* Modes over the software block cipher; @len is a multiple of 16. */
static void
soft_crypt(struct soft_twofish *const tf[2], enum crypto_cipher_mode mode,
           const uint8_t *iv, uint8_t *p, size_t len, bool enc)
{
    uint8_t chain[16], tmp[16];

    if (iv) {
        memcpy(chain, iv, 16);
    }
    for (size_t off = 0; off < len; off += 16, p += 16) {
        switch (mode) {
        case CRYPTO_MODE_ECB:
            enc ? tf_encrypt_block(tf[0], p) : tf_decrypt_block(tf[0], p);
            break;
        case CRYPTO_MODE_CBC:
            if (enc) {
                for (int i = 0; i < 16; i++) {
                    p[i] ^= chain[i];
                }
                tf_encrypt_block(tf[0], p);
                memcpy(chain, p, 16);
            } else {
                memcpy(tmp, p, 16);
                tf_decrypt_block(tf[0], p);
                for (int i = 0; i < 16; i++) {
                    p[i] ^= chain[i];
                }
                memcpy(chain, tmp, 16);
            }
            break;
        case CRYPTO_MODE_CTR:
            /* The counter is the whole block, big-endian, as in gcrypt. */
            memcpy(tmp, chain, 16);
            tf_encrypt_block(tf[0], tmp);
            for (int i = 0; i < 16; i++) {
                p[i] ^= tmp[i];
            }
            for (int i = 15; i >= 0 && ++chain[i] == 0; i--) {
                /* carry */
            }
            break;
        case CRYPTO_MODE_XTS:
            if (off == 0) {
                tf_encrypt_block(tf[1], chain);   /* T = E_K2(IV) */
            }
            for (int i = 0; i < 16; i++) {
                p[i] ^= chain[i];
            }
            enc ? tf_encrypt_block(tf[0], p) : tf_decrypt_block(tf[0], p);
            for (int i = 0; i < 16; i++) {
                p[i] ^= chain[i];
            }
            xts_mul_alpha(chain);
            break;
        default:
            break;
        }
    }
    explicit_bzero(chain, sizeof(chain));
    explicit_bzero(tmp, sizeof(tmp));
}

struct crypto_cipher {
    gcry_cipher_hd_t hd;            /* NULL for the software cipher */
    struct soft_twofish *soft[2];   /* software: data key, XTS tweak key */
    enum crypto_cipher_mode mode;
    size_t block_len;
    size_t iv_len;
};

static const int cipher_algos[CRYPTO_CIPHER__MAX] = {
    [CRYPTO_CIPHER_AES_128] = GCRY_CIPHER_AES128,
    [CRYPTO_CIPHER_AES_192] = GCRY_CIPHER_AES192,
    [CRYPTO_CIPHER_AES_256] = GCRY_CIPHER_AES256,
    [CRYPTO_CIPHER_SERPENT_128] = GCRY_CIPHER_SERPENT128,
    [CRYPTO_CIPHER_SERPENT_192] = GCRY_CIPHER_SERPENT192,
    [CRYPTO_CIPHER_SERPENT_256] = GCRY_CIPHER_SERPENT256,
    [CRYPTO_CIPHER_TWOFISH_128] = GCRY_CIPHER_TWOFISH128,
    /* libgcrypt has no 192-bit Twofish: the software one is used. */
    [CRYPTO_CIPHER_TWOFISH_192] = GCRY_CIPHER_NONE,
    [CRYPTO_CIPHER_TWOFISH_256] = GCRY_CIPHER_TWOFISH,
    [CRYPTO_CIPHER_CAST5_128] = GCRY_CIPHER_CAST5,
};

static const int mode_ids[CRYPTO_MODE__MAX] = {
    [CRYPTO_MODE_ECB] = GCRY_CIPHER_MODE_ECB,
    [CRYPTO_MODE_CBC] = GCRY_CIPHER_MODE_CBC,
    [CRYPTO_MODE_XTS] = GCRY_CIPHER_MODE_XTS,
    [CRYPTO_MODE_CTR] = GCRY_CIPHER_MODE_CTR,
};

static bool
is_twofish(enum crypto_cipher_alg a)
{
    return a == CRYPTO_CIPHER_TWOFISH_128 || a == CRYPTO_CIPHER_TWOFISH_192 ||
           a == CRYPTO_CIPHER_TWOFISH_256;
}

static int
cipher_new(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
           const uint8_t *key, size_t keylen, bool force_soft,
           struct crypto_cipher **out)
{
    struct crypto_cipher *c;
    size_t want;
    gcry_error_t err;
    int r;

    if ((unsigned)a >= CRYPTO_CIPHER__MAX || (unsigned)m >= CRYPTO_MODE__MAX ||
        !out) {
        return -EINVAL;
    }
    if (!crypto_cipher_mode_ok(a, m)) {
        return -ENOTSUP;
    }
    want = crypto_cipher_key_len(a) * (m == CRYPTO_MODE_XTS ? 2 : 1);
    if (keylen != want || !key) {
        return -EINVAL;
    }
    if (force_soft && !is_twofish(a)) {
        return -ENOTSUP;
    }
    r = crypto_init();
    if (r < 0) {
        return r;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    c->mode = m;
    c->block_len = crypto_cipher_block_len(a);
    c->iv_len = crypto_cipher_iv_len(a, m);

    if (force_soft || cipher_algos[a] == GCRY_CIPHER_NONE) {
        size_t one = crypto_cipher_key_len(a);
        int nkeys = m == CRYPTO_MODE_XTS ? 2 : 1;

        for (int i = 0; i < nkeys; i++) {
            c->soft[i] = safe_alloc(sizeof(struct soft_twofish));
            if (!c->soft[i]) {
                crypto_cipher_free(c);
                return -ENOMEM;
            }
            tf_setkey(c->soft[i], key + i * one, one);
        }
        *out = c;
        return 0;
    }

    err = gcry_cipher_open(&c->hd, cipher_algos[a], mode_ids[m],
                           GCRY_CIPHER_SECURE);
    if (err) {
        free(c);
        return gcry_to_errno(err);
    }
    err = gcry_cipher_setkey(c->hd, key, keylen);
    if (err) {
        crypto_cipher_free(c);
        return gcry_to_errno(err);
    }
    *out = c;
    return 0;
}

int
crypto_cipher_new(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                  const uint8_t *key, size_t keylen,
                  struct crypto_cipher **out)
{
    return cipher_new(a, m, key, keylen, false, out);
}

int
crypto_cipher_new_soft(enum crypto_cipher_alg a, enum crypto_cipher_mode m,
                       const uint8_t *key, size_t keylen,
                       struct crypto_cipher **out)
{
    return cipher_new(a, m, key, keylen, true, out);
}

void
crypto_cipher_free(struct crypto_cipher *c)
{
    if (!c) {
        return;
    }
    if (c->hd) {
        gcry_cipher_close(c->hd);   /* wipes the key schedule */
    }
    safe_free(c->soft[0]);
    safe_free(c->soft[1]);
    free(c);
}

/* Argument checks of encrypt/decrypt; 1 if there is work to do. */
static int
cipher_check(struct crypto_cipher *c, const uint8_t *iv, size_t ivlen,
             const void *buf, size_t len)
{
    if (!c || (len && !buf) || len % c->block_len != 0) {
        return -EINVAL;
    }
    if (len == 0) {
        return 0;                 /* nothing to do, whatever the IV */
    }
    if (c->mode == CRYPTO_MODE_XTS && len < 16) {
        return -EINVAL;
    }
    if (c->iv_len == 0) {
        return ivlen == 0 ? 1 : -EINVAL;
    }
    if (ivlen != c->iv_len || !iv) {
        return -EINVAL;
    }
    return 1;
}

/* @in NULL: in place over @buf; else @in (not overlapping @buf) to @buf. */
static int
cipher_crypt(struct crypto_cipher *c, const uint8_t *iv, size_t ivlen,
             void *buf, const void *in, size_t len, bool enc)
{
    gcry_error_t err = 0;
    int r = cipher_check(c, iv, ivlen, buf, len);

    if (r <= 0) {
        return r;
    }
    if (!c->hd) {
        if (in) {
            memcpy(buf, in, len);
        }
        soft_crypt(c->soft, c->mode, c->iv_len ? iv : NULL, buf, len, enc);
        return 0;
    }
    if (c->iv_len) {
        /* CTR: the IV is the initial counter block. */
        err = c->mode == CRYPTO_MODE_CTR ? gcry_cipher_setctr(c->hd, iv, ivlen)
                                         : gcry_cipher_setiv(c->hd, iv, ivlen);
    }
    if (!err) {
        err = enc ? gcry_cipher_encrypt(c->hd, buf, len, in, in ? len : 0)
                  : gcry_cipher_decrypt(c->hd, buf, len, in, in ? len : 0);
    }
    return gcry_to_errno(err);
}

int
crypto_cipher_encrypt(struct crypto_cipher *c, const uint8_t *iv,
                      size_t ivlen, void *buf, size_t len)
{
    return cipher_crypt(c, iv, ivlen, buf, NULL, len, true);
}

int
crypto_cipher_encrypt_from(struct crypto_cipher *c, const uint8_t *iv,
                           size_t ivlen, void *out, const void *in, size_t len)
{
    if (len && !in) {
        return -EINVAL;
    }
    return cipher_crypt(c, iv, ivlen, out, in, len, true);
}

int
crypto_cipher_decrypt(struct crypto_cipher *c, const uint8_t *iv,
                      size_t ivlen, void *buf, size_t len)
{
    return cipher_crypt(c, iv, ivlen, buf, NULL, len, false);
}
