"""Config errors, the embedded defaults, and draining on SIGTERM."""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import requests

from conftest import BIN, free_port, wait_http


def run(args, **kw):
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30, **kw)


def test_config_mistake_names_the_key_and_exits_nonzero():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("node:\n  name: a\n  listen: \"127.0.0.1:8787\"\n  data_dri: ./x\n")
    out = run(["serve", "--config", f.name])
    assert out.returncode == 2
    assert "node.data_dri" in out.stderr and "line 4" in out.stderr and "unknown key" in out.stderr
    out = run(["check-config", "--config", f.name])
    assert out.returncode == 2


def test_missing_config_file_and_bad_yaml():
    out = run(["serve", "--config", "/nonexistent/gatemesh.yaml"])
    assert out.returncode == 2 and "cannot read config file" in out.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("cluster: {listen: \"127.0.0.1:7946\"}\n")
    out = run(["serve", "--config", f.name])
    assert out.returncode == 2 and "cluster.tls" in out.stderr and "certificates" in out.stderr


def test_check_config_reports_settings():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write('admin: {token: "${T}"}\ngateways: [{id: default}, {id: team, auth_tokens: [x]}]\n')
    out = run(["check-config", "--config", f.name], env={**os.environ, "T": "tok"})
    assert out.returncode == 0, out.stderr
    assert "team (token)" in out.stdout and "admin API: enabled" in out.stdout
    assert "warning" not in out.stderr, "loopback: nothing to warn about"


def test_check_config_warns_about_open_gateways_and_no_admin_token_beyond_loopback():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write('node: {listen: "0.0.0.0:8787"}\ngateways: [{id: default}, {id: team, auth_tokens: [x]}]\n')
    out = run(["check-config", "--config", f.name])
    assert out.returncode == 0, out.stderr
    assert "warning: node.listen 0.0.0.0:8787 is not a loopback address, and gateway(s) default take requests without a token" in out.stderr
    assert "there is no admin.token" in out.stderr


def test_no_config_uses_embedded_defaults_and_creates_the_data_dir(mock):
    workdir = tempfile.mkdtemp()
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GATEMESH_ADMIN_TOKEN": "envtoken"})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert os.path.exists(os.path.join(workdir, "gatemesh-data", "gatemesh.sqlite"))
        r = requests.get(f"http://127.0.0.1:{port}/cluster/status", headers={"authorization": "Bearer envtoken"})
        assert r.status_code == 200 and r.json()["members"][0]["name"] == "node-1"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_port_in_use_fails_with_a_clear_message(node):
    out = run(["serve", "--listen", f"127.0.0.1:{node.port}", "--data-dir", tempfile.mkdtemp()])
    assert out.returncode == 1
    assert "stopped with an error" in out.stderr and "ddress already in use" in out.stderr


def test_restart_keeps_the_node_identity(start_node):
    node = start_node()
    status = lambda n: requests.get(n.url + "/cluster/status", headers={"authorization": "Bearer admin-secret"}).json()
    first = status(node)["members"][0]
    node.stop()
    port = node.port
    proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(node.data_dir, "gatemesh.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        second = requests.get(f"http://127.0.0.1:{port}/cluster/status",
                              headers={"authorization": "Bearer admin-secret"}).json()["members"][0]
        assert second["node_id"] == first["node_id"]
        assert second["starts"] == first["starts"] + 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_sigterm_drains_in_flight_requests(start_node, mock):
    node = start_node()
    result = {}
    started = threading.Event()

    def stream():
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=20)
        conn.request("POST", "/openai/chat/completions",
                     body=json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}),
                     headers={"content-type": "application/json", "x-mock-output-tokens": "4",
                              "x-mock-token-delay-ms": "400"})
        resp = conn.getresponse()
        result["status"] = resp.status
        started.set()
        result["body"] = resp.read()

    t = threading.Thread(target=stream)
    t.start()
    # The stream is under way (its head has arrived; its four tokens take 1.6 s) before the signal.
    assert started.wait(20), "the stream never started"
    node.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert result["status"] == 200
    assert result["body"].endswith(b"data: [DONE]\n\n"), result["body"][-200:]
    assert node.proc.wait(15) == 0
