"""Tool calls from the mock provider, in the OpenAI, Anthropic and Google wire formats, whole and
streamed, read with the official SDKs (OpenAI, Anthropic) and plain HTTP (Google), straight from the
mock (no gateway in between). See docs/mock-provider.md, "Tool calls"."""
import json
import re
import time

import anthropic
import openai
import pytest
import requests

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "threshold": {"type": "number"},
        "alerts": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
    },
    "required": ["city"],
}


def expected_weather(i):
    """The arguments the mock builds for WEATHER_PARAMS in call i, in the schema's order."""
    return {"city": f"mock-city-{i}", "days": i + 1, "unit": "celsius", "threshold": 1.5,
            "alerts": True, "tags": [], "extra": {}}


TIME_PARAMS = {"type": "object", "properties": {"zone": {"type": "string"}}}

OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_PARAMS}},
    {"type": "function", "function": {"name": "get_time", "description": "Time in a zone", "parameters": TIME_PARAMS}},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_PARAMS},
    {"name": "get_time", "description": "Time in a zone", "input_schema": TIME_PARAMS},
]
GOOGLE_TOOLS = [{"functionDeclarations": [
    {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_PARAMS},
    {"name": "get_time", "description": "Time in a zone", "parameters": TIME_PARAMS},
]}]

USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def expected(name, i):
    return expected_weather(i) if name == "get_weather" else {"zone": f"mock-zone-{i}"}


def openai_client(mock):
    return openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-test", max_retries=0)


def anthropic_client(mock):
    return anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-test", max_retries=0)


# MARK: OpenAI


def test_openai_whole_tool_call(mock):
    r = openai_client(mock).chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content is None
    assert choice.message.refusal is None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", call.id)
    assert call.type == "function"
    assert call.function.name == "get_weather"
    # Compact JSON, properties in the schema's order.
    assert call.function.arguments == json.dumps(expected_weather(0), separators=(",", ":"))
    assert r.usage.completion_tokens == max(1, len(call.function.arguments) // 4)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_whole_answer_raw_shape(mock):
    body = {"model": "gpt-4o", "messages": USER, "tools": OPENAI_TOOLS}
    r = requests.post(mock.url + "/v1/chat/completions", json=body, timeout=10)
    assert r.status_code == 200
    message = r.json()["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] is None
    assert set(message["tool_calls"][0]) == {"id", "type", "function"}
    assert set(message["tool_calls"][0]["function"]) == {"name", "arguments"}


def openai_stream(mock, headers=None, **kw):
    stream = openai_client(mock).chat.completions.create(
        model="gpt-4o", messages=USER, tools=OPENAI_TOOLS, stream=True,
        stream_options={"include_usage": True}, extra_headers=headers or {}, **kw)
    return list(stream)


def test_openai_streamed_tool_call_fragments_match_whole_answer(mock):
    whole = openai_client(mock).chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS)
    chunks = openai_stream(mock)
    with_choices = [c for c in chunks if c.choices]
    first = with_choices[0].choices[0].delta
    assert first.role == "assistant"
    assert first.content is None
    start = first.tool_calls[0]
    assert start.index == 0 and start.type == "function"
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", start.id)
    assert start.function.name == "get_weather" and start.function.arguments == ""
    fragments = []
    for c in with_choices[1:-1]:
        (tc,) = c.choices[0].delta.tool_calls
        assert tc.index == 0 and tc.id is None and tc.type is None and tc.function.name is None
        assert 0 < len(tc.function.arguments) <= 8
        fragments.append(tc.function.arguments)
    assert len(fragments) > 1
    arguments = "".join(fragments)
    assert json.loads(arguments) == expected_weather(0)
    assert arguments == whole.choices[0].message.tool_calls[0].function.arguments
    last = with_choices[-1].choices[0]
    assert last.finish_reason == "tool_calls" and last.delta.tool_calls is None
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == whole.usage.completion_tokens


def test_openai_stream_ends_with_done(mock):
    body = {"model": "gpt-4o", "messages": USER, "tools": OPENAI_TOOLS, "stream": True}
    r = requests.post(mock.url + "/v1/chat/completions", json=body, timeout=10)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = [json.loads(e[len("data: "):]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    assert all("usage" not in e for e in events)  # no include_usage: no usage fields at all
    assert events[0]["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}


def test_openai_three_calls(mock):
    headers = {"x-mock-tool-calls": "3"}
    whole = openai_client(mock).chat.completions.create(
        model="gpt-4o", messages=USER, tools=OPENAI_TOOLS, extra_headers=headers)
    calls = whole.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time", "get_weather"]
    assert [json.loads(c.function.arguments) for c in calls] == [expected_weather(0), {"zone": "mock-zone-1"}, expected_weather(2)]
    assert len({c.id for c in calls}) == 3

    chunks = openai_stream(mock, headers)
    starts, arguments = [], {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            if tc.id is not None:
                starts.append((tc.index, tc.function.name))
            arguments[tc.index] = arguments.get(tc.index, "") + (tc.function.arguments or "")
    assert starts == [(0, "get_weather"), (1, "get_time"), (2, "get_weather")]
    assert [arguments[i] for i in range(3)] == [c.function.arguments for c in calls]


def test_openai_forced_tool(mock):
    choice = {"type": "function", "function": {"name": "get_time"}}
    r = openai_client(mock).chat.completions.create(
        model="gpt-4o", messages=USER, tools=OPENAI_TOOLS, tool_choice=choice, extra_headers={"x-mock-tool-calls": "2"})
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"zone": "mock-zone-0"}, {"zone": "mock-zone-1"}]


def test_openai_text_after_tool_result_or_when_disabled(mock):
    client = openai_client(mock)
    first = client.chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS)
    call = first.choices[0].message.tool_calls[0]
    history = USER + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    for kw in ({"messages": history}, {"messages": USER, "tool_choice": "none"},
               {"messages": USER, "extra_headers": {"x-mock-tool-calls": "0"}}):
        r = client.chat.completions.create(model="gpt-4o", tools=OPENAI_TOOLS, **kw)
        assert r.choices[0].finish_reason == "stop"
        assert r.choices[0].message.tool_calls is None
        assert r.choices[0].message.content.startswith("The gateway answered")


def test_openai_bad_tool_headers_and_choices(mock):
    client = openai_client(mock)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS, extra_headers={"x-mock-tool-calls": "9"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=USER, tools=OPENAI_TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})


# MARK: Anthropic


def test_anthropic_whole_tool_use(mock):
    m = anthropic_client(mock).messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS)
    assert m.stop_reason == "tool_use"
    assert len(m.content) == 1
    block = m.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert re.fullmatch(r"toolu_[A-Za-z0-9]{24}", block.id)
    assert block.input == expected_weather(0)
    assert m.usage.output_tokens >= 1


def test_anthropic_whole_with_text_block(mock):
    m = anthropic_client(mock).messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS,
        extra_headers={"x-mock-tool-text": "true"})
    assert [b.type for b in m.content] == ["text", "tool_use"]
    assert m.content[0].text
    assert m.content[1].input == expected_weather(0)


def anthropic_events(mock, headers=None, **kw):
    stream = anthropic_client(mock).messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS, stream=True,
        extra_headers=headers or {}, **kw)
    return list(stream)


def test_anthropic_streamed_tool_use(mock):
    whole = anthropic_client(mock).messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS)
    events = anthropic_events(mock)
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types[1] == "content_block_start"
    start = events[1].content_block
    assert start.type == "tool_use" and start.name == "get_weather" and start.input == {}
    assert re.fullmatch(r"toolu_[A-Za-z0-9]{24}", start.id)
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert all(d.type == "input_json_delta" for d in deltas)
    assert deltas[0].partial_json == ""
    partial = "".join(d.partial_json for d in deltas)
    assert json.loads(partial) == whole.content[0].input
    assert types.count("content_block_stop") == 1
    assert events[-2].delta.stop_reason == "tool_use"
    assert events[-2].usage.output_tokens == whole.usage.output_tokens


def test_anthropic_stream_helper_assembles_input(mock):
    with anthropic_client(mock).messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS,
            extra_headers={"x-mock-tool-text": "true", "x-mock-tool-calls": "2"}) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[1].input == expected_weather(0)
    assert final.content[2].input == {"zone": "mock-zone-1"}


def test_anthropic_three_calls(mock):
    events = anthropic_events(mock, {"x-mock-tool-calls": "3"})
    starts = [(e.index, e.content_block.name) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "get_weather"), (1, "get_time"), (2, "get_weather")]
    inputs = {}
    for e in events:
        if e.type == "content_block_delta":
            inputs[e.index] = inputs.get(e.index, "") + e.delta.partial_json
    assert [json.loads(inputs[i]) for i in range(3)] == [expected_weather(0), {"zone": "mock-zone-1"}, expected_weather(2)]
    ids = [e.content_block.id for e in events if e.type == "content_block_start"]
    assert len(set(ids)) == 3


def test_anthropic_forced_tool(mock):
    m = anthropic_client(mock).messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "tool", "name": "get_time"}, extra_headers={"x-mock-tool-calls": "3"})
    assert [b.name for b in m.content] == ["get_time"] * 3
    assert [b.input for b in m.content] == [{"zone": f"mock-zone-{i}"} for i in range(3)]


def test_anthropic_text_after_tool_result_or_when_disabled(mock):
    client = anthropic_client(mock)
    first = client.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=USER, tools=ANTHROPIC_TOOLS)
    block = first.content[0]
    history = USER + [
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Sunny, 21 C"}]},
    ]
    for kw in ({"messages": history}, {"messages": USER, "tool_choice": {"type": "none"}},
               {"messages": USER, "extra_headers": {"x-mock-tool-calls": "0"}}):
        m = client.messages.create(model="claude-sonnet-4-5", max_tokens=200, tools=ANTHROPIC_TOOLS, **kw)
        assert m.stop_reason == "end_turn"
        assert [b.type for b in m.content] == ["text"]
        assert m.content[0].text.startswith("The gateway answered")


# MARK: Google


def google(mock, method, body, headers=None, query=""):
    return requests.post(f"{mock.url}/v1beta/models/gemini-2.5-flash:{method}{query}", json=body,
                         headers={"x-goog-api-key": "k", **(headers or {})}, timeout=10)


GOOGLE_BODY = {"contents": [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}], "tools": GOOGLE_TOOLS}


def sse_chunks(text):
    assert text.endswith("\r\n\r\n") and "[DONE]" not in text
    return [json.loads(e[len("data: "):]) for e in text.split("\r\n\r\n") if e]


def test_google_whole_function_call(mock):
    r = google(mock, "generateContent", GOOGLE_BODY)
    assert r.status_code == 200
    candidate = r.json()["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": expected_weather(0)}}]
    usage = r.json()["usageMetadata"]
    assert usage["candidatesTokenCount"] >= 1
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_google_streamed_function_calls(mock):
    whole = google(mock, "generateContent", GOOGLE_BODY, {"x-mock-tool-calls": "3"}).json()
    r = google(mock, "streamGenerateContent", GOOGLE_BODY, {"x-mock-tool-calls": "3"}, "?alt=sse")
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(r.text)
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert parts == whole["candidates"][0]["content"]["parts"]
    assert [p["functionCall"]["name"] for p in parts] == ["get_weather", "get_time", "get_weather"]
    assert [p["functionCall"]["args"] for p in parts] == [expected_weather(0), {"zone": "mock-zone-1"}, expected_weather(2)]
    assert all("id" not in p["functionCall"] for p in parts)
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None] * (len(chunks) - 1) + ["STOP"]
    assert all(c["candidates"][0]["content"]["role"] == "model" and c["candidates"][0]["index"] == 0 for c in chunks)
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == whole["usageMetadata"]["candidatesTokenCount"]

    # Without alt=sse: the same chunks as one JSON array.
    r = google(mock, "streamGenerateContent", GOOGLE_BODY, {"x-mock-tool-calls": "3"})
    assert r.headers["content-type"].startswith("application/json")
    array = r.json()
    assert [p for c in array for p in c["candidates"][0]["content"]["parts"]] == parts


def test_google_forced_function(mock):
    body = {**GOOGLE_BODY, "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}}
    r = google(mock, "generateContent", body, {"x-mock-tool-calls": "2"})
    parts = r.json()["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "get_time", "args": {"zone": f"mock-zone-{i}"}}} for i in range(2)]


def test_google_text_after_function_response_or_when_disabled(mock):
    call = google(mock, "generateContent", GOOGLE_BODY).json()["candidates"][0]["content"]
    history = {**GOOGLE_BODY, "contents": GOOGLE_BODY["contents"] + [
        call, {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"forecast": "Sunny"}}}]}]}
    none = {**GOOGLE_BODY, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    for body, headers in ((history, {}), (none, {}), (GOOGLE_BODY, {"x-mock-tool-calls": "0"})):
        r = google(mock, "generateContent", body, headers)
        parts = r.json()["candidates"][0]["content"]["parts"]
        assert len(parts) == 1 and parts[0]["text"].startswith("The gateway answered")


def test_token_delay_applies_between_tool_events(mock):
    started = time.time()
    r = google(mock, "streamGenerateContent", GOOGLE_BODY, {"x-mock-tool-calls": "3", "x-mock-token-delay-ms": "150"}, "?alt=sse")
    assert len(sse_chunks(r.text)) == 3
    assert time.time() - started >= 0.3
