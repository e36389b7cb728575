import Foundation
import Testing

@testable import FGBI

/// `FGBI_FAULT_POINT` read by the library (which never exits for it) and refused by the `fgbi` command.
@Suite("Fault point environment")
struct FaultPointEnvironmentTests {
    @Test func aPointAndItsHitAreRead() throws {
        #expect(FaultPoints.parse(nil) == nil)
        #expect(FaultPoints.parse("") == nil)
        let armed = try #require(try FaultPoints.parse("backup.persist.append:3")?.get())
        #expect(armed.point == .backupPersistAppend && armed.count == 3)
        let once = try #require(try FaultPoints.parse("primary.send")?.get())
        #expect(once.point == .primarySend && once.count == 1)
    }

    @Test func anUnknownPointIsAProblemNotAnExit() {
        guard case .failure(let problem)? = FaultPoints.parse("meteor:2") else {
            Issue.record("an unknown point must be reported")
            return
        }
        #expect("\(problem)".contains("FGBI_FAULT_POINT names no fault point 'meteor'"))
        #expect("\(problem)".contains("backup.ack"), "the known points are listed")
    }

    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func theCommandRefusesToStartWithAnUnknownPoint() throws {
        let outcome = try CommandRunner.run(["probe"], prefix: ["FGBI_FAULT_POINT=meteor"])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("FGBI_FAULT_POINT names no fault point 'meteor'"), "\(outcome.stderr)")
    }
}
