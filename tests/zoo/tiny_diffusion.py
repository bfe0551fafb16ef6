"""A tiny random-weight Stable Diffusion pipeline, built in code and saved with ``save_pretrained``.

No diffusion weights ship on PyPI, so tests make their own: a real UNet, VAE, CLIP text encoder and
scheduler, only very small (a few MB; a 64x64 image in a fraction of a second on 2 cores). Its images are
noise, but deterministic noise: enough to prove loading, the three tasks, seeds, progress and cancellation.
"""

from __future__ import annotations

from pathlib import Path

# A byte-level-BPE vocabulary for CLIPTokenizer: the special tokens, every letter alone and with the
# end-of-word mark. In transformers 5, CLIPTokenizer(vocab_file=...) is silently ignored: pass the dicts.
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
TOKENS = ["<|startoftext|>", "<|endoftext|>", *_LETTERS, *(f"{letter}</w>" for letter in _LETTERS)]


def build_tiny_pipeline(target: Path, seed: int = 0) -> Path:
    """Save a tiny StableDiffusionPipeline into ``target`` (a folder named like the model) and return it."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,  # latents of 8x8: 64x64 images by default
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
    )
    # Four blocks: latents are downsampled by 8 as in real Stable Diffusion (one block makes steps ~50x slower).
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        norm_num_groups=8,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(TOKENS),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    tokenizer = CLIPTokenizer(
        vocab={token: index for index, token in enumerate(TOKENS)}, merges=[], model_max_length=77
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(target)
    return target


def build_tiny_video_pipeline(target: Path, seed: int = 0) -> Path:
    """Save a tiny TextToVideoSDPipeline (a 3D UNet, the same VAE, text encoder and tokenizer) into ``target``."""
    import torch
    from diffusers import StableDiffusionPipeline, TextToVideoSDPipeline, UNet3DConditionModel

    image = build_tiny_pipeline(target.parent / f"{target.name}-image-parts", seed)
    parts = StableDiffusionPipeline.from_pretrained(image, local_files_only=True)
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"),
        cross_attention_dim=16,
        attention_head_dim=4,
    )
    pipeline = TextToVideoSDPipeline(
        unet=unet, vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer, scheduler=parts.scheduler
    )
    pipeline.save_pretrained(target)
    return target
