"""The clients of an instance (the lean one for chat, the SDK's for the rest) and their failures as our errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import ollama

from lollms_server.core.backend_http import BackendAnswerError, BackendStatusError, BackendTransportError
from lollms_server.core.errors import BackendFailedError, LollmsError
from lollms_server.core.relay import add_relay_header
from lollms_server.core.remote import backend_failure, error_for_answer, error_for_status, error_for_transport

ADDRESS = "host"  # the instance setting naming the backend, for messages that suggest checking it
# What Ollama answers with: JSON, NDJSON for streams (a missing content type is left to the parser).
ANSWER_TYPES = ("", "application/json", "application/x-ndjson")


class BackendStatus(Exception):
    """An HTTP error answer of the backend, with what the SDK's ResponseError drops (Retry-After)."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class UnexpectedAnswer(Exception):
    """A successful answer that is not JSON (an HTML page, an event stream): ``host`` points elsewhere."""

    def __init__(self, content_type: str | None) -> None:
        super().__init__(f"the backend answered {content_type!r}")
        self.content_type = content_type


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds of a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


async def _check_answer(response: httpx.Response) -> None:
    # An httpx response hook sees every answer, streamed or not, before the SDK turns an error into a
    # ResponseError without headers, or fails on an HTML page with a bare JSONDecodeError.
    if response.status_code < 400:
        content_type = response.headers.get("content-type")
        if (content_type or "").split(";")[0].strip().lower() not in ANSWER_TYPES:
            raise UnexpectedAnswer(content_type)  # (not read: it may be an endless event stream)
        return
    await response.aread()
    message = error_text(response.text)
    raise BackendStatus(response.status_code, message, retry_after_seconds(response.headers.get("retry-after")))


def error_text(body: str) -> str:
    """What an error answer says: Ollama's {"error": ...}, else the whole body."""
    try:
        return str(json.loads(body).get("error") or body)
    except (ValueError, AttributeError):
        return body


def make_client(host: str, api_key: str | None, timeout: float) -> ollama.AsyncClient:
    """An AsyncClient whose requests carry the relay header, whose error answers raise BackendStatus, and answers of
    the wrong kind UnexpectedAnswer."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    hooks = {"request": [add_relay_header], "response": [_check_answer]}
    return ollama.AsyncClient(host=host, headers=headers, timeout=timeout, event_hooks=hooks)


def classify(binding: str, exc: Exception, secrets: list[str], models: Iterable[str] | None = None) -> LollmsError:
    """Our error for whatever a call raised; ``models``: the names Ollama listed last."""
    if isinstance(exc, BackendStatusError):
        retry_after = retry_after_seconds(exc.headers.get("retry-after"))
        return error_for_status(
            binding, exc.status, error_text(exc.text), secrets, retry_after, models=models, address=ADDRESS
        )
    if isinstance(exc, BackendTransportError):
        return error_for_transport(binding, exc.cause_name, timed_out=exc.timed_out)
    if isinstance(exc, BackendAnswerError):
        if exc.body is not None:
            return error_for_answer(binding, "JSON", secrets, body=exc.body, address=ADDRESS)
        return error_for_answer(binding, "JSON", secrets, content_type=exc.content_type, address=ADDRESS)
    if isinstance(exc, BackendStatus):
        return error_for_status(
            binding, exc.status, exc.message, secrets, exc.retry_after, models=models, address=ADDRESS
        )
    if isinstance(exc, UnexpectedAnswer):
        return error_for_answer(binding, "JSON", secrets, content_type=exc.content_type, address=ADDRESS)
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code >= 400:
            return error_for_status(binding, exc.status_code, str(exc.error), secrets, models=models, address=ADDRESS)
        # An {"error": ...} line inside a stream: Ollama failed while generating.
        return backend_failure(binding, "the backend failed while generating", str(exc.error), secrets)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return error_for_transport(binding, exc, timed_out=True)
    if isinstance(exc, httpx.ConnectError | ConnectionError):  # the SDK raises ConnectionError for ConnectError
        return error_for_transport(binding, exc, timed_out=False)
    if isinstance(exc, httpx.TransportError):
        return BackendFailedError(f"binding '{binding}': the connection to the backend broke ({type(exc).__name__})")
    if isinstance(exc, json.JSONDecodeError):  # a line of the answer that is not JSON
        return error_for_answer(binding, "JSON", secrets, body=exc.doc, address=ADDRESS)
    if isinstance(exc, ValueError):  # a malformed answer: fields the SDK's models reject
        summary = f"the backend sent an unusable answer ({type(exc).__name__})"
        return backend_failure(binding, summary, f"{type(exc).__name__}: {exc}", secrets)
    return LollmsError(f"binding '{binding}': unexpected failure talking to the backend ({type(exc).__name__})")


def as_dict(value: Any) -> dict[str, Any]:
    """A mapping from an SDK model or a plain mapping (None gives {})."""
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    return dict(value)
