"""Prometheus metrics of one server (prometheus-client, one registry per app).

Counted on the way (cheap: a label lookup and an increment): HTTP requests and their latency by route, generations
by binding/model/task and outcome, time to first output, tokens and tokens per second, outputs by type, per-key
requests, tokens and refusals, shared-store errors. Read when scraped (nothing on the hot path): the compute queue,
active streams, binding health, loaded models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lollms_server.core.generation_record import GenerationRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "lollms_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "lollms_http_request_seconds", "Time to the end of the response.", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.generations = Counter(
            "lollms_generations", "Generations by binding instance, model, task and outcome (ok or the error).",
            ["binding", "model", "task", "outcome"], registry=r,
        )  # fmt: skip
        self.generation_seconds = Histogram(
            "lollms_generation_seconds", "Duration of generations.", ["binding", "task"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.first_output_seconds = Histogram(
            "lollms_time_to_first_output_seconds", "Time to the first token (or output) of streamed generations.",
            ["binding", "task"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "lollms_tokens", "Tokens by binding instance, model and kind (prompt or completion).",
            ["binding", "model", "kind"], registry=r,
        )  # fmt: skip
        self.tokens_per_second = Histogram(
            "lollms_completion_tokens_per_second", "Completion tokens per second after the first output.",
            ["binding"], buckets=RATE_BUCKETS, registry=r,
        )  # fmt: skip
        self.outputs = Counter(
            "lollms_outputs", "Outputs by binding instance, task and type (image, audio, video...).",
            ["binding", "task", "type"], registry=r,
        )  # fmt: skip
        self.key_requests = Counter(
            "lollms_key_generations", "Generations per API key name.", ["key", "outcome"], registry=r
        )
        self.key_tokens = Counter("lollms_key_tokens", "Tokens per API key name and kind.", ["key", "kind"], registry=r)
        self.key_refusals = Counter(
            "lollms_key_refusals", "Requests refused by a per-key limit.", ["key", "limit"], registry=r
        )
        self.shared_state_errors = Counter(
            "lollms_shared_state_errors", "Calls to the shared state store (Redis) that failed.", registry=r
        )
        # Label children by label values (each label set is bounded: routes, instances, tasks, key names).
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._generation: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}
        self._keys: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._outputs: dict[tuple[str, str, str], Any] = {}

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per label set, not per request
            children = self._http[key] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_latency.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def _generation_children(self, record: GenerationRecord, outcome: str) -> tuple[Any, ...]:
        key = (record.binding, record.model or "", record.task, outcome)
        children = self._generation.get(key)
        if children is None:
            binding, model, task = key[:3]
            children = self._generation[key] = (
                self.generations.labels(binding, model, task, outcome),
                self.generation_seconds.labels(binding, task),
                self.first_output_seconds.labels(binding, task),
                self.tokens.labels(binding, model, "prompt"),
                self.tokens.labels(binding, model, "completion"),
                self.tokens_per_second.labels(binding),
            )
        return children

    def _key_children(self, name: str, outcome: str) -> tuple[Any, ...]:
        children = self._keys.get((name, outcome))
        if children is None:
            children = self._keys[(name, outcome)] = (
                self.key_requests.labels(name, outcome),
                self.key_tokens.labels(name, "prompt"),
                self.key_tokens.labels(name, "completion"),
            )
        return children

    def observe(self, record: GenerationRecord) -> None:
        """The generation observer (synchronous: nothing to wait for)."""
        outcome = record.error or "ok"
        generations, seconds, first_output, prompt, completion, rate = self._generation_children(record, outcome)
        generations.inc()
        if record.ended is not None:
            seconds.observe(record.ended - record.started)
        if record.streamed and record.first_output is not None:
            first_output.observe(record.first_output - record.started)
        if record.prompt_tokens:
            prompt.inc(record.prompt_tokens)
        if record.completion_tokens:
            completion.inc(record.completion_tokens)
            if record.first_output is not None and record.ended is not None and record.ended > record.first_output:
                rate.observe(record.completion_tokens / (record.ended - record.first_output))
        for output_type, count in record.outputs.items():
            key = (record.binding, record.task, output_type)
            child = self._outputs.get(key)
            if child is None:
                child = self._outputs[key] = self.outputs.labels(*key)
            child.inc(count)
        if record.principal is not None:
            requests, key_prompt, key_completion = self._key_children(record.principal.name, outcome)
            requests.inc()
            if record.prompt_tokens:
                key_prompt.inc(record.prompt_tokens)
            if record.completion_tokens:
                key_completion.inc(record.completion_tokens)

    def refused(self, key: str, limit: str) -> None:
        self.key_refusals.labels(key, limit).inc()

    def watch(self, state: Callable[[], Any]) -> None:
        """Read the app's live state (``state()``: the app's ``state``) when scraped."""
        self.registry.register(_LiveState(state))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LiveState(Collector):
    """The compute queue, streams, binding health and loaded models, read at scrape time."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration; collect() decides what exists

    def collect(self) -> Iterator[Any]:
        state = self.state()
        resources = getattr(state, "resource_manager", None)
        if resources is not None:
            stats = resources.stats()
            for name, value, help_text in (
                ("lollms_queue_active", stats.active, "Compute slots in use."),
                ("lollms_queue_waiting", stats.waiting, "Requests waiting for a compute slot."),
                ("lollms_queue_max_wait_seconds", stats.max_wait_seconds, "Longest wait for a slot so far."),
            ):
                yield GaugeMetricFamily(name, help_text, value=float(value or 0))
            for name, value, help_text in (
                ("lollms_queue_admitted", stats.admitted_total, "Requests given a compute slot."),
                ("lollms_queue_timed_out", stats.timed_out_total, "Requests that waited too long (408)."),
                ("lollms_queue_rejected", stats.rejected_total, "Requests refused because the queue was full (503)."),
            ):
                yield CounterMetricFamily(name, help_text, value=float(value))
            loaded = GaugeMetricFamily(
                "lollms_loaded_model_bytes",
                "Models held loaded (their size; 0 when unknown).",
                labels=["instance", "model"],
            )
            for model in resources.models.stats().models:
                loaded.add_metric([model["instance"], model["model"]], float(model.get("size") or 0))
            yield loaded
        service = getattr(state, "generation_service", None)
        if service is not None:
            yield GaugeMetricFamily("lollms_active_streams", "Streams being generated.", value=service.active_streams)
        bindings = getattr(state, "binding_manager", None)
        if bindings is not None:
            health = GaugeMetricFamily(
                "lollms_binding_up", "1 when a binding instance is active.", labels=["instance", "type", "status"]
            )
            for name, info in bindings.list_instances().items():
                status = str(info.get("status"))
                health.add_metric([name, str(info.get("type") or ""), status], 1.0 if status == "active" else 0.0)
            yield health
