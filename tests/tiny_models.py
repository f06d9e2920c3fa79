"""Tiny randomly initialised real models, saved in the layout of their real repositories.

No weights can be downloaded here, so tests build each model family's classes at toy size (configs from
diffusers' and transformers' own tests, see shared/notes/models-rewards.md), save them with
`save_pretrained` (or the checkpoint format the real weights use) and load them back through the same
factory a Hugging Face id goes through.
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["a", "red", "cat", "dog", "running", "on", "the", "beach", "playing", "guitar", "book"]


def clip_tokenizer():
    from transformers import CLIPTokenizer

    # Without merges the BPE falls back to characters: give it every letter as a word-final token too.
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = letters + [f"{c}</w>" for c in letters] + [f"{w}</w>" for w in WORDS]
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"\u2581{w}", -1.0) for w in WORDS]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def clip_text_encoder(hidden_size: int, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        hidden_size=hidden_size,
        intermediate_size=16,
        num_attention_heads=2,
        num_hidden_layers=1,
        vocab_size=vocab_size,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def save_tiny_modelscope(path: Path) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    UNet3DConditionModel(
        block_out_channels=(4, 8),
        norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        sample_size=16,
    ).save_pretrained(path / "unet")
    AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        sample_size=32,
        norm_num_groups=2,
    ).save_pretrained(path / "vae")
    clip_text_encoder(8, len(tokenizer)).save_pretrained(path / "text_encoder")
    tokenizer.save_pretrained(path / "tokenizer")
    # the real repository's scheduler config
    DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    ).save_pretrained(path / "scheduler")
    return path


def save_tiny_cogvideox(path: Path) -> Path:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer = t5_tokenizer()
    CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=2,
        sample_height=2,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
    ).save_pretrained(path / "transformer")
    AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8,) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    ).save_pretrained(path / "vae")
    T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4)
    ).save_pretrained(path / "text_encoder")
    tokenizer.save_pretrained(path / "tokenizer")
    # CogVideoX-2b's scheduler config
    CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    ).save_pretrained(path / "scheduler")
    return path


def save_tiny_wan(path: Path) -> Path:
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = t5_tokenizer()
    WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).save_pretrained(path / "transformer")
    AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).save_pretrained(path / "vae")
    UMT5EncoderModel(
        UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4)
    ).save_pretrained(path / "text_encoder")
    tokenizer.save_pretrained(path / "tokenizer")
    # Wan-AI/Wan2.1-T2V-1.3B-Diffusers's scheduler config
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0).save_pretrained(
        path / "scheduler"
    )
    return path


def save_tiny_svd(path: Path) -> Path:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    ).save_pretrained(path / "unet")
    AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2, latent_channels=4
    ).save_pretrained(path / "vae")
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=5,
            num_attention_heads=4,
            image_size=32,
            intermediate_size=37,
            patch_size=1,
        )
    ).save_pretrained(path / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        path / "feature_extractor"
    )
    # stabilityai/stable-video-diffusion-img2vid-xt's scheduler config
    EulerDiscreteScheduler(
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        use_karras_sigmas=True,
        sigma_min=0.002,
        sigma_max=700.0,
        timestep_type="continuous",
        interpolation_type="linear",
        steps_offset=1,
    ).save_pretrained(path / "scheduler")
    return path


# -- reward models ----------------------------------------------------------------------------------
TINY_OPEN_CLIP = "vaderbench-tiny-test-clip"
TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_open_clip(directory: Path) -> str:
    """Make the tiny architecture known to open_clip by name, as ViT-H-14 is."""
    import json

    import open_clip

    config = directory / f"{TINY_OPEN_CLIP}.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG))
    open_clip.add_model_config(config)
    return TINY_OPEN_CLIP


def save_tiny_open_clip(path: Path, under_key: str | None = None) -> Path:
    """A random tiny open_clip checkpoint; HPS checkpoints keep the weights under 'state_dict'."""
    import open_clip

    torch.manual_seed(0)
    state = open_clip.create_model(register_tiny_open_clip(path.parent), pretrained=None).state_dict()
    torch.save({under_key: state} if under_key else state, path)
    return path


def save_tiny_aesthetic_head(path: Path, embed_dim: int = 16) -> Path:
    from vaderbench.rewards.aesthetic import AestheticHead

    torch.manual_seed(0)
    torch.save(AestheticHead(embed_dim).state_dict(), path)
    return path


def save_tiny_pickscore(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    config = CLIPConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": len(tokenizer),
            "bos_token_id": len(tokenizer) - 2,
            "eos_token_id": len(tokenizer) - 1,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(path)
    return path


YOLOS_LABELS = {0: "person", 1: "book", 2: "cat"}


def save_tiny_yolos(path: Path) -> Path:
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    torch.manual_seed(0)
    YolosForObjectDetection(
        YolosConfig(
            image_size=[32, 32],
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            num_detection_tokens=10,
            id2label=YOLOS_LABELS,
        )
    ).save_pretrained(path)
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(path)
    return path


VIDEOMAE_LABELS = {0: "playing guitar", 1: "playing guitar bass", 2: "running", 3: "riding a bike", 4: "cat"}


def save_tiny_videomae(path: Path) -> Path:
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor

    torch.manual_seed(0)
    VideoMAEForVideoClassification(
        VideoMAEConfig(
            image_size=32,
            patch_size=8,
            num_frames=4,
            tubelet_size=2,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            id2label=VIDEOMAE_LABELS,
        )
    ).save_pretrained(path)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def save_tiny_vjepa(path: Path) -> Path:
    from transformers import VJEPA2Config, VJEPA2Model, VJEPA2VideoProcessor

    torch.manual_seed(0)
    VJEPA2Model(
        VJEPA2Config(
            crop_size=32,
            patch_size=8,
            frames_per_clip=4,
            tubelet_size=2,
            hidden_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            mlp_ratio=1.0,
            pred_hidden_size=32,
            pred_num_attention_heads=2,
            pred_num_hidden_layers=2,
            pred_num_mask_tokens=10,
        )
    ).save_pretrained(path)
    VJEPA2VideoProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path
