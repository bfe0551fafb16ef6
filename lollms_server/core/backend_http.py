"""Lean HTTP to JSON backends, for the hot relay path of remote bindings (chat completions, streamed or not).

One aiohttp session per binding instance (llhttp, a C parser; a keep-alive pool per host), request bodies and
answers through orjson, event streams read line by line into plain dictionaries. Against the openai SDK (typed
objects, httpx's pure-Python h11 parser and its pool scan) a 20-chunk stream costs a tenth of the CPU
(bench/README.md, "Relay"). Failures come out as three exceptions that the binding turns into our errors
(``lollms_server.core.remote``): an HTTP error answer, a transport failure, an answer of the wrong kind.
Backend calls are traced as OpenTelemetry client spans when tracing is on, with the trace context sent along, and
carry the relay header (``lollms_server.core.relay``) so that a backend leading back to this server is caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDict
from yarl import URL

from lollms_server.core.relay import relay_headers
from lollms_server.core.tracing import client_span

# Connections kept per backend host: enough for the server's own concurrency, bounded so a slow backend cannot
# make us open thousands of sockets to it.
DEFAULT_MAX_CONNECTIONS = 256
MAX_ERROR_BYTES = 64 * 1024  # of an error answer's body, kept for the log
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # of an answer, or of one event of a stream: a backend cannot make us grow further


class BackendHttpError(Exception):
    """A call to the backend failed; the binding turns this into one of our errors."""


class BackendStatusError(BackendHttpError):
    """The backend answered an HTTP error; ``text`` is its body (for the log only: it may echo secrets), ``headers``
    its headers (any case)."""

    def __init__(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.text = text
        self.headers = headers

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers.get("retry-after") or "") or None
        except ValueError:
            return None


class BackendTransportError(BackendHttpError):
    """The backend could not be reached, dropped the connection, or did not answer in time."""

    def __init__(self, cause: BaseException, timed_out: bool) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(cause).__name__
        self.timed_out = timed_out


class BackendAnswerError(BackendHttpError):
    """A successful answer of the wrong kind: not JSON, or not an event stream."""

    def __init__(self, expected: str, content_type: str | None, body: str | None = None) -> None:
        super().__init__(f"expected {expected}")
        self.expected = expected
        self.content_type = content_type
        self.body = body


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _env_proxy(url: str) -> tuple[Any, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url`` (and its credentials), or (None, None)."""
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


def _transport_error(exc: BaseException) -> BackendTransportError:
    return BackendTransportError(exc, timed_out=isinstance(exc, asyncio.TimeoutError))


class BackendClient:
    """JSON over HTTP to one backend (``base_url``), with ``headers`` on every request. Made lazily in the
    running event loop; ``close`` frees its connections (a later call opens new ones)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json", **headers}
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # HTTP(S)_PROXY and NO_PROXY, as the official SDKs honour them: looked up once here, since aiohttp's
        # trust_env looks them (and ~/.netrc) up in a worker thread on every request.
        self.proxy, self.proxy_auth = _env_proxy(self.base_url)

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.max_connections, ttl_dns_cache=300),
                # The timeout holds for connecting and for each read, never for a whole (long) stream.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
                headers=self.headers,
                cookie_jar=aiohttp.DummyCookieJar(),  # a backend's cookies never reach another request
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def _send(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> aiohttp.ClientResponse:
        """The answer's status and headers (an HTTP error raised as BackendStatusError); its body is the caller's."""
        url = f"{self.base_url}{path}"
        headers = {"Content-Type": "application/json", **relay_headers()} if body is not None else relay_headers()
        data = orjson.dumps(body) if body is not None else None
        kwargs: dict[str, Any] = {"proxy": self.proxy, "proxy_auth": self.proxy_auth} if self.proxy else {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        with client_span(method, url, headers) as span:
            try:
                response = await self._session_now().request(method, url, data=data, headers=headers, **kwargs)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _transport_error(exc) from None
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
        if response.status >= 400:
            try:
                text = (await response.content.read(MAX_ERROR_BYTES)).decode("utf-8", "replace")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                text = ""
            finally:
                response.release()
            raise BackendStatusError(response.status, text, CIMultiDict(response.headers))
        return response

    async def get_json(self, path: str, timeout: float | None = None) -> Any:
        return await self._json(await self._send("GET", path, timeout=timeout))

    async def post_json(self, path: str, body: Any) -> Any:
        return await self._json(await self._send("POST", path, body))

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        too_big = BackendAnswerError(f"an answer of at most {MAX_ANSWER_BYTES:,} bytes", response.content_type)
        try:
            if (response.content_length or 0) > MAX_ANSWER_BYTES:
                raise too_big
            pieces, size = [], 0
            async for piece in response.content.iter_any():
                pieces.append(piece)
                size += len(piece)
                if size > MAX_ANSWER_BYTES:
                    raise too_big
            raw = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _transport_error(exc) from None
        finally:
            response.release()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            content_type = response.headers.get("Content-Type")
            body = (
                None
                if _media_type(content_type) not in ("", "application/json")
                else raw[:200].decode("utf-8", "replace")
            )
            raise BackendAnswerError("JSON", content_type, body) from None

    async def open_events(self, path: str, body: Any) -> AsyncIterator[Any]:
        """POST ``body`` and return the answer's event stream: each ``data:`` payload decoded from JSON, up to
        ``[DONE]``. Raises before returning when the answer is an error or not an event stream."""
        response = await self._open(path, body, ("", "text/event-stream"), "an event stream")
        return _items(response, ServerSentEvents())

    async def open_lines(self, path: str, body: Any) -> AsyncIterator[Any]:
        """POST ``body`` and return the answer's JSON lines (NDJSON, as Ollama streams), each decoded."""
        response = await self._open(path, body, ("", "application/json", "application/x-ndjson"), "JSON lines")
        return _items(response, JsonLines())

    async def _open(self, path: str, body: Any, media_types: tuple[str, ...], expected: str) -> aiohttp.ClientResponse:
        response = await self._send("POST", path, body)
        content_type = response.headers.get("Content-Type")
        if _media_type(content_type) not in media_types:
            # Read as a stream, an HTML page has no items: it would pass for an empty answer.
            response.release()
            raise BackendAnswerError(expected, content_type)
        return response


_NOTHING = object()  # a line that completes no item
_DONE = object()  # the stream's own end marker


def _decoded(payload: bytes, expected: str) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise BackendAnswerError(expected, None, payload[:200].decode("utf-8", "replace")) from None


class ServerSentEvents:
    """Lines to events: ``data:`` lines joined until a blank line, decoded from JSON; ``[DONE]`` ends them."""

    def __init__(self) -> None:
        self.data: list[bytes] = []

    def feed(self, line: bytes) -> Any:
        if line.startswith(b"data:"):
            self.data.append(line[6:] if line[5:6] == b" " else line[5:])
            return _NOTHING
        if line or not self.data:  # a comment, an event name or id, or a blank line with no data: skipped
            return _NOTHING
        payload = self.data[0] if len(self.data) == 1 else b"\n".join(self.data)
        self.data = []
        return _DONE if payload == b"[DONE]" else _decoded(payload, "JSON events")

    def end(self) -> Any:
        """The last event when the stream ended without its blank line."""
        return self.feed(b"") if self.data else _NOTHING


class JsonLines:
    """Lines to JSON values; blank lines are skipped."""

    def feed(self, line: bytes) -> Any:
        return _decoded(line, "JSON lines") if line.strip() else _NOTHING

    def end(self) -> Any:
        return _NOTHING


async def _items(response: aiohttp.ClientResponse, parser: ServerSentEvents | JsonLines) -> AsyncIterator[Any]:
    """The items ``parser`` makes of the answer's lines. What has arrived is split into lines at once (a backend
    sends many per read): no read per line. A line over MAX_ANSWER_BYTES is refused."""
    partial: list[bytes] = []  # the pieces of a line that has not ended yet
    partial_size = 0
    try:
        async for received in response.content.iter_any():
            if b"\n" not in received:
                partial.append(received)
                partial_size += len(received)
                if partial_size > MAX_ANSWER_BYTES:
                    raise BackendAnswerError(f"lines of at most {MAX_ANSWER_BYTES:,} bytes", response.content_type)
                continue
            lines = (b"".join(partial) + received if partial else received).split(b"\n")
            last = lines.pop()
            partial, partial_size = ([last], len(last)) if last else ([], 0)
            for line in lines:
                item = parser.feed(line[:-1] if line[-1:] == b"\r" else line)
                if item is _DONE:
                    return
                if item is not _NOTHING:
                    yield item
        for item in (parser.feed(b"".join(partial)) if partial else _NOTHING, parser.end()):
            if item is _DONE:
                return
            if item is not _NOTHING:
                yield item
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _transport_error(exc) from None
    finally:
        response.release()
