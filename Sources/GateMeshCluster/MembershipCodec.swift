import GateMeshCore

/// The wire form of membership envelopes (the payload of `.membership` frames). Every count and
/// string is bounded, so a malformed or hostile payload is a `DecodeError`, never a crash or an
/// unbounded allocation.
public enum MembershipCodec {
    public static let maxUpdates = 100_000
    public static let maxString = 1024
    /// A record's signature (ECDSA P-256 needs at most 72 bytes; RSA-4096, 512).
    public static let maxSignature = 1024

    public static func encode(_ e: Membership.Envelope) -> [UInt8] {
        var w = BinaryWriter()
        info(e.from, &w)
        w.uint(e.incarnation)
        w.blob(e.signature)
        switch e.message {
        case .ping(let seq, let target):
            w.byte(1)
            w.uint(seq)
            w.string(target)
        case .ack(let seq, let of):
            w.byte(2)
            w.uint(seq)
            w.string(of)
        case .nack(let seq):
            w.byte(6)
            w.uint(seq)
        case .pingRequest(let seq, let target):
            w.byte(3)
            w.uint(seq)
            info(target, &w)
        case .sync(let members, let reply):
            w.byte(reply ? 5 : 4)
            updates(members, &w)
        case .recordsAsk(let names):
            w.byte(7)
            w.uint(UInt64(names.count))
            for n in names { w.string(n) }
        }
        updates(e.updates, &w)
        return w.bytes
    }

    /// The length of `encode(e)`, counted without building it (the simulator sums it for every
    /// message it passes). `MembershipCodecSizeTests`-style equality with `encode` is checked by
    /// the simulator's tests.
    public static func size(of e: Membership.Envelope) -> Int {
        func uint(_ v: UInt64) -> Int { v < 0x80 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7 }
        func string(_ t: String) -> Int { let n = t.utf8.count; return uint(UInt64(n)) + n }
        func blob(_ b: [UInt8]) -> Int { uint(UInt64(b.count)) + b.count }
        func info(_ i: Membership.Info) -> Int {
            string(i.name) + string(i.address) + string(i.region) + string(i.id) + string(i.configDigest)
        }
        func updates(_ list: [Membership.Update]) -> Int {
            var n = uint(UInt64(list.count))
            for u in list { n += info(u.info) + 1 + uint(u.incarnation) + string(u.accuser) + blob(u.signature) }
            return n
        }
        var n = info(e.from) + uint(e.incarnation) + blob(e.signature) + 1
        switch e.message {
        case .ping(let seq, let target): n += uint(seq) + string(target)
        case .ack(let seq, let of): n += uint(seq) + string(of)
        case .nack(let seq): n += uint(seq)
        case .pingRequest(let seq, let target): n += uint(seq) + info(target)
        case .sync(let members, _): n += updates(members)
        case .recordsAsk(let names): n += names.reduce(uint(UInt64(names.count))) { $0 + string($1) }
        }
        return n + updates(e.updates)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Membership.Envelope {
        var r = BinaryReader(bytes)
        let from = try info(&r)
        let incarnation = try r.uint()
        let signature = try r.blob(max: maxSignature)
        let message: Membership.Message
        switch try r.byte() {
        case 1: message = .ping(seq: try r.uint(), target: try r.string(max: maxString))
        case 2: message = .ack(seq: try r.uint(), of: try r.string(max: maxString))
        case 6: message = .nack(seq: try r.uint())
        case 3: message = .pingRequest(seq: try r.uint(), target: try info(&r))
        case 4: message = .sync(members: try updates(&r), reply: false)
        case 5: message = .sync(members: try updates(&r), reply: true)
        case 7:
            let n = try r.count(max: maxUpdates)
            var names: [String] = []
            names.reserveCapacity(min(n, 1024))
            for _ in 0..<n { names.append(try r.string(max: maxString)) }
            message = .recordsAsk(names: names)
        case let k: throw DecodeError("unknown membership message \(k)")
        }
        let piggyback = try updates(&r)
        guard r.atEnd else { throw DecodeError("trailing bytes after a membership message") }
        return Membership.Envelope(from: from, incarnation: incarnation, signature: signature, message: message, updates: piggyback)
    }

    static func info(_ i: Membership.Info, _ w: inout BinaryWriter) {
        w.string(i.name)
        w.string(i.address)
        w.string(i.region)
        w.string(i.id)
        w.string(i.configDigest)
    }

    static func info(_ r: inout BinaryReader) throws(DecodeError) -> Membership.Info {
        let name = try r.string(max: maxString)
        guard !name.isEmpty else { throw DecodeError("a member without a name") }
        return Membership.Info(name: name, address: try r.string(max: maxString), region: try r.string(max: maxString),
                               id: try r.string(max: maxString), configDigest: try r.string(max: maxString))
    }

    static func updates(_ list: [Membership.Update], _ w: inout BinaryWriter) {
        w.uint(UInt64(list.count))
        for u in list {
            info(u.info, &w)
            w.byte(u.state.rawValue)
            w.uint(u.incarnation)
            w.string(u.accuser)
            w.blob(u.signature)
        }
    }

    static func updates(_ r: inout BinaryReader) throws(DecodeError) -> [Membership.Update] {
        let n = try r.count(max: maxUpdates)
        var out: [Membership.Update] = []
        out.reserveCapacity(min(n, 1024))
        for _ in 0..<n {
            let i = try info(&r)
            guard let state = Membership.State(rawValue: try r.byte()) else { throw DecodeError("unknown member state") }
            let incarnation = try r.uint()
            let accuser = try r.string(max: maxString)
            out.append(.init(info: i, state: state, incarnation: incarnation, accuser: accuser, signature: try r.blob(max: maxSignature)))
        }
        return out
    }
}
