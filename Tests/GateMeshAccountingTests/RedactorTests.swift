import GateMeshAccounting
import Testing

/// `logging.redact`: what the built-in rules and an operator's own rewrite in a stored payload.
@Suite struct RedactorTests {
    func redactor(_ names: String...) -> Redactor { Redactor(rules: names.compactMap(Redactor.builtIn)) }

    @Test func apiKeysOfEveryKindGo() {
        let r = redactor("api_keys")
        let text = #"{"key":"sk-proj-AbCdEfGhIjKlMnOpQrStUv","aws":"AKIAIOSFODNN7EXAMPLE","h":"Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc","g":"AIzaSyA-1234567890abcdefghijklmnopqrstu","n":"sk-short"}"#
        let out = r.redact(text)
        #expect(!out.contains("AbCdEfGhIj") && !out.contains("AKIAIOSFODNN7EXAMPLE") && !out.contains("eyJhbGci") && !out.contains("AIzaSy"))
        #expect(out.contains(#""key":"[REDACTED:api_key]""#))
        // Too short to be a key: kept.
        #expect(out.contains("sk-short"))
    }

    @Test func emailsGo() {
        #expect(redactor("emails").redact("write to jane.doe+ai@example.co.uk or bob@corp.example today")
            == "write to [REDACTED:email] or [REDACTED:email] today")
    }

    /// Card numbers in any grouping go when they pass the Luhn check; other long numbers stay.
    @Test func cardNumbersThatPassLuhnGo() {
        let r = redactor("card_numbers")
        #expect(r.redact("card 4111 1111 1111 1111, exp 12/29") == "card [REDACTED:card_number], exp 12/29")
        #expect(r.redact("card 5500-0000-0000-0004.") == "card [REDACTED:card_number].")
        #expect(r.redact("order 4111111111111112 shipped") == "order 4111111111111112 shipped")
        #expect(r.redact("id 1234567890") == "id 1234567890")
    }

    @Test func anOperatorsPatternWithGroupsAndTheRulesInOrder() throws {
        let r = Redactor(rules: [try Redactor.rule("ssn", pattern: #"(\d{3})-(\d{2})-(\d{4})"#, replace: "[SSN]"), Redactor.builtIn("emails")!])
        #expect(r.redact("ssn 123-45-6789 of a@b.io") == "ssn [SSN] of [REDACTED:email]")
        #expect(throws: (any Error).self) { try Redactor.rule("bad", pattern: "(unclosed", replace: "") }
    }

    @Test func bodiesThatAreNotTextAreNotStoredUnredacted() {
        let r = redactor("emails")
        #expect(r.redact(body: Array("a@b.io".utf8)) == Array("[REDACTED:email]".utf8))
        #expect(String(decoding: r.redact(body: [0x1f, 0x8b, 0xff, 0x00]), as: UTF8.self) == "[not stored: 4 bytes that are not UTF-8 text, with redaction on]")
        #expect(Redactor(rules: []).redact(body: [0xff]) == [0xff])
    }
}
