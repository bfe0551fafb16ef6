"""Typed stream events, the one adapter from the spec's chunk dicts, and the one accumulator of outputs.

Bindings and scripted workflows keep yielding the spec's dicts (``{"type": "chunk" | "info" | "error" |
"function_call" | "final", ...}``) or plain strings; ``event_of`` turns each into a typed event, and
``OutputAccumulator`` builds the complete outputs from a stream of events — the same way for a streamed
request and for one answered at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lollms_server.core.domain import OutputData
from lollms_server.core.think import ThinkParser
from lollms_server.core.tools import FUNCTION_CALL, TOOL_CALLS_FINISH, is_client_call

CHUNK_TYPES = ("chunk", "info", "error", "function_call", "final")
# Side events that are also outputs of the answer.
KEPT_SIDE_EVENTS = ("info", "error", FUNCTION_CALL)


# The per-token events are plain slotted dataclasses: a frozen one costs four times as much to build, on the
# hottest path of the server (two per streamed token). Treat them as immutable all the same.
@dataclass(slots=True)
class TextDelta:
    """A piece of generated text (``thoughts``: reasoning that came apart from it)."""

    text: str
    thoughts: str | None = None


@dataclass(slots=True)
class SideEvent:
    """An ``info``, ``error`` or ``function_call`` event: passed on as it is, kept as an output."""

    kind: str
    content: Any = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class MediaDelta:
    """A piece of binary output as it is made (a sentence of speech): an OutputData-shaped dict, playable alone."""

    output: dict[str, Any]


@dataclass(frozen=True)
class FinalEvent:
    """The end of a stream: complete outputs (None: the text deltas are the output) and metadata."""

    outputs: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


StreamEvent = TextDelta | SideEvent | MediaDelta | FinalEvent
MEDIA_TYPES = ("audio", "image", "video")


@dataclass(frozen=True)
class Completed:
    """The last event of a generation stream as the pipeline gives it: every output, and the metadata."""

    outputs: list[OutputData]
    metadata: dict[str, Any] = field(default_factory=dict)


# What GenerationService.stream yields, for every API edge to translate into its wire format.
GenerationEvent = TextDelta | SideEvent | MediaDelta | Completed


def stream_chunk(event: GenerationEvent) -> dict[str, Any]:
    """The spec's StreamChunk (as a dict) of a pipeline event: what /api/v1/generate streams."""
    if isinstance(event, TextDelta):
        return {"type": "chunk", "content": event.text, "thoughts": event.thoughts}
    if isinstance(event, SideEvent):
        return {"type": event.kind, "content": event.content, "thoughts": None, "metadata": event.metadata}
    if isinstance(event, MediaDelta):
        return {"type": "chunk", "content": event.output, "thoughts": None}
    return {
        "type": "final",
        "content": [output.model_dump() for output in event.outputs],
        "thoughts": None,
        "metadata": event.metadata,
    }


def output_dicts(result: Any) -> list[dict[str, Any]]:
    """A complete result (str, dict, list of them, or a final chunk) as OutputData-shaped dicts."""
    if result is None:
        return []
    if isinstance(result, str):
        return [{"type": "text", "data": result}]
    if isinstance(result, dict):
        if result.get("type") == "final" and isinstance(result.get("content"), list):
            return output_dicts(result["content"])
        return [result]
    if isinstance(result, list):
        return [item for entry in result for item in output_dicts(entry)]
    return [{"type": "json", "data": result}]


def event_of(item: Any) -> StreamEvent:
    """The typed event of one item a binding or workflow yielded (anything else is a final JSON output)."""
    if isinstance(item, str):
        return TextDelta(item)
    kind = item.get("type") if isinstance(item, dict) else None
    if kind == "chunk":
        content = item.get("content")
        if isinstance(content, dict) and content.get("type") in MEDIA_TYPES:
            return MediaDelta(content)
        return TextDelta(str(content or ""), item.get("thoughts") or None)
    if kind in ("info", "error", "function_call"):
        return SideEvent(kind, item.get("content"), item.get("metadata"))
    if kind == "final":
        content = item.get("content")
        return FinalEvent(output_dicts(content) if content is not None else None, dict(item.get("metadata") or {}))
    return FinalEvent(output_dicts(item))


class OutputAccumulator:
    """Builds the complete outputs of a stream of events: text deltas (with ``<think>`` blocks moved to
    thoughts), final outputs, and side events kept as outputs of their kind."""

    def __init__(self, split_think: bool = True) -> None:
        self._parser = ThinkParser() if split_think else None
        self._text: list[str] = []
        self._thoughts: list[str] = []
        self._final: list[dict[str, Any]] | None = None
        self._side: list[dict[str, Any]] = []
        self._media: list[dict[str, Any]] = []
        self.metadata: dict[str, Any] = {}

    def add(self, event: StreamEvent) -> TextDelta | None:
        """Take one event; for text, return the delta as it should be shown (thoughts split out) or None."""
        if isinstance(event, TextDelta):
            visible, thought = self._parser.feed(event.text) if self._parser else (event.text, "")
            return self._keep(visible, thought + (event.thoughts or ""))
        if isinstance(event, MediaDelta):
            self._media.append(event.output)
            return None
        if isinstance(event, FinalEvent):
            if event.outputs is not None:
                self._final = (self._final or []) + event.outputs
            self.metadata.update(event.metadata)
        elif event.kind in KEPT_SIDE_EVENTS:
            self._side.append({"type": event.kind, "data": event.content, "metadata": event.metadata})
        outputs = (*self._side, *(self._final or []))
        if any(output["type"] == FUNCTION_CALL and is_client_call(output.get("data")) for output in outputs):
            self.metadata["finish_reason"] = TOOL_CALLS_FINISH  # whatever else the binding said
        return None

    def flush(self) -> TextDelta | None:
        """The text held back while looking for a closing ``</think>``, at the end of the stream."""
        if self._parser is None:
            return None
        return self._keep(*self._parser.flush())

    def _keep(self, visible: str, thought: str) -> TextDelta | None:
        if not (visible or thought):
            return None
        self._text.append(visible)
        self._thoughts.append(thought)
        return TextDelta(visible, thought or None)

    def outputs(self, text_when_empty: bool = False) -> list[dict[str, Any]]:
        """OutputData-shaped dicts: the final outputs, else the text (with the stream's metadata; an empty
        text only when ``text_when_empty``), then the side events kept as outputs."""
        if self._final is not None:
            main = list(self._final)
        elif self._media:  # pieces of binary output, each one an output (the text, if any, first)
            main = ([self.text_output()] if "".join(self._text) else []) + self._media
        elif self._text or text_when_empty:
            main = [self.text_output()]
        else:
            main = []
        return main + self._side

    def text_output(self) -> dict[str, Any]:
        """The text as one output (even when empty), with the stream's metadata."""
        thoughts = "".join(self._thoughts) or None
        return {"type": "text", "data": "".join(self._text), "thoughts": thoughts, "metadata": dict(self.metadata)}
