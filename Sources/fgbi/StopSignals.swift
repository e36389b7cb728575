import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM and SIGINT as a request to stop cleanly, the way a service manager (systemd, a container runtime)
/// or an operator's Ctrl-C asks: the first one is recorded (``received``) and handed to `onStop`, so that the
/// command finishes its work in order (`fgbi primary`: a final epoch sent and acknowledged, its lease
/// released; `fgbi backup`: its replica rolled back to the last committed epoch, no failover); a second one
/// while that runs restores the default action and ends the process at once.
///
/// Signals are taken through a dispatch source (their default action is ignored while it is installed), so
/// nothing runs in a signal handler.
final class StopSignals: @unchecked Sendable {
    /// The signals that ask for a clean stop.
    static let handled: [Int32] = [SIGTERM, SIGINT]

    private let first = Atomic<Int32>(0)
    private var sources: [DispatchSourceSignal] = []

    /// Starts listening; `onStop` runs once, on a dispatch queue, with the first signal's number.
    init(onStop: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for number in Self.handled {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let (exchanged, _) = first.compareExchange(
                    expected: 0, desired: number, ordering: .acquiringAndReleasing)
                if exchanged {
                    onStop(number)
                } else {
                    // A second request: no more waiting for a clean stop.
                    signal(number, SIG_DFL)
                    raise(number)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        for source in sources { source.cancel() }
        for number in Self.handled { signal(number, SIG_DFL) }
    }

    /// The first signal received, if any.
    var received: Int32? {
        let number = first.load(ordering: .acquiring)
        return number == 0 ? nil : number
    }

    /// The signal's name, for messages.
    static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        default: return "signal \(number)"
        }
    }
}
