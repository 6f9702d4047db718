import GateMeshAccounting

extension FuzzTargets {
    /// The streamed JSON array scanner (Google's `streamGenerateContent`): the elements do not
    /// depend on how the stream was split, and each is an object's bytes, `{` to its close.
    public static let jsonArray = FuzzTarget(
        name: "json-array",
        summary: "JSONArrayScanner over split input: same elements",
        run: { data in
            var input = FuzzInput(data)
            let lengths = (0..<Int(input.byte() % 8)).map { _ in input.byte() }
            let maxElement = [4 << 20, 2, 16, 100][Int(input.byte() % 4)]
            let bytes = input.rest
            let whole = scanArray([bytes[...]], maxElement: maxElement)
            let split = scanArray(chunks(bytes, lengths: lengths), maxElement: maxElement)
            FuzzCheck.require(whole == split, "JSON array elements depend on how the stream was split")
            for element in whole {
                FuzzCheck.require(element.first == UInt8(ascii: "{") && element.count <= maxElement, "a JSON array element is not an object's bytes")
            }
        },
        seeds: {
            [
                "\0[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi {\"}]}}]},\n{\"usageMetadata\":{\"promptTokenCount\":3}}]",
                "\u{2}\u{3}\u{1}\u{2}[{\"a\":\"\\\"}\"},{\"b\":[1,{\"c\":{}}]}]",
                "\0\u{1}[{\"text\":\"long enough to be skipped\"},{}]",
            ].map { Array($0.utf8) }
        }
    )

    static func scanArray(_ pieces: [ArraySlice<UInt8>], maxElement: Int) -> [[UInt8]] {
        var scanner = JSONArrayScanner(maxElementBytes: maxElement)
        var out: [[UInt8]] = []
        for piece in pieces { scanner.feed(piece) { out.append($0) } }
        return out
    }
}
