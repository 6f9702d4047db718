"""The request log exported to an HTTP sink as gzip NDJSON: at least once, through a sink outage and a node restart."""
import gzip
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import BIN, eventually, free_port, wait_http

AUTH = {"authorization": "Bearer admin-secret"}


class Sink:
    """An HTTP sink that keeps every row it is sent; `down` makes it answer 503."""

    def __init__(self):
        self.rows, self.batches, self.down, self.bad = [], [], False, []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if sink.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                try:
                    assert self.headers["content-encoding"] == "gzip" and self.headers["content-type"] == "application/x-ndjson"
                    assert self.headers["authorization"] == "Bearer sink-secret"
                    lines = gzip.decompress(body).decode().splitlines()
                    rows = [json.loads(line) for line in lines]
                    assert len(rows) == int(self.headers["x-gatemesh-rows"])
                except Exception as e:  # noqa: BLE001
                    sink.bad.append(repr(e))
                    self.send_response(400)
                    self.end_headers()
                    return
                sink.rows += rows
                sink.batches.append(len(rows))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self):
        return {r["log_id"] for r in self.rows}


def chat(url, text):
    r = requests.post(url + "/openai/v1/chat/completions", timeout=10, headers={"authorization": "Bearer sk-test"},
                      json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text


def logged_ids(url):
    return {r["log_id"] for r in requests.get(url + "/api/logs", headers=AUTH, params={"limit": 1000}, timeout=5).json()["data"]}


def metric(url, name):
    text = requests.get(url + "/metrics", headers=AUTH, timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_the_log_reaches_the_sink_through_an_outage_and_a_restart(start_node):
    sink = Sink()
    node = start_node(extra_yaml=f"""logging:
  export: {{url: "{sink.url}", headers: {{authorization: "Bearer sink-secret"}}, batch_rows: 5, interval: 200ms}}
gateways:
  - id: default
    collect_log_payload: true
""")
    for i in range(12):
        chat(node.url, f"hello {i} sk-proj-AbCdEfGhIjKlMnOpQrStUv")
    eventually(lambda: logged_ids(node.url) <= sink.ids() and len(sink.ids()) == 12, timeout=20, what="12 rows at the sink")
    assert sink.bad == [] and max(sink.batches) <= 5
    row = sink.rows[0]
    assert row["node"] == "test-node" and row["request_body"].startswith('{"model"')
    assert "[REDACTED:api_key]" in row["request_body"] and "AbCdEf" not in json.dumps(sink.rows)

    # The sink is down for 30 s, and the node crashes (SIGKILL) in the middle of it: rows wait in
    # the database, failures are counted, and nothing is lost once the sink is back.
    sink.down = True
    outage = time.monotonic()
    for i in range(8):
        chat(node.url, f"during the outage {i}")
    eventually(lambda: metric(node.url, "gatemesh_log_export_failures"), ok=lambda n: n and n >= 2, timeout=20, what="failed sends")
    assert metric(node.url, "gatemesh_log_export_lag_rows") >= 1
    eventually(lambda: len(logged_ids(node.url)), ok=lambda n: n == 20, timeout=20, what="20 rows in the node's log")
    node.proc.kill()
    node.proc.wait()
    restart(node)
    try:
        for i in range(5):
            chat(node.url, f"after the crash {i}")
        eventually(lambda: metric(node.url, "gatemesh_log_export_failures"), ok=lambda n: n and n >= 1, timeout=20,
                   what="failed sends after the crash")
        time.sleep(max(0.0, 30 - (time.monotonic() - outage)))  # the outage itself, not a wait for the node
        assert len(sink.ids()) == 12
        sink.down = False
        # Backoff after 30 s of failures is at most ~19 s: the rows arrive within a minute.
        eventually(lambda: logged_ids(node.url) <= sink.ids() and len(sink.ids()) == 25, timeout=60,
                   what="25 rows at the sink after the outage")
        assert len(sink.rows) == 25, "nothing was acknowledged during the outage, so nothing is sent twice"

        # A graceful restart resumes after the last acknowledged batch: new rows arrive, old ones are not sent again.
        assert node.stop() == 0
        restart(node)
        for i in range(5):
            chat(node.url, f"after the restart {i}")
        eventually(lambda: logged_ids(node.url) <= sink.ids() and len(sink.ids()) == 30, timeout=20, what="30 rows at the sink")
        assert len(sink.rows) - 25 <= 5 + 5, "at most one batch sent again"
        assert sink.bad == []
    finally:
        node.stop()


def restart(node):
    config = os.path.join(node.data_dir, "gatemesh.yaml")
    node.proc = subprocess.Popen([BIN, "serve", "--config", config, "--log-level", "warning"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    wait_http(node.url + "/healthz", proc=node.proc)


