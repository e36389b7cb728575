// Content-defined anchors of a block, for the `fgbi` encoder's matcher of moved content (SpliceMatcher.swift).
// A hot loop: it runs once per block the matcher looks up or records. An AVX2 path tests 8 positions per
// multiplication; the portable loop finds the same anchors.
#define _GNU_SOURCE
#include "forms.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const uint32_t window_multiplier = 0x9E3779B1u;
static const uint64_t entry_multiplier = 0x9E3779B97F4A7C15ull;

// Appends the anchor at `offset` unless its 8 bytes are all zero: its offset, and its table entry.
static inline size_t put_anchor(const uint8_t *bytes, size_t offset, uint64_t table_mask, uint16_t *offsets,
                                uint64_t *entries, size_t count) {
    uint64_t word;
    memcpy(&word, bytes + offset, 8);
    uint64_t mixed = word * entry_multiplier;
    offsets[count] = (uint16_t)offset;
    entries[count] = (mixed & 0xFFFFFFFF00000000ull) | ((mixed >> 8) & table_mask);
    return count + (word != 0);
}

static size_t block_anchors_portable(const uint8_t *bytes, size_t length, unsigned top_bits, uint64_t table_mask,
                                     uint16_t *offsets, uint64_t *entries) {
    size_t count = 0;
    for (size_t offset = 0; offset + 8 <= length; offset++) {
        uint32_t window;
        memcpy(&window, bytes + offset, 4);
        if ((uint32_t)(window * window_multiplier) >> (32 - top_bits) == 0) {
            count = put_anchor(bytes, offset, table_mask, offsets, entries, count);
        }
    }
    return count;
}

#if defined(__x86_64__)
// Bit j of a byte to bit 4j: lane j of a vector of positions r, r + 4, ... to the bit of position r + 4j.
static uint32_t spread_by_four[256];

__attribute__((constructor)) static void anchors_init(void) {
    for (unsigned bits = 0; bits < 256; bits++) {
        uint32_t spread = 0;
        for (unsigned j = 0; j < 8; j++) spread |= ((bits >> j) & 1u) << (4 * j);
        spread_by_four[bits] = spread;
    }
}

// 32 positions per step, from `start`: for r = 0..3 one load holds the windows at start + r + 4j (j = 0..7).
// The last step starts 32 positions before the end (overlapping the step before, whose positions it skips),
// so no load reads past `length`.
__attribute__((target("avx2")))
static size_t block_anchors_avx2(const uint8_t *bytes, size_t length, unsigned top_bits, uint64_t table_mask,
                                 uint16_t *offsets, uint64_t *entries) {
    const size_t positions = length - 7;
    const __m256i multiplier = _mm256_set1_epi32((int)window_multiplier);
    const __m128i shift = _mm_cvtsi32_si128((int)(32 - top_bits));
    size_t count = 0;
    size_t done = 0;
    while (done < positions) {
        size_t start = done + 32 <= positions ? done : positions - 32;
        uint64_t mask = 0;
        for (size_t r = 0; r < 4; r++) {
            __m256i windows = _mm256_loadu_si256((const __m256i *)(const void *)(bytes + start + r));
            __m256i top = _mm256_srl_epi32(_mm256_mullo_epi32(windows, multiplier), shift);
            __m256i clear = _mm256_cmpeq_epi32(top, _mm256_setzero_si256());
            unsigned lanes = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(clear));
            mask |= (uint64_t)spread_by_four[lanes] << r;
        }
        mask >>= done - start;  // positions already done
        while (mask) {
            size_t offset = done + (size_t)__builtin_ctzll(mask);
            mask &= mask - 1;
            count = put_anchor(bytes, offset, table_mask, offsets, entries, count);
        }
        done = start + 32;
    }
    return count;
}
#endif

size_t CSupport_block_anchors(const uint8_t *bytes, size_t length, unsigned top_bits, uint64_t table_mask,
                              uint16_t *offsets, uint64_t *entries) {
#if defined(__x86_64__)
    if (length >= 39 && csupport_simd_level() >= CSUPPORT_SIMD_AVX2) {
        return block_anchors_avx2(bytes, length, top_bits, table_mask, offsets, entries);
    }
#endif
    return block_anchors_portable(bytes, length, top_bits, table_mask, offsets, entries);
}
