"""Metrics of the cluster itself, the Grafana dashboard built on them, and a real Prometheus scraping every node."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import eventually, free_port, stop_process
from test_cluster import AUTH, CHAT, cluster, status  # noqa: F401 (the fixture)

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "grafana", "gatemesh-cluster.json")

RULES = """gateways:
  - id: default
    cache: {ttl: 60}
    budgets:
      - {id: bounded-daily, usd: "10", window: {calendar: day}}
      - {id: soft-daily, usd: "10", window: {calendar: day}, enforcement: soft}
      - {id: strict-daily, usd: "10", window: {calendar: day}, enforcement: strict}
"""


def metrics(c, i):
    return requests.get(c.node_url(i) + "/metrics", headers=AUTH, timeout=5).text


def sample(text, name, **labels):
    """The value of the series `name` with exactly these labels, or None."""
    for line in text.splitlines():
        m = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(name), line)
        if m and dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) == labels:
            return float(m.group(2))
    return None


def dashboard_queries():
    """Every PromQL expression of the dashboard, with Grafana's variables filled in."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*") for p in dash["panels"] for t in p["targets"]]


def send(c, n):
    """n requests over the three nodes, each a new question (a cache miss that spends), then the
    first one again on every node (cache hits)."""
    for k in range(n + 3):
        body = {**CHAT, "messages": [{"role": "user", "content": f"question {k % n if k >= n else k}"}]}
        r = requests.post(c.node_url(k % 3) + "/openai/v1/chat/completions", json=body, timeout=10,
                          headers={"authorization": "Bearer sk-test"})
        assert r.status_code == 200, r.text


def test_each_peer_and_each_rule_is_in_the_metrics_and_the_dashboard_uses_only_metrics_that_exist(cluster):
    c = cluster(3, extra_yaml=RULES)
    eventually(lambda: status(c, 0)["cluster"]["size"] == 3, what="three members")
    send(c, 9)
    # A counter delta from each peer, and a direct ping of each answered (probes go one peer at a
    # time, a second apart).
    text = eventually(lambda: metrics(c, 0), timeout=30, what="a delta from each peer and a ping of each answered",
                      ok=lambda t: all(sample(t, name, peer=p) is not None for p in ("node-2", "node-3")
                                       for name in ("gatemesh_cluster_peer_delta_age_seconds", "gatemesh_cluster_peer_rtt_seconds")))
    for peer in ("node-2", "node-3"):
        assert sample(text, "gatemesh_cluster_peer_state", peer=peer, state="alive") == 1
        assert sample(text, "gatemesh_cluster_peer_state", peer=peer, state="dead") == 0
        assert sample(text, "gatemesh_cluster_peer_frames_received", peer=peer) > 0
        assert sample(text, "gatemesh_cluster_peer_bytes_sent", peer=peer) > 0
        assert 0 <= sample(text, "gatemesh_cluster_peer_delta_age_seconds", peer=peer) < 60
        assert sample(text, "gatemesh_cluster_peer_rtt_seconds", peer=peer) is not None
    assert sample(text, "gatemesh_cluster_peer_state", peer="node-1", state="alive") is None  # not itself
    for rule, mode in (("bounded-daily", "bounded"), ("soft-daily", "soft"), ("strict-daily", "strict")):
        assert sample(text, "gatemesh_limit_rule_mode", rule=rule, mode=mode) == 1
    assert sample(text, "gatemesh_limit_overshoot_bound", rule="strict-daily") == 0
    assert sample(text, "gatemesh_limit_overshoot_bound", rule="soft-daily") == -1
    leased = sample(text, "gatemesh_limit_leased_rights", rule="bounded-daily")
    assert leased is not None and sample(text, "gatemesh_limit_overshoot_bound", rule="bounded-daily") == leased

    # Every metric a dashboard panel queries is one a node exports.
    exported = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    used = {re.sub(r"_bucket$", "", name) for q in dashboard_queries() for name in re.findall(r"\bgatemesh_\w+", q)}
    assert used - exported == set(), used - exported


@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs Debian's prometheus (scripts/bootstrap --test installs it)")
def test_a_real_prometheus_scrapes_every_node_and_answers_every_dashboard_query(cluster):
    c = cluster(3, extra_yaml=RULES)
    eventually(lambda: status(c, 0)["cluster"]["size"] == 3, what="three members")
    send(c, 6)
    work = tempfile.mkdtemp(prefix="gatemesh-prometheus-")
    targets = ", ".join(f'"{c.node_url(i).removeprefix("http://")}"' for i in range(3))
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: gatemesh
    authorization: {{credentials: "cluster-admin"}}
    static_configs: [{{targets: [{targets}]}}]
""")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/data",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def targets_up():
            active = requests.get(api + "/targets", timeout=5).json()["data"]["activeTargets"]
            return sorted(t["health"] for t in active)
        eventually(targets_up, ok=lambda h: h == ["up", "up", "up"], timeout=60, what="every node scraped")

        def query(q):
            body = requests.get(api + "/query", params={"query": q}, timeout=5).json()
            assert body["status"] == "success", (q, body)
            return body["data"]["result"]
        eventually(lambda: query("sum(gatemesh_requests_total)"), ok=lambda r: r and float(r[0]["value"][1]) == 9,
                   timeout=30, what="the nine requests, summed over the nodes")
        alive = eventually(lambda: query('sum(gatemesh_cluster_peer_state{state="alive"})'), ok=lambda r: r and float(r[0]["value"][1]) == 6,
                           timeout=30, what="each node seeing two peers alive")
        assert alive
        for q in dashboard_queries():
            query(q)  # valid PromQL over what was scraped
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(work, ignore_errors=True)
