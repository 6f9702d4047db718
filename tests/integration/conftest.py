"""Fixtures that start real GateMesh processes on loopback: the mock provider and gateway nodes."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("GATEMESH_BIN", os.path.join(ROOT, ".build", "debug", "gatemesh"))


def pytest_configure(config):
    """Every temporary directory of the run (node data dirs, cluster run dirs, certificates) goes
    under one directory, removed when the run passes and kept, with its path printed, when it fails."""
    root = tempfile.mkdtemp(prefix="gatemesh-tests-")
    config._gatemesh_tmp = root
    tempfile.tempdir = root


def pytest_unconfigure(config):
    root = getattr(config, "_gatemesh_tmp", None)
    if root is None:
        return
    tempfile.tempdir = None
    failed = config.pluginmanager.get_plugin("terminalreporter")
    failed = failed is not None and bool(failed.stats.get("failed") or failed.stats.get("error"))
    if failed or os.environ.get("GATEMESH_KEEP_TEST_DIRS"):
        print(f"\ntest data directories kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def netns_available():
    """Root and Linux network namespaces (`ip netns`), for the partition tests."""
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["ip", "netns", "add", "gm-probe"], capture_output=True).returncode == 0
    subprocess.run(["ip", "netns", "del", "gm-probe"], capture_output=True)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(fetch, ok=bool, timeout=10.0, what="the condition"):
    """Polls fetch() every 50 ms until ok(value) holds and returns that value; past the deadline it
    fails with what it saw last. Tests wait for facts (gossip, a log flush, a restart), never for a
    fixed time: CI runs on a busy two-core machine."""
    deadline = time.time() + timeout
    while True:
        try:
            last = fetch()
            if ok(last):
                return last
        except Exception as e:  # the node may be restarting; keep polling
            last = e
        if time.time() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s; last saw {last!r}")
        time.sleep(0.05)


def wait_http(url, timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


class Mock:
    def __init__(self, port, proc):
        self.port = port
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def stats(self):
        with urllib.request.urlopen(self.url + "/_mock/stats") as r:
            return json.loads(r.read())

    def reset(self):
        req = urllib.request.Request(self.url + "/_mock/reset", method="POST")
        urllib.request.urlopen(req).read()


@pytest.fixture(scope="session")
def mock():
    port = free_port()
    proc = subprocess.Popen([BIN, "mock-provider", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/_mock/healthz", proc=proc)
        yield Mock(port, proc)
    finally:
        stop_process(proc, timeout=5)


class Node:
    def __init__(self, port, proc, data_dir, admin_token):
        self.port = port
        self.proc = proc
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.admin_token = admin_token

    def stop(self, sig=signal.SIGTERM, timeout=15):
        return stop_process(self.proc, sig, timeout)


def stop_process(proc, sig=signal.SIGTERM, timeout=15):
    """Sends `sig` to a process still running, waits `timeout` s for it, then kills it; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def mock_providers_yaml(mock_url):
    """Every built-in provider pointed at the mock, at the path its real API has."""
    return f"""
providers:
  openai: {{base_url: "{mock_url}/v1"}}
  anthropic: {{base_url: "{mock_url}"}}
  google-ai-studio: {{base_url: "{mock_url}"}}
  mistral: {{base_url: "{mock_url}"}}
  groq: {{base_url: "{mock_url}/openai/v1"}}
  deepseek: {{base_url: "{mock_url}"}}
  xai: {{base_url: "{mock_url}/v1"}}
  openrouter: {{base_url: "{mock_url}/api/v1"}}
  perplexity-ai: {{base_url: "{mock_url}"}}
  cohere: {{base_url: "{mock_url}"}}
  azure-openai: {{base_url: "{mock_url}/echo/azure/{{resource}}/openai/deployments/{{deployment}}"}}
  custom-local: {{base_url: "{mock_url}/v1"}}
  custom-echo: {{base_url: "{mock_url}/echo"}}
"""


@pytest.fixture
def start_node(mock):
    """start_node(extra_yaml="", admin_token="admin-secret", providers=True) -> Node"""
    nodes = []

    def start(extra_yaml="", admin_token="admin-secret", providers=True, env=None):
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix="gatemesh-test-")
        yaml = f'node: {{name: test-node, listen: "127.0.0.1:{port}", data_dir: "{data_dir}", drain_timeout: 10s}}\n'
        if admin_token:
            yaml += f"admin: {{token: {admin_token}}}\n"
        if providers:
            yaml += mock_providers_yaml(mock.url)
        yaml += extra_yaml
        path = os.path.join(data_dir, "gatemesh.yaml")
        with open(path, "w") as f:
            f.write(yaml)
        proc = subprocess.Popen([BIN, "serve", "--config", path, "--log-level", "warning"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        node = Node(port, proc, data_dir, admin_token)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def node(start_node):
    return start_node()
