"""The response cache through a real node: HIT after MISS, BYPASS, expiry, streams replayed byte for
byte, one upstream call for 50 concurrent identical requests, restart, purge, and the rules around it."""
import concurrent.futures
import json
import os
import signal
import subprocess
import time

import requests

from conftest import BIN, eventually, wait_http
from test_accounting import admin, cost_nanos, wait_rows

AUTH = {"authorization": "Bearer admin-secret"}
CACHED = """gateways:
  - id: default
    cache: {ttl: 60}
"""
CHAT = '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"cache me"}]}'
# The same request with its keys in another order and other whitespace.
CHAT_REORDERED = '{ "messages": [ {"content": "cache me", "role": "user"} ],\n  "max_tokens": 16, "model": "gpt-4o-mini" }'


def post(node, body=CHAT, headers=None, stream=False):
    # The same provider key as the SDK clients below: answers are shared per client credential.
    return requests.post(node.url + "/openai/chat/completions", data=body, stream=stream,
                         headers={"content-type": "application/json", "authorization": "Bearer sk-test", **(headers or {})})


def upstream_calls(mock):
    return mock.stats()["requests"]


def test_hit_after_miss_with_reordered_keys_costs_nothing_and_logs_what_it_saved(start_node, mock):
    node = start_node(extra_yaml=CACHED)
    before = upstream_calls(mock)
    miss = post(node)
    hit = post(node, CHAT_REORDERED)
    assert miss.status_code == hit.status_code == 200
    assert miss.headers["x-gatemesh-cache-status"] == "MISS" and hit.headers["x-gatemesh-cache-status"] == "HIT"
    assert hit.headers["x-gatemesh-cache-key"] == miss.headers["x-gatemesh-cache-key"]
    assert hit.content == miss.content and hit.headers["content-type"] == miss.headers["content-type"]
    assert upstream_calls(mock) - before == 1
    rows = {r["cache_status"]: r for r in wait_rows(node, 2)}
    usage = miss.json()["usage"]
    cost = cost_nanos("openai", "gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
    assert rows["MISS"]["cost_nanos"] == cost and rows["MISS"]["saved_nanos"] == 0
    assert rows["HIT"]["cost_nanos"] == 0 and rows["HIT"]["saved_nanos"] == cost
    # The OpenAI SDK sees the same answer from the cache.
    import openai
    client = openai.OpenAI(base_url=node.url + "/openai", api_key="sk-test")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "cache me"}])
    assert raw.headers["x-gatemesh-cache-status"] == "HIT"
    assert raw.parse().choices[0].message.content == miss.json()["choices"][0]["message"]["content"]


def test_bypass_refresh_and_what_is_never_cached(start_node, mock):
    node = start_node(extra_yaml=CACHED)
    assert post(node).headers["x-gatemesh-cache-status"] == "MISS"
    before = upstream_calls(mock)
    for headers in ({"x-gatemesh-skip-cache": "true"}, {"cf-aig-skip-cache": "true"}, {"cache-control": "no-store"}):
        r = post(node, headers=headers)
        assert r.status_code == 200 and r.headers["x-gatemesh-cache-status"] == "BYPASS" and "x-gatemesh-cache-key" not in r.headers
    assert upstream_calls(mock) - before == 3
    # no-cache fetches again and stores the new answer.
    assert post(node, headers={"cache-control": "no-cache"}).headers["x-gatemesh-cache-status"] == "MISS"
    assert post(node).headers["x-gatemesh-cache-status"] == "HIT"
    # Errors are never stored.
    failing = CHAT.replace("cache me", "fail me")
    for _ in range(2):
        r = post(node, failing, headers={"x-mock-status": "500"})
        assert r.status_code == 500 and r.headers["x-gatemesh-cache-status"] == "MISS"
    # A custom key serves another body's answer, within this gateway only.
    first = post(node, CHAT.replace("cache me", "one"), headers={"x-gatemesh-cache-key": "my-key"})
    second = post(node, CHAT.replace("cache me", "two"), headers={"cf-aig-cache-key": "my-key"})
    assert first.headers["x-gatemesh-cache-status"] == "MISS" and second.headers["x-gatemesh-cache-status"] == "HIT"
    assert second.content == first.content
    # Bad directives are a 400 that names the header.
    r = post(node, headers={"x-gatemesh-cache-ttl": "forever"})
    assert r.status_code == 400 and "x-gatemesh-cache-ttl" in r.json()["error"]["message"]
    r = post(node, headers={"x-gatemesh-skip-cache": "maybe"})
    assert r.status_code == 400 and "x-gatemesh-skip-cache" in r.json()["error"]["message"]


def test_a_gateway_without_cache_sends_no_status_unless_the_request_asks_with_a_ttl_that_expires(start_node):
    node = start_node()
    assert "x-gatemesh-cache-status" not in post(node).headers
    body = CHAT.replace("cache me", "short-lived")
    assert post(node, body, {"x-gatemesh-cache-ttl": "1"}).headers["x-gatemesh-cache-status"] == "MISS"
    assert post(node, body, {"x-gatemesh-cache-ttl": "1"}).headers["x-gatemesh-cache-status"] == "HIT"
    time.sleep(1.2)
    assert post(node, body, {"x-gatemesh-cache-ttl": "1"}).headers["x-gatemesh-cache-status"] == "MISS"


def test_a_streamed_answer_is_replayed_byte_for_byte_as_a_stream(start_node, mock):
    node = start_node(extra_yaml=CACHED)
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "max_tokens": 20,
                       "messages": [{"role": "user", "content": "stream me please"}]})
    headers = {"x-mock-output-tokens": "12"}
    before = upstream_calls(mock)
    miss = post(node, body, headers, stream=True)
    miss_chunks = [c for c in miss.iter_content(chunk_size=None)]
    hit = post(node, body, headers, stream=True)
    hit_chunks = [c for c in hit.iter_content(chunk_size=None)]
    assert miss.headers["x-gatemesh-cache-status"] == "MISS" and hit.headers["x-gatemesh-cache-status"] == "HIT"
    assert hit.headers["content-type"].startswith("text/event-stream") and "content-length" not in hit.headers
    assert b"".join(hit_chunks) == b"".join(miss_chunks) and b"data: [DONE]" in b"".join(hit_chunks)
    assert len(hit_chunks) > 1
    assert upstream_calls(mock) - before == 1
    # The OpenAI SDK streams the cached answer (its body differs only in key order: the same key).
    import openai
    client = openai.OpenAI(base_url=node.url + "/openai", api_key="sk-test")
    calls = upstream_calls(mock)
    events = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, max_tokens=20, messages=[{"role": "user", "content": "stream me please"}],
        extra_headers=headers))
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text and upstream_calls(mock) == calls


def test_fifty_concurrent_identical_requests_make_one_upstream_call(start_node, mock):
    node = start_node(extra_yaml=CACHED)
    body = CHAT.replace("cache me", "thundering herd")
    before = upstream_calls(mock)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: post(node, body, {"x-mock-latency-ms": "500"}), range(50)))
    assert [a.status_code for a in answers] == [200] * 50
    assert upstream_calls(mock) - before == 1
    statuses = [a.headers["x-gatemesh-cache-status"] for a in answers]
    assert statuses.count("MISS") == 1 and statuses.count("HIT") == 49
    assert len({a.content for a in answers}) == 1
    report = admin(node, "/api/cache")
    assert report["coalesced"] >= 1 and report["hits"] == 49 and report["misses"] == 1


def test_the_cache_survives_a_restart_and_is_purged_by_key_gateway_or_all(start_node, mock):
    node = start_node(extra_yaml=CACHED)
    key = post(node).headers["x-gatemesh-cache-key"]
    other = post(node, CHAT.replace("cache me", "another")).headers["x-gatemesh-cache-key"]
    # The disk copy is written just after the answer.
    eventually(lambda: admin(node, "/api/cache")["disk"]["entries"], lambda n: n == 2, what="two cache entries on disk")
    assert node.stop() == 0
    proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(node.data_dir, "gatemesh.yaml"), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(node.url + "/healthz", proc=proc)
        before = upstream_calls(mock)
        assert post(node).headers["x-gatemesh-cache-status"] == "HIT"
        assert upstream_calls(mock) == before
        report = admin(node, "/api/cache")
        assert report["disk"]["entries"] == 2 and report["memory"]["entries"] == 2
        r = requests.delete(node.url + "/api/cache/" + key, headers=AUTH)
        assert r.status_code == 200 and r.json() == {"purged": 1, "key": key}
        assert post(node).headers["x-gatemesh-cache-status"] == "MISS"
        # An answer is stored just after it went out.
        eventually(lambda: admin(node, "/api/cache")["memory"]["entries"], lambda n: n == 2, what="the answer stored again")
        assert requests.delete(node.url + "/api/cache?gateway=nope", headers=AUTH).status_code == 404
        assert requests.delete(node.url + "/api/cache/not-a-key", headers=AUTH).status_code == 400
        assert requests.delete(node.url + "/api/cache?gateway=default", headers=AUTH).json() == {"purged": 2, "gateway": "default"}
        assert post(node, CHAT.replace("cache me", "another")).headers["x-gatemesh-cache-key"] == other
        eventually(lambda: admin(node, "/api/cache")["memory"]["entries"], lambda n: n == 1, what="the answer stored again")
        assert requests.delete(node.url + "/api/cache", headers=AUTH).json() == {"purged": 1}
        assert requests.delete(node.url + "/api/cache").status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_hit_still_counts_as_a_request_under_rate_limits(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    cache: {ttl: 60}
    rate_limits:
      - {id: two, requests: 2, window: {fixed: 1h}}
""")
    assert [post(node).status_code for _ in range(3)] == [200, 200, 429]


def test_a_downgraded_answer_is_never_stored_under_the_original_requests_key(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    cache: {ttl: 60}
    rate_limits:
      - {id: gpt4o-cap, requests: 1, scope: {only: {model: gpt-4o}}, window: {fixed: 1h}, action: {downgrade: {model: gpt-4o-mini}}}
""")
    body = CHAT.replace("gpt-4o-mini", "gpt-4o")
    first = post(node, body, {"x-gatemesh-skip-cache": "true"})
    assert first.status_code == 200 and "x-gatemesh-downgraded" not in first.headers
    second = post(node, body)
    assert second.status_code == 200 and second.headers["x-gatemesh-downgraded"] == "gpt4o-cap"
    assert second.headers["x-gatemesh-cache-status"] == "BYPASS"
    time.sleep(0.2)
    assert admin(node, "/api/cache")["stored"] == 0


def test_clients_with_different_provider_keys_never_share_answers(start_node, mock):
    """Where clients bring their own provider keys, the cache key holds a digest of the key: tenant
    A's answer is never served to a request with another key, a wrong one, or none (Anthropic's
    x-api-key and Google's key= query parameter too). Where the config stores the key, the
    client's header is replaced, and every client of the gateway shares the answers."""
    node = start_node(extra_yaml=CACHED)
    a = {"authorization": "Bearer sk-tenant-a"}
    assert post(node, headers=a).headers["x-gatemesh-cache-status"] == "MISS"
    assert post(node, headers=a).headers["x-gatemesh-cache-status"] == "HIT"
    for other in ({"authorization": "Bearer sk-tenant-b"}, {"authorization": "Bearer sk-tenant-A"}, {"authorization": ""}):
        r = post(node, headers=other)
        assert r.headers["x-gatemesh-cache-status"] == "MISS", (other, r.headers)
    r = requests.post(node.url + "/openai/chat/completions", data=CHAT, headers={"content-type": "application/json"})
    assert r.headers["x-gatemesh-cache-status"] == "MISS", "no key at all"
    # A custom cache-key is per credential too.
    custom = {"x-gatemesh-cache-key": "shared-answer"}
    assert post(node, headers={**a, **custom}).headers["x-gatemesh-cache-status"] == "MISS"
    assert post(node, headers={**a, **custom}).headers["x-gatemesh-cache-status"] == "HIT"
    assert post(node, headers={"authorization": "Bearer sk-tenant-b", **custom}).headers["x-gatemesh-cache-status"] == "MISS"
    # Anthropic's header.
    msg = '{"model":"claude-3-5-haiku-latest","max_tokens":16,"messages":[{"role":"user","content":"cache me"}]}'
    def anthropic(key):
        return requests.post(node.url + "/anthropic/v1/messages", data=msg,
                             headers={"content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"})
    assert anthropic("ak-1").headers["x-gatemesh-cache-status"] == "MISS"
    assert anthropic("ak-1").headers["x-gatemesh-cache-status"] == "HIT"
    assert anthropic("ak-2").headers["x-gatemesh-cache-status"] == "MISS"
    # Google's key= query parameter.
    gem = '{"contents":[{"parts":[{"text":"cache me"}]}]}'
    def google(key):
        return requests.post(node.url + f"/google-ai-studio/v1beta/models/gemini-1.5-flash:generateContent?key={key}", data=gem,
                             headers={"content-type": "application/json"})
    assert google("g-1").headers["x-gatemesh-cache-status"] == "MISS"
    assert google("g-1").headers["x-gatemesh-cache-status"] == "HIT"
    assert google("g-2").headers["x-gatemesh-cache-status"] == "MISS"


def test_with_a_stored_provider_key_every_client_of_the_gateway_shares_answers(start_node, mock):
    from conftest import mock_providers_yaml
    providers = mock_providers_yaml(mock.url).replace(f'openai: {{base_url: "{mock.url}/v1"}}',
                                                      f'openai: {{base_url: "{mock.url}/v1", api_key: sk-from-config}}')
    node = start_node(extra_yaml=providers + CACHED, providers=False)
    assert post(node, headers={"authorization": "Bearer sk-tenant-a"}).headers["x-gatemesh-cache-status"] == "MISS"
    assert post(node, headers={"authorization": "Bearer sk-tenant-b"}).headers["x-gatemesh-cache-status"] == "HIT"

