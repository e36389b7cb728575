import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench send`: send paths side by side.
    struct BenchSend: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "send",
            abstract: "Throughput and CPU of send(), io_uring send and io_uring SEND_ZC per message size, over loopback and veth.",
            discussion: """
                Sends --mib MiB per case over a TCP connection in messages of each size, with each method, one
                after another in one run: over loopback, and over a veth link into a network namespace made for
                the run. For SEND_ZC it reports the share of notifications in which the kernel says it copied the
                data after all (it does on loopback and veth). Use a release build.
                Examples:
                  fgbi bench send
                  fgbi bench send --sizes 65536,1048576 --json
                """)

        @Option(help: "Comma-separated message sizes in bytes.")
        var sizes = "4096,65536,1048576,16777216"

        @Option(help: "Comma-separated paths: loopback, veth (a namespace and veth link made for the run; needs root).")
        var paths = "loopback,veth"

        @Option(help: "MiB sent per case.")
        var mib = 512

        @Flag(help: "Print JSON: an array with one object per (method, message size).")
        var json = false

        func makeConfiguration() throws -> SendBenchmark.Configuration {
            var configuration = SendBenchmark.Configuration()
            configuration.messageSizes = try sizes.split(separator: ",").map {
                guard let size = Int($0), size >= 1, size <= 1 << 30 else { throw ValidationError("--sizes: '\($0)' is not a size from 1 to 1073741824") }
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

        func validate() throws { _ = try makeConfiguration() }

        func run() throws {
            let cases = try SendBenchmark(try makeConfiguration()).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(cases))
                return
            }
            var table = TextTable(["path", "method", "message bytes", "GB/s", "sender CPU s/GB", "operations", "ZC notifs", "ZC copied"])
            for c in cases {
                table.add([c.path, c.method, String(c.messageBytes), formatted(c.gbps), formatted(c.senderCpuSecondsPerGb, 3),
                           String(c.operations), String(c.zcNotifications), c.zcCopiedShare.map { formatted($0 * 100, 0) + "%" } ?? "-"])
            }
            print(table.rendered)
        }
    }
}
