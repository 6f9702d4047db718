"""Every error case answers with the right status and the JSON error shape."""
import json
import socket
import subprocess

import pytest
import requests

from conftest import free_port


def error(resp):
    body = resp.json()
    assert set(body) == {"error"}, body
    assert {"type", "code", "message"} <= set(body["error"]), body
    assert resp.headers["content-type"] == "application/json"
    return body["error"]


def test_unknown_provider_and_gateway_are_404(node):
    r = requests.post(node.url + "/custom-nothere/chat/completions", json={})
    assert r.status_code == 404 and error(r)["code"] == "unknown_provider"
    r = requests.post(node.url + "/nothing/openai/chat/completions", json={})
    assert r.status_code == 404 and error(r)["code"] == "unknown_provider_or_gateway"
    r = requests.post(node.url + "/v1/acct/nogateway/openai/chat/completions", json={})
    assert r.status_code == 404 and error(r)["code"] == "unknown_gateway"


def test_malformed_paths_are_400(node):
    for path in ("/openai/%2e%2e/secrets", "/azure-openai/only-resource", "/azure-openai/bad!name/dep/chat/completions"):
        r = requests.get(node.url + path)
        assert r.status_code == 400, path
        assert error(r)["code"] == "malformed_path"


def test_body_over_the_limit_is_413(start_node):
    node = start_node(extra_yaml="limits: {max_body_bytes: 1KiB}\n")
    r = requests.post(node.url + "/openai/chat/completions", data=b"x" * 2048, headers={"content-type": "application/json"})
    assert r.status_code == 413 and error(r)["code"] == "body_too_large"

    def chunks():
        for _ in range(8):
            yield b"y" * 512
    r = requests.post(node.url + "/custom-echo/upload", data=chunks())  # chunked, no Content-Length
    assert r.status_code == 413 and error(r)["code"] == "body_too_large"
    ok = requests.post(node.url + "/custom-echo/upload", data=b"z" * 1000)
    assert ok.status_code == 200 and ok.json()["body_bytes"] == 1000


def test_gateway_token_missing_or_wrong_is_401(start_node):
    node = start_node(extra_yaml='gateways:\n  - id: default\n    auth_tokens: ["t1", "t2"]\n')
    url = node.url + "/openai/models"
    r = requests.get(url)
    assert r.status_code == 401 and error(r)["code"] == "missing_gateway_token"
    r = requests.get(url, headers={"x-gatemesh-authorization": "Bearer wrong"})
    assert r.status_code == 401 and error(r)["code"] == "invalid_gateway_token"
    assert requests.get(url, headers={"x-gatemesh-authorization": "Bearer t2"}).status_code == 200
    assert requests.get(url, headers={"cf-aig-authorization": "Bearer t1"}).status_code == 200


def test_upstream_unreachable_is_502(start_node):
    dead = free_port()
    node = start_node(providers=False, extra_yaml=f'providers:\n  openai: {{base_url: "http://127.0.0.1:{dead}/v1"}}\n')
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 502
    e = error(r)
    assert e["code"] == "upstream_unreachable" and "openai" in e["message"]


def test_upstream_timeout_is_504(start_node):
    node = start_node(extra_yaml="upstream: {first_byte_timeout: 500ms}\n")
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": []},
                      headers={"x-mock-hang": "true"}, timeout=10)
    assert r.status_code == 504 and error(r)["code"] == "upstream_timeout"


def test_request_timeout_header_bounds_the_wait_for_the_first_byte(node):
    for header in ("x-gatemesh-request-timeout", "cf-aig-request-timeout"):
        r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": []},
                          headers={header: "300", "x-mock-latency-ms": "3000"}, timeout=10)
        assert r.status_code == 504 and error(r)["code"] == "upstream_timeout"
        assert r.elapsed.total_seconds() < 2
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": []},
                      headers={"x-gatemesh-request-timeout": "soon"})
    assert r.status_code == 400 and error(r)["code"] == "invalid_request_timeout"


def test_upstream_errors_pass_through_unchanged(node):
    r = requests.post(node.url + "/anthropic/v1/messages", json={"model": "c", "max_tokens": 1, "messages": []},
                      headers={"x-mock-status": "400"})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": "mock error with status 400"}}
    r = requests.post(node.url + "/google-ai-studio/v1beta/models/g:generateContent", json={"contents": []},
                      headers={"x-mock-status": "503"})
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"


def test_admin_token_guards_operator_endpoints(node):
    r = requests.get(node.url + "/cluster/status")
    assert r.status_code == 401 and error(r)["code"] == "missing_admin_token"
    r = requests.get(node.url + "/cluster/status", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401 and error(r)["code"] == "invalid_admin_token"
    r = requests.get(node.url + "/cluster/status", headers={"authorization": "Bearer admin-secret"})
    assert r.status_code == 200
    status = r.json()
    assert status["members"][0]["name"] == "test-node" and status["members"][0]["status"] == "alive"
    r = requests.get(node.url + "/api/nothing", headers={"authorization": "Bearer admin-secret"})
    assert r.status_code == 404
    assert requests.get(node.url + "/healthz").json()["status"] == "ok"


def test_operator_api_is_disabled_without_admin_token(start_node):
    node = start_node(admin_token=None)
    r = requests.get(node.url + "/cluster/status", headers={"authorization": "Bearer anything"})
    assert r.status_code == 401 and error(r)["code"] == "admin_disabled"


def test_not_yet_built_endpoints_say_so(node):
    r = requests.post(node.url + "/v1/audio/speech", json={})
    assert r.status_code == 501 and error(r)["code"] == "not_implemented"
    # The unified chat API is built: a body without a model is a clear 400.
    r = requests.post(node.url + "/v1/chat/completions", json={})
    assert r.status_code == 400 and error(r)["code"] == "invalid_model"
    # The universal endpoint is built: an empty list of steps is a clear 400.
    r = requests.post(node.url + "/default", json=[])
    assert r.status_code == 400 and error(r)["code"] == "invalid_universal_request"


def test_oversized_headers_are_refused_not_crashing(node):
    r = requests.get(node.url + "/openai/models", headers={"x-big": "a" * (200 * 1024)})
    assert r.status_code in (400, 431)
    assert requests.get(node.url + "/healthz").status_code == 200


def test_garbage_request_does_not_crash_the_node(node):
    s = socket.create_connection(("127.0.0.1", node.port))
    s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    s.settimeout(5)
    try:
        s.recv(1024)
    except OSError:
        pass
    s.close()
    assert requests.get(node.url + "/healthz").status_code == 200


def test_an_event_id_longer_than_256_bytes_is_refused(node):
    chat = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    ok = requests.post(node.url + "/openai/chat/completions", json=chat, headers={"x-gatemesh-event-id": "e" * 256})
    assert ok.status_code == 200 and ok.headers["x-gatemesh-event-id"] == "e" * 256
    r = requests.post(node.url + "/openai/chat/completions", json=chat, headers={"cf-aig-event-id": "e" * 257})
    assert r.status_code == 400, r.text
    assert error(r)["code"] == "invalid_header" and "257 bytes" in error(r)["message"], r.text


def test_at_max_connections_the_node_stops_accepting_until_one_closes(start_node):
    """limits.max_connections: at the cap the node accepts no more (they wait in the kernel's
    queue) instead of running out of descriptors, where the accept loop would spin; a connection
    that closes lets the next one in."""
    from conftest import eventually
    node = start_node(extra_yaml="limits: {max_connections: 4}\n")
    idle = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(4)]
    try:
        # Each of the 4 is accepted (a request on it is answered), and they stay open.
        for s in idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(node.url + "/healthz", timeout=1)
        idle.pop().close()
        eventually(lambda: requests.get(node.url + "/healthz", timeout=2).status_code, lambda s: s == 200,
                   what="a request answered once a connection closed")
    finally:
        for s in idle:
            s.close()
