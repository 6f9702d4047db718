import Foundation
import GateMeshFuzzTargets
import Testing

/// Every committed corpus input (fuzz/corpus/<target>/) goes through its target on every test
/// run, so a fixed crash stays fixed and a target that stopped compiling or started trapping on
/// a known input fails here, without a sanitizer build.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fuzz/corpus").standardized

    static func inputs(_ target: String) -> [URL] {
        let dir = corpus.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func committedCorpusReplaysWithoutATrap(target name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let files = Self.inputs(name)
        #expect(!files.isEmpty, "fuzz/corpus/\(name) has no inputs")
        for file in files { target.run(Array(try Data(contentsOf: file))) }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func encoderSeedsReplayWithoutATrap(target name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        for seed in target.seeds() { target.run(seed) }
    }

    @Test func targetNamesAreUnique() {
        #expect(Set(FuzzTargets.all.map(\.name)).count == FuzzTargets.all.count)
    }
}
