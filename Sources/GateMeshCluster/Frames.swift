import GateMeshCore

/// Peer frames: `G` `M`, a version byte, a type byte, a 4-byte big-endian payload length, then
/// the payload. A decoder takes bytes as they arrive and yields whole frames; a frame with a wrong
/// magic, another version or a length above the maximum is an error that closes that one
/// connection (never the node). A frame of a type this build does not know (a newer node's) is
/// skipped whole and counted, the connection kept: a new type can be added without a new version,
/// and a newer node's ask that is skipped goes unanswered (its asker's deadline ends it). Pure.
public struct Frame: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// Membership: a SWIM message (ping, ack, ping-req, with piggybacked updates).
        case membership = 1
        /// Replication: CRDT counter entries (a delta, or an anti-entropy answer).
        case counters = 2
        /// Replication: a digest of counter versions, asking for what is missing.
        case digest = 3
        /// The first frame on a connection: who is speaking (not sent yet).
        case hello = 4
        /// Cache: "send me your entry for this key" (to the key's owner).
        case cacheGet = 5
        /// Cache: the owner's answer (an entry or nothing).
        case cacheAnswer = 6
        /// Cache: "store this entry" (to the key's owner, after a miss was fetched).
        case cachePut = 7
        /// Cache: "I fetched no cacheable answer for this key" (to its owner, which had let this
        /// node fetch it: the owner stops waiting for it).
        case cacheRelease = 8
        /// Rules: admin-API rule records (changes as they happen, or a whole set to repair).
        case rules = 9
        /// Rules: a digest of the rule records held, answered with the whole set when it differs.
        case rulesDigest = 10
        /// Alerts: budget alerts this node sent (the others must not send them again).
        case alertsFired = 11
        /// Rights: "grant me rights of this counter" (to its owner; answered with a `counters`
        /// frame holding the counter's entry).
        case rightsAsk = 12
        /// Membership: a digest of the members this node has ever seen (`MemberAgreement`): a
        /// `strict` owner grants only while every live peer holds the same.
        case members = 13
        /// Membership: "send me the certificates of these members" (to the peer that passed on
        /// records about them signed with keys this node does not hold).
        case certificateAsk = 14
        /// Membership: certificates (DER) of members, answering a `certificateAsk`.
        case certificates = 15
        /// Reads: "send me your part of this read of the request log" (`ReadCodec`).
        case readAsk = 16
        /// Reads: a node's part, answering a `readAsk`.
        case readAnswer = 17
    }

    /// 2 since membership records are signed (`RecordSigner`): a node of an earlier build could not
    /// read a membership message of this one, and is told so by the version, not by payloads that
    /// do not decode.
    public static let version: UInt8 = 2
    public static let headerSize = 8

    public var kind: Kind
    public var payload: [UInt8]

    public init(kind: Kind, payload: [UInt8]) {
        self.kind = kind
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "G"), UInt8(ascii: "M"), Self.version, kind.rawValue]
        let n = UInt32(payload.count)
        out += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        out += payload
        return out
    }
}

public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    case badMagic
    case unsupportedVersion(UInt8)
    case tooLarge(Int, max: Int)

    public var description: String {
        switch self {
        case .badMagic: return "not a GateMesh peer frame (bad magic)"
        case .unsupportedVersion(let v): return "peer frame version \(v) is not supported (this node speaks \(Frame.version))"
        case .tooLarge(let n, let max): return "peer frame of \(n) bytes is over the maximum of \(max)"
        }
    }
}

public struct FrameDecoder: Sendable {
    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    /// Frames of a type this build does not know, skipped; and the last such type.
    public private(set) var skippedUnknown = 0
    public private(set) var lastUnknownKind: UInt8?

    public init(maxPayload: Int = 4 << 20) {
        self.maxPayload = maxPayload
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, nil when more bytes are needed. After an error the decoder is spent.
    public mutating func next() throws(FrameError) -> Frame? {
        while true {
            let available = buffer.count - start
            guard available >= 2 else { return nil }
            guard buffer[start] == UInt8(ascii: "G"), buffer[start + 1] == UInt8(ascii: "M") else { throw .badMagic }
            guard available >= Frame.headerSize else { return nil }
            guard buffer[start + 2] == Frame.version else { throw .unsupportedVersion(buffer[start + 2]) }
            let length = Int(buffer[start + 4]) << 24 | Int(buffer[start + 5]) << 16 | Int(buffer[start + 6]) << 8 | Int(buffer[start + 7])
            guard length <= maxPayload else { throw .tooLarge(length, max: maxPayload) }
            guard available >= Frame.headerSize + length else { return nil }
            let payloadStart = start + Frame.headerSize
            let kind = Frame.Kind(rawValue: buffer[start + 3])
            let frame = kind.map { Frame(kind: $0, payload: Array(buffer[payloadStart..<payloadStart + length])) }
            if kind == nil {
                skippedUnknown += 1
                lastUnknownKind = buffer[start + 3]
            }
            start = payloadStart + length
            if start > 64 * 1024 || start == buffer.count {
                buffer.removeFirst(start)
                start = 0
            }
            if let frame { return frame }
        }
    }

    /// Bytes held waiting for the rest of a frame.
    public var buffered: Int { buffer.count - start }
}
