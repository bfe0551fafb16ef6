"""The error body is chosen by the API that owns the path (each dialect declares its shape), the most precise
owner first; a path no dialect owns answers with ours, and so does an app that registered none."""

from __future__ import annotations

from lollms_server.api.anthropic_compat import protocol as anthropic
from lollms_server.api.error_shapes import NATIVE, ErrorShapes, shapes_of
from lollms_server.api.ollama_compat import protocol as ollama
from lollms_server.api.openai_compat import protocol as openai

SHAPES = ErrorShapes(openai.ERROR_SHAPE, anthropic.ERROR_SHAPE, ollama.ERROR_SHAPE)


def test_each_path_gets_the_shape_of_the_api_that_owns_it() -> None:
    owners = {
        "/v1/chat/completions": openai.ERROR_SHAPE,
        "/lollms/v1/tokenize": openai.ERROR_SHAPE,
        "/v1/messages": anthropic.ERROR_SHAPE,
        "/v1/messages/count_tokens": anthropic.ERROR_SHAPE,
        "/api/chat": ollama.ERROR_SHAPE,
        "/api/v1/generate": NATIVE,
        "/health": NATIVE,
    }
    assert {path: SHAPES.for_path(path) for path in owners} == owners


def test_the_order_of_registration_does_not_matter() -> None:
    reversed_shapes = ErrorShapes(ollama.ERROR_SHAPE, anthropic.ERROR_SHAPE, openai.ERROR_SHAPE)
    assert reversed_shapes.for_path("/v1/messages") is anthropic.ERROR_SHAPE


def test_the_bodies_are_what_each_sdk_reads() -> None:
    assert anthropic.ERROR_SHAPE.body(429, "rate_limited", "slow down", "r1", None) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}, "request_id": "r1"
    }  # fmt: skip
    assert openai.ERROR_SHAPE.body(500, "internal_error", "x", "r2", None)["error"]["type"] == "server_error"
    assert ollama.ERROR_SHAPE.body(404, "not_found", "no model", "r3", None) == {"error": "no model"}
    assert NATIVE.body(422, "validation_error", "bad", "r4", [{"loc": ["body"]}])["errors"] == [{"loc": ["body"]}]


def test_outside_an_app_that_registered_shapes_ours_answer() -> None:
    assert shapes_of({"type": "http"}).for_path("/v1/chat/completions") is NATIVE
