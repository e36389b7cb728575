// Probe: how much would compressing each written page against its own previous version (as a dictionary)
// send, on a trace directory? The question behind the sqlite row of Docs/BENCHMARKS.md: is the content
// zstd --patch-from finds local to each page (then a per-page dictionary pass would close the gap) or
// spread across pages? For each pair of consecutive images (1..PAIRS), every page that differs is
// compressed with LZ4 and with zstd level 1, each with the page's previous content as dictionary.
//
//   cc -O2 -o /tmp/page-dictionary-delta Scripts/probes/page-dictionary-delta.c -llz4 -lzstd
//   /tmp/page-dictionary-delta /tmp/trace-sqlite 20
#include <lz4.h>
#include <zstd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned char *load(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) { perror(path); exit(1); }
    fseek(file, 0, SEEK_END);
    *size = (size_t)ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *bytes = malloc(*size);
    if (!bytes || fread(bytes, 1, *size, file) != *size) { fprintf(stderr, "%s: short read\n", path); exit(1); }
    fclose(file);
    return bytes;
}

static double seconds(struct timespec a, struct timespec b) { return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s TRACE_DIR PAIRS\n", argv[0]); return 2; }
    const char *dir = argv[1];
    int pairs = atoi(argv[2]);
    long long lz4Bytes = 0, zstdBytes = 0, pages = 0;
    double lz4Seconds = 0, zstdSeconds = 0;
    ZSTD_CCtx *context = ZSTD_createCCtx();
    char out[8192], path[4096];
    for (int k = 1; k <= pairs; k++) {
        size_t size, newSize;
        snprintf(path, sizeof path, "%s/epoch-%06d.img", dir, k);
        unsigned char *old = load(path, &size);
        snprintf(path, sizeof path, "%s/epoch-%06d.img", dir, k + 1);
        unsigned char *new = load(path, &newSize);
        if (newSize != size) { fprintf(stderr, "images differ in size\n"); return 1; }
        for (size_t offset = 0; offset + 4096 <= size; offset += 4096) {
            if (!memcmp(old + offset, new + offset, 4096)) continue;
            pages++;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            LZ4_stream_t stream;
            LZ4_initStream(&stream, sizeof stream);
            LZ4_loadDict(&stream, (const char *)old + offset, 4096);
            lz4Bytes += LZ4_compress_fast_continue(&stream, (const char *)new + offset, out, 4096, sizeof out, 1) + 3;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            lz4Seconds += seconds(t0, t1);
            clock_gettime(CLOCK_MONOTONIC, &t0);
            zstdBytes += (long long)ZSTD_compress_usingDict(context, out, sizeof out, new + offset, 4096, old + offset, 4096, 1) + 3;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            zstdSeconds += seconds(t0, t1);
        }
        free(old);
        free(new);
    }
    ZSTD_freeCCtx(context);
    printf("written pages per epoch %lld; LZ4 with the previous page as dictionary: %lld B/epoch (%.1f us/page); "
           "zstd -1 likewise: %lld B/epoch (%.1f us/page)\n", pages / pairs, lz4Bytes / pairs,
           lz4Seconds / (pages ? pages : 1) * 1e6, zstdBytes / pairs, zstdSeconds / (pages ? pages : 1) * 1e6);
    return 0;
}
