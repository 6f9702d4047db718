#!/usr/bin/env python3
"""Membership across regions on real processes: N nodes on loopback whose every peer link goes
through a relay holding each byte for a one-way delay, and holding a chunk for a retransmission
timeout more with probability --loss (`cluster/delay.py`: what packet loss does to a TCP stream;
this machine's kernel has no netem), the `wan` profile, light traffic through every node. Every
second it reads each node's /cluster/status and counts, per observer, the peers it shows as
`suspect` or `dead` although every node is up: false suspicions and false deaths.

    python3 bench/wan-membership.py [--nodes 3] [--minutes 10] [--delay-ms 150] [--loss 0.05] [--binary PATH]

Prints one line a minute and a summary; exits 1 on a false death. Not a test: minutes long.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from delay import Relays  # noqa: E402
from launch import Cluster, free_block  # noqa: E402

AUTH = {"authorization": "Bearer cluster-admin"}
CHAT = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--delay-ms", type=float, default=150)
    p.add_argument("--loss", type=float, default=0.05)
    p.add_argument("--binary", default=os.path.join(HERE, "..", ".build-rel", "release", "gatemesh"))
    args = p.parse_args()
    n = args.nodes
    base = free_block(3 * n)
    http, peers, relays = base, base + n, base + 2 * n
    relay = Relays([(relays + i, peers + i) for i in range(n)], args.delay_ms, loss=args.loss).start()
    advertise = [f"127.0.0.1:{relays + i}" for i in range(n)]
    c = Cluster(nodes=n, base_port=http, peer_base_port=peers, binary=args.binary, seeds=advertise, advertise=advertise,
                run_dir=tempfile.mkdtemp(prefix="gatemesh-wan-"), extra_yaml="  profile: wan\n")
    c.start()
    stop = threading.Event()
    served = [0]

    def traffic():
        s = requests.Session()
        k = 0
        while not stop.is_set():
            k += 1
            try:
                if s.post(c.node_url(k % n) + "/openai/chat/completions", json=CHAT, timeout=10).status_code == 200:
                    served[0] += 1
            except requests.RequestException:
                pass
            stop.wait(0.2)
    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if all(sum(m["status"] == "alive" for m in requests.get(c.node_url(i) + "/cluster/status", headers=AUTH, timeout=3).json()["members"]) == n
                       for i in range(n)):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            sys.exit("the cluster did not form within 60 s")
        start = time.time()
        suspect_views, dead_views, samples, worst_health = 0, 0, 0, 0
        incarnations = {}
        next_line = start + 60
        while time.time() - start < args.minutes * 60:
            for i in range(n):
                try:
                    s = requests.get(c.node_url(i) + "/cluster/status", headers=AUTH, timeout=3).json()
                except requests.RequestException:
                    continue
                samples += 1
                for m in s["members"]:
                    if m["self"]:
                        worst_health = max(worst_health, m.get("health_score", 0))
                        continue
                    suspect_views += m["status"] == "suspect"
                    dead_views += m["status"] in ("dead", "left")
                    incarnations[m["name"]] = max(incarnations.get(m["name"], 0), m["incarnation"])
            if time.time() >= next_line:
                next_line += 60
                print(f"{(time.time() - start) / 60:4.1f} min: suspect views {suspect_views}, dead views {dead_views}, "
                      f"served {served[0]}", flush=True)
            time.sleep(1)
        print(f"{n} nodes, {args.delay_ms:.0f} ms one way, loss {args.loss:.0%} as retransmission delays, wan profile, "
              f"{args.minutes:g} min: {samples} status reads, members seen suspect {suspect_views} times, dead {dead_views} times, "
              f"highest health score {worst_health}, {served[0]} requests served")
        sys.exit(1 if dead_views else 0)
    finally:
        stop.set()
        c.stop()
        relay.stop()


if __name__ == "__main__":
    main()
