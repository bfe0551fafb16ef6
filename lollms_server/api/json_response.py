"""JSON responses encoded with orjson (``core.json_text``): the answers of every API, errors included."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from lollms_server.core.json_text import json_bytes


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json_bytes(content)
