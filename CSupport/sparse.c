// The sparse form (a mask of a block's non-zero bytes, then those bytes; see CSupport.h) and the SIMD level
// the encoded forms run on, chosen at load time. Hot loops: they run once per dirty block.
#define _GNU_SOURCE
#include "forms.h"

uint8_t csupport_compact_patterns[256][16];
uint8_t csupport_expand_patterns[256][16];
// What the sparse form and the 64-byte block forms run on, the best the CPU has unless a test chose a lower
// level (CSupport_sparse_select_level): portable loops, SSSE3 shuffles (SSE2 masks), AVX2 masks, AVX-512
// with VBMI2. Set with the tables, before any thread can ask.
static int best_level;
int csupport_level;

__attribute__((constructor)) static void sparse_patterns_init(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("ssse3")) best_level = CSUPPORT_SIMD_SSSE3;
    if (__builtin_cpu_supports("avx2")) best_level = CSUPPORT_SIMD_AVX2;
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi2")) best_level = CSUPPORT_SIMD_AVX512;
#endif
    csupport_level = best_level;
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int k = 0; k < 16; k++) { csupport_compact_patterns[m][k] = 0x80; csupport_expand_patterns[m][k] = 0x80; }
        for (int k = 0; k < 8; k++) {
            if (m & (1 << k)) {
                csupport_compact_patterns[m][n] = (uint8_t)k;
                csupport_expand_patterns[m][k] = (uint8_t)n;
                n++;
            }
        }
    }
}

#if defined(__x86_64__)
// The inverse of sparse_gather64_ssse3 (forms.h), reading at most `available` bytes at `data` (a word whose
// 8-byte load would pass them is read through a copy); returns the bytes of `data` used.
__attribute__((target("ssse3")))
static inline size_t sparse_scatter64_ssse3(uint64_t nonzero, const uint8_t *data, size_t available,
                                            uint8_t *target) {
    size_t total;
    uint64_t offsets = sparse_word_offsets(nonzero, &total);
    for (int i = 0; i < 8; i++) {
        uint8_t m = (uint8_t)(nonzero >> (8 * i));
        size_t at = (offsets >> (8 * i)) & 0xff;
        __m128i word;
        if (at + 8 <= available) {
            word = _mm_loadl_epi64((const __m128i *)(data + at));
        } else {
            uint8_t tail[8] = {0};
            memcpy(tail, data + at, available - at < 8 ? available - at : 8);
            word = _mm_loadl_epi64((const __m128i *)tail);
        }
        __m128i pattern = _mm_loadu_si128((const __m128i *)csupport_expand_patterns[m]);
        _mm_storel_epi64((__m128i *)(target + 8 * i), _mm_shuffle_epi8(word, pattern));
    }
    return total;
}
__attribute__((target("ssse3")))
static size_t sparse_gather_ssse3(const uint8_t *bytes, size_t length, const uint8_t *masks, uint8_t *data) {
    size_t n = 0;
    for (size_t i = 0; i < length; i += 64) {
        uint64_t nonzero;
        memcpy(&nonzero, masks + i / 8, 8);   // little-endian hosts only (x86-64, aarch64)
        n += sparse_gather64_ssse3(bytes + i, nonzero, data + n);
    }
    return n;
}

__attribute__((target("ssse3")))
static void sparse_scatter_ssse3(const uint8_t *masks, const uint8_t *data, size_t available, uint8_t *target,
                                 size_t length) {
    size_t k = 0;
    for (size_t i = 0; i < length; i += 64) {
        uint64_t nonzero;
        memcpy(&nonzero, masks + i / 8, 8);
        k += sparse_scatter64_ssse3(nonzero, data + k, available - k, target + i);
    }
}

#endif


size_t csupport_sparse_gather(const uint8_t *bytes, size_t length, const uint8_t *masks, uint8_t *data) {
#if defined(__x86_64__)
    if (csupport_level >= CSUPPORT_SIMD_SSSE3) return sparse_gather_ssse3(bytes, length, masks, data);
#endif
    size_t n = 0;
    for (size_t i = 0; i < length; i++) {
        data[n] = bytes[i];
        n += bytes[i] != 0;
    }
    return n;
}

static void sparse_scatter(const uint8_t *masks, const uint8_t *data, size_t available, uint8_t *target,
                           size_t length) {
#if defined(__x86_64__)
    if (csupport_level >= CSUPPORT_SIMD_SSSE3) {
        sparse_scatter_ssse3(masks, data, available, target, length);
        return;
    }
#endif
    size_t k = 0;
    for (size_t i = 0; i < length; i++) {
        uint8_t bit = (masks[i / 8] >> (i % 8)) & 1;
        target[i] = bit ? data[k] : 0;
        k += bit;
    }
}

// The bits set in the `mask_bytes` (a multiple of 8) bytes at `mask`.
static inline __attribute__((always_inline)) size_t sparse_mask_count(const uint8_t *mask, size_t mask_bytes) {
    size_t count = 0;
    for (size_t w = 0; w < mask_bytes / 8; w++) {
        uint64_t word;
        memcpy(&word, mask + 8 * w, 8);   // little-endian hosts only (x86-64, aarch64)
        count += (size_t)__builtin_popcountll(word);
    }
    return count;
}

int CSupport_sparse_best_level(void) { return best_level; }

int CSupport_sparse_select_level(int wanted) {
    int was = csupport_level;
    csupport_level = wanted < best_level ? (wanted < 0 ? 0 : wanted) : best_level;
    return was;
}

size_t CSupport_sparse_encode(const uint8_t *bytes, size_t length, uint8_t *out, size_t capacity) {
    size_t mask_bytes = length / 8;
    size_t nonzero = 0;
    for (size_t w = 0; w < length / 64; w++) {
        uint64_t mask = nonzero_mask64(bytes + 64 * w);
        memcpy(out + 8 * w, &mask, 8);   // little-endian hosts only (x86-64, aarch64)
        nonzero += (size_t)__builtin_popcountll(mask);
    }
    if (mask_bytes + nonzero > capacity) return 0;
    return mask_bytes + csupport_sparse_gather(bytes, length, out, out + mask_bytes);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512_FORMS "avx512f,avx512bw,avx512vbmi2,popcnt"
#endif

#if defined(__x86_64__)
// Each 64 bytes of the form's `length` bytes: one masked expand-load of their non-zero bytes (reading no byte
// past them) and one store. The form must have been checked.
__attribute__((target(AVX512_FORMS)))
static void sparse_expand_avx512(const uint8_t *encoded, uint8_t *target, size_t length) {
    const uint8_t *data = encoded + length / 8;
    for (size_t w = 0; w < length / 64; w++) {
        uint64_t mask;
        memcpy(&mask, encoded + 8 * w, 8);   // little-endian hosts only (x86-64, aarch64)
        _mm512_storeu_si512((void *)(target + 64 * w), _mm512_maskz_expandloadu_epi8(mask, (const void *)data));
        data += __builtin_popcountll(mask);
    }
}

// The masks' bits counted (with POPCNT) and checked against the length first, then expanded.
__attribute__((target(AVX512_FORMS)))
static long sparse_decode_avx512(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length) {
    if (encoded_length != length / 8 + sparse_mask_count(encoded, length / 8)) return -1;
    sparse_expand_avx512(encoded, target, length);
    return 0;
}
#endif

// Rebuilds `length` bytes from a checked sparse form of `nonzero` non-zero bytes, on the best level in use.
static void sparse_expand(const uint8_t *encoded, size_t nonzero, uint8_t *target, size_t length) {
#if defined(__x86_64__)
    if (csupport_level >= CSUPPORT_SIMD_AVX512) {
        sparse_expand_avx512(encoded, target, length);
        return;
    }
#endif
    sparse_scatter(encoded, encoded + length / 8, nonzero, target, length);
}

long CSupport_sparse_decode(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length) {
    size_t mask_bytes = length / 8;
    if (length % 64 || encoded_length < mask_bytes) return -1;
#if defined(__x86_64__)
    if (csupport_level >= CSUPPORT_SIMD_AVX512) return sparse_decode_avx512(encoded, encoded_length, target, length);
#endif
    size_t nonzero = sparse_mask_count(encoded, mask_bytes);
    if (encoded_length != mask_bytes + nonzero) return -1;
    sparse_scatter(encoded, encoded + mask_bytes, nonzero, target, length);
    return 0;
}

// CSupport_sparse_decode_blocks, with the popcount the compiler is allowed for the caller's target.
static inline __attribute__((always_inline)) long sparse_decode_blocks(
    const uint8_t *forms, size_t available, size_t most, size_t block_length, uint8_t sparse_code, uint8_t *target,
    size_t *consumed) {
    size_t mask_bytes = block_length / 8, at = 0, blocks = 0;
    while (blocks < most) {
        if (blocks > 0) {
            if (at >= available || forms[at] != sparse_code) break;   // the run ends; the caller reads on
            at++;
        }
        if (available - at < mask_bytes) return -1;
        size_t nonzero = sparse_mask_count(forms + at, mask_bytes);
        if (available - at - mask_bytes < nonzero) return -1;
        sparse_expand(forms + at, nonzero, target + blocks * block_length, block_length);   // counted once
        at += mask_bytes + nonzero;
        blocks++;
    }
    *consumed = at;
    return (long)blocks;
}

#if defined(__x86_64__)
__attribute__((target("popcnt")))
static long sparse_decode_blocks_popcnt(const uint8_t *forms, size_t available, size_t most, size_t block_length,
                                        uint8_t sparse_code, uint8_t *target, size_t *consumed) {
    return sparse_decode_blocks(forms, available, most, block_length, sparse_code, target, consumed);
}
#endif

long CSupport_sparse_decode_blocks(const uint8_t *forms, size_t available, size_t most, size_t block_length,
                                   uint8_t sparse_code, uint8_t *target, size_t *consumed) {
    *consumed = 0;
    if (block_length == 0 || block_length % 64 || most == 0) return -1;
#if defined(__x86_64__)
    if (csupport_level >= CSUPPORT_SIMD_AVX2)   // every CPU with AVX2 has POPCNT
        return sparse_decode_blocks_popcnt(forms, available, most, block_length, sparse_code, target, consumed);
#endif
    return sparse_decode_blocks(forms, available, most, block_length, sparse_code, target, consumed);
}


