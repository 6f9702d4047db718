"""The universal endpoint, POST /{gateway}: steps tried in order until one succeeds."""
import json
import uuid

import requests

from test_accounting import wait_rows

CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "which step?"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "which step?"}]}


def step(provider="openai", endpoint="chat/completions", query=None, headers=None, config=None):
    s = {"provider": provider, "endpoint": endpoint, "headers": {"authorization": "Bearer sk-test", **(headers or {})},
         "query": query if query is not None else CHAT}
    if config:
        s["config"] = config
    return s


def universal(node, steps, gateway="default", headers=None):
    return requests.post(f"{node.url}/{gateway}", json=steps, headers=headers or {})


def test_a_failing_first_step_falls_to_the_second_and_says_so(start_node):
    node = start_node()
    r = universal(node, [step(provider="anthropic", endpoint="v1/messages", query=MESSAGES, headers={"x-mock-status": "503"}),
                         step()])
    assert r.status_code == 200, r.text
    assert r.headers["x-gatemesh-step"] == "1" and r.headers["x-gatemesh-provider"] == "openai"
    assert r.json()["object"] == "chat.completion"
    rows = sorted(wait_rows(node, 2), key=lambda row: row["step"])
    assert [(row["step"], row["provider"], row["status"]) for row in rows] == [(0, "anthropic", 503), (1, "openai", 200)]
    assert rows[0]["cost_nanos"] in (0, None) and rows[1]["cost_nanos"] > 0


def test_the_first_step_that_works_serves_and_the_rest_are_not_tried(start_node, mock):
    node = start_node()
    before = mock.stats()["requests"]
    r = universal(node, [step(provider="anthropic", endpoint="v1/messages", query=MESSAGES), step()])
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "0" and r.json()["type"] == "message"
    assert mock.stats()["requests"] - before == 1


def test_when_every_step_fails_the_last_answer_goes_back(start_node):
    node = start_node()
    r = universal(node, [step(headers={"x-mock-status": "500"}), step(headers={"x-mock-status": "429"})])
    assert r.status_code == 429 and r.headers["x-gatemesh-step"] == "1"
    # An unreachable step counts as failed too.
    r = universal(node, [step(headers={"x-mock-hang": "true"}, config={"requestTimeout": 300}), step()])
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "1"


def test_step_config_retries_and_the_query_is_passed_byte_for_byte(start_node):
    node = start_node()
    key = uuid.uuid4().hex
    r = universal(node, [step(headers={"x-mock-fail-first": "1", "x-mock-fail-key": key},
                              config={"maxAttempts": 2, "retryDelay": 10, "backoff": "constant"})])
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "0" and r.headers["x-gatemesh-attempts"] == "2"
    raw = '[{"provider": "custom-echo", "endpoint": "v1/chat/completions?x=1", "headers": {"authorization": "Bearer k"},' \
          ' "query": {"temperature": 0.7, "z": 1e2, "a": "caf\\u00e9"}}]'
    r = requests.post(node.url + "/default", data=raw, headers={"content-type": "application/json", "authorization": "Bearer outer"})
    echo = r.json()
    assert r.status_code == 200 and echo["body"] == '{"temperature": 0.7, "z": 1e2, "a": "caf\\u00e9"}'
    assert echo["query"] == "x=1" and echo["path"].endswith("/v1/chat/completions")
    assert ["authorization", "Bearer k"] in [[k.lower(), v] for k, v in echo["headers"]]
    assert "Bearer outer" not in json.dumps(echo["headers"])


def test_malformed_bodies_are_400s_that_say_what_is_wrong(start_node):
    node = start_node()
    for body, fragment in [('{"provider": "openai"}', "JSON array"), ("[]", "empty"), ('[{"endpoint": "x"}]', "provider is required"),
                           ('[{"provider": "openai", "endpoint": "x", "colour": 1}]', "unknown key 'colour'"),
                           ('[{"provider": "openai", "endpoint": "x", "config": {"retries": 2}}]', "unknown config key"),
                           ("[" + ",".join(['{"provider":"openai","endpoint":"x"}'] * 17) + "]", "at most 16")]:
        r = requests.post(node.url + "/default", data=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and fragment in r.json()["error"]["message"], (body, r.text)
    assert requests.get(node.url + "/default").status_code == 405
    r = universal(node, [step(provider="nope")])
    assert r.status_code == 404 and r.headers["x-gatemesh-step"] == "0"
    r = universal(node, [step(provider="nope"), step(endpoint="a/../../b")])
    assert r.status_code == 400, r.text
    # Every request above has ended: only this status request is in flight.
    status = requests.get(node.url + "/cluster/status", headers={"authorization": "Bearer admin-secret"}).json()
    assert status["members"][0]["in_flight"] == 1
