import Foundation
import GateMeshFuzzTargets

// Two builds of one program (docs/fuzzing.md):
//
// - With `-Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address` (scripts/fuzz) it is a libFuzzer
//   binary: libFuzzer supplies `main` and calls `LLVMFuzzerTestOneInput` with each input for the
//   target named by `GATEMESH_FUZZ_TARGET`.
// - In an ordinary build it replays inputs: `gatemesh-fuzz <target> <file-or-dir>...` runs every
//   file through the target (a broken promise traps, so the exit status is not zero);
//   `gatemesh-fuzz seed <corpus-dir>` writes each target's encoder-made seeds;
//   `gatemesh-fuzz list` names the targets.

#if FUZZING

/// The target named by `GATEMESH_FUZZ_TARGET`, looked up once.
let fuzzTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["GATEMESH_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.named(name) else {
        FileHandle.standardError.write(Data("gatemesh-fuzz: set GATEMESH_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: ", ")) (got '\(name)')\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = fuzzTarget
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzTarget.run(bytes)
    return 0
}

/// libFuzzer's driver: its `main` is what this program runs.
@_extern(c, "LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The program's entry. SwiftPM links every executable on Linux with `main` defined as
/// `<module>_main` (so that tests can import executables), which keeps libFuzzer's own `main` out
/// of the link; this hands the arguments straight to libFuzzer's driver instead.
@_cdecl("gatemesh_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzerTestOneInput)
}

#else

@main
enum FuzzReplay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let command = args.first else { usage() }
        switch command {
        case "list":
            for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
        case "seed":
            guard args.count >= 2 else { usage() }
            seed(into: URL(fileURLWithPath: args[1]), only: Set(args.dropFirst(2)))
        default:
            guard let target = FuzzTargets.named(command), args.count >= 2 else { usage() }
            let files = args.dropFirst().flatMap(inputs)
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("gatemesh-fuzz: cannot read \(file)\n".utf8))
                    exit(1)
                }
                target.run(Array(data))
            }
            print("\(target.name): \(files.count) inputs replayed")
        }
    }

    /// The files named, and the files in the directories named (not recursive), sorted.
    static func inputs(_ path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            FileHandle.standardError.write(Data("gatemesh-fuzz: no such file or directory: \(path)\n".utf8))
            exit(1)
        }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
    }

    /// Writes each target's seeds as `<dir>/<target>/seed-<n>` (files already there are kept).
    static func seed(into dir: URL, only: Set<String>) {
        for target in FuzzTargets.all where only.isEmpty || only.contains(target.name) {
            let folder = dir.appendingPathComponent(target.name)
            try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let seeds = target.seeds()
            for (i, s) in seeds.enumerated() {
                target.run(s)
                let file = folder.appendingPathComponent(String(format: "seed-%02d", i))
                FileManager.default.createFile(atPath: file.path, contents: Data(s))
            }
            print("\(target.name): \(seeds.count) seeds")
        }
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("""
            usage: gatemesh-fuzz <target> <file-or-dir>...   replay inputs through a target
                   gatemesh-fuzz seed <corpus-dir>           write the encoders' seeds
                   gatemesh-fuzz list                        name the targets
            (built with -DFUZZING -sanitize=fuzzer it is a libFuzzer binary; see docs/fuzzing.md)

            """.utf8))
        exit(2)
    }
}

#endif
