"""Bounded storage: storage.max_bytes keeps the database under its cap, and a node whose disk is full serves on and says so."""
import os
import resource

import requests

from conftest import eventually

AUTH = {"authorization": "Bearer admin-secret"}

CAPPED = """
storage: {max_bytes: 4MiB}
cache: {disk: 1MiB, max_entry: 200KiB}
gateways:
  - id: default
    collect_log_payload: true
"""


def on_disk(node):
    path = os.path.join(node.data_dir, "gatemesh.sqlite")
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def chat(node, text):
    return requests.post(node.url + "/openai/v1/chat/completions", timeout=10, headers={"authorization": "Bearer sk-test"},
                         json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": text}]})


def storage(node):
    return requests.get(node.url + "/cluster/status", headers=AUTH, timeout=5).json()["storage"]


def test_the_database_stays_under_max_bytes_under_a_write_load_that_would_exceed_it(start_node):
    node = start_node(extra_yaml=CAPPED)
    largest = 0
    # 300 requests with 40 KB bodies: 12 MB of request bodies alone, three times the cap.
    for i in range(300):
        assert chat(node, f"{i} " + "x" * 40_000).status_code == 200
        largest = max(largest, on_disk(node))
    s = eventually(lambda: storage(node), ok=lambda s: s["rows_deleted_for_space"] > 0, what="old rows deleted for space")
    largest = max(largest, on_disk(node))
    assert largest <= 4 << 20, largest
    assert s["max_bytes"] == 4 << 20 and s["file_bytes"] + s["wal_bytes"] <= 4 << 20
    assert s["rows_failed_to_write"] == 0 and s["write_error"] is None
    # The newest rows are kept, with their bodies (once the last batch is written).
    def newest():
        rows = requests.get(node.url + "/api/logs", headers=AUTH, params={"limit": 1}, timeout=5).json()["data"]
        return requests.get(node.url + f"/api/logs/{rows[0]['log_id']}", headers=AUTH, timeout=5).json()
    row = eventually(newest, ok=lambda r: '"299 x' in (r["request_body"] or ""), what="the last request's row")
    assert row["path"] == "/v1/chat/completions"
    assert on_disk(node) <= 4 << 20
    metrics = requests.get(node.url + "/metrics", headers=AUTH, timeout=5).text
    assert f"gatemesh_storage_max_bytes {4 << 20}" in metrics
    assert "gatemesh_storage_file_bytes " in metrics and "gatemesh_log_rows_deleted_for_space " in metrics


def test_a_node_whose_disk_is_full_keeps_serving_and_says_so(start_node):
    node = start_node(extra_yaml="gateways:\n  - id: default\n    collect_log_payload: true\n")
    assert chat(node, "before").status_code == 200
    eventually(lambda: requests.get(node.url + "/api/logs", headers=AUTH, timeout=5).json()["data"], ok=lambda d: len(d) == 1,
               what="the first row written")
    # The file system refuses to grow the node's files past their size now (as a full disk would).
    frozen = max(os.path.getsize(os.path.join(node.data_dir, f)) for f in ("gatemesh.sqlite", "gatemesh.sqlite-wal")
                 if os.path.exists(os.path.join(node.data_dir, f)))
    resource.prlimit(node.proc.pid, resource.RLIMIT_FSIZE, (frozen, frozen))
    for i in range(40):
        assert chat(node, f"{i} " + "y" * 20_000).status_code == 200
    s = eventually(lambda: storage(node), ok=lambda s: s["rows_failed_to_write"] > 0, what="rows lost to the full disk, counted")
    assert "error" in (s["write_error"] or ""), s  # SQLite's, e.g. "disk I/O error" or "database or disk is full"
    assert node.proc.poll() is None
    # It still answers, health and all.
    assert chat(node, "after").status_code == 200
    assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
    metrics = requests.get(node.url + "/metrics", headers=AUTH, timeout=5).text
    assert "gatemesh_log_rows_failed_writes " in metrics and "gatemesh_log_rows_failed_writes 0" not in metrics


def test_payloads_are_redacted_before_they_are_stored(start_node):
    node = start_node(extra_yaml="""logging:
  redact: [api_keys, emails, card_numbers, {pattern: "acct-[0-9]{6}", replace: "[ACCOUNT]"}]
gateways:
  - id: default
    collect_log_payload: true
""")
    secret = "my key is sk-proj-AbCdEfGhIjKlMnOpQrStUv, mail jane@example.com, card 4111 1111 1111 1111, acct-123456"
    assert chat(node, secret).status_code == 200
    rows = eventually(lambda: requests.get(node.url + "/api/logs", headers=AUTH, timeout=5).json()["data"], ok=lambda d: len(d) == 1,
                      what="the row written")
    row = requests.get(node.url + f"/api/logs/{rows[0]['log_id']}", headers=AUTH, timeout=5).json()
    stored = row["request_body"]
    assert "[REDACTED:api_key]" in stored and "[REDACTED:email]" in stored and "[REDACTED:card_number]" in stored and "[ACCOUNT]" in stored
    for leaked in ("AbCdEfGhIj", "jane@example.com", "4111 1111", "acct-123456"):
        assert leaked not in stored and leaked not in (row["response_body"] or "")
    # The database file itself holds none of it.
    with open(os.path.join(node.data_dir, "gatemesh.sqlite"), "rb") as f:
        data = f.read()
    wal = os.path.join(node.data_dir, "gatemesh.sqlite-wal")
    if os.path.exists(wal):
        with open(wal, "rb") as f:
            data += f.read()
    assert b"jane@example.com" not in data and b"AbCdEfGhIjKlMnOp" not in data
