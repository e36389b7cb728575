// CKVM: the KVM ioctls of the example VMM (Sources/FGBIExamples/KVM), apart from CSupport so that only the
// KVM example links them. Each wrapper returns what it says, or -errno on failure.
#ifndef CKVM_H
#define CKVM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __linux__

// One wrapper per ioctl the example VMM needs, plus accessors for the union fields of `struct kvm_run` that
// Swift cannot reach. `struct kvm_regs` and `struct kvm_sregs` come from <linux/kvm.h> as plain C structs.

#include <linux/kvm.h>

/// A snapshot of the vCPU registers the example VMM saves and restores (general purpose and special).
typedef struct kvm_regs CKVM_kvm_regs;
typedef struct kvm_sregs CKVM_kvm_sregs;
typedef struct kvm_run CKVM_kvm_run_state;
typedef struct kvm_dirty_gfn CKVM_kvm_dirty_gfn;

_Static_assert(sizeof(struct kvm_dirty_gfn) == 16, "kvm_dirty_gfn layout must match the kernel's");

/// Opens /dev/kvm read-write. Returns the fd, or -errno.
int CKVM_kvm_open(void);
/// KVM_GET_API_VERSION (12 on every kernel since 2.6.22). Returns the version, or -errno.
int CKVM_kvm_api_version(int kvm);
/// KVM_CHECK_EXTENSION on the system or a VM fd. Returns the capability's value (0 when absent), or -errno.
int CKVM_kvm_check_extension(int fd, int capability);
/// KVM_CREATE_VM with the default machine type. Returns the VM fd, or -errno.
int CKVM_kvm_create_vm(int kvm);
/// KVM_GET_VCPU_MMAP_SIZE. Returns the size of the kvm_run mapping, or -errno.
int CKVM_kvm_vcpu_mmap_size(int kvm);
/// KVM_GET_SUPPORTED_CPUID on `kvm` copied into KVM_SET_CPUID2 on `vcpu`. Returns 0, or -errno.
int CKVM_kvm_set_supported_cpuid(int kvm, int vcpu);
/// KVM_SET_USER_MEMORY_REGION. `flags` may hold KVM_MEM_LOG_DIRTY_PAGES. Returns 0, or -errno.
int CKVM_kvm_set_user_memory_region(int vm, uint32_t slot, uint32_t flags, uint64_t guest_physical,
                                        uint64_t size, void *host);
/// KVM_CREATE_VCPU. Returns the vCPU fd, or -errno.
int CKVM_kvm_create_vcpu(int vm, int id);
/// Maps the vCPU's kvm_run (`size` from CKVM_kvm_vcpu_mmap_size). Returns 0 with `*run` set, or -errno.
int CKVM_kvm_map_run(int vcpu, size_t size, CKVM_kvm_run_state **run);
/// Unmaps a mapping made by CKVM_kvm_map_run or CKVM_kvm_map_dirty_ring. Returns 0, or -errno.
int CKVM_kvm_unmap(void *address, size_t size);
/// KVM_GET_REGS / KVM_SET_REGS / KVM_GET_SREGS / KVM_SET_SREGS. Return 0, or -errno.
int CKVM_kvm_get_regs(int vcpu, CKVM_kvm_regs *regs);
int CKVM_kvm_set_regs(int vcpu, const CKVM_kvm_regs *regs);
int CKVM_kvm_get_sregs(int vcpu, CKVM_kvm_sregs *sregs);
int CKVM_kvm_set_sregs(int vcpu, const CKVM_kvm_sregs *sregs);
/// KVM_RUN. Returns 0 with the exit in kvm_run, or -errno (-EINTR when a signal or immediate_exit stopped it).
int CKVM_kvm_run(int vcpu);
/// KVM_GET_DIRTY_LOG for `slot` into `bitmap` (one bit per page of the slot, 64-bit aligned). Returns 0, or -errno.
int CKVM_kvm_get_dirty_log(int vm, uint32_t slot, uint64_t *bitmap);
/// KVM_ENABLE_CAP(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) with a ring of `entries` per vCPU (a power of two);
/// before any KVM_CREATE_VCPU. Returns 0, or -errno.
int CKVM_kvm_enable_dirty_ring(int vm, uint32_t entries);
/// Maps a vCPU's dirty ring (at page offset KVM_DIRTY_LOG_PAGE_OFFSET). Returns 0 with `*ring` set, or -errno.
int CKVM_kvm_map_dirty_ring(int vcpu, uint32_t entries, CKVM_kvm_dirty_gfn **ring);
/// Harvests a dirty ring from `*fetch_index`: sets bit `offset` in `bitmap` for each entry of `slot`
/// (`bitmap_pages` bits) and marks the entry for reset. Returns the number of entries harvested.
/// Follow with CKVM_kvm_reset_dirty_rings.
long CKVM_kvm_harvest_dirty_ring(CKVM_kvm_dirty_gfn *ring, uint32_t entries, uint32_t *fetch_index,
                                     uint32_t slot, uint64_t *bitmap, uint64_t bitmap_pages);
/// KVM_RESET_DIRTY_RINGS: re-protects the pages of harvested entries. Returns the count reset, or -errno.
int CKVM_kvm_reset_dirty_rings(int vm);

/// kvm_run accessors: the exit reason, the KVM_EXIT_IO fields the example reads, and immediate_exit.
static inline uint32_t CKVM_kvm_run_exit_reason(const CKVM_kvm_run_state *run) { return run->exit_reason; }
static inline uint8_t CKVM_kvm_run_io_direction(const CKVM_kvm_run_state *run) { return run->io.direction; }
static inline uint16_t CKVM_kvm_run_io_port(const CKVM_kvm_run_state *run) { return run->io.port; }
/// The first `size` bytes of an IO exit's data, little-endian (OUT: what the guest wrote).
static inline uint32_t CKVM_kvm_run_io_value(const CKVM_kvm_run_state *run) {
    uint32_t value = 0;
    __builtin_memcpy(&value, (const uint8_t *)run + run->io.data_offset, run->io.size <= 4 ? run->io.size : 4);
    return value;
}
static inline uint64_t CKVM_kvm_run_fail_entry_reason(const CKVM_kvm_run_state *run) {
    return run->fail_entry.hardware_entry_failure_reason;
}
static inline uint32_t CKVM_kvm_run_internal_suberror(const CKVM_kvm_run_state *run) { return run->internal.suberror; }
/// Sets kvm_run.immediate_exit with a release store, so a vCPU thread about to enter KVM_RUN sees it.
static inline void CKVM_kvm_run_set_immediate_exit(CKVM_kvm_run_state *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_RELEASE);
}

/// Installs a handler that does nothing for `signal`, without SA_RESTART, so the signal interrupts KVM_RUN
/// with EINTR. Returns 0, or -errno.
int CKVM_install_noop_signal_handler(int signal);

#endif // __linux__

#endif // CKVM_H
