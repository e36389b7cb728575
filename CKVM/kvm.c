// KVM ioctls for the example VMM (Sources/FGBIExamples/KVM), one wrapper each, -errno on failure.
#define _GNU_SOURCE
#include "CKVM.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int result(int value) { return value < 0 ? -errno : value; }

int CKVM_kvm_open(void) { return result(open("/dev/kvm", O_RDWR | O_CLOEXEC)); }

int CKVM_kvm_api_version(int kvm) { return result(ioctl(kvm, KVM_GET_API_VERSION, 0)); }

int CKVM_kvm_check_extension(int fd, int capability) {
    return result(ioctl(fd, KVM_CHECK_EXTENSION, (unsigned long)capability));
}

int CKVM_kvm_create_vm(int kvm) { return result(ioctl(kvm, KVM_CREATE_VM, 0UL)); }

int CKVM_kvm_vcpu_mmap_size(int kvm) { return result(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)); }

int CKVM_kvm_set_supported_cpuid(int kvm, int vcpu) {
    enum { capacity = 256 };
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + capacity * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid) return -ENOMEM;
    cpuid->nent = capacity;
    int status = result(ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid));
    if (status >= 0) status = result(ioctl(vcpu, KVM_SET_CPUID2, cpuid));
    free(cpuid);
    return status < 0 ? status : 0;
}

int CKVM_kvm_set_user_memory_region(int vm, uint32_t slot, uint32_t flags, uint64_t guest_physical,
                                        uint64_t size, void *host) {
    struct kvm_userspace_memory_region region = {
        .slot = slot, .flags = flags, .guest_phys_addr = guest_physical, .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    return result(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region));
}

int CKVM_kvm_create_vcpu(int vm, int id) { return result(ioctl(vm, KVM_CREATE_VCPU, (unsigned long)id)); }

int CKVM_kvm_map_run(int vcpu, size_t size, CKVM_kvm_run_state **run) {
    void *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (mapping == MAP_FAILED) return -errno;
    *run = mapping;
    return 0;
}

int CKVM_kvm_unmap(void *address, size_t size) { return result(munmap(address, size)); }

int CKVM_kvm_get_regs(int vcpu, CKVM_kvm_regs *regs) { return result(ioctl(vcpu, KVM_GET_REGS, regs)); }
int CKVM_kvm_set_regs(int vcpu, const CKVM_kvm_regs *regs) { return result(ioctl(vcpu, KVM_SET_REGS, regs)); }
int CKVM_kvm_get_sregs(int vcpu, CKVM_kvm_sregs *sregs) { return result(ioctl(vcpu, KVM_GET_SREGS, sregs)); }
int CKVM_kvm_set_sregs(int vcpu, const CKVM_kvm_sregs *sregs) {
    return result(ioctl(vcpu, KVM_SET_SREGS, sregs));
}

int CKVM_kvm_run(int vcpu) { return result(ioctl(vcpu, KVM_RUN, 0)); }

int CKVM_kvm_get_dirty_log(int vm, uint32_t slot, uint64_t *bitmap) {
    struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };
    return result(ioctl(vm, KVM_GET_DIRTY_LOG, &log));
}

int CKVM_kvm_enable_dirty_ring(int vm, uint32_t entries) {
    struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL };
    cap.args[0] = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
    return result(ioctl(vm, KVM_ENABLE_CAP, &cap));
}

int CKVM_kvm_map_dirty_ring(int vcpu, uint32_t entries, CKVM_kvm_dirty_gfn **ring) {
    size_t size = (size_t)entries * sizeof(struct kvm_dirty_gfn);
    void *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu,
                         (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
    if (mapping == MAP_FAILED) return -errno;
    *ring = mapping;
    return 0;
}

long CKVM_kvm_harvest_dirty_ring(CKVM_kvm_dirty_gfn *ring, uint32_t entries, uint32_t *fetch_index,
                                     uint32_t slot, uint64_t *bitmap, uint64_t bitmap_pages) {
    long harvested = 0;
    uint32_t index = *fetch_index;
    for (;;) {
        struct kvm_dirty_gfn *entry = &ring[index & (entries - 1)];
        // Acquire: the entry's slot and offset are valid once its DIRTY flag is seen (ACQ_REL ring).
        if (!(__atomic_load_n(&entry->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY)) break;
        if (entry->slot == slot && entry->offset < bitmap_pages)
            bitmap[entry->offset >> 6] |= 1ULL << (entry->offset & 63);
        __atomic_store_n(&entry->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        index++;
        harvested++;
    }
    *fetch_index = index;
    return harvested;
}

int CKVM_kvm_reset_dirty_rings(int vm) { return result(ioctl(vm, KVM_RESET_DIRTY_RINGS, 0)); }

static void noop_handler(int signal) { (void)signal; }

int CKVM_install_noop_signal_handler(int signal) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = noop_handler;  // no SA_RESTART: KVM_RUN returns EINTR
    sigemptyset(&action.sa_mask);
    return result(sigaction(signal, &action, NULL));
}
