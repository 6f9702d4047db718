/// One fuzz target: a function that takes any bytes and either returns or traps.
///
/// Contract: `run` MUST return for every input (no trap, no endless loop, memory bounded by a
/// small multiple of the input); it traps (`FuzzCheck.require`) only when a property the code
/// promises fails, such as a codec's decode → encode → decode not giving back what it decoded.
/// `seeds` are small valid inputs, made by the encoders where there are encoders, that start a
/// corpus (`gatemesh-fuzz seed`).
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable ([UInt8]) -> Void
    public let seeds: @Sendable () -> [[UInt8]]

    public init(name: String, summary: String, run: @escaping @Sendable ([UInt8]) -> Void,
                seeds: @escaping @Sendable () -> [[UInt8]]) {
        self.name = name
        self.summary = summary
        self.run = run
        self.seeds = seeds
    }
}

/// Every fuzz target, by name.
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        frameDecoder, membership, counters, alerts, rights, rules, journal, cacheEntry,
        sse, jsonArray, usage, json, metadata, controlHeaders, config, ruleDocument,
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// The fuzzers' own assertion: a broken promise of the code under test traps, so libFuzzer
/// records the input as a crash.
enum FuzzCheck {
    static func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        if !condition { preconditionFailure(message(), file: file, line: line) }
    }
}

/// Reads fuzzer-chosen parameters (a split point, a mode) off the front of an input.
struct FuzzInput {
    private(set) var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    /// The next byte, or 0 when none is left.
    mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    /// What is left.
    var rest: [UInt8] { Array(bytes) }
}

/// Splits `bytes` into chunks whose lengths come from `lengths` (cycled; 0 counts as 1), as a
/// network would deliver them.
func chunks(_ bytes: [UInt8], lengths: [UInt8]) -> [ArraySlice<UInt8>] {
    guard !lengths.isEmpty else { return [bytes[...]] }
    var out: [ArraySlice<UInt8>] = []
    var at = 0
    var i = 0
    while at < bytes.count {
        let n = min(max(Int(lengths[i % lengths.count]), 1), bytes.count - at)
        out.append(bytes[at..<(at + n)])
        at += n
        i += 1
    }
    return out
}
