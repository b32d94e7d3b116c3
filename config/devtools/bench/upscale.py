"""Which filter upscales generated frames best (`manage.py bench_upscale`): the measurement
behind generation.upscale's choice, rerunnable on seeds it has never seen.

- **riff-world at 16x**: `--clips` clips (seeds `--start`, `--start + 1`, ...) are drawn at the
  engine's 32x32 and the same scenes are rendered again at 512x512 (positions, sizes and the
  wall scaled by 16): what a perfect engine at 512 px would show. Each filter's upscale of
  the 32 px frames is scored against that truth: PSNR over the whole clip, SSIM over frames
  0, 5, 10 and 15, the share of pixels within 8 levels (every channel) of the truth's colour
  there ("right colour") and of any colour the scene has ("palette"), the H.264 bytes of the clip as delivered (generation.media.encode_mp4 at 8 fps), and
  the milliseconds the upscale takes. Means come with 95 % bootstrap intervals over clips;
  contour's per-clip differences from nearest (PSNR) and bilinear (SSIM) too, paired.
  "shifted" is a deliberately wrong output (nearest of the frames moved one source pixel to
  the right): every real filter must score above it, or the metric cannot tell.
- **riff-world at 2x, 4x, 8x**: the same comparison at smaller factors (PSNR, SSIM), to see
  whether contour's lead depends on the factor or on the content.
- **photographs** (skimage's astronaut, chelsea and coffee, cropped to a multiple of 24 px):
  box-downscaled by 1.5x, 2x, 4x and 8x, upscaled back with each filter, scored against the
  original: natural video, as the diffusers backends deliver it.

Writes the report (JSON) and a picture: one frame of the first clip whose first object is a
ball, the ball cropped from the truth and from three upscales, side by side, zoomed 2x.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data as photos
from skimage.metrics import structural_similarity
from tqdm import tqdm

from generation.engine.world import Clip, WorldConfig, make_clip, render
from generation.media import encode_mp4
from generation.upscale import CONTOUR_MAX_MIXED, CONTOUR_MIN_FACTOR, contour, pillow_resize

SCALE = 16
FPS = 8
SSIM_FRAMES = (0, 5, 10, 15)
PALETTE_TOLERANCE = 8
BOOTSTRAP_DRAWS = 4000
SWEEP_FACTORS = (2, 4, 8)
PHOTO_FACTORS = (1.5, 2, 4, 8)
PHOTOS = ("astronaut", "chelsea", "coffee")
PILLOW = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
FILTERS = (*PILLOW, "contour", "shifted")


def resize(name: str, frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [T, height, width, 3]: `frames` through the filter called `name` (FILTERS)."""
    if name == "contour":
        return contour(frames, width, height)
    if name == "shifted":
        return pillow_resize(np.roll(frames, 1, axis=2), width, height, PILLOW["nearest"])
    return pillow_resize(frames, width, height, PILLOW[name])


def scene_at(clip: Clip, cfg: WorldConfig, factor: float) -> np.ndarray:
    """The clip's scene rendered `factor` times larger (objects, wall and positions scaled)."""
    big = replace(
        cfg,
        height=round(cfg.height * factor),
        width=round(cfg.width * factor),
        occluder_width=cfg.occluder_width * factor,
    )
    spec = copy.deepcopy(clip.spec)
    if spec.occluder_x is not None:
        spec.occluder_x *= factor
    frames, _ = render(spec, clip.trajectories[..., :2] * factor, big)
    return frames


def psnr(got: np.ndarray, truth: np.ndarray) -> float:
    error = np.mean((got.astype(np.float64) - truth) ** 2)
    return float(10 * np.log10(255**2 / error))


def ssim(got: np.ndarray, truth: np.ndarray, frames: tuple[int, ...]) -> float:
    """Mean SSIM (colour) over `frames` of two clips."""
    return float(
        np.mean(
            [
                structural_similarity(got[i], truth[i], channel_axis=-1, data_range=255)
                for i in frames
            ]
        )
    )


def colours_of(frames: np.ndarray) -> np.ndarray:
    """The distinct colours of uint8 [..., 3] frames, int16 [K, 3]."""
    packed = np.unique(frames.reshape(-1, 3).astype(np.int32) @ np.array([65536, 256, 1]))
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1).astype(np.int16)


def palette_share(got: np.ndarray, palette: np.ndarray) -> float:
    """Share of `got`'s pixels within PALETTE_TOLERANCE (every channel) of a colour of
    `palette` (a flat-colour scene's handful of colours)."""
    pixels = got.reshape(-1, 3).astype(np.int16)
    near = np.zeros(len(pixels), bool)
    for colour in palette:
        near |= np.abs(pixels - colour).max(axis=1) <= PALETTE_TOLERANCE
    return float(near.mean())


def right_colour(got: np.ndarray, truth: np.ndarray) -> float:
    """Share of pixels within PALETTE_TOLERANCE (every channel) of the truth's pixel there:
    the scene's geometry, scored without the partial credit a blur gets from PSNR."""
    diff = np.abs(got.astype(np.int16) - truth).max(axis=-1)
    return float((diff <= PALETTE_TOLERANCE).mean())


def interval(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    """95 % percentile-bootstrap interval of the mean of `values` (one per clip)."""
    draws = rng.integers(0, len(values), (BOOTSTRAP_DRAWS, len(values)))
    means = np.asarray(values)[draws].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summary(values: list[float], rng: np.random.Generator, digits: int) -> dict:
    array = np.asarray(values, np.float64)
    low, high = interval(array, rng)
    return {
        "mean": round(float(array.mean()), digits),
        "ci95": [round(low, digits), round(high, digits)],
    }


def score_clips(*, clips: int, start: int, progress: bool) -> tuple[dict, dict]:
    """Per filter, per clip: the 16x scores; and the PSNR/SSIM at SWEEP_FACTORS."""
    cfg = WorldConfig()
    at16: dict[str, dict[str, list[float]]] = {
        name: {
            "psnr": [],
            "ssim": [],
            "right_colour": [],
            "palette": [],
            "h264_bytes": [],
            "ms": [],
        }
        for name in FILTERS
    }
    sweep: dict[str, dict[str, dict[str, list[float]]]] = {
        f"{factor}x": {name: {"psnr": [], "ssim": []} for name in FILTERS}
        for factor in SWEEP_FACTORS
    }
    for seed in tqdm(range(start, start + clips), desc="clips", disable=not progress):
        clip = make_clip(seed, cfg, split="all")
        truth = scene_at(clip, cfg, SCALE)
        height, width = truth.shape[1:3]
        palette = colours_of(truth)
        for name in FILTERS:
            began = time.perf_counter()
            got = resize(name, clip.frames, width, height)
            at16[name]["ms"].append((time.perf_counter() - began) * 1000)
            at16[name]["psnr"].append(psnr(got, truth))
            at16[name]["ssim"].append(ssim(got, truth, SSIM_FRAMES))
            at16[name]["right_colour"].append(right_colour(got, truth))
            at16[name]["palette"].append(palette_share(got[list(SSIM_FRAMES)], palette))
            images = [Image.fromarray(frame) for frame in got]
            at16[name]["h264_bytes"].append(len(encode_mp4(images, fps=FPS)))
        for factor in SWEEP_FACTORS:
            small_truth = scene_at(clip, cfg, factor)
            h, w = small_truth.shape[1:3]
            for name in FILTERS:
                got = resize(name, clip.frames, w, h)
                sweep[f"{factor}x"][name]["psnr"].append(psnr(got, small_truth))
                sweep[f"{factor}x"][name]["ssim"].append(ssim(got, small_truth, SSIM_FRAMES))
    return at16, sweep


def natural_check() -> dict:
    """Per factor, per filter (no "shifted"): mean PSNR and SSIM over PHOTOS."""
    scores: dict[str, dict[str, dict[str, list[float]]]] = {
        f"{factor}x": {name: {"psnr": [], "ssim": []} for name in FILTERS if name != "shifted"}
        for factor in PHOTO_FACTORS
    }
    for photo in PHOTOS:
        image = getattr(photos, photo)()
        h, w = (image.shape[0] // 24) * 24, (image.shape[1] // 24) * 24
        original = image[:h, :w]
        for factor in PHOTO_FACTORS:
            small = Image.fromarray(original).resize(
                (round(w / factor), round(h / factor)), Image.Resampling.BOX
            )
            for name, result in scores[f"{factor}x"].items():
                got = resize(name, np.asarray(small)[None], w, h)
                result["psnr"].append(psnr(got, original[None]))
                result["ssim"].append(ssim(got, original[None], (0,)))
    return {
        factor: {
            name: {metric: round(float(np.mean(v)), 4) for metric, v in result.items()}
            for name, result in by_filter.items()
        }
        for factor, by_filter in scores.items()
    }


def comparison_picture(path: Path, *, start: int) -> int:
    """Writes the picture; returns the seed it shows."""
    cfg = WorldConfig()
    seed = start
    while True:
        clip = make_clip(seed, cfg, split="all")
        if clip.spec.objects[0].shape == "ball" and clip.visible_fraction[0].min() == 1:
            break
        seed += 1
    index = cfg.frames // 2
    truth = scene_at(clip, cfg, SCALE)
    height, width = truth.shape[1:3]
    x, y = clip.trajectories[0, index, :2] * SCALE
    half = round(clip.spec.objects[0].radius(cfg) * SCALE * 1.25)
    left = int(np.clip(round(x) - half, 0, width - 2 * half))
    top = int(np.clip(round(y) - half, 0, height - 2 * half))
    panels = [("truth (rendered at 512 px)", truth[index : index + 1])] + [
        (name, resize(name, clip.frames[index : index + 1], width, height))
        for name in ("nearest", "bilinear", "contour")
    ]
    zoom, label, gap = 2, 22, 8
    side = 2 * half * zoom
    sheet = Image.new("RGB", (len(panels) * (side + gap) - gap, side + label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, frames) in enumerate(panels):
        crop = frames[0][top : top + 2 * half, left : left + 2 * half]
        tile = Image.fromarray(crop).resize((side, side), Image.Resampling.NEAREST)
        sheet.paste(tile, (i * (side + gap), label))
        draw.text((i * (side + gap) + 4, 4), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return seed


def bench_upscale(
    *,
    clips: int,
    start: int,
    out: Path,
    picture: Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    began = time.perf_counter()
    rng = np.random.default_rng(0)
    at16, sweep = score_clips(clips=clips, start=start, progress=progress)
    digits = {"psnr": 2, "ssim": 4, "right_colour": 4, "palette": 4, "h264_bytes": 0, "ms": 1}
    filters = {
        name: {metric: summary(values, rng, digits[metric]) for metric, values in scores.items()}
        for name, scores in at16.items()
    }
    contour_psnr = np.asarray(at16["contour"]["psnr"])
    contour_ssim = np.asarray(at16["contour"]["ssim"])
    paired = {
        "contour_minus_nearest_psnr": summary(list(contour_psnr - at16["nearest"]["psnr"]), rng, 2),
        "contour_beats_nearest_psnr_clips": int((contour_psnr > at16["nearest"]["psnr"]).sum()),
        "contour_minus_bilinear_ssim": summary(
            list(contour_ssim - at16["bilinear"]["ssim"]), rng, 4
        ),
        "contour_beats_bilinear_ssim_clips": int((contour_ssim > at16["bilinear"]["ssim"]).sum()),
        "shifted_below_every_filter_psnr_clips": int(
            sum(
                all(at16["shifted"]["psnr"][i] < at16[name]["psnr"][i] for name in PILLOW)
                and at16["shifted"]["psnr"][i] < contour_psnr[i]
                for i in range(clips)
            )
        ),
    }
    by_factor = {
        factor: {
            name: {metric: round(float(np.mean(v)), 4) for metric, v in scores.items()}
            for name, scores in by_filter.items()
        }
        for factor, by_filter in sweep.items()
    }
    natural = natural_check()
    seed = comparison_picture(picture, start=start)
    report = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "clips": clips,
        "seeds": [start, start + clips - 1],
        "scale": f"32x32 -> {32 * SCALE}x{32 * SCALE}",
        "frames_per_clip": WorldConfig().frames,
        "ssim_frames": list(SSIM_FRAMES),
        "palette_tolerance": PALETTE_TOLERANCE,
        "h264": f"generation.media.encode_mp4, {FPS} fps",
        "bootstrap_draws": BOOTSTRAP_DRAWS,
        "filters": filters,
        "paired": paired,
        "world_by_factor": by_factor,
        "photos": {"images": list(PHOTOS), "downscale": "Pillow BOX", "by_factor": natural},
        "decision": {
            "contour_min_factor": CONTOUR_MIN_FACTOR,
            "contour_max_mixed": CONTOUR_MAX_MIXED,
            "rule": "contour when both axes grow by the factor or more and at most "
            "contour_max_mixed of the frames' 2x2 cells hold more than one colour, else Pillow "
            "LANCZOS (generation/upscale.py says why)",
        },
        "picture": {"path": str(picture), "seed": seed, "frame": WorldConfig().frames // 2},
        "seconds": round(time.perf_counter() - began, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for line in report_lines(report):
        log(line)
    return report


def report_lines(report: dict) -> list[str]:
    lines = [
        f"{report['clips']} clips, seeds {report['seeds'][0]}-{report['seeds'][1]}, "
        f"{report['scale']} ({report['seconds']} s)",
        f"{'filter':<9} {'PSNR dB':<22} {'SSIM':<24} {'right':>6} {'palette':>7} "
        f"{'H.264 B':>8} {'ms':>6}",
    ]
    for name, s in report["filters"].items():
        p, q = s["psnr"], s["ssim"]
        lines.append(
            f"{name:<9} {p['mean']:6.2f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]  "
            f"{q['mean']:.4f} [{q['ci95'][0]:.4f}, {q['ci95'][1]:.4f}]  "
            f"{s['right_colour']['mean']:6.4f} "
            f"{s['palette']['mean']:7.4f} {s['h264_bytes']['mean']:8.0f} {s['ms']['mean']:6.1f}"
        )
    for factor, by_filter in report["world_by_factor"].items():
        cells = ", ".join(f"{n} {v['psnr']:.2f}/{v['ssim']:.3f}" for n, v in by_filter.items())
        lines.append(f"riff-world {factor} (PSNR/SSIM): {cells}")
    for factor, by_filter in report["photos"]["by_factor"].items():
        cells = ", ".join(f"{n} {v['psnr']:.2f}/{v['ssim']:.3f}" for n, v in by_filter.items())
        lines.append(f"photos {factor} (PSNR/SSIM): {cells}")
    lines.append(json.dumps(report["paired"]))
    return lines
