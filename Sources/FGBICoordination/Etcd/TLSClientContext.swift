import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// How to reach etcd over TLS (`https://` endpoints): the certificate authority that signed etcd's server
/// certificates, and, when etcd asks for one (`--client-cert-auth`), this node's client certificate and key.
public struct EtcdTLS: Sendable, Equatable {
    /// PEM file of the authority (or authorities) to trust for etcd's server certificates; nil: the
    /// system's default authorities.
    public var caFile: String?
    /// PEM file of this node's client certificate (its chain), or nil.
    public var certificateFile: String?
    /// PEM file of the client certificate's private key; must be private to this user (mode 600).
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// OpenSSL's client side, set up once per ``EtcdClient``: TLS 1.2 or newer, the server's certificate
/// verified against the configured authority and its name (or address) checked against the endpoint's host.
final class TLSClientContext: @unchecked Sendable {
    private let context: OpaquePointer

    /// - Throws: the reason, in words, when a file cannot be read or the key does not match the certificate.
    init(_ configuration: EtcdTLS) throws(TLSFailure) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSFailure(Self.lastError("SSL_CTX_new")) }
        self.context = context
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let ca = configuration.caFile {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else {
                throw TLSFailure(Self.lastError("cannot load the etcd CA file \(ca)"))
            }
        } else {
            SSL_CTX_set_default_verify_paths(context)
        }
        switch (configuration.certificateFile, configuration.keyFile) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw TLSFailure(Self.lastError("cannot load the etcd client certificate \(certificate)"))
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSFailure(Self.lastError("cannot load the etcd client key \(key)"))
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw TLSFailure("the etcd client key \(key) does not match the certificate \(certificate)")
            }
        default:
            throw TLSFailure("a client certificate needs its key and a key its certificate (give both)")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// A TLS session on the connected socket `descriptor` to `host` (a name, or an address in or out of
    /// brackets), not yet shaken hands.
    func session(descriptor: Int32, host: String) throws(TLSFailure) -> OpaquePointer {
        guard let ssl = SSL_new(context) else { throw TLSFailure(Self.lastError("SSL_new")) }
        SSL_set_fd(ssl, descriptor)
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let parameters = SSL_get0_param(ssl)
        if Self.isAddress(name) {
            X509_VERIFY_PARAM_set1_ip_asc(parameters, name)
        } else {
            X509_VERIFY_PARAM_set1_host(parameters, name, 0)
            // SSL_set_tlsext_host_name, a macro: OpenSSL copies the name.
            _ = name.withCString {
                SSL_ctrl(
                    ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name),
                    UnsafeMutableRawPointer(mutating: $0))
            }
        }
        return ssl
    }

    private static func isAddress(_ name: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, name, &buffer) == 1 || inet_pton(AF_INET6, name, &buffer) == 1
    }

    /// The reason for a failed step of a session, from OpenSSL's error queue and the certificate check.
    static func handshakeFailure(_ ssl: OpaquePointer) -> String {
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK) {
            return
                """
                the server's certificate was refused: \(String(cString: X509_verify_cert_error_string(verify))) \
                (check --etcd-ca and the host in --etcd)
                """
        }
        return lastError("TLS handshake")
    }

    /// `what`, then OpenSSL's oldest queued error (the queue emptied).
    static func lastError(_ what: String) -> String {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        guard code != 0 else { return what }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return "\(what): \(String(decoding: bytes, as: UTF8.self))"
    }
}

/// Why TLS could not be set up or a session failed, in words.
struct TLSFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
