import CSupport
import FGBI

#if canImport(Glibc)
import Glibc
#endif

/// Which CPU runs what in the overhead benchmark: the guest (the writer) on one CPU, replication (the
/// primary's threads, the backup, the acknowledger) on the others, as a hypervisor gives a guest its own
/// vCPU and runs the replicator beside it. Threads inherit the set of the thread that creates them.
public enum CPUPinning {
    /// Restricts the calling thread (and threads it creates later) to `cpus`.
    ///
    /// - Throws: ``SystemError`` (EINVAL when none of the CPUs is online).
    public static func pinCallingThread(to cpus: [Int]) throws {
        var mask: UInt64 = 0
        for cpu in cpus {
            guard (0..<64).contains(cpu) else { throw FGBIError.invalidArgument("CPU \(cpu) is not between 0 and 63") }
            mask |= 1 << UInt64(cpu)
        }
        let rc = CSupport_set_thread_affinity(mask)
        guard rc == 0 else {
            throw SystemError(operation: "sched_setaffinity(CPUs \(cpus))", errno: -rc,
                              hint: -rc == EINVAL ? "no such CPU is online; see nproc" : "")
        }
    }

    /// The CPUs this process may run on now, 0 to 63.
    public static var onlineCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
