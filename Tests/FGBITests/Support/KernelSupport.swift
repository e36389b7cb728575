import FGBI

/// Kernel capability checks for test traits, probed once (a trait condition may be evaluated many times).
enum Kernel {
    static let capabilities = KernelCapabilities.current

    static func supports(_ tracker: TrackerKind, _ region: GuestMemory.Kind = .anonymous) -> Bool {
        capabilities.unavailableReason(for: tracker, regionKind: region) == nil
    }

    static let supportsAsyncWP = supports(.uffdAsync) && supports(.uffdAsync, .memfd(name: ""))
    static let supportsSyncWP = supports(.uffdSync) && supports(.uffdSync, .memfd(name: ""))

    /// The trackers this kernel can run, for parameterized tests; the missing ones are skipped by name.
    static let availableTrackers = TrackerKind.allCases.filter { supports($0) }
}
