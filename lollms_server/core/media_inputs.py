"""Images and audio that requests send, measured from their headers before anything decodes them: the one place
that applies ``limits.max_input_image_pixels``, ``max_audio_seconds`` and ``max_audio_sample_rate`` to every API
and every binding, local or remote.

Pillow reads an image's size from its header (``Image.open`` decodes no pixel before ``load()``); soundfile
(libsndfile) or else PyAV (FFmpeg) read an audio file's rate and length from its container. What no installed
reader understands is never decoded here: a local binding refuses it, a remote one gets its bytes (bounded by
``limits.max_binary_bytes``). A header may lie about a length or give none: the decoders of ``audio_files`` stop at
the limit whatever it says. Blocking (base64 and headers): call from a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lollms_server.core.domain import InputData
from lollms_server.core.errors import BadRequestError
from lollms_server.core.limits import InputLimits

# What the image bindings and image APIs take; Pillow's other readers (EPS through Ghostscript, and many rarely
# used formats) never see a client's bytes.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG includes MPO (phone cameras)
_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's frame count of a stream whose header gives no length


def _lazy_image(raw: bytes, where: str) -> Any | None:
    """Pillow's image of ``raw`` from its header alone, None when it is no image of IMAGE_FORMATS."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:  # over Pillow's own bound, twice Image.MAX_IMAGE_PIXELS
        raise BadRequestError(f"{where} has far more pixels than this server decodes: send a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def open_image(raw: bytes, where: str, check_size: Callable[[int, int], None]) -> Any:
    """``raw`` opened by Pillow (a PIL.Image, no pixel decoded yet) once ``check_size(width, height)`` accepted the
    size its header gives; BadRequestError for what is not an image of IMAGE_FORMATS."""
    image = _lazy_image(raw, where)
    if image is None:
        raise BadRequestError(f"{where} is not an image this server reads ({', '.join(IMAGE_FORMATS)})")
    check_size(image.width, image.height)
    return image


@dataclass(frozen=True)
class AudioHeader:
    rate: int
    seconds: float | None  # None: the container gives no length


def audio_header(raw: bytes) -> AudioHeader | None:
    """The rate and length ``raw``'s container declares, read by libsndfile or else FFmpeg; None when neither is
    installed or can read it."""
    try:
        import soundfile
    except ImportError:
        soundfile = None
    if soundfile is not None:
        try:
            info = soundfile.info(io.BytesIO(raw))
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
            pass
        else:
            known = 0 <= info.frames < _UNKNOWN_FRAMES
            return AudioHeader(int(info.samplerate), info.frames / info.samplerate if known else None)
    return _ffmpeg_header(raw)


def _ffmpeg_header(raw: bytes) -> AudioHeader | None:
    try:
        import av
        from av.error import FFmpegError
    except ImportError:
        return None
    try:
        with av.open(io.BytesIO(raw), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                seconds: float | None = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                seconds = None
            return AudioHeader(int(stream.codec_context.sample_rate or 0), seconds)
    except (FFmpegError, ValueError, OSError):
        return None


def check_media(items: Sequence[InputData], limits: InputLimits) -> None:
    """Every image and audio item of a request against the limits, from its header (blocking)."""
    for index, item in enumerate(items):
        where = f"input_data[{index}] ({item.role})"
        if item.type == "image":
            _check_image(item.binary(), where, limits)
        elif item.type == "audio":
            header = audio_header(item.binary())
            if header is not None:
                limits.check_audio_header(where, header.rate, header.seconds)


def _check_image(raw: bytes, where: str, limits: InputLimits) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:  # nothing here decodes images: they go to remote bindings as bytes
        return
    image = _lazy_image(raw, where)
    if image is not None:
        with image:
            limits.check_input_pixels(where, image.width, image.height)
