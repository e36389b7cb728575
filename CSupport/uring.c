// liburing wrappers. liburing 2.3's API is largely static inline, which Swift cannot call: each helper FGBI
// needs gets a one-line wrapper here, named CSupport_<liburing name>, so the transport in Swift has one
// place to look. liburing.h stays out of the public header (it clashes with SwiftGlibc's fd_set).
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>

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
