import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The guest program: a raw 64-bit image (Examples/kvm-guest, built by Scripts/build-kvm-guest) that is
/// loaded at ``KVMGuestLayout/codeAddress`` and entered at its first byte.
public struct KVMGuestImage: Sendable {
    /// Where it was read from.
    public let path: String
    /// The image's bytes.
    public let bytes: [UInt8]

    /// Reads an image.
    ///
    /// - Throws: ``SystemError`` when the file cannot be read; ``FGBIError/invalidArgument(_:)`` when it is
    ///   empty or too large to fit below the guest's data area.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            let code = access(path, R_OK) == 0 ? EIO : errno
            throw SystemError(
                operation: "open(\(path))", errno: code,
                hint: "build the guest with Scripts/build-kvm-guest, or give its path with --guest")
        }
        guard !data.isEmpty, data.count <= KVMGuestLayout.maximumImageBytes else {
            throw FGBIError.invalidArgument(
                "\(path) is not a guest image: \(data.count) bytes (1 to \(KVMGuestLayout.maximumImageBytes))")
        }
        self.path = path
        bytes = [UInt8](data)
    }

    /// Where Scripts/build-kvm-guest puts the image: `$FGBI_KVM_GUEST`, else `.build/kvm-guest/guest.bin`
    /// beside the running executable's build directory (`.build/release/fgbi`), else under the current
    /// directory. Nil when none exists.
    public static func defaultPath() -> String? {
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["FGBI_KVM_GUEST"] { return explicit }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        // .build/<config>/fgbi, or .build/<triple>/<config>/fgbi, or a test bundle inside them.
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("kvm-guest/guest.bin").path)
            directory = directory.deletingLastPathComponent()
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/.build/kvm-guest/guest.bin")
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Copies the image to its load address in guest RAM.
    public func load(into memory: GuestMemory) {
        bytes.withUnsafeBytes { source in
            (memory.base + KVMGuestLayout.codeAddress).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
    }
}
