// The capture's page copy with non-temporal stores: the hot loop of the paused stage when it copies pages.
// Streaming stores write the staging arena without reading its lines first and without filling the copying
// core's caches with them, so a capture on the guest's own core leaves the guest's working set in place.
#define _GNU_SOURCE
#include "CSupport.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2")))
static void copy_streaming_avx2(void *destination, const void *source, size_t length) {
    __m256i *out = (__m256i *)destination;
    const __m256i *in = (const __m256i *)source;
    for (size_t i = 0; i < length / 128; i++) {
        __m256i a = _mm256_loadu_si256(in + 0);
        __m256i b = _mm256_loadu_si256(in + 1);
        __m256i c = _mm256_loadu_si256(in + 2);
        __m256i d = _mm256_loadu_si256(in + 3);
        _mm256_stream_si256(out + 0, a);
        _mm256_stream_si256(out + 1, b);
        _mm256_stream_si256(out + 2, c);
        _mm256_stream_si256(out + 3, d);
        in += 4;
        out += 4;
    }
}
#endif

// Whether CSupport_copy_streaming can use streaming stores on this CPU.
static int copy_streaming_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

void CSupport_copy_streaming(void *destination, const void *source, size_t length) {
#if defined(__x86_64__)
    static int known = -1;  // -1 until the first call finds out; a race only computes it twice
    int available = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (available < 0) {
        available = copy_streaming_available();
        __atomic_store_n(&known, available, __ATOMIC_RELAXED);
    }
    if (available && ((uintptr_t)destination & 31) == 0 && (length & 127) == 0) {
        copy_streaming_avx2(destination, source, length);
        return;
    }
#endif
    memcpy(destination, source, length);
}

void CSupport_copy_streaming_fence(void) {
#if defined(__x86_64__)
    _mm_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}
