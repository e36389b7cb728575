// The PAGEMAP_SCAN ioctl (Linux 6.7) on /proc/self/pagemap, with the ABI backported in CSupport.h.
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <sys/ioctl.h>

long CSupport_pagemap_scan(int pagemap_fd, uint64_t start, uint64_t end, uint64_t flags,
                           uint64_t category_mask, uint64_t return_mask,
                           CSupport_page_region *vec, uint64_t vec_len, uint64_t max_pages,
                           uint64_t *walk_end) {
    struct pm_scan_arg arg = {
        .size = sizeof arg,
        .flags = flags,
        .start = start,
        .end = end,
        .vec = (uint64_t)(uintptr_t)vec,
        .vec_len = vec_len,
        .max_pages = max_pages,
        .category_mask = category_mask,
        .return_mask = return_mask,
    };
    long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
    if (n < 0) return -errno;
    *walk_end = arg.walk_end;
    return n;
}
