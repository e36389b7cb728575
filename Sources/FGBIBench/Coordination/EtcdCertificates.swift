import FGBI
import FGBICoordination
import Foundation

/// A throwaway certificate authority and the certificates a TLS etcd lab needs, made with the `openssl`
/// command in `directory`: the authority (`ca.crt`), etcd's server certificate for `host` (an address, put
/// in the certificate's subjectAltName), and a client certificate that etcd's `--client-cert-auth` accepts.
/// Elliptic-curve keys (P-256), valid one day, every key file mode 600. The server certificate is also good
/// for client authentication: etcd's JSON gateway dials its own gRPC server with it.
public struct EtcdCertificates: Sendable {
    public let directory: String
    public let caFile: String
    public let serverCertificate: String
    public let serverKey: String
    public let clientCertificate: String
    public let clientKey: String

    /// What a client of this lab gives ``EtcdClient``.
    public var clientTLS: EtcdTLS { EtcdTLS(caFile: caFile, certificateFile: clientCertificate, keyFile: clientKey) }

    /// Makes the authority and both certificates; throws with openssl's output when it fails.
    public init(directory: String, host: String = "127.0.0.1") throws {
        self.directory = directory
        caFile = directory + "/ca.crt"
        serverCertificate = directory + "/server.crt"
        serverKey = directory + "/server.key"
        clientCertificate = directory + "/client.crt"
        clientKey = directory + "/client.key"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let san = host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? "IP:\(host)" : "DNS:\(host)"
        let script = """
            set -e
            cd "$1"
            umask 077
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
            key ca.key
            openssl req -x509 -new -key ca.key -out ca.crt -days 1 -subj /CN=fgbi-test-ca
            key server.key
            openssl req -new -key server.key -out server.csr -subj /CN=etcd
            printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth,clientAuth\\n' "$2" > server.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 \
            -extfile server.ext 2>/dev/null
            key client.key
            openssl req -new -key client.key -out client.csr -subj /CN=fgbi-node
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 1 \
            -extfile client.ext 2>/dev/null
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "certificates", directory, san]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError(
                """
                openssl could not make the test certificates in \(directory): \
                \(String(decoding: output, as: UTF8.self))
                """
            )
        }
    }
}
