"""Capabilities declared as class attributes are checked against the binding card at discovery."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lollms_server.core.binding_types import discover_binding_types
from tests.helpers import write_binding_type

DECLARED = """
from lollms_server.core.bindings import Binding

class Declared(Binding):
    binding_type_name = "declared_binding"
    input_modalities = ("text", "image")
    output_modalities = ("text",)
    streams = {streams}

    async def list_available_models(self):
        return []

    async def load_model(self, model_name):
        return True

    async def unload_model(self):
        return True

    async def generate(self, prompt, params, request_info, multimodal_data=None):
        return prompt

    async def get_model_info(self, model_name=None):
        return {{}}
"""
CARD = {
    "supports_streaming": False,
    "supported_input_modalities": ["text", "image"],
    "supported_output_modalities": ["text"],
}


def discovered(tmp_path: Path, streams: str, **card: object):  # type: ignore[no-untyped-def]
    write_binding_type(tmp_path, "declared_binding", code=DECLARED.format(streams=streams), card={**CARD, **card})
    return discover_binding_types([(tmp_path, "personal")])["declared_binding"]


def test_a_class_that_agrees_with_its_card_is_usable_and_answers_the_spec_methods(tmp_path: Path) -> None:
    entry = discovered(tmp_path, "False")
    assert entry.usable, entry.error
    assert entry.cls is not None
    binding = entry.cls({}, None)  # type: ignore[arg-type]
    assert binding.get_supported_input_modalities() == ["text", "image"]
    assert binding.get_supported_output_modalities() == ["text"]


def test_a_card_that_disagrees_puts_the_type_in_error(tmp_path: Path) -> None:
    entry = discovered(tmp_path, "False", supported_output_modalities=["text", "image"])
    assert not entry.usable and "output_modalities" in (entry.error or "")


def test_a_class_that_says_it_streams_must_stream(tmp_path: Path) -> None:
    entry = discovered(tmp_path, "True", supports_streaming=True)
    assert not entry.usable and "generate_stream" in (entry.error or "")


def test_a_class_that_declares_nothing_must_implement_the_spec_methods(tmp_path: Path) -> None:
    code = DECLARED.replace('    input_modalities = ("text", "image")\n', "")
    write_binding_type(tmp_path, "declared_binding", code=code.format(streams="None"), card=CARD)
    entry = discover_binding_types([(tmp_path, "personal")])["declared_binding"]
    assert not entry.usable and "declares no input_modalities" in (entry.error or "")


def test_every_built_in_binding_agrees_with_its_card() -> None:
    from lollms_server.core.config import builtin_zoo_dir

    types = discover_binding_types([(builtin_zoo_dir() / "bindings", "builtin")])
    problems = {name: entry.error for name, entry in types.items() if entry.error}
    assert problems == {}


def test_optional_types_whose_packages_are_missing_are_one_info_line_not_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing_sdk = "import surely_not_installed_sdk\n" + DECLARED.format(streams=None)
    write_binding_type(
        tmp_path, "declared_binding", code=missing_sdk, card={**CARD, "requirements": ["surely-not-installed-sdk>=1"]}
    )
    broken = DECLARED.format(streams=None) + "\nraise RuntimeError('a real bug')\n"
    write_binding_type(
        tmp_path,
        "buggy_binding",
        code=broken.replace("declared_binding", "buggy_binding"),
        card={**CARD, "type_name": "buggy_binding"},
    )
    with caplog.at_level(logging.INFO, logger="lollms_server.core.binding_types"):
        types = discover_binding_types([(tmp_path, "personal")])
    assert types["declared_binding"].not_installed and not types["buggy_binding"].not_installed
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(errors) == 1 and "buggy_binding" in errors[0] and "a real bug" in errors[0]
    [info] = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    assert "declared_binding (surely-not-installed-sdk>=1)" in info and "install-requirements" in info
