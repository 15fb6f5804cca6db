"""Request validation, abuse resistance and upstream failures, over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from inference_support import (
    ScriptedUpstream,
    ServerThread,
    Stack,
    StackFactory,
    chat_body,
    free_port,
    post,
    raw_http,
)

from tsuba.gateway.serving import PROTOCOL, set_header_timeout


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    app = ScriptedUpstream()
    server = ServerThread(app).start()
    yield app, server.url + "/v1"
    server.stop()


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "param"} <= set(err)
    assert resp.headers["x-tsuba-correlation-id"]
    return err


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"model": "demo"}', "missing required field 'messages'"),
        (b'{"model": "demo", "messages": []}', "messages"),
        (b'{"model": "demo", "messages": [{"role": "root", "content": "x"}]}', "role"),
        (b'{"model": "demo", "messages": [{"role": "user"}], "evil": 1}', "unknown field 'evil'"),
        (b'{"model": "demo", "messages": [{"role": "user"}], "temperature": 9}', "temperature"),
        (b'{"model": "demo", "messages": [{"role": "user"}], "max_tokens": 0}', "max_tokens"),
        (b'\xff\xfe', "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(stack: Stack, raw: bytes, needle: str) -> None:
    resp = httpx.post(stack.v1 + "/chat/completions", content=raw,
                      headers={**stack.headers("alice"), "content-type": "application/json"})
    assert resp.status_code == 400
    assert needle in error_of(resp)["message"]


def test_configured_limits(make_stack: StackFactory) -> None:
    stack = make_stack(gateway={"validation": {
        "max_body_bytes": 4096, "max_messages": 3, "max_output_tokens": 100, "max_n": 2,
        "max_input_chars": 500, "max_embedding_inputs": 2,
    }})
    too_many = {"model": "demo", "messages": [{"role": "user", "content": "x"}] * 4}
    resp = post(stack, "/chat/completions", too_many)
    assert resp.status_code == 400 and "4 messages" in error_of(resp)["message"]
    assert error_of(resp)["param"] == "messages"
    resp = post(stack, "/chat/completions", chat_body(max_tokens=101))
    assert resp.status_code == 400 and error_of(resp)["param"] == "max_tokens"
    resp = post(stack, "/chat/completions", chat_body(n=3))
    assert resp.status_code == 400 and error_of(resp)["param"] == "n"
    resp = post(stack, "/chat/completions", chat_body("y" * 600))
    assert resp.status_code == 400 and "600 characters" in error_of(resp)["message"]
    resp = post(stack, "/embeddings", {"model": "demo", "input": ["a", "b", "c"]})
    assert resp.status_code == 400 and error_of(resp)["param"] == "input"
    resp = post(stack, "/chat/completions", chat_body("z" * 5000))
    assert resp.status_code == 413 and error_of(resp)["code"] == "request_too_large"
    # Within every limit: served.
    assert post(stack, "/chat/completions", chat_body(max_tokens=100, n=2)).status_code == 200


def test_oversized_body_is_refused_before_authentication(make_stack: StackFactory) -> None:
    stack = make_stack(gateway={"validation": {"max_body_bytes": 2048}})
    resp = post(stack, "/chat/completions", chat_body("z" * 5000), principal=None)
    assert resp.status_code == 413


def test_slow_body_is_cut_with_408(make_stack: StackFactory) -> None:
    stack = make_stack(gateway={"validation": {"body_timeout_seconds": 0.5}})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {stack.keys['alice']}\r\nContent-Length: 200\r\n\r\n"
    ).encode()
    reply = raw_http(stack.port, head + b'{"model": "demo",', wait=1.2)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"did not arrive within 0.5 s" in reply


def test_slow_headers_close_the_connection(make_stack: StackFactory) -> None:
    set_header_timeout(0.5)
    try:
        stack = make_stack(http=PROTOCOL)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(10)
            assert sock.recv(1024) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 5
        # A client that sends its request at once is served as usual.
        assert post(stack, "/chat/completions", chat_body()).status_code == 200
    finally:
        set_header_timeout(10.0)


def test_predict_route(stack: Stack) -> None:
    resp = post(stack, "/predict/tabular", {"instances": [[1, 2, 3], {"a": 1.5, "b": 2}]})
    assert resp.status_code == 200
    assert resp.json() == {"predictions": [6.0, 3.5]}
    resp = post(stack, "/predict/tabular", {"instances": [[[[[[[[[[1]]]]]]]]]]})
    assert resp.status_code == 400 and "nested deeper" in error_of(resp)["message"]
    resp = post(stack, "/predict/demo", {"instances": [[1]]})  # allowed, but not on predict
    assert resp.status_code == 404


# -- requests cannot steer the gateway elsewhere ------------------------------------------------


@pytest.mark.parametrize(
    "model", ["http://169.254.169.254/latest", "../admin", "demo/../../x", "a//b", ""]
)
def test_model_names_never_become_urls(stack: Stack, model: str) -> None:
    resp = post(stack, "/chat/completions", chat_body(model=model), principal="bob")
    assert resp.status_code in (400, 404)
    resp = httpx.post(stack.v1 + f"/predict/{model}", json={"instances": [[1]]},
                      headers=stack.headers("bob"))
    assert resp.status_code in (400, 403, 404, 405)


def test_upstream_off_the_allow_list_refuses_to_start(stack: Stack) -> None:
    from tsuba.core.config import GatewaySettings
    from tsuba.core.errors import ConfigError
    from tsuba.gateway.pipeline import Gateway

    gw = stack.settings.gateway.model_dump()
    gw["allowed_upstream_hosts"] = ["models.example.com"]
    settings = stack.settings.model_copy(update={"gateway": GatewaySettings(**gw)})
    platform = type(stack.platform)(settings, stack.platform.engine, stack.platform.keys,
                                    stack.platform.audit, stack.platform.bus)
    with pytest.raises(ConfigError, match=r"not in gateway\.allowed_upstream_hosts"):
        Gateway(platform)


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("http://127.0.0.1:9000/v1", ["127.0.0.1:9000"], True),
        ("http://127.0.0.1:9001/v1", ["127.0.0.1:9000"], False),
        ("https://api.example.com/v1", ["api.example.com"], True),
        ("https://api.example.com.evil.io/v1", ["api.example.com"], False),
        ("https://API.Example.com/v1", ["api.example.com:443"], True),
        ("http://api.example.com/v1", ["api.example.com:443"], False),
        ("http://[::1]:8000/v1", ["[::1]:8000"], True),
        ("http://169.254.169.254/", [], False),
    ],
)
def test_allow_list(url: str, allowed: list[str], ok: bool) -> None:
    from tsuba.gateway.upstreams import host_allowed

    assert host_allowed(url, allowed) is ok


@pytest.mark.parametrize(
    "url", ["ftp://x/v1", "http://user:pw@h/v1", "http:///v1", "http://h/v1?x=1", "file:///etc"]
)
def test_upstream_urls_that_are_refused_outright(url: str) -> None:
    from tsuba.core.errors import ConfigError
    from tsuba.gateway.upstreams import host_allowed

    with pytest.raises(ConfigError):
        host_allowed(url, ["h", "x"])


# -- upstream failures -------------------------------------------------------------------------


def scripted_stack(make_stack: StackFactory, url: str, **upstream: Any) -> Stack:
    host = url.split("//", 1)[1].split("/", 1)[0]
    return make_stack(gateway={
        "upstreams": {"demo": {"base_url": url, **upstream}},
        "allowed_upstream_hosts": [host],
    })


def test_upstream_errors_map_to_openai_errors(
    make_stack: StackFactory, scripted: tuple[ScriptedUpstream, str]
) -> None:
    app, url = scripted
    stack = scripted_stack(make_stack, url, retries=1)
    cases = [
        ((500, b"boom"), 502, "upstream 'demo' failed with HTTP 500"),
        ((503, b"busy"), 502, "upstream 'demo' failed with HTTP 503"),
        ((401, b'{"error": {"message": "bad key"}}'), 502, "refused the gateway's credential"),
        ((404, b'{"error": {"message": "The model nope does not exist"}}'), 404,
         "upstream 'demo' rejected the request: The model nope does not exist"),
        ((200, b"not json"), 502, "malformed JSON"),
        ((429, b"{}"), 503, "rate limiting the gateway"),
    ]
    for reply, status, needle in cases:
        app.replies = [reply, reply]
        before = len(app.seen)
        resp = post(stack, "/chat/completions", chat_body())
        assert resp.status_code == status, (reply, resp.text)
        assert needle in error_of(resp)["message"]
        # 502/503/504 mean the upstream did not take the request: retried once; not others.
        assert len(app.seen) - before == (2 if reply[0] == 503 else 1)
        (event,) = stack.events_for(resp.headers["x-tsuba-correlation-id"])
        assert event["attributes"]["upstream"]["status"] == reply[0]


def test_retry_recovers_from_one_bad_gateway(
    make_stack: StackFactory, scripted: tuple[ScriptedUpstream, str]
) -> None:
    app, url = scripted
    stack = scripted_stack(make_stack, url, retries=1)
    ok = orjson.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "demo",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "fine"}}]})
    app.replies = [(503, b"{}"), (200, ok)]
    resp = post(stack, "/chat/completions", chat_body())
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == "fine"


def test_client_credentials_never_reach_the_upstream(
    make_stack: StackFactory, scripted: tuple[ScriptedUpstream, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, url = scripted
    monkeypatch.setenv("DEMO_UPSTREAM_KEY", "sk-upstream-secret")
    stack = scripted_stack(make_stack, url, credential_env="DEMO_UPSTREAM_KEY")
    app.replies = [(500, b"{}")]
    post(stack, "/chat/completions", chat_body(), headers={"x-custom": "1", "cookie": "c=1"})
    seen = app.seen[-1]
    assert seen["headers"]["authorization"] == "Bearer sk-upstream-secret"
    assert stack.keys["alice"] not in str(seen["headers"])
    assert "x-custom" not in seen["headers"] and "cookie" not in seen["headers"]
    assert orjson.loads(seen["body"])["model"] == "demo"


def test_credential_file_is_an_envelope_bound_to_its_upstream(
    make_stack: StackFactory, scripted: tuple[ScriptedUpstream, str]
) -> None:
    from tsuba.core.errors import DecryptionError
    from tsuba.gateway.upstreams import load_credential, store_credential

    app, url = scripted
    first = make_stack()
    path = store_credential(first.settings, first.platform.keys, "demo", "sk-from-keystore")
    assert b"sk-from-keystore" not in path.read_bytes()
    stack = scripted_stack(make_stack, url, credential_file=str(path))
    app.replies = [(500, b"{}")]
    post(stack, "/chat/completions", chat_body())
    assert app.seen[-1]["headers"]["authorization"] == "Bearer sk-from-keystore"
    cfg = stack.settings.gateway.upstreams["demo"]
    with pytest.raises(DecryptionError):  # the same file, claimed by another upstream
        load_credential(stack.settings, stack.platform.keys, "other", cfg)


def test_unreachable_upstream_is_502(make_stack: StackFactory) -> None:
    port = free_port()
    stack = scripted_stack(make_stack, f"http://127.0.0.1:{port}/v1", retries=0)
    resp = post(stack, "/chat/completions", chat_body())
    assert resp.status_code == 502
    assert "upstream 'demo' is unreachable" in error_of(resp)["message"]


def test_upstream_timeout_is_504(
    make_stack: StackFactory, scripted: tuple[ScriptedUpstream, str]
) -> None:
    app, url = scripted
    stack = scripted_stack(make_stack, url, timeout_seconds=0.5)
    app.hang = 3.0
    try:
        resp = post(stack, "/chat/completions", chat_body())
    finally:
        app.hang = 0.0
    assert resp.status_code == 504
    assert error_of(resp)["message"] == "upstream 'demo' timed out waiting for its answer"
