/// A user of etcd's own authentication (`etcdctl user add`, `etcdctl auth enable`): the client trades them
/// for a token on first use and sends the token with every request. Give etcd's users only the prefix they
/// need (`etcdctl role grant-permission ROLE readwrite /fgbi/CLUSTER/ --prefix`). Over `http://` the password
/// crosses the network in clear: use `https://` members.
public struct EtcdCredentials: Sendable, Equatable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}
