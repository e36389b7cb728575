import FGBI

/// How a benchmark run protects its frames, given to both of its ends: with `encrypt`, a key made for the run
/// alone (held only in memory), every frame encrypted by the primary, and clear frames refused by the backup,
/// so an encrypted run cannot quietly go clear; without it, loopback's clear frames and no key.
public struct RunEncryption: Sendable {
    /// The run's key, when it encrypts.
    public let key: PresharedKey?

    public init(encrypt: Bool) {
        key = encrypt ? PresharedKey.random() : nil
    }

    /// Gives the backup the run's key, and makes it refuse clear frames when the run encrypts.
    public func configure(_ backup: inout BackupConfiguration) {
        backup.key = key
        backup.requireEncryption = key != nil
    }

    /// Gives the primary the run's key, and makes it encrypt every frame when the run encrypts.
    public func configure(_ primary: inout PrimaryConfiguration) {
        primary.key = key
        primary.encrypt = key != nil
    }
}
