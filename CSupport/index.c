// The content index's table sweep: which of a run of table entries are live, 64 at a time.
#define _GNU_SOURCE
#include "CSupport.h"

// An entry is the 64-bit word of the Swift `ContentIndex.Entry`: the key's fragment in the low 32 bits, the
// tag in the high 32: slot + 1 in its low 29 bits (0: empty; all ones: a tombstone), the ring's lap mod 8 in
// its top 3.
#define SLOT_MASK 0x1FFFFFFFULL

static int use_index_avx512;

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((constructor)) static void index_init(void) { use_index_avx512 = __builtin_cpu_supports("avx512f"); }

// Eight entries per step: the slot's range, which lap it was filled in, and the entry's lap, compared in
// 64-bit lanes.
__attribute__((target("avx512f")))
static uint64_t index_live_mask_avx512(const uint64_t *entries, size_t count, uint64_t hand, uint32_t lap,
                                       uint64_t slot_count) {
    const __m512i slot_mask = _mm512_set1_epi64((long long)SLOT_MASK);
    const __m512i one = _mm512_set1_epi64(1);
    const __m512i slots = _mm512_set1_epi64((long long)slot_count);
    const __m512i hands = _mm512_set1_epi64((long long)hand);
    const __m512i this_lap = _mm512_set1_epi64(lap & 7);
    const __m512i lap_before = _mm512_set1_epi64((lap - 1) & 7);
    uint64_t mask = 0;
    for (size_t i = 0; i < count; i += 8) {
        __m512i tag = _mm512_srli_epi64(_mm512_loadu_si512((const void *)(entries + i)), 32);
        __m512i slot_plus_one = _mm512_and_si512(tag, slot_mask);
        __mmask8 named = _mm512_cmpge_epu64_mask(slot_plus_one, one) & _mm512_cmple_epu64_mask(slot_plus_one, slots);
        __mmask8 before = _mm512_cmpgt_epu64_mask(slot_plus_one, hands);
        __m512i expected = _mm512_mask_blend_epi64(before, this_lap, lap_before);
        __mmask8 same_lap = _mm512_cmpeq_epu64_mask(_mm512_srli_epi64(tag, 29), expected);
        mask |= (uint64_t)(named & same_lap) << i;
    }
    return mask;
}
#endif

uint64_t CSupport_index_live_mask(const uint64_t *entries, size_t count, uint64_t hand, uint32_t lap,
                                  uint64_t slot_count) {
#if defined(__x86_64__)
    if (count % 8 == 0 && use_index_avx512) return index_live_mask_avx512(entries, count, hand, lap, slot_count);
#endif
    // The same tests in arithmetic only: a branch per entry would be mispredicted at every other one.
    uint64_t mask = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t tag = (uint32_t)(entries[i] >> 32);
        uint64_t slot_plus_one = tag & SLOT_MASK;
        uint64_t named = (slot_plus_one - 1) < slot_count; // 0 (empty) wraps round; a tombstone is above
        uint32_t before = slot_plus_one > hand;
        uint32_t same_lap = (tag >> 29) == ((lap - before) & 7);
        mask |= (uint64_t)(named & same_lap) << i;
    }
    return mask;
}

int CSupport_index_select_portable(int portable) {
    int was = !use_index_avx512;
#if defined(__x86_64__)
    use_index_avx512 = !portable && __builtin_cpu_supports("avx512f");
#endif
    return was;
}
