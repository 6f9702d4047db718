/// The gateway's own request headers. Each has two spellings, `x-gatemesh-<name>` and Cloudflare
/// AI Gateway's `cf-aig-<name>`, so that a client written for either works unchanged; when both
/// come, the `x-gatemesh-` one wins.
public enum ControlHeader {
    /// Both spellings of the control header `name` (lowercased), the winning one first.
    public static func names(_ name: String) -> [String] { ["x-gatemesh-" + name, "cf-aig-" + name] }

    /// The control header `name`'s value, trimmed of spaces, and the spelling it came under (for
    /// an error that names it). `header` returns a header's value by lowercased name.
    public static func value(_ name: String, in header: (String) -> String?) -> (name: String, value: String)? {
        for spelling in names(name) {
            if let v = header(spelling) { return (spelling, String(v.trimmingSpaces())) }
        }
        return nil
    }
}
