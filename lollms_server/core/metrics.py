"""Prometheus metrics of one server, exposed with prometheus-client's registry and text format.

Counted on the way: HTTP requests and their latency by route, generations by binding/model/task and outcome,
time to first output, tokens and tokens per second, outputs by type, per-key requests, tokens and refusals,
shared-store errors. These are plain dictionaries updated on the event loop (every update happens there, and so
does every scrape, so no lock is needed): a count is a dictionary addition, an observation a bisection —
prometheus-client's own Counter and Histogram take a lock per update, which cost ~10 µs per request here. They
become metric families when scraped. Read when scraped too: the compute queue, active streams, binding health,
loaded models."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from lollms_server.core.generation_record import GenerationRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

Labels = tuple[str, ...]


class LoopCounter:
    """A counter family: value per label values."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, list(labels)
        self.values: defaultdict[Labels, float] = defaultdict(float)
        if not self.labels:
            self.values[()] = 0.0  # a series of its own from the start

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] += amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.help, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(list(labels), value)
        return family


class LoopHistogram:
    """A histogram family: per label values, the count in each bucket (upper bounds inclusive) and the sum."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.help, self.labels = name, help_text, list(labels)
        self.bounds = list(buckets)
        self.data: dict[Labels, list[float]] = {}  # bucket counts..., the +Inf bucket, then the sum

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.data.get(labels)
        if counts is None:
            counts = self.data[labels] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for labels, counts in self.data.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(str, self.bounds), "+Inf"], counts[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(labels), buckets, sum_value=counts[-1])
        return family


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http_requests = LoopCounter(
            "lollms_http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"]
        )
        self.http_latency = LoopHistogram(
            "lollms_http_request_seconds", "Time to the end of the response.", ["route", "method"], LATENCY_BUCKETS
        )
        self.generations = LoopCounter(
            "lollms_generations",
            "Generations by binding instance, model, task and outcome (ok or the error).",
            ["binding", "model", "task", "outcome"],
        )
        self.generation_seconds = LoopHistogram(
            "lollms_generation_seconds", "Duration of generations.", ["binding", "task"], LATENCY_BUCKETS
        )
        self.first_output_seconds = LoopHistogram(
            "lollms_time_to_first_output_seconds",
            "Time to the first token (or output) of streamed generations.",
            ["binding", "task"],
            LATENCY_BUCKETS,
        )
        self.tokens = LoopCounter(
            "lollms_tokens", "Tokens by binding instance, model and kind (prompt or completion).",
            ["binding", "model", "kind"],
        )  # fmt: skip
        self.tokens_per_second = LoopHistogram(
            "lollms_completion_tokens_per_second", "Completion tokens per second after the first output.",
            ["binding"], RATE_BUCKETS,
        )  # fmt: skip
        self.outputs = LoopCounter(
            "lollms_outputs", "Outputs by binding instance, task and type (image, audio, video...).",
            ["binding", "task", "type"],
        )  # fmt: skip
        self.key_requests = LoopCounter("lollms_key_generations", "Generations per API key name.", ["key", "outcome"])
        self.key_tokens = LoopCounter("lollms_key_tokens", "Tokens per API key name and kind.", ["key", "kind"])
        self.key_refusals = LoopCounter("lollms_key_refusals", "Requests refused by a per-key limit.", ["key", "limit"])
        self.shared_state_errors = LoopCounter(
            "lollms_shared_state_errors", "Calls to the shared state store (Redis) that failed."
        )
        self.registry.register(_Families(self))

    def families(self) -> list[LoopCounter | LoopHistogram]:
        return [value for value in vars(self).values() if isinstance(value, (LoopCounter, LoopHistogram))]

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.values[(route, method, str(status))] += 1
        self.http_latency.observe((route, method), seconds)

    def observe(self, record: GenerationRecord) -> None:
        """The generation observer (synchronous: nothing to wait for)."""
        outcome = record.error or "ok"
        binding, model, task = record.binding, record.model or "", record.task
        self.generations.values[(binding, model, task, outcome)] += 1
        if record.ended is not None:
            self.generation_seconds.observe((binding, task), record.ended - record.started)
        if record.streamed and record.first_output is not None:
            self.first_output_seconds.observe((binding, task), record.first_output - record.started)
        if record.prompt_tokens:
            self.tokens.values[(binding, model, "prompt")] += record.prompt_tokens
        if record.completion_tokens:
            self.tokens.values[(binding, model, "completion")] += record.completion_tokens
            if record.first_output is not None and record.ended is not None and record.ended > record.first_output:
                rate = record.completion_tokens / (record.ended - record.first_output)
                self.tokens_per_second.observe((binding,), rate)
        for output_type, count in record.outputs.items():
            self.outputs.values[(binding, task, output_type)] += count
        if record.principal is not None:
            key = record.principal.name
            self.key_requests.values[(key, outcome)] += 1
            if record.prompt_tokens:
                self.key_tokens.values[(key, "prompt")] += record.prompt_tokens
            if record.completion_tokens:
                self.key_tokens.values[(key, "completion")] += record.completion_tokens

    def refused(self, key: str, limit: str) -> None:
        self.key_refusals.values[(key, limit)] += 1

    def watch(self, state: Callable[[], Any]) -> None:
        """Read the app's live state (``state()``: the app's ``state``) when scraped."""
        self.registry.register(_LiveState(state))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Families(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        for family in self.metrics.families():
            yield family.family()


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
