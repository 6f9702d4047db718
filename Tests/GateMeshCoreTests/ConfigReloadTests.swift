import GateMeshConfig
import GateMeshCore
import Testing

@Suite struct ConfigReloadTests {
    let base = """
    node: {name: eu-1, listen: "127.0.0.1:8787", data_dir: /tmp/x}
    providers:
      openai: {base_url: "http://a.example/v1", models: {m1: {input: "1", output: "2"}, m2: {input: "3", output: "4"}}}
      anthropic: {base_url: "http://b.example"}
    gateways:
      - id: default
        auth_tokens: [t1]
        budgets:
          - {id: daily, usd: "5", window: {calendar: day}}
    cluster:
      listen: "127.0.0.1:7946"
      seeds: ["127.0.0.1:7946"]
      tls: {ca: ca.pem, cert: eu-1.pem, key: eu-1.key}
    """

    func load(_ yaml: String) throws -> Settings { try ConfigLoader.parse(yaml: yaml, environment: [:]) }

    @Test func settingsReadOnlyAtStartAreNamedAndTheRestAreNot() throws {
        let old = try load(base)
        #expect(old.restartOnlyChanges(to: old).isEmpty && old.changedSections(to: old).isEmpty)
        let inPlace = try load(base.replacingOccurrences(of: "[t1]", with: "[t2]").replacingOccurrences(of: "\"5\"", with: "\"6\"")
            .replacingOccurrences(of: "http://b.example", with: "http://c.example"))
        #expect(old.restartOnlyChanges(to: inPlace).isEmpty)
        #expect(old.changedSections(to: inPlace) == ["providers", "gateways"])
        let restart = try load(base.replacingOccurrences(of: "127.0.0.1:8787", with: "127.0.0.1:9000")
            .replacingOccurrences(of: "seeds: [\"127.0.0.1:7946\"]", with: "seeds: [\"127.0.0.1:7947\"]")
            + "\nupstream: {http2: false}\nlogging: {max_rows: 10}\n")
        #expect(old.restartOnlyChanges(to: restart) == ["node.listen", "cluster.seeds", "upstream.http2", "logging.max_rows"])
        var alone = old
        alone.cluster = nil
        #expect(old.restartOnlyChanges(to: alone) == ["cluster"])
    }

    /// Two processes with the same settings write the same text, whatever order their
    /// dictionaries iterate in; any difference in a setting shows.
    @Test func theCanonicalTextDoesNotDependOnDictionaryOrder() throws {
        let a = try load(base)
        var b = a
        // The same providers, inserted in the other order (and so, likely, iterated in another).
        b.providers = [:]
        for key in a.providers.keys.sorted().reversed() { b.providers[key] = a.providers[key] }
        b.providers["openai"]?.models = [:]
        for key in a.providers["openai"]!.models.keys.sorted().reversed() { b.providers["openai"]?.models[key] = a.providers["openai"]!.models[key] }
        #expect(CanonicalText.of(a) == CanonicalText.of(b))
        #expect(CanonicalText.of(a.gateways) == CanonicalText.of(b.gateways))
        b.gateways[0].authTokens = ["t2"]
        #expect(CanonicalText.of(a.gateways) != CanonicalText.of(b.gateways))
        #expect(CanonicalText.of(a).contains("authTokens=[\"t1\"]"))
        let optional: Int? = nil
        #expect(CanonicalText.of(optional) == "nil" && CanonicalText.of(Set(["b", "a"])) == "<\"a\",\"b\">")
    }
}
