"""A loopback server speaking the OpenAI chat API, for what a real llama.cpp server cannot show.

Covers: GET /v1/models; POST /v1/chat/completions, non-streaming and streaming (SSE `data:` chunks ending
with `data: [DONE]`, a usage chunk when stream_options.include_usage), `<think>` content and separate
`reasoning_content` deltas; failures on demand (HTTP errors with OpenAI's error body and Retry-After,
delays longer than the client's timeout, a stream cut after its first chunk). It records every request.

Hostile answers: error messages echo the key the request presented in every form (`key_echoes.echoes`);
with `api_key` set, other keys get 401 on every route; `wrong_answer` makes chat answer 200 with an HTML page
("html") or with an event stream even to a call that did not ask for one ("sse"); any other path answers 200
with an HTML page, as a web server does where a wrong base_url points.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.zoo.key_echoes import echoes

PAGE = "<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"


@dataclass
class FakeOpenAI:
    fail_status: int | None = None
    delay: float = 0.0
    cut_stream: bool = False
    reply: str = "<think>considering</think>Hello from the fake."
    reasoning: str | None = None
    api_key: str | None = None
    wrong_answer: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.models),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/{path:path}", self.page, methods=["GET", "POST"]),
            ]
        )

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE)

    def _failure(self, request: Request, status: int) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return JSONResponse(
            {"error": {"message": f"fake failure {status} for key {echoes(token)}", "type": "fake", "code": None}},
            status_code=status,
            headers={"Retry-After": "7"} if status == 429 else None,
        )

    def _refused(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return self._failure(request, 401)

    async def models(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": "fake-vision-vl", "object": "model", "owned_by": "tests", "context_length": 32768},
                    {"id": "fake-text", "object": "model", "owned_by": "tests"},
                ],
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if (refused := self._refused(request)) is not None:
            return refused
        if self.fail_status:
            return self._failure(request, self.fail_status)
        if self.wrong_answer == "html":
            return HTMLResponse(PAGE)
        if body.get("stream") or self.wrong_answer == "sse":
            return StreamingResponse(self._events(body), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": self.reply, "reasoning_content": self.reasoning},
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
            }
        )

    async def _events(self, body: dict[str, Any]):  # type: ignore[no-untyped-def]
        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        if self.reasoning:
            yield event({"role": "assistant", "reasoning_content": self.reasoning})
        pieces = [self.reply[i : i + 4] for i in range(0, len(self.reply), 4)]
        for index, piece in enumerate(pieces):
            yield event({"content": piece})
            if self.cut_stream and index == 0:
                raise RuntimeError("connection cut mid-stream")
        yield event({}, "length")
        if body.get("stream_options", {}).get("include_usage"):
            usage = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [],
                "usage": {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)},
            }
            yield f"data: {json.dumps(usage)}\n\n".encode()
        yield b"data: [DONE]\n\n"
