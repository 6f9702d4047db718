import ArgumentParser
import Foundation
import GateMeshCore
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
            var document = JSONObject()
            if let json {
                guard case .object(let object)? = JSONValue.parse(json) else { throw ValidationError("--json must be a JSON object") }
                document = object
            }
            // The document's own team wins over --team (as it always has).
            if document["team"] == nil { document["team"] = .string(team) }
            if let name { document["name"] = .string(name) }
            if let dailyUSD {
                document["budgets"] = .array([.object(["id": "daily", "usd": .string(dailyUSD), "window": .object(["calendar": "day"])])])
            }
            if !model.isEmpty { document["models"] = .array(model.map(JSONValue.string)) }
            if let expiresAt { document["expires_at"] = .string(expiresAt) }
            let (_, root) = try await AdminCall.send(node: node.node, path: "api/keys", method: "POST", token: node.token,
                                                     body: Data(JSONValue.object(document).bytes), accept: [201])
            print("id:     \(root["id"]?.stringValue ?? "?")")
            print("team:   \(root["team"]?.stringValue ?? "?")")
            print("secret: \(root["key"]?.stringValue ?? "?")")
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
            let keys = root["keys"]?.arrayValue ?? []
            StatusCommand.table(["ID", "TEAM", "NAME", "HINT", "CREATED", "STATE"], keys.map { k in
                let state = k["revoked_at"]?.stringValue != nil ? "revoked" : k["disabled"]?.boolValue == true ? "disabled" : "active"
                return ["id", "team", "name", "hint", "created_at"].map { k[$0]?.stringValue ?? "" } + [state]
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
            let body = Data(JSONValue.object(["grace": .string(grace)]).bytes)
            let (_, root) = try await AdminCall.send(node: node.node, path: "api/keys/\(id)/rotate", method: "POST", token: node.token, body: body)
            print("secret: \(root["key"]?.stringValue ?? "?")")
            if let until = root["previous_secret_valid_until"]?.stringValue { print("the previous secret works until \(until)") }
            print("(the secret is shown this once: store it now)")
        }
    }
}
