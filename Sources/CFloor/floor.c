// The floor probe (CFloor.h): each hot step of FGBI done the simplest fast way, timed alone.
#define _GNU_SOURCE
#define XXH_INLINE_ALL
#include "CFloor.h"
#include "CSupport.h"
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

enum { FLOOR_PAGE = 4096, FLOOR_BLOCK = 64, FLOOR_SCAN_VECTOR = 65536 };

struct floor_run {
    CFloor_report report;
    void *context;
    uint64_t random;
};

/// Where the hashes' fold goes, so the compiler cannot drop hashing whose results nothing else reads.
static volatile uint64_t floor_sink;

static void keep(const uint64_t *hashes, size_t count) {
    uint64_t fold = 0;
    for (size_t item = 0; item < count; item++) fold ^= hashes[item];
    floor_sink = fold;
}

static double seconds_now(void) {
    struct timespec time;
    clock_gettime(CLOCK_MONOTONIC, &time);
    return (double)time.tv_sec + (double)time.tv_nsec * 1e-9;
}

static uint64_t next_random(struct floor_run *run) {
    run->random ^= run->random << 13;
    run->random ^= run->random >> 7;
    run->random ^= run->random << 17;
    return run->random;
}

static void emit(struct floor_run *run, const char *metric, double value, const char *unit) {
    run->report(run->context, metric, value, unit);
}

/// Writes one byte in each of `count` distinct pages spread over the region, evenly from a random start,
/// and lists them.
static void write_spread_pages(struct floor_run *run, char *memory, size_t pages, size_t count, size_t *written) {
    size_t stride = pages / count;
    size_t first = next_random(run) % (stride ? stride : 1);
    for (size_t item = 0; item < count; item++) {
        size_t page = (first + item * stride) % pages;
        written[item] = page;
        memory[page * FLOOR_PAGE + next_random(run) % FLOOR_PAGE] ^= 1;
    }
}

/// One thread's share of the parallel hash or copy: `length` bytes from `source` (to `destination` for a copy).
struct floor_share {
    const char *source;
    char *destination;
    uint64_t *hashes;
    size_t length;
};

static void *hash_share(void *argument) {
    struct floor_share *share = argument;
    for (size_t block = 0; block < share->length / FLOOR_BLOCK; block++) {
        share->hashes[block] = XXH3_64bits(share->source + block * FLOOR_BLOCK, FLOOR_BLOCK);
    }
    return NULL;
}

static void *copy_share(void *argument) {
    struct floor_share *share = argument;
    memcpy(share->destination, share->source, share->length);
    return NULL;
}

/// Seconds `work` takes over `length` bytes split in two halves, one on a new thread and one on the caller:
/// whether the step scales with a second CPU, or the memory bus is already the bound. Negative when the
/// thread cannot be started.
static double on_two_threads(void *(*work)(void *), const char *memory, char *copy, uint64_t *hashes,
                             size_t length) {
    size_t half = length / 2 / FLOOR_PAGE * FLOOR_PAGE;
    struct floor_share shares[2] = {
        {memory, copy, hashes, half},
        {memory + half, copy + half, hashes + half / FLOOR_BLOCK, length - half},
    };
    pthread_t helper;
    double start = seconds_now();
    if (pthread_create(&helper, NULL, work, &shares[1]) != 0) return -1;
    work(&shares[0]);
    pthread_join(helper, NULL);
    return seconds_now() - start;
}

static void measure_hash_and_copy(struct floor_run *run, char *memory, char *copy, size_t length, size_t *written,
                                  uint64_t *hashes) {
    size_t pages = length / FLOOR_PAGE;
    double start = seconds_now();
    for (size_t block = 0; block < length / FLOOR_BLOCK; block++) {
        hashes[block] = XXH3_64bits(memory + block * FLOOR_BLOCK, FLOOR_BLOCK);
    }
    double hashing = seconds_now() - start;
    keep(hashes, length / FLOOR_BLOCK);
    emit(run, "xxh3_64B_blocks_GBps", (double)length / hashing / 1e9, "GB/s");

    start = seconds_now();
    memcpy(copy, memory, length);
    emit(run, "memcpy_GBps", (double)length / (seconds_now() - start) / 1e9, "GB/s");

    // The same two steps split over two threads: what a second encode thread can gain at most on this host.
    double parallel = on_two_threads(hash_share, memory, copy, hashes, length);
    keep(hashes, length / FLOOR_BLOCK);
    if (parallel > 0) emit(run, "xxh3_64B_blocks_GBps_2_threads", (double)length / parallel / 1e9, "GB/s");
    parallel = on_two_threads(copy_share, memory, copy, hashes, length);
    if (parallel > 0) emit(run, "memcpy_GBps_2_threads", (double)length / parallel / 1e9, "GB/s");

    static const size_t counts[] = {1024, 10240, 16384, 51200};
    size_t previous = 0;
    for (size_t which = 0; which < sizeof counts / sizeof counts[0]; which++) {
        size_t count = counts[which] < pages ? counts[which] : pages;
        if (count == previous) continue;   // a small region: every larger count is the whole region, once
        previous = count;
        char name[64];
        write_spread_pages(run, memory, pages, count, written);
        start = seconds_now();
        for (size_t item = 0; item < count; item++) {
            memcpy(copy + item * FLOOR_PAGE, memory + written[item] * FLOOR_PAGE, FLOOR_PAGE);
        }
        snprintf(name, sizeof name, "copy_%zu_scattered_pages_ms", count);
        emit(run, name, (seconds_now() - start) * 1e3, "ms");
        start = seconds_now();
        for (size_t item = 0; item < count; item++) {
            const char *page = memory + written[item] * FLOOR_PAGE;
            for (size_t block = 0; block < FLOOR_PAGE / FLOOR_BLOCK; block++) {
                uint64_t hash = XXH3_64bits(page + block * FLOOR_BLOCK, FLOOR_BLOCK);
                hashes[item * (FLOOR_PAGE / FLOOR_BLOCK) + block] = hash;
            }
        }
        double rehashing = seconds_now() - start;
        keep(hashes, count * (FLOOR_PAGE / FLOOR_BLOCK));
        snprintf(name, sizeof name, "rehash_%zu_written_pages_ms", count);
        emit(run, name, rehashing * 1e3, "ms");
    }
}

/// LZ4 over up to 64 MiB in 1 MiB calls, every other 4 KiB page made of a repeated phrase (the rest random).
static void measure_lz4(struct floor_run *run, char *memory, size_t length) {
    size_t span = length < ((size_t)64 << 20) ? length : ((size_t)64 << 20);
    size_t chunk = span < ((size_t)1 << 20) ? span : ((size_t)1 << 20);
    static const char phrase[] = "fgbi-replicator ";
    for (size_t offset = 0; offset < span; offset++) if ((offset >> 12) & 1) memory[offset] = phrase[offset & 15];
    int bound = LZ4_compressBound((int)chunk);
    char *output = malloc((size_t)bound);
    if (!output) return;
    double start = seconds_now();
    for (size_t offset = 0; offset + chunk <= span; offset += chunk) {
        (void)LZ4_compress_default(memory + offset, output, (int)chunk, bound);
    }
    emit(run, "lz4_GBps_half_compressible", (double)span / (seconds_now() - start) / 1e9, "GB/s");
    free(output);
}

/// Collects the written pages of the region and write-protects them again; returns the pages found or -errno.
static long collect_written(int pagemap, char *memory, size_t length, CSupport_page_region *vector) {
    long found = 0;
    uint64_t start = (uint64_t)(uintptr_t)memory, end = start + length;
    while (start < end) {
        uint64_t walk_end = end;
        long regions = CSupport_pagemap_scan(pagemap, start, end,
                                             CSupport_PM_SCAN_WP_MATCHING | CSupport_PM_SCAN_CHECK_WPASYNC,
                                             CSupport_PAGE_IS_WRITTEN, CSupport_PAGE_IS_WRITTEN, vector,
                                             FLOOR_SCAN_VECTOR, 0, &walk_end);
        if (regions < 0) return regions;
        for (long item = 0; item < regions; item++) {
            found += (long)((vector[item].end - vector[item].start) / FLOOR_PAGE);
        }
        if (walk_end >= end || regions < FLOOR_SCAN_VECTOR) break;
        start = walk_end;
    }
    return found;
}

static int measure_tracking(struct floor_run *run, char *memory, size_t length, size_t *written,
                            const char **failed_step) {
    size_t pages = length / FLOOR_PAGE;
    uint64_t features = 0, ioctls = 0;
    int result = 0;
    int pagemap = -1;
    CSupport_page_region *vector = NULL;
    int uffd = CSupport_userfaultfd_syscall(O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) { *failed_step = "userfaultfd"; return uffd; }
    uint64_t wanted = CSupport_UFFD_FEATURE_WP_ASYNC | CSupport_UFFD_FEATURE_WP_UNPOPULATED;
    if ((result = CSupport_uffdio_api(uffd, wanted, &features, &ioctls)) < 0) {
        *failed_step = "UFFDIO_API (WP_ASYNC)";
        goto done;
    }
    uint64_t base = (uint64_t)(uintptr_t)memory;
    if ((result = CSupport_uffdio_register(uffd, base, length, UFFDIO_REGISTER_MODE_WP, &ioctls)) < 0) {
        *failed_step = "UFFDIO_REGISTER";
        goto done;
    }
    if ((result = CSupport_uffdio_writeprotect(uffd, (uint64_t)(uintptr_t)memory, length, 1, 0)) < 0) {
        *failed_step = "UFFDIO_WRITEPROTECT";
        goto done;
    }
    pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap < 0) { result = -errno; *failed_step = "open /proc/self/pagemap"; goto done; }
    vector = malloc(FLOOR_SCAN_VECTOR * sizeof *vector);
    if (!vector) { result = -ENOMEM; *failed_step = "malloc (PAGEMAP_SCAN vector)"; goto done; }
    long cleared = collect_written(pagemap, memory, length, vector);
    if (cleared < 0) { result = (int)cleared; *failed_step = "PAGEMAP_SCAN"; goto done; }
    size_t counts[] = {1024, 16384, pages};
    size_t previous = 0;
    for (size_t which = 0; which < sizeof counts / sizeof counts[0]; which++) {
        size_t count = counts[which] < pages ? counts[which] : pages;
        if (count == previous) continue;
        previous = count;
        char name[64];
        double start = seconds_now();
        write_spread_pages(run, memory, pages, count, written);
        double writing = seconds_now() - start;
        start = seconds_now();
        long found = collect_written(pagemap, memory, length, vector);
        double collecting = seconds_now() - start;
        if (found < 0) { result = (int)found; *failed_step = "PAGEMAP_SCAN"; goto done; }
        snprintf(name, sizeof name, "first_write_after_wp_us_%zu", count);
        emit(run, name, writing / (double)count * 1e6, "us/page");
        snprintf(name, sizeof name, "scan_reprotect_%zu_of_%zu_pages_ms", count, pages);
        emit(run, name, collecting * 1e3, "ms");
        snprintf(name, sizeof name, "scan_found_%zu_of_%zu_pages", count, pages);
        emit(run, name, (double)found, "pages");
    }
done:
    free(vector);
    if (pagemap >= 0) close(pagemap);
    close(uffd);
    return result;
}

int CFloor_measure(size_t mib, CFloor_report report, void *context, const char **failed_step) {
    struct floor_run run = {report, context, 88172645463325252ull};
    size_t length = (mib ? mib : 1) << 20;
    *failed_step = NULL;
    char *memory = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    char *copy = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    size_t *written = malloc(length / FLOOR_PAGE * sizeof *written);
    uint64_t *hashes = malloc(length / FLOOR_BLOCK * sizeof *hashes);
    int result = 0;
    if (memory == MAP_FAILED || copy == MAP_FAILED || !written || !hashes) {
        result = -ENOMEM;
        *failed_step = "mmap";
    } else {
        for (size_t offset = 0; offset < length; offset += 8) *(uint64_t *)(memory + offset) = next_random(&run);
        // Fresh memory costs a fault per page on first touch: never inside a timed step.
        memset(hashes, 0, length / FLOOR_BLOCK * sizeof *hashes);
        memset(written, 0, length / FLOOR_PAGE * sizeof *written);
        measure_hash_and_copy(&run, memory, copy, length, written, hashes);
        measure_lz4(&run, memory, length);
        result = measure_tracking(&run, memory, length, written, failed_step);
    }
    free(hashes);
    free(written);
    if (copy != MAP_FAILED) munmap(copy, length);
    if (memory != MAP_FAILED) munmap(memory, length);
    return result;
}
