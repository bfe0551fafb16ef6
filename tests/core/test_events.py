"""The one adapter from the spec's chunk dicts to typed events, and the one accumulator of outputs."""

from __future__ import annotations

from lollms_server.core.events import FinalEvent, OutputAccumulator, SideEvent, TextDelta, event_of

STREAM = [
    "Hel",
    {"type": "chunk", "content": "lo <thi"},
    {"type": "chunk", "content": "nk>pondering</think> world"},
    {"type": "info", "content": "step 1 of 2"},
    {"type": "function_call", "content": {"id": "call_1", "name": "f", "arguments": "{}"}},
    {"type": "final", "content": None, "metadata": {"usage": {"completion_tokens": 3}}},
]


def test_every_item_becomes_a_typed_event() -> None:
    events = [event_of(item) for item in STREAM]
    assert events[0] == TextDelta("Hel")
    assert events[3] == SideEvent("info", "step 1 of 2", None)
    assert events[5] == FinalEvent(None, {"usage": {"completion_tokens": 3}})
    assert event_of(42) == FinalEvent([{"type": "json", "data": 42}])
    assert event_of({"type": "image", "data": "x"}) == FinalEvent([{"type": "image", "data": "x"}])
    assert event_of({"type": "final", "content": ["a", {"type": "image", "data": "x"}]}).outputs == [
        {"type": "text", "data": "a"},
        {"type": "image", "data": "x"},
    ]


def test_the_accumulator_splits_thoughts_and_keeps_info_errors_and_tool_calls() -> None:
    accumulator = OutputAccumulator()
    shown = [delta for item in STREAM if (delta := accumulator.add(event_of(item))) is not None]
    if (last := accumulator.flush()) is not None:
        shown.append(last)
    assert "".join(delta.text for delta in shown) == "Hello  world"
    assert "".join(delta.thoughts or "" for delta in shown) == "pondering"
    assert accumulator.outputs() == [
        {
            "type": "text",
            "data": "Hello  world",
            "thoughts": "pondering",
            "metadata": {"usage": {"completion_tokens": 3}, "finish_reason": "tool_calls"},
        },
        {"type": "info", "data": "step 1 of 2", "metadata": None},
        {"type": "function_call", "data": {"id": "call_1", "name": "f", "arguments": "{}"}, "metadata": None},
    ]


def test_a_call_the_server_ran_is_kept_but_does_not_end_the_answer_with_tool_calls() -> None:
    accumulator = OutputAccumulator()
    ran = {"id": "call_1", "name": "f", "arguments": "{}", "result": "42"}
    accumulator.add(SideEvent("function_call", ran))
    accumulator.add(FinalEvent(None, {"finish_reason": "stop"}))
    assert accumulator.metadata["finish_reason"] == "stop"
    assert accumulator.outputs()[-1]["data"] == ran


def test_final_outputs_win_over_the_text_and_empty_streams_give_empty_text_on_request() -> None:
    accumulator = OutputAccumulator()
    accumulator.add(TextDelta("draft"))
    accumulator.add(FinalEvent([{"type": "image", "data": "b64"}], {"model": "m"}))
    assert accumulator.outputs() == [{"type": "image", "data": "b64"}]
    empty = OutputAccumulator()
    assert empty.outputs() == []
    assert empty.outputs(text_when_empty=True)[0]["data"] == ""
