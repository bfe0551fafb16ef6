"""A fast fake OpenAI-compatible (and Ollama) backend for the relay benchmark (run by hand, never in CI).

    python bench/fake_openai_backend.py PORT [--chunks 20]

HTTP/1.1 with keep-alive on asyncio (uvloop when installed), parsed by httptools: ``GET /v1/models``, and
``POST /v1/chat/completions`` answered at once — whole, or as an event stream of ``--chunks`` content chunks
(chunked transfer encoding, as real servers send), a finish chunk, a usage chunk when ``stream_options``
asks for it, and ``[DONE]``. For Ollama clients: ``/api/tags``, ``/api/show`` and ``/api/chat`` (JSON lines, the
same chunks, then the closing line with the counts). For Gemini clients (v1beta): ``GET /v1beta/models``,
``:generateContent`` and ``:streamGenerateContent?alt=sse`` (the same chunks, the last event with the finish
reason and usage). It does what a backend must and nothing more, so what a relay
in front of it costs is what the relay adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httptools

MODEL = "fake-model"
MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]})
WORD = "tok "


def _completion(chunks: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": WORD * chunks}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks},
        }
    ).encode()


def _event(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": choices}
    if usage:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _stream(chunks: int, with_usage: bool) -> bytes:
    events = [_event({"role": "assistant", "content": ""})]
    events += [_event({"content": WORD}) for _ in range(chunks)]
    events.append(_event({}, finish="stop"))
    if with_usage:
        events.append(_event({}, usage={"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}))
    events.append(b"data: [DONE]\n\n")
    # One HTTP chunk per event, as a streaming server sends them.
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


OLLAMA_TAGS = json.dumps(
    {"models": [{"name": f"{MODEL}:latest", "model": f"{MODEL}:latest", "digest": "f00d", "size": 1,
                 "modified_at": "2026-01-01T00:00:00Z", "details": {"family": "fake"}}]}
).encode()  # fmt: skip
OLLAMA_SHOW = json.dumps({"capabilities": ["completion"], "details": {"family": "fake"}, "model_info": {}}).encode()


def _ollama_chat(chunks: int) -> bytes:
    part = {"model": MODEL, "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant", "content": WORD}}
    lines = [json.dumps({**part, "done": False}).encode() + b"\n" for _ in range(chunks)]
    closing = {**part, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
               "prompt_eval_count": 9, "eval_count": chunks}  # fmt: skip
    lines.append(json.dumps(closing).encode() + b"\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines) + b"0\r\n\r\n"


GEMINI_MODELS = json.dumps(
    {"models": [{"name": f"models/{MODEL}", "version": "001", "displayName": MODEL, "inputTokenLimit": 8192,
                 "outputTokenLimit": 8192, "supportedGenerationMethods": ["generateContent"], "thinking": False}]}
).encode()  # fmt: skip


def _gemini_answer(text: str, finish: bool, chunks: int) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    answer: dict = {"candidates": [candidate], "modelVersion": MODEL}
    if finish:
        candidate["finishReason"] = "STOP"
        answer["usageMetadata"] = {"promptTokenCount": 9, "candidatesTokenCount": chunks, "totalTokenCount": 9 + chunks}
    return answer


def _gemini_stream(chunks: int) -> bytes:
    events = [
        b"data: " + json.dumps(_gemini_answer(WORD, index == chunks - 1, chunks)).encode() + b"\r\n\r\n"
        for index in range(chunks)
    ]
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


def _response(status: str, content_type: bytes, body: bytes, chunked: bool = False) -> bytes:
    framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % len(body)
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\n%s\r\n\r\n%s" % (status.encode(), content_type, framing, body)


class FakeBackend(asyncio.Protocol):
    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.completion = _completion(chunks)
        self.streams = {flag: _stream(chunks, flag) for flag in (False, True)}
        self.ollama_chat = _ollama_chat(chunks)
        self.gemini_answer = json.dumps(_gemini_answer(WORD * chunks, True, chunks)).encode()
        self.gemini_stream = _gemini_stream(chunks)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        body, self.body = b"".join(self.body), []
        if self.url.startswith(b"/v1/models"):
            self.transport.write(_response("200 OK", b"application/json", MODELS.encode()))
        elif self.url.startswith(b"/v1/chat/completions"):
            request = json.loads(body or b"{}")
            if request.get("stream"):
                with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                self.transport.write(_response("200 OK", b"text/event-stream", self.streams[with_usage], chunked=True))
            else:
                self.transport.write(_response("200 OK", b"application/json", self.completion))
        elif self.url.startswith(b"/api/tags"):
            self.transport.write(_response("200 OK", b"application/json", OLLAMA_TAGS))
        elif self.url.startswith(b"/api/show"):
            self.transport.write(_response("200 OK", b"application/json", OLLAMA_SHOW))
        elif self.url.startswith(b"/api/chat"):
            self.transport.write(_response("200 OK", b"application/x-ndjson", self.ollama_chat, chunked=True))
        elif self.url.startswith(b"/v1beta/models") and b":streamGenerateContent" in self.url:
            self.transport.write(_response("200 OK", b"text/event-stream", self.gemini_stream, chunked=True))
        elif self.url.startswith(b"/v1beta/models") and b":generateContent" in self.url:
            self.transport.write(_response("200 OK", b"application/json", self.gemini_answer))
        elif self.url.startswith(b"/v1beta/models"):
            self.transport.write(_response("200 OK", b"application/json", GEMINI_MODELS))
        else:
            self.transport.write(_response("404 Not Found", b"application/json", b'{"error":"not found"}'))
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeBackend(chunks), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.chunks))


if __name__ == "__main__":
    main()
