"""OpenTelemetry traces with server.opentelemetry on, collected by the SDK's in-memory exporter: one trace per
request holding the compute-slot admission, the binding call (binding, model, task) and, under it, the backend's
HTTP call (httpx, as the openai binding makes it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from lollms_server.core.config import ServerConfig
from tests.conftest import running_client
from tests.helpers import add_scripted_binding, make_config, write_instance
from tests.server import serving
from tests.zoo.openai_fake_server import FakeOpenAI

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="install with ./run_tests.sh (the otel extra)")
pytest.importorskip("opentelemetry.instrumentation.httpx", reason="install with ./run_tests.sh (the otel extra)")
pytest.importorskip("openai", reason="install with ./run_tests.sh (the openai extra)")


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.instrumentation import httpx as instrumentation
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk.TracerProvider):  # once per process: the global provider cannot be replaced
        provider = sdk.TracerProvider()
        trace.set_tracer_provider(provider)
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield exporter
    finally:
        processor.shutdown()
        for name in ("HTTPXClientInstrumentor", "HTTPX2ClientInstrumentor"):
            instrumentor = getattr(instrumentation, name, None)
            if instrumentor is not None and instrumentor._module is not None:
                instrumentor().uninstrument()


PROMPT = {"input_data": [{"type": "text", "role": "user_prompt", "data": "hi"}]}


def traced_config(root: Path, backend: str) -> ServerConfig:
    """Tracing on; "remote" (openai_binding on the fake backend) and "scripted" (a local binding taking a slot)."""
    config = make_config(
        root,
        server={"opentelemetry": True},
        bindings_map={"remote": "openai_binding", "scripted": "scripted_binding"},
        defaults={"ttt_binding": "remote"},
    )
    write_instance(
        config,
        "remote",
        {"type": "openai_binding", "base_url": f"{backend}/v1", "api_key": "sk-x", "default_model": "fake-text"},
    )
    add_scripted_binding(config, default_model="model-a", local=True)
    return config


async def test_a_local_generation_traces_its_admission_and_binding_call(tmp_path: Path, spans: Any) -> None:
    async with serving(FakeOpenAI(reply="traced").app()) as backend:
        async with running_client(create_app(traced_config(tmp_path, backend))) as client:
            spans.clear()
            local = await client.post("/api/v1/generate", json={**PROMPT, "binding_name": "scripted"})
    assert local.status_code == 200
    local_spans = {span.name: span for span in spans.get_finished_spans()}
    assert "lollms.admission" in local_spans and "lollms.binding.generate" in local_spans
    assert local_spans["lollms.admission"].context.trace_id == local_spans["lollms.binding.generate"].context.trace_id


async def test_the_backend_http_call_is_a_child_of_the_binding_call(tmp_path: Path, spans: Any) -> None:
    async with serving(FakeOpenAI(reply="traced").app()) as backend:
        async with running_client(create_app(traced_config(tmp_path, backend))) as client:
            spans.clear()
            answer = await client.post("/api/v1/generate", json=PROMPT)
    assert answer.status_code == 200
    finished = spans.get_finished_spans()
    binding = next(span for span in finished if span.name == "lollms.binding.generate")
    assert binding.attributes["binding"] == "remote" and binding.attributes["task"] == "ttt"
    http = [span for span in finished if span.parent is not None and span.parent.span_id == binding.context.span_id]
    assert http and any("chat/completions" in str(span.attributes) for span in http)
    request = [span for span in finished if span.context.trace_id == binding.context.trace_id and span.parent is None]
    assert request and "/api/v1/generate" in request[0].name  # FastAPI's span of the request is the root
