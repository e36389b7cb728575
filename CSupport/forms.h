// What the shim's encoded forms share (diff.c: the run-length difference; sparse.c: the sparse form and the
// SIMD level; block64.c: the fgbi encoder's 64-byte block forms), private to the shim. Hot loops.
#ifndef CSUPPORT_FORMS_H
#define CSUPPORT_FORMS_H

#include "CSupport.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The SIMD level the encoded forms run on (sparse.c: the best the CPU has unless a test chose a lower one
// with CSupport_sparse_select_level); set at load time, before any thread can ask.
extern int csupport_level;
static inline int csupport_simd_level(void) { return csupport_level; }

// Equality masks, one bit per byte (1: the bytes are equal), 64 bytes per word; `old` NULL compares with
// zeros. Bits past `length` in the last word are set, so they never start a changed run (diff.c).
void csupport_equal_masks(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint64_t *masks);

// The run-length difference of `new_bytes` against `old` (at most 64 * 64 bytes), found 64 bytes per step;
// -1 when it passes `capacity` (diff.c).
long csupport_diff_encode_masked(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out,
                                 size_t capacity);

// The sparse form's data (the non-zero bytes in order) of `length` bytes whose non-zero masks are at `masks`
// (sparse.c); returns its length.
size_t csupport_sparse_gather(const uint8_t *bytes, size_t length, const uint8_t *masks, uint8_t *data);

// The sparse form's byte shuffles, 8 bytes at a time: for each mask byte m (bit k: byte k is not zero),
// `compact[m]` gathers the non-zero bytes to the front and `expand[m]` spreads them back to their places
// (0x80 selects a zero byte). Filled once at load time.
extern uint8_t csupport_compact_patterns[256][16];
extern uint8_t csupport_expand_patterns[256][16];

// The non-zero-byte mask of 64 bytes.
static inline uint64_t nonzero_mask64(const uint8_t *bytes) {
    uint64_t mask = 0;
#if defined(__SSE2__)
    for (int part = 0; part < 4; part++) {
        __m128i b = _mm_loadu_si128((const __m128i *)(bytes + 16 * part));
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_setzero_si128())) << (16 * part);
    }
    return ~mask;
#else
    for (int i = 0; i < 64; i++) mask |= (uint64_t)(bytes[i] != 0) << i;
    return mask;
#endif
}

// Where each 8-byte word's non-zero bytes go in the sparse form's data of 64 bytes with non-zero mask
// `nonzero`: byte i of the result is how many non-zero bytes words 0..i-1 hold (the mask's bits counted per
// byte, then summed by one multiply), so the words are gathered or scattered with no chain of additions
// from one to the next; `total` gets all of them.
static inline uint64_t sparse_word_offsets(uint64_t nonzero, size_t *total) {
    uint64_t counts = nonzero - ((nonzero >> 1) & 0x5555555555555555ULL);
    counts = (counts & 0x3333333333333333ULL) + ((counts >> 2) & 0x3333333333333333ULL);
    counts = (counts + (counts >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    uint64_t sums = counts * 0x0101010101010101ULL;
    *total = (size_t)(sums >> 56);
    return sums << 8;
}

#if defined(__x86_64__)
#include <tmmintrin.h>
// SSSE3 (every x86-64 server CPU since 2006; checked at run time): one shuffle per 8 bytes, each word's place
// from sparse_word_offsets. Each word stores 8 bytes, the next word's overwriting the excess: at most 64
// bytes are written at `data`.
__attribute__((target("ssse3")))
static inline size_t sparse_gather64_ssse3(const uint8_t *bytes, uint64_t nonzero, uint8_t *data) {
    size_t total;
    uint64_t offsets = sparse_word_offsets(nonzero, &total);
    for (int i = 0; i < 8; i++) {
        uint8_t m = (uint8_t)(nonzero >> (8 * i));
        __m128i word = _mm_loadl_epi64((const __m128i *)(bytes + 8 * i));
        __m128i packed = _mm_shuffle_epi8(word, _mm_loadu_si128((const __m128i *)csupport_compact_patterns[m]));
        _mm_storel_epi64((__m128i *)(data + ((offsets >> (8 * i)) & 0xff)), packed);
    }
    return total;
}
#endif

#endif
