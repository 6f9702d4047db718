import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The running node a command talks to, and the admin token it uses.
struct NodeOptions: ParsableArguments {
    @Option(help: "The node's HTTP address, e.g. http://127.0.0.1:8787.")
    var node: String = "http://127.0.0.1:8787"

    @Option(help: "The admin token (default: $GATEMESH_ADMIN_TOKEN).")
    var token: String?
}

/// `gatemesh keys`: virtual keys from a terminal, through a node's admin API (docs/keys.md).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list, revoke and rotate virtual keys through a node's admin API.",
        subcommands: [Create.self, List.self, Revoke.self, Rotate.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a key in a team; prints its id and its secret, which is shown this once.")
        @OptionGroup var node: NodeOptions
        @Option(help: "The team the key belongs to.") var team: String
        @Option(help: "A name to tell the key by.") var name: String?
        @Option(help: "A daily budget in dollars, e.g. 25.") var dailyUSD: String?
        @Option(help: "Allowed models, glob patterns such as openai/* (repeatable).") var model: [String] = []
        @Option(help: "When the key expires, e.g. 2027-01-31T00:00:00Z.") var expiresAt: String?
        @Option(help: "The whole key document as JSON (instead of the options above).") var json: String?

        func run() async throws {
            var document: [String: Any] = ["team": team]
            if let json {
                guard let data = json.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ValidationError("--json must be a JSON object")
                }
                document = object.merging(["team": team]) { a, _ in a }
            }
            if let name { document["name"] = name }
            if let dailyUSD { document["budgets"] = [["id": "daily", "usd": dailyUSD, "window": ["calendar": "day"]]] }
            if !model.isEmpty { document["models"] = model }
            if let expiresAt { document["expires_at"] = expiresAt }
            let body = try JSONSerialization.data(withJSONObject: document)
            let (_, root) = try await AdminCall.send(node: node.node, path: "api/keys", method: "POST", token: node.token, body: body, accept: [201])
            print("id:     \(root["id"] as? String ?? "?")")
            print("team:   \(root["team"] as? String ?? "?")")
            print("secret: \(root["key"] as? String ?? "?")")
            print("(the secret is shown this once: store it now)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (without their secrets).")
        @OptionGroup var node: NodeOptions
        @Option(help: "Only this team's keys.") var team: String?

        func run() async throws {
            let path = team.map { "api/keys?team=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "api/keys"
            let (_, root) = try await AdminCall.send(node: node.node, path: path, method: "GET", token: node.token)
            let keys = root["keys"] as? [[String: Any]] ?? []
            StatusCommand.table(["ID", "TEAM", "NAME", "HINT", "CREATED", "STATE"], keys.map { k in
                let state = k["revoked_at"] is String ? "revoked" : (k["disabled"] as? Bool) == true ? "disabled" : "active"
                return [StatusCommand.s(k["id"]), StatusCommand.s(k["team"]), StatusCommand.s(k["name"]), StatusCommand.s(k["hint"]),
                        StatusCommand.s(k["created_at"]), state]
            })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: refused on every node from now on.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The key's id.") var id: String

        func run() async throws {
            _ = try await AdminCall.send(node: node.node, path: "api/keys/\(id)", method: "DELETE", token: node.token)
            print("revoked \(id)")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a key a new secret; the current one works for the grace period.")
        @OptionGroup var node: NodeOptions
        @Argument(help: "The key's id.") var id: String
        @Option(help: "How long the current secret keeps working, e.g. 1h (default: 0, it stops at once).") var grace: String = "0s"

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["grace": grace])
            let (_, root) = try await AdminCall.send(node: node.node, path: "api/keys/\(id)/rotate", method: "POST", token: node.token, body: body)
            print("secret: \(root["key"] as? String ?? "?")")
            if let until = root["previous_secret_valid_until"] as? String { print("the previous secret works until \(until)") }
            print("(the secret is shown this once: store it now)")
        }
    }
}
