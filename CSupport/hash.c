// XXH3 wrappers and the block-hashing hot loops.
// Optimized builds inline xxhash (XXH_INLINE_ALL) so the per-block call vanishes; unoptimized (debug) builds
// call Debian's optimized libxxhash instead of compiling XXH3 at -O0, which would run ~10x slower.
#define _GNU_SOURCE
#include "CSupport.h"

#if defined(__OPTIMIZE__)
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

uint64_t CSupport_xxh3_64(const void *data, size_t length) {
    return XXH3_64bits(data, length);
}

void CSupport_hash_blocks(const void *base, size_t block_size, size_t count, uint64_t *out) {
    const unsigned char *p = base;
    for (size_t i = 0; i < count; i++) out[i] = XXH3_64bits(p + i * block_size, block_size);
}

uint64_t CSupport_rehash_page(const void *page, size_t block_size, size_t blocks, uint64_t *hashes, uint64_t *previous) {
    const unsigned char *p = page;
    uint64_t changed = 0;
    for (size_t i = 0; i < blocks; i++) {
        uint64_t h = XXH3_64bits(p + i * block_size, block_size);
        previous[i] = hashes[i];
        changed |= (uint64_t)(h != hashes[i]) << i;
        hashes[i] = h;
    }
    return changed;
}
