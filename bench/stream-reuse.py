#!/usr/bin/env python3
"""Streamed load against an upstream that closes idle keep-alive connections (issue 22).

    python3 bench/stream-reuse.py [--seconds 20] [--conns 32] [--idle-ms 40] [--runs 1] [--binary PATH]

A proxy that keeps upstream connections alive will now and then send a request on a connection
that the upstream is closing at that very moment. Whether the client then sees an error is the
proxy's business: it can resend the request on a fresh connection (libcurl does, if it can rewind
the request body), or fail it with a 502. This measures how often each proxy fails, with the same
load against the same upstream:

- the upstream: nginx answering every request with a canned streamed OpenAI chat completion (the
  mock provider's own answer to the benchmark's `"stream": true` request, usage chunk and
  `data: [DONE]` included, captured once at start), sent chunked as a real provider sends a stream,
  with `keepalive_timeout` of `--idle-ms` (40 ms): every connection left idle that long is closed;
- the clients: `--conns` threads, each with one keep-alive connection, wait a random think time,
  uniform in 0 to 2 × `--idle-ms`, before each request, so the proxies' upstream connections sit
  idle for times spread around the upstream's timeout and are regularly reused at the moment it
  closes them (nginx has no random idle timeout; random think time against a fixed short one gives
  the same spread of idle times, and the proxy's pool spreads it further);
- the proxies in front of it, measured one after the other with the same load (the order
  alternates from run to run): nginx `proxy_pass` with upstream keep-alive (`keepalive 64`, as in
  bench/proxy.py), and a GateMesh node (`gatemesh serve`, provider `openai` at the upstream,
  request log on, everything else default: no retries).

The clients behave as HTTP libraries do: before reusing a connection they check that the server
has not closed it (readable at end of file: reconnect, as curl, urllib3 and httpcore do). A failure
is an answer other than 200, a 200 whose body does not end the stream with `data: [DONE]`, or a
request that was sent and got no answer (the connection failed under it). Connections that the
proxy closed between requests are counted apart: they cost a reconnect, not a request. (wrk is not
used: it counts a server's close of an idle connection that came with no `Connection: close` as a
read error, the same as a request that failed, and the node closes its client connection after
every streamed answer.)

For the node, its request-log rows with a 4xx or 5xx status (`GET /api/logs`) and the warnings it
printed (`--log-level warning`) are also reported; for nginx, the lines of its error log. The
upstream's access log gives how many upstream connections each proxy opened during its run: about
one per idle close it met.

Needs nginx (apt-get install nginx-light). `--binary` defaults to the release build.
"""
import argparse
import collections
import json
import http.client
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],'
        '"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}')
ADMIN = "bench-admin-token"
PROCS = []

# The free port and readiness wait of the proxy benchmark.
from proxy import port, wait  # noqa: E402


def start(cmd, **kw):
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, **kw)
    PROCS.append(p)
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in PROCS:
        PROCS.remove(p)


def clients(url, conns, seconds, idle_ms):
    """Clients that keep their connections alive, as HTTP libraries do: before reusing one they check
    that the server has not closed it (readable at EOF: reconnect, as curl, urllib3 and httpcore do).
    Counts answers by status, 200s cut short, connections found closed before reuse, and requests
    that were sent and got no answer (the connection failed under them)."""
    host, port_ = urllib.parse.urlsplit(url).netloc.split(":")
    path = urllib.parse.urlsplit(url).path
    lock = threading.Lock()
    totals = collections.Counter()
    deadline = time.time() + seconds

    def client(seed):
        rnd = random.Random(seed)
        counts = collections.Counter()
        conn = None
        while time.time() < deadline:
            time.sleep(rnd.randint(0, 2 * idle_ms) / 1000)
            if conn is not None:
                sock = conn.sock
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    try:
                        gone = sock.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        gone = True
                    counts["found closed" if gone else "unexpected bytes"] += 1
                    conn.close()
                    conn = None
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port_), timeout=5)
            try:
                conn.request("POST", path, body=BODY, headers={"content-type": "application/json",
                                                               "authorization": "Bearer sk-bench"})
                r = conn.getresponse()
                body = r.read()
                counts[r.status] += 1
                if r.status == 200 and b"data: [DONE]" not in body:
                    counts["cut short"] += 1
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                counts[f"no answer ({'reused' if reused else 'new'} connection: {type(e).__name__})"] += 1
                conn.close()
                conn = None
        with lock:
            totals.update(counts)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests = sum(v for k, v in totals.items() if isinstance(k, int) or k.startswith("no answer"))
    failures = sum(v for k, v in totals.items() if k != 200 and k != "found closed" and k != "unexpected bytes")
    return {"requests": requests, "failures": failures, "counts": totals}


class Tail:
    """The lines appended to a file since the last read."""

    def __init__(self, path):
        self.path, self.offset = path, 0
        self.skip()

    def skip(self):
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode(errors="replace").splitlines()


def upstream_figures(lines):
    """Upstream connections used and requests served, from the access log ("$connection $requests $status")."""
    conns, statuses = set(), collections.Counter()
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            conns.add(parts[0])
            statuses[int(parts[2])] += 1
    return {"connections": len(conns), "requests": sum(statuses.values()), "statuses": dict(statuses)}


def nginx_errors(lines):
    """The nginx error log's lines, reduced to their message (no time, pid, client or request)."""
    reasons = collections.Counter()
    for line in lines:
        m = re.search(r"\[(?:error|crit|alert|emerg|warn)\] [\d#]+: \*\d+ (.*?)(?: while .*?)?, client:", line)
        if m:
            reasons[m.group(1)] += 1
        elif line.strip():
            reasons[line.split("] ", 1)[-1][:160]] += 1
    return reasons


def node_log_rows(node_url, since_ms):
    """The node's request-log rows with a 4xx or 5xx status since `since_ms`: counts by status and error."""
    rows = collections.Counter()
    for cls in ("4xx", "5xx"):
        cursor = None
        while True:
            q = {"status": cls, "from": str(since_ms), "limit": "1000"}
            if cursor:
                q["cursor"] = cursor
            req = urllib.request.Request(f"{node_url}/api/logs?{urllib.parse.urlencode(q)}",
                                         headers={"authorization": f"Bearer {ADMIN}"})
            page = json.load(urllib.request.urlopen(req, timeout=10))
            for row in page["data"]:
                rows[(row["status"], row.get("error") or "")] += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return rows


def node_warnings(lines):
    """The node's stderr lines at warning and above, with numbers and ids blanked so alike lines group."""
    reasons = collections.Counter()
    for line in lines:
        if not line.strip():
            continue
        text = re.sub(r"^\S+ ", "", line)  # the timestamp
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f-]{4,}", "<id>", text)
        text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
        reasons[text[:200]] += 1
    return reasons


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--idle-ms", type=int, default=40,
                        help="the upstream's keepalive_timeout; the clients' think time is uniform in 0..2x this")
    parser.add_argument("--runs", type=int, default=1, help="measure both proxies this many times (order alternates)")
    parser.add_argument("--binary")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("needs nginx: apt-get install nginx-light")
    binary = args.binary
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "gatemesh"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout.strip(), "gatemesh")
    work = tempfile.mkdtemp(prefix="gatemesh-stream-reuse-")
    os.chmod(work, 0o755)  # nginx's workers read the canned answer from it
    runs = []
    try:
        # The mock's streamed answer to the benchmark request, which the static upstream repeats.
        mock_port = port()
        mock = start([binary, "mock-provider", "--listen", f"127.0.0.1:{mock_port}"])
        wait(f"http://127.0.0.1:{mock_port}/_mock/healthz")
        req = urllib.request.Request(f"http://127.0.0.1:{mock_port}/v1/chat/completions", data=BODY.encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            answer = r.read().decode()
        stop(mock)
        assert answer.rstrip().endswith("data: [DONE]") and '"usage":{' in answer, answer[-300:]

        upstream, proxy = port(), port()
        conf = os.path.join(work, "nginx.conf")
        with open(os.path.join(work, "stream.sse"), "w") as f:
            f.write(answer)
        os.chmod(os.path.join(work, "stream.sse"), 0o644)
        with open(conf, "w") as f:
            f.write(f"""worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  log_format conn '$connection $connection_requests $status';
  upstream provider {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  # The upstream: closes every connection left idle for {args.idle_ms} ms (and says nothing of it in
  # a Keep-Alive header). The no-op sub_filter drops Content-Length, so the stream goes out chunked.
  server {{
    listen 127.0.0.1:{upstream};
    keepalive_timeout {args.idle_ms}ms;
    access_log {work}/upstream-access.log conn;
    error_log {work}/upstream-error.log;
    # (The answer is longer than an nginx config string may be, so it is a file; a POST to a file is
    # a 405, which error_page turns into a GET of it, answered 200.)
    location / {{ error_page 405 =200 /_stream; return 405; }}
    location = /_stream {{
      internal;
      alias {work}/stream.sse;
      default_type "text/event-stream; charset=utf-8";
      add_header Cache-Control no-cache;
      sub_filter_types *;
      sub_filter '#never#' '#never#';
    }}
  }}
  server {{
    listen 127.0.0.1:{proxy};
    error_log {work}/proxy-error.log;
    location / {{
      proxy_pass http://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        ngx = start([nginx, "-p", work, "-c", conf, "-g", "daemon off;"])
        wait(f"http://127.0.0.1:{upstream}/")
        wait(f"http://127.0.0.1:{proxy}/")
        head = subprocess.run(["curl", "-sS", "-D-", "-o", "/dev/null", "-X", "POST", "--data", BODY,
                               f"http://127.0.0.1:{upstream}/v1/chat/completions"], capture_output=True, text=True).stdout
        assert "chunked" in head.lower() and "text/event-stream" in head, head
        upstream_log = Tail(f"{work}/upstream-access.log")
        proxy_log = Tail(f"{work}/proxy-error.log")

        for run in range(args.runs):
            order = ["nginx", "node"] if run % 2 == 0 else ["node", "nginx"]
            result = {}
            for target in order:
                if target == "nginx":
                    url = f"http://127.0.0.1:{proxy}/v1/chat/completions"
                    clients(url, 4, 2, args.idle_ms)  # warm-up
                    upstream_log.skip()
                    proxy_log.skip()
                    r = clients(url, args.conns, args.seconds, args.idle_ms)
                    time.sleep(0.5)
                    r["upstream"] = upstream_figures(upstream_log.read())
                    r["proxy_errors"] = nginx_errors(proxy_log.read())
                    result["nginx proxy_pass"] = r
                    continue
                node_port = port()
                data = os.path.join(work, f"node-{run}")
                config = os.path.join(work, f"node-{run}.yaml")
                with open(config, "w") as f:
                    f.write(f"""node: {{name: bench, listen: "127.0.0.1:{node_port}", data_dir: "{data}"}}
admin: {{token: "{ADMIN}"}}
providers:
  openai: {{base_url: "http://127.0.0.1:{upstream}/v1"}}
gateways:
  - id: default
""")
                stderr_path = os.path.join(work, f"node-{run}.stderr")
                with open(stderr_path, "w") as err:
                    node = start([binary, "serve", "--config", config, "--log-level", "warning"], stderr=err)
                node_url = f"http://127.0.0.1:{node_port}"
                try:
                    wait(f"{node_url}/healthz")
                    url = f"{node_url}/openai/chat/completions"
                    clients(url, 4, 2, args.idle_ms)  # warm-up
                    time.sleep(0.3)
                    node_stderr = Tail(stderr_path)
                    upstream_log.skip()
                    since = int(time.time() * 1000)
                    r = clients(url, args.conns, args.seconds, args.idle_ms)
                    time.sleep(1.5)  # the log writer's last batch
                    r["upstream"] = upstream_figures(upstream_log.read())
                    r["log_rows"] = node_log_rows(node_url, since)
                    r["proxy_errors"] = node_warnings(node_stderr.read())
                finally:
                    stop(node)
                result["GateMesh node"] = r
            runs.append(result)
            print(f"run {run + 1} done", file=sys.stderr, flush=True)
        up_errors = Tail(f"{work}/upstream-error.log")
        up_errors.offset = 0
        upstream_error_lines = nginx_errors(up_errors.read())
        stop(ngx)
    finally:
        for p in list(PROCS):
            stop(p)
        if os.environ.get("KEEP_WORK"):
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"{args.seconds} s of streamed load at {args.conns} connections per proxy; upstream keepalive_timeout "
          f"{args.idle_ms} ms, think time uniform 0-{2 * args.idle_ms} ms\n")
    print("| run | proxy | requests | req/s | failures | failure rate | failed answers and errors | "
          "client connections the proxy closed | upstream connections opened |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for i, result in enumerate(runs):
        for name in ("nginx proxy_pass", "GateMesh node"):
            r = result[name]
            bad = ", ".join(f"{k}: {v}" for k, v in sorted(r["counts"].items(), key=lambda kv: str(kv[0]))
                            if k not in (200, "found closed", "unexpected bytes")) or "none"
            rate = f"{r['failures'] / r['requests'] * 100:.3f} %" + (f" (1 in {r['requests'] // r['failures']:,})" if r["failures"] else "")
            print(f"| {i + 1} | {name} | {r['requests']:,} | {r['requests'] / args.seconds:,.0f} | {r['failures']} | {rate} | {bad} | "
                  f"{r['counts'].get('found closed', 0):,} | {r['upstream']['connections']:,} |")
    print()
    for i, result in enumerate(runs):
        n, g = result["nginx proxy_pass"], result["GateMesh node"]
        print(f"run {i + 1}:")
        print(f"  nginx error log: {dict(n['proxy_errors']) or 'nothing'}")
        rows = ", ".join(f"{s} '{e}': {c}" for (s, e), c in sorted(g["log_rows"].items())) or "none"
        print(f"  node request-log rows with 4xx/5xx: {rows}")
        print(f"  node stderr at warning: {dict(g['proxy_errors']) or 'nothing'}")
        for name, r in (("nginx", n), ("node", g)):
            print(f"  upstream during {name}'s run: {r['upstream']['requests']:,} requests on "
                  f"{r['upstream']['connections']:,} connections, statuses {r['upstream']['statuses']}")
    if upstream_error_lines:
        print(f"upstream error log: {dict(upstream_error_lines)}")
    total = {name: [sum(r[name][k] for r in runs) for k in ("failures", "requests")] for name in ("nginx proxy_pass", "GateMesh node")}
    print()
    for name, (fails, attempts) in total.items():
        print(f"- {name}: {fails} failures in {attempts:,} requests over {len(runs)} run(s)")
    (nf, na), (gf, ga) = total["nginx proxy_pass"], total["GateMesh node"]
    verdict = "no more often than" if gf / ga <= nf / na else "MORE often than"
    print(f"- the node failed {verdict} nginx ({gf / ga * 100:.3f} % against {nf / na * 100:.3f} %)")


if __name__ == "__main__":
    main()
