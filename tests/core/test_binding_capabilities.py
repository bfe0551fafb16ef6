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


# Tasks: what the binding runs, declared on the class and its card alike


def test_a_binding_that_declares_no_tasks_runs_every_task_its_modalities_fit(tmp_path: Path) -> None:
    entry = discovered(tmp_path, "False")
    assert entry.usable and entry.cls is not None
    assert entry.cls({}, None).get_supported_tasks() == ["ttt"]  # type: ignore[arg-type]  # text and image in, text out


def test_declared_tasks_are_the_binding_s_tasks_when_the_card_agrees(tmp_path: Path) -> None:
    declaration = '    output_modalities = ("text",)\n'
    code = DECLARED.replace(declaration, declaration + "    tasks = ()\n")
    write_binding_type(tmp_path, "declared_binding", code=code.format(streams="False"), card=CARD)
    disagreeing = discover_binding_types([(tmp_path, "personal")])["declared_binding"]
    write_binding_type(
        tmp_path, "declared_binding", code=code.format(streams="False"), card={**CARD, "supported_tasks": []}
    )
    agreeing = discover_binding_types([(tmp_path, "personal")])["declared_binding"]
    assert not disagreeing.usable
    assert "the class's tasks ([]) disagree with the card's supported_tasks (not declared)" in (disagreeing.error or "")
    assert agreeing.usable and agreeing.cls is not None, agreeing.error
    assert agreeing.cls({}, None).get_supported_tasks() == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        (["chat"], "supported_tasks: unknown task 'chat'; the tasks are ttt, tti"),
        (["stt"], "supported_tasks: 'stt' (speech to text) needs ['audio'] in, text out"),
        (["tti"], "supported_tasks: 'tti' (text to image) needs ['text'] in, image out"),
    ],
)
def test_a_card_cannot_declare_a_task_it_has_no_modalities_for(tmp_path: Path, tasks: list[str], problem: str) -> None:
    entry = discovered(tmp_path, "False", supported_tasks=tasks)
    assert not entry.usable and problem in (entry.error or ""), entry.error
