"""The generation task registry: every generation_type's output, inputs and parameters, with config limits."""

from __future__ import annotations

import pytest

from lollms_server.core.config_schema import GENERATION_TYPES
from lollms_server.core.errors import BadRequestError
from lollms_server.core.limits import InputLimits
from lollms_server.core.tasks import TASKS, task_of

LIMITS = InputLimits(max_image_pixels=512 * 512, max_inference_steps=50, max_images_per_request=2)


def test_every_configurable_generation_type_is_a_task() -> None:
    assert set(TASKS) == set(GENERATION_TYPES)
    with pytest.raises(BadRequestError, match="unknown generation_type 'paint'"):
        task_of("paint")


def test_image_parameters_are_checked_and_normalized() -> None:
    tti = task_of("tti")
    assert tti.validate({"image_size": "256x128", "num_inference_steps": 4, "seed": 7}, LIMITS) == {
        "width": 256,
        "height": 128,
        "num_inference_steps": 4,
        "seed": 7,
    }
    for parameters, message in [
        ({"max_tokens": 5}, "max_tokens"),  # a text parameter: not silently ignored
        ({"image_size": "big"}, "image_size"),
        ({"image_size": "64x64", "width": 128}, "one or the other"),
        ({"width": 100}, "multiple of 8"),
        ({"width": 1024, "height": 1024}, "limits.max_image_pixels"),
        ({"num_inference_steps": 51}, "limits.max_inference_steps"),
        ({"n": 3}, "limits.max_images_per_request"),
        ({"strength": 1.5}, "strength"),
    ]:
        with pytest.raises(BadRequestError, match=message):
            tti.validate(parameters, LIMITS)


def test_tasks_say_which_inputs_they_need() -> None:
    task_of("i2i").check_inputs("", {"input_image", "mask_image"})
    with pytest.raises(BadRequestError, match="input_image"):
        task_of("i2i").check_inputs("a cat", set())
    with pytest.raises(BadRequestError, match="user_prompt"):
        task_of("tti").check_inputs("", set())
    assert task_of("ttt").default_max_tokens and not task_of("tti").default_max_tokens


def test_one_place_decides_which_binding_serves_a_task(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import make_config

    config = make_config(tmp_path, bindings_map={"a": "x_binding", "e": "y_binding"}, defaults={"ttt_binding": "a"})
    assert config.binding_for("ttt") == "a"
    assert config.binding_for("ttt", "e") == "e"  # the request's choice wins
    with pytest.raises(BadRequestError, match="defaults.tti_binding"):
        config.binding_for("tti")
    with pytest.raises(BadRequestError, match="defaults.embedding_binding"):
        config.binding_for("embedding")
