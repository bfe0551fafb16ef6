"""The lean backend client (core/backend_http.py) against scripted HTTP servers on loopback: event streams cut
anywhere, the SSE forms backends send, size bounds, errors of each kind, connection reuse, proxies from the
environment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="install with ./run_tests.sh (the openai extra)")

from lollms_server.core import backend_http  # noqa: E402
from lollms_server.core.backend_http import (  # noqa: E402
    BackendAnswerError,
    BackendClient,
    BackendStatusError,
    BackendTransportError,
)
from tests.server import free_port  # noqa: E402

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return await reader.readexactly(length)


def head(status: str = "200 OK", content_type: str = "text/event-stream", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}transfer-encoding: chunked\r\n\r\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


END = b"0\r\n\r\n"


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """A server answering every request on a connection with ``script``; yields its URL and a list that gets one
    entry per connection."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                await script(reader, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", connections
    finally:
        server.close()


def event(value: Any) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


async def collect(client: BackendClient) -> list[Any]:
    return [item async for item in await client.open_events("/chat/completions", {"stream": True})]


async def test_events_cut_mid_line_across_reads_come_out_whole() -> None:
    first_seen = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        second = event({"n": 2, "text": "é" * 50})
        writer.write(head() + chunk(event({"n": 1}) + second[:20]))
        await writer.drain()
        await first_seen.wait()  # the rest of the line is written only once the first event has been read
        writer.write(chunk(second[20:]) + chunk(b"data: [DONE]\n\n") + END)

    async with scripted(script) as (url, _):
        client = BackendClient(url, {}, timeout=60)
        events = await client.open_events("/chat/completions", {"stream": True})
        assert await anext(events) == {"n": 1}
        first_seen.set()
        assert [item async for item in events] == [{"n": 2, "text": "é" * 50}]
        await client.close()


async def test_the_forms_of_server_sent_events() -> None:
    stream = (
        b": a comment\r\n\r\n"  # comments and CRLF line ends
        b'event: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'  # an event name, an id, data on two lines
        b'data:{"b":2}\n\n'  # no space after the colon
        b"\n\n"  # blank lines with no data
        b'data: {"c":3}'  # the last event without its line break (no [DONE])
    )

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head() + b"".join(chunk(stream[i : i + 7]) for i in range(0, len(stream), 7)) + END)

    async with scripted(script) as (url, _):
        client = BackendClient(url, {}, timeout=60)
        assert await collect(client) == [{"a": 1}, {"b": 2}, {"c": 3}]
        await client.close()


async def test_an_endless_event_or_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_http, "MAX_ANSWER_BYTES", 10_000)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.loads(await read_request(reader))
        if body.get("stream"):
            writer.write(head() + chunk(b"data: ") + b"".join(chunk(b"x" * 1000) for _ in range(20)) + END)
        else:
            writer.write(head(content_type="application/json") + chunk(b"[" + b"1," * 10_000 + b"1]") + END)

    async with scripted(script) as (url, _):
        client = BackendClient(url, {}, timeout=60)
        with pytest.raises(BackendAnswerError, match="lines of at most 10,000 bytes"):
            await collect(client)
        with pytest.raises(BackendAnswerError, match="an answer of at most 10,000 bytes"):
            await client.post_json("/chat/completions", {"stream": False})
        await client.close()


async def test_errors_of_each_kind() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.loads(await read_request(reader))
        if body["case"] == "limited":
            answer = b'{"error": {"message": "slow down"}}'
            writer.write(head("429 Too Many Requests", "application/json", "Retry-After: 7\r\n") + chunk(answer) + END)
        elif body["case"] == "html":
            writer.write(head(content_type="text/html") + chunk(b"<html>login</html>") + END)
        elif body["case"] == "bad json":
            writer.write(head(content_type="application/json") + chunk(b"{not json") + END)
        elif body["case"] == "bad event":
            writer.write(head() + chunk(b"data: {not json\n\n") + END)

    async with scripted(script) as (url, _):
        client = BackendClient(url, {}, timeout=60)
        with pytest.raises(BackendStatusError) as status:
            await client.post_json("/x", {"case": "limited"})
        assert (status.value.status, status.value.retry_after, "slow down" in status.value.text) == (429, 7.0, True)
        with pytest.raises(BackendAnswerError) as html:
            await client.open_events("/x", {"case": "html"})
        assert (html.value.expected, html.value.content_type) == ("an event stream", "text/html")
        with pytest.raises(BackendAnswerError) as bad_json:
            await client.post_json("/x", {"case": "bad json"})
        assert bad_json.value.body == "{not json"
        with pytest.raises(BackendAnswerError, match="JSON events"):
            [item async for item in await client.open_events("/x", {"case": "bad event"})]
        await client.close()

    unreachable = BackendClient(f"http://127.0.0.1:{free_port()}/v1", {}, timeout=60)
    with pytest.raises(BackendTransportError) as refused:
        await unreachable.post_json("/x", {})
    await unreachable.close()
    assert not refused.value.timed_out


async def test_a_silent_backend_times_out() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head() + chunk(event({"n": 1})))
        await asyncio.Event().wait()  # then nothing, ever

    async with scripted(script) as (url, _):
        # Long enough that a loaded machine still delivers the first event in time; the silence after it is endless.
        client = BackendClient(url, {}, timeout=2.0)
        events = await client.open_events("/x", {})
        assert await anext(events) == {"n": 1}
        with pytest.raises(BackendTransportError) as silent:
            await anext(events)
        assert silent.value.timed_out
        await client.close()


async def test_one_connection_serves_request_after_request_and_headers_go_along() -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_head = await reader.readuntil(b"\r\n\r\n")
        seen.append(request_head)
        length = int(next(line for line in request_head.split(b"\r\n") if line.lower().startswith(b"content-len"))[16:])
        body = json.loads(await reader.readexactly(length))
        if body.get("stream"):
            writer.write(head() + chunk(event({"n": 1}) + b"data: [DONE]\n\n") + END)
        else:
            writer.write(head(content_type="application/json") + chunk(json.dumps({"echo": body}).encode()) + END)

    async with scripted(script) as (url, connections):
        client = BackendClient(url, {"Authorization": "Bearer sk-test"}, timeout=60)
        for _ in range(5):
            assert await client.post_json("/chat/completions", {"x": "é"}) == {"echo": {"x": "é"}}
            assert await collect(client) == [{"n": 1}]
        await client.close()
    assert len(connections) == 1
    assert all(b"authorization: bearer sk-test" in request.lower() for request in seen)
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1")


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxied = BackendClient("https://api.example/v1", {}, timeout=60)
    assert (str(proxied.proxy), proxied.proxy_auth.login if proxied.proxy_auth else None) == (
        "http://proxy.example:3128",
        "user",
    )
    assert BackendClient("https://internal.example/v1", {}, timeout=60).proxy is None
