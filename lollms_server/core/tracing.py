"""OpenTelemetry traces (``server.opentelemetry``, off by default): FastAPI's native instrumentation traces each
request; under it, spans for the compute-slot admission and the binding call (binding, model, task), and the
backend HTTP calls: those of the lean relay client (``client_span``, with the trace context sent along), and
those of httpx and httpx2 (which the SDKs use) when opentelemetry-instrumentation-httpx is installed. Spans go
to an OTLP endpoint (``server.otlp_endpoint``, or the standard OTEL_EXPORTER_OTLP_* variables) through the
OpenTelemetry SDK (the ``otel`` extra). Without a configured provider every span here is a no-op."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

logger = logging.getLogger(__name__)

try:
    from opentelemetry import trace
except ImportError:  # opentelemetry-api comes with FastAPI; without it tracing is simply off
    trace = None  # type: ignore[assignment]

# Set by ``configure``: until then a span costs nothing (even a no-op OpenTelemetry span costs ~15 µs).
_tracer: Any = None


_OFF = nullcontext()  # reusable: what every span is while tracing is off


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None})


def client_span(method: str, url: str, headers: MutableMapping[str, str]) -> AbstractContextManager[Any]:
    """A client span for an HTTP call to a backend (its ``url`` without the query, which may hold a key); the
    trace context goes into ``headers``. Off, it costs nothing and gives None."""
    if _tracer is None:
        return _OFF
    return _client_span(method, url.split("?", 1)[0], headers)


@contextmanager
def _client_span(method: str, url: str, headers: MutableMapping[str, str]) -> Iterator[Any]:
    from opentelemetry import propagate

    attributes = {"http.request.method": method, "url.full": url}
    with _tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT, attributes=attributes) as current:
        propagate.inject(headers)
        yield current


def configure(endpoint: str | None) -> bool:
    """Send spans to OTLP (``endpoint``, else the OTEL_EXPORTER_OTLP_* environment) and trace httpx calls. False
    (and a log line saying what to install) when the SDK is missing."""
    global _tracer
    if trace is None:
        return False
    _tracer = trace.get_tracer("lollms_server")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("server.opentelemetry is on but the SDK is missing: pip install 'lollms-server[otel]'")
        return False
    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # an operator's own setup wins
        provider = TracerProvider(resource=Resource.create({"service.name": "lollms_server"}))
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces") if endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    try:
        from opentelemetry.instrumentation import httpx as instrumentation
    except ImportError:
        logger.info("Backend HTTP calls are not traced: pip install opentelemetry-instrumentation-httpx")
        return True
    # httpx, and httpx2 (what the openai SDK now sends through), each where installed.
    for name in ("HTTPXClientInstrumentor", "HTTPX2ClientInstrumentor"):
        instrumentor = getattr(instrumentation, name, None)
        if instrumentor is not None and instrumentor._module is not None:
            instrumentor().instrument()
    return True
