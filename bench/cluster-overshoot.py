#!/usr/bin/env python3
"""The cluster benchmark: how far load overshoots a budget in each enforcement mode, how much of it
is used, and how long a spend takes to show on every node, for clusters of several sizes with
several delays between nodes.

    python3 bench/cluster-overshoot.py [--nodes 3,5] [--delays 0,50,150] [--clients 32]
                                       [--modes soft,bounded,strict] [--patterns round-robin,burst,streams]
                                       [--budget 0.02] [--mock-latency-ms 50] [--probes 10]
                                       [--partition]          # also the partition case (root)

For each size and delay it starts that many nodes on loopback (release build, fresh certificates,
the mock provider), with a TCP relay in front of every node's peer port that holds every byte for
the delay (`cluster/delay.py`: a one-way delay on every link between two nodes, in each direction;
used because this machine's kernel has no `sch_netem`). Then:

- convergence: one request on node (i mod N) at a time, with nothing else running; the time from
  its response to the moment every node's /api/budgets shows its spend (polled every 5 ms), over
  --probes requests;
- per mode (the budget's `enforcement`) and load pattern, against a fresh budget of --budget
  dollars (each request costs the same, its estimate exactly):
  - round-robin: --clients threads send requests round-robin over the nodes, each answered by the
    mock after --mock-latency-ms, until each thread has been refused 3 times in a row;
  - burst: the budget is first spent down to a tenth by one client, then every thread fires at
    once, each at one node, until refused 3 times in a row;
  - streams: as round-robin, with streamed answers of 16 tokens 50 ms apart (each request lasts
    about 0.8 s, so many are in flight when the limit comes);
  then, once every node agrees (or after 10 s), the cluster-wide spent against the budget:
  overshoot, utilisation (spent ÷ budget), admitted and refused requests.

With --partition (root, Linux network namespaces: `cluster/netns.py`), per mode: five nodes, some
spend on each, then a cut of 2 nodes against 3 (blackhole routes), --clients threads on each side
firing at once at their own side until refused 3 times in a row, then the link heals; it reports
what each side admitted, the overshoot and utilisation once healed, and how long after healing
every node agreed on the spend.

It prints Markdown tables. Not a test: the figures depend on the machine.
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
# Its estimate is exactly what the mock charges (15 characters / 4 = 4 words; max_tokens = the output).
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "abc abc abc abc"}]}
PER_REQUEST = 4 * 150 + 16 * 600  # gpt-4o-mini: $0.15 and $0.60 per million tokens, in nano-dollars


def spent(session, url, rule):
    rules = session.get(url + "/api/budgets", headers=AUTH, timeout=5).json()["rules"]
    scopes = next(r for r in rules if r["id"] == rule)["scopes"]
    return sum(int(s["spent"].replace(".", "")) for s in scopes)


def run(nodes, delay_ms, args, binary):
    base = free_block(3 * nodes + 1)
    http, peers, relays = base, base + nodes, base + 2 * nodes
    relay = Relays([(relays + i, peers + i) for i in range(nodes)], delay_ms).start()
    advertise = [f"127.0.0.1:{relays + i}" for i in range(nodes)]
    modes = args.modes.split(",")
    patterns = args.patterns.split(",")
    budgets = "\n".join(
        f'      - {{id: load-{m}-{p}, usd: "{args.budget}", window: {{calendar: day}}, enforcement: {m}, '
        f'scope: {{only: {{metadata.purpose: load-{m}-{p}}}}}}}' for m in modes for p in patterns)
    extra = f"""gateways:
  - id: default
    budgets:
      - {{id: probe, usd: 1000, window: {{calendar: day}}, enforcement: soft, scope: {{only: {{metadata.purpose: probe}}}}}}
{budgets}
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
        time.sleep(2.5)  # past the 2 s in which a new node hands out no rights

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
        rows = [load(c, nodes, m, p, args, sessions) for m in modes for p in patterns]
        return {"nodes": nodes, "delay": delay_ms, "median_ms": statistics.median(times), "max_ms": max(times), "rows": rows}
    finally:
        c.stop()
        relay.stop()
        shutil.rmtree(c.run_dir, ignore_errors=True)


def load(c, nodes, mode, pattern, args, sessions):
    rule = f"load-{mode}-{pattern}"
    headers = {"x-gatemesh-metadata": json.dumps({"purpose": rule}), "x-mock-latency-ms": str(args.mock_latency_ms)}
    body = CHAT
    if pattern == "streams":
        body = {**CHAT, "stream": True}
        headers["x-mock-token-delay-ms"] = "50"
    budget_nanos = int(round(float(args.budget) * 1e9))
    prefill = 0
    if pattern == "burst":
        # One client spends the budget down to a tenth, then everyone fires at once.
        s = requests.Session()
        while (prefill + 1) * PER_REQUEST <= budget_nanos * 0.9:
            r = s.post(c.node_url(prefill % nodes) + "/openai/chat/completions", json=body, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            prefill += 1
    admitted = [0] * args.clients
    refused = [0] * args.clients
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.clients)
    started = time.monotonic()

    def client(j):
        s = requests.Session()
        barrier.wait()
        in_a_row, k = 0, j
        while in_a_row < 3 and time.monotonic() - started < 120:
            node = j % nodes if pattern == "burst" else k % nodes
            k += 1
            with s.post(c.node_url(node) + "/openai/chat/completions", json=body, headers=headers, timeout=60, stream=True) as r:
                answer = b"".join(r.iter_content(chunk_size=None))
            if r.status_code == 200:
                admitted[j] += 1
                in_a_row = 0
            elif r.status_code == 429:
                refused[j] += 1
                in_a_row += 1
            else:
                with lock:
                    errors.append(f"{r.status_code}: {answer[:300]!r}")
    threads = [threading.Thread(target=client, args=(j,)) for j in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while True:
        totals = [spent(sessions[i], c.node_url(i), rule) for i in range(nodes)]
        if len(set(totals)) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    total = max(totals)
    return {
        "mode": mode, "pattern": pattern, "admitted": prefill + sum(admitted), "refused": sum(refused),
        "rate": sum(admitted) / elapsed, "spent": total, "budget": budget_nanos,
        "overshoot_pct": (total - budget_nanos) * 100 / budget_nanos, "overshoot_requests": (total - budget_nanos) / PER_REQUEST,
        "utilisation_pct": total * 100 / budget_nanos, "agree": len(set(totals)) == 1, "errors": errors,
    }


def partition_case(mode, args, binary):
    """Five nodes in network namespaces, cut 2 against 3 while both sides burst (see the docstring)."""
    from netns import NetnsCluster
    budget_nanos = int(round(float(args.budget) * 1e9))
    rule = (f'gateways:\n  - id: default\n    budgets:\n      - {{id: cut, usd: "{budget_nanos / 1e9:.9f}", '
            f'window: {{calendar: day}}, enforcement: {mode}}}\n')
    c = NetnsCluster(5, 1, [0], binary=binary, extra_yaml=rule)
    c.start()
    try:
        sessions = [requests.Session() for _ in range(5)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if all(sessions[i].get(c.node_url(i) + "/cluster/status", headers=AUTH, timeout=2).json()["cluster"]["size"] == 5
                       for i in range(5)):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        headers = {"x-mock-latency-ms": str(args.mock_latency_ms)}
        before = 0
        for i in range(5):
            for _ in range(4):
                r = sessions[i].post(c.node_url(i) + "/openai/chat/completions", json=CHAT, headers=headers, timeout=30)
                assert r.status_code == 200, r.text
                before += 1
        c.partition([0, 1], [2, 3, 4])
        sides = {"2 nodes": [0, 1], "3 nodes": [2, 3, 4]}
        admitted = {k: 0 for k in sides}
        lock = threading.Lock()
        barrier = threading.Barrier(2 * args.clients)

        def client(side, j):
            s = requests.Session()
            nodes = sides[side]
            barrier.wait()
            in_a_row = 0
            while in_a_row < 3:
                r = s.post(c.node_url(nodes[j % len(nodes)]) + "/openai/chat/completions", json=CHAT, headers=headers, timeout=60)
                if r.status_code == 200:
                    with lock:
                        admitted[side] += 1
                    in_a_row = 0
                elif r.status_code == 429:
                    in_a_row += 1
                else:
                    raise RuntimeError(f"unexpected {r.status_code}: {r.text}")
        threads = [threading.Thread(target=client, args=(side, j)) for side in sides for j in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.heal()
        healed = time.monotonic()
        agreed = None
        while time.monotonic() - healed < 30:
            totals = [spent(sessions[i], c.node_url(i), "cut") for i in range(5)]
            if os.environ.get("BENCH_DEBUG"):
                print(f"  {time.monotonic() - healed:.2f} s {totals}", file=sys.stderr, flush=True)
            if len(set(totals)) == 1:
                agreed = time.monotonic() - healed
                break
            time.sleep(0.05)
        total = max(totals)
        return {"mode": mode, "before": before, "sides": admitted, "spent": total, "budget": budget_nanos,
                "overshoot_pct": (total - budget_nanos) * 100 / budget_nanos, "utilisation_pct": total * 100 / budget_nanos,
                "agreed_s": agreed}
    finally:
        c.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="3,5")
    parser.add_argument("--delays", default="0,50,150")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--modes", default="soft,bounded,strict")
    parser.add_argument("--patterns", default="round-robin,burst,streams")
    parser.add_argument("--budget", default="0.02")
    parser.add_argument("--mock-latency-ms", type=int, default=50)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--binary")
    parser.add_argument("--partition", action="store_true", help="also run the partition case (root, network namespaces)")
    parser.add_argument("--skip-delays", action="store_true", help="only the partition case")
    args = parser.parse_args()
    binary = args.binary
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "gatemesh"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        binary = os.path.join(out.stdout.strip(), "gatemesh")
    if args.partition:
        print("| mode | before the cut | admitted by 2 nodes | by 3 nodes | spent | budget | overshoot | utilisation | agreed after healing |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode in args.modes.split(","):
            r = partition_case(mode, args, binary)
            agreed = f"{r['agreed_s']:.2f} s" if r["agreed_s"] is not None else "no (30 s)"
            print(f"| {mode} | {r['before']} | {r['sides']['2 nodes']} | {r['sides']['3 nodes']} | ${r['spent'] / 1e9:.6f} | "
                  f"${r['budget'] / 1e9:.6f} | {r['overshoot_pct']:+.2f} % | {r['utilisation_pct']:.1f} % | {agreed} |", flush=True)
        print()
        if args.skip_delays:
            return
    print(f"| nodes | delay each way | mode | load | admitted | refused | admitted/s | spent | budget | overshoot | "
          f"in requests | utilisation | nodes agree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    convergence = []
    for n in [int(x) for x in args.nodes.split(",")]:
        for d in [int(x) for x in args.delays.split(",")]:
            r = run(n, d, args, binary)
            convergence.append(r)
            for row in r["rows"]:
                print(f"| {n} | {d} ms | {row['mode']} | {row['pattern']} | {row['admitted']} | {row['refused']} | {row['rate']:.0f} | "
                      f"${row['spent'] / 1e9:.6f} | ${row['budget'] / 1e9:.6f} | {row['overshoot_pct']:+.2f} % | "
                      f"{row['overshoot_requests']:+.1f} | {row['utilisation_pct']:.1f} % | {'yes' if row['agree'] else 'no'} |", flush=True)
                if row["errors"]:
                    print(f"  {len(row['errors'])} other answers, the first: {row['errors'][0]}", file=sys.stderr, flush=True)
    print()
    print("| nodes | delay each way | spend on every node: median | max |")
    print("|---|---|---|---|")
    for r in convergence:
        print(f"| {r['nodes']} | {r['delay']} ms | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
