// The contract between the FGBI example VMM (Sources/FGBIExamples/KVM) and the guest program: where things
// live in guest-physical memory (identity-mapped, so also guest-virtual), the parameter block, and the I/O
// ports the guest reports on. The Swift side mirrors these values in KVMGuestLayout.swift.
#ifndef FGBI_KVM_GUEST_H
#define FGBI_KVM_GUEST_H

#define GUEST_GDT_ADDRESS        0x500
#define GUEST_PARAMETERS_ADDRESS 0x1000
#define GUEST_PAGE_TABLES        0x10000   /* PML4, PDPT, PD: three pages */
#define GUEST_STACK_TOP          0x80000
#define GUEST_CODE_ADDRESS       0x100000  /* where guest.bin is loaded and _start is */
#define GUEST_DATA_ADDRESS       0x200000  /* the table and the log start here */

#define GUEST_PARAMETERS_MAGIC 0x314d564b49424746ULL /* "FGBIKVM1" */

#define GUEST_PORT_PROGRESS 0x10 /* OUT 32-bit: operations completed so far (low 32 bits) */
#define GUEST_PORT_DONE     0x11 /* OUT 32-bit: the checksum is in the parameter block */
#define GUEST_PORT_ERROR    0x12 /* OUT 32-bit: bad parameters (the code is the value) */

#define GUEST_MODE_KEY_VALUE 0   /* hash table under random inserts and updates, plus an append-only log */
#define GUEST_MODE_PAGE_WALK 1   /* `operations` passes of: read every page of the data area, OUT progress,
                                    write one byte to every stride-th page, OUT progress; then stops */

/* Written by the VMM before the first run; the guest fills the results. 8-byte fields only. */
struct guest_parameters {
    unsigned long long magic;
    unsigned long long mode;
    unsigned long long seed;
    unsigned long long operations;     /* key-value: operations to run; page walk: passes */
    unsigned long long table_slots;    /* key-value: 64-byte records, a power of two */
    unsigned long long data_length;    /* bytes from GUEST_DATA_ADDRESS the guest may use and checksums */
    unsigned long long progress_every; /* operations between progress OUTs (0: never) */
    unsigned long long stride_pages;   /* page walk: distance between written pages */
    /* results */
    unsigned long long completed;      /* operations done so far */
    unsigned long long log_entries;    /* entries appended to the log (it wraps) */
    unsigned long long checksum;       /* over the whole data area, at the end */
    unsigned long long status;         /* 0 running, 1 done, 2 refused */
};

#endif
