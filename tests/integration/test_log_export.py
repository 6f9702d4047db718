"""The request log exported to an HTTP sink as gzip NDJSON: at least once, through a sink outage and a node restart."""
import gzip
import json
import os
import subprocess
import threading
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

    # The sink is down: rows wait, failures are counted, nothing is lost when it is back.
    sink.down = True
    for i in range(8):
        chat(node.url, f"during the outage {i}")
    eventually(lambda: metric(node.url, "gatemesh_log_export_failures"), ok=lambda n: n and n >= 2, timeout=20, what="failed sends")
    assert metric(node.url, "gatemesh_log_export_lag_rows") >= 1
    sink.down = False
    eventually(lambda: len(sink.ids()) == 20, timeout=30, what="20 rows at the sink after the outage")

    # A restart resumes after the last acknowledged batch: new rows arrive, old ones are not sent again.
    assert node.stop() == 0
    sent_before = len(sink.rows)
    config = os.path.join(node.data_dir, "gatemesh.yaml")
    proc = subprocess.Popen([BIN, "serve", "--config", config, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node.proc = proc
    try:
        wait_http(node.url + "/healthz", proc=proc)
        for i in range(5):
            chat(node.url, f"after the restart {i}")
        eventually(lambda: logged_ids(node.url) <= sink.ids() and len(sink.ids()) == 25, timeout=20, what="25 rows at the sink")
        assert len(sink.rows) - sent_before <= 5 + 5, "at most one batch sent again"
        assert sink.bad == []
    finally:
        node.stop()
