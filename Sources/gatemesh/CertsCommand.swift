import ArgumentParser
import Foundation
import GateMeshPeer

/// `gatemesh certs init` and `gatemesh certs issue NAME`: the cluster CA and node certificates,
/// made with OpenSSL's libraries (no `openssl` command needed).
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create the cluster CA and node certificates for the peer transport.",
        subcommands: [Init.self, Issue.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cluster CA: DIR/ca.pem (share with every node) and DIR/ca.key (keep it safe; only `certs issue` needs it).")

        @Option(help: "The directory to write into (created if missing).")
        var dir: String = "certs"

        @Option(help: "How many days the CA is valid.")
        var days: Int = 3650

        @Flag(help: "Replace an existing CA (every node certificate must then be issued again).")
        var force = false

        func run() throws {
            guard (1...36_500).contains(days) else { throw ValidationError("--days must be from 1 to 36500") }
            let cert = (dir as NSString).appendingPathComponent("ca.pem"), key = (dir as NSString).appendingPathComponent("ca.key")
            if !force, FileManager.default.fileExists(atPath: cert) || FileManager.default.fileExists(atPath: key) {
                throw ValidationError("\(cert) or \(key) exists; pass --force to replace the cluster CA")
            }
            let ca = try ClusterCertificates.makeCA(validSeconds: days * 86_400)
            try CertFiles.write(ca, certPath: cert, keyPath: key, dir: dir)
            print("wrote \(cert) and \(key) (valid \(days) days)")
            print("next: gatemesh certs issue NODE-NAME --host NODE-ADDRESS --dir \(dir)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a node certificate signed by the cluster CA: DIR/NAME.pem and DIR/NAME.key.")

        @Argument(help: "The node's name (node.name in its config); it becomes the certificate's common name.")
        var name: String

        @Option(name: .customLong("host"), help: "A DNS name or IP address the node is reached at (repeatable).")
        var hosts: [String] = []

        @Option(help: "The directory holding ca.pem and ca.key, where the node's files are written.")
        var dir: String = "certs"

        @Option(help: "How many days the certificate is valid.")
        var days: Int = 730

        @Flag(help: "Replace the node's existing certificate and key.")
        var force = false

        func run() throws {
            guard (1...36_500).contains(days) else { throw ValidationError("--days must be from 1 to 36500") }
            // The same rule as node.name: the certificate's name is how peers know the node.
            guard name.range(of: "^[a-z0-9][a-z0-9_-]{0,63}$", options: .regularExpression) != nil else {
                throw ValidationError("the node name must be node.name: 1 to 64 lowercase letters, digits, '-' and '_', starting with a letter or digit")
            }
            let caCert = (dir as NSString).appendingPathComponent("ca.pem"), caKey = (dir as NSString).appendingPathComponent("ca.key")
            let ca: CertificateAndKey
            do {
                ca = CertificateAndKey(certificatePEM: try String(contentsOfFile: caCert, encoding: .utf8),
                                       keyPEM: try String(contentsOfFile: caKey, encoding: .utf8))
            } catch {
                throw ValidationError("cannot read the cluster CA (\(caCert), \(caKey)): run `gatemesh certs init --dir \(dir)` first")
            }
            let node = try ClusterCertificates.issue(name: name, hosts: hosts, ca: ca, validSeconds: days * 86_400)
            let cert = (dir as NSString).appendingPathComponent("\(name).pem"), key = (dir as NSString).appendingPathComponent("\(name).key")
            if !force, FileManager.default.fileExists(atPath: cert) || FileManager.default.fileExists(atPath: key) {
                throw ValidationError("\(cert) or \(key) exists; pass --force to replace them")
            }
            try CertFiles.write(node, certPath: cert, keyPath: key, dir: dir)
            print("wrote \(cert) and \(key) for \(([name] + hosts).joined(separator: ", ")) (valid \(days) days)")
        }
    }
}

enum CertFiles {
    /// Writes the certificate (0644) and the key (0600, never readable by others).
    static func write(_ pair: CertificateAndKey, certPath: String, keyPath: String, dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(pair.certificatePEM.utf8).write(to: URL(fileURLWithPath: certPath))
        _ = FileManager.default.createFile(atPath: keyPath, contents: nil, attributes: [.posixPermissions: 0o600])
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
        try Data(pair.keyPEM.utf8).write(to: URL(fileURLWithPath: keyPath))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
    }
}
