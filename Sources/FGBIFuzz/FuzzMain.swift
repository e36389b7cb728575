import Foundation

#if FUZZING
    // Built with `Scripts/fuzz` (-sanitize=fuzzer,address -DFUZZING): libFuzzer provides main() and calls this
    // for every input; FGBI_FUZZ_TARGET names the decoder.
    private let selectedTarget: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["FGBI_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(
                Data(
                    """
                    fgbi-fuzz: set FGBI_FUZZ_TARGET to one of \
                    \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n
                    """
                    .utf8))
            exit(2)
        }
        return target
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        selectedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    @_silgen_name("LLVMFuzzerRunDriver")
    private func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    // SwiftPM links an executable target's entry point under the name <target>_main: hand it to libFuzzer.
    @_cdecl("FGBIFuzz_main")
    public func fuzzDriverMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        var count = argc
        var vector = argv
        return runFuzzerDriver(&count, &vector) { data, size in fuzzOneInput(data, size) }
    }
#else
    /// `fgbi-fuzz TARGET FILE|DIRECTORY...`: runs inputs through one target without libFuzzer, to replay a
    /// corpus or a crash in an ordinary build (the tests do this with the seed corpus).
    @main
    struct FuzzMain {
        static func main() {
            let arguments = Array(CommandLine.arguments.dropFirst())
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count >= 2 else {
                let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
                FileHandle.standardError.write(
                    Data(
                        """
                        usage: fgbi-fuzz TARGET FILE|DIRECTORY...
                          TARGET: \(names)
                          Runs each input through the target (a replay; Scripts/fuzz builds the libFuzzer version).

                        """.utf8))
                exit(2)
            }
            var count = 0
            for path in arguments.dropFirst() {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    FileHandle.standardError.write(Data("fgbi-fuzz: no such file or directory: \(path)\n".utf8))
                    exit(1)
                }
                let files =
                    isDirectory.boolValue
                    ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map {
                        path + "/" + $0
                    }
                    : [path]
                for file in files {
                    guard let data = FileManager.default.contents(atPath: file) else { continue }
                    data.withUnsafeBytes { target.run($0) }
                    count += 1
                }
            }
            print("fgbi-fuzz: \(count) inputs through \(target.rawValue), no crash")
        }
    }
#endif
