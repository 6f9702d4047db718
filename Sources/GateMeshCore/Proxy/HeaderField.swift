/// One header as the gateway keeps it outside swift-http-types (in a cached answer, a universal
/// step, the upstream request): its name, lowercased where it came from HTTP/2 or
/// swift-http-types, and its value.
public struct HeaderField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public init(name: String, value: String) {
        self.init(name, value)
    }
}
