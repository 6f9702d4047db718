"""Routes on passthrough: a fallback chain, weighted load balancing, cool-down after 429 or
failures, and each target's own model and key."""
import collections
import socket

import requests

from test_accounting import wait_rows


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chat(node, model="smart", path="/openai/chat/completions", headers=None):
    return requests.post(node.url + path, json={"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "route me"}]},
                         headers=headers or {})


def test_a_failing_target_falls_back_then_cools_down(start_node, mock):
    node = start_node(extra_yaml=f"""  custom-down: {{base_url: "http://127.0.0.1:{closed_port()}/v1"}}
  custom-limited: {{base_url: "{mock.url}/_status/429/v1"}}
gateways:
  - id: default
    routes:
      - name: smart
        targets:
          - {{provider: custom-down, model: big-model}}
          - {{provider: openai, model: gpt-4o-mini}}
        failures: 1
        cooldown: 30s
      - name: limited
        targets:
          - {{provider: custom-limited, model: m}}
          - {{provider: openai, model: gpt-4o}}
""")
    r = chat(node)
    assert r.status_code == 200, r.text
    assert r.headers["x-gatemesh-route"] == "smart" and r.headers["x-gatemesh-step"] == "1"
    assert r.headers["x-gatemesh-provider"] == "openai" and r.headers["x-gatemesh-model"] == "gpt-4o-mini"
    assert r.json()["model"].startswith("gpt-4o-mini")
    rows = sorted(wait_rows(node, 2), key=lambda row: row["step"])
    assert [(row["provider"], row["status"]) for row in rows] == [("custom-down", 502), ("openai", 200)]
    assert rows[1]["cost_nanos"] > 0
    # The failed target cools down: the next request goes to openai first.
    r = chat(node)
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "0" and r.headers["x-gatemesh-provider"] == "openai"
    assert len(wait_rows(node, 3)) == 3
    # A 429 cools a target down at once.
    before = mock.stats()["requests"]
    r = chat(node, "limited")
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "1"
    r = chat(node, "limited")
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "0" and r.headers["x-gatemesh-model"] == "gpt-4o"
    assert mock.stats()["requests"] - before == 3


def test_weighted_targets_share_traffic_by_weight_and_use_their_own_keys(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    routes:
      - name: spread
        strategy: weighted
        targets:
          - {provider: openai, model: gpt-4o-mini, api_key: key-a, weight: 3}
          - {provider: custom-echo, model: echo-model, api_key: key-b, weight: 1}
""")
    served = collections.Counter()
    for _ in range(200):
        r = chat(node, "spread")
        assert r.status_code == 200
        served[r.headers["x-gatemesh-provider"]] += 1
        if r.headers["x-gatemesh-provider"] == "custom-echo":
            echo = r.json()
            assert ["authorization", "Bearer key-b"] in [[k.lower(), v] for k, v in echo["headers"]]
            assert '"model":"echo-model"' in echo["body"].replace(" ", "")
    assert 120 <= served["openai"] <= 180 and served["openai"] + served["custom-echo"] == 200, served


def test_requests_that_name_no_route_pass_through_and_formats_must_match(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    routes:
      - name: smart
        targets:
          - {provider: openai, model: gpt-4o-mini}
""")
    r = chat(node, "gpt-4o")
    assert r.status_code == 200 and "x-gatemesh-route" not in r.headers
    r = requests.post(node.url + "/anthropic/v1/messages",
                      json={"model": "smart", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_route_target"
