"""Budgets and rate limits through a real node: admission, 429s, downgrade, releases, /api/budgets."""
import concurrent.futures
import json
import time

import requests

from conftest import eventually
from test_accounting import admin, cost_nanos

CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "one two three four"}]}


def test_a_daily_budget_admits_until_the_limit_then_answers_429(start_node):
    # gpt-4o-mini: $0.15/M in, $0.60/M out. Each request's estimate is 1 input token (16 characters / 4)
    # and 16 output tokens, about $0.0000098; its actual cost is 4 in + 16 out = $0.0000102.
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: tiny-daily, usd: "0.00005", window: {calendar: day, timezone: Europe/Berlin}}
""")
    statuses = []
    for _ in range(8):
        r = requests.post(node.url + "/openai/chat/completions", json=CHAT)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[:4] == [200] * 4 and statuses[-1] == 429, statuses
    error = r.json()["error"]
    assert error["code"] == "budget_exceeded" and error["rule"] == "tiny-daily" and error["scope"] == ""
    assert error["limit"] == "0.000050000"
    assert int(r.headers["retry-after"]) > 0 and error["resets_at"].endswith("Z")
    spent = 4 * cost_nanos("openai", "gpt-4o-mini", 4, 16)
    report = admin(node, "/api/budgets")["rules"][0]
    assert report["id"] == "tiny-daily" and report["scopes"][0]["reserved"] == "0.000000000"
    assert report["scopes"][0]["spent"] == f"0.0000{spent:05d}"


def test_concurrent_requests_against_a_limit_of_ten_admit_exactly_ten(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    rate_limits:
      - {id: ten-per-minute, requests: 10, window: {fixed: 1m}}
""")
    def one(_):
        return requests.post(node.url + "/openai/chat/completions", json=CHAT, headers={"x-mock-latency-ms": "200"}).status_code
    # Avoid a minute boundary splitting the burst across two windows.
    if time.time() % 60 > 55:
        time.sleep(6)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one, range(100)))
    assert statuses.count(200) == 10 and statuses.count(429) == 90


def test_split_scopes_and_filters(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    rate_limits:
      - {id: per-team, requests: 2, scope: {split_by: metadata.team, only: {provider: openai}}, window: {sliding: 1m, bucket: 1s}}
""")
    def call(team, path="/openai/chat/completions"):
        return requests.post(node.url + path, json=CHAT, headers={"x-gatemesh-metadata": json.dumps({"team": team})}).status_code
    assert [call("red"), call("red"), call("red")] == [200, 200, 429]
    assert call("blue") == 200
    assert call("red", "/groq/chat/completions") == 200  # filtered: only openai counts
    scopes = {s["scope"]: s["spent"] for s in admin(node, "/api/budgets")["rules"][0]["scopes"]}
    assert scopes == {"metadata.team=red": 2, "metadata.team=blue": 1}


def test_a_failing_upstream_releases_its_reservation(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    rate_limits:
      - {id: two, requests: 2, window: {fixed: 1h}}
""")
    for _ in range(5):
        r = requests.post(node.url + "/openai/chat/completions", json=CHAT, headers={"x-mock-status": "503"})
        assert r.status_code == 503
    report = admin(node, "/api/budgets")["rules"][0]["scopes"][0]
    assert report["spent"] == 0 and report["reserved"] == 0
    assert [requests.post(node.url + "/openai/chat/completions", json=CHAT).status_code for _ in range(3)] == [200, 200, 429]


def test_downgrade_serves_the_cheaper_model_and_says_so(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: premium, usd: "0.001", scope: {only: {model: gpt-4o}}, window: {calendar: month}, action: {downgrade: {model: gpt-4o-mini}}}
""")
    big = dict(CHAT, model="gpt-4o")
    first = requests.post(node.url + "/openai/chat/completions", json=big)
    assert first.status_code == 200 and "x-gatemesh-downgraded" not in first.headers
    served = []
    for _ in range(8):  # each gpt-4o request costs $0.00017: the budget runs out after five
        r = requests.post(node.url + "/openai/chat/completions", json=big)
        assert r.status_code == 200
        served.append((r.json()["model"], r.headers.get("x-gatemesh-downgraded"), r.headers.get("x-gatemesh-model")))
    assert ("gpt-4o-mini", "premium", "gpt-4o-mini") in served
    assert served[-1] == ("gpt-4o-mini", "premium", "gpt-4o-mini")


def test_budget_config_mistakes_name_the_key(start_node):
    import subprocess, tempfile
    from conftest import BIN
    for yaml, key in (("gateways: [{id: default, budgets: [{id: b, usd: 5, window: {calendar: fortnight}}]}]", "gateways[0].budgets[0].window.calendar"),
                      ("gateways: [{id: default, budgets: [{id: b, usd: 5, window: {calendar: day, timezone: Mars/Base}}]}]", "gateways[0].budgets[0].window.timezone"),
                      ("gateways: [{id: default, rate_limits: [{id: r, requests: 5, usd: 1, window: {fixed: 1m}}]}]", "gateways[0].rate_limits[0].usd"),
                      ("gateways: [{id: default, budgets: [{id: b, usd: 5, window: {rolling: 1d}, scope: {split_by: colour}}]}]", "gateways[0].budgets[0].scope.split_by")):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(yaml)
        out = subprocess.run([BIN, "check-config", "--config", f.name], capture_output=True, text=True)
        assert out.returncode == 2 and f"'{key}'" in out.stderr, (yaml, out.stderr)


def test_a_node_killed_mid_traffic_comes_back_with_the_spend_its_log_shows(start_node):
    import os
    import signal
    import subprocess
    from conftest import BIN, wait_http
    from test_accounting import wait_rows
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: daily, usd: 100, scope: {split_by: metadata.team}, window: {calendar: day, timezone: America/New_York}}
    rate_limits:
      - {id: hourly, requests: 1000, window: {rolling: 1h, bucket: 1m}}
""")
    for i in range(6):
        team = "red" if i % 2 else "blue"
        assert requests.post(node.url + "/openai/chat/completions", json=CHAT,
                             headers={"x-gatemesh-metadata": json.dumps({"team": team})}).status_code == 200
    # One request that opted out of the log still counts, and still survives the restart.
    assert requests.post(node.url + "/openai/chat/completions", json=CHAT,
                         headers={"x-gatemesh-metadata": '{"team":"red"}', "x-gatemesh-collect-log": "false"}).status_code == 200
    rows = wait_rows(node, 6)
    # The opted-out request's charges too: every reservation settled (written with its row).
    before = eventually(lambda: admin(node, "/api/budgets")["rules"],
                        lambda rules: all(s["reserved"] in (0, "0.000000000") for r in rules for s in r["scopes"]),
                        what="every reservation settled")
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)
    proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(node.data_dir, "gatemesh.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(node.url + "/healthz", proc=proc)
        after = admin(node, "/api/budgets")["rules"]
        # The figures come back; the rights (who holds which share of what is left) start afresh.
        def figures(rules):
            return [[{k: v for k, v in s.items() if k != "rights"} for s in r["scopes"]] for r in rules]
        assert figures(after) == figures(before)
        for r in after:
            for s in r["scopes"]:
                assert "rights" not in s or s["rights"]["pool"] == s["remaining"], s
        daily = {s["scope"]: s["spent"] for s in after[0]["scopes"]}
        per_request = cost_nanos("openai", "gpt-4o-mini", 4, 16)
        assert daily == {"metadata.team=blue": f"0.0000{3 * per_request:05d}", "metadata.team=red": f"0.0000{4 * per_request:05d}"}
        assert sum(r["cost_nanos"] for r in rows) == 6 * per_request
        assert after[1]["scopes"][0]["spent"] == 7
    finally:
        proc.terminate()
        proc.wait(10)


def test_alert_webhook_receives_each_threshold_once_signed_and_retried(start_node):
    import hashlib
    import hmac
    import http.server
    import threading
    received, attempts = [], []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            attempts.append(body)
            if len(attempts) <= 2:  # the first two calls fail: the node must retry
                self.send_response(503)
                self.end_headers()
                return
            expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
            assert self.headers["x-gatemesh-signature"] == expected
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        node = start_node(extra_yaml=f"""alerts: {{webhook: "http://127.0.0.1:{server.server_port}/hook", secret: hook-secret}}
gateways:
  - id: default
    budgets:
      - {{id: small, usd: "0.00005", window: {{calendar: day}}, alerts: [0.5, 0.8, 1.0]}}
""")
        statuses = [requests.post(node.url + "/openai/chat/completions", json=CHAT).status_code for _ in range(7)]
        assert statuses.count(429) >= 1
        deadline = time.time() + 20
        while len(received) < 2 and time.time() < deadline:
            time.sleep(0.1)
        # Four requests spend $0.0000408 (81.6 %); the fifth is refused before it could pass 100 %,
        # so the 1.0 threshold is never reached.
        thresholds = sorted(a["threshold"] for a in received)
        assert thresholds == [0.5, 0.8], received
        assert all(a["rule"] == "small" and a["limit"] == "0.000050000" and a["type"] == "budget.threshold" for a in received)
        # Delivered in either order (each is retried on its own): the 0.8 alert carries the spend
        # of the fourth request, the 0.5 one that of the third.
        by_threshold = {a["threshold"]: a for a in received}
        assert by_threshold[0.8]["spent"] == "0.000040800" and by_threshold[0.5]["spent"] == "0.000030600", received
        time.sleep(1.5)
        assert len(received) == 2, "each threshold fires once per window"
    finally:
        server.shutdown()
