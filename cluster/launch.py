#!/usr/bin/env python3
"""Starts N GateMesh nodes and the mock provider as real processes on loopback.

    python3 cluster/launch.py --nodes 3            # nodes on 127.0.0.1:8701.., mock on 127.0.0.1:9999
    python3 cluster/launch.py --nodes 3 --base-port 9100 --mock-port 9200

Each node gets its own config and data directory under cluster/run/ (git-ignored), named
node-1..node-N, with every built-in provider pointed at the mock, a certificate from a fresh
cluster CA (`gatemesh certs init` / `issue`), a peer listener on 127.0.0.1:(peer base port + i)
and every node as a seed, so they form one cluster. Ctrl-C stops them all.

The `Cluster` class is importable, for benchmarks and tests that need several nodes (it can also
kill a node and start it again).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_binary():
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True)
    return os.path.join(out.stdout.strip(), "gatemesh")


def provider_overrides(mock_url, openai_key=None):
    key = f", api_key: {openai_key}" if openai_key else ""
    return "\n".join([
        "providers:",
        f'  openai: {{base_url: "{mock_url}/v1"{key}}}',
        f'  anthropic: {{base_url: "{mock_url}"}}',
        f'  google-ai-studio: {{base_url: "{mock_url}"}}',
        f'  mistral: {{base_url: "{mock_url}"}}',
        f'  groq: {{base_url: "{mock_url}/openai/v1"}}',
        f'  deepseek: {{base_url: "{mock_url}"}}',
        f'  xai: {{base_url: "{mock_url}/v1"}}',
        f'  openrouter: {{base_url: "{mock_url}/api/v1"}}',
        f'  perplexity-ai: {{base_url: "{mock_url}"}}',
        f'  custom-mock: {{base_url: "{mock_url}"}}',
    ]) + "\n"


def free_block(n):
    """The first of n consecutive free ports on 127.0.0.1 (for a cluster's HTTP and peer ports)."""
    import random
    import socket
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def wait_ready(url, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Cluster:
    """N nodes and one mock provider; use as a context manager or call start()/stop()."""

    def __init__(self, nodes=3, base_port=8701, mock_port=9999, binary=None, run_dir=None, admin_token="cluster-admin",
                 extra_yaml="", peer_base_port=None, mock=None, peer_hosts=None, seeds=None, prefix=None, advertise=None,
                 openai_key=None):
        """`peer_hosts` (one per node) puts node i's peer listener on peer_hosts[i]:peer_base_port
        (all on one port, for seeds given as one DNS name); `seeds` replaces the list of every
        node's address; `prefix` is a command the node runs under (for example to give it its
        own /etc/hosts); `advertise` (one per node) is the peer address node i tells the others
        (for example a relay in front of it)."""
        self.count = nodes
        self.base_port = base_port
        self.peer_base_port = peer_base_port or base_port + 1000
        self.external_mock = mock
        self.mock_port = mock_port
        self.binary = binary or default_binary()
        self.run_dir = run_dir or os.path.join(ROOT, "cluster", "run")
        self.admin_token = admin_token
        self.extra_yaml = extra_yaml
        self.openai_key = openai_key
        self.mock = None
        self.nodes = []
        self.peer_hosts = peer_hosts
        self.seeds = seeds
        self.prefix = prefix or []
        self.advertise = advertise

    @property
    def mock_url(self):
        return self.external_mock.url if self.external_mock else f"http://127.0.0.1:{self.mock_port}"

    def peer_address(self, i):
        if self.peer_hosts:
            return f"{self.peer_hosts[i]}:{self.peer_base_port}"
        return f"127.0.0.1:{self.peer_base_port + i}"

    def node_url(self, i):
        return f"http://127.0.0.1:{self.base_port + i}"

    def start(self):
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.makedirs(self.run_dir)
        if not self.external_mock:
            self.mock = subprocess.Popen([self.binary, "mock-provider", "--listen", f"127.0.0.1:{self.mock_port}"],
                                         stdout=subprocess.DEVNULL)
            wait_ready(self.mock_url + "/_mock/healthz", self.mock)
        certs = os.path.join(self.run_dir, "certs")
        subprocess.run([self.binary, "certs", "init", "--dir", certs], check=True, stdout=subprocess.DEVNULL)
        seeds = ", ".join(f'"{s}"' for s in (self.seeds or [self.peer_address(i) for i in range(self.count)]))
        for i in range(self.count):
            name = f"node-{i + 1}"
            subprocess.run([self.binary, "certs", "issue", name, "--host", "127.0.0.1", "--dir", certs], check=True,
                           stdout=subprocess.DEVNULL)
            directory = os.path.join(self.run_dir, name)
            os.makedirs(directory)
            with open(os.path.join(directory, "gatemesh.yaml"), "w") as f:
                f.write(f'node: {{name: {name}, region: region-{i % 3 + 1}, listen: "127.0.0.1:{self.base_port + i}", '
                        f'data_dir: "{directory}/data"}}\n')
                f.write(f"admin: {{token: {self.admin_token}}}\n")
                f.write(provider_overrides(self.mock_url, self.openai_key))
                f.write(f'cluster:\n  listen: "{self.peer_address(i)}"\n  seeds: [{seeds}]\n')
                if self.advertise:
                    f.write(f'  advertise: "{self.advertise[i]}"\n')
                f.write(f'  tls: {{ca: "{certs}/ca.pem", cert: "{certs}/{name}.pem", key: "{certs}/{name}.key"}}\n')
                f.write(self.extra_yaml)
            self.nodes.append(None)
            self.start_node(i)
        return self

    def start_node(self, i):
        """Starts (or starts again) node i, keeping its data directory."""
        directory = os.path.join(self.run_dir, f"node-{i + 1}")
        log = open(os.path.join(directory, "node.log"), "a")
        proc = subprocess.Popen(self.prefix + [self.binary, "serve", "--config", os.path.join(directory, "gatemesh.yaml")],
                                stdout=log, stderr=subprocess.STDOUT)
        self.nodes[i] = proc
        wait_ready(self.node_url(i) + "/healthz", proc)
        return proc

    def kill(self, i, sig=signal.SIGKILL):
        proc = self.nodes[i]
        if proc and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(15)

    def stop(self):
        procs = [p for p in self.nodes if p] + ([self.mock] if self.mock else [])
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_until_signalled(cluster, describe):
    """Starts `cluster`, prints `describe(cluster)`'s lines, waits for Ctrl-C or SIGTERM, stops it."""
    try:
        cluster.start()
    except Exception as e:
        cluster.stop()
        sys.exit(f"cluster failed to start: {e}")
    for line in describe(cluster):
        print(line)
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        cluster.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=8701)
    parser.add_argument("--mock-port", type=int, default=9999)
    parser.add_argument("--binary", help="the gatemesh binary (default: swift build --show-bin-path)")
    args = parser.parse_args()
    cluster = Cluster(args.nodes, args.base_port, args.mock_port, args.binary)
    run_until_signalled(cluster, lambda c: [f"mock provider: {c.mock_url}"]
                        + [f"node-{i + 1}: {c.node_url(i)}   (logs: cluster/run/node-{i + 1}/node.log)" for i in range(args.nodes)]
                        + [f"admin token: {c.admin_token}; Ctrl-C stops everything"])

if __name__ == "__main__":
    main()
