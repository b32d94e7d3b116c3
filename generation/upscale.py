"""Resizing generated frames to the delivered size, with the filter the frames call for.

Two kinds of clip reach the renderer. The built-in engine (riff-world) makes 32x32 frames,
delivered at 16x or more (512 px short side, or an exact size such as 720x1280). Other
backends (diffusers and remote models) make natural video a little smaller than delivered
(480x832 shown at 720x1280: 1.5x), or larger (a downscale). `upscale` uses "contour" when both
axes grow by CONTOUR_MIN_FACTOR or more and the frames are flat colours (at most
CONTOUR_MAX_MIXED of their 2x2 cells hold more than one colour: `mixed_share`), Pillow's
LANCZOS otherwise.

The second condition came from measuring the whole pipeline (issue #31, docs/generation.md,
2026-12-08). riff-world's scenes are flat-coloured shapes, and the measurement below was made
on them (8 % of a rendered frame's cells are mixed), but the engine's own samples are not
flat: one 16-frame sample had 792 distinct colours per 1,024-pixel frame and 99.6 % of its
cells mixed. Contour computes its snap in every mixed cell, so on those frames it cost 1.3-1.5 s
per 16 frames at 512x910 (the whole job's overhead over sampling went from 0.47 s to 1.25 s)
against LANCZOS's 0.1 s; and with nothing flat to keep crisp it bought nothing: on that sample
box-downscaled 4x and upscaled back, LANCZOS 21.94 dB, bicubic 21.99, contour 21.46, bilinear
21.37, nearest 21.33 (one clip: a sanity check, not a ranking).

"contour": each output pixel takes whichever colour of its 2x2 nearest source pixels is
closest to the bilinear interpolation there. Edges stay as crisp and the colours as exact as
with nearest (no haze, no ringing, no new colours for the encoder to spend bits on), but a
boundary follows the bilinear iso-contour, a smooth line, instead of a 16 px staircase.

Measured by `manage.py bench_upscale` (docs/upscaling.json, docs/img/upscaling.png): 20 fresh
clips (seeds 200000-200019) upscaled 32 -> 512 px and compared with the same scenes rendered
at 512 px; means with 95 % bootstrap intervals over clips; "right" = pixels within 8 levels of
the truth's colour, "palette" = within 8 levels of some scene colour; ms per 16-frame clip on
the 2-core dev box; "shifted" = nearest of frames moved one source pixel (a wrong output):

    filter    PSNR dB               SSIM                   right  palette  H.264 B  ms
    nearest   24.22 [22.83, 25.70]  0.969 [0.963, 0.976]  0.986  1.000     6349    8
    bilinear  26.26 [24.80, 27.80]  0.956 [0.946, 0.967]  0.950  0.950     6007   31
    bicubic   26.14 [24.66, 27.71]  0.942 [0.927, 0.957]  0.934  0.934     8468   41
    lanczos   26.01 [24.58, 27.52]  0.929 [0.911, 0.948]  0.919  0.920    11548   56
    contour   24.78 [23.32, 26.31]  0.972 [0.964, 0.978]  0.987  1.000     8486   23
    shifted   20.06 [18.55, 21.62]  0.950 [0.938, 0.961]  0.964  1.000     6384    7

Paired over the same clips, contour beats nearest by 0.56 dB [0.36, 0.76] (17 of 20 clips; the
other three, a small square beside a wall, tie within 0.02 dB: edges on the pixel grid, which
nearest already places) and bilinear on SSIM by 0.015 [0.011, 0.019] (19 of 20). Bilinear's PSNR lead is the
blur hedging a sub-pixel position the 32 px frame does not hold: PSNR credits a half-way grey,
but the picture is a haze with 5 % of its pixels in colours the scene does not have. Only PSNR
ranks the wrong output below every filter; SSIM and "right" prefer it to the blurs, so they
judge crispness, not placement, and decide nothing alone. Contour costs a third more H.264
bytes than nearest, as much as bicubic.

On photographs (skimage's astronaut, chelsea, coffee; box-downscaled by 1.5x/2x/4x/8x, upscaled
back) LANCZOS wins at every factor on PSNR and SSIM (1.5x: 31.78 dB against bicubic 31.66,
bilinear 31.07, contour 30.09, nearest 29.00; 2x: 31.42, contour 29.45) and contour is 1.2-2.0 dB
behind it. On riff-world, contour's lead over nearest holds at 4x and 8x (+0.4, +0.6 dB) and
vanishes at 2x. So the content decides, and the factor stands for the content: riff-world is
delivered at 16x or more, natural video at under 3x; the threshold of 4 sits between the two.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Both axes must grow at least this much for "contour". riff-world is delivered at 16x or more;
# natural-video backends at under 3x; between the two the choice is a judgement: a model that
# makes frames a quarter of the delivered size or smaller is making sketches, not footage.
CONTOUR_MIN_FACTOR = 4.0
# ... and at most this share of the frames' 2x2 cells may hold more than one colour: contour
# keeps flat colours crisp, and its cost grows with the mixed cells (all of them: ~60x).
CONTOUR_MAX_MIXED = 0.5


def _cells(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`frames` (uint8 [T, h, w, 3]) as one uint32 per pixel (a colour compares and moves as one
    number), the same with the edges repeated, and which of the (h + 1) x (w + 1) cells between
    source pixels (clamped at the borders) hold more than one colour among their 2x2 sources."""
    t, h, w, _ = frames.shape
    packed = np.zeros((t, h, w, 4), np.uint8)
    packed[..., :3] = frames
    words = packed.view(np.uint32).reshape(t, h, w)
    edged = np.pad(words, ((0, 0), (1, 1), (1, 1)), mode="edge")
    corner = edged[:, :-1, :-1]
    mixed = (corner != edged[:, 1:, :-1]) | (corner != edged[:, :-1, 1:])
    mixed |= corner != edged[:, 1:, 1:]
    return words, edged, mixed


def mixed_share(frames: np.ndarray) -> float:
    """The share of `frames`' 2x2 cells, edges repeated at the borders as `contour` reads them,
    that hold more than one colour."""
    return float(_cells(frames)[2].mean())


def filter_for(
    *, in_height: int, in_width: int, height: int, width: int, mixed: float = 0.0
) -> str:
    """The filter, "contour" or "lanczos", for frames of `in_height` x `in_width` shown at
    `height` x `width` (the smaller of the two axes' factors decides) whose `mixed_share` is
    `mixed`."""
    factor = min(height / in_height, width / in_width)
    if factor >= CONTOUR_MIN_FACTOR and mixed <= CONTOUR_MAX_MIXED:
        return "contour"
    return "lanczos"


def upscale(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """`frames` (uint8 [T, h, w, 3]) resized to uint8 [T, height, width, 3] with `filter_for`'s
    filter (the frames' mixed share is read only when the scale alone allows contour)."""
    in_height, in_width = frames.shape[1], frames.shape[2]
    scale = {"in_height": in_height, "in_width": in_width, "height": height, "width": width}
    name = filter_for(**scale)
    if name == "contour":
        name = filter_for(**scale, mixed=mixed_share(frames))
    if name == "contour":
        return contour(frames, width, height)
    return pillow_resize(frames, width, height, Image.Resampling.LANCZOS)


def pillow_resize(
    frames: np.ndarray, width: int, height: int, resample: Image.Resampling
) -> np.ndarray:
    """Every frame through Pillow's `resize` with `resample`."""
    return np.stack(
        [np.asarray(Image.fromarray(frame).resize((width, height), resample)) for frame in frames]
    )


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis of the resize. Per output pixel: its nearest source pixel (Pillow's NEAREST
    rule) and the bilinear weight of the source pixel after its centre. Per cell (0..n_in; cell
    k lies between source pixels k-1 and k, clamped at the borders): its first output pixel
    and how many output pixels fall in it (contiguous, as the centres increase)."""
    centre = (np.arange(n_out) + 0.5) * (n_in / n_out)
    nearest = np.minimum(centre.astype(np.intp), n_in - 1)
    before = np.floor(centre - 0.5)
    weight = (centre - 0.5 - before).astype(np.float32)
    cell = before.astype(np.intp) + 1
    cells = np.arange(n_in + 1)
    first = np.searchsorted(cell, cells)
    return nearest, weight, first, np.searchsorted(cell, cells, side="right") - first


def contour(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """The "contour" upscale of `frames` (uint8 [T, h, w, 3]) to [T, height, width, 3], any
    factor per axis. Every output colour is one of its frame's input colours.

    An output pixel whose four nearest source pixels share one colour takes it, which is also
    nearest's answer: nearest fills the frame, and the snap is computed only in the cells whose
    2x2 sources are mixed (the shapes' edges: about 8 % of a riff-world frame at 16x), one
    block of output pixels per cell. A 16-frame 32x32 clip takes about 23 ms at 512x512 (every
    pixel computed, as the prototype did: 2.2 s)."""
    t, h, w, _ = frames.shape
    near_y, weight_y, first_y, count_y = _axis(h, height)
    near_x, weight_x, first_x, count_x = _axis(w, width)
    words, edged, mixed = _cells(frames)
    out = np.take(words[:, near_y], near_x, axis=2)
    mixed &= (count_y[:, None] > 0) & (count_x[None, :] > 0)
    ti, ci, cj = np.nonzero(mixed)
    if len(ti):
        # the cell's four colours: before/before, before/after, after/before, after/after
        quad = np.stack(
            [
                edged[ti, ci, cj],
                edged[ti, ci, cj + 1],
                edged[ti, ci + 1, cj],
                edged[ti, ci + 1, cj + 1],
            ],
            axis=1,
        )
        # each cell's block of output pixels, padded to the largest block by repeating its
        # last row or column (the same pixel, computed and written twice)
        rows = first_y[ci, None] + np.minimum(np.arange(count_y.max()), count_y[ci, None] - 1)
        cols = first_x[cj, None] + np.minimum(np.arange(count_x.max()), count_x[cj, None] - 1)
        fy = weight_y[rows][:, None, :, None]
        fx = weight_x[cols][:, None, None, :]
        colours = quad[..., None].view(np.uint8)[..., :3].astype(np.float32)
        distance = np.zeros((len(ti), 4, rows.shape[1], cols.shape[1]), np.float32)
        # channel by channel: numpy sums over a trailing axis of 3 several times slower
        for channel in range(3):
            c = colours[:, :, channel, None, None]  # [n, 4, 1, 1]
            guide = (c[:, 0:1] * (1 - fx) + c[:, 1:2] * fx) * (1 - fy)
            guide += (c[:, 2:3] * (1 - fx) + c[:, 3:4] * fx) * fy
            distance += (c - guide) ** 2
        pick = distance.argmin(axis=1)
        out[ti[:, None, None], rows[:, :, None], cols[:, None, :]] = quad[
            np.arange(len(ti))[:, None, None], pick
        ]
    # back to three bytes a pixel, one channel at a time: copying [..., :3] in one go is ten
    # times slower
    channels = out.view(np.uint8).reshape(t, height, width, 4)
    result = np.empty((t, height, width, 3), np.uint8)
    for channel in range(3):
        result[..., channel] = channels[..., channel]
    return result
