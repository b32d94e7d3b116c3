"""SpaceTimeDiT: a small video diffusion transformer over space-time patches.

Token sequence (one full self-attention over all of it, or factorised: `ModelConfig.attention`):

    [text tokens (joint mode only)] [cameo reference tokens] [context-frame tokens] [video]

* video: pt x ph x pw cuboids (Conv3d), 3D sin-cos positions (t, y, x), noised.
* cameo references: clean images, 2D patches, their own time index (-2), a slot embedding;
  masked out per sample when absent or dropped. Never in the loss: the output layer only
  reads the video tokens.
* context frames (parent clip for remixes): clean frames through the video patch embedding,
  negative time indices (they precede the clip); masked when absent.
* text: MiniLM token embeddings, either inside the sequence ("joint") or through a
  cross-attention layer per block ("cross"). A learned null token is always present so
  classifier-free guidance can mask every prompt token.
* adaLN-Zero: every block is modulated by c = time embedding + pooled prompt embedding and
  starts as the identity.
* x-prediction (as in "Back to Basics: Let Denoising Generative Models Denoise", Li & He
  2025): the output layer predicts the clean patches and forward() returns the velocity they
  imply, so the loss and the samplers stay velocity-based.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    frames: int = 16
    height: int = 32
    width: int = 32
    channels: int = 3
    patch_t: int = 4
    patch_h: int = 8
    patch_w: int = 8
    hidden: int = 192
    depth: int = 6
    heads: int = 3
    mlp_ratio: float = 4.0
    text_dim: int = 384
    max_text_tokens: int = 32
    text_mode: str = "cross"  # "cross" (cross-attention per block) or "joint" (in-sequence)
    max_ref_images: int = 1
    max_context_frames: int = 4
    # "x": the network predicts the clean clip and forward() returns the implied velocity
    # (x_t - x0_hat) / t; "v": the network predicts the velocity directly. With 768-d
    # patches and a 192-d width, x-prediction is what learns (see docs/engine-history.md).
    prediction: str = "x"
    t_min: float = 0.05  # clamp of t in the x -> v conversion
    # > 0: a two-layer MLP (this many hidden units) beside the linear output layer, its last
    # layer zero-initialised. The linear layer alone can only emit patches inside a
    # `hidden`-dimensional subspace of the `patch_dim`-dimensional patch space (192 of 768 for
    # "small"); the MLP lifts that limit, and added to a trained model it starts as a no-op.
    head_hidden: int = 0
    # > 0: the sprite pathway for cameos (a two-layer MLP of this width beside the output
    # head). Per output voxel it predicts whether the cameo's sprite shows there (alpha) and
    # where the sprite's square is in that frame (centre and half-size, relative to the
    # voxel's own pixel); the voxels that show it pool their guesses into one square per
    # frame, and inside it the clean-clip prediction takes the sprite's texel, read from the
    # reference image itself: x0 = x0 + alpha * (texel - x0). Drawing an 8x8 pattern at an arbitrary sub-patch offset is a resampling
    # the 768-d patch head does not learn at this size; where the square is, the trunk
    # already knows. Off (alpha = 0) where the sample has no reference, so a clip without a
    # cameo is what it was; added to a trained model it starts nearly off (alpha ~ 0.02).
    sprite_hidden: int = 0
    sprite_size: int = 8  # the sprite's grid: the reference image is box-averaged to it
    # a linear head beside the output that says, per voxel, whether an object covers it,
    # the wall ignored (amodal; world.amodal_mask). Trained through the trunk with an
    # auxiliary loss (flow.amodal_loss), so the trunk has to keep a hidden object's place
    # while the wall hides it, which the flow loss never asks (the hidden object is not in
    # the clip). Sampling does not use it; it costs a 192 x 256 matmul per training step.
    amodal_head: bool = False
    # which tokens the amodal head reads: 0, the output tokens (what the patch head reads);
    # k, the video tokens after block k (layer-normed), so that the blocks after it are free
    # to keep "an object is here, behind the wall" out of what is drawn
    amodal_block: int = 0
    # "full": one attention over the whole sequence per block. "factorised": spatial attention
    # (each frame's tokens, with the text-in-sequence and cameo reference tokens as extra keys),
    # then temporal attention (each (y, x) position across the context and video frames); see
    # `Block`. The ablation of the claim that global space-time attention is what keeps
    # objects permanent (docs/engine.md, "Attention modes"); `with_attention` converts a
    # config at matched parameters and FLOPs. Weights without the key are "full".
    attention: str = "full"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def grid(self) -> tuple[int, int, int]:
        return (
            self.frames // self.patch_t,
            self.height // self.patch_h,
            self.width // self.patch_w,
        )

    @property
    def video_tokens(self) -> int:
        a, b, c = self.grid
        return a * b * c

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_t * self.patch_h * self.patch_w

    @property
    def frame_tokens(self) -> int:
        """Tokens per patch-time slice (one spatial group of the factorised attention)."""
        return (self.height // self.patch_h) * (self.width // self.patch_w)


ATTENTION_MODES = ("full", "factorised")
# A factorised block has a second attention layer (qkv and proj: 4 D^2 weights, 4 D^2
# multiply-adds per token) and shares the first one's adaLN shift, scale and gate (its own
# would add 3 D^2 weights that cost no per-token FLOPs, unmatchable in both at once). An MLP
# ratio 2 lower (two D x 2D matrices fewer) pays for it exactly: the modes differ by biases
# and norms in parameters, and in FLOPs by the attention scores (and the temporal layer the
# global tokens skip).
FACTORISED_MLP_RATIO_OFFSET = 2.0


def with_attention(cfg: ModelConfig, attention: str) -> ModelConfig:
    """`cfg` in the other attention mode at matched parameters and FLOPs (the MLP ratio moves
    by `FACTORISED_MLP_RATIO_OFFSET`); `cfg` itself when it already is in that mode.
    Precondition: a full config's mlp_ratio > 2 (its factorised twin needs an MLP)."""
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention {attention!r}: one of {', '.join(ATTENTION_MODES)}")
    if attention == cfg.attention:
        return dataclasses.replace(cfg)
    offset = FACTORISED_MLP_RATIO_OFFSET
    ratio = cfg.mlp_ratio - offset if attention == "factorised" else cfg.mlp_ratio + offset
    if ratio <= 0:
        raise ValueError(f"mlp_ratio {cfg.mlp_ratio} leaves no MLP in the factorised twin")
    return dataclasses.replace(cfg, attention=attention, mlp_ratio=ratio)


# The ablation pair (issue #33): the shipped width, heads and MLP output head, 4 blocks
# instead of 6 and no sprite pathway (the ablation is about permanence, physics and count),
# so that a one-thread CPU arm trains at >= 2 steps/s at batch 16 (docs/engine.md,
# "Attention modes"). The factorised arm pays for its second attention layer with a smaller
# MLP.
_ABLATE = ModelConfig(hidden=192, depth=4, heads=3, head_hidden=768)

CONFIGS: dict[str, ModelConfig] = {
    # the shipped model: 64 video tokens per 16x32x32 clip, MLP output head, sprite pathway
    "small": ModelConfig(head_hidden=768, sprite_hidden=768),
    # tests and wiring of other modules: random weights, milliseconds per step
    "tiny": ModelConfig(hidden=32, depth=2, heads=2, max_text_tokens=16),
    "ablate-full": _ABLATE,
    "ablate-factorised": with_attention(_ABLATE, "factorised"),
}


# --------------------------------------------------------------------------- helpers


def patchify(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, N, C*pt*ph*pw] in (t, y, x) token order."""
    B, C, T, H, W = x.shape
    pt, ph, pw = cfg.patch_t, cfg.patch_h, cfg.patch_w
    x = x.reshape(B, C, T // pt, pt, H // ph, ph, W // pw, pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)
    return x.reshape(B, (T // pt) * (H // ph) * (W // pw), C * pt * ph * pw)


def unpatchify(
    tokens: torch.Tensor, cfg: ModelConfig, frames: int | None = None, channels: int | None = None
) -> torch.Tensor:
    """Inverse of `patchify`: [B, N, C*pt*ph*pw] -> [B, C, T, H, W] (C: `channels`, default
    the clip's)."""
    B = tokens.shape[0]
    T = frames or cfg.frames
    pt, ph, pw = cfg.patch_t, cfg.patch_h, cfg.patch_w
    C = channels or cfg.channels
    nt, nh, nw = T // pt, cfg.height // ph, cfg.width // pw
    x = tokens.reshape(B, nt, nh, nw, C, pt, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
    return x.reshape(B, C, T, cfg.height, cfg.width)


def sincos(pos: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """[N] positions -> [N, dim] sin-cos features (dim even)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=pos.device) / half
    )
    ang = pos.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


def pos3d(t: torch.Tensor, y: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-axis sin-cos, concatenated; the leftover channels are zero."""
    d = (dim // 3) // 2 * 2
    out = torch.cat([sincos(t, d), sincos(y, d), sincos(x, d)], dim=-1)
    return F.pad(out, (0, dim - out.shape[-1]))


def grid_positions(nt: int, nh: int, nw: int, t0: float = 0.0) -> tuple[torch.Tensor, ...]:
    t, y, x = torch.meshgrid(torch.arange(nt), torch.arange(nh), torch.arange(nw), indexing="ij")
    return (t.flatten().float() + t0, y.flatten().float(), x.flatten().float())


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    return sincos(t * 1000.0, dim, max_period=10000.0)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight).to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with QK-norm; self-attention, or cross-attention with `context`."""

    def __init__(self, dim: int, heads: int, cross: bool = False):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.cross = cross
        if cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None, context=None):
        B, N, D = x.shape
        h, hd = self.heads, self.head_dim
        if self.cross:
            q = self.q(x).view(B, N, h, hd)
            k, v = self.kv(context).view(B, context.shape[1], 2, h, hd).unbind(2)
        else:
            q, k, v = self.qkv(x).view(B, N, 3, h, hd).unbind(2)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))

    def spatial(self, x, mask, n_global: int, frame_tokens: int):
        """Self-attention within each frame. x [B, N, D] is `n_global` global tokens (text in
        the sequence, cameo references) then frames of `frame_tokens` tokens each. A frame's
        tokens attend to their frame and to the global tokens; the global tokens attend to
        each other (each always to itself, so a sample whose references are all masked
        stays finite). `mask` [B, N] or None: False keys are ignored; a frame's own tokens
        are always keys."""
        B, N, D = x.shape
        h, hd, S, G = self.heads, self.head_dim, frame_tokens, n_global
        nf = (N - G) // S
        q, k, v = self.qkv(x).view(B, N, 3, h, hd).unbind(2)
        q, k = self.q_norm(q), self.k_norm(k)

        def frames(a):  # [B, N, h, hd] -> [B * nf, h, S, hd]
            return a[:, G:].reshape(B * nf, S, h, hd).transpose(1, 2)

        qf, kf, vf = frames(q), frames(k), frames(v)
        fmask = None
        if G:
            kg, vg = (a[:, :G].transpose(1, 2) for a in (k, v))  # [B, h, G, hd]

            def per_frame(a):
                return a[:, None].expand(B, nf, h, G, hd).reshape(B * nf, h, G, hd)

            kf = torch.cat([kf, per_frame(kg)], dim=2)
            vf = torch.cat([vf, per_frame(vg)], dim=2)
            if mask is not None:
                own = torch.ones(B, S, dtype=torch.bool, device=x.device)
                fmask = torch.cat([own, mask[:, :G]], dim=1)
                fmask = fmask[:, None].expand(B, nf, S + G).reshape(B * nf, 1, 1, S + G)
        out = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=fmask)
        out = out.transpose(1, 2).reshape(B, nf * S, D)
        if G:
            gmask = None
            if mask is not None:
                self_key = torch.eye(G, dtype=torch.bool, device=x.device)
                gmask = (mask[:, None, :G] | self_key)[:, None]  # [B, 1, G, G]
            qg = q[:, :G].transpose(1, 2)
            og = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=gmask)
            out = torch.cat([og.transpose(1, 2).reshape(B, G, D), out], dim=1)
        return self.proj(out)

    def temporal(self, x, keep, frame_tokens: int):
        """Self-attention across frames at each (y, x) position. x [B, nf * S, D]: frame
        tokens only (S = `frame_tokens` per frame), frame-major. `keep` [B, nf] or None:
        which frames are keys (context frames are masked or kept whole)."""
        B, M, D = x.shape
        h, hd, S = self.heads, self.head_dim, frame_tokens
        nf = M // S
        # one copy of the input into position-major order, so q, k and v are views
        cols = x.view(B, nf, S, D).transpose(1, 2)
        q, k, v = self.qkv(cols).view(B * S, nf, 3, h, hd).unbind(2)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))
        mask = None if keep is None else keep[:, None].expand(B, S, nf).reshape(B * S, 1, 1, nf)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.proj(out.transpose(1, 2).reshape(B, S, nf, D))
        return out.transpose(1, 2).reshape(B, M, D)


class Block(nn.Module):
    """adaLN-Zero transformer block: self-attention, text cross-attention ("cross" mode),
    MLP.

    With `cfg.attention == "factorised"` the self-attention is two layers, each with its own
    residual: spatial (`Attention.spatial`: a frame's tokens with the global tokens, i.e. the
    text in the sequence and the cameo references, as extra keys; the global tokens attend
    among themselves), then temporal (`Attention.temporal`: one position's tokens across the
    context and video frames; the global tokens are left as they are). Both share the adaLN
    shift, scale and gate (see `FACTORISED_MLP_RATIO_OFFSET`). A token's output after the
    spatial layer depends on its own frame and the global tokens only, after the temporal
    layer on its own position only; a whole block still reaches any token of any frame, in
    two hops through the token at (its time, our position)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.hidden
        if cfg.attention not in ATTENTION_MODES:
            raise ValueError(f"attention {cfg.attention!r}: one of {', '.join(ATTENTION_MODES)}")
        self.factorised = cfg.attention == "factorised"
        self.frame_tokens = cfg.frame_tokens
        self.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(D, cfg.heads)
        if self.factorised:
            self.norm_t = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.attn_t = Attention(D, cfg.heads)
        self.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(D, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, D)
        )
        self.ada = nn.Linear(D, 6 * D)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.cross = None
        if cfg.text_mode == "cross":
            self.norm_x = nn.LayerNorm(D, eps=1e-6)
            self.cross = Attention(D, cfg.heads, cross=True)
            nn.init.zeros_(self.cross.proj.weight)  # identity at init, like the adaLN gates
            nn.init.zeros_(self.cross.proj.bias)

    def forward(self, x, c, mask=None, text=None, text_mask=None, n_global: int = 0):
        """`n_global`: the tokens before the first frame (text in the sequence, cameo
        references), which the factorised attention treats as global; the rest of x is
        frames of `cfg.frame_tokens` tokens (context, then video). Unused by full attention."""
        B = x.shape[0]
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        if self.factorised:
            G, S = n_global, self.frame_tokens
            x = x + g1[:, None] * self.attn.spatial(modulate(self.norm1(x), sh1, sc1), mask, G, S)
            xf = x[:, G:]
            keep = None if mask is None else mask[:, G:].reshape(B, -1, S)[:, :, 0]
            upd = self.attn_t.temporal(modulate(self.norm_t(xf), sh1, sc1), keep, S)
            xf = xf + g1[:, None] * upd
            x = torch.cat([x[:, :G], xf], dim=1) if G else xf
        else:
            x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1), mask)
        if self.cross is not None:
            x = x + self.cross(self.norm_x(x), text_mask, context=text)
        x = x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))
        return x


SPRITE_ALPHA_INIT = -4.0
SPRITE_OFF_LOGIT = -30.0  # the layout of a sample without a reference: alpha ~ 1e-13
SPRITE_CHANNELS = 4  # alpha logit, then the square's centre x, centre y and half-size


def sprite_box(layout: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """The sprite square (cx, cy, r) in pixels [B, 3, T, H, W] each voxel of a layout
    [B, 4, T, H, W] guesses, relative to its own pixel centre (x, y): cx = x + W/2 p,
    cy = y + H/2 q, r = W/2 s. Relative, because where the square is from here is what a
    token sees in its own patch; its absolute position it knows only vaguely."""
    lay = layout[:, 1:].float()
    xs = torch.arange(W, device=lay.device, dtype=torch.float32) + 0.5
    ys = torch.arange(H, device=lay.device, dtype=torch.float32) + 0.5
    return torch.stack(
        [
            xs.view(1, 1, 1, W) + W / 2 * lay[:, 0],
            ys.view(1, 1, H, 1) + H / 2 * lay[:, 1],
            W / 2 * lay[:, 2],
        ],
        dim=1,
    )


class SpaceTimeDiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden
        k = (cfg.patch_t, cfg.patch_h, cfg.patch_w)
        self.patch = nn.Conv3d(cfg.channels, D, kernel_size=k, stride=k)
        self.ref_patch = nn.Conv2d(cfg.channels, D, kernel_size=k[1:], stride=k[1:])
        self.ref_slot = nn.Parameter(torch.zeros(max(cfg.max_ref_images, 1), D))
        self.ctx_type = nn.Parameter(torch.zeros(D))
        self.text_in = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, D))
        self.text_type = nn.Parameter(torch.zeros(D))
        self.null_token = nn.Parameter(torch.randn(D) * 0.02)
        self.pool_in = nn.Linear(cfg.text_dim, D)
        self.null_pool = nn.Parameter(torch.zeros(D))
        self.t_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(D, 2 * D)
        self.out = nn.Linear(D, cfg.patch_dim)
        zero = [self.ada_out, self.out]
        self.out_mlp = None
        if cfg.head_hidden > 0:
            self.out_mlp = nn.Sequential(
                nn.Linear(D, cfg.head_hidden),
                nn.GELU(approximate="tanh"),
                nn.Linear(cfg.head_hidden, cfg.patch_dim),
            )
            zero.append(self.out_mlp[2])
        self.amodal_out = None
        if cfg.amodal_head:
            if not 0 <= cfg.amodal_block <= cfg.depth:
                raise ValueError(f"amodal_block {cfg.amodal_block}: 0 to depth ({cfg.depth})")
            self.amodal_norm = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
            self.amodal_out = nn.Linear(D, cfg.patch_t * cfg.patch_h * cfg.patch_w)
            # zero: grown onto a trained model, its loss reaches the trunk only as the head
            # learns to read it (a random head's gradient would be noise on every block)
            zero.append(self.amodal_out)
        self.sprite_mlp = None
        if cfg.sprite_hidden > 0:
            if cfg.prediction != "x":  # it composites into the clean-clip prediction
                raise ValueError("the sprite pathway needs x-prediction (prediction='x')")
            voxels = cfg.patch_t * cfg.patch_h * cfg.patch_w
            # it reads the output token and the noisy input patch itself: late in sampling
            # the patch shows the square's edges to the pixel, which the token only summarises
            self.sprite_mlp = nn.Sequential(
                nn.Linear(D + cfg.patch_dim, cfg.sprite_hidden),
                nn.GELU(approximate="tanh"),
                # per voxel: alpha logit and the frame's square (cx, cy, r), see sprite_box
                nn.Linear(cfg.sprite_hidden, SPRITE_CHANNELS * voxels),
            )
            zero.append(self.sprite_mlp[2])
        for m in zero:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        if self.sprite_mlp is not None:  # alpha logits start at -4: the pathway nearly off
            nn.init.constant_(self.sprite_mlp[2].bias[:voxels], SPRITE_ALPHA_INIT)
            nn.init.constant_(self.sprite_mlp[2].bias[3 * voxels :], 0.25)  # r = W / 8

    # ------------------------------------------------------------------ token groups

    def _video_tokens(self, x: torch.Tensor, t0: float = 0.0) -> torch.Tensor:
        cfg = self.cfg
        tok = self.patch(x).flatten(2).transpose(1, 2)  # [B, N, D]
        nt = x.shape[2] // cfg.patch_t
        pos = pos3d(
            *grid_positions(nt, cfg.height // cfg.patch_h, cfg.width // cfg.patch_w, t0), cfg.hidden
        )
        return tok + pos.to(tok.dtype).to(tok.device)

    def _ref_tokens(self, refs: torch.Tensor) -> torch.Tensor:
        """refs [B, R, C, H, W] -> [B, R * hw, D] at time index -2 (before any frame)."""
        cfg = self.cfg
        B, R = refs.shape[:2]
        tok = self.ref_patch(refs.flatten(0, 1)).flatten(2).transpose(1, 2)  # [B*R, hw, D]
        pos = pos3d(
            *grid_positions(1, cfg.height // cfg.patch_h, cfg.width // cfg.patch_w, -2.0),
            cfg.hidden,
        ).to(tok.device)
        tok = tok.view(B, R, -1, cfg.hidden) + pos.to(tok.dtype) + self.ref_slot[:R, None]
        return tok.flatten(1, 2)

    def forward(
        self,
        x: torch.Tensor,  # [B, C, T, H, W] noised video in [-1, 1] units
        t: torch.Tensor,  # [B] flow time in [0, 1] (1 = pure noise)
        text: torch.Tensor,  # [B, L, text_dim] prompt token embeddings
        text_mask: torch.Tensor,  # [B, L] bool, all False = null prompt
        pooled: torch.Tensor,  # [B, text_dim]
        refs: torch.Tensor | None = None,  # [B, R, C, H, W] clean cameo reference images
        ref_mask: torch.Tensor | None = None,  # [B, R] bool
        context: torch.Tensor | None = None,  # [B, C, Tc, H, W] clean context frames
        context_mask: torch.Tensor | None = None,  # [B] bool
        return_layout: bool = False,
        composite: bool = True,
        return_amodal: bool = False,
    ):
        """The velocity [B, C, T, H, W]; with `return_layout`, (velocity, layout): the sprite
        pathway's raw layout [B, 4, T, H, W] (alpha logit and each voxel's guess of the
        square, `sprite_box`), None without the pathway or without a sample with a reference.
        `composite=False` leaves the sprite out of the velocity (the sampler composites after
        guidance, with `apply_sprite`). `return_amodal`: (velocity, layout, amodal logits
        [B, T, H, W] or None without the head), see `ModelConfig.amodal_head`."""
        cfg = self.cfg
        B, dev = x.shape[0], x.device
        T = x.shape[2]
        has_text = text_mask.any(dim=1)
        pool = torch.where(has_text[:, None], self.pool_in(pooled), self.null_pool)
        c = self.t_mlp(timestep_embedding(t, cfg.hidden).to(dev)) + pool

        txt = self.text_in(text) + self.text_type
        txt = txt + sincos(torch.arange(text.shape[1], device=dev) + 1, cfg.hidden).to(dev)
        null = (self.null_token + self.text_type).expand(B, 1, -1)
        txt = torch.cat([null, txt], dim=1)
        tmask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=dev), text_mask], dim=1)

        groups, masks = [], []
        if cfg.text_mode == "joint":
            groups.append(txt)
            masks.append(tmask)
        if refs is not None and refs.shape[1] > 0:
            rt = self._ref_tokens(refs)
            per = rt.shape[1] // refs.shape[1]
            if ref_mask is None:
                ref_mask = torch.ones(B, refs.shape[1], dtype=torch.bool, device=dev)
            groups.append(rt)
            masks.append(ref_mask.repeat_interleave(per, dim=1))
        # text (joint) and references: the factorised attention's global tokens
        n_global = sum(g.shape[1] for g in groups)
        if context is not None and context.shape[2] > 0:
            nct = context.shape[2] // cfg.patch_t
            ct = self._video_tokens(context, t0=-float(nct) - 2.0) + self.ctx_type
            if context_mask is None:
                context_mask = torch.ones(B, dtype=torch.bool, device=dev)
            groups.append(ct)
            masks.append(context_mask[:, None].expand(B, ct.shape[1]))
        vid = self._video_tokens(x)
        nv = vid.shape[1]
        groups.append(vid)
        masks.append(torch.ones(B, nv, dtype=torch.bool, device=dev))
        h = torch.cat(groups, dim=1)
        mask = torch.cat(masks, dim=1)
        if bool(mask.all()):
            mask = None  # lets SDPA take its fastest kernel
        amodal_in = None
        for k, blk in enumerate(self.blocks, start=1):
            h = blk(h, c, mask, txt, tmask, n_global)
            if return_amodal and self.amodal_out is not None and k == cfg.amodal_block:
                amodal_in = self.amodal_norm(h[:, -nv:])
        h = h[:, -nv:]  # the loss and the output only ever see video tokens
        sh, sc = self.ada_out(F.silu(c)).chunk(2, dim=-1)
        y = modulate(self.norm_out(h), sh, sc)
        o = self.out(y)
        if self.out_mlp is not None:
            o = o + self.out_mlp(y)
        out = unpatchify(o, cfg, frames=T)
        layout = None
        if self.sprite_mlp is not None and refs is not None and refs.shape[1] > 0:
            on = ref_mask[:, 0] if ref_mask is not None else torch.ones(B, dtype=torch.bool)
            layout = self._layout_where(on.to(dev), y, x)
        if layout is not None and composite:
            # detached: the pathway learns from its own targets (flow.sprite_loss) only; at
            # low noise the trunk alone copies its input better than any texel
            out = self.apply_sprite(out, layout.detach(), refs[:, 0], on.to(dev))
        if cfg.prediction == "x":
            tt = t.to(out.dtype).clamp(min=cfg.t_min).view(B, 1, 1, 1, 1)
            out = (x - out) / tt
        if return_amodal:
            amodal = None
            if self.amodal_out is not None:
                tok = y if amodal_in is None else amodal_in
                amodal = unpatchify(self.amodal_out(tok), cfg, frames=T, channels=1)[:, 0]
            return out, layout, amodal
        return (out, layout) if return_layout else out

    def _layout_where(self, on: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
        """The layout of the samples with a reference (`on` [B]), computed for those rows only
        (the sampler sends every request's branches with a reference slot, most of them
        empty: the pathway would cost them a third more FLOPs for nothing); the other rows say
        "no sprite". None when no sample has one."""
        idx = torch.nonzero(on).flatten()
        if len(idx) == 0:
            return None
        if len(idx) == len(on):
            return self.sprite_layout(y, x)
        sub = self.sprite_layout(y[idx], x[idx])
        layout = sub.new_zeros((len(on), *sub.shape[1:]))
        layout[:, 0] = SPRITE_OFF_LOGIT
        layout[idx] = sub
        return layout

    def sprite_layout(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The sprite pathway's raw layout [B, 4, T, H, W] (alpha logit, then the square per
        voxel, `sprite_box`) from the output tokens `y` [B, N, D] and the noisy clip `x`.

        `y` is detached: the pathway's loss trains the pathway and does not reach the trunk,
        as the flow loss does not reach the pathway. Its gradients are some 30 times the flow
        loss's (gradient norm about 2 against 0.07), so on the trunk they would crowd the flow
        loss out of AdamW's second moments on every cameo batch."""
        h = torch.cat([y.detach(), patchify(x, self.cfg).to(y.dtype)], dim=-1)
        return unpatchify(self.sprite_mlp(h), self.cfg, frames=x.shape[2], channels=SPRITE_CHANNELS)

    def apply_sprite(self, x0, layout, ref, on):
        """x0 [B, C, T, H, W] (a clean-clip prediction) takes the reference's texel where alpha
        says the sprite shows. `ref` [B, C, H, W] is the first cameo reference, `on` [B]
        whether the sample has one (alpha is exactly 0 where not: x0 is unchanged there)."""
        cfg = self.cfg
        B, C, T, H, W = x0.shape
        dev = x0.device
        alpha = torch.sigmoid(layout[:, 0].float()) * on.view(B, 1, 1, 1).float()  # [B,T,H,W]
        # one square per frame: the guesses of the voxels that say the sprite shows there,
        # pooled twice, the second time only over those inside (or a pixel from) the first
        # square, so that a few stray voxels elsewhere do not drag it
        guess = sprite_box(layout, H, W)  # [B, 3, T, H, W]
        w = torch.where(alpha > 0.5, alpha, torch.zeros_like(alpha))
        xs = torch.arange(W, device=dev, dtype=torch.float32) + 0.5
        ys = torch.arange(H, device=dev, dtype=torch.float32) + 0.5

        def square(weight):
            mass = weight.sum((2, 3))  # [B, T]
            box = (guess * weight[:, None]).sum((3, 4)) / mass.clamp(min=1e-6)[:, None]
            cx, cy = box[:, 0, :, None, None], box[:, 1, :, None, None]
            r = box[:, 2, :, None, None].clamp(min=0.5)
            # [-1, 1] across the square, as the world draws it
            return mass, (xs.view(1, 1, 1, W) - cx) / r, (ys.view(1, 1, H, 1) - cy) / r, r

        mass, u, v, r = square(w)
        near = ((u.abs() - 1) * r <= 1.0) & ((v.abs() - 1) * r <= 1.0)
        mass2, u2, v2, _ = square(w * near)
        again = (mass2 > 0)[:, :, None, None]
        u, v = torch.where(again, u2, u), torch.where(again, v2, v)
        grid = torch.stack(torch.broadcast_tensors(u, v), dim=-1).reshape(B, T * H, W, 2)
        sprite = F.adaptive_avg_pool2d(ref.float(), cfg.sprite_size)  # [B, C, s, s]
        # nearest: the texel itself, as the world draws it
        tex = F.grid_sample(
            sprite, grid, mode="nearest", padding_mode="border", align_corners=False
        ).view(B, C, T, H, W)
        # the sprite shows inside its square only; no square this frame, no sprite
        inside = (u.abs() <= 1) & (v.abs() <= 1) & (mass > 0)[:, :, None, None]
        alpha = alpha * inside.float()
        out = x0.float() + alpha[:, None] * (tex - x0.float())
        return out.to(x0.dtype)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(
    cfg: ModelConfig, *, batch: int = 1, refs: bool = False, context: bool = False
) -> int:
    """FLOPs (2 per multiply-add) of the matmuls, convolutions and attention of one forward
    pass of a `cfg` model at its own clip size (prompt of `cfg.max_text_tokens` tokens;
    `refs`: with its cameo references, `context`: with its context frames), counted by
    torch's FlopCounterMode on a random-weight model. Attention runs through SDPA's math
    backend here, whose matmuls the counter sees (it skips CPU flash attention, which an
    unmasked call takes). Elementwise work (norms, GELU, softmax) is not counted."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]), sdpa_kernel(SDPBackend.MATH):
        torch.manual_seed(0)
        model = SpaceTimeDiT(cfg).eval()
        B, L = batch, cfg.max_text_tokens
        x = torch.randn(B, cfg.channels, cfg.frames, cfg.height, cfg.width)
        kw = {}
        if refs and cfg.max_ref_images:
            shape = (B, cfg.max_ref_images, cfg.channels, cfg.height, cfg.width)
            kw["refs"] = torch.randn(shape)
        if context and cfg.max_context_frames:
            shape = (B, cfg.channels, cfg.max_context_frames, cfg.height, cfg.width)
            kw["context"] = torch.randn(shape)
        args = (torch.rand(B), torch.randn(B, L, cfg.text_dim), torch.ones(B, L, dtype=torch.bool))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x, *args, torch.randn(B, cfg.text_dim), **kw)
    return int(counter.get_total_flops())
