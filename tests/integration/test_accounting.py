"""Costs, the request log and analytics, end to end through a node and the mock provider."""
import json
import os
import socket
import time
from decimal import Decimal

import anthropic
import openai
import pytest
import requests

from conftest import eventually

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRICES = json.load(open(os.path.join(ROOT, "Sources", "GateMeshAccounting", "Pricing", "prices.json")))


def price(provider, model):
    for m in PRICES["models"]:
        if m["provider"] == provider and (m["model"] == model or model in m.get("aliases", [])):
            return m
    raise KeyError(model)


def cost_nanos(provider, model, inp, out):
    """The cost by hand: dollars per million tokens × tokens, in nano-dollars, rounded half-up once."""
    p = price(provider, model)
    picos = Decimal(p["input"]) * 1_000_000 * inp + Decimal(p["output"]) * 1_000_000 * out
    return int((picos + 500) // 1000)


def admin(node, path, **params):
    r = requests.get(node.url + path, params=params, headers={"authorization": "Bearer admin-secret"})
    assert r.status_code == 200, r.text
    if path == "/api/budgets":
        # A request's spend counts once its log row is on disk (within ~100 ms); until then it
        # shows as reserved. Tests compare settled figures: wait for the writer.
        deadline = time.time() + 3
        while time.time() < deadline and any(s["reserved"] not in (0, "0.000000000")
                                             for rule in r.json()["rules"] for s in rule["scopes"]):
            time.sleep(0.05)
            r = requests.get(node.url + path, params=params, headers={"authorization": "Bearer admin-secret"})
    return r.json()


def wait_rows(node, count, timeout=10, **params):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = admin(node, "/api/logs", limit=1000, **params)["data"]
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"expected {count} log rows, have {len(rows)}")


def test_summed_cost_matches_the_price_table_to_the_nano(node):
    oa = openai.OpenAI(base_url=node.url + "/openai", api_key="sk", max_retries=0)
    an = anthropic.Anthropic(base_url=node.url + "/anthropic", api_key="sk", max_retries=0)
    expected = 0
    for words in (1, 7, 40):
        prompt = " ".join(["word"] * words)
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}],
                                   extra_headers={"x-mock-output-tokens": str(words * 2)})
        expected += cost_nanos("openai", "gpt-4o-mini", words, words * 2)
        for _ in oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True,
                                            extra_headers={"x-mock-output-tokens": "9"}):
            pass
        expected += cost_nanos("openai", "gpt-4o-mini", words, 9)
        with an.messages.stream(model="claude-sonnet-4-5", max_tokens=11, messages=[{"role": "user", "content": prompt}]) as s:
            s.get_final_message()
        expected += cost_nanos("anthropic", "claude-sonnet-4-5", words, 11)
        r = requests.post(node.url + "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                          json={"contents": [{"parts": [{"text": prompt}]}], "generationConfig": {"maxOutputTokens": 5}})
        assert r.status_code == 200
        expected += cost_nanos("google-ai-studio", "gemini-2.5-flash", words, 5)
    rows = wait_rows(node, 12)
    assert all(not r["usage_estimated"] for r in rows)
    assert sum(r["cost_nanos"] for r in rows) == expected
    totals = admin(node, "/api/analytics", step="1m")["totals"]
    assert totals["requests"] == 12 and totals["cost_nanos"] == expected
    assert Decimal(totals["cost"]) == Decimal(expected) / Decimal(10**9)
    by_provider = {g["key"]: g["totals"] for g in admin(node, "/api/analytics", group_by="provider", step="1h")["groups"]}
    assert set(by_provider) == {"openai", "anthropic", "google-ai-studio"}
    assert by_provider["openai"]["requests"] == 6
    assert sum(g["cost_nanos"] for g in by_provider.values()) == expected
    assert by_provider["anthropic"]["output_tokens"] == 33
    assert by_provider["openai"]["latency_p50_ms"] is not None
    # /metrics agrees with the log.
    metrics = requests.get(node.url + "/metrics", headers={"authorization": "Bearer admin-secret"})
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    series = parse_metrics(metrics.text)
    assert sum(v for (name, _), v in series.items() if name == "gatemesh_cost_nanodollars_total") == expected
    assert sum(v for (name, _), v in series.items() if name == "gatemesh_requests_total") == 12
    assert series[("gatemesh_requests_total", (("gateway", "default"), ("model", "claude-sonnet-4-5"), ("provider", "anthropic"), ("status", "200")))] == 3
    assert sum(v for (name, labels), v in series.items() if name == "gatemesh_tokens_total" and ("kind", "output") in labels) == \
        by_provider["openai"]["output_tokens"] + by_provider["anthropic"]["output_tokens"] + by_provider["google-ai-studio"]["output_tokens"]
    assert series[("gatemesh_log_rows_dropped", ())] == 0
    assert any(name == "gatemesh_request_duration_seconds_bucket" for name, _ in series)


def parse_metrics(text):
    """Prometheus text format -> {(name, sorted label pairs): value}."""
    import re
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def test_stream_usage_is_logged_but_invisible_to_a_client_that_did_not_ask(node):
    r = requests.post(node.url + "/openai/chat/completions", stream=True, headers={"x-mock-output-tokens": "3"},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "a b c d"}]})
    body = r.content.decode()
    assert '"usage"' not in body, "the client must not see the usage the gateway asked for"
    events = [e for e in body.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and len(events) == 1 + 3 + 1 + 1
    row = wait_rows(node, 1)[0]
    assert row["log_id"] == r.headers["x-gatemesh-log-id"]
    assert row["tokens"] == {"input": 4, "output": 3, "cache_read": 0, "cache_write": 0}
    assert not row["usage_estimated"] and row["streamed"]
    assert row["cost_nanos"] == cost_nanos("openai", "gpt-4o-mini", 4, 3)


def test_a_client_that_disconnects_mid_stream_is_still_charged(node, mock):
    sock = socket.create_connection(("127.0.0.1", node.port))
    chat = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 500, "stream": True, "messages": [{"role": "user", "content": "x y"}]})
    sock.sendall((f"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                  f"x-mock-output-tokens: 400\r\nx-mock-token-delay-ms: 20\r\ncontent-length: {len(chat)}\r\n\r\n{chat}").encode())
    got = b""
    while got.count(b"content_block_delta") < 20:
        got += sock.recv(65536)
    sock.close()
    row = wait_rows(node, 1)[0]
    assert row["status"] == 200 and row["usage_estimated"]
    assert row["tokens"]["input"] == 2, "the input the provider reported in message_start is kept"
    assert 10 <= row["tokens"]["output"] < 400
    assert row["error"] and row["cost_nanos"] > 0


def test_metadata_is_validated_stored_and_filterable(node):
    url = node.url + "/openai/chat/completions"
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for bad, why in (('[1]', "not a JSON object"), ('{"a":{"b":1}}', "object or array"), ('{"a":null}', "null"),
                     ('{"a":1,"a":2}', "twice"), ("{" + ",".join(f'"k{i}":1' for i in range(33)) + "}", "more than 32")):
        r = requests.post(url, json=chat, headers={"x-gatemesh-metadata": bad})
        assert r.status_code == 400 and why in r.json()["error"]["message"], (bad, r.text)
    for team, n in (("red", 1), ("blue", 2), ("red", 3)):
        r = requests.post(url, json=chat, headers={"cf-aig-metadata": json.dumps({"team": team, "n": n, "vip": n == 3})})
        assert r.status_code == 200
    rows = wait_rows(node, 3)
    assert {json.dumps(r["metadata"], sort_keys=True) for r in rows} == {
        '{"n": 1, "team": "red", "vip": false}', '{"n": 2, "team": "blue", "vip": false}', '{"n": 3, "team": "red", "vip": true}'}
    red = admin(node, "/api/logs", metadata_key="team", metadata_value="red")["data"]
    assert len(red) == 2
    groups = {g["key"]: g["totals"]["requests"] for g in admin(node, "/api/analytics", group_by="metadata.team")["groups"]}
    assert groups == {"red": 2, "blue": 1}


def test_pagination_detail_payloads_and_opt_out(start_node):
    node = start_node(extra_yaml="gateways:\n  - id: default\n    collect_log_payload: true\n  - id: quiet\n    collect_log: false\n")
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    ids = [requests.post(node.url + "/openai/chat/completions", json=chat, headers={"authorization": "Bearer sk-secret"})
           .headers["x-gatemesh-log-id"] for _ in range(5)]
    r = requests.post(node.url + "/quiet/openai/chat/completions", json=chat)
    assert r.status_code == 200 and "x-gatemesh-log-id" not in r.headers
    requests.post(node.url + "/openai/chat/completions", json=chat, headers={"x-gatemesh-collect-log": "false"})
    wait_rows(node, 5)
    time.sleep(0.3)
    first = admin(node, "/api/logs", limit=2)
    second = admin(node, "/api/logs", limit=2, cursor=first["next_cursor"])
    third = admin(node, "/api/logs", limit=2, cursor=second["next_cursor"])
    seen = [r["log_id"] for r in first["data"] + second["data"] + third["data"]]
    assert seen == list(reversed(ids)) and third["next_cursor"] is None
    detail = admin(node, f"/api/logs/{ids[0]}")
    assert json.loads(detail["request_body"]) == chat
    assert json.loads(detail["response_body"])["object"] == "chat.completion"
    assert "sk-secret" not in json.dumps(detail)
    r = requests.get(node.url + "/api/logs/nope", headers={"authorization": "Bearer admin-secret"})
    assert r.status_code == 404


def test_errors_are_logged_and_bad_queries_are_400(start_node):
    node = start_node(extra_yaml="upstream: {first_byte_timeout: 300ms}\n")
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": []},
                      headers={"x-mock-hang": "true"})
    assert r.status_code == 504
    row = wait_rows(node, 1)[0]
    assert row["status"] == 504 and "did not answer" in row["error"] and row["cost_nanos"] in (None, 0)
    assert admin(node, "/api/logs", status="5xx")["data"][0]["log_id"] == row["log_id"]
    for params in ({"status": "200"}, {"limit": "0"}, {"from": "yesterday"}, {"group_by": "colour"}, {"metadata_value": "x"}):
        path = "/api/analytics" if "group_by" in params else "/api/logs"
        r = requests.get(node.url + path, params=params, headers={"authorization": "Bearer admin-secret"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query", params


def test_config_prices_and_the_custom_cost_header(start_node, mock):
    node = start_node(extra_yaml=f"""providers:
  custom-llm: {{base_url: "{mock.url}/v1", models: {{house-model: {{input: "2", output: "8"}}}}}}
  openai: {{base_url: "{mock.url}/v1", models: {{gpt-4o-mini: {{input: "1", output: "1"}}}}}}
gateways:
  - {{id: default, allow_custom_cost: true}}
""", providers=False)
    chat = lambda model: {"model": model, "messages": [{"role": "user", "content": "one two three"}]}
    assert requests.post(node.url + "/custom-llm/chat/completions", json=chat("house-model"), headers={"x-mock-output-tokens": "10"}).status_code == 200
    assert requests.post(node.url + "/openai/chat/completions", json=chat("gpt-4o-mini"), headers={"x-mock-output-tokens": "10"}).status_code == 200
    r = requests.post(node.url + "/openai/chat/completions", json=chat("gpt-4o-mini"),
                      headers={"x-mock-output-tokens": "10", "cf-aig-custom-cost": '{"per_token_in": 0.000003, "per_token_out": 1.5e-5}'})
    assert r.status_code == 200
    bad = requests.post(node.url + "/openai/chat/completions", json=chat("gpt-4o-mini"), headers={"x-gatemesh-custom-cost": '{"per_token_in": 1}'})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_custom_cost"
    rows = {r["log_id"]: r for r in wait_rows(node, 3)}  # a request refused for a malformed control header is not logged
    by_price = sorted((r["priced_as"], r["cost_nanos"]) for r in rows.values() if r["status"] == 200)
    # 3 in, 10 out: house-model 3×2 + 10×8 = 86 µ$; overridden gpt-4o-mini 3 + 10 = 13 µ$; custom 3×3 + 10×15 = 159 µ$.
    assert by_price == [("custom-cost", 159_000), ("custom-llm/house-model", 86_000), ("openai/gpt-4o-mini", 13_000)]


def test_a_client_cannot_price_its_way_past_a_budget(start_node):
    """`custom-cost` is refused unless the gateway trusts its clients' prices (allow_custom_cost):
    a request that a $0.001 budget refuses as too expensive stays refused however it is priced."""
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: tiny, usd: "0.001", window: {calendar: day}}
  - id: trusted
    allow_custom_cost: true
""")
    big = {"model": "gpt-4o-mini", "max_tokens": 10000, "messages": [{"role": "user", "content": "one two three"}]}
    free = {"x-gatemesh-custom-cost": '{"per_token_in": 0, "per_token_out": 0}'}
    r = requests.post(node.url + "/openai/chat/completions", json=big)
    assert r.status_code == 429 and r.json()["error"]["rule"] == "tiny"
    for header in ("x-gatemesh-custom-cost", "cf-aig-custom-cost"):
        r = requests.post(node.url + "/openai/chat/completions", json=big, headers={header: free["x-gatemesh-custom-cost"]})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "custom_cost_not_allowed" and "allow_custom_cost" in error["message"]
    # Where the gateway allows it, the client's price applies.
    r = requests.post(node.url + "/trusted/openai/chat/completions", json=big, headers={**free, "x-mock-output-tokens": "5"})
    assert r.status_code == 200
    row = eventually(lambda: [x for x in admin(node, "/api/logs")["data"] if x["gateway"] == "trusted"], what="the trusted row")[0]
    assert row["priced_as"] == "custom-cost" and row["cost_nanos"] == 0
