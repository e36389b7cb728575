// Probe: how much does memory traffic on the other core cost a writer that has a core of its own? The
// question behind "The LMDB throughput target against the epoch length" in Docs/BENCHMARKS.md: the
// replicated LMDB writer's user time rises by 12-16% whatever the epoch length, while the replication core
// copies, encodes, sends and (in that benchmark) applies each epoch.
// Run beside the LMDB writer alone, each pinned to its CPU, and compare its transactions per second with
// the other core idle:
//
//   cc -O2 -o /tmp/neighbour-traffic Scripts/probes/neighbour-traffic.c
//   taskset -c 1 /tmp/neighbour-traffic copy 60 25 6 &          # 60 MB copied every 25 ms, for 6 s
//   taskset -c 0 fgbi example lmdb --role writer --database /dev/shm/w.mdb --map-mib 256 --seconds 4
//   taskset -c 1 /tmp/neighbour-traffic random 128 50 6 1000000 &   # 1 M random lines of 128 MB per 50 ms
//   taskset -c 0 fgbi example lmdb --role writer --database /dev/shm/w.mdb --map-mib 256 --seconds 4
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int known = argc >= 5 && (!strcmp(argv[1], "copy") || (!strcmp(argv[1], "random") && argc >= 6));
    if (!known) {
        fprintf(stderr, "usage: %s copy MB PERIOD_MS SECONDS | random MB PERIOD_MS SECONDS LINES\n", argv[0]);
        return 2;
    }
    int copying = !strcmp(argv[1], "copy");
    size_t bytes = (size_t)atol(argv[2]) << 20;
    double period = atof(argv[3]) / 1e3, seconds = atof(argv[4]);
    long lines = copying ? 0 : atol(argv[5]);
    char *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes);
    if (!a || !b || bytes < 64) { fprintf(stderr, "cannot allocate %zu bytes twice\n", bytes); return 1; }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    uint64_t state = 88172645463325252ull, sum = 0;
    size_t count = bytes / 64;
    long passes = 0;
    double late = 0, end = now() + seconds;
    while (now() < end) {
        double start = now();
        if (copying) {
            memcpy(b, a, bytes);
        } else {
            for (long done = 0; done < lines; done += 8) {
                size_t at[8];
                for (int k = 0; k < 8; k++) {
                    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
                    at[k] = (state % count) * 64;
                    __builtin_prefetch(a + at[k], 1);
                }
                for (int k = 0; k < 8; k++) sum += (unsigned char)a[at[k]]++;
            }
        }
        passes++;
        double left = period - (now() - start);
        if (left > 0) usleep((useconds_t)(left * 1e6)); else late -= left;
    }
    printf("%ld passes in %.1f s, %.3f s behind the period in all (checksum %llu)\n", passes, seconds, late,
        (unsigned long long)sum);
    return 0;
}
