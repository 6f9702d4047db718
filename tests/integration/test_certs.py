"""`gatemesh certs init` and `certs issue`: files, permissions, and certificates that another TLS
stack (Python's ssl, also OpenSSL but driven independently) accepts for mutual TLS 1.3."""
import os
import socket
import ssl
import stat
import subprocess
import tempfile
import threading

from conftest import BIN


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def test_certs_make_a_ca_and_node_certificates_that_mutual_tls_accepts():
    d = tempfile.mkdtemp(prefix="gatemesh-certs-")
    assert run("certs", "init", "--dir", d).returncode == 0
    for name in ("eu-1", "us-1"):
        out = run("certs", "issue", name, "--host", "127.0.0.1", "--host", f"{name}.example.internal", "--dir", d)
        assert out.returncode == 0, out.stderr
    for f in ("ca.key", "eu-1.key", "us-1.key"):
        assert stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o600
    # A second init does not silently replace the CA; a node name must be a name.
    assert run("certs", "init", "--dir", d).returncode != 0
    assert run("certs", "issue", "bad name", "--dir", d).returncode != 0
    assert run("certs", "issue", "Eu-1", "--dir", d).returncode != 0  # node names are lowercase
    assert run("certs", "issue", "eu-1", "--dir", d).returncode != 0  # exists: needs --force
    assert run("certs", "issue", "eu-1", "--host", "127.0.0.1", "--host", "eu-1.example.internal", "--host", "cafe.be",
               "--dir", d, "--force").returncode == 0
    assert run("certs", "issue", "x", "--dir", d + "/missing").returncode != 0

    def context(side, name):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(d, "ca.pem"))
        ctx.load_cert_chain(os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    a, b = socket.socketpair()
    seen = {}

    def serve():
        with context("server", "eu-1").wrap_socket(a, server_side=True) as s:
            seen["client"] = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            s.sendall(s.recv(5).upper())

    t = threading.Thread(target=serve)
    t.start()
    with context("client", "us-1").wrap_socket(b, server_hostname="eu-1.example.internal") as c:
        assert c.version() == "TLSv1.3"
        c.sendall(b"hello")
        assert c.recv(5) == b"HELLO"
    t.join(10)
    assert seen["client"] == "us-1"
