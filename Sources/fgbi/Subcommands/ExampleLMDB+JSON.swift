import FGBIExamples

/// What `fgbi example lmdb --json` prints for the drills.
extension FGBICommand {
    struct AnyEncodable: Encodable {
        let value: any Encodable
        init(_ value: any Encodable) { self.value = value }
        func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
    }

    struct AlternateJSON: Encodable {
        var failovers: [LMDBAlternatingDrill.Failover]
        var initialSynchronisationBytes: Int
        var acknowledged: UInt64
        var finalReplicaTransactions: UInt64
        init(_ outcome: LMDBAlternatingDrill.Outcome) {
            failovers = outcome.failovers
            initialSynchronisationBytes = outcome.initialSynchronisationBytes
            acknowledged = outcome.acknowledged
            finalReplicaTransactions = outcome.finalReplica.transactions
        }
    }

    struct DrillJSON: Encodable {
        var seed: UInt64
        var killAfterMilliseconds: Int
        var acknowledged: UInt64
        var backupEpoch: UInt64?
        var replicaTransactions: UInt64?
        var replicaKeys: Int?
        var failoverSeconds: Double
        var primaryStatus: String
        init(_ outcome: LMDBFailoverDrill.Outcome, seed: UInt64, killAfterMilliseconds: Int) {
            self.seed = seed
            self.killAfterMilliseconds = killAfterMilliseconds
            acknowledged = outcome.acknowledged
            backupEpoch = outcome.backupEpoch
            replicaTransactions = outcome.replica?.transactions
            replicaKeys = outcome.replica?.keys
            failoverSeconds = outcome.failoverSeconds
            primaryStatus = outcome.primaryStatus
        }
    }
}
