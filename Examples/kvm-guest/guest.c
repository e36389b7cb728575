// The FGBI example KVM guest: a freestanding, 64-bit program that runs at CPL3 with IOPL=3 (see
// /work/shared/notes and Sources/FGBIExamples/KVM/KVMVirtualMachine.swift) and writes memory the way a
// key-value server does: an open-addressing table of 64-byte records under random inserts and updates, and
// an append-only log of every operation. It is deterministic: the same parameters give the same memory and
// the same checksum, however often the VMM pauses it, and wherever it is resumed.
#include "guest.h"

typedef unsigned long long u64;
typedef unsigned int u32;

struct record {          /* one table slot, 64 bytes: a cache line, one FGBI block */
    u64 key;             /* 0: empty */
    u64 value;
    u64 version;
    u64 payload[5];
};

struct log_entry {       /* 32 bytes */
    u64 sequence;
    u64 key;
    u64 value;
    u64 kind;            /* 1 insert, 2 update */
};

_Static_assert(sizeof(struct record) == 64, "records are one 64-byte block");

static inline void out32(unsigned short port, u32 value) {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

// Compilers may emit these for struct copies even when freestanding.
void *memset(void *d, int c, unsigned long n) {
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static inline u64 xorshift(u64 *state) {
    u64 x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static inline u64 mix(u64 x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static u64 checksum(const u64 *words, u64 count) {
    u64 h = 0xcbf29ce484222325ULL;
    for (u64 i = 0; i < count; i++) h = (h ^ words[i]) * 0x100000001b3ULL;
    return mix(h);
}

static void refuse(volatile struct guest_parameters *p, u32 code) {
    p->status = 2;
    for (;;) out32(GUEST_PORT_ERROR, code);
}

static void key_value(volatile struct guest_parameters *p) {
    u64 slots = p->table_slots;
    u64 table_bytes = slots * sizeof(struct record);
    if (slots < 16 || (slots & (slots - 1)) || table_bytes + 4096 > p->data_length) refuse(p, 1);
    struct record *table = (struct record *)GUEST_DATA_ADDRESS;
    struct log_entry *log = (struct log_entry *)(GUEST_DATA_ADDRESS + table_bytes);
    u64 log_capacity = (p->data_length - table_bytes) / sizeof(struct log_entry);
    u64 keys = slots - slots / 4;   /* load factor at most 0.75: probing always ends */
    u64 state = p->seed | 1;
    u64 operations = p->operations, every = p->progress_every;
    u64 done = p->completed, appended = p->log_entries;

    for (; done < operations; done++) {
        u64 r = xorshift(&state);
        // Skewed keys, as servers see: half the operations hit an eighth of the keys.
        u64 key = 1 + ((r & 1) ? (r >> 8) % (keys / 8 + 1) : (r >> 8) % keys);
        u64 i = mix(key) & (slots - 1);
        while (table[i].key != 0 && table[i].key != key) i = (i + 1) & (slots - 1);
        struct record *rec = &table[i];
        u64 kind = rec->key == 0 ? 1 : 2;
        u64 value = xorshift(&state);
        rec->key = key;
        rec->value = value;
        rec->version += 1;
        rec->payload[rec->version % 5] ^= value;
        struct log_entry *e = &log[appended % log_capacity];
        e->sequence = appended;
        e->key = key;
        e->value = value;
        e->kind = kind;
        appended++;
        // Progress the VMM can read at any pause (a resume continues from the registers, not from here).
        p->completed = done + 1;
        p->log_entries = appended;
        if (every && (done + 1) % every == 0) out32(GUEST_PORT_PROGRESS, (u32)(done + 1));
    }
}

static void page_walk(volatile struct guest_parameters *p) {
    u64 stride = p->stride_pages ? p->stride_pages : 1;
    u64 passes = p->operations ? p->operations : 1;
    volatile unsigned char *data = (volatile unsigned char *)GUEST_DATA_ADDRESS;
    u64 sum = 0;
    for (u64 pass = 0; pass < passes; pass++) {
        // A read phase (every page read, none written), then a write phase (every stride-th page), each
        // ended by a progress report, so a VMM collecting at each report sees each phase's pages alone.
        for (u64 offset = 0; offset < p->data_length; offset += 4096) sum += data[offset];
        out32(GUEST_PORT_PROGRESS, (u32)(2 * pass + 1));
        for (u64 offset = 0; offset < p->data_length; offset += stride * 4096) data[offset] += 1;
        p->completed = pass + 1;
        out32(GUEST_PORT_PROGRESS, (u32)(2 * pass + 2));
    }
    p->log_entries = sum;   /* keeps the reads */
}

__attribute__((section(".text.start"), noreturn)) void _start(void) {
    volatile struct guest_parameters *p = (volatile struct guest_parameters *)GUEST_PARAMETERS_ADDRESS;
    if (p->magic != GUEST_PARAMETERS_MAGIC) refuse(p, 0);
    if (p->mode == GUEST_MODE_KEY_VALUE) key_value(p);
    else if (p->mode == GUEST_MODE_PAGE_WALK) page_walk(p);
    else refuse(p, 3);
    p->checksum = checksum((const u64 *)GUEST_DATA_ADDRESS, p->data_length / 8);
    p->status = 1;
    for (;;) out32(GUEST_PORT_DONE, (u32)p->checksum);
}
