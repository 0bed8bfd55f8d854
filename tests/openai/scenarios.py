"""Client scenarios for gathm's OpenAI-compatible endpoint, with the real
`openai` Python package (tests/it/openai.rs runs them; the venv comes from
tests/mcp/setup.sh).

Usage: scenarios.py BASE_URL API_KEY SCENARIO. Prints PASS (and, for some
scenarios, one JSON line for the Rust side) or fails with a traceback.
"""

import json
import sys
import threading

import openai

BASE, KEY, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]


def client(key=KEY):
    # No retries: a 429 or 504 must reach the test as it was answered.
    return openai.OpenAI(base_url=BASE + "/v1", api_key=key, max_retries=0, timeout=60)


def expected(message):
    flat = " ".join(message.split())
    return "\n".join([
        f"Echo: {flat}",
        f"Words: {len(message.split())}",
        f"Characters: {len(message)}",
        f"Reversed: {flat[::-1]}",
    ])


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question here"}]},
]
LAST = "second\nquestion here"


def check_error_shape(e, status, code):
    assert e.status_code == status, (e.status_code, e.body)
    body = e.body
    assert isinstance(body, dict), body
    for k in ("message", "type", "param", "code"):
        assert k in body, (k, body)
    assert body["code"] == code, body


def models():
    ids = [m.id for m in client().models.list()]
    assert "echo" in ids and "echo-jsonl" in ids, ids
    assert len(ids) == len(set(ids)), ids


def complete(model="echo"):
    c = client()
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello   there world"}])
    assert r.object == "chat.completion", r
    assert r.id.startswith("chatcmpl-"), r.id
    assert r.model == model
    ch = r.choices[0]
    assert ch.message.role == "assistant"
    assert ch.message.content == expected("hello   there world"), repr(ch.message.content)
    assert ch.finish_reason == "stop", ch.finish_reason
    u = r.usage
    assert u.prompt_tokens == 5 and u.completion_tokens > 0, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    r2 = c.chat.completions.create(model=model, messages=CONVERSATION)
    assert r2.choices[0].message.content == expected(LAST), r2.choices[0].message.content
    # Deterministic: the same request, the same reply.
    r3 = c.chat.completions.create(model=model, messages=CONVERSATION)
    assert r3.choices[0].message.content == r2.choices[0].message.content


def stream(model="echo"):
    c = client()
    whole = c.chat.completions.create(model=model, messages=CONVERSATION).choices[0].message.content
    chunks = list(c.chat.completions.create(model=model, messages=CONVERSATION, stream=True))
    assert chunks, "no chunks"
    assert all(x.object == "chat.completion.chunk" for x in chunks)
    assert len({x.id for x in chunks}) == 1, "one id for every chunk"
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    text = "".join(x.choices[0].delta.content or "" for x in chunks)
    assert text == whole == expected(LAST), (text, whole)
    contents = [x for x in chunks if x.choices[0].delta.content]
    assert len(contents) >= 4, f"the reply came in {len(contents)} chunks"
    assert [x.choices[0].finish_reason for x in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "stop", chunks[-1]
    assert chunks[-1].usage.total_tokens > 0, chunks[-1]


def jsonl():
    complete("echo-jsonl")
    stream("echo-jsonl")


def max_tokens():
    c = client()
    r = c.chat.completions.create(model="echo", max_tokens=3, messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].finish_reason == "length", r
    assert r.choices[0].message.content == expected("hello there")[:12], r.choices[0].message.content
    assert r.usage.completion_tokens == 3, r.usage
    chunks = list(c.chat.completions.create(model="echo", max_tokens=3, stream=True,
                                            messages=[{"role": "user", "content": "hello there"}]))
    assert "".join(x.choices[0].delta.content or "" for x in chunks) == expected("hello there")[:12]
    assert chunks[-1].choices[0].finish_reason == "length"


def concurrent():
    results = [None] * 10
    start = threading.Barrier(10)

    def one(i):
        start.wait()
        try:
            r = client().chat.completions.create(model="sleepy", messages=[{"role": "user", "content": f"request {i}"}])
            assert r.choices[0].message.content == expected(f"request {i}"), r
            results[i] = "ok"
        except openai.RateLimitError as e:
            check_error_shape(e, 429, "rate_limit_exceeded")
            assert e.response.headers.get("retry-after"), e.response.headers
            results[i] = "429"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in results, results
    print(json.dumps({"ok": results.count("ok"), "limited": results.count("429")}))


def timeout():
    c = client()
    try:
        c.chat.completions.create(model="slow", messages=[{"role": "user", "content": "take your time"}])
        raise AssertionError("no error")
    except openai.APIStatusError as e:
        check_error_shape(e, 504, "timeout")
        assert e.body["type"] == "timeout_error", e.body
    try:
        for _ in c.chat.completions.create(model="slow", stream=True,
                                           messages=[{"role": "user", "content": "take your time"}]):
            pass
        raise AssertionError("no error")
    except openai.APIStatusError:
        raise
    except openai.APIError as e:
        assert e.body["code"] == "timeout", e.body
        assert "timed out" in e.message, e.message


def auth():
    try:
        client("wrong-key").models.list()
        raise AssertionError("no error")
    except openai.AuthenticationError as e:
        check_error_shape(e, 401, "invalid_api_key")
    try:
        client("wrong-key").chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("no error")
    except openai.AuthenticationError as e:
        check_error_shape(e, 401, "invalid_api_key")


def unknown_model():
    try:
        client().chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("no error")
    except openai.NotFoundError as e:
        check_error_shape(e, 404, "model_not_found")
        assert e.body["param"] == "model", e.body
    try:
        client().chat.completions.create(model="echo", messages=[{"role": "robot", "content": "x"}])
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        check_error_shape(e, 400, None)
        assert e.body["param"] == "messages[0].role", e.body


{
    "models": models,
    "complete": complete,
    "stream": stream,
    "jsonl": jsonl,
    "max_tokens": max_tokens,
    "concurrent": concurrent,
    "timeout": timeout,
    "auth": auth,
    "unknown_model": unknown_model,
}[SCENARIO]()
print("PASS")
