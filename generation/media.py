"""From generated frames to the files a phone plays: watermark, H.264 MP4, poster, preview,
sprite sheet, and the engine frames kept beside them.

Bytes in, bytes out: the caller writes the results through Django's storage API.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .frames import frames_to_npz
from .timing import NO_CLOCK, StageClock
from .upscale import upscale

CORNERS = ("top_left", "top_right", "bottom_right", "bottom_left")
# The sprite sheet (the Videos API's `spritesheet` variant): up to this many frames, evenly
# spaced, in a near-square grid of tiles this long on their long side.
SPRITE_FRAMES = 25
SPRITE_TILE = 160


@dataclass
class RenderedVideo:
    mp4: bytes
    poster: bytes
    preview: bytes
    width: int
    height: int
    frame_count: int
    fps: float
    duration_s: float
    sha256: str
    # JPEG grid of sampled frames (`spritesheet_jpeg`)
    spritesheet: bytes = b""
    # the frames the engine made, before letterbox and watermark (`frames.frames_to_npz`);
    # empty when render_video was not given them
    engine_frames: bytes = b""


def _check_frames(frames) -> np.ndarray:
    array = np.asarray(frames)
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {array.dtype}")
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] < 2 or array.shape[2] < 2:
        raise ValueError("frames must hold at least one frame of at least 2x2 pixels")
    return array


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Scales so the short side is `short_side`, keeping aspect; both even (H.264 4:2:0)."""
    scale = short_side / min(height, width)
    new_h, new_w = round(height * scale), round(width * scale)
    return new_h + new_h % 2, new_w + new_w % 2


@lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def corner_for(index: int, fps: float) -> str:
    """The watermark moves to the next corner every second, so cropping one corner fails."""
    return CORNERS[int(index // max(1, round(fps))) % len(CORNERS)]


def watermark_tile(size: tuple[int, int], handle: str) -> tuple[Image.Image, int]:
    """The watermark block ("Riff" over "@handle") for frames of `size`, as a small RGBA tile,
    and the margin it keeps from the frame's edges. Semi-opaque white with a dark outline
    reads on any background."""
    width, height = size
    font_size = max(12, min(width, height) // 18)
    font, small = _font(font_size), _font(max(10, int(font_size * 0.7)))
    lines = [("Riff", font), (f"@{handle}", small)]
    margin = max(6, font_size // 2)
    measure = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    boxes = [measure.textbbox((0, 0), text, font=f, stroke_width=2) for text, f in lines]
    block_w = max(b[2] - b[0] for b in boxes)
    block_h = sum(b[3] - b[1] for b in boxes) + margin // 2
    tile = Image.new("RGBA", (block_w, block_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    y = 0
    for (text, f), box in zip(lines, boxes, strict=True):
        draw.text(
            (-box[0], y - box[1]),
            text,
            font=f,
            fill=(255, 255, 255, 200),
            stroke_width=2,
            stroke_fill=(0, 0, 0, 170),
        )
        y += box[3] - box[1] + margin // 2
    return tile, margin


def _stamp(image: Image.Image, tile: Image.Image, margin: int, corner: str) -> Image.Image:
    """Blends `tile` into `image` (RGB, in place) at `corner`: what alpha-compositing a
    full-frame overlay would give, touching only the tile's pixels."""
    width, height = image.size
    x = margin if "left" in corner else width - tile.width - margin
    y = margin if "top" in corner else height - tile.height - margin
    image.paste(tile, (x, y), tile)
    return image


def watermark(image: Image.Image, *, handle: str, corner: str) -> Image.Image:
    tile, margin = watermark_tile(image.size, handle)
    return _stamp(image.convert("RGB"), tile, margin, corner)


def prepare_frames(
    frames, *, fps: float, handle: str, short_side: int, size: tuple[int, int] | None = None
) -> list[Image.Image]:
    """Resize and watermark every frame: to exactly `size` (width, height) when given,
    otherwise to `short_side` keeping the aspect. `generation.upscale` picks the filter from the
    scale and the content: "contour" (crisp flat colours, smooth edges) for tiny frames of flat
    colours, LANCZOS for textured frames (the engine's own samples among them) and for natural
    video a little smaller or larger than delivered (docs/upscaling.json).
    The watermark is drawn once per clip, scaled to the frame's short side so it reads the same
    at every size, and blended into each frame where it goes."""
    array = _check_frames(frames)
    if size is not None:
        width, height = size
    else:
        height, width = output_size(array.shape[1], array.shape[2], short_side)
    tile, margin = watermark_tile((width, height), handle)
    out = []
    # 16 frames at a time: a long clip at a large size costs the images it becomes, not twice
    for start in range(0, len(array), 16):
        for index, frame in enumerate(upscale(array[start : start + 16], width, height), start):
            out.append(_stamp(Image.fromarray(frame), tile, margin, corner_for(index, fps)))
    return out


def encode_mp4(images: list[Image.Image], *, fps: float, crf: int = 20) -> bytes:
    """H.264 in MP4 with the index up front (faststart) so playback starts before the download
    ends. Faststart rewrites the file in a second pass, which needs a real file."""
    rate = Fraction(fps).limit_denominator(1000)
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        _encode_to(tmp.name, images, rate, crf)
        return Path(tmp.name).read_bytes()


def _encode_to(path: str, images: list[Image.Image], rate: Fraction, crf: int) -> None:
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = images[0].size
        stream.pix_fmt = "yuv420p"
        # "veryfast": on the engine's clips about half the CPU of "medium" (140 vs 255 ms for
        # 16 frames at 512x910) for a file ~10% larger. One thread: frame threads only add
        # lookahead latency on so few frames, and contend with the engine for the worker's
        # cores (docs/generation.md, "Worker").
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "tune": "animation",
            "threads": "1",
        }
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def poster_jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88, optimize=True, progressive=True)
    return out.getvalue()


def preview_webp(images: list[Image.Image], *, fps: float, short_side: int = 256) -> bytes:
    width, height = images[0].size
    scale = short_side / min(width, height)
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    factor = width // size[0]
    if (
        factor > 1
        and not width % factor
        and not height % factor
        and size == (width // factor, height // factor)
    ):
        # An exact integer step (512 -> 256 px): a box average of each factor x factor block,
        # within a fraction of a level of BILINEAR's answer at a fifth of its CPU (13 against
        # 61 ms for 16 frames of 512x910; the job's end-to-end overhead, docs/generation.md).
        small = [image.reduce(factor) for image in images]
    else:
        small = [image.resize(size, Image.Resampling.BILINEAR) for image in images]
    out = io.BytesIO()
    small[0].save(
        out,
        format="WEBP",
        save_all=True,
        append_images=small[1:],
        duration=round(1000 / fps),
        loop=0,
        quality=70,
        # 2 of 0-6: about a quarter less work than 4 for a file a few percent larger.
        method=2,
    )
    return out.getvalue()


def spritesheet_jpeg(images: list[Image.Image]) -> bytes:
    """A JPEG grid of up to SPRITE_FRAMES frames evenly spaced over the clip (the first and the
    last included), left to right then top to bottom: `cols = ceil(sqrt(n))`, `rows =
    ceil(n / cols)`, each tile the frame scaled to SPRITE_TILE px on its long side; cells past
    the last frame are black."""
    count = min(SPRITE_FRAMES, len(images))
    picks = np.linspace(0, len(images) - 1, num=count).round().astype(int)
    width, height = images[0].size
    scale = SPRITE_TILE / max(width, height)
    tile = (max(1, round(width * scale)), max(1, round(height * scale)))
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    sheet = Image.new("RGB", (cols * tile[0], rows * tile[1]))
    for cell, index in enumerate(picks):
        thumb = images[index].convert("RGB").resize(tile, Image.Resampling.BILINEAR)
        sheet.paste(thumb, ((cell % cols) * tile[0], (cell // cols) * tile[1]))
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def spritesheet_from_mp4(data: bytes) -> bytes:
    """`spritesheet_jpeg` of a delivered MP4's frames (for videos rendered before sprite sheets
    existed). Each frame is shrunk to its tile as it is decoded, so a long clip at a large size
    costs no more memory than its sprite sheet. ValueError for an MP4 without frames."""
    tiles: list[Image.Image] = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(container.streams.video[0]):
            image = frame.to_image()
            scale = SPRITE_TILE / max(image.size)
            tiles.append(
                image.resize(
                    (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                    Image.Resampling.BILINEAR,
                )
            )
    if not tiles:
        raise ValueError("the video has no frames")
    return spritesheet_jpeg(tiles)


def probe_mp4(data: bytes) -> dict:
    """Decodes an MP4 fully: codec, size, frame count, fps, duration."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "fps": float(stream.average_rate or 0),
            "duration_s": float(stream.duration * stream.time_base) if stream.duration else None,
        }


def render_video(
    *,
    frames,
    fps: float,
    handle: str,
    signer=None,
    metadata: dict | None = None,
    short_side: int = 512,
    size: tuple[int, int] | None = None,
    engine_frames=None,
    clock: StageClock = NO_CLOCK,
) -> RenderedVideo:
    """Watermarked H.264 MP4 (signed with C2PA when `signer` is given), poster, preview and
    sprite sheet, at exactly `size` (width, height; both even) when given, else at
    `short_side` keeping the frames' aspect. `engine_frames` (uint8 [T, h, w, 3], the engine's
    own frames before `frames` were letterboxed) come back compressed, to be stored beside the
    MP4. `clock` gets the stages `frames`, `encode`, `sign` and `previews` (generation.timing;
    the sprite sheet and the engine frames count as previews)."""
    with clock.stage("frames"):
        images = prepare_frames(frames, fps=fps, handle=handle, short_side=short_side, size=size)
    with clock.stage("encode"):
        mp4 = encode_mp4(images, fps=fps)
    if signer is not None:
        from .provenance import sign_mp4

        with clock.stage("sign"):
            mp4 = sign_mp4(mp4, assertion=dict(metadata or {}), signer=signer)
    width, height = images[0].size
    with clock.stage("previews"):
        poster = poster_jpeg(images[len(images) // 2])
        preview = preview_webp(images, fps=fps)
        sprites = spritesheet_jpeg(images)
        kept = b"" if engine_frames is None else frames_to_npz(_check_frames(engine_frames), fps)
    return RenderedVideo(
        mp4=mp4,
        poster=poster,
        preview=preview,
        width=width,
        height=height,
        frame_count=len(images),
        fps=float(fps),
        duration_s=round(len(images) / fps, 3),
        sha256=hashlib.sha256(mp4).hexdigest(),
        spritesheet=sprites,
        engine_frames=kept,
    )
