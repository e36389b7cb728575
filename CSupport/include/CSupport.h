// CSupport: FGBI's thin C shim.
//
// What lives here and nothing more: kernel ABI the distribution's headers lack (PAGEMAP_SCAN, newer
// userfaultfd feature bits), one-line wrappers for ioctls and macros Swift cannot call, wrappers for the
// static-inline parts of xxhash and liburing, and the few hot loops. Every policy decision is in Swift.
//
// Return convention, stated once for the whole shim: a function returning `int` or `long` returns a
// non-negative value on success and `-errno` on failure (as liburing does); it never reads or leaves `errno`
// for the caller to inspect.
#ifndef CSUPPORT_H
#define CSUPPORT_H

#include <stddef.h>
#include <stdint.h>

// General-purpose compressors, called directly from Swift (their APIs are plain functions).
#include <lz4.h>
#include <zstd.h>

#ifdef __linux__
#include <linux/userfaultfd.h>

// MARK: - Kernel ABI backports

// userfaultfd feature bits newer than Debian 12's 6.1 headers.
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

// PAGEMAP_SCAN (Linux 6.7), a backported copy of include/uapi/linux/fs.h for older headers.
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

_Static_assert(sizeof(struct page_region) == 24, "page_region layout must match the kernel's");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg layout must match the kernel's");

/// One run of pages PAGEMAP_SCAN reported, as the kernel returns it: [start, end) in bytes.
typedef struct page_region CSupport_page_region;

// Constants Swift cannot import from function-like or late-defined macros.
static const uint64_t CSupport_UFFD_FEATURE_THREAD_ID = UFFD_FEATURE_THREAD_ID;
static const uint64_t CSupport_UFFD_FEATURE_WP_HUGETLBFS_SHMEM = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
static const uint64_t CSupport_UFFD_FEATURE_WP_UNPOPULATED = UFFD_FEATURE_WP_UNPOPULATED;
static const uint64_t CSupport_UFFD_FEATURE_WP_ASYNC = UFFD_FEATURE_WP_ASYNC;
static const uint64_t CSupport_UFFD_FEATURE_PAGEFAULT_FLAG_WP = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
static const uint64_t CSupport_UFFDIO_REGISTER_MODE_WP = UFFDIO_REGISTER_MODE_WP;
static const uint64_t CSupport_UFFD_PAGEFAULT_FLAG_WP = UFFD_PAGEFAULT_FLAG_WP;
static const uint64_t CSupport_PAGE_IS_WRITTEN = PAGE_IS_WRITTEN;
static const uint64_t CSupport_PM_SCAN_WP_MATCHING = PM_SCAN_WP_MATCHING;
static const uint64_t CSupport_PM_SCAN_CHECK_WPASYNC = PM_SCAN_CHECK_WPASYNC;

// MARK: - userfaultfd

/// Creates a userfaultfd through the userfaultfd(2) system call. Returns the descriptor or -errno.
int CSupport_userfaultfd_syscall(int flags);

/// Creates a userfaultfd through /dev/userfaultfd (Linux 6.1+), the route for users granted that device
/// without CAP_SYS_PTRACE. Returns the descriptor or -errno.
int CSupport_userfaultfd_device(int flags);

/// UFFDIO_API handshake asking for `requested` features. Returns 0 with the kernel's granted features and
/// supported ioctls filled in, or -errno (EINVAL when a requested feature is unknown to this kernel).
int CSupport_uffdio_api(int fd, uint64_t requested, uint64_t *features, uint64_t *ioctls);

/// UFFDIO_REGISTER of [start, start+len) with `mode`. Returns 0 with the range's ioctls filled in, or -errno.
int CSupport_uffdio_register(int fd, uint64_t start, uint64_t len, uint64_t mode, uint64_t *ioctls);

/// UFFDIO_UNREGISTER of [start, start+len). Returns 0 or -errno.
int CSupport_uffdio_unregister(int fd, uint64_t start, uint64_t len);

/// UFFDIO_WRITEPROTECT: protects (`protect` != 0) or unprotects [start, start+len); unprotecting also wakes
/// threads blocked on the range unless `dont_wake`. Returns 0 or -errno.
int CSupport_uffdio_writeprotect(int fd, uint64_t start, uint64_t len, int protect, int dont_wake);

/// Reads one userfaultfd message. Returns 1 with a page fault's address, flags and thread id filled in,
/// 2 for a message that is not a page fault, 0 when none is pending (EAGAIN), or -errno.
int CSupport_uffd_read_fault(int fd, uint64_t *address, uint64_t *flags, uint32_t *thread_id);

// MARK: - PAGEMAP_SCAN

/// One PAGEMAP_SCAN ioctl on `pagemap_fd` (an open /proc/self/pagemap) over [start, end), filling at most
/// `vec_len` regions into `vec`. Returns the number of regions filled, with `*walk_end` set to where the
/// kernel stopped walking, or -errno.
long CSupport_pagemap_scan(int pagemap_fd, uint64_t start, uint64_t end, uint64_t flags,
                           uint64_t category_mask, uint64_t return_mask,
                           CSupport_page_region *vec, uint64_t vec_len, uint64_t max_pages,
                           uint64_t *walk_end);

// MARK: - Memory

/// memfd_create(2). Returns the descriptor or -errno.
int CSupport_memfd_create(const char *name, unsigned int flags);

/// The MFD_CLOEXEC flag for CSupport_memfd_create.
static const unsigned int CSupport_MFD_CLOEXEC = 0x0001U;

/// madvise(2) with MADV_POPULATE_WRITE (Linux 5.14): faults in every page of the range writable without
/// writing it. Returns 0 or -errno (EINVAL on kernels without it).
int CSupport_madvise_populate_write(void *address, size_t length);

/// madvise(2) with MADV_NOHUGEPAGE, so dirtiness stays at 4 KiB granularity. Returns 0 or -errno.
int CSupport_madvise_nohugepage(void *address, size_t length);

/// madvise(2) with MADV_HUGEPAGE: asks for 2 MiB pages (fewer TLB misses on randomly probed tables).
/// Returns 0 or -errno; advice only.
int CSupport_madvise_hugepage(void *address, size_t length);

/// Writes back the first byte of every `page_size` page in [base, base+length) through a volatile access:
/// each page becomes present and writable, its content unchanged. The fallback for MADV_POPULATE_WRITE.
void CSupport_touch_pages_write(void *base, size_t length, size_t page_size);

/// Names the calling thread (at most 15 bytes are kept), as `top -H` and debuggers show it.
void CSupport_set_thread_name(const char *name);

/// Restricts the calling thread to the CPUs whose bits are set in `mask` (CPU 0 is bit 0; CPUs 0-63 only);
/// threads it creates afterwards inherit the set. Returns 0 or -errno (EINVAL: no such CPU online).
int CSupport_set_thread_affinity(uint64_t mask);

/// Raises the calling thread's nice value by `increment` (getpriority/setpriority(2) on its thread id; Linux
/// keeps nice per thread), at most to 19. Returns 0 or -errno.
int CSupport_raise_thread_nice(int increment);

/// The CPU the calling thread runs on now (sched_getcpu(3)), or -errno.
int CSupport_current_cpu(void);

/// Puts the calling thread under SCHED_FIFO at `priority` (1-99), or back under SCHED_OTHER when `priority`
/// is 0 (pthread_setschedparam(3)). Returns 0 or -errno (EPERM: needs CAP_SYS_NICE or RLIMIT_RTPRIO).
int CSupport_set_thread_realtime(int priority);

/// setns(2): moves the calling thread into the namespace `fd` refers to. Returns 0 or -errno.
int CSupport_setns(int fd, int nstype);

/// The network namespace type for CSupport_setns.
static const int CSupport_CLONE_NEWNET = 0x40000000;

/// A scatter-gather element (from <sys/uio.h>, left out so Swift imports it from Glibc).
struct iovec;

/// process_vm_readv(2): copies from process `pid`'s memory at the `remote_count` ranges of `remote` into the
/// `local_count` buffers of `local`, in order, until the first range that cannot be read. Returns the bytes
/// copied (short when a range failed part way) or -errno (ESRCH: no such process; EPERM: no ptrace access;
/// EFAULT: the first range is not mapped).
long CSupport_process_vm_readv(int32_t pid, const struct iovec *local, unsigned long local_count,
                               const struct iovec *remote, unsigned long remote_count);

// MARK: - io_uring (liburing wrappers)

/// sendmsg(2)'s message (from <sys/socket.h>, which this header leaves out so Swift imports it from Glibc).
struct msghdr;

/// The io_uring opcodes FGBI probes for.
static const int CSupport_IORING_OP_SENDMSG = 9;
static const int CSupport_IORING_OP_SEND = 26;
static const int CSupport_IORING_OP_SEND_ZC = 47;
static const int CSupport_IORING_OP_SENDMSG_ZC = 48;

/// An io_uring instance (liburing's `struct io_uring`), opaque to Swift.
struct io_uring;

/// Completion flags and zero-copy reporting bits (newer than liburing 2.3's headers where noted).
static const uint32_t CSupport_IORING_CQE_F_MORE = 1U << 1;
static const uint32_t CSupport_IORING_CQE_F_NOTIF = 1U << 3;
/// SEND_ZC flag asking the notification to report whether the kernel copied the data (Linux 6.2).
static const uint16_t CSupport_IORING_SEND_ZC_REPORT_USAGE = 1U << 3;
/// In a notification's result: the data was copied after all (loopback, veth, ...).
static const uint32_t CSupport_IORING_NOTIF_USAGE_ZC_COPIED = 1U << 31;

/// Creates a ring with `entries` submission slots. Returns it, or NULL with `*error` set to the errno.
struct io_uring *CSupport_io_uring_new(unsigned entries, int *error);

/// Tears a ring down and frees it.
void CSupport_io_uring_delete(struct io_uring *ring);

/// Queues a send (IORING_OP_SEND) of `length` bytes at `buffer` on `fd`, tagged `user_data`.
/// Returns 0, or -EBUSY when the submission queue is full (submit first).
int CSupport_io_uring_prep_send(struct io_uring *ring, int fd, const void *buffer, size_t length, int flags,
                                uint64_t user_data);

/// Queues a zero-copy send (IORING_OP_SEND_ZC). Its completion has IORING_CQE_F_MORE set and a later
/// notification completion (IORING_CQE_F_NOTIF) says when `buffer` may be reused.
/// Returns 0, or -EBUSY when the submission queue is full.
int CSupport_io_uring_prep_send_zc(struct io_uring *ring, int fd, const void *buffer, size_t length, int flags,
                                   uint16_t zc_flags, uint64_t user_data);

/// Queues a sendmsg (IORING_OP_SENDMSG) of `message` on `fd`, tagged `user_data`: every iovec of the message
/// goes out in one operation. `message`, its iovec array and the bytes they point to must stay valid and
/// unchanged until the operation's completion. Returns 0, or -EBUSY when the submission queue is full.
int CSupport_io_uring_prep_sendmsg(struct io_uring *ring, int fd, const struct msghdr *message, int flags,
                                   uint64_t user_data);

/// Queues a zero-copy sendmsg (IORING_OP_SENDMSG_ZC, Linux 6.1) with `zc_flags` (such as
/// CSupport_IORING_SEND_ZC_REPORT_USAGE). As for CSupport_io_uring_prep_send_zc, a completion with
/// IORING_CQE_F_MORE is followed by a notification (IORING_CQE_F_NOTIF); the bytes the iovecs point to may
/// be reused only after it. Returns 0, or -EBUSY when the submission queue is full.
int CSupport_io_uring_prep_sendmsg_zc(struct io_uring *ring, int fd, const struct msghdr *message, int flags,
                                      uint16_t zc_flags, uint64_t user_data);

/// Submits queued entries and waits until at least `wait_nr` completions are ready, in one system call
/// (io_uring_submit_and_wait). Returns how many entries were submitted, or -errno.
int CSupport_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);

/// Submits queued entries (io_uring_submit). Returns how many, or -errno.
int CSupport_io_uring_submit(struct io_uring *ring);

/// Waits for one completion and consumes it (io_uring_wait_cqe + io_uring_cqe_seen).
/// Returns 0 with its user data, result and flags filled in, or -errno.
int CSupport_io_uring_wait_cqe(struct io_uring *ring, uint64_t *user_data, int32_t *result, uint32_t *flags);

/// Asks the kernel (io_uring_get_probe) whether `opcode` is supported. Returns 1 if it is, 0 if not, or
/// -errno when no io_uring can be set up at all (ENOSYS, or EPERM under io_uring_disabled).
int CSupport_io_uring_opcode_supported(int opcode);

#endif // __linux__

// MARK: - Copying

/// Copies `length` bytes with non-temporal (streaming) stores when the CPU has AVX2, `destination` is 32-byte
/// aligned and `length` a multiple of 128; with memcpy otherwise. Streaming stores are weakly ordered: call
/// CSupport_copy_streaming_fence before another thread may read the copies.
void CSupport_copy_streaming(void *destination, const void *source, size_t length);

/// Orders earlier streaming stores before later stores (sfence).
void CSupport_copy_streaming_fence(void);

// MARK: - Hashing

/// XXH3 64-bit of `length` bytes (seed 0). Inlined in optimized builds of the shim.
uint64_t CSupport_xxh3_64(const void *data, size_t length);

/// The hot loop: hashes `count` consecutive blocks of `block_size` bytes starting at `base` into `out[0..count)`.
void CSupport_hash_blocks(const void *base, size_t block_size, size_t count, uint64_t *out);

/// Rehashes the `blocks` (at most 64) blocks of `block_size` bytes of one page against `hashes`: copies the
/// old hashes to `previous[0..blocks)`, stores the new ones in `hashes`, and returns a mask with bit i set
/// when block i's hash changed. 64-byte blocks are hashed eight at a time with AVX-512 where the CPU has it
/// (the same XXH3 values).
uint64_t CSupport_rehash_page(const void *page, size_t block_size, size_t blocks, uint64_t *hashes, uint64_t *previous);

/// A mask with bit i set where `a[i]` differs from `b[i]` (or, when `b` is NULL, from `value`), for `count` (at
/// most 64) hashes: which of a page's blocks a page copy or a zero page changes. Eight at a time with AVX-512
/// where the CPU has it.
uint64_t CSupport_hash_mismatch_mask(const uint64_t *a, const uint64_t *b, uint64_t value, size_t count);

/// Whether `length` bytes at `data` are all zero, stopping at the first 64 bytes that are not: a whole page
/// that is not zeros shows it in its first line. Inline: it runs once per changed block.
static inline int CSupport_is_zero(const void *data, size_t length) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    for (; i + 64 <= length; i += 64) {
        uint64_t words[8];
        __builtin_memcpy(words, p + i, 64);
        if ((words[0] | words[1] | words[2] | words[3] | words[4] | words[5] | words[6] | words[7]) != 0) return 0;
    }
    uint64_t acc = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t word;
        __builtin_memcpy(&word, p + i, 8);
        acc |= word;
    }
    for (; i < length; i++) acc |= p[i];
    return acc == 0;
}

/// Asks the CPU to start loading the cache line at `address`: hash-table probes issue it a few blocks
/// ahead, so the memory latency of one lookup overlaps the work on the blocks before it.
static inline void CSupport_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// ``CSupport_prefetch`` for every cache line of `length` bytes from `address`: a page about to be compared
/// whole, whose first lines the hardware prefetcher would otherwise wait for.
static inline void CSupport_prefetch_span(const void *address, size_t length) {
    const char *p = (const char *)address;
    for (size_t offset = 0; offset < length; offset += 64) __builtin_prefetch(p + offset, 0, 3);
}

// MARK: - Run-length difference encoding (XBZRLE's format)
//
// The encoding QEMU's XBZRLE uses: a sequence of (unchanged-run length, changed-run length, changed bytes),
// lengths as ULEB128, describing `new` against `old` of the same length. A trailing unchanged run is
// implied. FGBI uses it for whole pages (the `xbzrle` mode) and for single blocks (the `fgbi` mode).

/// Encodes `new` against `old` (both `length` bytes) into `out` (`capacity` bytes plus 16 to spare). Returns
/// the encoded length, or -1 when it would exceed `capacity` (the caller then sends the bytes as they are).
/// Works 64 bytes at a time on equality masks (SSE2 on x86-64, a portable loop elsewhere).
long CSupport_diff_encode(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out, size_t capacity);

/// The sparse form of `length` bytes (a multiple of 64): a mask of length/8 bytes, bit i set when byte i is
/// not zero, then the non-zero bytes in order. What the `fgbi` mode sends for a block with no usable previous
/// content when it is shorter than the bytes (words of small values and pointers: their high bytes are
/// zero). Writes into `out` (`capacity` + 8 bytes) and returns the encoded length, or 0 (after writing
/// only the mask) when that would exceed `capacity` (at least length/8).
size_t CSupport_sparse_encode(const uint8_t *bytes, size_t length, uint8_t *out, size_t capacity);

/// One changed 64-byte block of the `fgbi` mode in the shortest of its forms, written to `out` (at least
/// 74 bytes) as an operation code and its operand; returns the bytes written and sets `form` (0 literal,
/// 1 difference, 2 sparse). The rule, byte for byte that of the separate encoders: with a `base`, a
/// difference (ULEB128 length, then CSupport_diff_encode's output) of at most 60 bytes, unless
/// `allow_sparse` and the difference is over 9 bytes and the sparse form is no longer; else, with
/// `allow_sparse`, the sparse form when at most 60 bytes; else the literal.
long CSupport_block64_encode(const uint8_t *base, const uint8_t *bytes, int allow_sparse, uint8_t diff_code,
                             uint8_t sparse_code, uint8_t literal_code, uint8_t *out, int *form);

/// Blocks of one run per form, added to by CSupport_block64_encode_run.
typedef struct {
    uint64_t zero;
    uint64_t sparse;
    uint64_t literal;
} CSupport_block_forms;

/// The content-defined anchors of `length` bytes (8 to 65,536): the offsets whose 4 bytes, read as a
/// little-endian word and multiplied by 0x9E3779B1 (mod 2^32), have their top `top_bits` bits clear (1 to 31),
/// and whose 8 bytes are not all zero. For each, in order, writes the offset to `offsets` and to `entries` a
/// table entry from the 8 bytes multiplied by 0x9E3779B97F4A7C15: the product's top 32 bits, above its bits 8
/// on masked by `table_mask` (below 2^32). Both hold `length - 7` items. Returns the number of anchors. The
/// same anchors at every level of CSupport_sparse_select_level (AVX2 or portable).
size_t CSupport_block_anchors(const uint8_t *bytes, size_t length, unsigned top_bits, uint64_t table_mask,
                              uint16_t *offsets, uint64_t *entries);

/// For the changed 64-byte blocks of one page (at most 64, in order): bit k set when block k needs the
/// content index, because the index holds its location's previous content (bit `locations[k] & 63` of
/// `held`, the page's word of per-location bits) or because it is in the index's sample
/// (`hashes[k] & sample_mask` zero) and its hash is not the zero block's.
uint64_t CSupport_block64_index_mask(const uint64_t *hashes, const uint64_t *locations, size_t count, uint64_t held,
                                     uint64_t sample_mask, uint64_t zero_hash);

/// Encodes the blocks of a run (`bytes`, 64 each, with their new `hashes`) from the first up to the first
/// whose bit is set in `need` (CSupport_block64_index_mask), or the end: a block of zeros (checked only when
/// its hash is `zero_hash`) as `zero_code`, any other as CSupport_block64_encode writes it with no base.
/// Also stops before a block whose hash is the zero block's yet whose bytes are not zero, when it is in the
/// sample. Writes at most 74 bytes per block to `out`, sets `written`, adds to `forms`; returns the blocks
/// encoded. The same bytes, block for block, as the `fgbi` encoder writes for blocks that need no index.
size_t CSupport_block64_encode_run(const uint8_t *bytes, const uint64_t *hashes, size_t count, uint64_t need,
                                   uint64_t sample_mask, uint64_t zero_hash, int allow_sparse, uint8_t zero_code,
                                   uint8_t sparse_code, uint8_t literal_code, uint8_t *out, size_t *written,
                                   CSupport_block_forms *forms);

/// The instruction sets the sparse form (both ways) and the 64-byte block forms can run on, in order.
enum {
    CSUPPORT_SIMD_PORTABLE = 0,
    /// SSE2 masks, SSSE3 shuffles.
    CSUPPORT_SIMD_SSSE3 = 1,
    /// AVX2 masks, SSSE3 shuffles.
    CSUPPORT_SIMD_AVX2 = 2,
    /// AVX-512 with VBMI2: byte compress and expand.
    CSUPPORT_SIMD_AVX512 = 3,
};

/// The best of those levels this CPU has.
int CSupport_sparse_best_level(void);

/// For tests: makes the sparse form, CSupport_block64_encode and CSupport_block64_encode_run use level `level`
/// (capped at the best the CPU has). Returns the level in use before. Not thread-safe: call with no sparse
/// work running.
int CSupport_sparse_select_level(int level);

/// For tests: makes CSupport_rehash_page hash 64-byte blocks one at a time (1), or eight at a time with
/// AVX-512 where the CPU has it (0). Returns whether the one-at-a-time loop was in use. Not thread-safe.
int CSupport_block_hash_select_portable(int portable);

/// A mask with bit i set where entry i of `entries` (`count` of them, at most 64) is live: the 64-bit words of
/// the content index's table (`ContentIndex.Entry`: the key's fragment in the low 32 bits, the tag in the high
/// 32), live when the tag's slot + 1 (its low 29 bits) lies in 1...`slot_count` and its lap (the top 3) is
/// `lap` mod 8 for a slot + 1 at or below `hand`, the lap before for the others. Eight at a time with AVX-512
/// where the CPU has it; the portable loop has no branch per entry.
uint64_t CSupport_index_live_mask(const uint64_t *entries, size_t count, uint64_t hand, uint32_t lap,
                                  uint64_t slot_count);

/// For tests: makes CSupport_index_live_mask use its portable loop (1), or AVX-512 where the CPU has it (0).
/// Returns whether the portable loop was in use. Not thread-safe.
int CSupport_index_select_portable(int portable);

/// Rebuilds `length` bytes from their sparse form. Returns 0, or -1 when the encoding is not exactly a mask
/// and as many bytes as it has bits set.
long CSupport_sparse_decode(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length);

/// Decodes a run of blocks of `block_length` bytes (a multiple of 64) given in sparse form, as a delta's blocks
/// record holds them: the first form at `forms`, each later one after a byte `sparse_code` (a block whose
/// operation byte is another code, or the end of the `available` bytes where an operation byte would be, ends
/// the run), at most `most` blocks, into `target` one after another. Reads nothing past `available`. Returns
/// the blocks decoded (at least 1) with `*consumed` the bytes read, or -1 when a form runs past `available`.
long CSupport_sparse_decode_blocks(const uint8_t *forms, size_t available, size_t most, size_t block_length,
                                   uint8_t sparse_code, uint8_t *target, size_t *consumed);

/// The reference encoder, byte by byte (for tests: CSupport_diff_encode must give exactly its output).
long CSupport_diff_encode_bytewise(const uint8_t *old, const uint8_t *new_bytes, size_t length, uint8_t *out,
                                   size_t capacity);

/// Applies an encoding made by CSupport_diff_encode to `target` (`length` bytes holding the old content).
/// Returns 0, or -1 when the encoding is malformed or reaches past `length`; `target` may then be partly
/// written, so decode into a staging copy.
long CSupport_diff_decode(const uint8_t *encoded, size_t encoded_length, uint8_t *target, size_t length);

// MARK: - Errors

/// The symbolic name of an errno value ("EPERM"), or NULL for an unknown value.
const char *CSupport_errno_name(int error);

// MARK: - Cryptography (crypto.c, OpenSSL libcrypto): 0 on success, -1 on failure.

/// HMAC-SHA256 with `key` over the concatenation of `count` parts.
int CSupport_hmac_sha256(const void *key, size_t key_length, const void *const *parts, const size_t *lengths,
                         size_t count, uint8_t out[32]);
/// HKDF-SHA256 (RFC 5869), extract and expand, `out_length` bytes.
int CSupport_hkdf_sha256(const void *key, size_t key_length, const void *salt, size_t salt_length, const void *info,
                         size_t info_length, uint8_t *out, size_t out_length);
int CSupport_sha256(const void *data, size_t length, uint8_t out[32]);
/// ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce: `out` gets `length` bytes of ciphertext.
int CSupport_chacha20_poly1305_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_length,
                                    const void *in, size_t length, uint8_t *out, uint8_t tag[16]);
/// The ChaCha20-Poly1305 tag of an empty plaintext whose associated data is the concatenation of `count` parts:
/// a Poly1305 authenticator under a one-time key from `key` and `nonce`.
int CSupport_chacha20_poly1305_tag(const uint8_t key[32], const uint8_t nonce[12], const void *const *parts,
                                   const size_t *lengths, size_t count, uint8_t tag[16]);
/// Returns -1 when the tag does not authenticate the ciphertext and associated data.
int CSupport_chacha20_poly1305_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_length,
                                    const void *in, size_t length, const uint8_t tag[16], uint8_t *out);
/// 1 when the buffers are equal, compared in time independent of their contents.
int CSupport_constant_time_equal(const void *a, const void *b, size_t length);
int CSupport_random_bytes(void *out, size_t length);

#endif // CSUPPORT_H
