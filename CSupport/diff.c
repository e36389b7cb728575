// The run-length difference encoding of QEMU's XBZRLE (see CSupport.h), and a zero test. Hot loops: they
// run once per dirty page or block.
#define _GNU_SOURCE
#include "CSupport.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static size_t put_uleb128(uint8_t *out, size_t value) {
    size_t n = 0;
    do {
        uint8_t byte = value & 0x7f;
        value >>= 7;
        out[n++] = byte | (value ? 0x80 : 0);
    } while (value);
    return n;
}

static size_t uleb128_size(size_t value) {
    size_t n = 1;
    while (value >= 0x80) { value >>= 7; n++; }
    return n;
}

// Reads a ULEB128 of at most 4 bytes (runs never exceed a page). Returns bytes read, or 0 if malformed.
static size_t get_uleb128(const uint8_t *in, size_t available, size_t *value) {
    size_t result = 0;
    for (size_t i = 0; i < available && i < 4; i++) {
        result |= (size_t)(in[i] & 0x7f) << (7 * i);
        if (!(in[i] & 0x80)) {
            *value = result;
            return i + 1;
        }
    }
    return 0;
}

// Equality masks, one bit per byte (1: the bytes are equal), 64 bytes per word; `old` NULL compares with
// zeros. Bits past `length` in the last word are set, so they never start a changed run.
static void equal_masks(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint64_t *masks) {
    size_t words = (length + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        size_t base = w * 64;
        size_t count = length - base < 64 ? length - base : 64;
        uint64_t mask = 0;
#if defined(__SSE2__)
        if (count == 64) {
            for (int part = 0; part < 4; part++) {
                __m128i b = _mm_loadu_si128((const __m128i *)(new_bytes + base + 16 * part));
                __m128i a = old ? _mm_loadu_si128((const __m128i *)(old + base + 16 * part)) : _mm_setzero_si128();
                mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, b)) << (16 * part);
            }
            masks[w] = mask;
            continue;
        }
#endif
        for (size_t i = 0; i < count; i++) {
            uint8_t a = old ? old[base + i] : 0;
            mask |= (uint64_t)(a == new_bytes[base + i]) << i;
        }
        if (count < 64) mask |= ~0ULL << count;
        masks[w] = mask;
    }
}

// The first position at or after `i` whose bit in `masks` is `bit`, or `length`.
static size_t next_with(const uint64_t *masks, size_t i, size_t length, int bit) {
    size_t words = (length + 63) / 64;
    size_t w = i / 64;
    uint64_t bits = (bit ? masks[w] : ~masks[w]) & (~0ULL << (i % 64));
    while (!bits) {
        if (++w >= words) return length;
        bits = bit ? masks[w] : ~masks[w];
    }
    size_t found = w * 64 + (size_t)__builtin_ctzll(bits);
    return found < length ? found : length;
}

// The encoder over equality masks: the same output as a byte-by-byte walk (unchanged runs, then changed
// runs that end at the first equal byte), found 64 bytes per step.
static long diff_encode_masked(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out,
                               size_t capacity) {
    uint64_t masks[64];
    equal_masks(old, new_bytes, length, masks);
    size_t i = 0, n = 0;
    while (i < length) {
        size_t unchanged_start = i;
        i = next_with(masks, i, length, 0);
        if (i == length) break;  // trailing unchanged run is implied
        size_t changed_start = i;
        i = next_with(masks, i, length, 1);
        size_t changed_run = i - changed_start;
        size_t record = uleb128_size(changed_start - unchanged_start) + uleb128_size(changed_run) + changed_run;
        if (n + record > capacity) return -1;
        n += put_uleb128(out + n, changed_start - unchanged_start);
        n += put_uleb128(out + n, changed_run);
        memcpy(out + n, new_bytes + changed_start, changed_run);
        n += changed_run;
    }
    return (long)n;
}

long CSupport_diff_encode_bytewise(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out,
                                   size_t capacity) {
    size_t i = 0, n = 0;
    while (i < length) {
        size_t zero_start = i;
        while (i < length && old[i] == new_bytes[i]) i++;
        if (i == length) break;
        size_t zero_run = i - zero_start;
        size_t changed_start = i;
        while (i < length && old[i] != new_bytes[i]) {
            i++;
            if (n + (i - changed_start) > capacity) return -1;
        }
        size_t changed_run = i - changed_start;
        if (n + uleb128_size(zero_run) + uleb128_size(changed_run) + changed_run > capacity) return -1;
        n += put_uleb128(out + n, zero_run);
        n += put_uleb128(out + n, changed_run);
        memcpy(out + n, new_bytes + changed_start, changed_run);
        n += changed_run;
    }
    return (long)n;
}

long CSupport_diff_encode(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out, size_t capacity) {
    if (length > 64 * 64) return CSupport_diff_encode_bytewise(old, new_bytes, length, out, capacity);
    return diff_encode_masked(old, new_bytes, length, out, capacity);
}

// The sparse form's byte shuffles, 8 bytes at a time: for each mask byte m (bit k: byte k is not zero),
// `compact[m]` gathers the non-zero bytes to the front and `expand[m]` spreads them back to their places
// (0x80 selects a zero byte). Filled once at load time.
static uint8_t compact_patterns[256][16];
static uint8_t expand_patterns[256][16];
// What the sparse form and the 64-byte block forms run on, the best the CPU has unless a test chose a lower
// level (CSupport_sparse_select_level): portable loops, SSSE3 shuffles (SSE2 masks), AVX2 masks, AVX-512
// with VBMI2. Set with the tables, before any thread can ask.
static int best_level;
static int level;

__attribute__((constructor)) static void sparse_patterns_init(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("ssse3")) best_level = CSUPPORT_SIMD_SSSE3;
    if (__builtin_cpu_supports("avx2")) best_level = CSUPPORT_SIMD_AVX2;
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi2")) best_level = CSUPPORT_SIMD_AVX512;
#endif
    level = best_level;
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int k = 0; k < 16; k++) { compact_patterns[m][k] = 0x80; expand_patterns[m][k] = 0x80; }
        for (int k = 0; k < 8; k++) {
            if (m & (1 << k)) {
                compact_patterns[m][n] = (uint8_t)k;
                expand_patterns[m][k] = (uint8_t)n;
                n++;
            }
        }
    }
}

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
        __m128i packed = _mm_shuffle_epi8(word, _mm_loadu_si128((const __m128i *)compact_patterns[m]));
        _mm_storel_epi64((__m128i *)(data + ((offsets >> (8 * i)) & 0xff)), packed);
    }
    return total;
}

// The inverse, reading at most `available` bytes at `data` (a word whose 8-byte load would pass them is
// read through a copy); returns the bytes of `data` used.
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
        __m128i pattern = _mm_loadu_si128((const __m128i *)expand_patterns[m]);
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

static size_t sparse_gather(const uint8_t *bytes, size_t length, const uint8_t *masks, uint8_t *data) {
#if defined(__x86_64__)
    if (level >= CSUPPORT_SIMD_SSSE3) return sparse_gather_ssse3(bytes, length, masks, data);
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
    if (level >= CSUPPORT_SIMD_SSSE3) {
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

int CSupport_sparse_best_level(void) { return best_level; }

// The level in use, for the other hot loops that follow CSupport_sparse_select_level (anchors.c).
int csupport_simd_level(void) { return level; }

int CSupport_sparse_select_level(int wanted) {
    int was = level;
    level = wanted < best_level ? (wanted < 0 ? 0 : wanted) : best_level;
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
    return mask_bytes + sparse_gather(bytes, length, out, out + mask_bytes);
}

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
        return 2 + diff_encode_masked(base, bytes, 64, out + 2, diff_size);
    }
    out[0] = literal_code;
    memcpy(out + 1, bytes, 64);
    return 65;
}

static long block64_encode_portable(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                                    uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form) {
    uint64_t nonzero = nonzero_mask64(bytes), equal = 0;
    if (base) equal_masks(base, bytes, 64, &equal);
    size_t diff_size = 0;
    *form = block64_choose(nonzero, equal, base != NULL, allow_sparse, &diff_size);
    if (*form != FORM_SPARSE) return block64_write_plain(*form, base, bytes, diff_size, diff_code, literal_code, out);
    out[0] = sparse_code;
    memcpy(out + 1, &nonzero, 8);   // little-endian hosts only (x86-64, aarch64)
    return 9 + (long)sparse_gather(bytes, 64, out + 1, out + 9);
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
    if (level >= CSUPPORT_SIMD_AVX512) {
        return block64_encode_avx512(base, bytes, allow_sparse, diff_code, sparse_code, literal_code, out, form);
    }
    if (level >= CSUPPORT_SIMD_AVX2) {
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
    if (level >= CSUPPORT_SIMD_AVX512) {
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
    if (level >= CSUPPORT_SIMD_AVX512) {
        return block64_encode_run_avx512(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                         sparse_code, literal_code, out, written, forms);
    }
    if (level >= CSUPPORT_SIMD_AVX2) {
        return block64_encode_run_avx2(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                       sparse_code, literal_code, out, written, forms);
    }
#endif
    return block64_encode_run_portable(bytes, hashes, count, need, sample_mask, zero_hash, allow_sparse, zero_code,
                                       sparse_code, literal_code, out, written, forms);
}

#if defined(__x86_64__)
// The masks' bits counted and checked against the length first; then each 64 bytes: one masked expand-load
// of their non-zero bytes (reading no byte past them) and one store.
__attribute__((target(AVX512_FORMS)))
static long sparse_decode_avx512(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length) {
    size_t words = length / 64, count = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t mask;
        memcpy(&mask, encoded + 8 * w, 8);   // little-endian hosts only (x86-64, aarch64)
        count += (size_t)__builtin_popcountll(mask);
    }
    if (encoded_length != length / 8 + count) return -1;
    const uint8_t *data = encoded + length / 8;
    for (size_t w = 0; w < words; w++) {
        uint64_t mask;
        memcpy(&mask, encoded + 8 * w, 8);
        _mm512_storeu_si512((void *)(target + 64 * w), _mm512_maskz_expandloadu_epi8(mask, (const void *)data));
        data += __builtin_popcountll(mask);
    }
    return 0;
}
#endif

long CSupport_sparse_decode(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length) {
    size_t mask_bytes = length / 8;
    if (length % 64 || encoded_length < mask_bytes) return -1;
#if defined(__x86_64__)
    if (level >= CSUPPORT_SIMD_AVX512) return sparse_decode_avx512(encoded, encoded_length, target, length);
#endif
    size_t nonzero = 0;
    for (size_t w = 0; w < length / 64; w++) {
        uint64_t mask;
        memcpy(&mask, encoded + 8 * w, 8);   // little-endian hosts only (x86-64, aarch64)
        nonzero += (size_t)__builtin_popcountll(mask);
    }
    if (encoded_length != mask_bytes + nonzero) return -1;
    sparse_scatter(encoded, encoded + mask_bytes, nonzero, target, length);
    return 0;
}

long CSupport_diff_decode(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length) {
    size_t in = 0, at = 0;
    while (in < encoded_length) {
        size_t zero_run, changed_run, k;
        if (!(k = get_uleb128(encoded + in, encoded_length - in, &zero_run))) return -1;
        in += k;
        if (!(k = get_uleb128(encoded + in, encoded_length - in, &changed_run))) return -1;
        in += k;
        if (changed_run == 0 || zero_run > length - at || changed_run > length - at - zero_run) return -1;
        if (changed_run > encoded_length - in) return -1;
        at += zero_run;
        memcpy(target + at, encoded + in, changed_run);
        at += changed_run;
        in += changed_run;
    }
    return 0;
}

