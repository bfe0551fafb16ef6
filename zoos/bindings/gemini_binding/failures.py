"""google-genai's exceptions as our errors, through remote.py's one table (what Google said is logged, masked)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from google.genai import errors as genai_errors

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


def _error_details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    """The ``details`` list of a Google error body ({"error": {"details": [...]}})."""
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [item for item in details or [] if isinstance(item, dict)]


def _status(exc: genai_errors.APIError) -> int:
    # Google answers a wrong API key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): it is an auth failure.
    if exc.code == 400 and any(item.get("reason") == "API_KEY_INVALID" for item in _error_details(exc)):
        return 401
    return int(exc.code or 502)


def retry_after(exc: genai_errors.APIError) -> float | None:
    """Seconds the backend asked us to wait: a Retry-After header, or the RetryInfo detail of a 429."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        delays = [item.get("retryDelay") for item in _error_details(exc) if "RetryInfo" in str(item.get("@type"))]
        value = str(delays[0]).removesuffix("s") if delays else None  # a Duration: "12s", "0.5s"
    try:
        return float(value) if value else None
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
        if isinstance(exc, genai_errors.APIError):
            upstream = f"{exc.message or ''} {exc.details or ''}".strip() or str(exc)
            return error_for_status(binding, _status(exc), upstream, secrets, retry_after(exc), models=known_models())
        if isinstance(exc, TIMEOUT_ERRORS):
            return error_for_transport(binding, exc, timed_out=True)
        if isinstance(exc, TRANSPORT_ERRORS):
            return error_for_transport(binding, exc, timed_out=False)
        body = undecodable_body(exc)
        if body is not None:
            return error_for_answer(binding, "JSON", secrets, body=body)
        # Anything else is an answer the SDK could not use (an unexpected shape).
        summary = f"the backend sent an answer that could not be read ({type(exc).__name__})"
        return backend_failure(binding, summary, f"{type(exc).__name__}: {exc}", secrets)

    return classify
