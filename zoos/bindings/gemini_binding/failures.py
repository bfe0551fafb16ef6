"""google-genai's exceptions as our errors, through remote.py's one table, with the api_key masked."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from google.genai import errors as genai_errors

from lollms_server.core.errors import BackendFailedError, LollmsError
from lollms_server.core.remote import error_for_status, error_for_transport, sanitize


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


def classifier(binding: str, secrets: list[str]) -> Callable[[Exception], LollmsError]:
    """The ``classify`` argument of call_with_retries / stream_with_retries for one instance."""

    def classify(exc: Exception) -> LollmsError:
        if isinstance(exc, genai_errors.APIError):
            upstream = exc.message or str(exc)
            return error_for_status(binding, _status(exc), upstream, secrets, retry_after(exc))
        if isinstance(exc, TIMEOUT_ERRORS):
            return error_for_transport(binding, exc, timed_out=True)
        if isinstance(exc, TRANSPORT_ERRORS):
            return error_for_transport(binding, exc, timed_out=False)
        # Anything else is an answer the SDK could not use (malformed JSON, unexpected shape).
        detail = sanitize(f"{type(exc).__name__}: {exc}", secrets)
        return BackendFailedError(f"binding '{binding}': unusable answer from the backend ({detail})")

    return classify
