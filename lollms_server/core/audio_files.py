"""Audio in and out of bindings: float samples encoded as WAV, FLAC, MP3, Ogg Opus or raw PCM (soundfile,
whose wheel ships libsndfile with these encoders), base64 outputs, and what requests send decoded a block at a
time, stopped at a bound (whatever the header claims: a 500 KB FLAC can decode to hours). Blocking: call from a
worker thread."""

from __future__ import annotations

import base64
import gc
import io
from typing import Any

from lollms_server.core.audio_parameters import AUDIO_FORMATS
from lollms_server.core.errors import BadRequestError
from lollms_server.core.limits import AudioBound

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


BLOCK_FRAMES = 65536  # frames decoded at a time (a few hundred KB whatever the length)
# PyAV frames gathered before each resampling call (calls per frame are slow): faster-whisper's choice.
RESAMPLE_GROUP = 500_000


def decode(raw: bytes, where: str, bound: AudioBound) -> tuple[Any, int]:
    """(mono float samples, sample rate) of encoded audio (WAV, FLAC, Ogg Vorbis/Opus, MP3) with libsndfile, a block
    at a time; BadRequestError for anything else, nothing, or more than ``bound``."""
    import numpy as np
    import soundfile

    if not raw:
        raise BadRequestError(f"{where} is empty")
    pieces: list[Any] = []
    try:
        with soundfile.SoundFile(io.BytesIO(raw)) as file:
            rate, most, count = int(file.samplerate), int(bound.seconds * file.samplerate), 0
            for block in file.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                count += len(block)
                if count > most:
                    raise bound.refuse(where)
                pieces.append(block.mean(axis=1))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise BadRequestError(f"{where} is not audio this server can read (wav, flac, ogg, mp3)") from None
    if count == 0:
        raise BadRequestError(f"{where} holds no audio")
    return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32), rate


def decode_resampled(raw: bytes, where: str, rate: int, bound: AudioBound) -> Any:
    """Mono float samples at ``rate`` of any audio FFmpeg reads (WAV, MP3, FLAC, Ogg, WebM, M4A...), decoded and
    resampled a group of frames at a time with PyAV (packets it cannot decode are skipped, as faster-whisper does);
    BadRequestError for what is not audio, nothing, or more than ``bound``."""
    import numpy as np
    from av.audio.resampler import AudioResampler
    from av.error import FFmpegError

    if not raw:
        raise BadRequestError(f"{where} is empty")
    resampler = AudioResampler(format="flt", layout="mono", rate=rate)
    try:
        pieces = _resampled(raw, where, resampler, int(bound.seconds * rate), bound)
    except (FFmpegError, ValueError, OSError):
        raise BadRequestError(f"{where} is not audio this server can read (wav, mp3, flac, ogg, webm, m4a)") from None
    finally:
        del resampler
        gc.collect()  # PyAV's resampler holds FFmpeg buffers until collected (faster-whisper issue 390)
    if not pieces:
        raise BadRequestError(f"{where} holds no audio")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def _resampled(raw: bytes, where: str, resampler: Any, most: int, bound: AudioBound) -> list[Any]:
    """The resampled pieces of ``raw``; the bound's 400 once they hold more than ``most`` samples."""
    import av
    from av.audio.fifo import AudioFifo
    from av.error import InvalidDataError

    pieces: list[Any] = []
    count = 0

    def take(frame: Any) -> None:
        nonlocal count
        for resampled in resampler.resample(frame):
            samples = resampled.to_ndarray().reshape(-1)
            count += len(samples)
            if count > most:
                raise bound.refuse(where)
            pieces.append(samples)

    fifo = AudioFifo()
    with av.open(io.BytesIO(raw), metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise BadRequestError(f"{where} holds no audio stream")
        for packet in container.demux(container.streams.audio[0]):
            try:
                frames = packet.decode()
            except InvalidDataError:  # a damaged packet is skipped, as faster-whisper does
                continue
            for frame in frames:
                frame.pts = None  # the fifo checks timestamps; gaps and overlaps are the file's business
                fifo.write(frame)
            if fifo.samples >= RESAMPLE_GROUP:
                take(fifo.read())
        if fifo.samples:
            take(fifo.read())
        take(None)  # flush the resampler
    return pieces
