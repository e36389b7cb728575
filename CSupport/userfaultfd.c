// userfaultfd(2) wrappers: creation, the API handshake, registration, write-protection and fault reads.
// Each is the bare kernel call with -errno returned; which features to ask for and what to do on failure is
// decided in Swift (Sources/FGBI/Kernel/Userfaultfd.swift).
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

int CSupport_userfaultfd_syscall(int flags) {
    long fd = syscall(SYS_userfaultfd, flags);
    return fd < 0 ? -errno : (int)fd;
}

int CSupport_userfaultfd_device(int flags) {
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) return -errno;
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int saved = errno;
    close(dev);
    return fd < 0 ? -saved : fd;
}

int CSupport_uffdio_api(int fd, uint64_t requested, uint64_t *features, uint64_t *ioctls) {
    struct uffdio_api api = { .api = UFFD_API, .features = requested };
    if (ioctl(fd, UFFDIO_API, &api) != 0) return -errno;
    *features = api.features;
    *ioctls = api.ioctls;
    return 0;
}

int CSupport_uffdio_register(int fd, uint64_t start, uint64_t len, uint64_t mode, uint64_t *ioctls) {
    struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = mode };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) return -errno;
    *ioctls = reg.ioctls;
    return 0;
}

int CSupport_uffdio_unregister(int fd, uint64_t start, uint64_t len) {
    struct uffdio_range range = { .start = start, .len = len };
    return ioctl(fd, UFFDIO_UNREGISTER, &range) != 0 ? -errno : 0;
}

int CSupport_uffdio_writeprotect(int fd, uint64_t start, uint64_t len, int protect, int dont_wake) {
    struct uffdio_writeprotect wp = {
        .range = { .start = start, .len = len },
        .mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) | (dont_wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
    };
    return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0 ? -errno : 0;
}

int CSupport_uffd_read_fault(int fd, uint64_t *address, uint64_t *flags, uint32_t *thread_id) {
    struct uffd_msg msg;
    ssize_t n = read(fd, &msg, sizeof msg);
    if (n < 0) return errno == EAGAIN ? 0 : -errno;
    if (n != sizeof msg) return -EIO;
    if (msg.event != UFFD_EVENT_PAGEFAULT) return 2;
    *address = msg.arg.pagefault.address;
    *flags = msg.arg.pagefault.flags;
    *thread_id = msg.arg.pagefault.feat.ptid;
    return 1;
}
