// The fgbi encoder's forms of a 64-byte block (zero, sparse, difference, literal) and which blocks of a page
// need the content index, on the best SIMD level the CPU has (forms.h). Hot loops: they run once per dirty
// block.
#define _GNU_SOURCE
#include "forms.h"

// The fgbi encoder's choice for one 64-byte block, made from two masks taken in one pass over its bytes
// (equal to the base, non-zero) with the sizes of both forms counted before either is written: the same
// choice, and the same bytes, as CSupport_diff_encode followed by CSupport_sparse_encode would give (the
// caller's rule is in CSupport.h), without encoding the form that loses. The choice and the writing are
// inline functions of the masks, so the AVX-512 loops below (compiled for that CPU, popcount included) and
// the portable ones share them.
enum { FORM_LITERAL = 0, FORM_DIFF = 1, FORM_SPARSE = 2 };

// The form for a block with these masks (`equal` only with a base); a difference's size goes to `diff_size`.
static inline __attribute__((always_inline)) int block64_choose(uint64_t nonzero, uint64_t equal, int has_base,
                                                                int allow_sparse, size_t *diff_size) {
    size_t sparse_size = 8 + (size_t)__builtin_popcountll(nonzero);
    if (has_base) {
        uint64_t changed = ~equal;
        // Each changed run costs two one-byte ULEB128s (gaps and runs are under 128) and its bytes.
        uint64_t run_starts = changed & ~(changed << 1);
        *diff_size = 2 * (size_t)__builtin_popcountll(run_starts) + (size_t)__builtin_popcountll(changed);
        if (*diff_size <= 60) {
            return allow_sparse && *diff_size > 9 && sparse_size <= *diff_size ? FORM_SPARSE : FORM_DIFF;
        }
    }
    return allow_sparse && sparse_size <= 60 ? FORM_SPARSE : FORM_LITERAL;
}

// Writes the literal or difference form (the sparse form's bytes are the caller's: they depend on the CPU).
static inline __attribute__((always_inline)) long
block64_write_plain(int form, const uint8_t *base, const uint8_t *bytes, size_t diff_size, uint8_t diff_code,
                    uint8_t literal_code, uint8_t *out) {
    if (form == FORM_DIFF) {
        out[0] = diff_code;
        out[1] = (uint8_t)diff_size;
        return 2 + csupport_diff_encode_masked(base, bytes, 64, out + 2, diff_size);
    }
    out[0] = literal_code;
    memcpy(out + 1, bytes, 64);
    return 65;
}

static long block64_encode_portable(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                                    uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form) {
    uint64_t nonzero = nonzero_mask64(bytes), equal = 0;
    if (base) csupport_equal_masks(base, bytes, 64, &equal);
    size_t diff_size = 0;
    *form = block64_choose(nonzero, equal, base != NULL, allow_sparse, &diff_size);
    if (*form != FORM_SPARSE) return block64_write_plain(*form, base, bytes, diff_size, diff_code, literal_code, out);
    out[0] = sparse_code;
    memcpy(out + 1, &nonzero, 8);   // little-endian hosts only (x86-64, aarch64)
    return 9 + (long)csupport_sparse_gather(bytes, 64, out + 1, out + 9);
}

// One pass over the run's blocks: a block of zeros (checked only when its hash is `zero_hash`) as
// `zero_code`, any other as `encode_block` writes it with no base; stops at the first block in `need`.
#define BLOCK64_ENCODE_RUN(encode_block)                                                                   \
    uint8_t *p = out;                                                                                      \
    size_t k = 0;                                                                                          \
    for (; k < count && k < 64; k++) {                                                                     \
        if ((need >> k) & 1) break;                                                                        \
        const uint8_t *block = bytes + k * 64;                                                             \
        uint64_t h = hashes[k];                                                                            \
        if (h == zero_hash) {                                                                              \
            if (CSupport_is_zero(block, 64)) {                                                             \
                *p++ = zero_code;                                                                          \
                forms->zero++;                                                                             \
                continue;                                                                                  \
            }                                                                                              \
            if ((h & sample_mask) == 0) break;   /* not zero after all, and in the sample: the index's */  \
        }                                                                                                  \
        int form = 0;                                                                                      \
        p += encode_block(NULL, block, allow_sparse, 0, sparse_code, literal_code, p, &form);              \
        if (form == FORM_SPARSE) forms->sparse++; else forms->literal++;                                   \
    }                                                                                                      \
    *written = (size_t)(p - out);                                                                          \
    return k;

static size_t block64_encode_run_portable(const uint8_t *bytes, const uint64_t *hashes, size_t count, uint64_t need,
                                          uint64_t sample_mask, uint64_t zero_hash, int allow_sparse, uint8_t zero_code,
                                          uint8_t sparse_code, uint8_t literal_code, uint8_t *out, size_t *written,
                                          CSupport_block_forms *forms) {
    BLOCK64_ENCODE_RUN(block64_encode_portable)
}

#if defined(__x86_64__)
#include <immintrin.h>
// AVX2 (checked at run time): each mask is two compares, the sparse form's bytes SSSE3 shuffles placed by
// sparse_word_offsets.
__attribute__((target("avx2")))
static inline long block64_encode_avx2(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                                       uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form) {
    __m256i low = _mm256_loadu_si256((const __m256i *)bytes);
    __m256i high = _mm256_loadu_si256((const __m256i *)(bytes + 32));
    __m256i zero = _mm256_setzero_si256();
    uint64_t nonzero = ~((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(high, zero)) << 32
                         | (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, zero)));
    uint64_t equal = 0;
    if (base) {
        __m256i base_low = _mm256_loadu_si256((const __m256i *)base);
        __m256i base_high = _mm256_loadu_si256((const __m256i *)(base + 32));
        equal = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(high, base_high)) << 32
            | (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, base_low));
    }
    size_t diff_size = 0;
    *form = block64_choose(nonzero, equal, base != NULL, allow_sparse, &diff_size);
    if (*form != FORM_SPARSE) return block64_write_plain(*form, base, bytes, diff_size, diff_code, literal_code, out);
    out[0] = sparse_code;
    memcpy(out + 1, &nonzero, 8);   // little-endian hosts only (x86-64, aarch64)
    return 9 + (long)sparse_gather64_ssse3(bytes, nonzero, out + 9);
}

__attribute__((target("avx2")))
static size_t block64_encode_run_avx2(const uint8_t *bytes, const uint64_t *hashes, size_t count, uint64_t need,
                                      uint64_t sample_mask, uint64_t zero_hash, int allow_sparse, uint8_t zero_code,
                                      uint8_t sparse_code, uint8_t literal_code, uint8_t *out, size_t *written,
                                      CSupport_block_forms *forms) {
    BLOCK64_ENCODE_RUN(block64_encode_avx2)
}
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512_FORMS "avx512f,avx512bw,avx512vbmi2,popcnt"
// AVX-512 (VBMI2 for the byte compress; checked at run time): each mask is one compare, the sparse form's
// bytes one compress.
__attribute__((target(AVX512_FORMS)))
static inline long block64_encode_avx512(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                                         uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form) {
    __m512i v = _mm512_loadu_si512((const void *)bytes);
    uint64_t nonzero = _mm512_test_epi8_mask(v, v);
    uint64_t equal = base ? _mm512_cmpeq_epi8_mask(v, _mm512_loadu_si512((const void *)base)) : 0;
    size_t diff_size = 0;
    *form = block64_choose(nonzero, equal, base != NULL, allow_sparse, &diff_size);
    if (*form != FORM_SPARSE) return block64_write_plain(*form, base, bytes, diff_size, diff_code, literal_code, out);
    out[0] = sparse_code;
    memcpy(out + 1, &nonzero, 8);   // little-endian hosts only (x86-64, aarch64)
    _mm512_storeu_si512((void *)(out + 9), _mm512_maskz_compress_epi8(nonzero, v));
    return 9 + (long)__builtin_popcountll(nonzero);
}

__attribute__((target(AVX512_FORMS)))
static size_t block64_encode_run_avx512(const uint8_t *bytes, const uint64_t *hashes, size_t count, uint64_t need,
                                        uint64_t sample_mask, uint64_t zero_hash, int allow_sparse, uint8_t zero_code,
                                        uint8_t sparse_code, uint8_t literal_code, uint8_t *out, size_t *written,
                                        CSupport_block_forms *forms) {
    BLOCK64_ENCODE_RUN(block64_encode_avx512)
}
#endif

long CSupport_block64_encode(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                             uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form) {
#if defined(__x86_64__)
    if (csupport_simd_level() >= CSUPPORT_SIMD_AVX512) {
        return block64_encode_avx512(base, bytes, allow_sparse, diff_code, sparse_code, literal_code, out, form);
    }
    if (csupport_simd_level() >= CSUPPORT_SIMD_AVX2) {
        return block64_encode_avx2(base, bytes, allow_sparse, diff_code, sparse_code, literal_code, out, form);
    }
#endif
    return block64_encode_portable(base, bytes, allow_sparse, diff_code, sparse_code, literal_code, out, form);
}

#if defined(__x86_64__)
// Eight blocks per step: each location's held bit shifted out of `held`, each hash tested against the sample
// mask and the zero hash.
__attribute__((target(AVX512_FORMS)))
static uint64_t block64_index_mask_avx512(const uint64_t *hashes, const uint64_t *locations, size_t count,
                                          uint64_t held, uint64_t sample_mask, uint64_t zero_hash) {
    const __m512i held_word = _mm512_set1_epi64((long long)held), sample = _mm512_set1_epi64((long long)sample_mask);
    const __m512i zero = _mm512_set1_epi64((long long)zero_hash);
    const __m512i low6 = _mm512_set1_epi64(63), one = _mm512_set1_epi64(1);
    uint64_t need = 0;
    size_t k = 0;
    for (; k + 8 <= count && k < 64; k += 8) {
        __m512i h = _mm512_loadu_si512((const void *)(hashes + k));
        __m512i bit = _mm512_and_si512(_mm512_loadu_si512((const void *)(locations + k)), low6);
        __mmask8 wanted = _mm512_test_epi64_mask(_mm512_srlv_epi64(held_word, bit), one)
            | (_mm512_testn_epi64_mask(h, sample) & _mm512_cmpneq_epu64_mask(h, zero));
        need |= (uint64_t)wanted << k;
    }
    for (; k < count && k < 64; k++) {
        uint64_t h = hashes[k];
        need |= (((held >> (locations[k] & 63)) & 1) | (uint64_t)((h & sample_mask) == 0 && h != zero_hash)) << k;
    }
    return need;
}
#endif

uint64_t CSupport_block64_index_mask(const uint64_t *hashes, const uint64_t *locations, size_t count, uint64_t held,
                                     uint64_t sample_mask, uint64_t zero_hash) {
#if defined(__x86_64__)
    if (csupport_simd_level() >= CSUPPORT_SIMD_AVX512) {
        return block64_index_mask_avx512(hashes, locations, count, held, sample_mask, zero_hash);
    }
#endif
    uint64_t need = 0;
    for (size_t k = 0; k < count && k < 64; k++) {
        uint64_t h = hashes[k];
        uint64_t wanted = ((held >> (locations[k] & 63)) & 1) | (uint64_t)((h & sample_mask) == 0 && h != zero_hash);
        need |= wanted << k;
    }
    return need;
}

size_t CSupport_block64_encode_run(const uint8_t *bytes, const uint64_t *hashes, size_t count, uint64_t need,
                                   uint64_t sample_mask, uint64_t zero_hash, int allow_sparse, uint8_t zero_code,
                                   uint8_t sparse_code, uint8_t literal_code, uint8_t *out, size_t *written,
                                   CSupport_block_forms *forms) {
#if defined(__x86_64__)
    if (csupport_simd_level() >= CSUPPORT_SIMD_AVX512) {
        return block64_encode_run_avx512(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                         sparse_code, literal_code, out, written, forms);
    }
    if (csupport_simd_level() >= CSUPPORT_SIMD_AVX2) {
        return block64_encode_run_avx2(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                       sparse_code, literal_code, out, written, forms);
    }
#endif
    return block64_encode_run_portable(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                       sparse_code, literal_code, out, written, forms);
}

