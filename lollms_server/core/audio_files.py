"""Audio in and out of bindings: float samples encoded as WAV, FLAC, MP3, Ogg Opus or raw PCM (soundfile,
whose wheel ships libsndfile with these encoders), and base64 outputs. Blocking: call from a worker thread."""

from __future__ import annotations

import base64
import io
from typing import Any

from lollms_server.core.audio_parameters import AUDIO_FORMATS

_SOUNDFILE = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def resample(samples: Any, rate: int, target: int) -> Any:
    """Linear resampling of mono float samples (enough for speech; the models' rates are close to the targets)."""
    import numpy as np

    if rate == target or len(samples) == 0:
        return samples
    count = max(1, round(len(samples) * target / rate))
    positions = np.linspace(0, len(samples) - 1, count)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def encode(samples: Any, rate: int, audio_format: str) -> tuple[bytes, str]:
    """(bytes, media type) of mono float samples in ``audio_format`` (a key of AUDIO_FORMATS)."""
    import numpy as np

    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if audio_format == "pcm":
        return (clipped * 32767.0).astype("<i2").tobytes(), AUDIO_FORMATS["pcm"] + f";rate={rate}"
    import soundfile

    container, subtype = _SOUNDFILE[audio_format]
    if audio_format == "opus" and rate not in OPUS_RATES:
        clipped, rate = resample(clipped, rate, 48000), 48000
    buffer = io.BytesIO()
    soundfile.write(buffer, clipped, rate, format=container, subtype=subtype)
    return buffer.getvalue(), AUDIO_FORMATS[audio_format]


def audio_output(data: bytes, mime_type: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "audio",
        "data": base64.b64encode(data).decode("ascii"),
        "mime_type": mime_type,
        "metadata": metadata,
    }


def decode(raw: bytes, where: str) -> tuple[Any, int]:
    """(mono float samples, sample rate) of encoded audio (WAV, FLAC, Ogg Vorbis/Opus, MP3); BadRequestError for
    anything else or nothing."""
    import numpy as np
    import soundfile

    from lollms_server.core.errors import BadRequestError

    if not raw:
        raise BadRequestError(f"{where} is empty")
    try:
        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise BadRequestError(f"{where} is not audio this server can read (wav, flac, ogg, mp3)") from None
    if len(samples) == 0:
        raise BadRequestError(f"{where} holds no audio")
    return np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), int(rate)
