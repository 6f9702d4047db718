"""The admin API for limit rules: 1,000 rules made through it, enforced at once, changed, deleted,
kept across a restart; and every kind of bad request answered with a clear error."""
import json
import os
import signal
import subprocess
import time

import requests

from conftest import BIN, eventually, wait_http

AUTH = {"authorization": "Bearer admin-secret"}
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "one two three four"}]}


def call(node, team=None):
    headers = {"x-gatemesh-metadata": json.dumps({"team": team})} if team else {}
    return requests.post(node.url + "/openai/chat/completions", json=CHAT, headers=headers)


def team_rule(i, limit=2):
    return {"id": f"team-{i}", "gateway": "default", "requests": limit,
            "scope": {"only": {"metadata.team": f"t{i}"}}, "window": {"fixed": "1h"}}


def test_a_thousand_rules_made_through_the_api_are_enforced_changed_deleted_and_kept(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: from-config, usd: 100, window: {calendar: day}}
""")
    started = time.time()
    r = requests.post(node.url + "/api/rules", headers=AUTH, json=[team_rule(i) for i in range(1000)])
    assert r.status_code == 201, r.text
    assert len(r.json()["created"]) == 1000 and time.time() - started < 10
    listed = requests.get(node.url + "/api/rules", headers=AUTH).json()
    assert listed["count"] == 1001 and listed["inactive"] == []
    assert listed["rules"][0]["source"] == "config" and listed["rules"][0]["id"] == "from-config"
    assert listed["rules"][1]["source"] == "api" and listed["rules"][1]["id"] == "team-0"
    assert listed["rules"][500]["scope"] == {"only": {"metadata.team": "t499"}}

    # In force at once, each for its own team only.
    assert [call(node, "t7").status_code for _ in range(3)] == [200, 200, 429]
    refused = call(node, "t7")
    assert refused.json()["error"]["rule"] == "team-7" and int(refused.headers["retry-after"]) > 0
    assert call(node, "t999").status_code == 200 and call(node).status_code == 200

    # One more through a single POST, and a replacement that keeps the rule's spend.
    r = requests.post(node.url + "/api/rules", headers=AUTH, json=team_rule(1000))
    assert r.status_code == 201 and r.json()["created"][0]["id"] == "team-1000"
    r = requests.put(node.url + "/api/rules/team-7", headers=AUTH,
                     json={k: v for k, v in team_rule(7, limit=3).items() if k != "id"})
    assert r.status_code == 200, r.text
    assert r.json()["requests"] == 3 and r.json()["created_at"] < r.json()["updated_at"]
    assert [call(node, "t7").status_code for _ in range(2)] == [200, 429]

    # A rule read with GET can be edited and sent back as it is.
    doc = requests.get(node.url + "/api/rules/team-1000", headers=AUTH).json()
    assert doc["source"] == "api"
    r = requests.put(node.url + "/api/rules/team-1000", headers=AUTH, json={**doc, "requests": 5})
    assert r.status_code == 200 and r.json()["requests"] == 5 and r.json()["created_at"] == doc["created_at"]

    # Deleting a rule lifts it.
    assert [call(node, "t999").status_code for _ in range(2)] == [200, 429]
    assert requests.delete(node.url + "/api/rules/team-999", headers=AUTH).json() == {"deleted": "team-999"}
    assert call(node, "t999").status_code == 200
    assert requests.get(node.url + "/api/rules/team-999", headers=AUTH).status_code == 404

    # Reservations settle once the log writer has the rows on disk.
    budgets = eventually(lambda: {r["id"]: r for r in requests.get(node.url + "/api/budgets", headers=AUTH).json()["rules"]},
                         lambda b: b["team-7"]["scopes"][0]["reserved"] == 0, what="team-7's reservations settled")
    assert len(budgets) == 1001 and budgets["team-7"]["source"] == "api"
    scope = budgets["team-7"]["scopes"][0]
    # A rate limit (`requests`) is soft unless it says otherwise: no rights.
    assert budgets["team-7"]["enforcement"] == "soft" and budgets["team-7"]["leased"] is False
    assert [scope] == [{"scope": "", "spent": 3, "reserved": 0, "remaining": 0, "state": "exhausted"}]

    # A restart (even SIGKILL) keeps the rules and their spend: the reservations settled above only
    # once the batch that holds their spend was on disk.
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)
    proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(node.data_dir, "gatemesh.yaml"), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(node.url + "/healthz", proc=proc)
        listed = requests.get(node.url + "/api/rules", headers=AUTH).json()
        assert listed["count"] == 1001
        assert {r["id"] for r in listed["rules"]} == {"from-config"} | {f"team-{i}" for i in range(1001) if i != 999}
        assert requests.get(node.url + "/api/rules/team-7", headers=AUTH).json()["requests"] == 3
        assert call(node, "t7").status_code == 429
        assert call(node, "t1000").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_rule_api_errors_are_clear_and_change_nothing(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    rate_limits:
      - {id: from-config, requests: 100, window: {fixed: 1m}}
""")
    url = node.url + "/api/rules"

    def error(r, status, code):
        assert r.status_code == status, r.text
        body = r.json()["error"]
        assert body["code"] == code, body
        return body

    assert requests.get(url).status_code == 401
    assert requests.post(url, headers={"authorization": "Bearer wrong"}, json=team_rule(1)).status_code == 401
    e = error(requests.post(url, headers=AUTH, json=[team_rule(1), {**team_rule(2), "window": {"fixed": "soon"}}]), 400, "invalid_rule")
    assert e["key"] == "rules[1].window.fixed" and "soon" in e["message"]
    e = error(requests.post(url, headers=AUTH, json={**team_rule(1), "gateway": "nope"}), 400, "invalid_rule")
    assert "no gateway 'nope'" in e["message"]
    e = error(requests.post(url, headers=AUTH, json={**team_rule(1), "usd": 5}), 400, "invalid_rule")
    assert "not a measure of a rate limit" in e["message"]
    e = error(requests.post(url, headers=AUTH, json={**team_rule(1), "colour": "red"}), 400, "invalid_rule")
    assert e["key"] == "rule.colour"
    error(requests.post(url, headers=AUTH, json=[team_rule(1), team_rule(1)]), 400, "invalid_rule")
    error(requests.post(url, headers=AUTH, data="{not json"), 400, "invalid_rule")
    error(requests.post(url, headers=AUTH, data=""), 400, "invalid_rule")
    error(requests.post(url, headers=AUTH, json="a string"), 400, "invalid_rule")
    error(requests.post(url, headers=AUTH, json={**team_rule(1), "alerts": [0.5]}), 400, "invalid_rule")  # no webhook configured
    error(requests.post(url, headers=AUTH, json={**team_rule(1), "id": "from-config"}), 409, "rule_conflict")
    error(requests.put(url + "/from-config", headers=AUTH, json=team_rule(1)), 400, "invalid_rule")  # id differs from the path
    error(requests.put(url + "/from-config", headers=AUTH, json={**team_rule(1), "id": "from-config"}), 409, "rule_conflict")
    error(requests.delete(url + "/from-config", headers=AUTH), 409, "rule_conflict")
    error(requests.put(url + "/x", headers=AUTH, json=[team_rule(1)]), 400, "invalid_rule")
    error(requests.delete(url + "/nothing-here", headers=AUTH), 404, "not_found")
    error(requests.patch(url + "/from-config", headers=AUTH, json={}), 405, "method_not_allowed")
    error(requests.post(url, headers=AUTH, data=b"[" + b" " * (17 << 20) + b"]"), 413, "body_too_large")
    # Nothing above created anything; a good rule after them works, and a second create conflicts.
    assert [r["id"] for r in requests.get(url, headers=AUTH).json()["rules"]] == ["from-config"]
    assert requests.post(url, headers=AUTH, json=team_rule(1)).status_code == 201
    error(requests.post(url, headers=AUTH, json=[team_rule(2), team_rule(1)]), 409, "rule_conflict")
    assert [r["id"] for r in requests.get(url, headers=AUTH).json()["rules"]] == ["from-config", "team-1"]
    # PUT creates when the id is new.
    r = requests.put(url + "/team-9", headers=AUTH, json=team_rule(9))
    assert r.status_code == 201 and r.json()["id"] == "team-9"
