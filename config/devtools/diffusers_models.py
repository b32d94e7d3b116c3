"""Randomly initialised diffusers pipelines of the real classes (Wan 2.1, LTX-Video, CogVideoX,
text- and image-to-video), built here without weights or the hub. The tiny ones (the tests'
engines: a call makes a few dozen 64x32 frames in a fraction of a second on a CPU) and
`wan_13b`, Wan 2.1 T2V 1.3B at its real sizes (UMT5-XXL, the Wan VAE, the 1.3B transformer):
random weights make noise, but the same arithmetic as the released model, so a GPU with no
weights on it can still measure per-clip time and memory (`manage.py bench_diffusers`).

The tokenizer is a byte-pair model trained in memory on a few captions (any lowercase prompt
tokenizes, so different prompts give different embeddings); the text encoders, VAEs and
transformers are the diffusers test suite's smallest shapes. Every builder seeds torch itself,
so two calls build the same weights.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    AutoencoderKLLTXVideo,
    AutoencoderKLWan,
    CogVideoXDPMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
    LTXPipeline,
    LTXVideoTransformer3DModel,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
    UMT5Config,
    UMT5EncoderModel,
)

# The frame size the tiny engines are built with (height x width, portrait): a multiple of 32
# (LTX's spatial multiple) and of 16 (Wan's, CogVideoX's).
HEIGHT, WIDTH = 64, 32
TEXT_DIM = 32

CAPTIONS = [
    "a red ball bounces on the floor",
    "a blue cube slides across the table",
    "a green ball rolls uphill past a wall",
    "a cat and a dog play in the garden at night",
]


def tokenizer() -> PreTrainedTokenizerFast:
    """A T5-style tokenizer (pad 0, eos 1, appends eos) with a 96-token BPE vocabulary."""
    model = Tokenizer(models.BPE(unk_token="<unk>"))  # noqa: S106 - a token, not a secret
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    model.train_from_iterator(
        CAPTIONS,
        trainer=trainers.BpeTrainer(
            vocab_size=96,
            special_tokens=["<pad>", "</s>", "<unk>"],
            initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?@()'-"),
            show_progress=False,
        ),
    )
    model.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", model.token_to_id("</s>"))]
    )
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    return PreTrainedTokenizerFast(tokenizer_object=model, **special)


def _t5_config(cls, vocab: int):
    return cls(
        vocab_size=vocab,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def _wan_parts(seed: int) -> dict:
    tok = tokenizer()
    torch.manual_seed(seed)
    return {
        "tokenizer": tok,
        "text_encoder": UMT5EncoderModel(_t5_config(UMT5Config, len(tok))).eval(),
        "vae": AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ).eval(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0),
    }


def _wan_transformer(in_channels: int) -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()


def wan(seed: int = 0) -> WanPipeline:
    """Wan 2.1 text-to-video: UMT5 text encoder, the Wan VAE (8x spatial, 4x temporal)."""
    parts = _wan_parts(seed)
    return WanPipeline(transformer=_wan_transformer(16), **parts)


def wan_i2v(seed: int = 1) -> WanImageToVideoPipeline:
    """Wan image-to-video without a CLIP image encoder (the Wan 2.2 I2V layout): the start
    image enters as VAE latents beside the noise (16 + 4 mask + 16 channels)."""
    parts = _wan_parts(seed)
    return WanImageToVideoPipeline(transformer=_wan_transformer(36), **parts)


def ltx(seed: int = 0) -> LTXPipeline:
    """LTX-Video text-to-video; its image-to-video pipeline is `LTXImageToVideoPipeline.
    from_pipe` of this one (the same weights)."""
    tok = tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    ).eval()
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return LTXPipeline(
        tokenizer=tok,
        text_encoder=T5EncoderModel(_t5_config(T5Config, len(tok))).eval(),
        vae=vae,
        transformer=LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=TEXT_DIM,
        ).eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def _cogvideox_parts(seed: int, in_channels: int, rotary: bool, learned: bool = False) -> dict:
    tok = tokenizer()
    torch.manual_seed(seed)
    return {
        "tokenizer": tok,
        "text_encoder": T5EncoderModel(_t5_config(T5Config, len(tok))).eval(),
        "vae": AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        ).eval(),
        "transformer": CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=in_channels,
            out_channels=4,
            time_embed_dim=2,
            text_embed_dim=TEXT_DIM,
            num_layers=1,
            sample_height=HEIGHT // 8,
            sample_width=WIDTH // 8,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=226,
            use_rotary_positional_embeddings=rotary,
            use_learned_positional_embeddings=learned,
        ).eval(),
        "scheduler": CogVideoXDPMScheduler(),
    }


def cogvideox(seed: int = 0) -> CogVideoXPipeline:
    """CogVideoX-2B-like text-to-video (sin-cos positions: any size)."""
    return CogVideoXPipeline(**_cogvideox_parts(seed, in_channels=4, rotary=False))


def cogvideox_i2v(seed: int = 1, learned: bool = False) -> CogVideoXImageToVideoPipeline:
    """CogVideoX image-to-video (rotary positions; the start image's latents double the
    transformer's input channels). `learned`: positions learned for HEIGHT x WIDTH only, as
    CogVideoX-5B-I2V's are for 480x720."""
    parts = _cogvideox_parts(seed, in_channels=8, rotary=True, learned=learned)
    return CogVideoXImageToVideoPipeline(**parts)


def wan_13b(*, device: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> WanPipeline:
    """Wan 2.1 T2V 1.3B's architecture (the released configs: a 30-layer, 1,536-wide
    transformer with 12 heads; UMT5-XXL, 24 layers of 4,096; the Wan VAE), random weights made
    directly on `device` in `dtype` (about 15 GB in bf16: a GPU's job; minutes on a CPU). The
    tokenizer is the tiny one: prompts are padded to 512 tokens either way, as Wan's are."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # made in `dtype`: no fp32 copy of 7 B parameters first
    try:
        with torch.device(device):
            text_encoder, transformer = _wan_13b_models()
    finally:
        torch.set_default_dtype(default)
    with torch.device(device):
        vae = AutoencoderKLWan()  # its defaults are Wan 2.1's VAE; fp32, as its card says
    return WanPipeline(
        tokenizer=tokenizer(),
        text_encoder=text_encoder.eval(),
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _wan_13b_models() -> tuple[UMT5EncoderModel, WanTransformer3DModel]:
    return (
        UMT5EncoderModel(
            UMT5Config(
                vocab_size=256_384,
                d_model=4096,
                d_kv=64,
                d_ff=10_240,
                num_layers=24,
                num_heads=64,
                relative_attention_num_buckets=32,
                relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu",
                pad_token_id=0,
                eos_token_id=1,
                decoder_start_token_id=0,
            )
        ),
        WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=12,
            attention_head_dim=128,
            in_channels=16,
            out_channels=16,
            text_dim=4096,
            freq_dim=256,
            ffn_dim=8960,
            num_layers=30,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        ),
    )
