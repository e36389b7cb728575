// liburing wrappers. liburing 2.3's API is largely static inline, which Swift cannot call: each helper FGBI
// needs gets a one-line wrapper here, named CSupport_<liburing name>, so the transport in Swift has one
// place to look. liburing.h stays out of the public header (it clashes with SwiftGlibc's fd_set).
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(IORING_OP_SENDMSG == 9, "IORING_OP_SENDMSG mirror is wrong");
_Static_assert(IORING_OP_SEND == 26, "IORING_OP_SEND mirror is wrong");
_Static_assert(IORING_OP_SEND_ZC == 47, "IORING_OP_SEND_ZC mirror is wrong");
_Static_assert(IORING_OP_SENDMSG_ZC == 48, "IORING_OP_SENDMSG_ZC mirror is wrong");

int CSupport_io_uring_opcode_supported(int opcode) {
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc < 0) return rc;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    if (probe == NULL) {
        io_uring_queue_exit(&ring);
        return -ENOMEM;
    }
    int supported = io_uring_opcode_supported(probe, opcode) ? 1 : 0;
    io_uring_free_probe(probe);
    io_uring_queue_exit(&ring);
    return supported;
}

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
_Static_assert(IORING_CQE_F_MORE == (1U << 1), "IORING_CQE_F_MORE mirror is wrong");
_Static_assert(IORING_CQE_F_NOTIF == (1U << 3), "IORING_CQE_F_NOTIF mirror is wrong");

struct io_uring *CSupport_io_uring_new(unsigned entries, int *error) {
    struct io_uring *ring = calloc(1, sizeof *ring);
    if (ring == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init(entries, ring, 0);
    if (rc < 0) {
        free(ring);
        *error = -rc;
        return NULL;
    }
    return ring;
}

void CSupport_io_uring_delete(struct io_uring *ring) {
    io_uring_queue_exit(ring);
    free(ring);
}

int CSupport_io_uring_prep_send(struct io_uring *ring, int fd, const void *buffer, size_t length, int flags,
                                uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_send(sqe, fd, buffer, length, flags);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int CSupport_io_uring_prep_send_zc(struct io_uring *ring, int fd, const void *buffer, size_t length, int flags,
                                   uint16_t zc_flags, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_send_zc(sqe, fd, buffer, length, flags, zc_flags);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int CSupport_io_uring_prep_sendmsg(struct io_uring *ring, int fd, const struct msghdr *message, int flags,
                                   uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_sendmsg(sqe, fd, message, (unsigned)flags);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int CSupport_io_uring_prep_sendmsg_zc(struct io_uring *ring, int fd, const struct msghdr *message, int flags,
                                      uint16_t zc_flags, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_sendmsg_zc(sqe, fd, message, (unsigned)flags);
    // liburing 2.3's helper takes no zero-copy flags; SEND_ZC and SENDMSG_ZC read them from the same field.
    sqe->ioprio = zc_flags;
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int CSupport_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr) {
    return io_uring_submit_and_wait(ring, wait_nr);
}

int CSupport_io_uring_submit(struct io_uring *ring) {
    return io_uring_submit(ring);
}

int CSupport_io_uring_wait_cqe(struct io_uring *ring, uint64_t *user_data, int32_t *result, uint32_t *flags) {
    struct io_uring_cqe *cqe;
    int rc = io_uring_wait_cqe(ring, &cqe);
    if (rc < 0) return rc;
    *user_data = io_uring_cqe_get_data64(cqe);
    *result = cqe->res;
    *flags = cqe->flags;
    io_uring_cqe_seen(ring, cqe);
    return 0;
}
