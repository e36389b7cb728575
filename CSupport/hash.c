// XXH3 wrappers and the block-hashing hot loops.
// Optimized builds inline xxhash (XXH_INLINE_ALL) so the per-block call vanishes; unoptimized (debug) builds
// call Debian's optimized libxxhash instead of compiling XXH3 at -O0, which would run ~10x slower.
#define _GNU_SOURCE
#include "CSupport.h"

#include <string.h>

#if defined(__OPTIMIZE__)
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

uint64_t CSupport_xxh3_64(const void *data, size_t length) {
    return XXH3_64bits(data, length);
}

void CSupport_hash_blocks(const void *base, size_t block_size, size_t count, uint64_t *out) {
    const unsigned char *p = base;
    for (size_t i = 0; i < count; i++) out[i] = XXH3_64bits(p + i * block_size, block_size);
}

// XXH3-64 of eight 64-byte blocks at once, the same values as XXH3_64bits (xxHash 0.8's 17-to-128-byte path,
// seed 0): acc = 64 * PRIME64_1 plus, for each of the block's four 16-byte pairs of words (w0, w1) and their
// secret words (s0, s1), the fold (low ^ high half) of the 128-bit product (w0 ^ s0) * (w1 ^ s1); then the
// avalanche. The scalar code spends a 64x64-bit multiply per pair; here eight blocks share each step, the
// 128-bit products built from 32x32-bit ones. Rehashing a page is the fgbi mode's first step on every
// written page, so it is worth its own loop.
#define PRIME64_1 0x9E3779B185EBCA87ULL
#define AVALANCHE_MULTIPLIER 0x165667919E3779F9ULL

// The first 64 bytes of XXH3's default secret (XXH3_kSecret), as the 64-byte path reads them.
static const unsigned char default_secret[64] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
};

static int use_block_hash_avx512;

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((constructor)) static void block_hash_init(void) {
    use_block_hash_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

// Per lane: the low half of the 128-bit product a * b xored with its high half.
__attribute__((target("avx512f,avx512dq")))
static inline __m512i fold_product_avx512(__m512i a, __m512i b) {
    const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFULL);
    __m512i a_high = _mm512_srli_epi64(a, 32), b_high = _mm512_srli_epi64(b, 32);
    __m512i low_low = _mm512_mul_epu32(a, b);
    __m512i low_high = _mm512_mul_epu32(a, b_high);
    __m512i high_low = _mm512_mul_epu32(a_high, b);
    __m512i high_high = _mm512_mul_epu32(a_high, b_high);
    // The middle 64 bits' sum cannot overflow: (2^32-1)^2 + 2 (2^32-1) = 2^64 - 1.
    __m512i cross = _mm512_add_epi64(_mm512_srli_epi64(low_low, 32), _mm512_and_si512(low_high, low32));
    cross = _mm512_add_epi64(cross, high_low);
    __m512i high = _mm512_add_epi64(_mm512_add_epi64(high_high, _mm512_srli_epi64(low_high, 32)),
                                    _mm512_srli_epi64(cross, 32));
    __m512i low = _mm512_or_si512(_mm512_slli_epi64(cross, 32), _mm512_and_si512(low_low, low32));
    return _mm512_xor_si512(high, low);
}

// The hashes of the eight consecutive 64-byte blocks at `blocks`, block i in lane i. Blocks are taken two by
// two: unpacking their words pairs word 2k of both blocks (lanes 2k, 2k+1: block, then its neighbour) with
// word 2k+1, so one fold covers one pair of words of both blocks; two shuffle-and-add rounds then sum each
// block's four folds into its lane.
__attribute__((target("avx512f,avx512dq")))
static inline __m512i xxh3_64B_x8_avx512(const unsigned char *blocks, __m512i first_secrets, __m512i second_secrets) {
    __m512i folds[4];
    for (int pair = 0; pair < 4; pair++) {
        __m512i even = _mm512_loadu_si512((const void *)(blocks + 128 * pair));
        __m512i odd = _mm512_loadu_si512((const void *)(blocks + 128 * pair + 64));
        __m512i first = _mm512_xor_si512(_mm512_unpacklo_epi64(even, odd), first_secrets);
        __m512i second = _mm512_xor_si512(_mm512_unpackhi_epi64(even, odd), second_secrets);
        folds[pair] = fold_product_avx512(first, second);
    }
    // folds[p]'s 128-bit lane k holds word pair k of blocks 2p and 2p+1.
    __m512i low = _mm512_add_epi64(_mm512_shuffle_i64x2(folds[0], folds[1], 0x88),
                                   _mm512_shuffle_i64x2(folds[0], folds[1], 0xDD));
    __m512i high = _mm512_add_epi64(_mm512_shuffle_i64x2(folds[2], folds[3], 0x88),
                                    _mm512_shuffle_i64x2(folds[2], folds[3], 0xDD));
    __m512i sums = _mm512_add_epi64(_mm512_shuffle_i64x2(low, high, 0x88), _mm512_shuffle_i64x2(low, high, 0xDD));
    __m512i h = _mm512_add_epi64(sums, _mm512_set1_epi64((long long)(64 * PRIME64_1)));
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 37));
    h = _mm512_mullo_epi64(h, _mm512_set1_epi64((long long)AVALANCHE_MULTIPLIER));
    return _mm512_xor_si512(h, _mm512_srli_epi64(h, 32));
}

__attribute__((target("avx512f,avx512dq")))
static uint64_t rehash_page64_avx512(const unsigned char *page, size_t blocks, uint64_t *hashes, uint64_t *previous) {
    uint64_t secret[8];
    memcpy(secret, default_secret, sizeof secret);
    // Unpacked lanes 2k and 2k+1 hold word 2k (first) and 2k+1 (second) of the two blocks; the 64-byte path
    // pairs words (0,1), (2,3), (4,5), (6,7) with secret words (0,1), (4,5), (6,7), (2,3).
    long long s[8];
    for (int i = 0; i < 8; i++) s[i] = (long long)secret[i];
    __m512i first_secrets = _mm512_set_epi64(s[2], s[2], s[6], s[6], s[4], s[4], s[0], s[0]);
    __m512i second_secrets = _mm512_set_epi64(s[3], s[3], s[7], s[7], s[5], s[5], s[1], s[1]);
    uint64_t changed = 0;
    for (size_t i = 0; i < blocks; i += 8) {
        __m512i fresh = xxh3_64B_x8_avx512(page + 64 * i, first_secrets, second_secrets);
        __m512i old = _mm512_loadu_si512((const void *)(hashes + i));
        _mm512_storeu_si512((void *)(previous + i), old);
        _mm512_storeu_si512((void *)(hashes + i), fresh);
        changed |= (uint64_t)_mm512_cmpneq_epu64_mask(fresh, old) << i;
    }
    return changed;
}
#endif

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static uint64_t hash_mismatch_mask_avx512(const uint64_t *a, const uint64_t *b, uint64_t value, size_t count) {
    __m512i constant = _mm512_set1_epi64((long long)value);
    uint64_t mask = 0;
    for (size_t i = 0; i < count; i += 8) {
        __m512i other = b ? _mm512_loadu_si512((const void *)(b + i)) : constant;
        mask |= (uint64_t)_mm512_cmpneq_epu64_mask(_mm512_loadu_si512((const void *)(a + i)), other) << i;
    }
    return mask;
}
#endif

uint64_t CSupport_hash_mismatch_mask(const uint64_t *a, const uint64_t *b, uint64_t value, size_t count) {
#if defined(__x86_64__)
    if (count % 8 == 0 && use_block_hash_avx512) return hash_mismatch_mask_avx512(a, b, value, count);
#endif
    uint64_t mask = 0;
    for (size_t i = 0; i < count; i++) mask |= (uint64_t)(a[i] != (b ? b[i] : value)) << i;
    return mask;
}

int CSupport_block_hash_select_portable(int portable) {
    int was = !use_block_hash_avx512;
#if defined(__x86_64__)
    use_block_hash_avx512 = !portable && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#endif
    return was;
}

uint64_t CSupport_rehash_page(const void *page, size_t block_size, size_t blocks, uint64_t *hashes,
                              uint64_t *previous) {
    const unsigned char *p = page;
#if defined(__x86_64__)
    if (block_size == 64 && blocks % 8 == 0 && use_block_hash_avx512) {
        return rehash_page64_avx512(p, blocks, hashes, previous);
    }
#endif
    uint64_t changed = 0;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t h = XXH3_64bits(p + i * block_size, block_size);
        previous[i] = hashes[i];
        changed |= (uint64_t)(h != hashes[i]) << i;
        hashes[i] = h;
    }
    return changed;
}
