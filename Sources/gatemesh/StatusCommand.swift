import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `gatemesh status --node URL`: a node's `/cluster/status`, printed as tables.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Print the cluster as one node sees it: members, budgets, cache.")

    @Option(help: "The node's HTTP address, e.g. http://127.0.0.1:8787.")
    var node: String = "http://127.0.0.1:8787"

    @Option(help: "The admin token (default: $GATEMESH_ADMIN_TOKEN).")
    var token: String?

    @Flag(help: "Print the raw JSON instead of tables.")
    var json = false

    func run() async throws {
        let (data, root) = try await AdminCall.send(node: node, path: "cluster/status", method: "GET", token: token)
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let cluster = root["cluster"] as? [String: Any] ?? [:]
        print("cluster: \(cluster["mode"] ?? "?"), \(cluster["size"] ?? "?") live member(s)\n")
        let members = root["members"] as? [[String: Any]] ?? []
        let agreement = root["config"] as? [String: Any] ?? [:]
        let differing = Set(agreement["differing"] as? [String] ?? [])
        Self.table(["NAME", "REGION", "PEER ADDRESS", "STATUS", "INCARNATION", "LAST HEARD", "RTT", "KEYS", "GATEWAYS"], members.map { m in
            [Self.s(m["name"]) + ((m["self"] as? Bool) == true ? " (self)" : ""), Self.s(m["region"]), Self.s(m["peer_address"]),
             Self.s(m["status"]), Self.s(m["incarnation"]),
             (m["self"] as? Bool) == true ? "-" : (m["last_heard_ms_ago"] as? Int).map { "\($0) ms ago" } ?? "never",
             (m["rtt_ms"] as? Int).map { "\($0) ms" } ?? "-",
             (m["key_space_share"] as? Double).map { String(format: "%.0f%%", $0 * 100) } ?? "-",
             (m["gateways_digest"] as? String).map { String($0.prefix(8)) + (differing.contains(Self.s(m["name"])) ? " (differs)" : "") } ?? "-"]
        })
        if !differing.isEmpty {
            print("\nwarning: the gateway settings of \(differing.sorted().joined(separator: ", ")) differ from the other nodes' "
                  + "(compare their config files, then run gatemesh reload on the nodes to change)")
        }
        let budgets = root["budgets"] as? [[String: Any]] ?? []
        if !budgets.isEmpty {
            print("")
            var rows: [[String]] = []
            for b in budgets {
                rows.append([Self.s(b["rule"]), Self.s(b["scope"]).isEmpty ? "(all)" : Self.s(b["scope"]), Self.s(b["limit"]),
                             Self.s(b["spent"]), Self.s(b["reserved"]), ""])
                for n in b["by_node"] as? [[String: Any]] ?? [] {
                    rows.append(["", "", "", Self.s(n["spent"]), Self.s(n["reserved"]), "  " + (n["name"] as? String ?? Self.s(n["node_id"]))])
                }
            }
            Self.table(["RULE", "SCOPE", "LIMIT", "SPENT", "RESERVED", "NODE"], rows)
        }
        if let cache = root["cache"] as? [String: Any] {
            let memory = cache["memory"] as? [String: Any] ?? [:]
            print("\ncache: \(Self.s(cache["hits"])) hits, \(Self.s(cache["misses"])) misses, \(Self.s(memory["entries"])) entries in memory")
        }
    }

    static func s(_ v: Any?) -> String {
        switch v {
        case nil, is NSNull: return ""
        case let s as String: return s
        default: return "\(v!)"
        }
    }

    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        print(line(header))
        for r in rows { print(line(r)) }
    }
}

/// One call to a node's operator API, for the commands that talk to a running node.
enum AdminCall {
    /// Sends the request and returns the body and its JSON object; prints the node's error and
    /// exits with status 1 on anything but a 200.
    static func send(node: String, path: String, method: String, token: String?, body: Data? = nil,
                     accept: Set<Int> = [200]) async throws -> (Data, [String: Any]) {
        guard let url = URL(string: node.hasSuffix("/") ? node + path : node + "/" + path),
              url.scheme == "http" || url.scheme == "https" else {
            throw ValidationError("--node must be an http:// or https:// URL")
        }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let token = token ?? ProcessInfo.processInfo.environment["GATEMESH_ADMIN_TOKEN"] {
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            FileHandle.standardError.write(Data("gatemesh: cannot reach \(url): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard accept.contains(status), let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            let message = (object?["error"] as? [String: Any])?["message"] as? String ?? String(decoding: data, as: UTF8.self)
            FileHandle.standardError.write(Data("gatemesh: \(url) answered \(status): \(message)\n".utf8))
            throw ExitCode(1)
        }
        return (data, root)
    }
}

/// `gatemesh reload --node URL`: the node re-reads its config file (as on SIGHUP) and says what
/// changed, or why nothing did.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Have a running node re-read its config file: providers, gateways, rules, tokens and cache settings change in place.")

    @OptionGroup var node: NodeOptions

    func run() async throws {
        let (_, root) = try await AdminCall.send(node: node.node, path: "api/config/reload", method: "POST", token: node.token)
        let changed = root["changed"] as? [String] ?? []
        print(changed.isEmpty ? "reloaded: nothing changed" : "reloaded: \(changed.joined(separator: ", ")) changed")
        print("config digest \(root["digest"] as? String ?? "?"), gateways digest \(root["gateways_digest"] as? String ?? "?")")
    }
}
