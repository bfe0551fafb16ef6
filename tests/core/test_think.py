"""The think parser: tags split across pieces, several blocks, an unclosed block at the end."""

from __future__ import annotations

import pytest

from lollms_server.core.think import ThinkParser, split_thoughts


def stream(pieces: list[str]) -> tuple[str, str]:
    parser = ThinkParser()
    visible, thoughts = [], []
    for piece in pieces:
        v, t = parser.feed(piece)
        visible.append(v)
        thoughts.append(t)
    v, t = parser.flush()
    return "".join(visible) + v, "".join(thoughts) + t


TEXT = "Hello <think>step one</think>world<think>step two</think>!"


def test_whole_text() -> None:
    assert split_thoughts(TEXT) == ("Hello world!", "step one\n\nstep two")
    assert split_thoughts("no tags at all") == ("no tags at all", None)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_every_split_position_gives_the_same_result(size: int) -> None:
    pieces = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert stream(pieces) == ("Hello world!", "step one\n\nstep two")


def test_split_inside_each_tag() -> None:
    assert stream(["a<thi", "nk>x</th", "ink>b"]) == ("ab", "x")


def test_unclosed_block_at_the_end_is_thoughts() -> None:
    assert stream(["visible <think>never", " closed"]) == ("visible ", "never closed")
    assert stream(["visible <think>cut </thi"]) == ("visible ", "cut </thi")


def test_lookalike_is_released_as_text() -> None:
    assert stream(["a <thin", "g> b <"]) == ("a <thing> b <", "")


def test_pieces_are_not_held_longer_than_needed() -> None:
    parser = ThinkParser()
    assert parser.feed("plain text ") == ("plain text ", "")
    assert parser.feed("<") == ("", "")
    assert parser.feed("b>") == ("<b>", "")
