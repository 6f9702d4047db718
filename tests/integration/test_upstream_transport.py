"""The upstream side of the proxy: TLS and HTTP/2, proxies from the environment, timeouts,
streamed uploads and back-pressure, each through a real node."""
import datetime
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

from conftest import free_port, wait_http

H2_APP = '''
import gzip, json

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if scope["path"].endswith("/gzip/chat/completions"):
        # Like a real provider: a non-streamed answer, compressed because the client accepts gzip.
        await receive()
        body = json.dumps({"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}).encode()
        out = [(b"content-type", b"application/json"), (b"x-saw-accept-encoding", headers.get(b"accept-encoding", b""))]
        if b"gzip" in headers.get(b"accept-encoding", b""):
            body = gzip.compress(body)
            out.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": body})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = ('{"http_version":"%s","path":"%s","bytes":%d}' % (scope["http_version"], scope["path"], len(body))).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
'''


def self_signed_cert(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_h2_server():
    pytest.importorskip("hypercorn")
    directory = tempfile.mkdtemp()
    cert, key = self_signed_cert(directory)
    with open(os.path.join(directory, "h2app.py"), "w") as f:
        f.write(H2_APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hypercorn", "--certfile", cert, "--keyfile", key,
                             "--bind", f"127.0.0.1:{port}", "h2app:app"], cwd=directory,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            requests.get(f"https://127.0.0.1:{port}/", verify=cert, timeout=1)
            break
        except requests.exceptions.RequestException:
            time.sleep(0.1)
    yield port, cert
    proc.terminate()
    proc.wait(5)


def test_https_upstream_speaks_http2_and_verifies_the_certificate(start_node, tls_h2_server):
    port, cert = tls_h2_server
    node = start_node(providers=False, extra_yaml=f'upstream: {{ca_file: "{cert}"}}\n'
                      f'providers:\n  custom-h2: {{base_url: "https://localhost:{port}/base"}}\n')
    r = requests.post(node.url + "/custom-h2/chat/completions", data=b"x" * 1000)
    assert r.status_code == 200, r.text
    assert r.json() == {"http_version": "2", "path": "/base/chat/completions", "bytes": 1000}


def test_compressed_provider_answers_are_decoded_and_still_charged(start_node, tls_h2_server):
    port, cert = tls_h2_server
    node = start_node(providers=False, extra_yaml=f'upstream: {{ca_file: "{cert}"}}\n'
                      f'providers:\n  custom-h2: {{base_url: "https://localhost:{port}/base", models: {{gpt-4o-mini: {{input: "1", output: "2"}}}}}}\n')
    r = requests.post(node.url + "/custom-h2/gzip/chat/completions", json={"model": "gpt-4o-mini", "messages": []},
                      headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 500
    assert b"gzip" in r.headers["x-saw-accept-encoding"].encode(), "the node asks the provider for compression"
    rows = requests.get(node.url + "/api/logs", headers={"authorization": "Bearer admin-secret"}).json()["data"]
    deadline = time.time() + 5
    while not rows and time.time() < deadline:
        time.sleep(0.05)
        rows = requests.get(node.url + "/api/logs", headers={"authorization": "Bearer admin-secret"}).json()["data"]
    assert rows[0]["tokens"]["input"] == 1000 and rows[0]["tokens"]["output"] == 500 and not rows[0]["usage_estimated"]
    assert rows[0]["cost_nanos"] == 2_000_000  # 1000 × $1/M + 500 × $2/M


def test_untrusted_upstream_certificate_is_refused(start_node, tls_h2_server):
    port, _ = tls_h2_server
    node = start_node(providers=False, extra_yaml=f'providers:\n  custom-h2: {{base_url: "https://localhost:{port}"}}\n')
    r = requests.get(node.url + "/custom-h2/models")
    assert r.status_code == 502
    e = r.json()["error"]
    assert e["code"] == "upstream_unreachable" and "certificate" in e["message"].lower()


class RecordingProxy(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):
        RecordingProxy.seen.append(self.path)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"via":"proxy"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_proxy_from_the_environment_is_used_and_no_proxy_honoured(start_node, mock):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_port}"
    try:
        node = start_node(env={"http_proxy": proxy, "no_proxy": "", "NO_PROXY": ""})
        r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": []})
        assert r.json() == {"via": "proxy"}
        assert RecordingProxy.seen[-1] == f"{mock.url}/v1/chat/completions"  # absolute-form, as proxies get it
        bypass = start_node(env={"http_proxy": proxy, "no_proxy": "127.0.0.1"})
        count = len(RecordingProxy.seen)
        r = requests.post(bypass.url + "/openai/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert r.json()["object"] == "chat.completion"
        assert len(RecordingProxy.seen) == count
    finally:
        server.shutdown()


def test_total_timeout_cuts_a_stream_that_runs_too_long(start_node):
    node = start_node(extra_yaml="upstream: {total_timeout: 1s}\n")
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.request("POST", "/openai/chat/completions", headers={
        "content-type": "application/json", "x-mock-output-tokens": "10", "x-mock-token-delay-ms": "300"},
        body=json.dumps({"model": "m", "stream": True, "messages": []}))
    resp = conn.getresponse()
    assert resp.status == 200
    started = time.time()
    try:
        body = resp.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    assert b"[DONE]" not in body
    assert time.time() - started < 3


def test_large_upload_streams_through(node):
    payload = os.urandom(6 * 1024 * 1024)  # above the 4 MiB read-whole threshold
    r = requests.put(node.url + "/custom-echo/big", data=payload, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["body_bytes"] == len(payload)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) // 1024


def test_slow_client_pauses_the_provider_instead_of_buffering(node, mock):
    tokens = 500_000  # ~120 MB of events: more than every socket buffer on the way can hold
    before = mock.stats()["streams_completed"]
    rss_before = rss_mb(node.proc.pid)
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    conn.request("POST", "/openai/chat/completions", headers={"content-type": "application/json", "x-mock-output-tokens": str(tokens)},
                 body=json.dumps({"model": "m", "stream": True, "messages": []}))
    resp = conn.getresponse()
    assert resp.status == 200
    time.sleep(4)  # the client reads nothing
    assert mock.stats()["streams_completed"] == before, "the gateway buffered the whole stream for a client that was not reading"
    grown = rss_mb(node.proc.pid) - rss_before
    assert grown < 40, f"the node grew by {grown} MB while its client was not reading"
    count, tail = 0, b""
    while True:
        block = resp.read1(1 << 20)
        if not block:
            break
        count += (tail + block).count(b"\n\n")
        tail = block[-1:]
    assert count == tokens + 3, "events were lost or duplicated on the way"
    deadline = time.time() + 5
    while mock.stats()["streams_completed"] == before and time.time() < deadline:
        time.sleep(0.05)
    assert mock.stats()["streams_completed"] == before + 1


def test_mock_fails_after_n_requests(node):
    url = node.url + "/openai/chat/completions"
    headers = {"x-mock-fail-after": "2", "x-mock-fail-key": "fail-test", "x-mock-status": "503"}
    statuses = [requests.post(url, json={"model": "m", "messages": []}, headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 503]


def closes_reused_connections_server():
    """An upstream that answers the first request on each connection with keep-alive, and closes
    the connection, unanswered, after reading the second: as a provider's load balancer does when
    it times out an idle keep-alive connection just as the client reuses it."""
    import socket
    answer = json.dumps({"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    served = {"answered": 0, "dropped": 0}

    def read_request(conn, pending):
        while b"\r\n\r\n" not in pending:
            data = conn.recv(65536)
            if not data:
                return None, b""
            pending += data
        head, rest = pending.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        return head, rest[length:]

    def serve(conn):
        with conn:
            head, pending = read_request(conn, b"")
            if head is None:
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\ncontent-length: "
                         + str(len(answer)).encode() + b"\r\n\r\n" + answer)
            served["answered"] += 1
            head, _ = read_request(conn, pending)
            if head is not None:
                served["dropped"] += 1  # closed without an answer

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return listener, served


def test_a_body_is_sent_again_when_a_reused_connection_turns_out_closed(start_node):
    """libcurl resends a request whose reused connection closed before any answer, if it can
    rewind the body: an in-memory body can (the seek callback), so no 502."""
    listener, served = closes_reused_connections_server()
    try:
        port = listener.getsockname()[1]
        node = start_node(extra_yaml=f'providers:\n  custom-flaky: {{base_url: "http://127.0.0.1:{port}/v1"}}\n', providers=False)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for i in range(6):
            r = requests.post(node.url + "/custom-flaky/chat/completions", json=body, timeout=30)
            assert r.status_code == 200, (i, r.status_code, r.text)
        assert served["dropped"] >= 3, served
    finally:
        listener.close()


def test_a_client_that_abandons_a_chunked_upload_is_logged_as_499(node):
    """A chunked upload the client breaks off is the client's doing: the row says 499 and why, not
    a 502 upstream failure."""
    import socket
    from test_accounting import wait_rows
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"POST /custom-echo/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % 4096 + b"a" * 4096 + b"\r\n")
        # Once the request is being forwarded (in flight, beside the status request), the client goes.
        from conftest import eventually
        eventually(lambda: requests.get(node.url + "/cluster/status", headers={"authorization": "Bearer admin-secret"},
                                        timeout=5).json()["members"][0]["in_flight"],
                   lambda n: n >= 2, what="the upload in flight")
    rows = wait_rows(node, 1)
    assert rows[0]["status"] == 499, rows[0]
    assert "closed its connection before its request body was complete" in rows[0]["error"], rows[0]
