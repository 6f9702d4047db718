"""OpenTelemetry: a span per request over OTLP/HTTP protobuf, decoded with the official opentelemetry-proto package."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import eventually

AUTH = {"authorization": "Bearer admin-secret"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP receiver: keeps every span it is sent, by trace id."""

    def __init__(self):
        self.spans, self.resources, self.headers = [], [], []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                me.headers.append(dict(self.headers))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for rs in request.resource_spans:
                    me.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                    for ss in rs.scope_spans:
                        me.spans += list(ss.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def traced_node(start_node, collector, otlp="", more=""):
    """A node whose spans go to `collector`: `otlp`, more settings of `telemetry.otlp`; `more`, more config."""
    return start_node(extra_yaml=f'telemetry:\n  otlp: {{endpoint: "{collector.url}"{otlp}}}\n' + more)


def chat(node, headers=None, content="hi"):
    """A small chat completion through the node's openai route."""
    return requests.post(node.url + "/openai/v1/chat/completions", timeout=10, headers={"authorization": "Bearer sk-test", **(headers or {})},
                         json={"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": content}]})


def attributes(span):
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = {"string_value": v.string_value, "int_value": v.int_value, "double_value": v.double_value,
                      "bool_value": v.bool_value}[v.WhichOneof("value")]
    return out


def test_a_span_per_request_with_the_genai_attributes_and_the_clients_trace(start_node):
    collector = Collector()
    node = traced_node(start_node, collector, otlp=", headers: {x-collector-token: t0k}, sample_ratio: 0")
    # The client's trace: continued, and sampled as it says (sample_ratio 0 is for traces that start here).
    r = chat(node, {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=1"}, content="one two three four")
    assert r.status_code == 200
    log_id = r.headers["x-gatemesh-log-id"]
    # A request without a traceparent starts a trace, which sample_ratio 0 does not record.
    assert chat(node, content="x").status_code == 200
    # The request's span (SERVER) and its one upstream attempt (CLIENT), its child.
    spans = eventually(lambda: collector.spans, ok=lambda s: len(s) >= 2, timeout=15, what="the spans at the collector")
    assert sorted(s.kind for s in spans) == [2, 3]
    span = next(s for s in spans if s.kind == 2)
    assert next(s for s in spans if s.kind == 3).parent_span_id == span.span_id
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == PARENT and len(span.span_id) == 8
    assert span.trace_state == "vendor=1" and span.kind == 2 and span.name == "chat gpt-4o-mini"
    assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
    a = attributes(span)
    assert a["gen_ai.system"] == "openai" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.response.model"].startswith("gpt-4o-mini")
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    row = requests.get(node.url + f"/api/logs/{log_id}", headers=AUTH, timeout=5).json()
    assert a["gatemesh.log_id"] == log_id and a["gatemesh.cost_nanos"] == row["cost_nanos"] and a["gatemesh.cost_usd"] > 0
    assert a["gatemesh.gateway"] == "default" and a["gatemesh.attempts"] == 1 and a["http.response.status_code"] == 200
    assert collector.resources[0] == {"service.name": "gatemesh", "service.instance.id": "test-node"}
    assert collector.headers[0]["x-collector-token"] == "t0k" and collector.headers[0]["content-type"] == "application/x-protobuf"

    # The provider is sent the trace with the gateway's span as the parent.
    echoed = requests.post(node.url + "/custom-echo/echo-me", timeout=10,
                           headers={"authorization": "Bearer sk-test", "traceparent": f"00-{TRACE}-{PARENT}-01"}, json={}).json()
    sent = dict(echoed["headers"])["traceparent"]
    assert sent.startswith(f"00-{TRACE}-") and sent.endswith("-01") and PARENT not in sent
    span = eventually(lambda: [s for s in collector.spans if s.kind == 2 and attributes(s).get("gatemesh.provider") == "custom-echo"], ok=bool,
                      timeout=15, what="the echo's span")[0]
    assert sent == f"00-{TRACE}-{span.span_id.hex()}-01"
    metrics = requests.get(node.url + "/metrics", headers=AUTH, timeout=5).text
    assert "gatemesh_trace_spans_exported 2" in metrics.replace(".0", "")  # requests: each with its attempt


def test_each_upstream_attempt_is_a_child_span(start_node):
    import uuid
    collector = Collector()
    node = traced_node(start_node, collector, more="""gateways:
  - id: default
    retries: {max_attempts: 3, delay_ms: 10, backoff: constant}
""")
    r = chat(node, {"x-mock-fail-first": "2", "x-mock-fail-key": uuid.uuid4().hex})
    assert r.status_code == 200 and r.headers["x-gatemesh-attempts"] == "3"
    spans = eventually(lambda: collector.spans, ok=lambda s: len(s) == 4, timeout=15, what="the request's span and three attempts")
    request = next(s for s in spans if s.kind == 2)
    attempts = sorted((s for s in spans if s.kind == 3), key=lambda s: s.start_time_unix_nano)
    assert [attributes(s)["gatemesh.attempt"] for s in attempts] == [1, 2, 3]
    assert all(s.trace_id == request.trace_id and s.parent_span_id == request.span_id for s in attempts)
    assert len({s.span_id for s in spans}) == 4
    assert [attributes(s)["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert [s.status.code for s in attempts] == [2, 2, 0]
    assert request.start_time_unix_nano <= attempts[0].start_time_unix_nano <= attempts[2].end_time_unix_nano <= request.end_time_unix_nano
    assert attributes(request)["gatemesh.attempts"] == 3


def test_a_refusal_by_a_rule_is_on_the_span(start_node):
    collector = Collector()
    node = traced_node(start_node, collector, more="""gateways:
  - id: default
    rate_limits: [{id: one-a-minute, requests: 1, window: {sliding: 1m}}]
""")
    codes = [chat(node).status_code for _ in range(2)]
    assert codes == [200, 429]
    spans = eventually(lambda: [s for s in collector.spans if s.kind == 2], ok=lambda s: len(s) == 2, timeout=15, what="two request spans")
    refused = next(s for s in spans if attributes(s)["http.response.status_code"] == 429)
    a = attributes(refused)
    assert a["gatemesh.rule_decision"] == "refused" and a["gatemesh.rule"] == "one-a-minute"
    served = next(s for s in spans if attributes(s)["http.response.status_code"] == 200)
    assert "gatemesh.rule_decision" not in attributes(served)


def test_a_fallback_is_one_trace_without_a_client_traceparent(start_node):
    collector = Collector()
    node = traced_node(start_node, collector)
    query = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "which step?"}]}
    steps = [{"provider": "openai", "endpoint": "chat/completions", "query": query,
              "headers": {"authorization": "Bearer sk-test", "x-mock-status": "503"}},
             {"provider": "openai", "endpoint": "chat/completions", "query": query, "headers": {"authorization": "Bearer sk-test"}}]
    r = requests.post(node.url + "/default", json=steps, timeout=10)
    assert r.status_code == 200 and r.headers["x-gatemesh-step"] == "1"
    # The request's span (SERVER, a root), its two steps (INTERNAL, its children), each step's attempt (CLIENT).
    spans = eventually(lambda: collector.spans, ok=lambda s: len(s) == 5, timeout=15, what="the chain, two steps and two attempts")
    assert len({s.trace_id for s in spans}) == 1
    root = next(s for s in spans if s.kind == 2)
    assert root.parent_span_id == b"" and root.name == "universal"
    a = attributes(root)
    assert a["gatemesh.steps_tried"] == 2 and a["gatemesh.step"] == 1 and a["http.response.status_code"] == 200
    steps_spans = sorted((s for s in spans if s.kind == 1), key=lambda s: attributes(s)["gatemesh.step"])
    assert [attributes(s)["http.response.status_code"] for s in steps_spans] == [503, 200]
    assert all(s.parent_span_id == root.span_id for s in steps_spans)
    attempts = [s for s in spans if s.kind == 3]
    assert sorted(s.parent_span_id for s in attempts) == sorted(s.span_id for s in steps_spans)
    assert root.start_time_unix_nano <= steps_spans[0].start_time_unix_nano
