import ArgumentParser
import FGBI
import FGBIBench
import FGBILab

extension FGBICommand {
    /// `fgbi bench send`: send paths side by side.
    struct BenchSend: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "send",
            abstract:
                """
                Throughput and CPU of send(), io_uring send and io_uring SEND_ZC per message size, over loopback \
                and veth.
                """,
            discussion: """
                Sends --mib MiB per case over a TCP connection in messages of each size, with each method, one
                after another in one run: over loopback, and over a veth link into a network namespace made for
                the run. For SEND_ZC it reports the share of notifications in which the kernel says it copied the
                data after all (it does on loopback and veth). Use a release build.
                With --frames it times whole replication frames instead (header, payload and authentication code
                through the connection's frame writer) on each frame send path over loopback, from 8-byte
                payloads (heartbeats, acks) up: the measurement the automatic path's size split comes from.
                With --security it times frames at each level of protection instead (none, authenticated,
                encrypted) on the automatic path, each received and checked by a second connection as a backup
                does: the CPU each side pays per GB to seal and to open.
                Examples:
                  fgbi bench send
                  fgbi bench send --sizes 65536,1048576 --json
                  fgbi bench send --frames
                  fgbi bench send --security none,authenticated,encrypted --frame-sizes 65536,16777216
                """)

        @Option(help: "Comma-separated message sizes in bytes.")
        var sizes = "4096,65536,1048576,16777216"

        @Option(help: "Comma-separated paths: loopback, veth (a namespace and veth link made for the run; needs root).")
        var paths = "loopback,veth"

        @Option(help: "MiB sent per case.")
        var mib = 512

        @Flag(help: "Print JSON: an array with one object per (method, message size).")
        var json = false

        @Flag(help: "Time replication frames per frame send path (socket, uring, uring-zc, automatic) instead.")
        var frames = false

        @Option(name: .customLong("frame-sizes"), help: "With --frames: comma-separated payload sizes in bytes.")
        var frameSizes = "8,4096,65536,1048576,16777216"

        @Option(
            help: """
                Time frames at these levels of protection instead (comma-separated: none, authenticated, \
                encrypted), sender and receiver, with --frame-sizes.
                """)
        var security: String?

        func makeConfiguration() throws -> SendBenchmark.Configuration {
            var configuration = SendBenchmark.Configuration()
            configuration.messageSizes = try sizes.split(separator: ",").map {
                guard let size = Int($0), size >= 1, size <= 1 << 30 else {
                    throw ValidationError("--sizes: '\($0)' is not a size from 1 to 1073741824")
                }
                return size
            }
            guard mib > 0 else { throw ValidationError("--mib must be positive") }
            configuration.bytesPerCase = mib << 20
            configuration.paths = paths.split(separator: ",").map(String.init)
            guard configuration.paths.allSatisfy({ $0 == "loopback" || $0 == "veth" }) else {
                throw ValidationError("--paths: choose from loopback and veth")
            }
            return configuration
        }

        func validate() throws {
            _ = try makeConfiguration()
            _ = try framePayloads()
            _ = try securityLevels()
        }

        func framePayloads() throws -> [Int] {
            try frameSizes.split(separator: ",").map {
                guard let size = Int($0), size >= 0, size <= 1 << 28 else {
                    throw ValidationError("--frame-sizes: '\($0)' is not a size from 0 to 268435456")
                }
                return size
            }
        }

        func securityLevels() throws -> [FrameSecurityMeasurement.Security]? {
            try security.map { list in
                try list.split(separator: ",").map {
                    guard let level = FrameSecurityMeasurement.Security(rawValue: String($0)) else {
                        throw ValidationError("--security: '\($0)' is not one of none, authenticated, encrypted")
                    }
                    return level
                }
            }
        }

        func runSecurity(_ levels: [FrameSecurityMeasurement.Security]) throws {
            var results: [FrameSecurityMeasurement.Result] = []
            for (sizeIndex, payload) in try framePayloads().enumerated() {
                let count = min(max((mib << 20) / max(payload, 1), 200), 400_000)
                // Rotate the order per size so drift of the shared machine hits every level alike.
                for index in levels.indices {
                    let level = levels[(index + sizeIndex) % levels.count]
                    Progress.note("send: \(level.rawValue) frames of \(payload) bytes x \(count)")
                    results.append(
                        try FrameSecurityMeasurement.measure(security: level, payloadBytes: payload, frames: count))
                }
            }
            results.sort { ($0.payloadBytes, $0.security.rawValue) < ($1.payloadBytes, $1.security.rawValue) }
            if json {
                print(try JSONOutput.encode(results))
                return
            }
            var table = TextTable(["payload bytes", "security", "GB/s", "sender CPU s/GB", "receiver CPU s/GB"])
            for r in results {
                table.add([
                    String(r.payloadBytes), r.security.rawValue, formatted(r.gigabytesPerSecond, 2),
                    formatted(r.senderCPUSecondsPerGB, 3), formatted(r.receiverCPUSecondsPerGB, 3),
                ])
            }
            print("replication frames over loopback, sealed by one connection and opened by another (automatic path)")
            print(table.rendered)
        }

        func runFrames() throws {
            let payloads = try framePayloads()
            let paths: [FrameSendPath] = [.socket, .uring, .uringZeroCopy(minimumPayloadBytes: 0), .automatic]
            var results: [FrameSendMeasurement.Result] = []
            for (sizeIndex, payload) in payloads.enumerated() {
                // About mib MiB per case, at least 2,000 frames, at most 400,000.
                let count = min(max((mib << 20) / max(payload, 1), 2000), 400_000)
                // Rotate the order per size so drift of the shared machine hits every path alike.
                for index in paths.indices {
                    let path = paths[(index + sizeIndex) % paths.count]
                    Progress.note("send: \(path) frames of \(payload) bytes x \(count)")
                    do {
                        results.append(
                            try FrameSendMeasurement.measure(path: path, payloadBytes: payload, frames: count))
                    } catch {
                        Progress.note("send: \(path) skipped: \(error)")
                    }
                }
            }
            results.sort { ($0.payloadBytes, $0.path) < ($1.payloadBytes, $1.path) }
            if json {
                print(try JSONOutput.encode(results))
                return
            }
            var table = TextTable([
                "payload bytes", "path", "frames/s", "GB/s", "sender CPU s/GB", "socket", "uring", "zero copy",
                "ZC copied",
            ])
            for r in results {
                table.add([
                    String(r.payloadBytes), r.path, formatted(r.framesPerSecond, 0), formatted(r.gigabytesPerSecond, 2),
                    r.payloadBytes >= 4096 ? formatted(r.senderCPUSecondsPerGB, 3) : "-", String(r.socketFrames),
                    String(r.uringFrames),
                    String(r.zeroCopyFrames), String(r.copiedNotifications),
                ])
            }
            print("replication frames over loopback, one connection; frame counts include a warm-up of a tenth")
            print(table.rendered)
        }

        func run() throws {
            if let levels = try securityLevels() { return try runSecurity(levels) }
            if frames { return try runFrames() }
            let cases = try SendBenchmark(try makeConfiguration()).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(cases))
                return
            }
            var table = TextTable([
                "path", "method", "message bytes", "GB/s", "sender CPU s/GB", "operations", "ZC notifs", "ZC copied",
            ])
            for c in cases {
                table.add([
                    c.path, c.method, String(c.messageBytes), formatted(c.gbps), formatted(c.senderCpuSecondsPerGb, 3),
                    String(c.operations), String(c.zcNotifications),
                    c.zcCopiedShare.map { formatted($0 * 100, 0) + "%" } ?? "-",
                ])
            }
            print(table.rendered)
        }
    }
}
