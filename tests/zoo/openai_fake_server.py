"""A loopback server speaking the OpenAI chat API, for what a real llama.cpp server cannot show.

Covers: GET /v1/models; POST /v1/chat/completions, non-streaming and streaming (SSE `data:` chunks ending
with `data: [DONE]`, a usage chunk when stream_options.include_usage), `<think>` content and separate
`reasoning_content` deltas; POST /v1/images/generations (JSON) and /v1/images/edits (multipart: image, mask,
prompt, n, size, response_format, quality...) answering real PNGs of the asked size, checking a mask as OpenAI
does (a PNG with an alpha channel, the image's size) and recording its transparent area; failures on demand
(HTTP errors with OpenAI's error body and Retry-After, delays longer than the client's timeout, a stream cut
after its first chunk). It records every request.

Hostile answers: error messages echo the key the request presented in every form (`key_echoes.echoes`);
with `api_key` set, other keys get 401 on every route; `wrong_answer` makes chat and images answer 200 with an
HTML page ("html"), chat with an event stream even to a call that did not ask for one ("sse"); any other path
answers 200 with an HTML page, as a web server does where a wrong base_url points.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.zoo.key_echoes import echoes

PAGE = "<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"


@dataclass
class FakeOpenAI:
    fail_status: int | None = None
    delay: float = 0.0
    hold: asyncio.Event | None = None  # set: chat answers only once the test sets it (a state, not a time)
    cut_stream: bool = False
    reply: str = "<think>considering</think>Hello from the fake."
    reasoning: str | None = None
    api_key: str | None = None
    wrong_answer: str | None = None
    image_model_ids: tuple[str, ...] = ()  # listed by /v1/models after the chat models
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0  # chat requests being answered now
    peak_in_flight: int = 0  # the most answered at once

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.models),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/images/generations", self.generations, methods=["POST"]),
                Route("/v1/images/edits", self.edits, methods=["POST"]),
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
                    *({"id": name, "object": "model", "owned_by": "tests"} for name in self.image_model_ids),
                ],
            }
        )

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._chat(request, body)
        finally:
            self.in_flight -= 1

    async def _chat(self, request: Request, body: dict[str, Any]) -> Response:
        if self.hold is not None:
            await self.hold.wait()
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

    # --- images ----------------------------------------------------------------------------------------
    def _image_failure(self, request: Request) -> Response | None:
        if (refused := self._refused(request)) is not None:
            return refused
        if self.fail_status:
            return self._failure(request, self.fail_status)
        if self.wrong_answer == "html":
            return HTMLResponse(PAGE)
        return None

    def _images(self, fields: dict[str, Any], size: tuple[int, int]) -> Response:
        if fields.get("size"):
            width, height = (int(part) for part in str(fields["size"]).split("x"))
            size = (width, height)
        data = []
        for index in range(int(fields.get("n") or 1)):
            buffer = io.BytesIO()
            Image.new("RGB", size, (40 * index % 256, 90, 200)).save(buffer, format="PNG")
            image = {"b64_json": base64.b64encode(buffer.getvalue()).decode()}
            if fields.get("model") == "dall-e-3":
                image["revised_prompt"] = f"A detailed rendering of {fields['prompt']}"
            data.append(image)
        return JSONResponse({"created": 0, "data": data, "size": "{}x{}".format(*size)})

    async def generations(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"route": "generations", **body})
        if (failure := self._image_failure(request)) is not None:
            return failure
        return self._images(body, (64, 64))

    async def edits(self, request: Request) -> Response:
        async with request.form() as form:  # closes the uploads' temporary files
            fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
            uploads = {key: await value.read() for key, value in form.items() if isinstance(value, UploadFile)}
            types = {key: value.content_type for key, value in form.items() if isinstance(value, UploadFile)}
        record: dict[str, Any] = {"route": "edits", **fields}
        self.requests.append(record)
        if (failure := self._image_failure(request)) is not None:
            return failure
        if "image" not in uploads:
            return self._failure(request, 400)
        image = Image.open(io.BytesIO(uploads["image"]))
        record["image"] = {"size": image.size, "format": image.format, "content_type": types["image"]}
        if "mask" in uploads:
            mask = Image.open(io.BytesIO(uploads["mask"]))
            if mask.format != "PNG" or "A" not in mask.getbands() or mask.size != image.size:
                return self._failure(request, 400)  # OpenAI: a PNG with an alpha channel, the image's size
            transparent = mask.getchannel("A").point(lambda alpha: 255 if alpha == 0 else 0)
            record["mask"] = {"size": mask.size, "transparent_box": transparent.getbbox()}
        return self._images(fields, image.size)
