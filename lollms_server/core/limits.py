"""Size limits on what clients send (config section ``limits``), checked in the core so that every API and
every modality gets the same bounds; the request body size itself is bounded at the HTTP edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lollms_server.core.errors import BadRequestError, PayloadTooLargeError
from lollms_server.core.image_parameters import ImageCaps

# Binding, model and personality names: long enough for any real name, short enough to never reach a
# file system call or a log line as a megabyte.
MAX_NAME_CHARS = 256


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


@dataclass(frozen=True)
class AudioBound:
    """The longest audio a decoder may produce, and the setting that says so (named in the 400)."""

    seconds: float
    setting: str

    def tighter(self, other: AudioBound) -> AudioBound:
        return other if other.seconds < self.seconds else self

    def refuse(self, where: str, seconds: float | None = None) -> BadRequestError:
        """The 400 for audio over the bound: its length when known, else "more than" (decoding stopped there)."""
        if seconds is None:
            return BadRequestError(
                f"{where} lasts more than {self.seconds:,g} s, the limit ({self.setting}); decoding stopped there"
            )
        return BadRequestError(f"{where} lasts {seconds:,.0f} s; the limit is {self.seconds:,g} s ({self.setting})")


@dataclass(frozen=True)
class InputLimits:
    max_request_bytes: int = 32 * 1024 * 1024
    max_input_items: int = 1000
    max_text_chars: int = 1_000_000
    max_binary_bytes: int = 20 * 1024 * 1024
    max_embedding_inputs: int = 2048
    max_image_pixels: int = 2048 * 2048
    max_inference_steps: int = 150
    max_images_per_request: int = 4
    max_input_image_pixels: int = 4096 * 4096
    max_audio_seconds: int = 1800
    max_audio_sample_rate: int = 48000

    @property
    def image_caps(self) -> ImageCaps:
        return ImageCaps(self.max_image_pixels, self.max_inference_steps, self.max_images_per_request, "limits.")

    @property
    def audio_bound(self) -> AudioBound:
        return AudioBound(self.max_audio_seconds, "limits.max_audio_seconds")

    def check_input_pixels(self, where: str, width: int, height: int) -> None:
        """An image a request sends, by the size its header gives (before any pixel is decoded)."""
        if width * height > self.max_input_image_pixels:
            raise BadRequestError(
                f"{where} is {width}x{height} = {width * height:,} pixels; the limit is "
                f"{self.max_input_image_pixels:,} (limits.max_input_image_pixels): send a smaller image"
            )

    def check_audio_header(self, where: str, rate: int, seconds: float | None) -> None:
        """Audio a request sends, by the rate and length its header gives (None: it gives none)."""
        if rate > self.max_audio_sample_rate:
            raise BadRequestError(
                f"{where} is sampled at {rate:,} Hz; the limit is {self.max_audio_sample_rate:,} Hz "
                "(limits.max_audio_sample_rate): resample it"
            )
        if seconds is not None and seconds > self.max_audio_seconds:
            raise self.audio_bound.refuse(where, seconds)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> InputLimits:
        return cls(**{name: int(section[name]) for name in cls.__dataclass_fields__ if name in section})

    def check_text(self, text: str, where: str) -> None:
        if len(text) > self.max_text_chars:
            raise PayloadTooLargeError(
                f"{where} has {len(text):,} characters; the limit is {self.max_text_chars:,} (limits.max_text_chars)"
            )

    def check_sequence(self, length: int, where: str) -> None:
        """A list of items that each stand for at least one character (token ids): bounded like a text."""
        if length > self.max_text_chars:
            raise PayloadTooLargeError(
                f"{where} has {length:,} items; the limit is {self.max_text_chars:,} (limits.max_text_chars)"
            )

    def check_binary(self, data: str, where: str) -> None:
        """Base64 data (or a URL, which is short) of an image, audio, video or document item."""
        if data.startswith(("http://", "https://")):
            return
        decoded = len(data) * 3 // 4
        if decoded > self.max_binary_bytes:
            raise PayloadTooLargeError(
                f"{where} holds about {_mib(decoded)} of data; the limit is {_mib(self.max_binary_bytes)} "
                "(limits.max_binary_bytes)"
            )

    def check_items(self, items: Sequence[Any], where: str = "input_data") -> None:
        """Input items (``type`` and ``data`` each): their number, and the size of each."""
        if len(items) > self.max_input_items:
            raise PayloadTooLargeError(
                f"{where} has {len(items):,} items; the limit is {self.max_input_items:,} (limits.max_input_items)"
            )
        for index, item in enumerate(items):
            if item.type == "text":
                self.check_text(item.data, f"{where}[{index}].data")
            else:
                self.check_binary(item.data, f"{where}[{index}].data")

    def check_embedding_inputs(self, texts: Sequence[str]) -> None:
        if not texts:
            raise BadRequestError("input is empty: send a text or a list of texts")
        if len(texts) > self.max_embedding_inputs:
            raise PayloadTooLargeError(
                f"input has {len(texts):,} texts; the limit is {self.max_embedding_inputs:,} per request "
                "(limits.max_embedding_inputs)"
            )
        for index, text in enumerate(texts):
            self.check_text(text, f"input[{index}]")


def check_name(field: str, value: str | None) -> None:
    """A binding, model or personality name a client sent: bounded, printable, one line."""
    if value is None:
        return
    if len(value) > MAX_NAME_CHARS:
        raise BadRequestError(f"{field} is {len(value):,} characters long; names have at most {MAX_NAME_CHARS}")
    if not value.isprintable():
        raise BadRequestError(f"{field} contains control characters; send a plain name")
