#!/usr/bin/env python3
"""Starts N GateMesh nodes in Linux network namespaces grouped into regions, with tc netem latency
(and optional loss) between regions, plus the mock provider in the root namespace. Needs root
(ip netns, tc). Latency and loss come from the kernel's sch_netem where it has it; where not, from
a delay relay (`delay.py`) in each node's namespace in front of its peer port (the node listens on
7946 and advertises the relay's 7947; the relay holds each byte for the region pair's one-way
delay, both ways, and with the loss chance a chunk a retransmission timeout more, which is what
loss does to a TCP stream). For tests, demonstrations and the cluster benchmark. `NetnsCluster.partition(a, b)` cuts the links between two groups of nodes
(blackhole routes) while clients in the root namespace still reach all of them; `heal()` undoes it.

    sudo python3 cluster/netns.py --nodes 5 --regions 3 --latency 30,80,150 --loss 0
        # node i is in region i % regions; one-way latency between regions r<s is the list's
        # entries in order (r0-r1, r0-r2, r1-r2 for 3 regions); within a region: none.

Each node gets 10.77.0.(i+1) in its own namespace gm-n(i+1), linked to a bridge gmbr0
(10.77.0.254) in the root namespace, where the mock provider listens. Ctrl-C removes everything.
The `NetnsCluster` class is importable (tests/integration/test_cluster.py uses it).
"""
import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from launch import default_binary, provider_overrides, run_until_signalled, wait_ready  # noqa: E402

BRIDGE = "gmbr0"
HOST_IP = "10.77.0.254"
# Debian's faketime package (apt-get install faketime): steps a process's wall clock at run time.
FAKETIME_LIB = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1") if os.path.exists(p)), None)


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


DELAY_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delay.py")


def netem_available():
    """Whether the kernel has sch_netem: a netem qdisc added in a scratch namespace."""
    sh("ip", "netns", "add", "gm-probe", check=False)
    try:
        return sh("ip", "netns", "exec", "gm-probe", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                  check=False).returncode == 0
    finally:
        sh("ip", "netns", "del", "gm-probe", check=False)


class NetnsCluster:
    def __init__(self, nodes=3, regions=3, latency_ms=(30, 80, 150), loss_pct=0.0, binary=None, extra_yaml="",
                 admin_token="cluster-admin", openai_key=None):
        self.count = nodes
        self.regions = regions
        pairs = list(itertools.combinations(range(regions), 2))
        if len(latency_ms) == 1:
            latency_ms = list(latency_ms) * len(pairs)
        if len(latency_ms) != len(pairs):
            raise ValueError(f"{regions} regions need {len(pairs)} latencies (one per pair), got {len(latency_ms)}")
        self.latency = {p: ms for p, ms in zip(pairs, latency_ms)}
        self.loss = loss_pct
        self.binary = binary or default_binary()
        self.extra_yaml = extra_yaml
        self.admin_token = admin_token
        self.openai_key = openai_key
        self.run_dir = tempfile.mkdtemp(prefix="gatemesh-netns-")
        self.clock_dir = None
        self.procs = []
        self.mock = None
        self.relays = []
        # Relays instead of netem: decided at start, when there is latency or loss to add.
        self.relayed = False

    def ip(self, i):
        return f"10.77.0.{i + 1}"

    def node_url(self, i):
        return f"http://{self.ip(i)}:8787"

    def region(self, i):
        return i % self.regions

    def one_way(self, a, b):
        ra, rb = sorted((self.region(a), self.region(b)))
        return 0 if ra == rb else self.latency[(ra, rb)]

    def peer_port(self, i):
        """The peer port the others dial: the relay's when the links are relayed."""
        return 7947 if self.relayed else 7946

    def start(self):
        self.cleanup()
        shaped = self.loss or any(self.one_way(a, b) for a in range(self.count) for b in range(self.count))
        self.relayed = bool(shaped) and not netem_available()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i in range(self.count):
            ns, veth = f"gm-n{i + 1}", f"gmv{i + 1}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", BRIDGE)
            sh("ip", "link", "set", veth, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if self.relayed:
                self.relay(i)
            else:
                self.shape(i)
        self.mock = subprocess.Popen([self.binary, "mock-provider", "--listen", f"{HOST_IP}:9999"], stdout=subprocess.DEVNULL)
        wait_ready(f"http://{HOST_IP}:9999/_mock/healthz", self.mock)
        certs = os.path.join(self.run_dir, "certs")
        sh(self.binary, "certs", "init", "--dir", certs)
        seeds = ", ".join(f'"{self.ip(i)}:{self.peer_port(i)}"' for i in range(self.count))
        for i in range(self.count):
            name = f"node-{i + 1}"
            sh(self.binary, "certs", "issue", name, "--host", self.ip(i), "--dir", certs)
            d = os.path.join(self.run_dir, name)
            os.makedirs(d)
            with open(os.path.join(d, "gatemesh.yaml"), "w") as f:
                f.write(f'node: {{name: {name}, region: region-{self.region(i) + 1}, listen: "{self.ip(i)}:8787", data_dir: "{d}/data"}}\n')
                f.write(f"admin: {{token: {self.admin_token}}}\n")
                f.write(provider_overrides(f"http://{HOST_IP}:9999", self.openai_key))
                f.write(f'cluster:\n  listen: "{self.ip(i)}:7946"\n  advertise: "{self.ip(i)}:{self.peer_port(i)}"\n  seeds: [{seeds}]\n'
                        f'  tls: {{ca: "{certs}/ca.pem", cert: "{certs}/{name}.pem", key: "{certs}/{name}.key"}}\n')
                f.write(self.extra_yaml)
            self.procs.append(self.spawn(i))
        for i in range(self.count):
            wait_ready(self.node_url(i) + "/healthz", self.procs[i])
        return self

    def spawn(self, i):
        """Starts node i's process in its namespace (its log is appended to). With `clock_dir`
        set and libfaketime installed, its wall clock (not its monotonic one) follows the offset
        in `clock_dir/node-{i+1}` ("+0" at first; write "+5" to step it 5 s ahead)."""
        name = f"node-{i + 1}"
        d = os.path.join(self.run_dir, name)
        env = dict(os.environ)
        if self.clock_dir and FAKETIME_LIB:
            offset = os.path.join(self.clock_dir, name)
            if not os.path.exists(offset):
                with open(offset, "w") as f:
                    f.write("+0\n")
            env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=offset, FAKETIME_NO_CACHE="1", DONT_FAKE_MONOTONIC="1")
        log = open(os.path.join(d, "node.log"), "a")
        return subprocess.Popen(["ip", "netns", "exec", f"gm-n{i + 1}", self.binary, "serve", "--config",
                                 os.path.join(d, "gatemesh.yaml")], stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self, i, sig=signal.SIGKILL):
        self.procs[i].send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[i].wait(30)

    def restart(self, i):
        """Starts a node that was stopped or killed again, with its data directory."""
        if self.procs[i].poll() is None:
            self.kill(i)
        self.procs[i] = self.spawn(i)
        wait_ready(self.node_url(i) + "/healthz", self.procs[i])

    def cut(self, group_a, group_b, one_way=False):
        """Cuts the links from group_a to group_b (and back, unless `one_way`): what a sends to b
        is dropped, with one_way b still reaches a."""
        for a in group_a:
            for b in group_b:
                sh("ip", "-n", f"gm-n{a + 1}", "route", "replace", "blackhole", f"{self.ip(b)}/32")
                if not one_way:
                    sh("ip", "-n", f"gm-n{b + 1}", "route", "replace", "blackhole", f"{self.ip(a)}/32")

    def step_clock(self, i, seconds):
        """Steps node i's wall clock by `seconds` from its current offset (needs `clock_dir`)."""
        path = os.path.join(self.clock_dir, f"node-{i + 1}")
        with open(path) as f:
            current = float(f.read().strip() or 0)
        with open(path, "w") as f:
            f.write(f"{current + seconds:+g}\n")

    def shape(self, i):
        """Egress delay from node i toward each other node's region (and loss, if any)."""
        ns = f"gm-n{i + 1}"
        delays = sorted({self.one_way(i, j) for j in range(self.count) if j != i} | {0})
        if not any(self.one_way(i, j) for j in range(self.count) if j != i) and not self.loss:
            return
        sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1")
        for k, ms in enumerate(delays):
            cls = f"1:{k + 1}"
            sh("ip", "netns", "exec", ns, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", cls, "htb", "rate", "10gbit")
            netem = ["delay", f"{ms}ms"] if ms else []
            if self.loss:
                netem += ["loss", f"{self.loss}%"]
            if netem:
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "parent", cls, "netem", *netem)
            for j in range(self.count):
                if j != i and self.one_way(i, j) == ms:
                    sh("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip",
                       "prio", "1", "u32", "match", "ip", "dst", f"{self.ip(j)}/32", "flowid", cls)

    def relay(self, i):
        """Starts the delay relay in node i's namespace: 7947 to its peer port 7946, each
        connection held for the one-way delay of its source's region pair, with the loss."""
        by_source = ",".join(f"{self.ip(j)}={self.one_way(i, j)}" for j in range(self.count) if j != i)
        log = open(os.path.join(self.run_dir, f"relay-{i + 1}.log"), "a")
        self.relays.append(subprocess.Popen(
            ["ip", "netns", "exec", f"gm-n{i + 1}", sys.executable, DELAY_PY, "--host", self.ip(i), "--delay-ms", "0",
             "--loss", str(self.loss / 100), "--seed", str(i + 1), "--by-source", by_source, "7947:7946"],
            stdout=log, stderr=subprocess.STDOUT))

    def partition(self, group_a, group_b):
        """Cuts every link between the two groups of nodes (blackhole routes in each namespace);
        clients in the root namespace still reach every node."""
        for a in group_a:
            for b in group_b:
                sh("ip", "-n", f"gm-n{a + 1}", "route", "add", "blackhole", f"{self.ip(b)}/32")
                sh("ip", "-n", f"gm-n{b + 1}", "route", "add", "blackhole", f"{self.ip(a)}/32")

    def heal(self):
        for i in range(self.count):
            for j in range(self.count):
                if i != j:
                    sh("ip", "-n", f"gm-n{i + 1}", "route", "del", "blackhole", f"{self.ip(j)}/32", check=False)

    def stop(self):
        for p in self.procs + self.relays + ([self.mock] if self.mock else []):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs + self.relays + ([self.mock] if self.mock else []):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.cleanup()

    def cleanup(self):
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith("gm-n"):
                sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
        # A veth whose namespace was deleted while a process still held it outlives the namespace.
        for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith("gmv"):
                sh("ip", "link", "del", name, check=False)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--latency", default="30,80,150", help="one-way ms per region pair, comma-separated")
    parser.add_argument("--loss", type=float, default=0.0, help="loss in percent on every link")
    parser.add_argument("--binary")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (ip netns, tc)")
    c = NetnsCluster(args.nodes, args.regions, [int(x) for x in args.latency.split(",")], args.loss, args.binary)
    run_until_signalled(c, lambda c: [f"node-{i + 1} (region-{c.region(i) + 1}): {c.node_url(i)}   logs: {c.run_dir}/node-{i + 1}/node.log"
                                      for i in range(args.nodes)]
                        + [f"mock provider: http://{HOST_IP}:9999; admin token: {c.admin_token}; Ctrl-C stops and removes everything"])

if __name__ == "__main__":
    main()
