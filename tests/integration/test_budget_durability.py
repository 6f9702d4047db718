"""No spend lost on SIGKILL: a node killed with requests in flight charges them at their estimate
when it restarts, from its reservation journal, and the cluster's spent equals what the mock
provider served (its own counters), not only what reached the request log."""
import json
import os
import signal
import subprocess
import threading

import requests

from conftest import BIN, eventually, wait_http
from test_accounting import cost_nanos
from test_cluster import AUTH, budget_spent, cluster, status, wait_until  # noqa: F401 (the fixture)

# An input whose gateway estimate (characters / 4) equals the mock's count (words): 15 characters,
# 4 words; and max_tokens equal to what the mock generates. So each request's estimate is exactly
# what the mock charges for it, and "charged at the estimate" can be checked to the nano-dollar.
STREAM = {"model": "gpt-4o-mini", "max_tokens": 16, "stream": True,
          "messages": [{"role": "user", "content": "abc abc abc abc"}]}
WHOLE = {**STREAM, "stream": False}
BUDGET = """gateways:
  - id: default
    budgets:
      - {id: daily, usd: 100, window: {calendar: day}}
"""


def served_cost(mock):
    s = mock.stats()
    return cost_nanos("openai", "gpt-4o-mini", s["input_tokens"], s["output_tokens"])


def streams_open(mock):
    s = mock.stats()
    return s["streams_started"] - s["streams_completed"] - s["streams_aborted"] - s["streams_dropped"]


def open_streams(url, count):
    """Starts `count` slow streams (16 tokens, 250 ms apart) that read until their node dies."""
    def one():
        try:
            with requests.post(url + "/openai/chat/completions", json=STREAM, stream=True, timeout=30,
                               headers={"x-mock-token-delay-ms": "250"}) as r:
                for _ in r.iter_content(chunk_size=None):
                    pass
        except requests.RequestException:
            pass  # the node was killed under it
    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


def test_a_node_killed_with_32_streams_in_flight_charges_them_after_restart(cluster, mock):
    c = cluster(3, BUDGET)
    assert wait_until(lambda: all(status(c, i)["cluster"]["size"] == 3 for i in range(3)), 10)
    mock.reset()
    for i in range(3):
        for _ in range(2):
            assert requests.post(c.node_url(i) + "/openai/chat/completions", json=WHOLE).status_code == 200
    threads = open_streams(c.node_url(1), 32)
    eventually(lambda: streams_open(mock), lambda n: n == 32, what="32 streams open at the mock")
    c.kill(1, signal.SIGKILL)
    for t in threads:
        t.join(30)
    c.start_node(1)
    expected = served_cost(mock)
    assert expected == 38 * cost_nanos("openai", "gpt-4o-mini", 4, 16)
    # Every node agrees on exactly what the provider served: the 6 whole answers from their log
    # rows, the 32 cut streams from node-2's journal, charged at their estimate.
    eventually(lambda: [budget_spent(c, i) for i in range(3)], lambda s: s == [expected] * 3,
               timeout=20, what=f"every node's spent at the mock's served cost {expected}")
    with open(os.path.join(c.run_dir, "node-2", "node.log")) as log:
        assert "charged the requests a previous run left in flight at their estimate" in log.read()
    # Nothing stays reserved for the dead run's requests, here or on the peers.
    def reserved():
        rules = [requests.get(c.node_url(i) + "/api/budgets", headers=AUTH, timeout=5).json()["rules"] for i in range(3)]
        return [r[0]["scopes"][0]["reserved"] for r in rules]
    eventually(reserved, lambda r: r == ["0.000000000"] * 3, timeout=20, what="no reservation left on any node")


def test_a_single_node_killed_mid_stream_is_charged_once_across_two_restarts(start_node, mock):
    node = start_node(extra_yaml=BUDGET)
    mock.reset()
    threads = open_streams(node.url, 8)
    eventually(lambda: streams_open(mock), lambda n: n == 8, what="8 streams open at the mock")
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)
    for t in threads:
        t.join(30)
    config = os.path.join(node.data_dir, "gatemesh.yaml")

    def restart():
        proc = subprocess.Popen([BIN, "serve", "--config", config, "--log-level", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_http(node.url + "/healthz", proc=proc)
        return proc

    def spent():
        rules = requests.get(node.url + "/api/budgets", headers={"authorization": "Bearer admin-secret"}, timeout=5).json()["rules"]
        return rules[0]["scopes"][0]
    expected = 8 * cost_nanos("openai", "gpt-4o-mini", 4, 16)
    assert served_cost(mock) == expected
    starts_before = 1  # the killed run was the data directory's first
    proc = restart()
    try:
        first = spent()
        assert int(first["spent"].replace(".", "")) == expected and first["reserved"] == "0.000000000", first
        # The killed run's rights (journaled as it took them) came back and went to the pool: no
        # holder of that run is left, and the pool is the limit less what was charged.
        rights = first["rights"]
        assert all(not h["holder"].endswith(f"/{starts_before}") for h in rights["holders"]), rights
        assert int(rights["pool"].replace(".", "")) == 100 * 10**9 - expected, rights
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # Killed again right after the recovery: the journal's charges are not counted a second time.
    proc = restart()
    try:
        assert int(spent()["spent"].replace(".", "")) == expected
        assert json.loads(requests.get(node.url + "/healthz", timeout=5).text)["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)

