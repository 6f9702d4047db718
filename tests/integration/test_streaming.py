"""Streaming is incremental, and a client that goes away ends the upstream transfer."""
import http.client
import json
import socket
import time

from conftest import wait_http  # noqa: F401

CHAT = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})


def test_first_event_arrives_while_the_provider_still_waits(node, mock):
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    started = time.time()
    conn.request("POST", "/openai/chat/completions", body=CHAT, headers={
        "content-type": "application/json", "authorization": "Bearer sk",
        "x-mock-output-tokens": "2", "x-mock-token-delay-ms": "1000"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("content-type").startswith("text/event-stream")
    first = resp.readline()  # the first event's data line
    first_at = time.time() - started
    assert first.startswith(b"data: ") and b'"role":"assistant"' in first
    assert first_at < 0.8, f"first event took {first_at:.2f}s: it was buffered behind the next token"
    rest = resp.read()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert time.time() - started >= 3.0
    conn.close()


def test_client_disconnect_mid_stream_cancels_the_upstream_transfer(node, mock):
    before = mock.stats()
    sock = socket.create_connection(("127.0.0.1", node.port))
    request = (
        "POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        "authorization: Bearer sk\r\nx-mock-output-tokens: 1000\r\nx-mock-token-delay-ms: 2000\r\n"
        f"content-length: {len(CHAT)}\r\n\r\n{CHAT}")
    sock.sendall(request.encode())
    got = b""
    while b"data: " not in got:
        got += sock.recv(4096)
    closed_at = time.time()
    sock.close()
    # The mock is sleeping 2 s before its next token and watches its connection: it sees the
    # gateway's upstream connection close long before that token if the gateway cancelled at once.
    deadline = time.time() + 5
    while time.time() < deadline:
        s = mock.stats()
        if s["streams_aborted"] > before["streams_aborted"]:
            break
        time.sleep(0.05)
    s = mock.stats()
    assert s["streams_aborted"] == before["streams_aborted"] + 1
    assert s["streams_completed"] == before["streams_completed"]
    assert time.time() - closed_at < 1.0


def test_dropped_upstream_stream_ends_the_client_stream(node, mock):
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.request("POST", "/openai/chat/completions", body=CHAT, headers={
        "content-type": "application/json", "x-mock-output-tokens": "10", "x-mock-drop-after": "3"})
    resp = conn.getresponse()
    assert resp.status == 200
    try:
        body = resp.read()
        assert b"[DONE]" not in body
    except http.client.IncompleteRead as e:
        assert b"[DONE]" not in e.partial
    conn.close()


def test_google_streaming_both_framings(node):
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hello"}]}],
                       "generationConfig": {"maxOutputTokens": 3}})
    for query, marker in (("?alt=sse", b"data: {"), ("", b"[{")):
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        conn.request("POST", "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent" + query,
                     body=body, headers={"content-type": "application/json", "x-goog-api-key": "k"})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200
        assert data.startswith(marker)
        assert b'"candidatesTokenCount":3' in data and b'"finishReason":"MAX_TOKENS"' in data
        conn.close()


def test_a_streamed_answer_says_the_connection_closes_after_it(node):
    """The node watches a streaming client's connection for it leaving, which ends the connection
    with the answer: the answer says `Connection: close`, so a client that keeps connections alive
    opens a new one instead of sending its next request into one being closed (issue 22)."""
    import http.client
    import json as _json
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    body = _json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/openai/chat/completions", body=body, headers={"content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("connection") == "close"
    r.read()
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    conn.request("POST", "/openai/chat/completions", body=body.replace('"stream": true', '"stream": false'),
                 headers={"content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("connection") != "close", "a plain answer keeps the connection"
    r.read()
    # The same connection serves the next request.
    conn.request("POST", "/openai/chat/completions", body=body.replace('"stream": true', '"stream": false'),
                 headers={"content-type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()


VOCABULARY = ["The", "gateway", "answered", "this", "request", "with", "a", "deterministic", "reply", "so",
              "tests", "can", "check", "every", "token", "count"]


def mock_text(n):
    """What the mock provider streams for `n` output tokens (MockText.output)."""
    return " ".join(VOCABULARY[i % len(VOCABULARY)] for i in range(n))


def test_200_concurrent_streams_each_get_every_byte_in_order_and_slow_readers_do_not_stall_fast_ones(node):
    """160 clients read as fast as they can, 40 read 4 KiB every 100 ms through a 16 KiB receive buffer (so
    that the node's writes to them wait); every stream arrives whole, and the fast ones are all over before
    the first slow one."""
    import threading
    fast, slow = 160, 40
    results, errors = {}, []

    def one(i, slow_reader):
        tokens = 1000 + i if slow_reader else 300 + i
        try:
            conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=120)
            if slow_reader:
                conn.sock = socket.socket()
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
                conn.sock.settimeout(120)
                conn.sock.connect(("127.0.0.1", node.port))
            conn.request("POST", "/openai/chat/completions", body=CHAT, headers={
                "content-type": "application/json", "authorization": "Bearer sk", "x-mock-output-tokens": str(tokens)})
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            raw = b""
            while True:
                piece = resp.read1(4096) if slow_reader else resp.read1(65536)
                if not piece:
                    break
                raw += piece
                if slow_reader:
                    time.sleep(0.1)
            conn.close()
            text, done = "", False
            for event in raw.decode().split("\n\n"):
                if not event:
                    continue
                assert event.startswith("data: "), event[:80]
                data = event[len("data: "):]
                if data == "[DONE]":
                    done = True
                    continue
                assert not done, "an event after [DONE]"
                for choice in json.loads(data).get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
            assert done, "no [DONE]"
            assert text == mock_text(tokens), f"stream {i}: {len(text)} characters, not the {len(mock_text(tokens))} sent"
            results[i] = (slow_reader, time.monotonic(), len(raw))
        except Exception as e:  # noqa: BLE001
            errors.append(f"stream {i}: {e!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i, i % 5 == 0)) for i in range(fast + slow)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    assert len(results) == fast + slow
    fast_done = max(at for s, at, _ in results.values() if not s)
    slow_done = min(at for s, at, _ in results.values() if s)
    slow_bytes = min(n for s, _, n in results.values() if s)
    # A slow stream needs at least its size / (4 KiB per 100 ms); the fast ones are all over before the first slow one.
    assert slow_done - started >= slow_bytes / 4096 * 0.1 * 0.9
    assert fast_done < slow_done, f"the fast readers finished {fast_done - started:.1f} s in, the first slow one {slow_done - started:.1f} s"
