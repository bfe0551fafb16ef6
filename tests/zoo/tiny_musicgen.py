"""A tiny random-weight MusicGen, built in code and saved with ``save_pretrained`` (about 0.75 MB).

No MusicGen weights ship on PyPI: a real T5 text encoder, EnCodec codec and MusicGen decoder, only very small
(16 kHz audio, 25 codec frames per second, 4 codebooks). Its music is noise, but deterministic noise: enough to
prove loading, durations, seeds, progress and cancellation through the server."""

from __future__ import annotations

from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def build_tiny_musicgen(target: Path, seed: int = 0) -> Path:
    """Save a tiny MusicgenForConditionalGeneration and its processor into ``target`` and return it."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5Tokenizer,
    )

    torch.manual_seed(seed)
    text = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0)
    codec = EncodecConfig(
        target_bandwidths=[0.6],  # 4 codebooks of 64 entries at 25 frames per second
        sampling_rate=16000,
        audio_channels=1,
        num_filters=4,
        hidden_size=8,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=64,
        codebook_dim=8,
        num_lstm_layers=1,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        num_codebooks=codec.num_quantizers,
        max_position_embeddings=2048,
        pad_token_id=64,  # MusicGen's convention: the codebook size, one past the last code
        bos_token_id=64,
    )
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder))
    # In transformers 5, T5Tokenizer(vocab=[(piece, score), ...]) builds a tokenizer without files.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(f"▁{letter}", -1.0) for letter in LETTERS] + [(letter, -2.0) for letter in LETTERS]
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=16000),
        tokenizer=T5Tokenizer(vocab=pieces, extra_ids=0),
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target
