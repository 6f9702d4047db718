#!/usr/bin/env python3
"""The cost of cluster-wide reads: /api/analytics and /api/logs on a 3-node loopback cluster, this node
only (?node=) against the whole cluster. Usage: bench/cluster-reads.py [requests] (binary from
/tmp/gm-measure: copy a build there)."""
import os, sys, time, tempfile, statistics, threading, requests
sys.path.insert(0, "/work/main/cluster"); sys.path.insert(0, "/work/main/tests/integration")
os.environ["GATEMESH_BIN"] = "/tmp/gm-measure"
from launch import Cluster, free_block
import subprocess
from conftest import free_port, wait_http
port = free_port()
mock = subprocess.Popen(["/tmp/gm-measure", "mock-provider", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_http(f"http://127.0.0.1:{port}/_mock/healthz")
class M: pass
m = M(); m.port = port; m.url = f"http://127.0.0.1:{port}"; m.proc = mock
base = free_block(6)
c = Cluster(nodes=3, base_port=base, peer_base_port=base + 3, binary="/tmp/gm-measure", mock=m, run_dir=tempfile.mkdtemp())
c.start()
AUTH = {"authorization": "Bearer cluster-admin"}
def until(check, what, timeout=60):
    """Polls `check` every 50 ms until it holds (never a fixed wait for the cluster or the log)."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


try:
    until(lambda: requests.get(c.node_url(0) + "/cluster/status", headers=AUTH, timeout=5).json()["cluster"]["size"] == 3,
          "three live members")
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    def worker(k):
        s = requests.Session()
        for i in range(N // 6):
            s.post(c.node_url(k % 3) + "/openai/v1/chat/completions", headers={"authorization": "Bearer sk-test"},
                   json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": f"q {k} {i}"}]})
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    [t.start() for t in ts]; [t.join() for t in ts]
    sent = 6 * (N // 6)
    until(lambda: requests.get(c.node_url(0) + "/api/analytics", headers=AUTH, timeout=30).json()["totals"]["requests"] == sent,
          "every row written on every node")
    def timeit(path, **params):
        out = []
        for _ in range(20):
            t = time.perf_counter(); r = requests.get(c.node_url(0) + path, headers=AUTH, params=params, timeout=30); out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
        return statistics.median(out), r.json()
    for label, path, params in [("analytics, this node only", "/api/analytics", {"node": "node-1", "group_by": "model"}),
                                ("analytics, cluster", "/api/analytics", {"group_by": "model"}),
                                ("logs limit=100, this node only", "/api/logs", {"node": "node-1", "limit": 100}),
                                ("logs limit=100, cluster", "/api/logs", {"limit": 100}),
                                ("logs limit=1000, cluster", "/api/logs", {"limit": 1000})]:
        ms, body = timeit(path, **params)
        total = body.get("totals", {}).get("requests", len(body.get("data", [])))
        print(f"{label}: median {ms:.1f} ms over 20 reads ({total} rows counted or returned)")
finally:
    c.stop(); mock.terminate()
