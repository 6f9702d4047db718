#!/usr/bin/env python3
"""The proxy benchmark (issue 7): GateMesh side by side with nginx on this machine.

    python3 bench/proxy.py [--seconds 10] [--binary PATH] [--skip-cluster] [--skip-floor] [--enforcement soft|bounded|strict]
                           [--streams 2000] [--stream-seconds 30] [--litellm PATH]

Starts, all on loopback:
- the upstream: nginx answering every request with a fixed OpenAI chat completion (the mock
  provider's own answer, captured at start), so the upstream is never the bottleneck;
- nginx as a plain `proxy_pass` reverse proxy in front of it, with upstream keep-alive;
- a GateMesh node in front of it with a realistic configuration: request log on, cost tracking,
  10 budget and rate-limit rules, cache off; and a second gateway on the same node with the cache
  on, for cache hits;
- the mock provider, for the streamed time-to-first-byte rows;
- a 3-node GateMesh cluster (fresh certificates, gossip running) for the cluster row;
- an HTTPS upstream: the same fixed answer from nginx over TLS with a self-signed CA (made at
  start with the openssl command), which nginx-as-proxy (`proxy_pass https://`, upstream
  keep-alive, the certificate verified) and the node (`upstream.ca_file`) both trust;
- `--streams` concurrent streamed completions from the mock provider at 20 tokens a second for
  `--stream-seconds`, straight to the mock and through the node (`gatemesh-floor streams`, one
  event loop timing every event): time to the first event and the gaps between events, p50 and
  p99, the node's CPU per stream and its resident memory per open stream;
- LiteLLM's proxy (`--litellm PATH`, or `litellm` on the PATH: one worker, its own config
  pointing at the same upstream), the row users compare us with;
- the floor of the stack (`gatemesh-floor`, built beside the node): SwiftNIO's HTTP/1 handlers
  answering a fixed body, a Hummingbird 2 route answering the same, and a Hummingbird route that
  proxies through GateMeshUpstream (libcurl) with nothing of the gateway on top. What these cost
  is what the gateway cannot go below without changing its server or its client. Two more show
  what a change would buy: the same curl exchange from SwiftNIO's channel handlers (a task per
  request, no Hummingbird), and SwiftNIO on both sides (an upstream connection per client
  connection on the same event loop, parts passed through: nginx's shape, no task, no thread hop).

Then drives each with Debian's wrk (same request, same durations) and prints, from this one run:
requests per second and latency p50 and p99 for 1 connection (sequential) and 32 connections,
and for the node and the floor rows their CPU time per request at 32 connections (/proc/PID/stat);
each proxy's overhead over the direct upstream; GateMesh against nginx; cache hits; a streamed
response's time to first byte through the node against direct; the cluster; and the node's peak
resident memory under load and when idle. Needs nginx and wrk (apt-get install nginx-light wrk).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "cluster"))
from launch import Cluster, free_block  # noqa: E402

BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],"max_tokens":16}'
PROCS = []


def port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def wait_post(url, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=BODY.encode(), headers={"content-type": "application/json"}), timeout=2).read()
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def start(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    PROCS.append(p)
    return p


def cpu_seconds(pid):
    """The process's user + system CPU time so far (/proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, conns, seconds, script, extra=(), pid=None):
    """wrk's figures; with `pid`, also that process's CPU time per request (µs) over the run."""
    threads = 1 if conns == 1 else 2
    before = cpu_seconds(pid) if pid else None
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, *extra, url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before if pid else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "non2xx": int(errors.group(1)) if errors else 0,
            "cpu_us": cpu * 1e6 / requests if cpu is not None and requests else None}


def make_keys(node_url, n):
    """An org, a team and `n` virtual keys through the admin API; returns the last key's secret."""
    import json as _json

    def post(path, body):
        req = urllib.request.Request(node_url + path, data=_json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "authorization": "Bearer bench-admin"})
        return _json.loads(urllib.request.urlopen(req).read())
    post("/api/orgs", {"id": "bench"})
    post("/api/teams", {"id": "bench", "org": "bench"})
    started = time.time()
    secret = None
    for i in range(n):
        secret = post("/api/keys", {"team": "bench", "name": f"k{i}"})["key"]
    print(f"made {n:,} keys in {time.time() - started:.1f} s", file=sys.stderr)
    return secret


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def ttfb(url, headers, n=20):
    times = []
    for _ in range(n):
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}", "-X", "POST", url, "-H", "content-type: application/json",
                "--data", BODY.replace('"max_tokens":16', '"max_tokens":16,"stream":true')]
        for h in headers:
            args += ["-H", h]
        times.append(float(subprocess.run(args, capture_output=True, text=True, check=True).stdout) * 1000)
    return statistics.median(times)


def make_tls(work):
    """A CA and a certificate for localhost / 127.0.0.1 signed by it (the openssl command)."""
    def run(*cmd):
        subprocess.run(["openssl", *cmd], cwd=work, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "tls.key", "-out", "tls.csr")
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "tls.pem")
    return os.path.join(work, "ca.pem"), os.path.join(work, "tls.pem"), os.path.join(work, "tls.key")


def stream_load(floor_binary, url, streams, seconds, pid=None):
    """`gatemesh-floor streams`: `streams` streams of 20 tokens a second for `seconds`; with `pid`, that
    process's CPU over the run and its peak resident memory while the streams are open."""
    before = cpu_seconds(pid) if pid else None
    started = time.time()
    load = subprocess.Popen([floor_binary, "streams", url, str(streams), str(seconds * 20), "50"], stdout=subprocess.PIPE, text=True)
    peak = 0
    while load.poll() is None:
        if pid:
            peak = max(peak, rss(pid)[0])
        time.sleep(0.5)
    out = json.loads(load.stdout.read())
    out["wall_s"] = time.time() - started
    if pid:
        out["cpu_s"] = cpu_seconds(pid) - before
        out["peak_rss_mb"] = peak
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--binary")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="leave out the floor rows")
    parser.add_argument("--floor-only", action="store_true", help="only direct, nginx and the floor rows")
    parser.add_argument("--streams-only", action="store_true", help="only the streams row, through the node and direct")
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams for the streaming row (0: none)")
    parser.add_argument("--stream-seconds", type=int, default=30)
    parser.add_argument("--litellm", default=shutil.which("litellm"), help="LiteLLM's `litellm` executable, for its row")
    parser.add_argument("--keys", type=int, default=0,
                        help="with --node-only: also measure requests made with a virtual key among this many (issue 15)")
    parser.add_argument("--node-only", action="store_true",
                        help="only the GateMesh node row (for A/B runs of one change); implies --skip-cluster")
    parser.add_argument("--enforcement", choices=["soft", "bounded", "strict"],
                        help="the budgets' enforcement mode (default: the config's default, bounded)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "curl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"needs {tool}: apt-get install nginx-light wrk curl")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    binary = args.binary
    if not binary:
        for product in ("gatemesh", "gatemesh-floor"):
            subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True,
                                             text=True, check=True).stdout.strip(), "gatemesh")
    floor_binary = os.path.join(os.path.dirname(binary), "gatemesh-floor")
    if not os.path.exists(floor_binary) and not (args.node_only or args.skip_floor and not args.streams):
        sys.exit(f"needs {floor_binary}: swift build -c release --product gatemesh-floor")
    work = tempfile.mkdtemp(prefix="gatemesh-proxy-bench-")
    script = os.path.join(work, "chat.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\nwrk.headers["authorization"] = "Bearer sk-bench"\n'
                f"wrk.body = '{BODY}'\n")
    try:
        # The mock, and its answer to the benchmark request, which the static upstream repeats.
        mock_port = port()
        start([binary, "mock-provider", "--listen", f"127.0.0.1:{mock_port}"])
        wait(f"http://127.0.0.1:{mock_port}/_mock/healthz")
        req = urllib.request.Request(f"http://127.0.0.1:{mock_port}/v1/chat/completions", data=BODY.encode(),
                                     headers={"content-type": "application/json"})
        answer = urllib.request.urlopen(req).read().decode()

        upstream, proxy = port(), port()
        upstream_tls, proxy_tls = port(), port()
        ca, cert, key = make_tls(work)
        conf = os.path.join(work, "nginx.conf")
        quoted = answer.replace("'", "\\'")
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
  upstream provider {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{upstream};
    location / {{ default_type application/json; return 200 '{quoted}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy};
    location / {{
      proxy_pass http://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  upstream provider_tls {{ server 127.0.0.1:{upstream_tls}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{upstream_tls} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:tls:10m;
    location / {{ default_type application/json; return 200 '{quoted}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_tls};
    location / {{
      proxy_pass https://provider_tls;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
""")
        start([nginx, "-p", work, "-c", conf, "-g", "daemon off;"])
        wait(f"http://127.0.0.1:{upstream}/")
        wait(f"http://127.0.0.1:{proxy}/")
        wait(f"http://127.0.0.1:{proxy_tls}/")

        node_port = port()
        rules = "\n".join(
            [f'      - {{id: budget-{i}, usd: 1000000, window: {{calendar: day}}'
             + (f', enforcement: {args.enforcement}' if args.enforcement else "") + '}' for i in range(5)])
        limits = "\n".join(
            [f'      - {{id: rate-{i}, requests: 100000000, window: {{fixed: 1m}}}}' for i in range(5)])
        config = os.path.join(work, "node.yaml")
        with open(config, "w") as f:
            f.write(f"""node: {{name: bench, listen: "127.0.0.1:{node_port}", data_dir: "{work}/node-data"}}
admin: {{token: bench-admin}}
upstream: {{ca_file: "{ca}"}}
providers:
  openai: {{base_url: "http://127.0.0.1:{upstream}/v1"{', api_key: sk-bench' if args.keys else ''}}}
  custom-mock: {{base_url: "http://127.0.0.1:{mock_port}/v1"}}
  custom-tls: {{base_url: "https://127.0.0.1:{upstream_tls}/v1"}}
gateways:
  - id: default
    budgets:
{rules}
    rate_limits:
{limits}
  - id: cached
    cache: {{ttl: 3600}}
""")
        node = start([binary, "serve", "--config", config, "--log-level", "error"])
        wait(f"http://127.0.0.1:{node_port}/healthz")
        time.sleep(1)
        idle_rss, _ = rss(node.pid)

        if args.streams_only:
            idle, _ = rss(node.pid)
            direct_streams = stream_load(floor_binary, f"http://127.0.0.1:{mock_port}/v1/chat/completions", args.streams, args.stream_seconds)
            node_streams = stream_load(floor_binary, f"http://127.0.0.1:{node_port}/custom-mock/chat/completions", args.streams,
                                       args.stream_seconds, pid=node.pid)
            print(json.dumps({"direct": direct_streams, "node": node_streams, "node_rss_before_mb": idle,
                              "kib_per_stream": (node_streams["peak_rss_mb"] - idle) * 1024 / args.streams}, indent=1))
            return
        if args.floor_only:
            targets = {"direct (upstream)": f"http://127.0.0.1:{upstream}/v1/chat/completions",
                       "nginx proxy_pass": f"http://127.0.0.1:{proxy}/v1/chat/completions"}
            args.node_only = False
        targets = targets if args.floor_only else {
            "direct (upstream)": f"http://127.0.0.1:{upstream}/v1/chat/completions",
            "nginx proxy_pass": f"http://127.0.0.1:{proxy}/v1/chat/completions",
            "GateMesh node": f"http://127.0.0.1:{node_port}/openai/chat/completions",
            "direct (upstream), HTTPS": f"https://127.0.0.1:{upstream_tls}/v1/chat/completions",
            "nginx proxy_pass https://": f"http://127.0.0.1:{proxy_tls}/v1/chat/completions",
            "GateMesh node, HTTPS upstream": f"http://127.0.0.1:{node_port}/custom-tls/chat/completions",
        }
        if args.node_only:
            targets = {"GateMesh node": targets["GateMesh node"]}
        results = {}
        for name, url in targets.items():
            wrk(url, 4, 2, script)  # warm-up
            pid = node.pid if name.startswith("GateMesh node") else None
            results[name] = {c: wrk(url, c, args.seconds, script, pid=pid) for c in (1, 32)}
        _, peak_rss = rss(node.pid)
        if args.node_only:
            rows = [("GateMesh node", results["GateMesh node"])]
            if args.keys:
                secret = make_keys(f"http://127.0.0.1:{node_port}", args.keys)
                keyed = os.path.join(work, "keyed.lua")
                with open(keyed, "w") as f:
                    f.write('wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
                            f'wrk.headers["authorization"] = "Bearer {secret}"\n' f"wrk.body = '{BODY}'\n")
                url = targets["GateMesh node"]
                wrk(url, 4, 2, keyed)
                rows.append((f"GateMesh node, a virtual key among {args.keys:,}", {c: wrk(url, c, args.seconds, keyed, pid=node.pid) for c in (1, 32)}))
                # The same again without a key, after the keys exist (the directory is in memory either way).
                rows.append(("GateMesh node, no key, after", {c: wrk(url, c, args.seconds, script, pid=node.pid) for c in (1, 32)}))
            print("| target | 1 conn req/s | p50 ms | 32 conns req/s | p50 ms | CPU µs/req at 32 | non-2xx |")
            for name, r in rows:
                print(f"| {name} | {r[1]['rps']:,.0f} | {r[1]['p50']:.3f} | {r[32]['rps']:,.0f} | {r[32]['p50']:.3f} | {r[32]['cpu_us']:.0f} "
                      f"| {r[1]['non2xx'] + r[32]['non2xx']} |")
            return

        # The floor: each one alone on the machine beside the upstream, stopped before the next.
        floors = {}
        for name, mode, extra in () if args.skip_floor else (("floor: SwiftNIO HTTP/1 handler, fixed answer", "nio-hello", []),
                                  ("floor: Hummingbird route, fixed answer", "hummingbird-hello", []),
                                  ("floor: Hummingbird route + GateMeshUpstream, bare proxy", "hummingbird-proxy",
                                   [f"http://127.0.0.1:{upstream}/v1/chat/completions"]),
                                  ("floor: SwiftNIO handlers + GateMeshUpstream, bare proxy", "nio-proxy",
                                   [f"http://127.0.0.1:{upstream}/v1/chat/completions"]),
                                  ("floor: SwiftNIO handlers + GateMeshUpstream delivering on the event loop", "nio-loop-proxy",
                                   [f"http://127.0.0.1:{upstream}/v1/chat/completions"]),
                                  ("floor: SwiftNIO handlers on both sides, bare proxy", "nio-nio-proxy",
                                   [f"http://127.0.0.1:{upstream}/v1/chat/completions"])):
            floor_port = port()
            floor = subprocess.Popen([floor_binary, mode, str(floor_port)] + extra, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
                wait_post(url)
                wrk(url, 4, 2, script)
                floors[name] = {c: wrk(url, c, args.seconds, script, pid=floor.pid) for c in (1, 32)}
            finally:
                floor.terminate()
                floor.wait(10)
        if args.floor_only:
            d, n = results["direct (upstream)"], results["nginx proxy_pass"]
            print("| target | 1 conn req/s | p50 ms | 32 conns req/s | p50 ms | p99 ms | CPU µs/req at 32 | added µs (× nginx's) | % of nginx's req/s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for name, r in list(results.items()) + list(floors.items()):
                cpu = f"{r[32]['cpu_us']:.0f}" if r[32]["cpu_us"] is not None else ""
                added = (r[1]["p50"] - d[1]["p50"]) * 1000
                print(f"| {name} | {r[1]['rps']:,.0f} | {r[1]['p50']:.3f} | {r[32]['rps']:,.0f} | {r[32]['p50']:.3f} | {r[32]['p99']:.3f} | {cpu} "
                      f"| {added:.0f} ({added / ((n[1]['p50'] - d[1]['p50']) * 1000):.1f}×) | {r[32]['rps'] / n[32]['rps'] * 100:.0f} % |")
            return
        cached_url = f"http://127.0.0.1:{node_port}/cached/openai/chat/completions"
        wrk(cached_url, 4, 2, script)
        cached = {c: wrk(cached_url, c, args.seconds, script, pid=node.pid) for c in (1, 32)}
        time.sleep(2)
        after_rss, peak_rss = rss(node.pid)

        # Streamed time to first byte: through the node to the mock, and direct to the mock.
        delay = ["x-mock-latency-ms: 0"]
        direct_ttfb = ttfb(f"http://127.0.0.1:{mock_port}/v1/chat/completions", delay)
        node_ttfb = ttfb(f"http://127.0.0.1:{node_port}/custom-mock/chat/completions", delay)

        # Many streams at once, at 20 tokens a second: straight to the mock, then through the node.
        streams = None
        if args.streams:
            direct_streams = stream_load(floor_binary, f"http://127.0.0.1:{mock_port}/v1/chat/completions", args.streams,
                                         args.stream_seconds)
            time.sleep(2)
            before_rss, _ = rss(node.pid)
            node_streams = stream_load(floor_binary, f"http://127.0.0.1:{node_port}/custom-mock/chat/completions", args.streams,
                                       args.stream_seconds, pid=node.pid)
            streams = (direct_streams, node_streams, before_rss)

        # LiteLLM's proxy, one worker, in front of the same upstream.
        litellm_row = None
        if args.litellm:
            litellm_port = port()
            litellm_conf = os.path.join(work, "litellm.yaml")
            with open(litellm_conf, "w") as f:
                f.write(f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{upstream}/v1", api_key: sk-bench}}
""")
            # No master key, like the GateMesh gateway measured (its newest versions refuse to start without one unless told).
            env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", NO_DOCS="True",
                       LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true")
            litellm = start([args.litellm, "--config", litellm_conf, "--host", "127.0.0.1", "--port", str(litellm_port),
                             "--num_workers", "1"], env=env)
            url = f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
            try:
                wait_post(url, timeout=120)
                wrk(url, 4, 2, script)
                litellm_row = {c: wrk(url, c, args.seconds, script, pid=litellm.pid) for c in (1, 32)}
            except Exception as e:  # noqa: BLE001
                print(f"LiteLLM did not run: {e}", file=sys.stderr)

        cluster_row = None
        if not args.skip_cluster:
            base = free_block(6)
            c = Cluster(nodes=3, base_port=base, peer_base_port=base + 3, binary=binary,
                        run_dir=os.path.join(work, "cluster"), mock_port=port(),
                        extra_yaml="gateways:\n  - id: default\n    budgets:\n" + rules + "\n    rate_limits:\n" + limits + "\n")
            c.start()
            try:
                time.sleep(2)
                url = c.node_url(0) + "/openai/chat/completions"
                wrk(url, 4, 2, script)
                cluster_row = wrk(url, 32, args.seconds, script)
            finally:
                c.stop()
    finally:
        for p in PROCS:
            p.send_signal(signal.SIGTERM)
        for p in PROCS:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    d, n, g = results["direct (upstream)"], results["nginx proxy_pass"], results["GateMesh node"]
    print(f"| target | 1 conn req/s | p50 ms | p99 ms | 32 conns req/s | p50 ms | p99 ms | CPU µs/req at 32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    extra_rows = [("LiteLLM proxy, 1 worker", litellm_row)] if litellm_row else []
    for name, r in list(results.items()) + [("GateMesh node, cache hits", cached)] + extra_rows + list(floors.items()):
        cpu = f"{r[32]['cpu_us']:.0f}" if r[32]["cpu_us"] is not None else ""
        print(f"| {name} | {r[1]['rps']:,.0f} | {r[1]['p50']:.3f} | {r[1]['p99']:.3f} | {r[32]['rps']:,.0f} | {r[32]['p50']:.3f} | "
              f"{r[32]['p99']:.3f} | {cpu} |")
    if cluster_row:
        print(f"| GateMesh, 3-node cluster (node 1 of 3) | | | | {cluster_row['rps']:,.0f} | {cluster_row['p50']:.3f} | {cluster_row['p99']:.3f} | |")
    nginx_added = n[1]["p50"] - d[1]["p50"]
    gm_added = g[1]["p50"] - d[1]["p50"]
    print()
    print(f"- added latency per sequential request (p50 over direct): nginx {nginx_added * 1000:.0f} µs, "
          f"GateMesh {gm_added * 1000:.0f} µs: {gm_added / nginx_added:.1f}× nginx's (issue 20's target: at most 6×)")
    print(f"- throughput at 32 connections: GateMesh {g[32]['rps'] / n[32]['rps'] * 100:.0f} % of nginx's (issue 20's target: at least 35 %); "
          f"nginx {n[32]['rps'] / d[32]['rps'] * 100:.0f} % of direct, GateMesh {g[32]['rps'] / d[32]['rps'] * 100:.0f} % of direct")
    dt, nt, gt = results["direct (upstream), HTTPS"], results["nginx proxy_pass https://"], results["GateMesh node, HTTPS upstream"]
    nginx_tls_added = nt[1]["p50"] - dt[1]["p50"]
    gm_tls_added = gt[1]["p50"] - dt[1]["p50"]
    print(f"- HTTPS upstream: added latency per sequential request nginx {nginx_tls_added * 1000:.0f} µs, GateMesh {gm_tls_added * 1000:.0f} µs "
          f"({gm_tls_added / nginx_tls_added:.1f}× nginx's); throughput at 32 connections GateMesh {gt[32]['rps'] / nt[32]['rps'] * 100:.0f} % "
          f"of nginx's")
    if litellm_row:
        print(f"- LiteLLM (1 worker): adds {(litellm_row[1]['p50'] - d[1]['p50']) * 1000:.0f} µs per sequential request, "
              f"{litellm_row[32]['rps']:,.0f} req/s at 32 connections; GateMesh serves {g[32]['rps'] / litellm_row[32]['rps']:.0f}× its throughput")
    if streams:
        ds, ns, before_rss = streams
        n_open = args.streams
        print(f"- {n_open:,} streams at 20 tokens/s for {args.stream_seconds} s: direct {ds['completed']:,} whole, {ds['failed']} failed; "
              f"through the node {ns['completed']:,} whole, {ns['failed']} failed {ns['errors'] or ''}")
        print(f"  - time to first event p50/p99: direct {ds['first_event_ms']['p50']:.1f} / {ds['first_event_ms']['p99']:.1f} ms, "
              f"through the node {ns['first_event_ms']['p50']:.1f} / {ns['first_event_ms']['p99']:.1f} ms")
        print(f"  - gap between events p50/p99/max: direct {ds['gap_ms']['p50']:.1f} / {ds['gap_ms']['p99']:.1f} / {ds['gap_ms']['max']:.0f} ms, "
              f"through the node {ns['gap_ms']['p50']:.1f} / {ns['gap_ms']['p99']:.1f} / {ns['gap_ms']['max']:.0f} ms "
              f"(added at p99: {ns['gap_ms']['p99'] - ds['gap_ms']['p99']:.1f} ms)")
        print(f"  - the node: {ns['cpu_s'] / ns['wall_s'] * 100:.0f} % of a core for {n_open:,} streams "
              f"({ns['cpu_s'] / ns['wall_s'] / n_open * 1e6:.0f} µs of CPU per stream-second), resident memory {before_rss} MB before, "
              f"{ns['peak_rss_mb']} MB with the streams open: {(ns['peak_rss_mb'] - before_rss) * 1024 / n_open:.1f} KiB per open stream")
    if not floors:
        print(f"- non-2xx answers during the runs: {sum(r[c]['non2xx'] for r in list(results.values()) + [cached] for c in (1, 32))}")
        return
    bare = floors["floor: Hummingbird route + GateMeshUpstream, bare proxy"]
    hello = floors["floor: Hummingbird route, fixed answer"]
    nio = floors["floor: SwiftNIO HTTP/1 handler, fixed answer"]
    print(f"- the floor: a bare Hummingbird + GateMeshUpstream proxy adds {(bare[1]['p50'] - d[1]['p50']) * 1000:.0f} µs "
          f"({(bare[1]['p50'] - d[1]['p50']) / nginx_added:.1f}× nginx's) and serves {bare[32]['rps'] / n[32]['rps'] * 100:.0f} % of nginx's "
          f"throughput; a Hummingbird route answering a fixed body takes {hello[1]['p50'] * 1000:.0f} µs and serves "
          f"{hello[32]['rps']:,.0f} req/s ({hello[32]['rps'] / n[32]['rps'] * 100:.0f} % of nginx proxying); "
          f"SwiftNIO's handlers alone {nio[1]['p50'] * 1000:.0f} µs and {nio[32]['rps']:,.0f} req/s")
    nio_curl = floors["floor: SwiftNIO handlers + GateMeshUpstream, bare proxy"]
    nio_nio = floors["floor: SwiftNIO handlers on both sides, bare proxy"]
    for label, r in (("SwiftNIO handlers with GateMeshUpstream", nio_curl), ("SwiftNIO on both sides", nio_nio)):
        print(f"- {label}: adds {(r[1]['p50'] - d[1]['p50']) * 1000:.0f} µs ({(r[1]['p50'] - d[1]['p50']) / nginx_added:.1f}× nginx's), "
              f"serves {r[32]['rps'] / n[32]['rps'] * 100:.0f} % of nginx's throughput")
    print(f"- the gateway's own work over the bare proxy: {(g[1]['p50'] - bare[1]['p50']) * 1000:.0f} µs per sequential request")
    print(f"- streamed time to first byte (median of 20, mock provider): direct {direct_ttfb:.2f} ms, through the node {node_ttfb:.2f} ms")
    print(f"- node resident memory: idle after start {idle_rss} MB, peak under load {peak_rss} MB, 2 s after load {after_rss} MB "
          f"(target: idle under 100 MB)")
    errors = sum(r[c]["non2xx"] for r in list(results.values()) + [cached] + list(floors.values()) for c in (1, 32))
    print(f"- non-2xx answers during the runs: {errors}")


if __name__ == "__main__":
    main()
