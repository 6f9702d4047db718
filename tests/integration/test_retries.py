"""Retries through a real node against the mock provider: backoff, Retry-After, limits on what is
retried, and the per-request headers."""
import json
import time
import uuid

import requests

from test_accounting import wait_rows

CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "retry me"}]}
RETRYING = """gateways:
  - id: default
    retries: {max_attempts: 3, delay_ms: 200, backoff: exponential, jitter: false}
"""


def post(node, headers=None, body=CHAT, stream=False):
    return requests.post(node.url + "/openai/chat/completions", json=body, headers=headers or {}, stream=stream)


def fail_first(n, status=None, retry_after=None):
    h = {"x-mock-fail-first": str(n), "x-mock-fail-key": uuid.uuid4().hex}
    if status:
        h["x-mock-status"] = str(status)
    if retry_after is not None:
        h["x-mock-retry-after"] = str(retry_after)
    return h


def test_two_503s_then_a_200_are_retried_to_success_with_exponential_backoff(start_node, mock):
    node = start_node(extra_yaml=RETRYING)
    before = mock.stats()["requests"]
    started = time.monotonic()
    r = post(node, fail_first(2))
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and r.headers["x-gatemesh-attempts"] == "3"
    assert mock.stats()["requests"] - before == 3
    assert 0.6 <= elapsed < 3, elapsed  # 200 ms, then 400 ms
    row = wait_rows(node, 1)[0]
    assert row["attempts"] == 3 and row["status"] == 200


def test_a_429_with_retry_after_waits_that_long(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    retries: {max_attempts: 2, delay_ms: 10, backoff: constant}
""")
    started = time.monotonic()
    r = post(node, fail_first(1, status=429, retry_after=1))
    assert r.status_code == 200 and r.headers["x-gatemesh-attempts"] == "2"
    assert time.monotonic() - started >= 1.0


def test_attempts_run_out_and_the_last_answer_goes_to_the_client(start_node, mock):
    node = start_node(extra_yaml=RETRYING)
    before = mock.stats()["requests"]
    r = post(node, fail_first(5))
    assert r.status_code == 503 and r.headers["x-gatemesh-attempts"] == "3"
    assert mock.stats()["requests"] - before == 3
    # The request can ask for fewer (or more, up to 5) attempts and another delay.
    before = mock.stats()["requests"]
    r = post(node, {**fail_first(5), "x-gatemesh-max-attempts": "1"})
    assert r.status_code == 503 and r.headers["x-gatemesh-attempts"] == "1" and mock.stats()["requests"] - before == 1
    r = post(node, {**fail_first(4), "cf-aig-max-attempts": "5", "cf-aig-retry-delay": "0"})
    assert r.status_code == 200 and r.headers["x-gatemesh-attempts"] == "5"
    # Client errors are not retried.
    before = mock.stats()["requests"]
    assert post(node, {"x-mock-status": "400"}).status_code == 400 and mock.stats()["requests"] - before == 1
    r = post(node, {"x-gatemesh-max-attempts": "9"})
    assert r.status_code == 400 and "x-gatemesh-max-attempts" in r.json()["error"]["message"]


def test_no_retry_once_the_stream_has_begun(start_node, mock):
    node = start_node(extra_yaml=RETRYING)
    before = mock.stats()["requests"]
    r = post(node, {"x-mock-drop-after": "3", "x-mock-output-tokens": "50"},
             body={**CHAT, "stream": True, "max_tokens": 50}, stream=True)
    assert r.status_code == 200
    got = b""
    try:
        for chunk in r.iter_content(chunk_size=None):
            got += chunk
    except requests.exceptions.RequestException:
        pass
    assert b"[DONE]" not in got
    time.sleep(0.5)
    assert mock.stats()["requests"] - before == 1


def test_an_unreachable_provider_is_retried_then_answered_502(start_node):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    node = start_node(providers=False, extra_yaml=f"""providers:
  openai: {{base_url: "http://127.0.0.1:{port}/v1"}}
{RETRYING}""")
    started = time.monotonic()
    r = post(node)
    assert r.status_code == 502 and time.monotonic() - started >= 0.6 and r.headers["x-gatemesh-attempts"] == "3"
    row = wait_rows(node, 1)[0]
    assert row["attempts"] == 3 and row["status"] == 502
