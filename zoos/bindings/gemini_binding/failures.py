"""Failed Gemini calls as our errors, through remote.py's one table (what Google said is logged, masked): those of
our own HTTP client (generation, speech, Imagen) and google-genai's (the model list)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from google.genai import errors as genai_errors

from lollms_server.core.backend_http import BackendAnswerError, BackendStatusError, BackendTransportError
from lollms_server.core.errors import LollmsError
from lollms_server.core.remote import backend_failure, error_for_answer, error_for_status, error_for_transport


def _library_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, connection failures) of every HTTP library the SDK may use: httpx, httpx2 or aiohttp."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    transport: list[type[BaseException]] = [ConnectionError]
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    try:
        aiohttp = importlib.import_module("aiohttp")
    except ImportError:
        pass
    else:
        transport.append(aiohttp.ClientConnectionError)
    return tuple(timeouts), tuple(transport)


TIMEOUT_ERRORS, TRANSPORT_ERRORS = _library_errors()


def _error_details(body: Any) -> list[dict[str, Any]]:
    """The ``details`` list of a Google error body ({"error": {"details": [...]}})."""
    body = body if isinstance(body, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [item for item in details or [] if isinstance(item, dict)]


def _status(code: int | None, details: list[dict[str, Any]]) -> int:
    # Google answers a wrong API key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): it is an auth failure.
    if code == 400 and any(item.get("reason") == "API_KEY_INVALID" for item in details):
        return 401
    return int(code or 502)


def retry_after(header: str | None, details: list[dict[str, Any]]) -> float | None:
    """Seconds the backend asked us to wait: a Retry-After header, or the RetryInfo detail of a 429."""
    value = header
    if value is None:
        delays = [item.get("retryDelay") for item in details if "RetryInfo" in str(item.get("@type"))]
        value = str(delays[0]).removesuffix("s") if delays else None  # a Duration: "12s", "0.5s"
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _json_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def undecodable_body(exc: BaseException) -> str | None:
    """The text of an answer that is not JSON, when ``exc`` (or what caused it) is the failure to decode it."""
    # The SDK does not show us the answer's headers: its body is what tells an HTML page from an event stream.
    # Plain calls fail with the JSONDecodeError itself, streams with UnknownApiResponseError raised from it.
    for error in (exc, exc.__cause__):
        if isinstance(error, json.JSONDecodeError):
            return error.doc
    return None


def classifier(
    binding: str, secrets: list[str], known_models: Callable[[], Iterable[str]]
) -> Callable[[Exception], LollmsError]:
    """The ``classify`` argument of call_with_retries / stream_with_retries for one instance; ``known_models``
    gives the names of the cached model list, for 404s."""

    def classify(exc: Exception) -> LollmsError:
        if isinstance(exc, BackendStatusError):
            details = _error_details(_json_body(exc.text))
            wait = retry_after(exc.headers.get("retry-after"), details)
            status = _status(exc.status, details)
            return error_for_status(binding, status, exc.text, secrets, wait, models=known_models())
        if isinstance(exc, BackendTransportError):
            return error_for_transport(binding, exc.cause_name, timed_out=exc.timed_out)
        if isinstance(exc, BackendAnswerError):
            return error_for_answer(binding, exc.expected, secrets, content_type=exc.content_type, body=exc.body)
        if isinstance(exc, genai_errors.APIError):
            upstream = f"{exc.message or ''} {exc.details or ''}".strip() or str(exc)
            headers = getattr(getattr(exc, "response", None), "headers", None)
            details = _error_details(exc.details)
            wait = retry_after(headers.get("retry-after") if headers is not None else None, details)
            return error_for_status(binding, _status(exc.code, details), upstream, secrets, wait, models=known_models())
        if isinstance(exc, TIMEOUT_ERRORS):
            return error_for_transport(binding, exc, timed_out=True)
        if isinstance(exc, TRANSPORT_ERRORS):
            return error_for_transport(binding, exc, timed_out=False)
        body = undecodable_body(exc)
        if body is not None:
            return error_for_answer(binding, "JSON", secrets, body=body)
        # Anything else is an answer that could not be used (an unexpected shape).
        summary = f"the backend sent an answer that could not be read ({type(exc).__name__})"
        return backend_failure(binding, summary, f"{type(exc).__name__}: {exc}", secrets)

    return classify
