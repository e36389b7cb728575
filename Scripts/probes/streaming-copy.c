// Probe: how fast does the capture copy scattered written pages, with memcpy, with AVX2 streaming
// (non-temporal) stores as CSupport_copy_streaming does, and with streaming stores plus a prefetch of the
// next page? The question behind the "Streaming stores" reading of the LMDB section of Docs/BENCHMARKS.md.
// One thread copies PAGES scattered 4 KiB pages of a 256 MiB region (4 KiB pages, like the LMDB map on tmpfs;
// HUGE=1 gives the destination transparent huge pages) into an arena, after writing them and evicting the
// caches with 64 MiB of other writes, as a paused guest's freshly written pages would be. Best of 20 epochs,
// each variant three times.
//
//   cc -O2 -o /tmp/streaming-copy Scripts/probes/streaming-copy.c
//   /tmp/streaming-copy 4200
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((target("avx2"))) static void copy_streaming(void *to, const void *from, const char *next, size_t length) {
    __m256i *out = to;
    const __m256i *in = from;
    for (size_t i = 0; i < length / 128; i++) {
        if (next) {
            _mm_prefetch(next + i * 128, _MM_HINT_T0);
            _mm_prefetch(next + i * 128 + 64, _MM_HINT_T0);
        }
        __m256i a = _mm256_loadu_si256(in), b = _mm256_loadu_si256(in + 1);
        __m256i c = _mm256_loadu_si256(in + 2), d = _mm256_loadu_si256(in + 3);
        _mm256_stream_si256(out, a);
        _mm256_stream_si256(out + 1, b);
        _mm256_stream_si256(out + 2, c);
        _mm256_stream_si256(out + 3, d);
        in += 4;
        out += 4;
    }
}

int main(int argc, char **argv) {
    const size_t regionBytes = 256 << 20, pages = argc > 1 ? strtoul(argv[1], 0, 10) : 4200;
    const size_t arenaBytes = (pages * 4096 + (2 << 20) - 1) & ~(size_t)((2 << 20) - 1);
    if (pages == 0 || pages > regionBytes / 4096 / 2) {
        fprintf(stderr, "PAGES must be between 1 and %zu\n", regionBytes / 4096 / 2);
        return 2;
    }
    char *region = mmap(0, regionBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *arena = mmap(0, arenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *evict = malloc(64 << 20);
    size_t *chosen = malloc(pages * sizeof *chosen);
    if (region == MAP_FAILED || arena == MAP_FAILED || !evict || !chosen) {
        perror("allocation");
        return 1;
    }
    madvise(region, regionBytes, MADV_NOHUGEPAGE);
    if (getenv("HUGE")) madvise(arena, arenaBytes, MADV_HUGEPAGE);
    memset(region, 1, regionBytes);  // first touch here, outside the timed copies
    memset(arena, 1, arenaBytes);
    srand(1);
    const char *names[] = {"memcpy", "streaming", "streaming + prefetch"};
    for (int variant = 0; variant < 3; variant++) {
        for (int repeat = 0; repeat < 3; repeat++) {
            double best = 1e9;
            for (int epoch = 0; epoch < 20; epoch++) {
                size_t step = regionBytes / 4096 / pages;
                for (size_t p = 0; p < pages; p++) {
                    chosen[p] = p * step + (size_t)rand() % step;
                    memset(region + chosen[p] * 4096, epoch, 4096);
                }
                memset(evict, epoch, 64 << 20);
                double start = now();
                for (size_t p = 0; p < pages; p++) {
                    char *from = region + chosen[p] * 4096, *to = arena + p * 4096;
                    if (variant == 0) memcpy(to, from, 4096);
                    else copy_streaming(to, from, variant == 2 && p + 1 < pages ? region + chosen[p + 1] * 4096 : 0, 4096);
                }
                _mm_sfence();
                double took = now() - start;
                if (took < best) best = took;
            }
            printf("%-22s %.2f ms for %zu pages (%.2f us/page)\n", names[variant], best * 1e3, pages, best * 1e6 / pages);
        }
    }
    return 0;
}
