"""Shared plumbing of remote bindings: timeouts and retries, and backend failures as our errors.

Each remote binding translates its SDK's exceptions with ``error_for_status`` / ``error_for_transport`` /
``error_for_answer`` / ``backend_failure`` and wraps its calls in ``call_with_retries`` or
``stream_with_retries``. Retries happen only before the first byte of an answer has been passed on.

What a backend says is never passed on to our clients, not even masked: an upstream may echo the instance's
key in any form (truncated, URL-encoded, upper-cased). Client messages are built only from what we control
(the binding's name, the HTTP status, a category, a hint of what to fix); the upstream text goes to the log,
at WARNING with the binding's name, after ``mask``. Instance schemas of remote bindings declare ``timeout``,
``max_retries`` and ``retry_backoff`` (``RetryPolicy``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from lollms_server.core.errors import (
    BackendAuthError,
    BackendError,
    BackendFailedError,
    BackendLoopError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnreachableError,
    BadRequestError,
    LollmsError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Things that look like credentials, whatever the vendor: OpenAI-style sk-..., Google API keys, HTTP auth.
_CREDENTIAL_LIKE = re.compile(r"(?i)(sk-[A-Za-z0-9_\-*.]{4,}|AIza[A-Za-z0-9_\-]{10,}|(?:Bearer|Basic)\s+[^\s\"',;]+)")
# A named credential's value ("api_key": "...", key=..., token: ...): the name stays, the value goes.
_ASSIGNED_CREDENTIAL = re.compile(
    r"(?i)\b((?:x-goog-)?api[_-]?key|access[_-]?token|token|secret|password|key)([\"']?\s*[:=]\s*[\"']?)([^\s\"',;&]{4,})"
)
_FRAGMENT = 8  # this many characters of a secret in a row are masked wherever they appear
_MAX_LOGGED = 2000  # characters of an upstream message kept for the log
_MAX_MODELS_NAMED = 25
_MAX_RETRY_DELAY = 30.0
# Content types we name when a backend answers something unreadable; others are not echoed.
_KNOWN_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/octet-stream",
        "application/x-ndjson",
        "application/xhtml+xml",
        "application/xml",
        "text/event-stream",
        "text/html",
        "text/plain",
        "text/xml",
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 120.0
    max_retries: int = 2
    backoff: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            timeout=float(config.get("timeout") or 120.0),
            max_retries=int(config.get("max_retries", 2)),
            backoff=float(config.get("retry_backoff", 0.5)),
        )

    def delay(self, attempt: int, error: LollmsError) -> float:
        retry_after = getattr(error, "retry_after", None)
        return min(retry_after if retry_after else self.backoff * (2**attempt), _MAX_RETRY_DELAY)


# --- masking (for the log; clients never get upstream text) -----------------------------------------------
def _lowered(text: str) -> str:
    """``text`` in lower case, one character for one (so positions stay valid)."""
    if text.isascii():
        return text.lower()
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


def _forms(secret: str) -> set[str]:
    """The spellings of ``secret`` an upstream may echo, lower-cased (matching ignores case)."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    if len(secret) >= _FRAGMENT:  # (a short secret's base64 would mask common letter pairs)
        forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return {_lowered(form) for form in forms if form}


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` fit for the log: the secrets in any case, URL-encoded or base64, any piece of them of 8 or more
    characters, and credential-like strings are masked; long texts are cut."""
    if len(text) > _MAX_LOGGED:
        text = text[:_MAX_LOGGED] + "..."
    lowered = _lowered(text)
    hidden = bytearray(len(text))  # 1 for each character that belongs to a secret
    windows: set[str] = set()
    for form in {form for secret in secrets if secret for form in _forms(secret)}:
        if len(form) >= _FRAGMENT:
            windows.update(form[i : i + _FRAGMENT] for i in range(len(form) - _FRAGMENT + 1))
            continue
        start = lowered.find(form)
        while start >= 0:
            hidden[start : start + len(form)] = b"\x01" * len(form)
            start = lowered.find(form, start + 1)
    if windows:
        for i in range(len(lowered) - _FRAGMENT + 1):
            if lowered[i : i + _FRAGMENT] in windows:
                hidden[i : i + _FRAGMENT] = b"\x01" * _FRAGMENT
    if any(hidden):
        pieces, i = [], 0
        while i < len(text):
            j = i
            while j < len(text) and hidden[j] == hidden[i]:
                j += 1
            pieces.append("***" if hidden[i] else text[i:j])
            i = j
        text = "".join(pieces)
    text = _ASSIGNED_CREDENTIAL.sub(lambda match: f"{match[1]}{match[2]}***", text)
    return _CREDENTIAL_LIKE.sub("***", text)


def _log_upstream(binding: str, what: str, upstream: str, secrets: Iterable[str]) -> None:
    logger.warning("Binding '%s': %s; the backend said: %s", binding, what, mask(upstream, secrets))


# --- backend failures as our errors -----------------------------------------------------------------------
def _models_named(models: Iterable[str] | None) -> str:
    names = sorted(models or ())
    if not names:
        return ""
    shown = ", ".join(names[:_MAX_MODELS_NAMED]) + (", ..." if len(names) > _MAX_MODELS_NAMED else "")
    return f" (models it lists: {shown})"


def error_for_status(
    binding: str,
    status: int,
    upstream: str,
    secrets: Iterable[str],
    retry_after: float | None = None,
    *,
    models: Iterable[str] | None = None,
    address: str = "base_url",
) -> LollmsError:
    """Our error for a backend's HTTP error answer; ``upstream`` (its text) is logged masked, never returned.

    ``models``: the names in the binding's cached model list, named in a 404; ``address``: the instance setting
    that points at the backend, named when it may be wrong."""
    _log_upstream(binding, f"the backend answered HTTP {status}", upstream, secrets)
    where = f"binding '{binding}'"
    if status in (401, 403):
        return BackendAuthError(
            f"{where}: the backend refused the instance's credentials (HTTP {status}); check the instance's "
            "api_key (the server's key for that backend, not the key of this request)"
        )
    if status == 429:
        return BackendRateLimitError(f"{where}: the backend is rate limiting (HTTP 429); retry later", retry_after)
    if status == 404:
        return NotFoundError(
            f"{where}: the backend answered HTTP 404: it does not know the model, or {address} is wrong"
            f"{_models_named(models)}"
        )
    if status in (400, 413, 422):
        return BadRequestError(
            f"{where}: the backend refused the request (HTTP {status}); its reason is in this server's log"
        )
    if status in (408, 504):
        return BackendTimeoutError(f"{where}: the backend timed out (HTTP {status})")
    if status == 508:
        return BackendLoopError(
            f"{where}: the backend answered 508 Loop Detected: behind the instance's {address}, the request came back "
            "to a lollms server it had passed through (this one, or another: relay instances point at each other)"
        )
    if status >= 500:
        return BackendFailedError(f"{where}: the backend failed (HTTP {status})")
    # Another 4xx (405, 410, 415...): nothing a retry would change; most likely the address is wrong.
    return _final(BackendFailedError(f"{where}: the backend refused the request (HTTP {status}); is {address} right?"))


def error_for_transport(binding: str, cause: BaseException | str, timed_out: bool) -> LollmsError:
    """Our error for a failure to talk to the backend at all; ``cause``: the exception, or its class name."""
    what = cause if isinstance(cause, str) else type(cause).__name__
    if timed_out:
        return BackendTimeoutError(f"binding '{binding}': the backend did not answer in time ({what})")
    return BackendUnreachableError(f"binding '{binding}': the backend is unreachable ({what})")


def _content_type_named(content_type: str) -> str:
    media = content_type.split(";")[0].strip().lower()
    if not media:
        return "no content type"
    return media if media in _KNOWN_MEDIA_TYPES else "an unexpected content type"


def _body_named(body: str) -> str:
    start = body.lstrip()[:200].lower()
    if not start:
        return "an empty body"
    if start.startswith("<") and "html" in start:
        return "an HTML page"
    if start.startswith(("data:", "event:", "id:", ":")):
        return "an event stream"
    return "a body that is not JSON"


def error_for_answer(
    binding: str,
    expected: str,
    secrets: Iterable[str],
    *,
    content_type: str | None = None,
    body: str | None = None,
    address: str = "base_url",
) -> LollmsError:
    """Our error for a successful answer of the wrong kind: an HTML page (a wrong address, a proxy's login page),
    an event stream to a call that did not ask for one. It names the answer's ``content_type`` when the SDK
    lets us see it, else what the start of its ``body`` looks like. Not retried: it would come back the same."""
    what = _content_type_named(content_type or "") if body is None else _body_named(body)
    seen = f"content type {content_type!r}" if body is None else f"a body starting {body[:200]!r}"
    logger.warning("Binding '%s': expected %s, the backend answered %s", binding, expected, mask(seen, secrets))
    return _final(
        BackendFailedError(f"binding '{binding}': the backend answered {what}, not {expected}: is {address} right?")
    )


def backend_failure(binding: str, summary: str, upstream: str, secrets: Iterable[str]) -> LollmsError:
    """Our error for a failure the backend reported some other way (an error inside a stream, an answer its
    SDK could not read): ``summary`` for the client, ``upstream`` logged masked."""
    _log_upstream(binding, summary, upstream, secrets)
    return BackendFailedError(f"binding '{binding}': {summary}")


def _final(error: BackendError) -> BackendError:
    error.retryable = False
    return error


async def _retry_or_raise(
    exc: Exception, attempt: int, policy: RetryPolicy, classify: Callable[[Exception], LollmsError]
) -> None:
    """Sleep before the next attempt when the failure is retryable and attempts remain; raise otherwise."""
    if isinstance(exc, LollmsError):
        raise exc
    error = classify(exc)
    if not (isinstance(error, BackendError) and error.retryable and attempt < policy.max_retries):
        # Not chained: the SDK's exception holds the upstream text, and tracebacks get logged unmasked.
        raise error from None
    await asyncio.sleep(policy.delay(attempt, error))


async def call_with_retries(
    operation: Callable[[], Awaitable[T]], policy: RetryPolicy, classify: Callable[[Exception], LollmsError]
) -> T:
    """Run ``operation``, retrying retryable backend failures; raise our error for the last failure."""
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            await _retry_or_raise(exc, attempt, policy, classify)
            attempt += 1


async def stream_with_retries(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]],
    policy: RetryPolicy,
    classify: Callable[[Exception], LollmsError],
) -> AsyncGenerator[T, None]:
    """Items of a backend stream. Opening it and waiting for its first item are retried; once an item has
    been passed on, a failure is raised (as our error) and never retried."""
    attempt = 0
    while True:
        try:
            iterator = aiter(await open_stream())
            first = await anext(iterator)
            break
        except StopAsyncIteration:
            return
        except Exception as exc:
            await _retry_or_raise(exc, attempt, policy, classify)
            attempt += 1
    try:
        yield first
        async for item in iterator:
            yield item
    except LollmsError:
        raise
    except Exception as exc:
        raise classify(exc) from None
    finally:
        # Close the backend stream now, not whenever the garbage collector gets to it: its connection
        # goes back to the pool (or is dropped) as soon as our consumer stops.
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
