#!/usr/bin/env python3
"""A fault suite on real processes: a GateMesh cluster in network namespaces (`netns.py`), clients
sending traffic through every node against one budget, and a nemesis that injects faults while
they do; then a checker compares what the cluster counted with what the mock provider served.

    sudo python3 cluster/nemesis.py --nodes 5 --mode strict --faults kill,stop,halves,isolate,oneway,bridge,clock
    sudo python3 cluster/nemesis.py --matrix            # every mode against every fault: the table in docs/benchmarks.md

Faults (each in its own window of the run, healed before the next):
  kill     SIGKILL a node, start it again 5 s later from its data directory
  stop     SIGSTOP a node for 8 s (longer than a suspicion), then SIGCONT
  halves   partition the nodes into two halves for 10 s
  isolate  cut one node off from all the others for 10 s
  oneway   one node's packets to the others are dropped, theirs to it arrive, for 10 s
  bridge   two groups cut apart except through one node that reaches both, for 10 s
  clock    step one node's wall clock 5 s ahead (libfaketime; its monotonic clock runs on), then back
Delay and loss (`--latency`, `--loss`) come from tc netem where the kernel has it, and from a delay
relay in each node's namespace in front of its peer port where not (`netns.py`, `delay.py`: a
lost packet there is a chunk held a retransmission timeout, as TCP makes it).

The checker, once every fault is healed, every node is up and traffic has stopped:
  - no admitted spend lost: every node's spent ≥ what the mock served (each request's estimate is
    exactly its cost, so the two are equal unless a killed node's journal charged what it had in
    flight, which the mock may not have served);
  - overshoot within the mode: strict never over the limit; bounded and soft within the room a
    partition leaves to its other side (the limit: one extra side), the loose bound of
    docs/budgets.md;
  - agreement: every node holds the same spend, and every node sees every other alive, within 15 s;
  - no 5xx answer except those docs/http-api.md lists for a provider that cannot be reached.
Exits 1 when a check fails; prints one line per run (`--json` for machines).
"""
import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from decimal import Decimal

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import FAKETIME_LIB, HOST_IP, NetnsCluster  # noqa: E402

AUTH = {"authorization": "Bearer cluster-admin"}
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "abc abc abc abc"}]}
FAULTS = ["kill", "stop", "halves", "isolate", "oneway", "bridge", "clock"]
# Documented 5xx (docs/http-api.md): the provider could not be reached or answered in time.
DOCUMENTED_5XX = {502, 503, 504}


def per_request_nanos():
    """What one CHAT costs: 4 input and 16 output tokens at gpt-4o-mini's price (the price table's
    figures, rounded half-up once, as the gateway does)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "GateMeshAccounting", "Pricing", "prices.json")
    with open(path) as f:
        prices = json.load(f)
    p = next(m for m in prices["models"] if m["provider"] == "openai" and (m["model"] == "gpt-4o-mini" or "gpt-4o-mini" in m.get("aliases", [])))
    picos = Decimal(p["input"]) * 1_000_000 * 4 + Decimal(p["output"]) * 1_000_000 * 16
    return int((picos + 500) // 1000)


def status(c, i, timeout=3):
    return requests.get(c.node_url(i) + "/cluster/status", headers=AUTH, timeout=timeout).json()


def spent(c, i):
    rules = requests.get(c.node_url(i) + "/api/budgets", headers=AUTH, timeout=3).json()["rules"]
    scopes = next(r for r in rules if r["id"] == "nemesis")["scopes"]
    return sum(int(s["spent"].replace(".", "")) for s in scopes)


def eventually(fetch, ok, timeout):
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = fetch()
            if ok(last):
                return True, last
        except (requests.RequestException, ValueError, KeyError, StopIteration):
            pass
        time.sleep(0.2)
    return False, last


class Traffic:
    """Clients sending CHAT through every node at about `rate` requests a second in all."""

    def __init__(self, c, rate, clients=8):
        self.c, self.rate, self.clients = c, rate, clients
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.codes = {}
        self.bad = []
        self.errors = 0
        self.threads = [threading.Thread(target=self.run, args=(j,), daemon=True) for j in range(clients)]

    def run(self, j):
        s = requests.Session()
        k = j
        while not self.stop.is_set():
            k += 1
            node = k % self.c.count
            try:
                r = s.post(self.c.node_url(node) + "/openai/chat/completions", json=CHAT, timeout=10)
                with self.lock:
                    self.codes[r.status_code] = self.codes.get(r.status_code, 0) + 1
                    if r.status_code >= 500:
                        self.bad.append((node, r.status_code, r.text[:300]))
            except requests.RequestException:
                with self.lock:
                    self.errors += 1  # a stopped or killed node: the client sees no answer
            self.stop.wait(self.clients / self.rate)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def inject(c, fault, rng):
    """Runs one fault to its end (healed); returns what it did."""
    n = c.count
    victim = rng.randrange(n)
    others = [i for i in range(n) if i != victim]
    if fault == "kill":
        c.kill(victim)
        time.sleep(5)
        c.restart(victim)
        return f"killed node-{victim + 1}, restarted after 5 s"
    if fault == "stop":
        c.kill(victim, signal.SIGSTOP)
        time.sleep(8)
        c.kill(victim, signal.SIGCONT)
        return f"stopped node-{victim + 1} for 8 s"
    if fault == "clock":
        if not (c.clock_dir and FAKETIME_LIB):
            return "clock: skipped (libfaketime not installed)"
        c.step_clock(victim, 5)
        time.sleep(8)
        c.step_clock(victim, -5)
        return f"stepped node-{victim + 1}'s wall clock 5 s ahead for 8 s"
    if fault == "halves":
        order = list(range(n))
        rng.shuffle(order)
        a, b = order[: n // 2], order[n // 2:]
        c.cut(a, b)
        what = f"cut {sorted(x + 1 for x in a)} from {sorted(x + 1 for x in b)}"
    elif fault == "isolate":
        c.cut([victim], others)
        what = f"isolated node-{victim + 1}"
    elif fault == "oneway":
        c.cut([victim], others, one_way=True)
        what = f"node-{victim + 1}'s packets to the others dropped (theirs arrive)"
    elif fault == "bridge":
        rest = others[:]
        rng.shuffle(rest)
        a, b = rest[: len(rest) // 2], rest[len(rest) // 2:]
        c.cut(a, b)
        what = f"{sorted(x + 1 for x in a)} and {sorted(x + 1 for x in b)} cut apart, node-{victim + 1} reaching both"
    else:
        raise ValueError(f"unknown fault {fault}")
    time.sleep(10)
    c.heal()
    return what + " for 10 s"


def run(args, mode, faults, binary=None):
    per = per_request_nanos()
    limit = per * args.budget_requests
    extra = f"""gateways:
  - id: default
    budgets:
      - {{id: nemesis, usd: "{limit / 1e9:.9f}", window: {{calendar: day}}, enforcement: {mode}}}
"""
    if args.latency or args.loss:
        latency = [int(x) for x in (args.latency or "0").split(",")]
        c = NetnsCluster(args.nodes, min(3, args.nodes), latency, args.loss, binary, extra_yaml=extra)
    else:
        c = NetnsCluster(args.nodes, 1, [], 0, binary, extra_yaml=extra)
    c.clock_dir = tempfile.mkdtemp(prefix="gatemesh-clock-")
    rng = random.Random(args.seed)
    done = []
    started = time.time()
    c.start()
    try:
        ok, _ = eventually(lambda: [status(c, i)["cluster"]["size"] for i in range(c.count)], lambda s: s == [c.count] * c.count, 30)
        if not ok:
            raise RuntimeError("the cluster did not form")
        requests.post(f"http://{HOST_IP}:9999/_mock/reset", timeout=5)
        with Traffic(c, args.rate) as traffic:
            time.sleep(2)
            for fault in faults:
                done.append(inject(c, fault, rng))
                time.sleep(2)
        # Everything healed, every node up; traffic stopped. Now the checks.
        for i in range(c.count):
            if c.procs[i].poll() is not None:
                c.restart(i)
        healed = time.time()
        agreed, totals = eventually(lambda: [spent(c, i) for i in range(c.count)], lambda t: len(set(t)) == 1, 15)
        members, _ = eventually(lambda: [sum(m["status"] == "alive" for m in status(c, i)["members"]) for i in range(c.count)],
                                lambda s: s == [c.count] * c.count, 15)
        agreed_after = time.time() - healed
        served = requests.get(f"http://{HOST_IP}:9999/_mock/stats", timeout=5).json()["requests"] * per
        counted = min(totals) if totals else 0
        over = served - limit
        bound = 0 if mode == "strict" else limit
        undocumented = [b for b in traffic.bad if b[1] not in DOCUMENTED_5XX]
        failures = []
        if counted < served:
            failures.append(f"spend lost: the nodes count {counted}, the provider served {served}")
        if over > bound:
            failures.append(f"overshoot {over} past the {mode} bound {bound}")
        if not agreed:
            failures.append(f"the nodes' spend did not agree within 15 s: {totals}")
        if not members:
            failures.append("the members did not all see each other alive within 15 s")
        if undocumented:
            failures.append(f"{len(undocumented)} undocumented 5xx answers, e.g. {undocumented[0]}")
        return {
            "mode": mode, "nodes": c.count, "faults": done, "seconds": round(time.time() - started),
            "links": (f"{args.latency or 0} ms one way, {args.loss:g} % loss, " + ("delay relay" if c.relayed else "netem")
                      if args.latency or args.loss else "loopback bridge"),
            "answers": {str(k): v for k, v in sorted(traffic.codes.items())}, "no_answer": traffic.errors,
            "limit_requests": args.budget_requests, "served_requests": served // per, "counted_requests": counted / per,
            "overshoot_requests": max(0, over) / per, "agreed_after_s": round(agreed_after, 1) if agreed else None,
            "failures": failures,
        }
    finally:
        c.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--mode", default="strict", choices=["soft", "bounded", "strict"])
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--matrix", action="store_true", help="every mode against all the faults, one row each")
    parser.add_argument("--rate", type=float, default=20, help="requests a second over the cluster")
    parser.add_argument("--budget-requests", type=int, default=600, help="the budget, in requests' worth")
    parser.add_argument("--latency", default="", help="one-way ms between regions (netem, or the delay relay)")
    parser.add_argument("--loss", type=float, default=0.0, help="loss in percent on every link (netem, or the delay relay)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (ip netns)")
    faults = [f for f in args.faults.split(",") if f]
    for f in faults:
        if f not in FAULTS:
            sys.exit(f"unknown fault {f}: one of {', '.join(FAULTS)}")
    rows = [run(args, m, faults, args.binary) for m in (["soft", "bounded", "strict"] if args.matrix else [args.mode])]
    for r in rows:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['mode']:8} {r['nodes']} nodes, {r['links']}, {r['seconds']} s: served {r['served_requests']} of {r['limit_requests']}, "
                  f"counted {r['counted_requests']:.0f}, over {r['overshoot_requests']:.0f}, agreed after {r['agreed_after_s']} s, "
                  f"answers {r['answers']}, no answer {r['no_answer']}")
            for f in r["faults"]:
                print(f"         {f}")
            print("         checks: " + ("hold" if not r["failures"] else "FAILED: " + "; ".join(r["failures"])))
    sys.exit(1 if any(r["failures"] for r in rows) else 0)


if __name__ == "__main__":
    main()
