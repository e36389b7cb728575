// The run-length difference encoding of QEMU's XBZRLE (see CSupport.h), and a zero test. Hot loops: they
// run once per dirty page or block.
#define _GNU_SOURCE
#include "CSupport.h"

#include <string.h>

static size_t put_uleb128(uint8_t *out, size_t value) {
    size_t n = 0;
    do {
        uint8_t byte = value & 0x7f;
        value >>= 7;
        out[n++] = byte | (value ? 0x80 : 0);
    } while (value);
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

long CSupport_diff_encode(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out, size_t capacity) {
    size_t i = 0, n = 0;
    while (i < length) {
        size_t zero_start = i;
        // Skip equal bytes a word at a time, then byte by byte.
        while (i + 8 <= length) {
            uint64_t a, b;
            memcpy(&a, old + i, 8);
            memcpy(&b, new_bytes + i, 8);
            if (a != b) break;
            i += 8;
        }
        while (i < length && old[i] == new_bytes[i]) i++;
        if (i == length) break;  // trailing unchanged run is implied
        size_t zero_run = i - zero_start;
        size_t changed_start = i;
        // A changed run ends at the first pair of equal bytes; give up as soon as the output cannot fit.
        while (i < length && old[i] != new_bytes[i]) {
            i++;
            if (n + 10 + (i - changed_start) > capacity) return -1;
        }
        size_t changed_run = i - changed_start;
        n += put_uleb128(out + n, zero_run);
        n += put_uleb128(out + n, changed_run);
        memcpy(out + n, new_bytes + changed_start, changed_run);
        n += changed_run;
    }
    return (long)n;
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

