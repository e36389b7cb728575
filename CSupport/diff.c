// The run-length difference encoding of QEMU's XBZRLE (see CSupport.h): encoders (over equality masks, and
// byte by byte for longer inputs) and the checked decoder. Hot loops: they run once per dirty page or block.
#define _GNU_SOURCE
#include "forms.h"

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
void csupport_equal_masks(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint64_t *masks) {
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
long csupport_diff_encode_masked(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out,
                                 size_t capacity) {
    uint64_t masks[64];
    csupport_equal_masks(old, new_bytes, length, masks);
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
    return csupport_diff_encode_masked(old, new_bytes, length, out, capacity);
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

