import CSupport
import FGBI
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Kernel interfaces")
struct KernelTests {
    @Test func systemErrorNamesOperationErrnoAndHint() {
        let error = SystemError(
            operation: "userfaultfd", errno: EPERM, hint: "run as root or set vm.unprivileged_userfaultfd=1")
        #expect(error.errnoName == "EPERM")
        #expect(
            error.description
                == "userfaultfd: EPERM (Operation not permitted): run as root or set vm.unprivileged_userfaultfd=1")
        #expect(SystemError(operation: "open", errno: ENOENT).description == "open: ENOENT (No such file or directory)")
    }

    @Test func missingFeaturesAreNamed() {
        #expect(
            throws: FGBIError.unsupported(
                feature: "UFFD_FEATURE_WP_ASYNC", neededBy: "the uffd-async tracker",
                hint:
                    """
                    it arrived in Linux 6.7; upgrade the kernel or use the scan tracker (`--tracker scan`, \
                    `PrimaryConfiguration.tracker = .scan`)
                    """
            )
        ) {
            try Userfaultfd.check(
                required: [.wpAsync, .wpUnpopulated], available: [.wpUnpopulated, .threadID],
                purpose: "the uffd-async tracker")
        }
        #expect(throws: Never.self) {
            try Userfaultfd.check(required: [.wpUnpopulated], available: [.wpUnpopulated, .wpAsync], purpose: "x")
        }
    }

    @Test func capabilitiesExplainUnavailableTrackers() {
        var capabilities = KernelCapabilities.current
        capabilities.userfaultfd = .success([.pagefaultFlagWP, .wpUnpopulated])
        let reason = capabilities.unavailableReason(for: .uffdAsync)
        #expect(reason?.contains("UFFD_FEATURE_WP_ASYNC") == true)
        #expect(capabilities.unavailableReason(for: .uffdSync) == nil)
        #expect(
            capabilities.unavailableReason(for: .uffdSync, regionKind: .memfd(name: ""))?.contains("WP_HUGETLBFS_SHMEM")
                == true)
        capabilities.userfaultfd = .failure(SystemError(operation: "userfaultfd", errno: EPERM, hint: "run as root"))
        #expect(capabilities.unavailableReason(for: .uffdSync)?.contains("EPERM") == true)
        #expect(capabilities.unavailableReason(for: .scan) == nil)
    }

    @Test func probeNamesTheKernel() {
        #expect(!KernelCapabilities.current.kernelRelease.isEmpty)
    }

    @Test(.requiringUserfaultfd(because: "the features probed are requested from a real descriptor"))
    func probeFindsAUserfaultfdThatAgreesWithItsFeatures() throws {
        let features = try KernelCapabilities.current.userfaultfd.get()
        // Features the probe claims must really be grantable.
        let uffd = try Userfaultfd(required: features, purpose: "test")
        #expect(uffd.features.isSuperset(of: features))
    }

    @Test(.requiring(.uffdAsync, because: "needs UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN"))
    func pagemapScanWithoutRegistrationIsRefusedWithAHint() throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        try memory.prefault()
        let scanner = try PagemapScanner()
        let error = try #require(throws: SystemError.self) {
            try scanner.collectWritten(start: memory.address, end: memory.address + UInt64(memory.length)) { _, _ in }
        }
        #expect(error.operation == "PAGEMAP_SCAN")
        #expect(!error.hint.isEmpty)
    }

    @Test func typedErrorsForBadTrackerNames() throws {
        #expect(throws: FGBIError.self) { try TrackerKind.parse("soft-dirty") }
        #expect(try TrackerKind.parse("uffd-async") == .uffdAsync)
    }
}

@Suite("Block hashing shim")
struct HashingTests {
    @Test func xxh3MatchesTheReferenceVector() {
        // XXH3_64bits of the empty input, from xxHash's own test suite.
        #expect(CSupport_xxh3_64(nil, 0) == 0x2D06_8005_38D3_94C2)
    }

    @Test(arguments: [64, 128, 4096])
    func blockLoopMatchesSingleCalls(blockSize: Int) {
        var random = SeededRandom(seed: UInt64(blockSize))
        let count = 37
        let bytes = (0..<(blockSize * count)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        var hashes = [UInt64](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            hashes.withUnsafeMutableBufferPointer {
                CSupport_hash_blocks(raw.baseAddress, blockSize, count, $0.baseAddress)
            }
            for i in 0..<count {
                #expect(hashes[i] == CSupport_xxh3_64(raw.baseAddress! + i * blockSize, blockSize))
            }
        }
    }

    @Test(arguments: [64, 128, 4096])
    func pageRehashReportsChangedBlocksAndOldHashes(blockSize: Int) {
        var random = SeededRandom(seed: UInt64(blockSize) + 1)
        let pageSize = 4096
        let blocks = pageSize / blockSize
        var page = (0..<pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        var hashes = [UInt64](repeating: 0, count: blocks)
        page.withUnsafeBytes { raw in
            hashes.withUnsafeMutableBufferPointer {
                CSupport_hash_blocks(raw.baseAddress, blockSize, blocks, $0.baseAddress)
            }
        }
        let before = hashes
        page[5] ^= 0xFF
        page[pageSize - 1] ^= 0x01
        var previous = [UInt64](repeating: 0, count: 64)
        let mask = page.withUnsafeBytes { raw in
            hashes.withUnsafeMutableBufferPointer { current in
                previous.withUnsafeMutableBufferPointer {
                    CSupport_rehash_page(raw.baseAddress, blockSize, blocks, current.baseAddress, $0.baseAddress)
                }
            }
        }
        #expect(mask == (UInt64(1) | UInt64(1) << UInt64(blocks - 1)))
        #expect(Array(previous.prefix(blocks)) == before)
        for i in 0..<blocks {
            page.withUnsafeBytes { #expect(hashes[i] == CSupport_xxh3_64($0.baseAddress! + i * blockSize, blockSize)) }
        }
    }
}
