"""The unified API: the official OpenAI SDK against /v1 backed by Anthropic's format, the official
Anthropic SDK against /v1/messages backed by the OpenAI format, and a route that falls from a
failing Anthropic target to an OpenAI one."""
import json

import anthropic
import openai
import pytest
import requests

from conftest import eventually


def oai(node, **kw):
    return openai.OpenAI(base_url=node.url + "/v1", api_key="sk-ant-test", max_retries=0, **kw)


def claude(node, **kw):
    return anthropic.Anthropic(base_url=node.url, api_key="sk-test", max_retries=0, **kw)


def test_openai_sdk_to_anthropic_whole_and_streamed(node):
    raw = oai(node).chat.completions.with_raw_response.create(
        model="anthropic/claude-sonnet-4-5", max_tokens=16,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello to the gateway"}])
    assert raw.headers["x-gatemesh-provider"] == "anthropic" and raw.headers["x-gatemesh-model"] == "claude-sonnet-4-5"
    r = raw.parse()
    assert r.object == "chat.completion" and r.choices[0].message.content.startswith("The gateway answered")
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0

    stream = oai(node).chat.completions.create(
        model="anthropic/claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-mock-output-tokens": "5"})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "The gateway answered this request"
    assert finish == "stop" and usage.completion_tokens == 5


def test_anthropic_sdk_to_openai_whole_and_streamed(node):
    m = claude(node).messages.create(model="openai/gpt-4o-mini", max_tokens=16, system="be brief",
                                     messages=[{"role": "user", "content": "say hello to the gateway"}])
    assert m.type == "message" and m.content[0].text.startswith("The gateway answered")
    assert m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens > 0
    with claude(node).messages.stream(model="openai/gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "hi"}],
                                      extra_headers={"x-mock-output-tokens": "5"}) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "The gateway answered this request"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5


def test_errors_are_mapped_with_their_status(node):
    with pytest.raises(openai.RateLimitError) as e:
        oai(node).chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}],
                                          extra_headers={"x-mock-status": "429"})
    assert e.value.status_code == 429
    with pytest.raises(anthropic.AuthenticationError):
        claude(node).messages.create(model="openai/gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                                     extra_headers={"x-mock-status": "401"})
    # Bad requests name what was wrong.
    r = requests.post(node.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert r.status_code == 400 and "provider/model" in r.json()["error"]["message"]
    r = requests.post(node.url + "/v1/chat/completions", json={"model": "anthropic/claude-sonnet-4-5", "logit_bias": {"1": 1},
                                                               "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "logit_bias" in r.json()["error"]["message"] and "anthropic" in r.json()["error"]["message"]
    r = requests.post(node.url + "/v1/chat/completions", data=b"{not json")
    assert r.status_code == 400
    r = requests.post(node.url + "/v1/messages", json={"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["type"] == "error" and "nope" in r.json()["error"]["message"]


def test_a_route_falls_from_a_failing_anthropic_target_to_openai(start_node, mock):
    node = start_node(extra_yaml="""gateways:
  - id: default
    routes:
      - name: smart
        strategy: fallback
        targets:
          - {provider: anthropic, model: claude-sonnet-4-5}
          - {provider: openai, model: gpt-4o-mini}
""")
    raw = oai(node).chat.completions.with_raw_response.create(
        model="smart", max_tokens=16, messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-mock-fail-first": "1", "x-mock-status": "529", "x-mock-fail-key": "route-test"})
    # The first target (Anthropic) failed with 529; the OpenAI target served.
    assert raw.headers["x-gatemesh-route"] == "smart" and raw.headers["x-gatemesh-step"] == "1"
    assert raw.headers["x-gatemesh-provider"] == "openai" and raw.headers["x-gatemesh-model"] == "gpt-4o-mini"
    assert raw.parse().choices[0].message.content.startswith("The gateway answered")
    # The log is written in batches: wait for both attempts' rows.
    rows = eventually(lambda: requests.get(node.url + "/api/logs?limit=5",
                                           headers={"authorization": "Bearer " + node.admin_token}).json()["data"],
                      lambda rows: {r["provider"] for r in rows} >= {"anthropic", "openai"}, what="both attempts' log rows")
    # One row per attempt: the Anthropic failure and the OpenAI answer, which carries the cost.
    by_provider = {r["provider"]: r for r in rows}
    assert by_provider["anthropic"]["status"] == 529 and by_provider["openai"]["status"] == 200
    assert by_provider["openai"]["cost_nanos"] > 0, rows


def test_streams_through_requests_the_gateway_builds_do_not_crash_the_node(node):
    """A universal step's body is built by the gateway: watching it for the client leaving crashed
    the node when the answer was a stream."""
    steps = [{"provider": "openai", "endpoint": "chat/completions", "headers": {"authorization": "Bearer sk-test"},
              "query": {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}}]
    r = requests.post(node.url + "/default", json=steps, headers={"x-mock-output-tokens": "3"}, stream=True, timeout=10)
    assert r.status_code == 200 and b"[DONE]" in r.content
    assert requests.get(node.url + "/healthz").status_code == 200


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                                                           "days": {"type": "integer"}},
                                                           "required": ["city"]}}}


def collect_tool_calls(stream):
    """Tool calls rebuilt from streamed chunks, by index, as the OpenAI SDK's users do."""
    calls, finish, usage = {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for tc in chunk.choices[0].delta.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            c["id"] = tc.id or c["id"]
            c["name"] += (tc.function.name or "") if tc.function else ""
            c["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return calls, finish, usage


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-5", "google-ai-studio/gemini-2.5-flash", "openai/gpt-4o-mini"])
def test_openai_sdk_parallel_tool_calls_whole_and_streamed(node, model):
    headers = {"x-mock-tool-calls": "3"}
    msgs = [{"role": "user", "content": "weather in three cities?"}]
    r = oai(node).chat.completions.create(model=model, messages=msgs, tools=[WEATHER], max_tokens=64, extra_headers=headers)
    whole = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and len(whole) == 3
    assert all(c.function.name == "get_weather" and json.loads(c.function.arguments)["city"] for c in whole)

    stream = oai(node).chat.completions.create(model=model, messages=msgs, tools=[WEATHER], max_tokens=64, stream=True,
                                               stream_options={"include_usage": True}, extra_headers=headers)
    calls, finish, usage = collect_tool_calls(stream)
    assert finish == "tool_calls" and sorted(calls) == [0, 1, 2]
    assert all(c["id"] and c["name"] == "get_weather" for c in calls.values())
    assert [json.loads(calls[i]["arguments"]) for i in range(3)] == [json.loads(c.function.arguments) for c in whole]
    assert usage.completion_tokens > 0

    # The tool results go back, and the model answers in text.
    history = msgs + [{"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in whole]}] + [
        {"role": "tool", "tool_call_id": c.id, "content": '{"temp": 18}'} for c in whole]
    r = oai(node).chat.completions.create(model=model, messages=history, tools=[WEATHER], max_tokens=16)
    assert r.choices[0].message.content.startswith("The gateway answered") and not r.choices[0].message.tool_calls


def test_openai_sdk_to_google_text_json_mode_and_image(node):
    raw = oai(node).chat.completions.with_raw_response.create(
        model="google-ai-studio/gemini-2.5-flash", max_tokens=16, response_format={"type": "json_object"},
        messages=[{"role": "system", "content": "answer in JSON"},
                  {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert raw.headers["x-gatemesh-provider"] == "google-ai-studio"
    r = raw.parse()
    assert r.choices[0].message.content.startswith("The gateway answered") and r.usage.prompt_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in oai(node).chat.completions.create(
        model="google-ai-studio/gemini-2.5-flash", max_tokens=16, stream=True, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-mock-output-tokens": "5"}) if c.choices)
    assert text == "The gateway answered this request"
    # An image by URL cannot go to Google: a clear 400 naming it.
    with pytest.raises(openai.BadRequestError) as e:
        oai(node).chat.completions.create(model="google-ai-studio/gemini-2.5-flash", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "google-ai-studio" in str(e.value) and "image_url" in str(e.value)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "google-ai-studio/gemini-2.5-flash"])
def test_anthropic_sdk_tool_use_streamed_through_other_formats(node, model):
    tool = {"name": "get_weather", "description": "Weather now",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    with claude(node).messages.stream(model=model, max_tokens=64, tools=[tool], messages=[{"role": "user", "content": "weather?"}],
                                      extra_headers={"x-mock-tool-calls": "2"}) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and len(uses) == 2
    assert all(u.name == "get_weather" and u.input["city"] for u in uses)
    m = claude(node).messages.create(model=model, max_tokens=64, tools=[tool], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": u.id, "name": u.name, "input": u.input} for u in uses]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18C"} for u in uses]}])
    assert m.content[0].type == "text" and m.stop_reason in ("end_turn", "max_tokens")


def test_embeddings_for_openai_format_and_google_and_the_models_list(start_node):
    node = start_node(extra_yaml="""gateways:
  - id: default
    routes:
      - name: smart
        targets: [{provider: anthropic, model: claude-sonnet-4-5}, {provider: openai, model: gpt-4o-mini}]
""")
    # The SDK asks for base64 by default and decodes it: both providers must give it.
    for model in ("openai/text-embedding-3-small", "google-ai-studio/gemini-embedding-001"):
        r = oai(node).embeddings.create(model=model, input=["one", "two", "three"], dimensions=16)
        assert [d.index for d in r.data] == [0, 1, 2] and all(len(d.embedding) == 16 for d in r.data), model
        floats = requests.post(node.url + "/v1/embeddings", json={"model": model, "input": "one", "dimensions": 16,
                                                                   "encoding_format": "float"}).json()
        assert len(floats["data"][0]["embedding"]) == 16
        assert abs(floats["data"][0]["embedding"][0] - r.data[0].embedding[0]) < 1e-5, "the same vector either way"
    r = requests.post(node.url + "/v1/embeddings", json={"model": "google-ai-studio/gemini-embedding-001", "input": [[1, 2, 3]]})
    assert r.status_code == 400 and "token arrays" in r.json()["error"]["message"]

    models = {m.id: m.owned_by for m in oai(node).models.list()}
    assert models["smart"] == "gatemesh-route"
    assert models["openai/gpt-4o-mini"] == "openai" and models["google-ai-studio/gemini-2.5-flash"] == "google-ai-studio"
    assert any(m.startswith("anthropic/claude") for m in models)


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4-5", "google-ai-studio/gemini-2.5-flash"])
def test_json_mode_with_a_schema(node, model):
    schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}
    r = oai(node).chat.completions.create(model=model, max_tokens=64, response_format=schema,
                                          messages=[{"role": "user", "content": "a person, as JSON"}])
    assert r.choices[0].finish_reason == "stop" and not r.choices[0].message.tool_calls
    content = r.choices[0].message.content
    if model.startswith("anthropic"):
        # Anthropic answers through the forced JSON tool: the content is that tool's input.
        assert json.loads(content) == {"name": "mock-name-0"}
        streamed = "".join(c.choices[0].delta.content or "" for c in oai(node).chat.completions.create(
            model=model, max_tokens=64, response_format=schema, stream=True,
            messages=[{"role": "user", "content": "a person, as JSON"}]) if c.choices)
        assert json.loads(streamed) == {"name": "mock-name-0"}
    else:
        assert content  # the mock does not shape text by responseMimeType; the request mapping is in the golden tests


def test_a_named_gateway_with_its_cache_and_token(start_node, mock):
    node = start_node(extra_yaml="""gateways:
  - id: default
  - id: team-a
    auth_tokens: ["team-secret"]
    cache: {ttl: 600}
""")
    client = openai.OpenAI(base_url=node.url + "/team-a/v1", api_key="sk-ant-test", max_retries=0,
                           default_headers={"x-gatemesh-authorization": "Bearer team-secret"})
    before = mock.stats()["requests"]
    answers = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="anthropic/claude-sonnet-4-5", max_tokens=16,
                                                               messages=[{"role": "user", "content": "cache me"}])
        answers.append((raw.headers["x-gatemesh-cache-status"], raw.parse().choices[0].message.content))
    assert [a[0] for a in answers] == ["MISS", "HIT"] and answers[0][1] == answers[1][1]
    assert mock.stats()["requests"] - before == 1
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=node.url + "/team-a/v1", api_key="x", max_retries=0).chat.completions.create(
            model="anthropic/claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
