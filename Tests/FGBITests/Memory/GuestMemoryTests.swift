import FGBI
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("GuestMemory")
struct GuestMemoryTests {
    @Test func anonymousRegionIsZeroedAndWritable() throws {
        let memory = try GuestMemory.anonymous(length: 16 * GuestMemory.pageSize)
        #expect(memory.kind == .anonymous && memory.pageCount == 16)
        #expect(memory.bytes.allSatisfy { $0 == 0 })
        memory.page(15).storeBytes(of: 0xDEAD_BEEF, as: UInt64.self)
        #expect(memory.page(15).load(as: UInt64.self) == 0xDEAD_BEEF)
    }

    @Test func memfdRegionCanBeMappedTwice() throws {
        let memory = try GuestMemory.memfd(length: 8 * GuestMemory.pageSize, name: "fgbi-test")
        let fd = try #require(memory.fileDescriptor)
        let other = try #require(mmap(nil, memory.length, PROT_READ, MAP_SHARED, fd, 0))
        #expect(other != MAP_FAILED)
        defer { munmap(other, memory.length) }
        memory.page(3).storeBytes(of: 42, toByteOffset: 8, as: UInt64.self)
        #expect(other.load(fromByteOffset: 3 * GuestMemory.pageSize + 8, as: UInt64.self) == 42)
    }

    @Test func fileRegionOutlivesItsMappingAndRefusesAnotherRegionsFile() throws {
        let path = "/dev/shm/fgbi-test-file-\(getpid())"
        unlink(path)
        defer { unlink(path) }
        let length = 8 * GuestMemory.pageSize
        do {
            let memory = try GuestMemory.file(path: path, length: length)
            #expect(memory.kind == .file(path: path) && memory.kind.isSharedFile)
            #expect(memory.bytes.allSatisfy { $0 == 0 }, "a new file is zero-filled")
            memory.page(5).storeBytes(of: 0xFEED, toByteOffset: 16, as: UInt64.self)
        }
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o600, "created private to its owner")
        let again = try GuestMemory.file(path: path, length: length)
        #expect(again.page(5).load(fromByteOffset: 16, as: UInt64.self) == 0xFEED, "the content stayed in the file")
        #expect(throws: FGBIError.self, "a file longer than the region is another region's") {
            try GuestMemory.file(path: path, length: length / 2)
        }
        let link = path + "-link"
        unlink(link)
        defer { unlink(link) }
        #expect(symlink(path, link) == 0)
        #expect(throws: SystemError.self, "a symbolic link is refused") {
            try GuestMemory.file(path: link, length: length)
        }
        #expect(chmod(path, 0o644) == 0)
        #expect(throws: FGBIError.self, "a memory file others can read is refused") {
            try GuestMemory.file(path: path, length: length)
        }
    }

    @Test func adoptedRegionIsLeftMapped() throws {
        let length = 4 * GuestMemory.pageSize
        let mapping = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(mapping, length) }
        do {
            let memory = try GuestMemory.adopting(address: mapping, length: length)
            #expect(memory.kind == .adopted)
            memory.base.storeBytes(of: 7, as: UInt8.self)
        }
        // Still mapped after the GuestMemory is gone.
        #expect(mapping.load(as: UInt8.self) == 7)
    }

    @Test func prefaultKeepsContent() throws {
        let memory = try GuestMemory.memfd(length: 64 * GuestMemory.pageSize)
        memory.page(10).storeBytes(of: 99, as: UInt64.self)
        try memory.prefault()
        #expect(memory.page(10).load(as: UInt64.self) == 99)
        #expect(memory.page(11).load(as: UInt64.self) == 0)
    }

    @Test(arguments: [0, -4096, 100, 4097])
    func rejectsLengthsThatAreNotWholePages(length: Int) {
        #expect(throws: FGBIError.self) { try GuestMemory.anonymous(length: length) }
        #expect(throws: FGBIError.self) { try GuestMemory.memfd(length: length) }
    }

    @Test func rejectsMisalignedAdoption() throws {
        let length = 2 * GuestMemory.pageSize
        let mapping = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(mapping, length) }
        #expect(throws: FGBIError.self) { try GuestMemory.adopting(address: mapping + 8, length: GuestMemory.pageSize) }
    }

    @Test func hugeRegionFailsWithATypedError() {
        // 2^50 bytes is more address space than x86-64 user space has: a SystemError, not a crash.
        #expect(throws: SystemError.self) { try GuestMemory.memfd(length: 1 << 50) }
    }
}
