"""The procedural world: coloured shapes under gravity, rendered to small RGB clips.

Everything here is numpy and deterministic for a seed. A clip carries its frames
(uint8 [T, H, W, 3]), a caption, the parameters it was drawn from, ground-truth
trajectories (per object per frame: x, y, visible) and the physics constants used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .captions import caption_for

# Object colours are far apart in RGB so that nearest-palette segmentation separates them.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 90, 255),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (160, 60, 220),
    "orange": (255, 140, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (8, 8, 8),
    "dark blue": (18, 18, 64),
    "dark green": (14, 46, 26),
}
OCCLUDER_COLOR = (128, 128, 128)
SHAPES = ("ball", "square", "triangle")
SIZES = {"small": 3.0, "large": 5.0}  # half-extent in pixels at 32x32 (scaled with W)
MOTIONS = ("bounces", "falls", "slides", "tossed")

# colour x shape pairs never drawn for training; evaluation prompts use them.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("purple", "triangle"), ("orange", "ball"), ("yellow", "square")}
)
# Evaluation seeds live far away from training seeds.
EVAL_SEED_BASE = 1_000_000_000


@dataclass
class WorldConfig:
    frames: int = 16
    height: int = 32
    width: int = 32
    gravity: float = 0.25  # px / frame^2 (y grows downwards)
    restitution: float = 0.8
    substeps: int = 8
    occluder_width: int = 10
    p_occluder: float = 0.2
    p_background: float = 0.3  # chance of a coloured (non-black) background
    max_objects: int = 3
    # share of wall-free clips with more than one object (two or three, equally likely); None
    # keeps the original draw (half of them), whose random stream the evaluation set depends on
    p_multi: float | None = None
    # training only: redraw clips in which two plain objects of one colour touch in more than
    # two frames. Such a group renders as one blob while its caption says "three yellow
    # squares"; False keeps the original draw, whose random stream the evaluation set uses
    apart: bool = False


@dataclass
class ObjectSpec:
    color: str
    shape: str
    size: str
    x: float = 0.0
    y: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    pattern: np.ndarray | None = field(default=None, repr=False)  # cameo sprite (8x8x3 uint8)

    def radius(self, cfg: WorldConfig) -> float:
        return SIZES[self.size] * cfg.width / 32.0


@dataclass
class ClipSpec:
    objects: list[ObjectSpec]
    motion: str
    background: str = "black"
    occluder_x: float | None = None  # centre of the vertical grey wall, None = no wall
    cameo: bool = False


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    caption: str
    spec: ClipSpec
    trajectories: np.ndarray  # float32 [n_objects, T, 3]: x, y, visible (0/1)
    visible_fraction: np.ndarray  # float32 [n_objects, T]
    physics: dict
    seed: int
    reference_images: list[np.ndarray] = field(default_factory=list)
    cameo_pattern: np.ndarray | None = None

    def params(self) -> dict:
        objs = [{k: v for k, v in asdict(o).items() if k != "pattern"} for o in self.spec.objects]
        return {
            "motion": self.spec.motion,
            "background": self.spec.background,
            "occluder_x": self.spec.occluder_x,
            "cameo": self.spec.cameo,
            "objects": objs,
        }


# --------------------------------------------------------------------------- sampling


def allowed_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if split == "train":
        return [p for p in pairs if p not in HELD_OUT_PAIRS]
    if split == "heldout":
        return sorted(HELD_OUT_PAIRS)
    return pairs


def sample_spec(
    rng: np.random.Generator, cfg: WorldConfig, split: str = "train", occluder: bool | None = None
) -> ClipSpec:
    """Draw the discrete parameters of a clip (objects, motion, background, wall).

    `occluder`: None draws the wall at random (p_occluder), True forces one, False forbids it.
    """
    pairs = allowed_pairs("train" if split == "train" else "all")
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    if occluder:
        motion = ("slides", "bounces")[rng.integers(2)]
    elif occluder is None:
        occluder = motion in ("slides", "bounces") and rng.random() < cfg.p_occluder
    if occluder:
        n = 1
    elif cfg.p_multi is None:
        n = int(rng.choice([1, 1, 2, 3][: cfg.max_objects + 1]))
    else:
        n = int(rng.integers(2, cfg.max_objects + 1)) if rng.random() < cfg.p_multi else 1
    n = min(n, cfg.max_objects)
    if split == "heldout":  # at least one held-out pair, first object
        first = sorted(HELD_OUT_PAIRS)[rng.integers(len(HELD_OUT_PAIRS))]
    else:
        first = pairs[rng.integers(len(pairs))]
    size = "small" if occluder else ("small", "large")[rng.integers(2)]
    objs = [ObjectSpec(first[0], first[1], size)]
    if n > 1:
        if rng.random() < 0.5:  # a homogeneous group: "two small blue squares"
            objs += [ObjectSpec(first[0], first[1], size) for _ in range(n - 1)]
        else:  # distinct colours so that segmentation can tell them apart
            used = {first[0]}
            for _ in range(n - 1):
                cands = [p for p in pairs if p[0] not in used]
                c, s = cands[rng.integers(len(cands))]
                used.add(c)
                objs.append(ObjectSpec(c, s, ("small", "large")[rng.integers(2)]))
    bg = "black"
    if rng.random() < cfg.p_background:
        bg = ("dark blue", "dark green")[rng.integers(2)]
    occ_x = float(rng.uniform(13, 19) * cfg.width / 32.0) if occluder else None
    return ClipSpec(objs, motion, bg, occ_x)


def _initial_state(rng: np.random.Generator, spec: ClipSpec, cfg: WorldConfig) -> None:
    W, H = cfg.width, cfg.height
    s = W / 32.0
    direction = 1.0 if rng.random() < 0.5 else -1.0
    placed: list[tuple[float, float, float]] = []
    for o in spec.objects:
        r = o.radius(cfg)
        for _ in range(200):
            if spec.motion == "bounces":
                x, y = rng.uniform(r + 1, W - r - 1), rng.uniform(r + 1, H * 0.45)
                vx, vy = direction * rng.uniform(0.6, 1.4) * s, rng.uniform(0.3, 1.2) * s
            elif spec.motion == "falls":
                x, y = rng.uniform(r + 1, W - r - 1), rng.uniform(r + 1, H * 0.3)
                vx, vy = 0.0, rng.uniform(0.0, 0.5) * s
            elif spec.motion == "slides":
                x, y = rng.uniform(r + 1, W - r - 1), H - r
                vx, vy = direction * rng.uniform(0.8, 1.6) * s, 0.0
            else:  # tossed upwards from near the floor
                x, y = rng.uniform(r + 1, W - r - 1), rng.uniform(H * 0.7, H - r)
                vx, vy = direction * rng.uniform(0.2, 0.8) * s, -rng.uniform(2.6, 3.4) * s
            if spec.occluder_x is not None:  # start on one side, heading for the wall
                side = -direction
                x = spec.occluder_x + side * rng.uniform(
                    cfg.occluder_width / 2 + r + 1, cfg.occluder_width / 2 + r + 4
                )
                x = float(np.clip(x, r, W - r))
            if all((x - px) ** 2 + (y - py) ** 2 > (r + pr + 1) ** 2 for px, py, pr in placed):
                break
        placed.append((x, y, r))
        o.x, o.y, o.vx, o.vy = float(x), float(y), float(vx), float(vy)


def simulate(spec: ClipSpec, cfg: WorldConfig) -> np.ndarray:
    """Integrate the objects' motion. Returns positions float64 [n, T, 2] (x, y).

    Plain Python floats: for <= 3 objects this is much faster than numpy scalars.
    """
    objs = spec.objects
    n, T = len(objs), cfg.frames
    px = [o.x for o in objs]
    py = [o.y for o in objs]
    vx = [o.vx for o in objs]
    vy = [o.vy for o in objs]
    rad = [o.radius(cfg) for o in objs]
    g, e, k = cfg.gravity, cfg.restitution, cfg.substeps
    W, H = float(cfg.width), float(cfg.height)
    dt = 1.0 / k
    out = np.zeros((n, T, 2))
    for t in range(T):
        out[:, t, 0] = px
        out[:, t, 1] = py
        for _ in range(k):
            for i in range(n):
                r = rad[i]
                # exact for constant gravity between contacts
                px[i] += vx[i] * dt
                py[i] += vy[i] * dt + 0.5 * g * dt * dt
                vy[i] += g * dt
                if px[i] < r:
                    px[i], vx[i] = r + (r - px[i]) * e, -vx[i] * e
                elif px[i] > W - r:
                    px[i], vx[i] = W - r - (px[i] - (W - r)) * e, -vx[i] * e
                if py[i] > H - r:
                    py[i] = H - r
                    vy[i] = -vy[i] * e if vy[i] > 2 * g * dt else 0.0
                elif py[i] < r:
                    py[i], vy[i] = r, abs(vy[i]) * e
            for i in range(n):  # pairwise collisions, equal masses
                for j in range(i + 1, n):
                    dx, dy = px[j] - px[i], py[j] - py[i]
                    dist = math.hypot(dx, dy)
                    mind = rad[i] + rad[j]
                    if 1e-6 < dist < mind:
                        nx, ny = dx / dist, dy / dist
                        rel = (vx[j] - vx[i]) * nx + (vy[j] - vy[i]) * ny
                        if rel < 0:
                            imp = -(1 + e) * rel / 2
                            vx[i] -= imp * nx
                            vy[i] -= imp * ny
                            vx[j] += imp * nx
                            vy[j] += imp * ny
                        push = (mind - dist) / 2
                        px[i] -= push * nx
                        py[i] -= push * ny
                        px[j] += push * nx
                        py[j] += push * ny
    return out


def simulate_alone(
    x: np.ndarray,
    y: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    radius: float,
    cfg: WorldConfig,
) -> np.ndarray:
    """`simulate` of one object alone in the world, for many starting states at once.

    x, y, vx, vy: float arrays [N] (px, px/frame) of the object's state in frame 0. Returns
    positions float64 [N, T, 2]. The same arithmetic as `simulate`, operation for operation,
    so a single-object clip's trajectory comes back bit for bit (a test holds them equal):
    the evaluator asks it which trajectory of this world explains a clip."""
    px, py = np.array(x, np.float64), np.array(y, np.float64)
    vx, vy = np.array(vx, np.float64), np.array(vy, np.float64)
    r, g, e, k = float(radius), cfg.gravity, cfg.restitution, cfg.substeps
    W, H = float(cfg.width), float(cfg.height)
    dt = 1.0 / k
    drop = 0.5 * g * dt * dt  # the scalar code's `0.5 * g * dt * dt`, evaluated the same way
    out = np.zeros((len(px), cfg.frames, 2))
    for t in range(cfg.frames):
        out[:, t, 0] = px
        out[:, t, 1] = py
        for _ in range(k):
            px = px + vx * dt
            py = py + (vy * dt + drop)
            vy = vy + g * dt
            left, right = px < r, px > W - r
            vx = np.where(left | right, -vx * e, vx)
            px = np.where(left, r + (r - px) * e, np.where(right, W - r - (px - (W - r)) * e, px))
            floor, ceiling = py > H - r, py < r
            vy = np.where(floor, np.where(vy > 2 * g * dt, -vy * e, 0.0), vy)
            ceiling &= ~floor
            vy = np.where(ceiling, np.abs(vy) * e, vy)
            py = np.where(floor, H - r, np.where(ceiling, r, py))
    return out


def start_ranges(motion: str, radius: float, cfg: WorldConfig) -> dict[str, tuple[float, float]]:
    """The ranges `_initial_state` draws an object's frame-0 state from for `motion`: "x", "y"
    (px), "speed_x" (|vx|; its sign is the clip's direction, either way) and "vy" (px/frame,
    down is positive). A wall clip's x is drawn beside the wall instead, anywhere on the
    floor's width. A test draws clips and holds every start inside these ranges."""
    W, H, r = cfg.width, cfg.height, float(radius)
    s = W / 32.0
    x = (r + 1, W - r - 1)
    if motion == "bounces":
        return {
            "x": x,
            "y": (r + 1, H * 0.45),
            "speed_x": (0.6 * s, 1.4 * s),
            "vy": (0.3 * s, 1.2 * s),
        }
    if motion == "falls":
        return {"x": x, "y": (r + 1, H * 0.3), "speed_x": (0.0, 0.0), "vy": (0.0, 0.5 * s)}
    if motion == "slides":
        return {"x": x, "y": (H - r, H - r), "speed_x": (0.8 * s, 1.6 * s), "vy": (0.0, 0.0)}
    if motion == "tossed":
        return {
            "x": x,
            "y": (H * 0.7, H - r),
            "speed_x": (0.2 * s, 0.8 * s),
            "vy": (-3.4 * s, -2.6 * s),
        }
    raise ValueError(motion)


def hidden_frames(clip: Clip, i: int = 0) -> np.ndarray:
    """bool [T]: the frames in which the wall hides object `i` of `clip` completely."""
    return clip.visible_fraction[i] == 0


# --------------------------------------------------------------------------- rendering


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    if (H, W) not in _GRIDS:
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
        _GRIDS[(H, W)] = (ys, xs)
    return _GRIDS[(H, W)]


def shape_mask(shape: str, cx: float, cy: float, r: float, H: int, W: int) -> np.ndarray:
    ys, xs = _grid(H, W)
    dx, dy = xs - cx, ys - cy
    if shape == "ball":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up, base down
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2.0)
    raise ValueError(shape)


def _texture(pattern: np.ndarray, cx: float, cy: float, r: float, H: int, W: int) -> np.ndarray:
    """The sprite pattern stretched over the object's bounding box (nearest sampling)."""
    ys, xs = _grid(H, W)
    u = np.clip(((xs - (cx - r)) / (2 * r) * pattern.shape[1]).astype(int), 0, pattern.shape[1] - 1)
    v = np.clip(((ys - (cy - r)) / (2 * r) * pattern.shape[0]).astype(int), 0, pattern.shape[0] - 1)
    return pattern[v, u]


def wall_columns(spec: ClipSpec, cfg: WorldConfig) -> np.ndarray | None:
    """bool [W]: the pixel columns the wall covers (None without a wall)."""
    if spec.occluder_x is None:
        return None
    return np.abs(np.arange(cfg.width) + 0.5 - spec.occluder_x) <= cfg.occluder_width / 2


def render(spec: ClipSpec, positions: np.ndarray, cfg: WorldConfig):
    """Draw the clip. Returns frames uint8 [T,H,W,3] and visible fraction [n, T]."""
    T, H, W = cfg.frames, cfg.height, cfg.width
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    frames[:] = np.array(BACKGROUNDS[spec.background], dtype=np.uint8)
    vis = np.zeros((len(spec.objects), T), dtype=np.float32)
    col = wall_columns(spec, cfg)
    occ = None if col is None else np.broadcast_to(col[None, :], (H, W))
    for t in range(T):
        img = frames[t]
        for i, o in enumerate(spec.objects):
            x, y = positions[i, t]
            m = shape_mask(o.shape, x, y, o.radius(cfg), H, W)
            area = max(int(m.sum()), 1)
            if o.pattern is not None:
                tex = _texture(o.pattern, x, y, o.radius(cfg), H, W)
                img[m] = tex[m]
            else:
                img[m] = COLORS[o.color]
            seen = m & ~occ if occ is not None else m
            vis[i, t] = float(seen.sum()) / area
        if occ is not None:
            img[occ] = OCCLUDER_COLOR
    return frames, vis


def sprite_layout(clip: Clip, cfg: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Where a cameo clip shows its sprite, as the model's sprite pathway is trained to say:
    bool [T, H, W], the pixels drawn from the sprite (the first object, less what later
    objects and the wall cover), and float32 [T, 3], the sprite square's (cx, cy, r) per
    frame: a pixel centre (x, y) inside it shows the sprite at u = (x - cx) / r,
    v = (y - cy) / r in [-1, 1] (the texel `_texture` picks)."""
    T, H, W = cfg.frames, cfg.height, cfg.width
    spec, pos = clip.spec, clip.trajectories[..., :2]
    shows = np.zeros((T, H, W), bool)
    r = spec.objects[0].radius(cfg)
    box = np.concatenate([pos[0], np.full((T, 1), r, np.float32)], axis=1).astype(np.float32)
    occ = wall_columns(spec, cfg)
    for t in range(T):
        m = shape_mask(spec.objects[0].shape, *pos[0, t], r, H, W)
        for o, p in zip(spec.objects[1:], pos[1:, t], strict=True):
            m &= ~shape_mask(o.shape, *p, o.radius(cfg), H, W)
        if occ is not None:
            m &= ~occ[None, :]
        shows[t] = m
    return shows, box


def amodal_mask(clip: Clip, cfg: WorldConfig) -> np.ndarray:
    """bool [T, H, W]: the pixels some object covers in each frame, the wall ignored (amodal:
    an object behind the wall is where it is, not where it shows). Outside the wall's columns
    it is exactly the pixels the renderer draws an object on.

    Training can ask the model to say this from its output tokens (`flow.amodal_loss`): the
    rendered clip, and so the flow loss, is the same wherever a hidden object is, so nothing
    else asks the trunk to keep track of it while it is hidden."""
    T, H, W = clip.frames.shape[:3]
    pos = clip.trajectories[..., :2]
    out = np.zeros((T, H, W), bool)
    for i, o in enumerate(clip.spec.objects):
        r = o.radius(cfg)
        for t in range(T):
            out[t] |= shape_mask(o.shape, *pos[i, t], r, H, W)
    return out


def foreground_mask(frames: np.ndarray, background: str, dilate: int = 1) -> np.ndarray:
    """bool [T, H, W]: the pixels that are not the clip's background (objects and the wall),
    grown by `dilate` pixels in space so that an object's rim counts too.

    Training weights its loss with it (`TrainConfig.fg_weight`): the background is ~90 % of a
    clip's pixels, so a plain MSE spends most of its signal on pixels that are easy."""
    bg = np.array(BACKGROUNDS[background], dtype=np.int16)
    mask = np.abs(frames.astype(np.int16) - bg).max(axis=-1) > 0
    for _ in range(dilate):
        grown = mask.copy()
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        grown[:, :, 1:] |= mask[:, :, :-1]
        grown[:, :, :-1] |= mask[:, :, 1:]
        mask = grown
    return mask


# --------------------------------------------------------------------------- cameos


def make_sprite(rng: np.random.Generator, size: int = 8) -> np.ndarray:
    """A structured two/three-colour 8x8 sprite pattern (uint8 [8, 8, 3])."""
    names = list(COLORS)
    a, b, c = (COLORS[names[i]] for i in rng.choice(len(names), 3, replace=False))
    yy, xx = np.mgrid[0:size, 0:size]
    kind = rng.integers(5)
    if kind == 0:
        sel = (yy // 2) % 2 == 0  # horizontal stripes
    elif kind == 1:
        sel = (xx // 2) % 2 == 0  # vertical stripes
    elif kind == 2:
        sel = ((xx // 4) + (yy // 4)) % 2 == 0  # big checker
    elif kind == 3:
        sel = yy < size // 2  # two halves
    else:
        sel = (xx < 2) | (xx >= size - 2) | (yy < 2) | (yy >= size - 2)  # border
    pat = np.where(sel[..., None], np.array(a, np.uint8), np.array(b, np.uint8))
    if rng.random() < 0.3:  # a centre dot in a third colour
        pat[size // 2 - 1 : size // 2 + 1, size // 2 - 1 : size // 2 + 1] = c
    return pat.astype(np.uint8)


def reference_from_pattern(pattern: np.ndarray, height: int = 32, width: int = 32) -> np.ndarray:
    """The cameo's reference image: the sprite filling the frame (nearest upscale)."""
    ys = np.arange(height) * pattern.shape[0] // height
    xs = np.arange(width) * pattern.shape[1] // width
    return pattern[ys][:, xs].copy()


def pattern_from_image(image: np.ndarray, size: int = 8) -> np.ndarray:
    """An 8x8 sprite pattern taken from any reference image (box average)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)[..., :3])
    return np.asarray(img.resize((size, size), Image.BOX), dtype=np.uint8)


# --------------------------------------------------------------------------- clips


def make_clip(
    seed: int,
    cfg: WorldConfig | None = None,
    split: str = "train",
    spec: ClipSpec | None = None,
    cameo: np.ndarray | None | bool = None,
    occluder: bool | None = None,
    extra_frames: int = 0,
) -> Clip:
    """Render one clip deterministically for `seed`.

    split: "train" never draws a held-out colour x shape pair; "heldout" always puts one
    first; "all" draws from everything. `cameo`: True draws a random sprite, an array is a
    reference image (any size) or an 8x8 pattern; the first object then carries the sprite.
    `extra_frames`: the clip is drawn and judged (the plausibility checks) as one of
    `cfg.frames` frames, then simulated and rendered that many frames longer. The first
    `cfg.frames` frames are then distributed as an ordinary clip's; simulating a longer clip
    directly would not be, since the checks over more frames admit slower objects (behind a
    wall, median speed 1.20 against 1.32 px/frame for 20 against 16 frames).
    """
    cfg = cfg or WorldConfig()
    judge_frames = cfg.frames
    if extra_frames:
        cfg = replace(cfg, frames=cfg.frames + extra_frames)
    rng = np.random.default_rng(seed)
    spec = spec or sample_spec(rng, cfg, split, occluder)
    pattern = None
    if cameo is not None and cameo is not False:
        if cameo is True:
            pattern = make_sprite(rng)
        else:
            arr = np.asarray(cameo, dtype=np.uint8)
            pattern = arr if arr.shape[:2] == (8, 8) else pattern_from_image(arr)
        spec.cameo = True
        spec.objects[0].shape, spec.objects[0].size = "square", "large"
        spec.objects[0].pattern = pattern
    for attempt in range(60 if cfg.apart else 20):
        # reject draws where the clip would not show what the caption says
        if cfg.apart and attempt == 30 and _one_colour_group(spec):
            # three large squares of one colour do not fit side by side on a 32 px floor
            for o in spec.objects:
                o.size = "small"
        _initial_state(rng, spec, cfg)
        pos = simulate(spec, cfg)
        judged = pos[:, :judge_frames]
        if _plausible(spec, judged, cfg) and (not cfg.apart or _apart(spec, judged, cfg)):
            break
    frames, vis = render(spec, pos, cfg)
    traj = np.concatenate([pos, (vis > 0)[..., None]], axis=-1).astype(np.float32)
    caption = caption_for(spec, rng)
    refs = [reference_from_pattern(pattern, cfg.height, cfg.width)] if pattern is not None else []
    physics = {
        "gravity": cfg.gravity,
        "restitution": cfg.restitution,
        "substeps": cfg.substeps,
        "dt": 1.0,
        "units": "pixels, frames; y points down",
    }
    return Clip(frames, caption, spec, traj, vis, physics, seed, refs, pattern)


def _plausible(spec: ClipSpec, pos: np.ndarray, cfg: WorldConfig) -> bool:
    r = np.array([o.radius(cfg) for o in spec.objects])[:, None]
    on_floor = pos[:, :, 1] >= cfg.height - r - 2.0
    ok = True
    if spec.motion in ("bounces", "falls"):
        ok = bool(on_floor.any(axis=1).all())
    if spec.occluder_x is not None:  # the first object must go fully behind the wall
        dist = np.abs(pos[0, :, 0] - spec.occluder_x)
        cover = dist <= cfg.occluder_width / 2 - r[0, 0]
        if not cover.any():
            return False
        after = dist[int(np.argmax(cover)) :] >= cfg.occluder_width / 2  # at least half out
        ok = ok and int(after.sum()) >= 3
    return ok


APART_GAP = 1.0  # px of background between the boxes of two objects of one colour
APART_TOUCH_FRAMES = 2  # frames in which they may touch (a collision, a bounce together)


def _one_colour_group(spec: ClipSpec) -> bool:
    """Plain objects only: a cameo clip's first object carries its sprite, stays a large
    square and does not merge with a plain object of its colour."""
    return not spec.cameo and len(spec.objects) > 1 and len({o.color for o in spec.objects}) == 1


def _apart(spec: ClipSpec, pos: np.ndarray, cfg: WorldConfig) -> bool:
    """Two objects of one colour come within APART_GAP of each other, by their bounding
    boxes (a ball's box is its square: conservative for balls), in at most
    APART_TOUCH_FRAMES frames: the group is drawn as the separate objects the caption
    counts in nearly every frame."""
    objs = spec.objects
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            if objs[i].color != objs[j].color or objs[i].pattern is not None:
                continue
            d = np.abs(pos[i] - pos[j]).max(axis=1)  # Chebyshev distance per frame
            close = d - objs[i].radius(cfg) - objs[j].radius(cfg) < APART_GAP
            if int(close.sum()) > APART_TOUCH_FRAMES:
                return False
    return True


def eval_seed(i: int) -> int:
    return EVAL_SEED_BASE + i


def heldout_clips(
    n: int, cfg: WorldConfig | None = None, cameo_every: int = 0, start: int = 0
) -> list[Clip]:
    """The fixed evaluation set: half held-out colour x shape pairs, half held-out seeds;
    every `cameo_every`-th clip a cameo clip, and every 4th clip (i % 4 == 1) passes behind a
    wall so that permanence always has cases. `start` skips the first clips of the sequence:
    `heldout_clips(n, start=k)` is `heldout_clips(k + n)[k:]`, a fresh slice for judging a
    choice made on the clips before it."""
    cfg = cfg or WorldConfig()
    clips = []
    for i in range(start, start + n):
        split = "heldout" if i % 2 == 0 else "all"
        use_cameo = bool(cameo_every) and i % cameo_every == cameo_every - 1
        wall = True if (i % 4 == 1 and not use_cameo) else None
        clips.append(
            make_clip(
                eval_seed(i), cfg, split=split, cameo=True if use_cameo else None, occluder=wall
            )
        )
    return clips
