// System calls Swift cannot reach through Glibc's module: memfd_create, newer madvise advice, thread ids
// and names, another process's memory (process_vm_readv), errno names.
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

_Static_assert(CSupport_MFD_CLOEXEC == MFD_CLOEXEC, "MFD_CLOEXEC mirror is wrong");

int CSupport_memfd_create(const char *name, unsigned int flags) {
    int fd = memfd_create(name, flags);
    return fd < 0 ? -errno : fd;
}

int CSupport_madvise_populate_write(void *address, size_t length) {
    return madvise(address, length, MADV_POPULATE_WRITE) != 0 ? -errno : 0;
}

int CSupport_madvise_nohugepage(void *address, size_t length) {
    return madvise(address, length, MADV_NOHUGEPAGE) != 0 ? -errno : 0;
}

int CSupport_madvise_hugepage(void *address, size_t length) {
    return madvise(address, length, MADV_HUGEPAGE) != 0 ? -errno : 0;
}

void CSupport_touch_pages_write(void *base, size_t length, size_t page_size) {
    volatile unsigned char *p = base;
    for (size_t off = 0; off < length; off += page_size) p[off] = p[off];
}

int CSupport_set_thread_affinity(uint64_t mask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = 0; cpu < 64; cpu++) {
        if (mask & (1ULL << cpu)) CPU_SET(cpu, &set);
    }
    return sched_setaffinity(0, sizeof set, &set) != 0 ? -errno : 0;
}

int CSupport_raise_thread_nice(int increment) {
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int current = getpriority(PRIO_PROCESS, tid);
    if (current == -1 && errno != 0) return -errno;
    int target = current + increment > 19 ? 19 : current + increment;
    return setpriority(PRIO_PROCESS, tid, target) != 0 ? -errno : 0;
}

int CSupport_current_cpu(void) {
    int cpu = sched_getcpu();
    return cpu < 0 ? -errno : cpu;
}

int CSupport_set_thread_realtime(int priority) {
    struct sched_param parameter = { .sched_priority = priority };
    int rc = pthread_setschedparam(pthread_self(), priority > 0 ? SCHED_FIFO : SCHED_OTHER, &parameter);
    return rc != 0 ? -rc : 0;
}

void CSupport_set_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

_Static_assert(CSupport_CLONE_NEWNET == CLONE_NEWNET, "CLONE_NEWNET mirror is wrong");

int CSupport_setns(int fd, int nstype) {
    return setns(fd, nstype) != 0 ? -errno : 0;
}

long CSupport_process_vm_readv(int32_t pid, const struct iovec *local, unsigned long local_count,
                               const struct iovec *remote, unsigned long remote_count) {
    ssize_t copied = process_vm_readv(pid, local, local_count, remote, remote_count, 0);
    return copied < 0 ? -errno : (long)copied;
}

const char *CSupport_errno_name(int error) {
    return strerrorname_np(error);
}
