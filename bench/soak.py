#!/usr/bin/env python3
"""The soak (issue 22): a 3-node cluster under mixed traffic for a long time, and a check that
resident memory, open file descriptors, threads and the data directory's files stop growing once
it is warm.

    python3 bench/soak.py [--minutes 30] [--out /tmp/soak.csv] [--binary PATH] [--interval 10]
                          [--warmup-pct 20] [--warmup-minutes 2] [--scale 1] [--pause-ms 20] [--keep]

The binary is --binary, else $GATEMESH_BIN, else .build/release/gatemesh (build it with
`swift build -c release --product gatemesh`). Everything runs on loopback (`cluster/launch.py`:
fresh certificates, the mock provider, every built-in provider pointed at it); the run directory
(configs, data directories, node logs) is a fresh directory under $TMPDIR, removed after a passing
run unless --keep.

The configuration (CONFIG below): request log on with a small row cap (`logging.max_rows: 5000`,
payloads stored on the default gateway), so the log table must stop growing; a cached gateway
(`ttl: 60`, a small memory and disk bound, purged every 10 s); budgets and rate limits far from
their limits, split by team and user, and two near theirs, so that 429s come all the time: a
`bounded` dollar budget over a one-minute fixed window that the load spends in the first part of
every minute, and a `soft` rate limit over a sliding 10 s window. `reservations.timeout` is 3m
(`upstream.total_timeout` 2m, below it): the rows of `limit_spend` are kept for their rule's
window plus that timeout, so with the default hour a rate limit's per-second rows would still be
piling up at the end of a 30-minute run (bounded, but only after an hour).

Traffic, from client threads (x --scale), each request to the next node round-robin:
- chat: non-streamed requests (OpenAI passthrough, Anthropic passthrough, the unified API) on
  keep-alive connections (http.client), one in eight on a fresh connection; spread over 8 teams
  and 40 users;
- stream: streamed answers (OpenAI and Anthropic SSE, 16 tokens a few ms apart), read to the end
  (the node closes the connection after an event stream, so each is a fresh connection);
- cache: 16 fixed bodies (some streamed) on the cached gateway, so nearly all are hits, and one
  in ten a new body (a miss that is stored);
- budget: requests under the near-limit budget and the near-limit rate limit (200 or 429);
- abandon: clients that leave: after the first event of a stream (a plain close or a reset),
  half-way through a Content-Length upload, half-way through a chunked upload, and while waiting
  for a slow answer's head;
- bad: requests that get a 4xx (bad metadata, unknown provider or gateway, a custom cost the
  gateway refuses, an oversized body, an oversized header, a wrong admin token, a wrong method, a
  body the provider refuses, an invalid unified-API model), a provider's own 503 passed through,
  and the operator endpoints (/api/logs, /api/budgets, /api/analytics, /metrics, /cluster/status).

Every --interval seconds it samples each node (and the mock): VmRSS, VmHWM and Threads from
/proc/PID/status, open descriptors (/proc/PID/fd), CPU seconds (/proc/PID/stat), the sizes of
gatemesh.sqlite, -wal, -shm and the reservation journal, the node's stderr log, the rows in
request_log, response_cache and limit_spend (a read-only connection), and from /metrics the log
queue, dropped rows, requests in flight, upstream connections opened and finished requests by
status; plus the clients' answers by status. One CSV row per process and sample goes to --out,
and the whole series and the summary to the same path with `.json`.

The check, after the run: the first max(--warmup-pct of the run, min(--warmup-minutes, 40 % of
the run)) is warm-up. For each node the maximum of the last third of the run must not exceed the
maximum of the middle third (from the end of warm-up if that is later) by more than: RSS
max(10 %, 20 MB); descriptors 16; threads 8; gatemesh.sqlite max(10 %, 2 MiB); the WAL
max(10 %, 4 MiB); the journal max(10 %, 1 MiB) unless it stays under 17 MiB (a segment is
rewritten once it passes 16 MiB: it grows to that and drops); and the request log must hold no more than
max_rows plus what a minute of load adds before the next trim. The data files are judged only on
runs of 10 minutes or more (the request log is trimmed once a minute, and the counters' rows are
deleted 3 minutes after their window, so a shorter run's last third still holds their first
rounds); a shorter run reports them as not judged. It also fails if a node died, if
any answer was not one the request's kind allows (each kind has its own set: 200, 429 near the
limits, the expected 4xx, the provider's 503), if a connection failed other than by our own
leaving, or if any request is still in flight 15 s after the load stops. It prints a summary
table and exits 1 on a failure (the messages say which), 2 if the cluster could not start.

Not a test: the figures depend on the machine. A 30-minute run is the documented one
(docs/benchmarks.md#soak); `--minutes 2` is a smoke run.
"""
import argparse
import collections
import csv
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "cluster"))
from launch import Cluster, free_block  # noqa: E402

ADMIN = "cluster-admin"
MAX_ROWS = 5000
NEAR_BUDGET_REQUESTS = 60  # per minute, cluster-wide
PER_REQUEST_NANOS = 4 * 150 + 16 * 600  # gpt-4o-mini, 4 input words, 16 output tokens

CONFIG = f"""limits:
  max_body_bytes: 256KiB
logging:
  max_rows: {MAX_ROWS}
  retention: 1h
  max_payload_bytes: 4KiB
cache:
  memory: 16MiB
  disk: 8MiB
  purge_interval: 10s
upstream:
  total_timeout: 2m
reservations:
  rights_wait: 250ms
  timeout: 3m
gateways:
  - id: default
    collect_log_payload: true
    budgets:
      - {{id: team-day, usd: 1000, scope: {{split_by: metadata.team}}, window: {{calendar: day}}}}
      - {{id: tokens-hour, tokens: 1_000_000_000, window: {{fixed: 1h}}}}
      - {{id: near-limit, usd: "{NEAR_BUDGET_REQUESTS * PER_REQUEST_NANOS / 1e9:.9f}", window: {{fixed: 1m}}, scope: {{only: {{metadata.purpose: near-budget}}}}}}
    rate_limits:
      - {{id: user-rpm, requests: 100_000, scope: {{split_by: metadata.user}}, window: {{sliding: 1m}}}}
      - {{id: near-rate, requests: 20, window: {{sliding: 10s}}, scope: {{only: {{metadata.purpose: near-rate}}}}}}
  - id: cached
    cache: {{ttl: 60}}
    rate_limits:
      - {{id: cached-user-rpm, requests: 100_000, scope: {{split_by: metadata.user}}, window: {{sliding: 1m}}}}
"""

FILES = ["gatemesh.sqlite", "gatemesh.sqlite-wal", "gatemesh.sqlite-shm"]
TEAMS = [f"team-{i}" for i in range(8)]
USERS = [f"user-{i}" for i in range(40)]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


class Stats:
    """What the clients saw: answers by kind and status, and everything unexpected."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_kind = collections.Counter()     # (kind, status) -> n
        self.by_status = collections.Counter()   # status -> n
        self.unexpected = []
        self.unexpected_count = 0
        self.abandoned = collections.Counter()   # how -> n
        self.cache = collections.Counter()       # HIT / MISS / ...

    def answer(self, kind, status, allowed, detail=""):
        with self.lock:
            self.by_kind[(kind, status)] += 1
            self.by_status[status] += 1
            if status not in allowed:
                self.unexpected_count += 1
                if len(self.unexpected) < 50:
                    self.unexpected.append(f"{time.strftime('%H:%M:%S')} {kind}: status {status} (allowed {sorted(allowed)}): {detail[:300]}")

    def failure(self, kind, error):
        with self.lock:
            self.by_kind[(kind, "error")] += 1
            self.by_status["error"] += 1
            self.unexpected_count += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(f"{time.strftime('%H:%M:%S')} {kind}: {type(error).__name__}: {error}")

    def left(self, how):
        with self.lock:
            self.abandoned[how] += 1

    def total(self):
        with self.lock:
            return sum(self.by_status.values()), dict(self.by_status)


class Traffic:
    def __init__(self, cluster, stats, deadline, pause, rng_seed):
        self.c = cluster
        self.stats = stats
        self.deadline = deadline
        self.pause = pause
        self.counter = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.seed = rng_seed

    def next_node(self):
        with self.lock:
            self.counter += 1
            return self.counter % self.c.count

    def port(self, i):
        return self.c.base_port + i

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def nap(self, rng, factor=1.0):
        if self.pause > 0:
            self.stop.wait(self.pause * factor * rng.uniform(0.5, 1.5))

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def meta(rng, **extra):
        m = {"team": rng.choice(TEAMS), "user": rng.choice(USERS)}
        m.update(extra)
        return json.dumps(m)

    @staticmethod
    def words(rng, n):
        return " ".join(rng.choice(WORDS) for _ in range(n))

    def exchange(self, conns, i, method, path, body=None, headers=None, fresh=False, timeout=30):
        """One request on node i: on conns[i] (kept alive) or on a fresh connection. Returns
        (status, headers, body). A kept-alive connection is dropped after an error or a close."""
        if fresh or conns is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port(i), timeout=timeout)
        else:
            conn = conns.get(i)
            if conn is None:
                conn = conns[i] = http.client.HTTPConnection("127.0.0.1", self.port(i), timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = {"content-type": "application/json"} if data is not None else {}
        h.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            payload = r.read()
            result = (r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
            if r.will_close and not fresh and conns is not None:
                conns.pop(i, None)
                conn.close()
            return result
        except BaseException:
            if not fresh and conns is not None:
                conns.pop(i, None)
            conn.close()
            raise
        finally:
            if fresh or conns is None:
                conn.close()

    def run_kind(self, kind, fn, index):
        rng = random.Random(f"{self.seed}-{kind}-{index}")
        conns = {}
        while self.running():
            try:
                fn(rng, conns)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                if not self.running():
                    break
                self.stats.failure(kind, e)
                for conn in conns.values():
                    conn.close()
                conns.clear()
            self.nap(rng)
        for conn in conns.values():
            conn.close()

    # --- kinds of traffic ------------------------------------------------------------------------

    def chat(self, rng, conns):
        i = self.next_node()
        fresh = rng.random() < 0.125
        h = {"x-gatemesh-metadata": self.meta(rng), "authorization": "Bearer sk-soak"}
        shape = rng.random()
        content = self.words(rng, rng.randint(3, 40))
        if shape < 0.6:
            path, body = "/openai/chat/completions", {"model": "gpt-4o-mini", "max_tokens": 16,
                                                      "messages": [{"role": "user", "content": content}]}
        elif shape < 0.8:
            path, body = "/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 16,
                                                    "messages": [{"role": "user", "content": content}]}
            h["x-api-key"] = "sk-ant-soak"
            h["anthropic-version"] = "2023-06-01"
        else:
            path, body = "/v1/chat/completions", {"model": "openai/gpt-4o-mini", "max_tokens": 16,
                                                  "messages": [{"role": "user", "content": content}]}
        status, _, payload = self.exchange(conns, i, "POST", path, body, h, fresh=fresh)
        self.stats.answer("chat", status, {200}, payload.decode(errors="replace"))

    def stream(self, rng, conns):
        i = self.next_node()
        h = {"x-gatemesh-metadata": self.meta(rng), "x-mock-token-delay-ms": str(rng.randint(1, 8)),
             "authorization": "Bearer sk-soak"}
        content = self.words(rng, rng.randint(3, 20))
        if rng.random() < 0.7:
            path, end = "/openai/chat/completions", b"data: [DONE]"
            body = {"model": "gpt-4o-mini", "max_tokens": 16, "stream": True,
                    "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": content}]}
        else:
            path, end = "/anthropic/v1/messages", b"message_stop"
            body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True,
                    "messages": [{"role": "user", "content": content}]}
            h.update({"x-api-key": "sk-ant-soak", "anthropic-version": "2023-06-01"})
        status, _, payload = self.exchange(None, i, "POST", path, body, h, fresh=True)
        if status == 200 and end not in payload:
            self.stats.answer("stream", "200-cut", {200}, payload[-300:].decode(errors="replace"))
        else:
            self.stats.answer("stream", status, {200}, payload.decode(errors="replace"))

    CACHED_BODIES = [f"cached question number {k} " + " ".join(WORDS[: 3 + k % 8]) for k in range(16)]

    def cache(self, rng, conns):
        i = self.next_node()
        k = rng.randrange(len(self.CACHED_BODIES))
        new = rng.random() < 0.1
        content = self.CACHED_BODIES[k] if not new else f"a new question {rng.getrandbits(64):x}"
        stream = k % 4 == 0 and not new
        body = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": content}]}
        if stream:
            body["stream"] = True
        h = {"x-gatemesh-metadata": self.meta(rng), "authorization": "Bearer sk-soak"}
        status, headers, payload = self.exchange(conns, i, "POST", "/cached/openai/chat/completions", body, h,
                                                 fresh=stream)
        self.stats.answer("cache", status, {200}, payload.decode(errors="replace"))
        with self.stats.lock:
            self.stats.cache[headers.get("x-gatemesh-cache-status", "none")] += 1

    def budget(self, rng, conns):
        i = self.next_node()
        purpose = "near-budget" if rng.random() < 0.6 else "near-rate"
        h = {"x-gatemesh-metadata": self.meta(rng, purpose=purpose), "authorization": "Bearer sk-soak"}
        body = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "abc abc abc abc"}]}
        if rng.random() < 0.2:
            body["stream"] = True
        status, _, payload = self.exchange(conns, i, "POST", "/openai/chat/completions", body, h,
                                           fresh=body.get("stream", False))
        self.stats.answer(purpose, status, {200, 429}, payload.decode(errors="replace"))

    def raw(self, i):
        s = socket.create_connection(("127.0.0.1", self.port(i)), timeout=10)
        return s

    @staticmethod
    def close(s, reset):
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def abandon(self, rng, conns):
        i = self.next_node()
        how = rng.choice(["mid-stream", "mid-stream-reset", "mid-upload", "mid-chunked-upload", "waiting-for-head"])
        meta = self.meta(rng)
        if how.startswith("mid-stream") or how == "waiting-for-head":
            stream = how != "waiting-for-head"
            body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 64, "stream": stream,
                               "messages": [{"role": "user", "content": self.words(rng, 8)}]}).encode()
            extra = (b"x-mock-token-delay-ms: 50\r\n" if stream else b"x-mock-latency-ms: 400\r\n")
            head = (b"POST /openai/chat/completions HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                    + f"x-gatemesh-metadata: {meta}\r\ncontent-length: {len(body)}\r\n".encode() + extra + b"\r\n")
            s = self.raw(i)
            try:
                s.sendall(head + body)
                if stream:
                    got = b""
                    while b"\r\n\r\n" not in got or b"data:" not in got.split(b"\r\n\r\n", 1)[1]:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else "none"
                    if status != "200" or b"data:" not in got:
                        self.stats.answer("abandon", f"{status}-before-first-event", {200}, got[:300].decode(errors="replace"))
                        return
                else:
                    time.sleep(0.05)
            finally:
                self.close(s, reset=how.endswith("reset") or rng.random() < 0.3)
            self.stats.left(how)
        else:
            s = self.raw(i)
            try:
                if how == "mid-upload":
                    s.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                              + f"x-gatemesh-metadata: {meta}\r\ncontent-length: 65536\r\n\r\n".encode()
                              + b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x " * 5000)
                else:
                    s.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n"
                              + f"x-gatemesh-metadata: {meta}\r\ntransfer-encoding: chunked\r\n\r\n".encode())
                    part = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"y " * 3000
                    s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                time.sleep(rng.uniform(0.01, 0.2))
            finally:
                self.close(s, reset=rng.random() < 0.3)
            self.stats.left(how)

    BAD = ["metadata", "provider", "gateway", "custom-cost", "too-large", "header-too-large", "admin-token",
           "method", "provider-400", "unified-model", "provider-503",
           "api-logs", "api-budgets", "api-analytics", "metrics", "cluster-status"]

    def bad(self, rng, conns):
        i = self.next_node()
        what = rng.choice(self.BAD)
        chat = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "bad request"}]}
        admin = {"authorization": f"Bearer {ADMIN}"}
        if what == "metadata":
            r = self.exchange(conns, i, "POST", "/openai/chat/completions", chat, {"x-gatemesh-metadata": "{not json"})
            allowed = {400}
        elif what == "provider":
            r = self.exchange(conns, i, "POST", "/nosuch/chat/completions", chat)
            allowed = {404}
        elif what == "gateway":
            r = self.exchange(conns, i, "POST", "/v1/acct/nosuch/openai/chat/completions", chat)
            allowed = {404}
        elif what == "custom-cost":
            r = self.exchange(conns, i, "POST", "/openai/chat/completions", chat,
                              {"x-gatemesh-custom-cost": '{"per_token_in":0,"per_token_out":0}'})
            allowed = {403}
        elif what == "too-large":
            big = json.dumps({**chat, "messages": [{"role": "user", "content": "z" * 270_000}]}).encode()
            r = self.exchange(None, i, "POST", "/openai/chat/completions", big, fresh=True)
            allowed = {413}
        elif what == "header-too-large":
            r = self.exchange(None, i, "POST", "/openai/chat/completions", chat, {"x-padding": "p" * 70_000}, fresh=True)
            allowed = {400, 431}
        elif what == "admin-token":
            r = self.exchange(conns, i, "GET", "/api/logs", None, {"authorization": "Bearer wrong"})
            allowed = {401}
        elif what == "method":
            r = self.exchange(conns, i, "POST", "/metrics", b"", admin)
            allowed = {405}
        elif what == "provider-400":
            r = self.exchange(conns, i, "POST", "/openai/chat/completions", {"model": "gpt-4o-mini"})
            allowed = {400}
        elif what == "unified-model":
            r = self.exchange(conns, i, "POST", "/v1/chat/completions", {**chat, "model": "no-such-model"})
            allowed = {400}
        elif what == "provider-503":
            r = self.exchange(conns, i, "POST", "/openai/chat/completions", chat, {"x-mock-status": "503"})
            allowed = {503}
        else:
            path = {"api-logs": "/api/logs?limit=20", "api-budgets": "/api/budgets",
                    "api-analytics": "/api/analytics?group_by=provider", "metrics": "/metrics",
                    "cluster-status": "/cluster/status"}[what]
            r = self.exchange(conns, i, "GET", path, None, admin)
            allowed = {200}
        self.stats.answer("bad" if allowed != {200} else "operator", r[0], allowed, f"{what}: {r[2][:300].decode(errors='replace')}")

    def start(self, scale):
        plan = [("chat", self.chat, 3), ("stream", self.stream, 2), ("cache", self.cache, 2), ("budget", self.budget, 1),
                ("abandon", self.abandon, 1), ("bad", self.bad, 1)]
        threads = []
        for kind, fn, n in plan:
            for k in range(n * scale):
                t = threading.Thread(target=self.run_kind, args=(kind, fn, k), name=f"{kind}-{k}", daemon=True)
                t.start()
                threads.append(t)
        return threads


# --- sampling ------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_kb": out["VmRSS"], "hwm_kb": out["VmHWM"], "threads": out["Threads"], "cpu_s": out["cpu_s"], "fds": out["fds"]}


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += size(os.path.join(root, name))
    return total


def row_counts(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("request_log", "response_cache", "limit_spend")}
        finally:
            con.close()
    except sqlite3.Error:
        return {"request_log": None, "response_cache": None, "limit_spend": None}


def scrape(url):
    req = urllib.request.Request(url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        text = r.read().decode()
    out = {"log_queued": None, "log_dropped": None, "in_flight": None, "upstream_conns": None}
    by_status = collections.Counter()
    names = {"gatemesh_log_rows_queued": "log_queued", "gatemesh_log_rows_dropped": "log_dropped",
             "gatemesh_requests_in_flight": "in_flight", "gatemesh_upstream_connections_opened": "upstream_conns"}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        if base in names:
            out[names[base]] = int(float(value))
        elif base == "gatemesh_requests_total":
            status = name.split('status="', 1)[1].split('"', 1)[0]
            by_status[status] += int(float(value))
    out["served_by_status"] = dict(by_status)
    return out


COLUMNS = ["t", "phase", "process", "alive", "rss_kb", "hwm_kb", "fds", "threads", "cpu_s", "sqlite_bytes", "wal_bytes",
           "shm_bytes", "journal_bytes", "node_log_bytes", "request_log", "response_cache", "limit_spend", "log_queued",
           "log_dropped", "in_flight", "upstream_conns", "served_by_status", "client_requests", "client_by_status"]


class Sampler:
    """Samples every process; each sample is appended to the CSV at once (a run cut short keeps its series)."""

    def __init__(self, cluster, stats, counts, out):
        self.c = cluster
        self.stats = stats
        self.counts = counts
        self.rows = []
        self.t0 = time.monotonic()
        self.file = open(out, "w", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=COLUMNS, extrasaction="ignore")
        self.csv.writeheader()

    def sample(self, phase):
        t = round(time.monotonic() - self.t0, 1)
        total, by_status = self.stats.total()
        rows = []
        for i, proc in enumerate(self.c.nodes):
            name = f"node-{i + 1}"
            row = {"t": t, "phase": phase, "process": name, "alive": proc.poll() is None,
                   "client_requests": total, "client_by_status": json.dumps(by_status, sort_keys=True)}
            data = os.path.join(self.c.run_dir, name, "data")
            if row["alive"]:
                try:
                    row.update(proc_sample(proc.pid))
                except OSError:
                    row["alive"] = False
            row["sqlite_bytes"], row["wal_bytes"], row["shm_bytes"] = (size(os.path.join(data, f)) for f in FILES)
            row["journal_bytes"] = dir_size(os.path.join(data, "journal"))
            row["node_log_bytes"] = size(os.path.join(self.c.run_dir, name, "node.log"))
            if self.counts:
                row.update(row_counts(os.path.join(data, "gatemesh.sqlite")))
            if row["alive"]:
                try:
                    m = scrape(self.c.node_url(i))
                    row.update({k: v for k, v in m.items() if k != "served_by_status"})
                    row["served_by_status"] = json.dumps(m["served_by_status"], sort_keys=True)
                except Exception as e:  # noqa: BLE001
                    row["scrape_error"] = str(e)
            rows.append(row)
        if self.c.mock and self.c.mock.poll() is None:
            row = {"t": t, "phase": phase, "process": "mock", "alive": True, "client_requests": total}
            row.update(proc_sample(self.c.mock.pid))
            rows.append(row)
        self.rows.extend(rows)
        self.csv.writerows(rows)
        self.file.flush()
        return rows


# --- the check -----------------------------------------------------------------------------------

MB = 1_000_000
MIB = 1 << 20
DISK_MINUTES = 10  # the request log is trimmed every minute, the counters' rows too, past their rule's window
JOURNAL_BOUND = 17 * MIB  # a journal segment is rewritten once it passes 16 MiB
CHECKS = [  # (column, label, tolerance(middle max) -> allowed growth, a size that is flat whatever the growth)
    ("rss_kb", "RSS", lambda m: max(m * 0.10, 20 * MB / 1000), None),
    ("fds", "open fds", lambda m: 16, None),
    ("threads", "threads", lambda m: 8, None),
    ("sqlite_bytes", "gatemesh.sqlite", lambda m: max(m * 0.10, 2 * MIB), None),
    ("wal_bytes", "gatemesh.sqlite-wal", lambda m: max(m * 0.10, 4 * MIB), None),
    ("journal_bytes", "journal", lambda m: max(m * 0.10, 1 * MIB), JOURNAL_BOUND),
]


def slope_per_hour(points):
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mx) * (v - my) for t, v in points) / den * 3600


def fmt(column, v):
    if v is None:
        return "–"
    if column == "rss_kb":
        return f"{v / 1000:.1f} MB"
    if column.endswith("_bytes"):
        return f"{v / MIB:.2f} MiB"
    return f"{v:g}" if float(v).is_integer() else f"{v:.1f}"


def check(rows, nodes, duration, warmup, row_cap_slack):
    """The verdict per node and metric. The data files are judged only on runs of DISK_MINUTES or
    more: before that, the last third still holds the request log's first trims and the counters'
    first deletions (their rows go 3 minutes past their window, the reservation timeout)."""
    failures = []
    judge_disk = duration >= DISK_MINUTES * 60 - 1
    table = []
    load = [r for r in rows if r["phase"] == "load"]
    mid_start = max(warmup, duration / 3)
    mid_end = 2 * duration / 3
    for n in range(nodes):
        name = f"node-{n + 1}"
        series = [r for r in load if r["process"] == name and r.get("alive")]
        if not series:
            failures.append(f"{name}: no samples")
            continue
        start = series[0]
        after = next((r for r in series if r["t"] >= warmup), series[-1])
        middle = [r for r in series if mid_start <= r["t"] < mid_end]
        last = [r for r in series if r["t"] >= mid_end]
        if not middle or not last:
            failures.append(f"{name}: too few samples after warm-up to judge (middle {len(middle)}, last {len(last)}); run longer")
            continue
        for column, label, tolerance, bound in CHECKS:
            mid_max = max(r[column] for r in middle)
            last_max = max(r[column] for r in last)
            allowed = tolerance(mid_max)
            growth = last_max - mid_max
            rate = slope_per_hour([(r["t"], r[column]) for r in series if r["t"] >= warmup])
            ok = growth <= allowed or (bound is not None and last_max <= bound)
            disk = column.endswith("_bytes")
            verdict = "ok" if ok else "GREW" if judge_disk or not disk else f"not judged (< {DISK_MINUTES} min)"
            table.append((name, label, fmt(column, start[column]), fmt(column, after[column]), fmt(column, mid_max),
                          fmt(column, last_max), fmt(column, series[-1][column]),
                          f"{'+' if growth >= 0 else ''}{fmt(column, growth)}",
                          fmt(column, allowed) + (f" (or under {fmt(column, bound)})" if bound else ""),
                          f"{'+' if rate >= 0 else ''}{fmt(column, rate)}/h", verdict))
            if verdict == "GREW":
                failures.append(f"{name}: {label} grew after warm-up: max {fmt(column, mid_max)} in the middle third, "
                                f"{fmt(column, last_max)} in the last (+{fmt(column, growth)}, allowed +{fmt(column, allowed)}; "
                                f"trend after warm-up {fmt(column, rate)} an hour)")
        counts = [r.get("request_log") for r in series if r["t"] >= warmup and r.get("request_log") is not None]
        if judge_disk and counts and max(counts) > MAX_ROWS + row_cap_slack:
            failures.append(f"{name}: request_log held {max(counts)} rows after warm-up, more than max_rows {MAX_ROWS} "
                            f"plus a minute of load ({row_cap_slack})")
    return table, failures


def print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (fractions allowed)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup-pct", type=float, default=20.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--scale", type=int, default=1, help="multiplies the number of client threads of each kind")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="mean pause of each client thread between requests")
    parser.add_argument("--out", help="the CSV time series (default: a file under $TMPDIR); the JSON goes beside it")
    parser.add_argument("--binary")
    parser.add_argument("--no-row-counts", action="store_true", help="do not open the nodes' databases to count rows")
    parser.add_argument("--keep", action="store_true", help="keep the run directory after a passing run")
    parser.add_argument("--seed", default="soak")
    args = parser.parse_args()

    binary = args.binary or os.environ.get("GATEMESH_BIN") or os.path.join(ROOT, ".build", "release", "gatemesh")
    if not os.access(binary, os.X_OK):
        sys.exit(f"soak: no gatemesh binary at {binary}; build one with `swift build -c release --product gatemesh` "
                 f"or pass --binary / GATEMESH_BIN")
    duration = args.minutes * 60
    warmup = max(duration * args.warmup_pct / 100, min(args.warmup_minutes * 60, duration * 0.4))
    out = args.out or os.path.join(tempfile.gettempdir(), f"gatemesh-soak-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    out_json = os.path.splitext(out)[0] + ".json"

    nodes = 3
    base = free_block(2 * nodes + 1)
    run_dir = tempfile.mkdtemp(prefix="gatemesh-soak-")
    c = Cluster(nodes=nodes, base_port=base, peer_base_port=base + nodes, mock_port=base + 2 * nodes, binary=binary,
                run_dir=run_dir, admin_token=ADMIN, extra_yaml=CONFIG)
    print(f"soak: {args.minutes:g} min of load on 3 nodes (warm-up {warmup / 60:.1f} min), binary {binary} "
          f"(built {time.strftime('%Y-%m-%d %H:%M', time.localtime(os.path.getmtime(binary)))}), run directory {run_dir}, "
          f"series {out}", flush=True)
    stats = Stats()
    failures = []
    try:
        try:
            c.start()
            deadline = time.time() + 30
            while True:
                sizes = []
                for i in range(nodes):
                    req = urllib.request.Request(c.node_url(i) + "/cluster/status", headers={"authorization": f"Bearer {ADMIN}"})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        sizes.append(json.loads(r.read())["cluster"]["size"])
                if all(s == nodes for s in sizes):
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"the cluster did not form: sizes {sizes}")
                time.sleep(0.2)
            time.sleep(2.5)  # past the 2 s in which a new node hands out no rights
        except Exception as e:  # noqa: BLE001
            print(f"soak: the cluster could not start: {e} (logs in {run_dir})", file=sys.stderr)
            c.stop()
            sys.exit(2)

        sampler = Sampler(c, stats, not args.no_row_counts, out)
        sampler.sample("load")
        traffic = Traffic(c, stats, time.monotonic() + duration, args.pause_ms / 1000, args.seed)
        threads = traffic.start(args.scale)
        next_sample = sampler.t0 + args.interval
        died = None
        while time.monotonic() < sampler.t0 + duration:
            time.sleep(max(0.0, min(next_sample, sampler.t0 + duration) - time.monotonic()))
            if time.monotonic() >= next_sample:
                rows = sampler.sample("load")
                next_sample += args.interval
                nodes_rows = [r for r in rows if r["process"] != "mock"]
                total, by_status = stats.total()
                print(f"  {rows[0]['t']:7.0f} s  {total:8d} answers  "
                      + "  ".join(f"{r['process']}: {r.get('rss_kb', 0) / 1000:.1f} MB {r.get('fds', 0)} fds "
                                  f"{r['sqlite_bytes'] / MIB:.1f}+{r['wal_bytes'] / MIB:.1f} MiB" for r in nodes_rows)
                      + f"  unexpected {stats.unexpected_count}", flush=True)
                dead = [r["process"] for r in nodes_rows if not r["alive"]]
                if dead:
                    died = dead
                    break
        traffic.stop.set()
        for t in threads:
            t.join(60)
        sampler.sample("load")
        if died:
            failures.append(f"a node died: {', '.join(died)} (exit status "
                            f"{[c.nodes[int(d.split('-')[1]) - 1].returncode for d in died]}); see its node.log in {run_dir}")
        # Idle: what is left 15 s after the load.
        time.sleep(15)
        idle = sampler.sample("idle")
        for r in idle:
            # The gauge counts every request the node is answering, the /metrics scrape itself included.
            if r["process"] != "mock" and (r.get("in_flight") or 0) > 1:
                failures.append(f"{r['process']}: {r['in_flight'] - 1} requests still in flight 15 s after the load stopped")
            if r["process"] != "mock" and r.get("log_dropped"):
                failures.append(f"{r['process']}: {r['log_dropped']} request-log rows dropped")
        try:
            with urllib.request.urlopen(c.mock_url + "/_mock/stats", timeout=5) as r:
                mock_stats = json.loads(r.read())
        except Exception as e:  # noqa: BLE001
            mock_stats = {"error": str(e)}
    finally:
        c.stop()
    sampler.file.close()
    exit_codes = {f"node-{i + 1}": p.returncode for i, p in enumerate(c.nodes) if p}
    for name, code in exit_codes.items():
        if code != 0:
            failures.append(f"{name} exited with status {code} on SIGTERM")
    final_counts = {}
    if not args.no_row_counts:
        for i in range(nodes):
            final_counts[f"node-{i + 1}"] = row_counts(os.path.join(run_dir, f"node-{i + 1}", "data", "gatemesh.sqlite"))

    rows = sampler.rows
    # Requests per node per minute, for the row cap's slack: a minute of load plus the trim's own batch.
    total, by_status = stats.total()
    per_node_minute = total / max(duration / 60, 1e-9) / nodes
    slack = int(per_node_minute * 1.5) + 1000
    table, check_failures = check(rows, nodes, duration, warmup, slack)
    failures = check_failures + failures
    if stats.unexpected_count:
        failures.append(f"{stats.unexpected_count} unexpected answers or connection failures; the first: "
                        + " | ".join(stats.unexpected[:5]))

    print()
    print(f"## Soak: {args.minutes:g} min, warm-up {warmup / 60:.1f} min, {len(rows)} samples")
    print()
    print_table(["node", "metric", "start", "after warm-up", "middle third max", "last third max", "end of load", "growth",
                 "allowed", "trend after warm-up", ""], table)
    print()
    idle_rows = [r for r in rows if r["phase"] == "idle"]
    print_table(["process", "RSS idle", "peak RSS (VmHWM)", "fds idle", "threads idle", "CPU s", "request_log rows",
                 "response_cache rows", "limit_spend rows", "node.log"],
                [(r["process"], fmt("rss_kb", r.get("rss_kb")), fmt("rss_kb", r.get("hwm_kb")), r.get("fds"), r.get("threads"),
                  f"{r.get('cpu_s', 0):.0f}", r.get("request_log", "–"), r.get("response_cache", "–"), r.get("limit_spend", "–"),
                  fmt("node_log_bytes", r.get("node_log_bytes"))) for r in idle_rows])
    print()
    kinds = sorted({k for k, _ in stats.by_kind})
    statuses = sorted({s for _, s in stats.by_kind}, key=str)
    print_table(["kind"] + [str(s) for s in statuses] + ["total"],
                [[k] + [stats.by_kind.get((k, s), 0) for s in statuses] + [sum(v for (kk, _), v in stats.by_kind.items() if kk == k)]
                 for k in kinds]
                + [["all"] + [stats.by_status.get(s, 0) for s in statuses] + [total]])
    print()
    served = collections.Counter()
    for r in idle_rows:
        if r["process"] != "mock" and r.get("served_by_status"):
            served.update(json.loads(r["served_by_status"]))
    print(f"- answers: {total} in {duration / 60:.1f} min ({total / duration:.0f}/s); clients left {sum(stats.abandoned.values())} "
          f"times ({', '.join(f'{k} {v}' for k, v in sorted(stats.abandoned.items()))})")
    print(f"- cache statuses seen by the cache clients: {dict(stats.cache)}")
    print(f"- the nodes' finished proxied requests by logged status (/metrics): {dict(sorted(served.items()))}")
    print(f"- mock provider: {mock_stats}")
    print(f"- final row counts: {final_counts}; node exit statuses on SIGTERM: {exit_codes}")
    print(f"- series: {out} and {out_json}")

    with open(out_json, "w") as f:
        json.dump({"minutes": args.minutes, "warmup_s": warmup, "binary": binary, "config": CONFIG,
                   "answers_by_kind": {f"{k} {s}": v for (k, s), v in sorted(stats.by_kind.items(), key=str)},
                   "abandoned": dict(stats.abandoned), "cache": dict(stats.cache), "served_by_status": dict(served),
                   "mock": mock_stats, "final_row_counts": final_counts, "exit_codes": exit_codes,
                   "unexpected": stats.unexpected, "failures": failures, "table": table, "samples": rows}, f, indent=1)
    print()
    if failures:
        print("SOAK FAILED:")
        for f in failures:
            print(f"  - {f}")
        print(f"(run directory kept: {run_dir})")
        sys.exit(1)
    print("soak passed: memory, descriptors, threads and the data files stayed flat after warm-up")
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"(run directory kept: {run_dir})")


if __name__ == "__main__":
    main()
