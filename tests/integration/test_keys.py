"""Virtual keys, teams and orgs (issue 15): clients present only a `gmk_` key; budgets and rate
limits of key, team and org hold together; keys are checked, refused with the reason, rotated."""
import time

import anthropic
import openai
import pytest
import requests

from conftest import eventually, netns_available

ADMIN = {"authorization": "Bearer admin-secret"}


def keys_yaml(mock, gateway_extra=""):
    # Stored provider keys (a virtual key is never sent upstream), and prices that make each
    # request cost about a cent: $1,000 per million tokens in and out.
    return f"""
providers:
  openai: {{base_url: "{mock.url}/v1", api_key: sk-stored-openai, models: {{gpt-4o-mini: {{input: "1000", output: "1000"}}, gpt-4o: {{input: "1000", output: "1000"}}}}}}
  anthropic: {{base_url: "{mock.url}", api_key: sk-stored-anthropic}}
  custom-echo: {{base_url: "{mock.url}/echo", api_key: sk-stored-echo}}
  mistral: {{base_url: "{mock.url}"}}
gateways:
  - id: default
{gateway_extra}"""


@pytest.fixture
def keyed(start_node, mock):
    return lambda extra="": start_node(keys_yaml(mock, extra), providers=False)


def post(node, path, body):
    r = requests.post(node.url + path, json=body, headers=ADMIN, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def make_key(node, team, **fields):
    return post(node, "/api/keys", {"team": team, **fields})


def chat(node, secret, model="gpt-4o-mini", headers=None, max_tokens=8):
    return requests.post(node.url + "/openai/chat/completions", timeout=10,
                         headers={"authorization": f"Bearer {secret}", **(headers or {})},
                         json={"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hello there"}]})


def until_refused(node, secret, limit=50):
    """Sends until a 429; returns the answers' statuses and the refusal."""
    for _ in range(limit):
        r = chat(node, secret)
        if r.status_code == 429:
            return r.json()["error"]
        assert r.status_code == 200, r.text
    raise AssertionError("never refused")


def test_the_official_sdks_work_with_only_a_virtual_key_which_never_goes_upstream(keyed, mock):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    made = make_key(node, "red", name="ci-bot")
    secret = made["key"]
    assert secret.startswith("gmk_") and made["id"] and made["team"] == "red" and made["name"] == "ci-bot"
    listed = requests.get(node.url + "/api/keys", headers=ADMIN, timeout=5).json()
    assert listed["count"] == 1 and "key" not in listed["keys"][0] and secret not in str(listed), "the secret is shown once"
    r = openai.OpenAI(base_url=node.url + "/openai", api_key=secret, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    m = anthropic.Anthropic(base_url=node.url + "/anthropic", api_key=secret, max_retries=0).messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text
    echo = requests.post(node.url + "/custom-echo/anything", json={"a": 1}, headers={"authorization": f"Bearer {secret}"}, timeout=10)
    assert echo.status_code == 200
    assert "gmk_" not in echo.text and "sk-stored-echo" in echo.text, echo.text
    # A provider without a stored key cannot take a virtual key.
    r = requests.post(node.url + "/mistral/v1/chat/completions", headers={"authorization": f"Bearer {secret}"}, timeout=10,
                      json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_provider_key", r.text
    # Google's SDKs send x-goog-api-key: a virtual key there is the gateway's too.
    r = requests.post(node.url + "/google-ai-studio/v1beta/models/gemini-2.0-flash:generateContent", headers={"x-goog-api-key": secret},
                      json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_provider_key", r.text
    r = requests.post(node.url + "/openai/chat/completions", headers={"cf-aig-authorization": f"Bearer {secret}"}, timeout=10,
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and "gmk_" not in r.text


def test_a_keys_budget_then_its_teams_budget_refuse_and_name_the_entity(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme", "budgets": [{"id": "daily", "usd": "0.2", "window": {"calendar": "day"}}]})
    one = make_key(node, "red", budgets=[{"id": "daily", "usd": "0.08", "window": {"calendar": "day"}}])
    two = make_key(node, "red")
    refused = until_refused(node, one["key"])
    assert f"key:{one['id']}:daily" in refused["message"] and refused["code"] == "budget_exceeded"
    assert chat(node, two["key"]).status_code == 200, "the team still has room"
    refused = until_refused(node, two["key"])
    assert "team:red:daily" in refused["message"]
    assert chat(node, one["key"]).status_code == 429
    budgets = requests.get(node.url + "/api/budgets", headers=ADMIN, timeout=5).json()["rules"]
    assert {"team:red:daily", f"key:{one['id']}:daily"} <= {b["id"] for b in budgets}


def test_an_org_budget_caps_two_teams_together(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "globex", "budgets": [{"id": "monthly", "usd": "0.1", "window": {"calendar": "month"}}]})
    post(node, "/api/teams", {"id": "blue", "org": "globex"})
    post(node, "/api/teams", {"id": "green", "org": "globex"})
    blue, green = make_key(node, "blue")["key"], make_key(node, "green")["key"]
    statuses = []
    for i in range(40):
        r = chat(node, blue if i % 2 == 0 else green)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert "org:globex:monthly" in r.json()["error"]["message"]
            break
    assert statuses[-1] == 429 and statuses.count(200) >= 2
    assert chat(node, blue).status_code == 429 and chat(node, green).status_code == 429


def test_a_header_claiming_another_teams_metadata_changes_nothing(keyed):
    node = keyed("""    budgets:
      - {id: blue-only, usd: "0.000001", scope: {only: {metadata.team: blue}}, window: {calendar: day}}
    rate_limits:
      - {id: per-team, requests: 3, scope: {split_by: [team]}, window: {fixed: 1h}}
""")
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme", "metadata": {"team": "red"}})
    secret = make_key(node, "red", metadata={"owner": "ci"})["key"]
    claim = {"x-gatemesh-metadata": '{"team": "blue", "owner": "someone-else", "ticket": "T-1"}'}
    r = chat(node, secret, headers=claim)
    assert r.status_code == 200, r.text
    row = eventually(lambda: requests.get(node.url + "/api/logs/" + r.headers["x-gatemesh-log-id"], headers=ADMIN, timeout=5),
                     lambda x: x.status_code == 200, what="the log row").json()
    assert row["metadata"] == {"team": "red", "owner": "ci", "ticket": "T-1"}, row["metadata"]
    # The `team` dimension comes from the key: three per team, whatever the header says.
    assert [chat(node, secret, headers=claim).status_code for _ in range(3)] == [200, 200, 429]


def test_models_keys_may_not_use_are_refused_with_403(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme", "models": ["openai/*", "anthropic/*"]})
    post(node, "/api/teams", {"id": "red", "org": "acme", "models": ["openai/gpt-4o-mini", "anthropic/claude-*"]})
    secret = make_key(node, "red")["key"]
    assert chat(node, secret).status_code == 200
    r = chat(node, secret, model="gpt-4o")
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert "team 'red' may not use openai/gpt-4o" in r.json()["error"]["message"]


def test_unknown_expired_disabled_and_revoked_keys_are_refused_with_the_reason(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    expired = make_key(node, "red", expires_at="2020-01-01T00:00:00Z")
    assert chat(node, expired["key"]).json()["error"]["code"] == "expired_key"
    assert chat(node, "gmk_" + "x" * 40).json()["error"]["code"] == "unknown_key"
    key = make_key(node, "red")
    assert chat(node, key["key"]).status_code == 200
    r = requests.put(node.url + f"/api/keys/{key['id']}", json={"disabled": True}, headers=ADMIN, timeout=5)
    assert r.status_code == 200, r.text
    r = chat(node, key["key"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "disabled_key"
    requests.put(node.url + f"/api/keys/{key['id']}", json={}, headers=ADMIN, timeout=5)
    assert chat(node, key["key"]).status_code == 200
    r = requests.delete(node.url + f"/api/keys/{key['id']}", headers=ADMIN, timeout=5)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = chat(node, key["key"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_key" and key["id"] in r.json()["error"]["message"]
    # A team with keys that are not revoked cannot be deleted.
    other = make_key(node, "red")
    r = requests.delete(node.url + "/api/teams/red", headers=ADMIN, timeout=5)
    assert r.status_code == 409 and other["id"] in r.text


def test_a_rotated_keys_old_secret_works_in_the_grace_period_and_not_after(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    key = make_key(node, "red")
    r = requests.post(node.url + f"/api/keys/{key['id']}/rotate", json={"grace": "2s"}, headers=ADMIN, timeout=5)
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    assert new != key["key"] and r.json()["previous_secret_valid_until"]
    assert chat(node, new).status_code == 200
    assert chat(node, key["key"]).status_code == 200, "the old secret in its grace period"
    refused = eventually(lambda: chat(node, key["key"]), lambda x: x.status_code == 401, timeout=10, what="the old secret refused")
    assert refused.json()["error"]["code"] == "rotated_key"
    assert chat(node, new).status_code == 200


def test_a_gateway_that_requires_keys_refuses_requests_without_one(keyed):
    node = keyed("    virtual_keys: required\n")
    r = requests.post(node.url + "/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": []}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_virtual_key"


def test_bad_entity_documents_are_refused_with_what_is_wrong(keyed):
    node = keyed()
    r = requests.post(node.url + "/api/teams", json={"id": "red", "org": "nope"}, headers=ADMIN, timeout=5)
    assert r.status_code == 400 and "no org 'nope'" in r.json()["error"]["message"]
    r = requests.post(node.url + "/api/orgs", json={"id": "Bad Id"}, headers=ADMIN, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_entity"
    r = requests.post(node.url + "/api/orgs", json={"id": "acme", "budgets": [{"id": "x", "usd": "lots"}]}, headers=ADMIN, timeout=5)
    assert r.status_code == 400 and "budgets[0]" in r.json()["error"]["message"]
    post(node, "/api/orgs", {"id": "acme"})
    r = requests.post(node.url + "/api/orgs", json={"id": "acme"}, headers=ADMIN, timeout=5)
    assert r.status_code == 409
    r = requests.post(node.url + "/api/keys", json={"team": "red"}, headers=ADMIN, timeout=5)
    assert r.status_code == 400 and "no team 'red'" in r.text
    assert requests.get(node.url + "/api/keys/nope", headers=ADMIN, timeout=5).status_code == 404


def test_keys_made_revoked_and_spent_on_any_node_hold_on_every_node_of_a_cluster(mock):
    """A key made on node 1 works on node 3 within a second; its spend on all three nodes adds up
    in one budget; revoked on node 2, it is refused on every node within a second."""
    import os
    import sys
    import tempfile
    from conftest import BIN
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "cluster"))
    from launch import Cluster, free_block
    base = free_block(6)
    c = Cluster(nodes=3, base_port=base, peer_base_port=base + 3, binary=BIN, mock=mock, openai_key="sk-stored",
                run_dir=tempfile.mkdtemp(prefix="gatemesh-keys-"))
    c.start()
    auth = {"authorization": "Bearer cluster-admin"}
    try:
        eventually(lambda: requests.get(c.node_url(0) + "/cluster/status", headers=auth, timeout=5).json()["cluster"]["size"],
                   lambda n: n == 3, timeout=15, what="three members")
        for path, body in [("/api/orgs", {"id": "acme"}), ("/api/teams", {"id": "red", "org": "acme"})]:
            assert requests.post(c.node_url(0) + path, json=body, headers=auth, timeout=5).status_code == 201
        made = requests.post(c.node_url(0) + "/api/keys", headers=auth, timeout=5,
                             json={"team": "red", "budgets": [{"id": "daily", "usd": "100", "window": {"calendar": "day"}}]}).json()
        created = time.time()
        secret = made["key"]

        def works_on(i):
            return requests.post(c.node_url(i) + "/openai/chat/completions", headers={"authorization": f"Bearer {secret}"}, timeout=10,
                                 json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
        eventually(lambda: works_on(2).status_code, lambda s: s == 200, timeout=5, what="the key working on node 3")
        assert time.time() - created < 2.0, f"took {time.time() - created:.2f} s"
        for i in [0, 1, 2, 0, 1, 2]:
            assert works_on(i).status_code == 200
        rule = f"key:{made['id']}:daily"

        def spent(i):
            rules = requests.get(c.node_url(i) + "/api/budgets", headers=auth, timeout=5).json()["rules"]
            return [s["spent"] for r in rules if r["id"] == rule for s in r["scopes"]]
        # Every node sees the same spend for the key (all seven requests).
        eventually(lambda: {tuple(spent(i)) for i in range(3)}, lambda v: len(v) == 1 and list(v)[0] and float(list(v)[0][0]) > 0,
                   timeout=10, what="one spend figure for the key on every node")
        # The budget's spend is what the three nodes' logs say the requests cost (read through one
        # node: the log API answers for the whole cluster).
        def logged_nanos():
            page = requests.get(c.node_url(1) + "/api/logs", headers=auth, timeout=5).json()
            assert page["missing_nodes"] == [], page["missing_nodes"]
            return sum(row["cost_nanos"] or 0 for row in page["data"]), len(page["data"])
        nanos, rows = eventually(logged_nanos, lambda v: v[1] == 7, timeout=10, what="seven log rows over the nodes")
        # The spend of the last requests reaches every node by replication, which the log rows do
        # not wait for: poll, as for any asynchronous figure (a single read failed once on a busy
        # machine, two requests short).
        eventually(lambda: [round(float(spent(i)[0]) * 1e9) for i in range(3)], lambda v: v == [nanos] * 3, timeout=10,
                   what="every node's spend equal to what the logs say the requests cost")
        r = requests.delete(c.node_url(1) + f"/api/keys/{made['id']}", headers=auth, timeout=5)
        assert r.status_code == 200
        revoked = time.time()
        for i in range(3):
            eventually(lambda: works_on(i).status_code, lambda s: s == 401, timeout=5, what=f"the key refused on node {i + 1}")
        assert time.time() - revoked < 2.0, f"took {time.time() - revoked:.2f} s"
        # Every change, made on whichever node, is in every node's audit log.
        expected = {("node-1", "POST /api/orgs"), ("node-1", "POST /api/teams"), ("node-1", "POST /api/keys"),
                    ("node-2", f"DELETE /api/keys/{made['id']}")}
        for i in range(3):
            eventually(lambda: {(e["node"], e["action"]) for e in requests.get(c.node_url(i) + "/api/audit", headers=auth, timeout=5).json()["data"]},
                       lambda seen: expected <= seen, timeout=5, what=f"the audit log on node {i + 1}")
    finally:
        c.stop()


def test_gatemesh_keys_creates_lists_rotates_and_revokes(keyed):
    import subprocess
    from conftest import BIN
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})

    def cli(*args):
        r = subprocess.run([BIN, "keys", *args, "--node", node.url, "--token", "admin-secret"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout
    out = cli("create", "--team", "red", "--name", "terminal", "--daily-usd", "5", "--model", "openai/*")
    key_id = out.split("id:")[1].split()[0]
    secret = out.split("secret:")[1].split()[0]
    assert secret.startswith("gmk_") and chat(node, secret).status_code == 200
    listed = cli("list", "--team", "red")
    assert key_id in listed and "terminal" in listed and "active" in listed and secret not in listed
    rotated = cli("rotate", key_id, "--grace", "1h").split("secret:")[1].split()[0]
    assert chat(node, rotated).status_code == 200 and chat(node, secret).status_code == 200
    cli("revoke", key_id)
    assert chat(node, rotated).json()["error"]["code"] == "revoked_key"
    assert "revoked" in cli("list")
    r = subprocess.run([BIN, "keys", "create", "--team", "nope", "--node", node.url, "--token", "admin-secret"], capture_output=True, text=True)
    assert r.returncode == 1 and "no team 'nope'" in r.stderr


def test_the_request_log_and_analytics_know_keys_teams_orgs_and_users(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    post(node, "/api/teams", {"id": "blue", "org": "acme"})
    red, blue = make_key(node, "red"), make_key(node, "blue")
    for secret, n in [(red["key"], 3), (blue["key"], 1)]:
        for _ in range(n):
            assert chat(node, secret, headers={"x-gatemesh-user": "alice"}).status_code == 200
    assert chat(node, "sk-not-a-virtual-key").status_code == 200
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=ADMIN, timeout=5).json()["data"],
                      lambda d: len(d) == 5, what="five rows")
    keyed_rows = [r for r in rows if r["key"]]
    assert len(keyed_rows) == 4 and all(r["org"] == "acme" and r["user"] == "alice" for r in keyed_rows)
    assert sum(r["team"] == "red" and r["key"] == red["id"] for r in rows) == 3
    red_only = requests.get(node.url + "/api/logs", params={"team": "red"}, headers=ADMIN, timeout=5).json()["data"]
    assert len(red_only) == 3
    assert len(requests.get(node.url + "/api/logs", params={"key": blue["id"]}, headers=ADMIN, timeout=5).json()["data"]) == 1
    groups = requests.get(node.url + "/api/analytics", params={"group_by": "team"}, headers=ADMIN, timeout=5).json()["groups"]
    assert {g["key"]: g["totals"]["requests"] for g in groups} == {"red": 3, "blue": 1, None: 1}
    metrics = requests.get(node.url + "/metrics", headers=ADMIN, timeout=5).text
    assert 'gatemesh_team_requests_total{org="acme",team="red"} 3' in metrics, metrics
    assert 'gatemesh_team_cost_nanodollars_total{org="acme",team="blue"}' in metrics


def test_operator_tokens_have_roles_and_every_change_is_audited(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    post(node, "/api/teams", {"id": "blue", "org": "acme"})
    viewer = post(node, "/api/tokens", {"role": "viewer", "name": "grafana"})
    red_admin = post(node, "/api/tokens", {"role": "team_admin", "team": "red", "name": "red lead"})
    assert viewer["token"].startswith("gmo_") and red_admin["team"] == "red"
    as_viewer = {"authorization": f"Bearer {viewer['token']}"}
    as_red = {"authorization": f"Bearer {red_admin['token']}"}
    # A viewer reads, and changes nothing.
    assert requests.get(node.url + "/api/keys", headers=as_viewer, timeout=5).status_code == 200
    assert requests.get(node.url + "/api/budgets", headers=as_viewer, timeout=5).status_code == 200
    r = requests.post(node.url + "/api/keys", json={"team": "red"}, headers=as_viewer, timeout=5)
    assert r.status_code == 403 and "read-only" in r.json()["error"]["message"]
    assert requests.get(node.url + "/api/tokens", headers=as_viewer, timeout=5).status_code == 403
    # A team_admin manages its team's keys only, and reads its team's logs only.
    mine = requests.post(node.url + "/api/keys", json={"team": "red", "name": "mine"}, headers=as_red, timeout=5)
    assert mine.status_code == 201, mine.text
    r = requests.post(node.url + "/api/keys", json={"team": "blue"}, headers=as_red, timeout=5)
    assert r.status_code == 403
    blue = make_key(node, "blue")
    assert requests.delete(node.url + f"/api/keys/{blue['id']}", headers=as_red, timeout=5).status_code == 403
    assert requests.get(node.url + f"/api/keys/{blue['id']}", headers=as_red, timeout=5).status_code == 403
    assert [k["id"] for k in requests.get(node.url + "/api/keys", headers=as_red, timeout=5).json()["keys"]] == [mine.json()["id"]]
    assert chat(node, mine.json()["key"]).status_code == 200
    blue_call = chat(node, blue["key"])
    assert blue_call.status_code == 200
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=ADMIN, timeout=5).json()["data"], lambda d: len(d) == 2)
    red_rows = requests.get(node.url + "/api/logs", headers=as_red, timeout=5).json()["data"]
    assert [r["team"] for r in red_rows] == ["red"]
    assert requests.get(node.url + "/api/logs/" + blue_call.headers["x-gatemesh-log-id"], headers=as_red, timeout=5).status_code == 404
    assert requests.get(node.url + "/api/rules", headers=as_red, timeout=5).status_code == 403
    assert requests.get(node.url + "/api/teams/blue", headers=as_red, timeout=5).status_code == 403
    assert requests.get(node.url + "/api/teams/red", headers=as_red, timeout=5).status_code == 200
    # Every change is in the audit log: who, what, before and after; never a secret.
    audit = requests.get(node.url + "/api/audit", headers=ADMIN, timeout=5).json()["data"]
    actions = [(e["actor"], e["action"]) for e in audit]
    assert ("root", "POST /api/orgs") in actions and ("root", "POST /api/tokens") in actions
    assert (f"token:{red_admin['id']}", "POST /api/keys") in actions
    created = next(e for e in audit if e["actor"] == f"token:{red_admin['id']}")
    assert created["before"] is None and created["after"]["name"] == "mine" and created["team"] == "red" and created["node"] == "test-node"
    assert all(secret not in json_text(audit) for secret in [mine.json()["key"], blue["key"], viewer["token"], red_admin["token"]])
    assert all(e["team"] == "red" for e in requests.get(node.url + "/api/audit", headers=as_red, timeout=5).json()["data"])
    # A revoked token is refused.
    assert requests.delete(node.url + f"/api/tokens/{viewer['id']}", headers=ADMIN, timeout=5).status_code == 200
    assert requests.get(node.url + "/api/keys", headers=as_viewer, timeout=5).status_code == 401
    edit = next(e for e in requests.get(node.url + "/api/audit", headers=ADMIN, timeout=5).json()["data"] if e["action"].startswith("DELETE /api/tokens"))
    assert edit["before"]["revoked_at"] is None and edit["after"]["revoked_at"]


def json_text(value):
    import json
    return json.dumps(value)


@pytest.mark.skipif(not netns_available(), reason="needs root and Linux network namespaces (ip netns)")
def test_a_node_partitioned_during_a_revoke_refuses_the_key_within_two_seconds_of_healing():
    import os
    import sys
    from conftest import BIN
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "cluster"))
    from netns import NetnsCluster
    c = NetnsCluster(3, 3, [0], binary=BIN, openai_key="sk-stored")
    c.start()
    auth = {"authorization": "Bearer cluster-admin"}
    try:
        eventually(lambda: [requests.get(c.node_url(i) + "/cluster/status", headers=auth, timeout=5).json()["cluster"]["size"] for i in range(3)],
                   lambda sizes: sizes == [3, 3, 3], timeout=15, what="three members everywhere")
        for path, body in [("/api/orgs", {"id": "acme"}), ("/api/teams", {"id": "red", "org": "acme"})]:
            assert requests.post(c.node_url(0) + path, json=body, headers=auth, timeout=5).status_code == 201
        made = requests.post(c.node_url(0) + "/api/keys", json={"team": "red"}, headers=auth, timeout=5).json()

        def status_on(i):
            return requests.post(c.node_url(i) + "/openai/chat/completions", headers={"authorization": f"Bearer {made['key']}"}, timeout=10,
                                 json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).status_code
        for i in range(3):
            eventually(lambda: status_on(i), lambda s: s == 200, timeout=5, what=f"the key working on node {i + 1}")
        c.partition([2], [0, 1])
        assert requests.delete(c.node_url(1) + f"/api/keys/{made['id']}", headers=auth, timeout=5).status_code == 200
        for i in (0, 1):
            eventually(lambda: status_on(i), lambda s: s == 401, timeout=5, what=f"the key refused on node {i + 1}")
        assert status_on(2) == 200, "cut off, node 3 has not heard of the revoke"
        c.heal()
        healed = time.time()
        eventually(lambda: status_on(2), lambda s: s == 401, timeout=10, what="the key refused on node 3 after healing")
        assert time.time() - healed <= 2.0, f"refused {time.time() - healed:.2f} s after healing"
    finally:
        c.stop()


def test_the_end_user_comes_from_the_body_or_the_user_header(keyed):
    node = keyed("""    rate_limits:
      - {id: per-user, requests: 2, scope: {split_by: [user]}, window: {fixed: 1h}}
""")

    def ask(user=None, header=None):
        body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        if user:
            body["user"] = user
        return requests.post(node.url + "/openai/chat/completions", json=body, timeout=10,
                             headers={"x-gatemesh-user": header} if header else {}).status_code
    assert [ask("bob"), ask("bob"), ask("bob")] == [200, 200, 429]
    assert ask("carol") == 200
    assert ask("bob", header="dave") == 200, "the header names the user over the body"
    assert ask() == 200, "a request naming no user is not counted"
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=ADMIN, timeout=5).json()["data"], lambda d: len(d) == 6)
    assert sorted(r["user"] or "-" for r in rows) == ["-", "bob", "bob", "bob", "carol", "dave"]


def test_custom_cost_is_honoured_for_keys_that_allow_it_only(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    trusted = make_key(node, "red", allow_custom_cost=True)
    plain = make_key(node, "red")
    assert trusted["allow_custom_cost"] is True and plain["allow_custom_cost"] is False
    cost = {"x-gatemesh-custom-cost": '{"per_token_in": 0.000001, "per_token_out": 0.000002}'}
    r = chat(node, trusted["key"], headers=cost)
    assert r.status_code == 200, r.text
    r = chat(node, plain["key"], headers=cost)
    assert r.status_code == 403 and r.json()["error"]["code"] == "custom_cost_not_allowed"


def test_the_unified_api_takes_a_virtual_key_and_holds_it_to_its_budget(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    key = make_key(node, "red", budgets=[{"id": "daily", "usd": "0.05", "window": {"calendar": "day"}}])
    client = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
    refused = None
    for _ in range(30):
        try:
            client.chat.completions.create(model="openai/gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        except openai.RateLimitError as e:
            refused = e
            break
    assert refused is not None and f"key:{key['id']}:daily" in str(refused)
    # The log is written in batches off the request path: wait for the rows, do not assume them.
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=ADMIN, timeout=5).json()["data"], lambda d: len(d) > 0)
    assert all(r["key"] == key["id"] for r in rows)


def test_universal_and_unified_requests_with_a_key_never_send_it_to_a_provider(keyed):
    node = keyed()
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    secret = make_key(node, "red")["key"]
    auth = {"authorization": f"Bearer {secret}"}
    # A provider without a stored key: refused, not sent the virtual key.
    r = requests.post(node.url + "/v1/chat/completions", headers=auth, timeout=10,
                      json={"model": "mistral/mistral-small-latest", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_provider_key", r.text
    # The universal endpoint: each step is the key's, and the echo never sees it.
    r = requests.post(node.url + "/default", headers=auth, timeout=10,
                      json=[{"provider": "custom-echo", "endpoint": "anything", "headers": {}, "query": {"a": 1}}])
    assert r.status_code == 200, r.text
    assert "gmk_" not in r.text and "sk-stored-echo" in r.text
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=ADMIN, timeout=5).json()["data"],
                      lambda d: any(row["provider"] == "custom-echo" for row in d))
    assert all(row["team"] == "red" for row in rows if row["provider"] == "custom-echo")


def test_what_a_team_admin_cannot_do_with_its_own_keys_and_what_review_found(keyed, mock):
    node = keyed("    cache: {ttl: 600}\n")
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme", "metadata": {"cost_center": "red-cc"}})
    post(node, "/api/teams", {"id": "blue", "org": "acme"})
    red_admin = post(node, "/api/tokens", {"role": "team_admin", "team": "red"})
    as_red = {"authorization": f"Bearer {red_admin['token']}", "content-type": "application/yaml"}
    mine = requests.post(node.url + "/api/keys", data='{"team": "red", "metadata": {"cost_center": "elsewhere"}}', headers=as_red, timeout=5)
    assert mine.status_code == 201, mine.text
    key = mine.json()
    # Moving the key to another team, in YAML as well as JSON, or letting it price itself: refused.
    for body in ['team: blue', '{"team": "blue"}', '{"allow_custom_cost": true}']:
        r = requests.put(node.url + f"/api/keys/{key['id']}", data=body, headers=as_red, timeout=5)
        assert r.status_code == 403, (body, r.text)
    r = requests.post(node.url + "/api/keys", data='{"team": "red", "allow_custom_cost": true}', headers=as_red, timeout=5)
    assert r.status_code == 403
    # The team's metadata wins over the key's for the same name.
    r = chat(node, key["key"])
    row = eventually(lambda: requests.get(node.url + "/api/logs/" + r.headers["x-gatemesh-log-id"], headers=ADMIN, timeout=5),
                     lambda x: x.status_code == 200).json()
    assert row["metadata"]["cost_center"] == "red-cc"
    # Cached answers are shared within a team, not across teams.
    blue = make_key(node, "blue")
    body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "cache me"}]}
    statuses = [requests.post(node.url + "/openai/chat/completions", json=body, headers={"authorization": f"Bearer {s}"}, timeout=10)
                .headers.get("x-gatemesh-cache-status") for s in (key["key"], key["key"], blue["key"])]
    assert statuses == ["MISS", "HIT", "MISS"]
    # A huge grace is a 400, not a crash; a revoked key cannot be changed back.
    r = requests.post(node.url + f"/api/keys/{key['id']}/rotate", json={"grace": 9223372036854775}, headers=ADMIN, timeout=5)
    assert r.status_code == 400
    assert requests.delete(node.url + f"/api/keys/{key['id']}", headers=ADMIN, timeout=5).status_code == 200
    r = requests.put(node.url + f"/api/keys/{key['id']}", json={"name": "back"}, headers=ADMIN, timeout=5)
    assert r.status_code == 409
    assert chat(node, key["key"]).status_code == 401


def test_a_budgets_downgrade_to_a_model_the_key_may_not_use_is_refused(keyed):
    node = keyed("""    budgets:
      - {id: premium, usd: "0.000001", scope: {only: {model: gpt-4o}}, window: {calendar: month}, action: {downgrade: {model: gpt-4o-mini}}}
""")
    post(node, "/api/orgs", {"id": "acme"})
    post(node, "/api/teams", {"id": "red", "org": "acme"})
    only_4o = make_key(node, "red", models=["openai/gpt-4o"])
    both = make_key(node, "red", models=["openai/gpt-4o*"])
    r = chat(node, only_4o["key"], model="gpt-4o")
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
    assert "premium" in r.json()["error"]["message"] and "gpt-4o-mini" in r.json()["error"]["message"]
    r = chat(node, both["key"], model="gpt-4o")
    assert r.status_code == 200 and r.headers.get("x-gatemesh-downgraded") == "premium", r.text
