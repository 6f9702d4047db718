import HTTPTypes

extension HTTPFields {
    /// The fields as (lowercased name, value) pairs, in order.
    var lowercasedPairs: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(count)
        for field in self { out.append((field.name.canonicalName, field.value)) }
        return out
    }

    /// The first value of a header named by its lowercased name.
    func value(_ lowercasedName: String) -> String? {
        guard let name = HTTPField.Name(lowercasedName) else { return nil }
        return self[name]
    }
}
