import ArgumentParser
import Foundation
import GateMeshCore
import GateMeshServer
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
        let (data, _) = try await AdminCall.send(node: node, path: "cluster/status", method: "GET", token: token)
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let status: ClusterStatus
        do {
            status = try AdminJSON.decode(ClusterStatus.self, from: data)
        } catch {
            FileHandle.standardError.write(Data("gatemesh: \(node)/cluster/status is not a status this build reads: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print("cluster: \(status.cluster.mode), \(status.cluster.size) live member(s)\n")
        let differing = Set(status.config.differing)
        Self.table(["NAME", "REGION", "PEER ADDRESS", "STATUS", "INCARNATION", "LAST HEARD", "RTT", "KEYS", "GATEWAYS"], status.members.map { m in
            [m.name + (m.isSelf ? " (self)" : ""), m.region, m.peerAddress.value ?? "", m.status, String(m.incarnation),
             m.isSelf ? "-" : (m.lastHeardMsAgo?.value).map { "\($0) ms ago" } ?? "never",
             (m.rttMs?.value).map { "\($0) ms" } ?? "-",
             String(format: "%.0f%%", m.keySpaceShare * 100),
             m.gatewaysDigest.value.map { String($0.prefix(8)) + (differing.contains(m.name) ? " (differs)" : "") } ?? "-"]
        })
        if !differing.isEmpty {
            print("\nwarning: the gateway settings of \(differing.sorted().joined(separator: ", ")) differ from the other nodes' "
                  + "(compare their config files, then run gatemesh reload on the nodes to change)")
        }
        if !status.budgets.isEmpty {
            print("")
            var rows: [[String]] = []
            for b in status.budgets {
                rows.append([b.rule, b.scope.isEmpty ? "(all)" : b.scope, "\(b.limit)", "\(b.spent)", "\(b.reserved)", ""])
                for n in b.byNode {
                    rows.append(["", "", "", "\(n.spent)", "\(n.reserved)", "  " + (n.name.value ?? n.nodeID)])
                }
            }
            Self.table(["RULE", "SCOPE", "LIMIT", "SPENT", "RESERVED", "NODE"], rows)
        }
        print("\ncache: \(status.cache.hits) hits, \(status.cache.misses) misses, \(status.cache.memory.entries) entries in memory")
        if let st = status.storage {
            let cap = st.maxBytes.value.map { " of a \(Self.mib($0)) cap" } ?? ""
            print("storage: \(Self.mib(st.fileBytes + st.walBytes)) on disk\(cap), \(st.rowsDeletedForSpace) old log rows deleted for space, "
                  + "\(st.rowsFailedToWrite) lost to write errors")
            if let error = st.writeError.value { print("warning: the request log cannot be written: \(error)") }
        }
    }

    /// Bytes as MiB with one decimal.
    static func mib(_ bytes: Int) -> String {
        let tenths = (bytes * 10 + (1 << 19)) >> 20
        return "\(tenths / 10).\(tenths % 10) MiB"
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
                     accept: Set<Int> = [200]) async throws -> (Data, JSONValue) {
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
        let object = JSONValue.parse(data)
        guard accept.contains(status), let root = object, case .object = root else {
            let message = object?["error"]?["message"]?.stringValue ?? String(decoding: data, as: UTF8.self)
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
        let changed = root["changed"]?.arrayValue?.compactMap(\.stringValue) ?? []
        print(changed.isEmpty ? "reloaded: nothing changed" : "reloaded: \(changed.joined(separator: ", ")) changed")
        print("config digest \(root["digest"]?.stringValue ?? "?"), gateways digest \(root["gateways_digest"]?.stringValue ?? "?")")
    }
}
