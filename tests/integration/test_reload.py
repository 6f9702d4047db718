"""Config reload without a restart (issue 22): SIGHUP and `gatemesh reload` re-read the config file;
providers, gateways, rules, tokens and cache settings change in place; a bad file, or one that
changes what only a restart can (listeners, node identity), leaves the running config untouched."""
import os
import signal
import subprocess

import requests

from conftest import BIN, eventually, mock_providers_yaml

CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]}


def config_path(node):
    return os.path.join(node.data_dir, "gatemesh.yaml")


def rewrite(node, old, new):
    path = config_path(node)
    with open(path) as f:
        text = f.read()
    assert old in text, f"{old!r} not in the config"
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def admin(node, token=None):
    return {"authorization": f"Bearer {token or node.admin_token}"}


def chat(node, token):
    return requests.post(node.url + "/openai/chat/completions", json=CHAT, timeout=10,
                         headers={"cf-aig-authorization": f"Bearer {token}"})


def reload_cli(node, token=None):
    return subprocess.run([BIN, "reload", "--node", node.url, "--token", token or node.admin_token],
                          capture_output=True, text=True, timeout=30)


GATEWAY = """gateways:
  - id: default
    auth_tokens: [tok-one]
"""


def test_sighup_puts_a_changed_gateway_token_in_force_without_a_restart(start_node):
    node = start_node(GATEWAY)
    assert chat(node, "tok-one").status_code == 200
    assert chat(node, "tok-two").status_code == 401
    before = requests.get(node.url + "/api/config", headers=admin(node), timeout=5).json()
    rewrite(node, "[tok-one]", "[tok-two]")
    node.proc.send_signal(signal.SIGHUP)
    eventually(lambda: chat(node, "tok-two").status_code, lambda s: s == 200, what="the new token accepted after SIGHUP")
    assert chat(node, "tok-one").status_code == 401
    after = requests.get(node.url + "/api/config", headers=admin(node), timeout=5).json()
    assert after["digest"] != before["digest"] and after["gateways_digest"] != before["gateways_digest"]
    assert after["reloadable"] is True
    assert node.proc.poll() is None, "the node kept running"


def test_gatemesh_reload_changes_rules_providers_cache_and_the_admin_token(start_node, mock):
    node = start_node(GATEWAY + "cache: {memory: 64MiB}\n")
    r = reload_cli(node)
    assert r.returncode == 0, r.stderr
    assert "nothing changed" in r.stdout
    # A budget rule in the config, then a smaller cache and another price.
    rewrite(node, "    auth_tokens: [tok-one]\n", """    auth_tokens: [tok-one]
    budgets:
      - {id: reloaded-daily, usd: "0.001", window: {calendar: day}}
""")
    rewrite(node, "memory: 64MiB", "memory: 32MiB")
    rewrite(node, f'  openai: {{base_url: "{mock.url}/v1"}}',
            f'  openai: {{base_url: "{mock.url}/v1", models: {{gpt-4o-mini: {{input: "1000", output: "1000"}}}}}}')
    r = reload_cli(node)
    assert r.returncode == 0, r.stderr
    assert "reloaded:" in r.stdout and "gateways" in r.stdout and "cache" in r.stdout and "providers" in r.stdout
    rules = requests.get(node.url + "/api/rules", headers=admin(node), timeout=5).json()["rules"]
    assert [(x["id"], x["source"]) for x in rules] == [("reloaded-daily", "config")]
    cache = requests.get(node.url + "/api/cache", headers=admin(node), timeout=5).json()
    assert cache["memory"]["limit_bytes"] == 32 << 20
    # The new price is in force: the budget now refuses what it admitted before.
    r = chat(node, "tok-one")
    assert r.status_code == 429, r.text
    # Rules out of the config go out of force.
    rewrite(node, """    budgets:
      - {id: reloaded-daily, usd: "0.001", window: {calendar: day}}
""", "")
    assert reload_cli(node).returncode == 0
    assert requests.get(node.url + "/api/rules", headers=admin(node), timeout=5).json()["rules"] == []
    # A new admin token: the old one is refused from now on.
    rewrite(node, "admin: {token: admin-secret}", "admin: {token: admin-rotated}")
    assert reload_cli(node).returncode == 0
    assert requests.get(node.url + "/api/config", headers=admin(node), timeout=5).status_code == 401
    assert requests.get(node.url + "/api/config", headers=admin(node, "admin-rotated"), timeout=5).status_code == 200


def test_a_bad_file_or_a_restart_only_change_leaves_the_running_config_untouched(start_node):
    node = start_node(GATEWAY)
    path = config_path(node)
    with open(path) as f:
        good = f.read()
    # Not YAML the loader takes: refused with the loader's message (key and line), nothing changed.
    with open(path, "w") as f:
        f.write(good.replace("    auth_tokens: [tok-one]\n", "    auth_tokens: [tok-one]\n    retries: {max_attempts: lots}\n"))
    r = reload_cli(node)
    assert r.returncode == 1
    assert "400" in r.stderr and "retries" in r.stderr and "running config is unchanged" in r.stderr, r.stderr
    assert chat(node, "tok-one").status_code == 200
    # SIGHUP with the same bad file: the node keeps running on what it had.
    node.proc.send_signal(signal.SIGHUP)
    assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
    assert chat(node, "tok-one").status_code == 200
    # A new listener takes a restart: refused, naming the setting, and nothing else is applied.
    with open(path, "w") as f:
        f.write(good.replace(f"127.0.0.1:{node.port}", "127.0.0.1:1").replace("[tok-one]", "[tok-two]"))
    r = requests.post(node.url + "/api/config/reload", headers=admin(node), timeout=10)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "config_needs_restart"
    assert "node.listen" in r.json()["error"]["message"]
    assert chat(node, "tok-one").status_code == 200
    assert chat(node, "tok-two").status_code == 401
    # A file that cannot be read.
    os.rename(path, path + ".moved")
    r = requests.post(node.url + "/api/config/reload", headers=admin(node), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config"
    assert "cannot read config file" in r.json()["error"]["message"]
    os.rename(path + ".moved", path)
    assert requests.get(node.url + "/api/config/reload", headers=admin(node), timeout=5).status_code == 405


def test_a_config_rule_that_takes_an_admin_api_rules_id_is_refused(start_node):
    node = start_node(GATEWAY)
    made = requests.post(node.url + "/api/rules", headers=admin(node), timeout=5,
                         json={"id": "shared-id", "gateway": "default", "requests": 10, "window": {"fixed": "1h"}})
    assert made.status_code == 201, made.text
    rewrite(node, "    auth_tokens: [tok-one]\n", """    auth_tokens: [tok-two]
    rate_limits:
      - {id: shared-id, requests: 5, window: {fixed: 1h}}
""")
    r = requests.post(node.url + "/api/config/reload", headers=admin(node), timeout=10)
    assert r.status_code == 409 and r.json()["error"]["code"] == "rule_conflict", r.text
    rules = requests.get(node.url + "/api/rules", headers=admin(node), timeout=5).json()["rules"]
    assert [(x["id"], x["source"]) for x in rules] == [("shared-id", "api")]
    assert chat(node, "tok-one").status_code == 200, "nothing of the refused file was applied"


def test_a_node_on_embedded_defaults_has_no_file_to_reload(tmp_path):
    from conftest import free_port, wait_http
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")],
                            env={**{k: v for k, v in os.environ.items() if k != "GATEMESH_CONFIG"}, "GATEMESH_ADMIN_TOKEN": "t0ken"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        r = requests.post(f"http://127.0.0.1:{port}/api/config/reload", headers={"authorization": "Bearer t0ken"}, timeout=5)
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_config_file"
    finally:
        proc.terminate()
        proc.wait(15)
