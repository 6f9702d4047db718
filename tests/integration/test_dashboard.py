"""The dashboard in a real headless browser (Debian's chromium), against a node with traffic."""
import os
import re
import shutil
import subprocess

import pytest
import requests

from test_accounting import admin, wait_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser(url, *extra):
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--hide-scrollbars", "--virtual-time-budget=8000", "--window-size=1400,1100", *extra, url],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def legend(dom, chart):
    """{group: value} from a chart's legend."""
    block = re.search(r'id="l-%s">(.*?)</div>' % chart, dom, re.S).group(1)
    return dict(re.findall(r'data-group="([^"]+)" data-value="([^"]*)"', block))


def card(dom, metric):
    m = re.search(r'data-metric="%s"><label>[^<]*</label><div class="v">([^<]*)<' % metric, dom)
    assert m, f"card {metric} not rendered"
    return m.group(1)


def test_dashboard_shows_budgets(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    budgets:
      - {id: team-daily, usd: "0.00003", scope: {split_by: metadata.team}, window: {calendar: day, timezone: Europe/Berlin}}
""")
    chat = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "one two three four"}]}
    statuses = [requests.post(node.url + "/openai/chat/completions", json=chat, headers={"x-gatemesh-metadata": '{"team":"red"}'}).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    requests.post(node.url + "/openai/chat/completions", json=chat, headers={"x-gatemesh-metadata": '{"team":"blue"}'})
    report = {s["scope"]: s for s in admin(node, "/api/budgets")["rules"][0]["scopes"]}
    dom = browser(f"{node.url}/dashboard#token={node.admin_token}", "--dump-dom")
    rows = dict(re.findall(r'<tr data-rule="team-daily" data-scope="([^"]*)" data-spent="([^"]*)"', dom))
    assert rows == {scope: s["spent"] for scope, s in report.items()}
    states = dict(re.findall(r'data-scope="([^"]*)" data-spent="[^"]*" data-state="([a-z]+)"', dom))
    assert states == {scope: s["state"] for scope, s in report.items()}
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser(f"{node.url}/dashboard#token={node.admin_token}", f"--screenshot={os.path.join(ARTIFACTS, 'dashboard-budgets.png')}")


def test_dashboard_renders_the_nodes_figures(node):
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
    for _ in range(3):
        assert requests.post(node.url + "/openai/chat/completions", json=chat,
                             headers={"x-gatemesh-metadata": '{"team":"red"}'}).status_code == 200
    assert requests.post(node.url + "/anthropic/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []},
                         headers={"x-gatemesh-metadata": '{"team":"blue"}'}).status_code == 200
    assert requests.post(node.url + "/openai/chat/completions", json=chat, headers={"x-mock-status": "500"}).status_code == 500
    rows = wait_rows(node, 5)
    totals = admin(node, "/api/analytics")["totals"]

    url = f"{node.url}/dashboard#token={node.admin_token}&log={rows[-1]['log_id']}"
    dom = browser(url, "--dump-dom")
    assert 'data-ready="1"' in dom
    assert card(dom, "requests") == "5"
    assert card(dom, "errors") == "1"
    assert card(dom, "output_tokens") == str(totals["output_tokens"])
    assert card(dom, "cost") == "$" + f"{float(totals['cost']):.6f}"
    # The charts: one line per provider, with that provider's totals in the legend.
    assert legend(dom, "requests") == {"openai": "4", "anthropic": "1"}
    assert sum(int(v) for v in legend(dom, "cost").values()) == totals["cost_nanos"]
    assert legend(dom, "errors") == {"openai": "1", "anthropic": "0"}
    points = re.search(r'<canvas id="c-requests"[^>]*data-points="(\d+)"', dom)
    assert points and int(points.group(1)) >= 2
    # The log rows, newest first, with their costs; and the detail view of the oldest one.
    ids = [i for i in re.findall(r'<tr class="row" data-id="([^"]+)"', dom) if not i.startswith("${")]  # not the script source
    assert ids == [r["log_id"] for r in rows]
    assert f'<span id="detail-id">{rows[-1]["log_id"]}</span>' in dom
    assert '&quot;request_body&quot;' in dom or '"request_body"' in dom

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    browser(url, f"--screenshot={shot}")
    assert os.path.getsize(shot) > 10_000
    print(f"dashboard screenshot: {shot}")


def test_dashboard_asks_again_for_a_wrong_token(node):
    page = requests.get(node.url + "/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    dom = browser(f"{node.url}/dashboard#token=wrong", "--dump-dom")
    assert re.search(r'<div id="app" class="hidden">', dom)
    assert "The admin token was refused." in dom


def test_dashboard_splits_by_team_and_shows_team_and_key_budgets(start_node, mock):
    """Issue 15: spend per team and per key, and each team's and key's budget against its limit."""
    node = start_node(providers=False, extra_yaml=f"""
providers:
  openai: {{base_url: "{mock.url}/v1", api_key: sk-stored}}
""")
    auth = {"authorization": f"Bearer {node.admin_token}"}
    requests.post(node.url + "/api/orgs", json={"id": "acme"}, headers=auth).raise_for_status()
    for team in ("red", "blue"):
        requests.post(node.url + "/api/teams", json={"id": team, "org": "acme",
                                                     "budgets": [{"id": "daily", "usd": "5", "window": {"calendar": "day"}}]},
                      headers=auth).raise_for_status()
    keys = {team: requests.post(node.url + "/api/keys", json={"team": team}, headers=auth).json() for team in ("red", "blue")}
    chat = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    for team, n in (("red", 2), ("blue", 1)):
        for _ in range(n):
            assert requests.post(node.url + "/openai/chat/completions", json=chat,
                                 headers={"authorization": f"Bearer {keys[team]['key']}"}).status_code == 200
    wait_rows(node, 3)
    dom = browser(f"{node.url}/dashboard#token={node.admin_token}&group=team", "--dump-dom")
    assert set(legend(dom, "requests")) == {"red", "blue"}
    assert legend(dom, "requests")["red"] == "2"
    spent = dict(re.findall(r'<tr data-rule="(team:[a-z]+:daily)" data-scope="[^"]*" data-spent="([^"]*)"', dom))
    assert set(spent) == {"team:red:daily", "team:blue:daily"} and float(spent["team:red:daily"]) > float(spent["team:blue:daily"]) > 0
    assert dom.count('data-team="red"') == 2
