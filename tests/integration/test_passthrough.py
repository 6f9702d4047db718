"""Method, path, query and body pass through untouched; headers follow RFC 9110; every provider maps."""
import json
import subprocess

import pytest
import requests


def echo(resp):
    assert resp.status_code == 200, resp.text
    data = resp.json()
    data["header_map"] = {}
    for name, value in data["headers"]:
        data["header_map"].setdefault(name.lower(), []).append(value)
    return data


def echo_raw(resp):
    data = json.loads(resp.read())
    return {name.lower(): value for name, value in data["headers"]}


def test_method_path_query_and_body_are_untouched(node):
    body = b'{"b": 1,   "a": [1, 2]}\n'
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = requests.request(method, node.url + "/custom-echo/some/Path%20X/v1?b=2&a=1&a=%2F",
                             data=body, headers={"content-type": "application/json"})
        e = echo(r)
        assert e["method"] == method
        assert e["path"] == "/echo/some/Path%20X/v1"
        assert e["query"] == "b=2&a=1&a=%2F"
        assert e["body"] == body.decode()
    e = echo(requests.get(node.url + "/custom-echo/x?q=1"))
    assert e["method"] == "GET" and e["body_bytes"] == 0


def test_hop_by_hop_and_gateway_headers_are_not_forwarded(node):
    r = requests.post(node.url + "/custom-echo/h", data=b"{}", headers={
        "content-type": "application/json", "connection": "keep-alive, x-secret-hop", "x-secret-hop": "1",
        "keep-alive": "timeout=5", "te": "trailers", "proxy-authorization": "Basic abc",
        "x-gatemesh-metadata": '{"a":1}', "cf-aig-skip-cache": "true", "x-custom": "kept",
        "authorization": "Bearer client-key", "openai-organization": "org-1"})
    h = echo(r)["header_map"]
    for gone in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "x-gatemesh-metadata", "cf-aig-skip-cache",
                 "transfer-encoding"):
        assert gone not in h, gone
    assert h["x-custom"] == ["kept"]
    assert h["authorization"] == ["Bearer client-key"]
    assert h["openai-organization"] == ["org-1"]
    assert h["content-type"] == ["application/json"]
    assert h["accept"] == ["*/*"]  # requests' own default, forwarded as sent


def test_upstream_client_adds_no_headers_of_its_own(node):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.request("POST", "/custom-echo/raw", body=b"abc", headers={"x-only": "1"}, encode_chunked=False)
    h = echo_raw(conn.getresponse())
    # Accept-Encoding is the node's own (it negotiates compression with the provider and decodes the
    # answer, so usage can always be read); Host is the mock's authority, not a header field there.
    assert sorted(h) == ["accept-encoding", "content-length", "x-only"] and "gzip" in h["accept-encoding"]
    assert "content-type" not in h and "accept" not in h and "expect" not in h


def test_stored_key_replaces_the_client_key(start_node, mock):
    node = start_node(providers=False, extra_yaml=f"""providers:
  custom-echo: {{base_url: "{mock.url}/echo", api_key: "stored-key"}}
  anthropic: {{base_url: "{mock.url}/echo/anthropic", api_key: "stored-ant"}}
""")
    h = echo(requests.get(node.url + "/custom-echo/x", headers={"authorization": "Bearer client"}))["header_map"]
    assert h["authorization"] == ["Bearer stored-key"]
    h = echo(requests.post(node.url + "/anthropic/v1/messages", json={},
                           headers={"x-api-key": "client", "anthropic-version": "2023-06-01"}))["header_map"]
    assert h["x-api-key"] == ["stored-ant"]
    assert h["anthropic-version"] == ["2023-06-01"]


def test_head_requests_keep_the_length_and_send_no_body(node):
    r = requests.head(node.url + "/openai/models")
    assert r.status_code == 200
    direct = requests.get(node.url + "/openai/models")
    assert r.headers["content-length"] == str(len(direct.content))
    assert "transfer-encoding" not in r.headers and r.content == b""


def test_response_headers_come_back(node):
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert r.headers["x-gatemesh-provider"] == "openai"
    assert r.headers["server"] == "gatemesh-mock"


CHAT = {"model": "m", "messages": [{"role": "user", "content": "two words"}]}


@pytest.mark.parametrize("path,provider", [
    ("/openai/chat/completions", "openai"),
    ("/mistral/v1/chat/completions", "mistral"),
    ("/groq/chat/completions", "groq"),
    ("/deepseek/chat/completions", "deepseek"),
    ("/xai/chat/completions", "xai"),
    ("/grok/chat/completions", "xai"),
    ("/grok/v1/chat/completions", "xai"),
    ("/openrouter/v1/chat/completions", "openrouter"),
    ("/openrouter/chat/completions", "openrouter"),
    ("/perplexity-ai/chat/completions", "perplexity-ai"),
    ("/custom-local/chat/completions", "custom-local"),
    ("/v1/acct/default/groq/chat/completions", "groq"),
    ("/default/deepseek/chat/completions", "deepseek"),
])
def test_every_openai_compatible_provider_maps_through_curl(node, path, provider):
    out = subprocess.run(["curl", "-sS", "-D", "-", node.url + path, "-H", "content-type: application/json",
                          "-H", "authorization: Bearer k", "-d", json.dumps(CHAT)],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert f"x-gatemesh-provider: {provider}" in head
    assert json.loads(body)["usage"]["prompt_tokens"] == 2


def test_azure_resource_and_deployment_are_substituted(node):
    e = echo(requests.post(node.url + "/azure-openai/my-res/gpt4o/chat/completions?api-version=2024-10-21",
                           json=CHAT, headers={"api-key": "az"}))
    assert e["path"] == "/echo/azure/my-res/openai/deployments/gpt4o/chat/completions"
    assert e["query"] == "api-version=2024-10-21"
    assert e["header_map"]["api-key"] == ["az"]


def test_google_and_cohere_map_their_paths(node):
    r = requests.post(node.url + "/google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent",
                      json={"contents": [{"parts": [{"text": "a b c"}]}]}, headers={"x-goog-api-key": "k"})
    assert r.status_code == 200
    assert r.json()["usageMetadata"]["promptTokenCount"] == 3
    # The mock does not speak Cohere's own format: its 404 shows the path the gateway forwarded.
    r = requests.post(node.url + "/cohere/v2/chat", json={})
    assert r.status_code == 404 and "/v2/chat" in r.json()["error"]["message"]
