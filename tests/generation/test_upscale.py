"""generation.upscale: the filter chosen by scale, the fast "contour" against its definition,
and the comparison with scenes rendered at full size that chose it (docs/upscaling.json)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as photos

from config.devtools.bench.upscale import FILTERS, psnr, resize, scene_at
from generation import media
from generation.engine.world import WorldConfig, make_clip
from generation.upscale import (
    CONTOUR_MAX_MIXED,
    contour,
    filter_for,
    mixed_share,
    pillow_resize,
    upscale,
)


def contour_by_definition(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every output pixel computed: the bilinear guide, then the closest of the four source
    colours around it (the prototype's formula, with no shortcut for uniform neighbourhoods)."""
    _, h, w, _ = frames.shape
    ys = (np.arange(height) + 0.5) * h / height - 0.5
    xs = (np.arange(width) + 0.5) * w / width - 0.5
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy = (ys - y0).astype(np.float32)[None, :, None, None]
    fx = (xs - x0).astype(np.float32)[None, None, :, None]
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    f = frames.astype(np.float32)
    a, b = f[:, ya][:, :, xa], f[:, ya][:, :, xb]
    c, d = f[:, yb][:, :, xa], f[:, yb][:, :, xb]
    guide = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    candidates = np.stack([a, b, c, d])
    pick = ((candidates - guide[None]) ** 2).sum(-1).argmin(0)
    return np.take_along_axis(candidates, pick[None, ..., None], 0)[0].astype(np.uint8)


def world(seed: int, frames: int = 16) -> np.ndarray:
    return make_clip(seed, WorldConfig(), split="all").frames[:frames]


def colours(frame: np.ndarray) -> set[tuple[int, ...]]:
    return set(map(tuple, frame.reshape(-1, 3).tolist()))


# --- shapes and the rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source,size,expected",
    [
        ((32, 32), (512, 512), "contour"),  # riff-world at 512 px: 16x
        ((32, 32), (100, 77), "lanczos"),  # 2.4x and 3.1x
        ((57, 32), (512, 912), "contour"),  # letterboxed to 16:9, delivered at 512 px
        ((32, 40), (720, 1280), "contour"),  # 18x and 40x
        ((32, 32), (128, 128), "contour"),  # exactly 4x
        ((32, 32), (127, 200), "lanczos"),  # 3.97x on one axis: the smaller factor decides
        ((480, 832), (720, 1280), "lanczos"),  # a diffusers clip at 1.5x
        ((720, 1280), (512, 910), "lanczos"),  # a downscale
    ],
)
def test_upscale_gives_exactly_the_asked_shape_with_the_rule_s_filter(source, size, expected):
    (in_w, in_h), (width, height) = source, size
    # flat colours: two halves (the content rule has its own test below)
    frames = np.zeros((2, in_h, in_w, 3), np.uint8)
    frames[:, : max(in_h // 2, 1)] = (200, 30, 30)
    mixed = mixed_share(frames)
    assert mixed < 0.1
    rule = filter_for(in_height=in_h, in_width=in_w, height=height, width=width, mixed=mixed)
    assert rule == filter_for(in_height=in_h, in_width=in_w, height=height, width=width)
    assert rule == expected
    out = upscale(frames, width, height)
    assert out.shape == (2, height, width, 3) and out.dtype == np.uint8
    if expected == "lanczos":
        assert np.array_equal(out, pillow_resize(frames, width, height, Image.Resampling.LANCZOS))
    else:
        assert np.array_equal(out, contour(frames, width, height))


@pytest.mark.parametrize(
    "seed,size",
    [(1, (512, 512)), (2, (512, 912)), (200002, (720, 1280)), (5, (100, 77)), (7, (48, 40))],
)
def test_fast_contour_equals_the_definition_pixel_for_pixel(seed, size):
    frames = world(seed, frames=4)
    width, height = size
    assert np.array_equal(
        contour(frames, width, height), contour_by_definition(frames, width, height)
    )


def test_frames_that_are_not_flat_colours_get_lanczos_at_any_factor():
    """The engine's samples are textured (every 2x2 cell mixed), unlike the scenes it learnt
    from: contour would cost ~60x its flat-colour time there and keep nothing crisp."""
    noisy = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    flat = world(3, frames=2)
    assert mixed_share(noisy) > 0.99
    assert 0 < mixed_share(flat) < 0.2
    assert mixed_share(np.full((1, 8, 8, 3), 7, np.uint8)) == 0.0
    checker = np.zeros((1, 8, 8, 3), np.uint8)
    checker[0, ::2, ::2] = checker[0, 1::2, 1::2] = 255
    # 9 x 9 cells with the edges repeated: all mixed but the four corners (one pixel each)
    assert mixed_share(checker) == 77 / 81
    for width, height in ((512, 910), (720, 1280)):
        assert np.array_equal(
            upscale(noisy, width, height),
            pillow_resize(noisy, width, height, Image.Resampling.LANCZOS),
        )
        assert np.array_equal(upscale(flat, width, height), contour(flat, width, height))
    scale = {"in_height": 32, "in_width": 32, "height": 512, "width": 512}
    assert filter_for(**scale, mixed=CONTOUR_MAX_MIXED) == "contour"
    assert filter_for(**scale, mixed=CONTOUR_MAX_MIXED + 0.01) == "lanczos"
    assert filter_for(**{**scale, "height": 100, "width": 77}, mixed=0.0) == "lanczos"


@st.composite
def flat_frames(draw):
    """Frames of a few flat colours in random rectangles (what riff-world draws, and worse)."""
    t, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    palette = rng.integers(0, 256, (draw(st.integers(1, 5)), 3), dtype=np.uint8)
    frames = np.empty((t, h, w, 3), np.uint8)
    frames[:] = palette[0]
    for i in range(t):
        for _ in range(draw(st.integers(0, 4))):
            y, x = rng.integers(0, h), rng.integers(0, w)
            frames[i, y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = palette[
                rng.integers(0, len(palette))
            ]
    return frames


@settings(max_examples=60, deadline=None)
@given(frames=flat_frames(), height=st.integers(1, 90), width=st.integers(1, 90))
def test_contour_only_uses_its_frame_s_colours(frames, height, width):
    out = contour(frames, width, height)
    assert out.shape == (len(frames), height, width, 3)
    assert np.array_equal(out, contour_by_definition(frames, width, height))
    for source, got in zip(frames, out, strict=True):
        assert colours(got) <= colours(source)


@pytest.mark.parametrize("size", [(512, 512), (720, 1280), (48, 48), (37, 91)])
def test_a_uniform_frame_stays_uniform(size):
    frames = np.full((3, 32, 32, 3), (18, 18, 64), np.uint8)
    width, height = size
    for out in (upscale(frames, width, height), contour(frames, width, height)):
        assert out.shape == (3, height, width, 3)
        assert (out == (18, 18, 64)).all()


# --- the measurement that chose it ------------------------------------------------------------


def scores(seed: int, factor: int) -> dict[str, float]:
    cfg = WorldConfig()
    clip = make_clip(seed, cfg, split="all")
    truth = scene_at(clip, cfg, factor)
    height, width = truth.shape[1:3]
    return {name: psnr(resize(name, clip.frames, width, height), truth) for name in FILTERS}


@pytest.mark.parametrize("factor", [4, 16])
@pytest.mark.parametrize("seed", [1, 2, 200002])  # two large balls; a triangle; two triangles
def test_contour_beats_nearest_on_curved_edges_and_the_wrong_output_loses(seed, factor):
    got = scores(seed, factor)
    assert got["contour"] > got["nearest"] + 0.4, got
    assert all(got["shifted"] < got[name] - 1 for name in FILTERS if name != "shifted"), got


def test_on_squares_alone_contour_ties_with_nearest():
    # Axis-aligned edges: nearest already puts them where they are, contour only rounds the
    # corners (docs/upscaling.json counts such clips among its seeds).
    got = scores(4, 16)  # three large squares
    assert abs(got["contour"] - got["nearest"]) < 0.15, got
    assert got["shifted"] < got["nearest"] - 1, got


@pytest.mark.parametrize("factor", [1.5, 2])
def test_lanczos_wins_on_a_photograph_at_small_factors(factor):
    image = photos.chelsea()[:288, :432]
    small = Image.fromarray(image).resize(
        (round(432 / factor), round(288 / factor)), Image.Resampling.BOX
    )
    got = {
        name: psnr(resize(name, np.asarray(small)[None], 432, 288), image[None])
        for name in ("nearest", "bilinear", "bicubic", "lanczos", "contour")
    }
    assert max(got, key=got.get) == "lanczos", got
    assert filter_for(in_height=small.height, in_width=small.width, height=288, width=432) == (
        "lanczos"
    )


# --- the renderer uses it -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source,size",
    [((32, 32), None), ((57, 32), (720, 1280)), ((320, 176), (480, 864))],
    ids=["riff-world-512", "letterboxed-720x1280", "natural-1.5x"],
)
def test_prepare_frames_upscales_with_the_chosen_filter(source, size):
    in_w, in_h = source
    rng = np.random.default_rng(3)
    frames = world(11, frames=3)
    if (in_h, in_w) != (32, 32):
        frames = rng.integers(0, 256, (3, in_h, in_w, 3), dtype=np.uint8)
    images = media.prepare_frames(frames, fps=8, handle="who", short_side=512, size=size)
    width, height = images[0].size
    expected = upscale(frames, width, height)
    tile, margin = media.watermark_tile((width, height), "who")
    for got, want in zip(images, expected, strict=True):
        got = np.array(got)
        # everything but the watermark's block (top left for the first second) is the upscale
        got[: margin + tile.height, : margin + tile.width] = 0
        want = want.copy()
        want[: margin + tile.height, : margin + tile.width] = 0
        assert np.array_equal(got, want)
