import FGBI
import Foundation
import Testing

/// Kernel capability checks for test traits and test cases, probed once (a trait condition may be evaluated
/// many times).
///
/// `FGBI_TEST_DISABLE_UFFD=1` in the environment makes the tests treat userfaultfd as missing, as on a kernel
/// built without it: the `uffd-async` and `uffd-sync` trackers count as unavailable, replication tests track
/// with `scan` (``preferredTracker``), and the tests that need userfaultfd are skipped with that reason. The library is
/// unaffected;
/// the `fgbi` processes the tests start are given `--tracker` explicitly.
enum Kernel {
    static let capabilities = KernelCapabilities.current

    /// The environment variable that makes the tests treat userfaultfd as missing.
    static let disableUserfaultfdVariable = "FGBI_TEST_DISABLE_UFFD"

    /// Whether `FGBI_TEST_DISABLE_UFFD=1` is set.
    static let userfaultfdDisabled = ProcessInfo.processInfo.environment[disableUserfaultfdVariable] == "1"

    /// Why userfaultfd cannot be opened here, features aside, or nil when it can.
    static let userfaultfdUnavailableReason: String? = {
        if userfaultfdDisabled { return "disabled by \(disableUserfaultfdVariable)" }
        if case .failure(let error) = capabilities.userfaultfd { return error.description }
        return nil
    }()

    /// Why `tracker` cannot run on a region of `kind` here, or nil when it can.
    static func unavailableReason(for tracker: TrackerKind, _ region: GuestMemory.Kind = .anonymous) -> String? {
        if tracker != .scan, userfaultfdDisabled { return "disabled by \(disableUserfaultfdVariable)" }
        return capabilities.unavailableReason(for: tracker, regionKind: region)
    }

    static func supports(_ tracker: TrackerKind, _ region: GuestMemory.Kind = .anonymous) -> Bool {
        unavailableReason(for: tracker, region) == nil
    }

    static let supportsAsyncWP = supports(.uffdAsync) && supports(.uffdAsync, .memfd(name: ""))
    static let supportsSyncWP = supports(.uffdSync) && supports(.uffdSync, .memfd(name: ""))

    /// The trackers this kernel can run on anonymous memory.
    static let availableTrackers = TrackerKind.allCases.filter { supports($0) }

    /// The tracker for tests that track without testing a tracker (replication, traces, the CLI's primary and
    /// demos): `uffd-async`, the library's default, where this kernel has it, else `scan`, which needs no
    /// kernel help; so a machine without userfaultfd still tests the whole data path.
    static let preferredTracker: TrackerKind = supports(.uffdAsync) ? .uffdAsync : .scan
}

extension Trait where Self == ConditionTrait {
    /// Runs the test or suite only where this kernel can run `tracker` on a region of `kind`; elsewhere it
    /// is skipped, the comment saying `why` it needs that tracker and why the kernel cannot run it.
    static func requiring(_ tracker: TrackerKind, _ region: GuestMemory.Kind = .anonymous, because why: String) -> Self
    {
        let reason = Kernel.unavailableReason(for: tracker, region)
        return .enabled(if: reason == nil, Comment(rawValue: "\(why); \(tracker) unavailable: \(reason ?? "")"))
    }

    /// Runs the test or suite only where userfaultfd opens (features aside); elsewhere it is skipped, the
    /// comment saying `why` it needs userfaultfd and why it does not open.
    static func requiringUserfaultfd(because why: String) -> Self {
        let reason = Kernel.userfaultfdUnavailableReason
        return .enabled(if: reason == nil, Comment(rawValue: "\(why); userfaultfd unavailable: \(reason ?? "")"))
    }
}

extension PrimaryConfiguration {
    /// The library's defaults for a backup at `backup`, tracking with ``Kernel/preferredTracker``: what the
    /// replication tests start from.
    static func onThisKernel(backup: Endpoint) -> PrimaryConfiguration {
        var configuration = PrimaryConfiguration(backup: backup)
        configuration.tracker = Kernel.preferredTracker
        return configuration
    }
}
