"""One view of the cluster: /api/analytics and /api/logs on any node answer for every node, over the peer link."""
import signal
import time

import requests

from conftest import eventually
from test_cluster import AUTH, CHAT, cluster, status  # noqa: F401 (the fixture)


def send(c, i, n, tag):
    for _ in range(n):
        r = requests.post(c.node_url(i) + "/openai/v1/chat/completions", json=CHAT, timeout=10,
                          headers={"authorization": "Bearer sk-test", "cf-aig-metadata": f'{{"tag": "{tag}"}}'})
        assert r.status_code == 200, r.text


def get(c, i, path, **params):
    r = requests.get(c.node_url(i) + path, headers=AUTH, params=params, timeout=15)
    return r.status_code, r.json()


def local_rows(c, i, name):
    """Every row node `name` holds, read through node i with ?node=."""
    rows, cursor = [], None
    while True:
        params = {"node": name, "limit": 1000, "metadata_key": "tag", "metadata_value": "reads"}
        if cursor:
            params["cursor"] = cursor
        code, page = get(c, i, "/api/logs", **params)
        assert code == 200, page
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def test_every_node_answers_for_the_whole_cluster(cluster):
    c = cluster(3)
    eventually(lambda: status(c, 0)["cluster"]["size"] == 3, what="three members")
    for i, n in enumerate([3, 4, 5]):
        send(c, i, n, "reads")
    names = ["node-1", "node-2", "node-3"]
    # Each node's own rows, once its log writer has flushed them.
    sent = {"node-1": 3, "node-2": 4, "node-3": 5}
    per_node = {name: eventually(lambda name=name: local_rows(c, 0, name), ok=lambda rows, name=name: len(rows) == sent[name],
                                 what=f"{name}'s rows") for name in names}
    assert all(row["node"] == name for name, rows in per_node.items() for row in rows)
    every_row = {row["log_id"]: row for rows in per_node.values() for row in rows}
    assert len(every_row) == 12

    for i in range(3):
        # Analytics on any node: the sum over every node's log.
        code, a = get(c, i, "/api/analytics", metadata_key="tag", metadata_value="reads", group_by="node")
        assert code == 200, a
        assert a["nodes"] == names and a["missing_nodes"] == []
        assert a["totals"]["requests"] == 12
        assert a["totals"]["cost_nanos"] == sum(r["cost_nanos"] for r in every_row.values())
        assert a["totals"]["input_tokens"] == sum(r["tokens"]["input"] for r in every_row.values())
        assert {g["key"]: g["totals"]["requests"] for g in a["groups"]} == {name: len(per_node[name]) for name in names}
        # The percentiles of the cluster's durations, not an average of the nodes' percentiles.
        durations = sorted(r["duration_ms"] for r in every_row.values())
        assert a["totals"]["latency_p50_ms"] == durations[5]  # nearest rank: ceil(12 * 0.5) = 6th
        assert a["totals"]["latency_p95_ms"] == durations[11]

        # Pages of 5 across the nodes: every row once, newest first.
        seen, cursor = [], None
        while True:
            params = {"limit": 5, "metadata_key": "tag", "metadata_value": "reads"}
            if cursor:
                params["cursor"] = cursor
            code, page = get(c, i, "/api/logs", **params)
            assert code == 200 and page["missing_nodes"] == [], page
            assert len(page["data"]) <= 5
            seen += [row["log_id"] for row in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == sorted(every_row, reverse=True)

    # A row written by node 3, read on node 1, with its bodies' fields.
    row_id = per_node["node-3"][0]["log_id"]
    code, row = get(c, 0, f"/api/logs/{row_id}")
    assert code == 200, row
    assert row["log_id"] == row_id and row["node"] == "node-3" and "request_body" in row
    code, error = get(c, 0, "/api/logs/00000000-0000-7000-8000-000000000000")
    assert code == 404 and "no log row" in error["error"]["message"]

    # One node on request; an unknown one is a 404; a bad timeout a 400.
    code, a = get(c, 1, "/api/analytics", metadata_key="tag", metadata_value="reads", node="node-3")
    assert code == 200 and a["nodes"] == ["node-3"] and a["totals"]["requests"] == len(per_node["node-3"])
    code, error = get(c, 1, "/api/analytics", node="node-9")
    assert code == 404 and "node-9" in error["error"]["message"]
    code, error = get(c, 1, "/api/logs", timeout="5ms")
    assert code == 400 and "timeout" in error["error"]["message"]


def test_a_stopped_node_is_named_missing_and_the_answer_still_comes(cluster):
    c = cluster(3)
    eventually(lambda: status(c, 0)["cluster"]["size"] == 3, what="three members")
    for i in range(3):
        send(c, i, 2, "reads")
    eventually(lambda: get(c, 0, "/api/analytics", metadata_key="tag", metadata_value="reads")[1]["totals"]["requests"],
               ok=lambda n: n == 6, what="six rows cluster-wide")
    # Stopped, not dead: it holds its connections and answers nothing.
    c.nodes[1].send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        code, a = get(c, 0, "/api/analytics", metadata_key="tag", metadata_value="reads", timeout="1s")
        took = time.monotonic() - started
        assert code == 200, a
        assert a["nodes"] == ["node-1", "node-3"]
        assert a["missing_nodes"] == [{"node": "node-2", "reason": "did not answer within 1000 ms"}]
        assert a["totals"]["requests"] == 4
        assert took < 3, took
        code, page = get(c, 2, "/api/logs", metadata_key="tag", metadata_value="reads", timeout="1s")
        assert code == 200 and len(page["data"]) == 4 and [m["node"] for m in page["missing_nodes"]] == ["node-2"]
    finally:
        c.nodes[1].send_signal(signal.SIGCONT)
    # Once seen dead, a node is named missing without being waited for.
    c.kill(1, signal.SIGKILL)
    eventually(lambda: [m["name"] for m in status(c, 0)["members"] if m["status"] == "dead"], ok=lambda d: d == ["node-2"],
               timeout=30, what="node-2 seen dead")
    code, a = get(c, 0, "/api/analytics", metadata_key="tag", metadata_value="reads")
    assert code == 200 and a["missing_nodes"] == [{"node": "node-2", "reason": "dead"}] and a["totals"]["requests"] == 4


def test_the_dashboard_shows_the_clusters_totals_and_the_node_filter_narrows_them(cluster):
    import re
    from test_dashboard import browser, card
    c = cluster(3)
    eventually(lambda: status(c, 0)["cluster"]["size"] == 3, what="three members")
    for i, n in enumerate([1, 2, 3]):
        send(c, i, n, "dashboard")
    eventually(lambda: get(c, 0, "/api/analytics")[1]["totals"]["requests"], ok=lambda n: n == 6, what="six rows cluster-wide")
    # Opened on node 1: the cards hold all three nodes' requests, the cluster panel each node's rate.
    dom = browser(f"{c.node_url(0)}/dashboard#token=cluster-admin&group=node", "--dump-dom")
    assert card(dom, "requests") == "6"
    rates = dict(re.findall(r'<tr data-member="([^"]+)" data-status="alive" data-rate="([0-9.]+)"', dom))
    assert {k: float(v) for k, v in rates.items()} == {"node-1": 0.2, "node-2": 0.4, "node-3": 0.6}
    assert re.findall(r'<option value="(node-[0-9])"', dom) == ["node-1", "node-2", "node-3"]
    assert 'id="missing" class="err hidden"' in dom
    # The node filter: node 3's three requests only.
    dom = browser(f"{c.node_url(0)}/dashboard#token=cluster-admin&node=node-3", "--dump-dom")
    assert card(dom, "requests") == "3"
