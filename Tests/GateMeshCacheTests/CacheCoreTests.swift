import GateMeshCache
import GateMeshCore
import Testing

@Suite struct CanonicalJSONTests {
    func canon(_ s: String) -> String? { CanonicalJSON.canonical(Array(s.utf8)).map { String(decoding: $0, as: UTF8.self) } }

    @Test func keyOrderWhitespaceAndEscapesDoNotMatter() {
        let a = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"max_tokens":16}"#
        let b = "{ \"max_tokens\" : 16,\n \"messages\": [ {\"content\": \"café \\\"q\\\"\", \"role\": \"user\"} ],\t\"model\": \"gpt-4o-mini\" }"
        #expect(canon(a) != nil && canon(a) == canon(b))
        #expect(canon(a) == #"{"max_tokens":16,"messages":[{"content":"café \"q\"","role":"user"}],"model":"gpt-4o-mini"}"#)
    }

    @Test func valuesThatDifferStayDifferent() {
        #expect(canon(#"{"a":1}"#) != canon(#"{"a":1.0}"#))
        #expect(canon(#"{"a":[1,2]}"#) != canon(#"{"a":[2,1]}"#))
        #expect(canon(#"{"a":"x"}"#) != canon(#"{"a":"X"}"#))
        #expect(canon(#"{"a":null,"b":true,"c":false,"d":-1.5e3,"e":"\ud83d\ude00\n\u0001"}"#) == #"{"a":null,"b":true,"c":false,"d":-1.5e3,"e":"😀\n\u0001"}"#)
    }

    @Test func notJSONIsNil() {
        for bad in ["", "{", #"{"a":}"#, "[1,]", #"{"a":1}x"#, "01x", #""\x""#, "nul", #"{"a" 1}"#, #""\ud800""#, "1.", "-", "1e"] {
            #expect(canon(bad) == nil, "\(bad)")
        }
        #expect(canon(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)) == nil)
        #expect(canon(" [1, 2] ") == "[1,2]")
    }
}

@Suite struct CacheKeyTests {
    @Test func theKeyIgnoresCredentialsAndMetadataButNotTheHeadersThatChangeTheAnswer() {
        let body = Array(#"{"b":1,"a":2}"#.utf8)
        let reordered = Array(#"{"a":2, "b":1}"#.utf8)
        func key(_ headers: [(String, String)], body: [UInt8], gateway: String = "default", path: String = "/v1/chat/completions") -> [UInt8] {
            CacheKeyMaterial.make(gateway: gateway, provider: "openai", method: "POST", path: path,
                                  headers: headers.map { (name: $0.0, value: $0.1) }, body: body)
        }
        let base = key([("authorization", "Bearer a"), ("x-gatemesh-metadata", #"{"u":1}"#)], body: body)
        #expect(base == key([("authorization", "Bearer b")], body: reordered))
        #expect(base != key([("anthropic-version", "2023-06-01")], body: body))
        #expect(base != key([], body: body, gateway: "other"))
        #expect(base != key([], body: body, path: "/v1/chat/completions?x=1"))
        #expect(key([], body: Array("not json".utf8)) != key([], body: Array("not  json".utf8)))
        #expect(CacheKeyMaterial.custom(gateway: "a", key: "k") != CacheKeyMaterial.custom(gateway: "b", key: "k"))
    }

    /// The client's credential enters the key only as the digest the shell passes in: clients with
    /// different keys get different cache keys, and the same key the same one.
    @Test func aClientCredentialDigestSeparatesKeys() {
        let body = Array(#"{"a":1}"#.utf8)
        func key(_ credential: String?) -> [UInt8] {
            CacheKeyMaterial.make(gateway: "g", provider: "openai", method: "POST", path: "/v1/chat/completions", headers: [],
                                  body: body, credential: credential)
        }
        #expect(key("d1") == key("d1") && key("d1") != key("d2") && key("d1") != key(nil))
        #expect(CacheKeyMaterial.custom(gateway: "g", key: "k", credential: "d1") != CacheKeyMaterial.custom(gateway: "g", key: "k", credential: "d2"))
        // What is hashed: each credential header the client sent and the query key, by name.
        let a = CacheKeyMaterial.credential(headers: [(name: "authorization", value: "Bearer a"), (name: "x-other", value: "z")],
                                            queryValues: [])
        let b = CacheKeyMaterial.credential(headers: [(name: "x-api-key", value: "Bearer a")], queryValues: [])
        #expect(!a.isEmpty && a != b)
        #expect(CacheKeyMaterial.credential(headers: [(name: "x-other", value: "z")], queryValues: []).isEmpty)
        #expect(CacheKeyMaterial.credential(headers: [], queryValues: ["k1"]) != CacheKeyMaterial.credential(headers: [], queryValues: ["k2"]))
    }

    @Test func directivesAndDecisions() throws {
        func parse(_ h: [String: String]) throws(GatewayError) -> CacheDirectives { try CacheDirectives.parse { h[$0] } }
        #expect(try parse([:]) == CacheDirectives())
        var d = try parse(["cf-aig-skip-cache": "true", "x-gatemesh-cache-ttl": "60", "x-gatemesh-cache-key": "k1"])
        #expect(d.skip && d.ttlSeconds == 60 && d.customKey == "k1")
        d = try parse(["cache-control": "max-age=0, no-cache"])
        #expect(d.refresh && !d.skip)
        #expect(try parse(["cache-control": "No-Store"]).skip)
        #expect(throws: GatewayError.self) { try parse(["x-gatemesh-cache-ttl": "0"]) }
        #expect(throws: GatewayError.self) { try parse(["x-gatemesh-cache-ttl": "2592001"]) }
        #expect(throws: GatewayError.self) { try parse(["x-gatemesh-skip-cache": "yes"]) }
        #expect(throws: GatewayError.self) { try parse(["x-gatemesh-cache-key": String(repeating: "k", count: 1025)]) }

        #expect(CacheDecision.decide(gatewayTTL: nil, directives: CacheDirectives(), method: "POST", bodyKnown: true) == .off)
        #expect(CacheDecision.decide(gatewayTTL: 300, directives: CacheDirectives(), method: "POST", bodyKnown: true) == .lookup(ttlSeconds: 300))
        var ttl = CacheDirectives()
        ttl.ttlSeconds = 5
        #expect(CacheDecision.decide(gatewayTTL: nil, directives: ttl, method: "POST", bodyKnown: true) == .lookup(ttlSeconds: 5))
        #expect(CacheDecision.decide(gatewayTTL: 300, directives: ttl, method: "DELETE", bodyKnown: true) == .bypass("method DELETE"))
        #expect(CacheDecision.decide(gatewayTTL: 300, directives: ttl, method: "POST", bodyKnown: false) == .bypass("request body too large to key"))
        var skip = CacheDirectives()
        skip.skip = true
        #expect(CacheDecision.decide(gatewayTTL: 300, directives: skip, method: "POST", bodyKnown: true) == .bypass("skip-cache"))
        var refresh = CacheDirectives()
        refresh.refresh = true
        #expect(CacheDecision.decide(gatewayTTL: 300, directives: refresh, method: "POST", bodyKnown: true) == .refresh(ttlSeconds: 300))
    }
}

@Suite struct ByteLRUTests {
    @Test func evictsLeastRecentlyUsedToStayWithinItsBytes() {
        var lru = ByteLRU<Int>(capacityBytes: 100)
        lru.put("a", 1, size: 40, expiresAt: 1000)
        lru.put("b", 2, size: 40, expiresAt: 1000)
        let a = lru.get("a", now: 0)  // a is now the most recent
        #expect(a == 1)
        lru.put("c", 3, size: 40, expiresAt: 1000)  // evicts b
        #expect(lru.keysByRecency == ["c", "a"] && lru.totalBytes == 80 && lru.evictions == 1)
        let b = lru.get("b", now: 0)
        #expect(b == nil)
        let huge = lru.put("huge", 4, size: 101, expiresAt: 1000)
        #expect(!huge)
        lru.put("a", 5, size: 10, expiresAt: 1000)
        let a2 = lru.get("a", now: 0)
        #expect(lru.totalBytes == 50 && a2 == 5)
    }

    @Test func aSmallerCapacityEvictsTheLeastRecentlyUsedAtOnce() {
        var lru = ByteLRU<Int>(capacityBytes: 100)
        for (i, key) in ["a", "b", "c", "d"].enumerated() { lru.put(key, i, size: 25, expiresAt: 1000) }
        _ = lru.get("a", now: 0)
        lru.setCapacity(60)
        #expect(lru.keysByRecency == ["a", "d"] && lru.totalBytes == 50 && lru.evictions == 2)
        lru.setCapacity(200)
        #expect(lru.put("e", 5, size: 150, expiresAt: 1000) && lru.keysByRecency == ["e", "a", "d"])
    }

    @Test func expiresAtItsTimeAndRemovesByPredicate() {
        var lru = ByteLRU<String>(capacityBytes: 1000)
        lru.put("x", "gw1", size: 10, expiresAt: 100)
        lru.put("y", "gw2", size: 10, expiresAt: 200)
        lru.put("z", "gw1", size: 10, expiresAt: 300)
        let before = lru.get("x", now: 99)
        let at = lru.get("x", now: 100)
        #expect(before == "gw1" && at == nil && lru.count == 2)
        let expired = lru.removeExpired(now: 250)
        #expect(expired == 1 && lru.keysByRecency == ["z"])
        lru.put("w", "gw2", size: 10, expiresAt: 900)
        let removed = lru.removeAll { $1 == "gw1" }
        #expect(removed == 1 && lru.keysByRecency == ["w"] && lru.totalBytes == 10)
        // Slots are reused after removals.
        for i in 0..<50 { lru.put("k\(i)", "v", size: 10, expiresAt: 900) }
        #expect(lru.count == 51 && lru.totalBytes == 510)
    }
}

@Suite struct CachedResponseTests {
    @Test func chunksReplayAsTheyArrivedAndOnlyDescriptiveHeadersAreKept() {
        let r = CachedResponse(gateway: "g", provider: "openai", status: 200, headers: [], body: Array("data: a\n\ndata: b\n\n".utf8),
                               chunkEnds: [9, 18], streamed: true, createdAtMs: 0, expiresAtMs: 1, costNanos: 5, servedModel: nil)
        #expect(r.chunks.map { String(decoding: $0, as: UTF8.self) } == ["data: a\n\n", "data: b\n\n"])
        let kept = CachedResponse.storable([("Content-Type", "text/event-stream"), ("Date", "x"), ("x-ratelimit-remaining-requests", "9"),
                                            ("openai-model", "gpt-4o-mini"), ("x-gatemesh-log-id", "l"), ("Set-Cookie", "a=b")])
        #expect(kept == [.init(name: "content-type", value: "text/event-stream"), .init(name: "openai-model", value: "gpt-4o-mini")])
    }
}
