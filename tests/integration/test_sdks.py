"""The official OpenAI and Anthropic Python SDKs against a node, with only base_url changed."""
import anthropic
import openai


def openai_client(node, **kw):
    return openai.OpenAI(base_url=node.url + "/openai", api_key="sk-test", max_retries=0, **kw)


def anthropic_client(node, **kw):
    return anthropic.Anthropic(base_url=node.url + "/anthropic", api_key="sk-ant-test", max_retries=0, **kw)


def test_openai_chat_completion(node):
    r = openai_client(node).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say hello to the gateway"}])
    assert r.choices[0].message.content.startswith("The gateway answered")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 5
    assert r.usage.completion_tokens == 16
    assert r.model == "gpt-4o-mini"


def test_openai_chat_completion_streamed(node):
    stream = openai_client(node).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-mock-output-tokens": "5"})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "The gateway answered this request"
    assert finish == "stop"
    assert usage.completion_tokens == 5 and usage.prompt_tokens == 1


def test_openai_completions_embeddings_and_models(node):
    client = openai_client(node)
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two", max_tokens=4)
    assert c.choices[0].text == "The gateway answered this"
    assert c.choices[0].finish_reason == "length"
    e = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 8
    assert e.usage.prompt_tokens == 4
    models = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in models


def test_openai_error_passes_through(node):
    client = openai_client(node)
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"x-mock-status": "429"})
        assert False, "expected RateLimitError"
    except openai.RateLimitError as e:
        assert e.status_code == 429
        assert e.body["type"] == "rate_limit_exceeded"
        assert e.response.headers["retry-after"] == "1"


def test_anthropic_message(node):
    m = anthropic_client(node).messages.create(
        model="claude-test-model", max_tokens=100, system="be brief",
        messages=[{"role": "user", "content": "hello there"}])
    assert m.content[0].text.startswith("The gateway answered")
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == 4 and m.usage.output_tokens == 16


def test_anthropic_message_streamed(node):
    client = anthropic_client(node)
    with client.messages.stream(model="claude-test-model", max_tokens=3,
                                messages=[{"role": "user", "content": "hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "The gateway answered"
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3


def test_anthropic_error_passes_through(node):
    try:
        anthropic_client(node).messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                               extra_headers={"x-mock-status": "529"})
        assert False, "expected an error"
    except anthropic.APIStatusError as e:
        assert e.status_code == 529
        assert e.body["error"]["type"] == "overloaded_error"


def test_named_gateway_with_token(start_node):
    node = start_node(extra_yaml='gateways:\n  - id: default\n  - id: team-a\n    auth_tokens: ["gw-secret"]\n')
    base = node.url + "/team-a/openai"
    ok = openai.OpenAI(base_url=base, api_key="sk", max_retries=0,
                       default_headers={"x-gatemesh-authorization": "Bearer gw-secret"})
    assert ok.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    alias = openai.OpenAI(base_url=base, api_key="sk", max_retries=0,
                          default_headers={"cf-aig-authorization": "Bearer gw-secret"})
    assert alias.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    cf = openai.OpenAI(base_url=node.url + "/v1/my-account/team-a/openai", api_key="sk", max_retries=0,
                       default_headers={"cf-aig-authorization": "Bearer gw-secret"})
    assert cf.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    bad = openai.OpenAI(base_url=base, api_key="sk", max_retries=0)
    try:
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert False
    except openai.AuthenticationError as e:
        assert e.body["code"] == "missing_gateway_token"
