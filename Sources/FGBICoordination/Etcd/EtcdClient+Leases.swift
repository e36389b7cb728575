/// The lease calls: leases granted, kept alive, revoked and asked how long they have left, for keys that
/// should vanish when their holder stops renewing them.
extension EtcdClient {
    /// A new lease that expires `ttlSeconds` after it is granted unless kept alive. etcd grants at least its
    /// minimum TTL (about 2 s with its default election timeout), so the granted TTL may be longer.
    public func grantLease(ttlSeconds: Int) throws(EtcdError) -> EtcdLease {
        precondition(ttlSeconds > 0, "a lease TTL must be positive")
        return try call("etcd lease grant", "v3/lease/grant", ["TTL": String(ttlSeconds)]) {
            (response, _) throws(EtcdJSON.Malformed) in
            _ = try response.headerRevision()
            let id = try response.requiredInt64("ID")
            let ttl = try response.requiredInt64("TTL")
            guard id != 0, ttl > 0 else { throw EtcdJSON.Malformed(detail: "granted lease \(id) with TTL \(ttl)") }
            return EtcdLease(id: id, ttlSeconds: Int(clamping: ttl))
        }
    }

    /// Renews the lease for its whole TTL; the TTL it now has in seconds, or nil when the lease has expired
    /// (or never existed), which means the keys attached to it are gone.
    public func keepAlive(_ leaseID: Int64) throws(EtcdError) -> Int? {
        // A stream in gRPC; the gateway answers one request with one `{"result": ...}` line.
        try call("etcd lease keepalive", "v3/lease/keepalive", ["ID": String(leaseID)], stream: true) {
            (response, _) throws(EtcdJSON.Malformed) in
            let result = try response.requiredObject("result")
            _ = try result.headerRevision()
            let ttl = try result.int64("TTL")
            return ttl > 0 ? Int(clamping: ttl) : nil
        }
    }

    /// Ends the lease now, deleting the keys attached to it; false when it had already expired or never existed.
    @discardableResult
    public func revoke(_ leaseID: Int64) throws(EtcdError) -> Bool {
        do throws(EtcdError) {
            return try call("etcd lease revoke", "v3/lease/revoke", ["ID": String(leaseID)]) {
                (response, _) throws(EtcdJSON.Malformed) in
                _ = try response.headerRevision()
                return true
            }
        } catch  where error.serverCode == GRPCStatus.notFound {
            return false
        }
    }

    /// The seconds the lease has left, or nil when it has expired or never existed.
    public func timeToLive(_ leaseID: Int64) throws(EtcdError) -> Int? {
        try call("etcd lease timetolive", "v3/lease/timetolive", ["ID": String(leaseID)]) {
            (response, _) throws(EtcdJSON.Malformed) in
            _ = try response.headerRevision()
            // etcd answers -1 for a lease it does not know.
            let ttl = try response.int64("TTL")
            return ttl >= 0 ? Int(clamping: ttl) : nil
        }
    }
}
