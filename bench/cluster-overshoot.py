#!/usr/bin/env python3
"""The cluster benchmark: how far round-robin load overshoots a budget, and how long a spend takes
to show on every node, for clusters of several sizes with several delays between nodes.

    python3 bench/cluster-overshoot.py [--nodes 3,5] [--delays 0,50,150] [--clients 32]
                                       [--budget 0.02] [--mock-latency-ms 50] [--probes 10]

For each size and delay it starts that many nodes on loopback (release build, fresh certificates,
the mock provider), with a TCP relay in front of every node's peer port that holds every byte for
the delay (`cluster/delay.py`: a one-way delay on every link between two nodes, in each direction;
used because this machine's kernel has no `sch_netem`). Then:

- convergence: one request on node (i mod N) at a time, with nothing else running; the time from
  its response to the moment every node's /api/budgets shows its spend (polled every 5 ms), over
  --probes requests;
- overshoot: --clients threads send requests round-robin over the nodes (each answered by the mock
  after --mock-latency-ms) against a budget of --budget dollars until each thread has been refused
  10 times in a row; then, after 3 s, the cluster-wide spent against the budget.

It prints one Markdown table row per combination. Not a test: the figures depend on the machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "cluster"))
from delay import Relays  # noqa: E402
from launch import Cluster, free_block  # noqa: E402

AUTH = {"authorization": "Bearer cluster-admin"}
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "one two three four"}]}


def spent(session, url, rule):
    rules = session.get(url + "/api/budgets", headers=AUTH, timeout=5).json()["rules"]
    scopes = next(r for r in rules if r["id"] == rule)["scopes"]
    return sum(int(s["spent"].replace(".", "")) for s in scopes)


def run(nodes, delay_ms, args, binary):
    base = free_block(3 * nodes + 1)
    http, peers, relays = base, base + nodes, base + 2 * nodes
    relay = Relays([(relays + i, peers + i) for i in range(nodes)], delay_ms).start()
    advertise = [f"127.0.0.1:{relays + i}" for i in range(nodes)]
    extra = f"""gateways:
  - id: default
    budgets:
      - {{id: probe, usd: 1000, window: {{calendar: day}}, scope: {{only: {{metadata.purpose: probe}}}}}}
      - {{id: load, usd: "{args.budget}", window: {{calendar: day}}, scope: {{only: {{metadata.purpose: load}}}}}}
"""
    c = Cluster(nodes=nodes, base_port=http, peer_base_port=peers, mock_port=base + 3 * nodes, binary=binary,
                run_dir=tempfile.mkdtemp(prefix="gatemesh-bench-"), extra_yaml=extra, seeds=advertise, advertise=advertise)
    try:
        c.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            sizes = [requests.get(c.node_url(i) + "/cluster/status", headers=AUTH, timeout=5).json()["cluster"]["size"]
                     for i in range(nodes)]
            if all(s == nodes for s in sizes):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the cluster did not form: sizes {sizes}")
        time.sleep(1)

        # Convergence: one spend at a time.
        sessions = [requests.Session() for _ in range(nodes)]
        probe = {"x-gatemesh-metadata": json.dumps({"purpose": "probe"})}
        times = []
        for k in range(args.probes):
            before = spent(sessions[0], c.node_url(0), "probe")
            r = requests.post(c.node_url(k % nodes) + "/openai/chat/completions", json=CHAT, headers=probe, timeout=10)
            assert r.status_code == 200, r.text
            answered = time.monotonic()
            seen = [None] * nodes

            def watch(i):
                while time.monotonic() - answered < 10:
                    if spent(sessions[i], c.node_url(i), "probe") > before:
                        seen[i] = time.monotonic() - answered
                        return
                    time.sleep(0.005)
            threads = [threading.Thread(target=watch, args=(i,)) for i in range(nodes)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if None in seen:
                raise RuntimeError(f"a spend did not reach every node within 10 s: {seen}")
            times.append(max(seen) * 1000)
            time.sleep(0.2)

        # Overshoot: round-robin load until every client is refused.
        load = {"x-gatemesh-metadata": json.dumps({"purpose": "load"}), "x-mock-latency-ms": str(args.mock_latency_ms)}
        admitted = [0] * args.clients
        started = time.monotonic()

        def client(j):
            s = requests.Session()
            refused_in_a_row, k = 0, j
            while refused_in_a_row < 10 and time.monotonic() - started < 120:
                r = s.post(c.node_url(k % nodes) + "/openai/chat/completions", json=CHAT, headers=load, timeout=30)
                k += 1
                if r.status_code == 200:
                    admitted[j] += 1
                    refused_in_a_row = 0
                elif r.status_code == 429:
                    refused_in_a_row += 1
                else:
                    raise RuntimeError(f"unexpected {r.status_code}: {r.text}")
        threads = [threading.Thread(target=client, args=(j,)) for j in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        time.sleep(3)
        totals = [spent(sessions[i], c.node_url(i), "load") for i in range(nodes)]
        budget_nanos = int(round(float(args.budget) * 1e9))
        total = max(totals)
        per_request = total / max(1, sum(admitted))
        return {
            "nodes": nodes, "delay": delay_ms, "median_ms": statistics.median(times), "max_ms": max(times),
            "admitted": sum(admitted), "rate": sum(admitted) / elapsed, "spent": total, "budget": budget_nanos,
            "overshoot_pct": (total - budget_nanos) * 100 / budget_nanos, "overshoot_requests": (total - budget_nanos) / per_request,
            "agree": len(set(totals)) == 1,
        }
    finally:
        c.stop()
        relay.stop()
        shutil.rmtree(c.run_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="3,5")
    parser.add_argument("--delays", default="0,50,150")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--budget", default="0.02")
    parser.add_argument("--mock-latency-ms", type=int, default=50)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--binary")
    args = parser.parse_args()
    binary = args.binary
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "gatemesh"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        binary = os.path.join(out.stdout.strip(), "gatemesh")
    print(f"| nodes | delay each way | spend on every node: median | max | admitted | admitted/s | spent | "
          f"budget | overshoot | in requests | nodes agree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in args.nodes.split(",")]:
        for d in [int(x) for x in args.delays.split(",")]:
            r = run(n, d, args, binary)
            print(f"| {n} | {d} ms | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms | {r['admitted']} | {r['rate']:.0f} | "
                  f"${r['spent'] / 1e9:.6f} | ${r['budget'] / 1e9:.6f} | {r['overshoot_pct']:+.2f} % | "
                  f"{r['overshoot_requests']:+.1f} | {'yes' if r['agree'] else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
