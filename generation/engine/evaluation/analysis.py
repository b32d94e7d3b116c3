"""Image analysis of clips: colour segmentation, blobs, objects, shapes, tracks, and the
world's own trajectory that best explains a track (physics, permanence).

numpy only. Works on any uint8 [T, H, W, 3] clip, generated or simulated.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..world import (
    BACKGROUNDS,
    COLORS,
    OCCLUDER_COLOR,
    WorldConfig,
    simulate_alone,
    start_ranges,
)

PALETTE_NAMES = list(COLORS) + [f"bg:{b}" for b in BACKGROUNDS] + ["occluder"]
PALETTE = np.array(
    list(COLORS.values()) + list(BACKGROUNDS.values()) + [OCCLUDER_COLOR], dtype=np.float32
)
N_OBJ_COLORS = len(COLORS)
UNKNOWN = -1
# two colours shown as separate objects in this many frames are separate objects where they
# touch; a colour needs this many pixels in a region to be a part of it
APART_FRAMES = 2
COLOUR_PART_PX = 3


def classify(frames: np.ndarray, max_dist: float = 90.0) -> np.ndarray:
    """Nearest palette entry per pixel ([T, H, W] int; -1 where nothing is close)."""
    x = frames.astype(np.float32)[..., None, :]
    d = np.sqrt(((x - PALETTE) ** 2).sum(-1))
    lab = d.argmin(-1)
    lab[d.min(-1) > max_dist] = UNKNOWN
    return lab


_STEPS4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
_STEPS8 = _STEPS4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def components(mask: np.ndarray, min_px: int = 1, connectivity: int = 4) -> list[np.ndarray]:
    """4- (or 8-) connected components of a 2D bool mask, as arrays of (y, x), largest first."""
    H, W = mask.shape
    steps = _STEPS8 if connectivity == 8 else _STEPS4
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        stack, pts = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pts.append((y, x))
            for dy, dx in steps:
                ny, nx = y + dy, x + dx
                if 0 <= ny < H and 0 <= nx < W and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(pts) >= min_px:
            out.append(np.array(pts))
    out.sort(key=len, reverse=True)
    return out


def shape_of(pts: np.ndarray) -> str:
    """ball / square / triangle from a blob's fill ratio and top-vs-bottom width."""
    ys, xs = pts[:, 0], pts[:, 1]
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = len(pts) / float(h * w)
    rows = np.bincount(ys - ys.min(), minlength=h).astype(float)
    third = max(1, h // 3)
    top, bottom = rows[:third].mean(), rows[-third:].mean()
    taper = top / max(bottom, 1e-6)
    if taper < 0.6:
        return "triangle"
    if fill >= 0.86 and taper > 0.85:
        return "square"
    return "ball"


def wall_columns(occluder: np.ndarray, min_share: float = 0.5) -> np.ndarray:
    """Columns [W] that hold the wall: grey over at least `min_share` of the column's pixels
    across the clip. The world's wall is a static full-height bar, so this finds it in any
    clip that draws one, while the grey-looking pixels a generated clip leaves along soft
    object edges (half-way between a colour and the background is close to the wall's grey)
    are not a wall: counting any grey pixel of any frame as wall ruled out the blobs next to
    them, in clips that have no wall at all, and shape was then never measured."""
    return occluder.mean(axis=(0, 1)) >= min_share


def min_pixels(H: int, W: int) -> int:
    return max(3, int(round(6 * H * W / 1024)))


class ClipAnalysis:
    """Per-colour blobs and per-frame objects of one clip, computed once.

    A blob of a colour is an 8-connected region of that colour and of unclassified pixels
    (blends too far from every palette entry) holding at least `min_px` pixels of the colour;
    its points are the colour's pixels. A generated object's soft rim and the wall's edge
    break it into pieces that touch only at corners or across a blended pixel: as 4-connected
    runs of the colour alone, an object coming back from behind the wall with 10 pixels
    showing was two blobs of 5, neither of them seen, and the clip was scored a miss.

    An object (`count`) is a 4-connected region of object colours and unclassified pixels
    with at least `min_px` pixels of object colours, whatever colours it holds: a
    half-purple, half-yellow triangle is one object. Which colours show is `color`'s concern.
    The one exception is what the clip itself shows apart: two colours that are separate
    regions in at least APART_FRAMES frames are two objects, also in the frames where they
    touch (the world's objects collide and come to rest side by side).
    """

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.T, self.H, self.W = frames.shape[:3]
        self.labels = classify(frames)
        self.min_px = min_pixels(self.H, self.W)
        self.occluder = self.labels == PALETTE_NAMES.index("occluder")
        self.wall_cols = wall_columns(self.occluder)
        unknown = self.labels == UNKNOWN
        self.blobs: dict[str, list[list[np.ndarray]]] = {}
        for ci, name in enumerate(COLORS):
            m = self.labels == ci
            if m.sum() < self.min_px:
                self.blobs[name] = [[] for _ in range(self.T)]
                continue
            self.blobs[name] = [self._blobs(m[t], unknown[t]) for t in range(self.T)]
        solid = (self.labels >= 0) & (self.labels < N_OBJ_COLORS)
        self.objects: list[list[np.ndarray]] = []
        for t in range(self.T):
            regions = components(solid[t] | unknown[t], 1)
            kept = [pts[solid[t][pts[:, 0], pts[:, 1]]] for pts in regions]
            self.objects.append([pts for pts in kept if len(pts) >= self.min_px])
        self._apart = self._colours_seen_apart()

    def _blobs(self, color: np.ndarray, unknown: np.ndarray) -> list[np.ndarray]:
        out = []
        for pts in components(color | unknown, 1, connectivity=8):
            own = pts[color[pts[:, 0], pts[:, 1]]]
            if len(own) >= self.min_px:
                out.append(own)
        out.sort(key=len, reverse=True)
        return out

    def pixels(self, color: str) -> np.ndarray:
        return (self.labels == list(COLORS).index(color)).reshape(self.T, -1).sum(1)

    def dominant_color(self) -> str | None:
        counts = {c: int(self.pixels(c).sum()) for c in COLORS}
        best = max(counts, key=counts.get)
        return best if counts[best] >= self.min_px else None

    def present_colors(self, frac: float = 0.5) -> list[str]:
        return [c for c in COLORS if (self.pixels(c) >= self.min_px).mean() >= frac]

    def region_colours(self, t: int, pts: np.ndarray) -> frozenset[int]:
        """The object colours (palette indices) with at least COLOUR_PART_PX pixels in a region
        of frame `t` (fewer are a blended rim, not a part)."""
        lab = self.labels[t][pts[:, 0], pts[:, 1]]
        return frozenset(
            int(c) for c in np.flatnonzero(np.bincount(lab, minlength=1) >= COLOUR_PART_PX)
        )

    def _colours_seen_apart(self) -> set[frozenset[int]]:
        frames: Counter = Counter()
        for t in range(self.T):
            sets = [self.region_colours(t, pts) for pts in self.objects[t]]
            pairs = set()
            for i, a in enumerate(sets):
                for b in sets[i + 1 :]:
                    pairs |= {frozenset((x, y)) for x in a - b for y in b - a}
            frames.update(pairs)
        return {pair for pair, n in frames.items() if n >= APART_FRAMES}

    def objects_in(self, t: int) -> int:
        """Objects in frame `t`: each region, split into the groups of its colours that the
        clip shows apart elsewhere (colours never seen apart are one object)."""
        n = 0
        for pts in self.objects[t]:
            left = set(self.region_colours(t, pts))
            groups = 0
            while left:  # grow a group by every colour not seen apart from one already in it
                group = [left.pop()]
                for a in group:
                    joined = {b for b in left if frozenset((a, b)) not in self._apart}
                    left -= joined
                    group += sorted(joined)
                groups += 1
            n += max(1, groups)
        return n

    def count(self) -> int:
        """Mode over frames of the number of objects (`objects_in`)."""
        per_frame = [self.objects_in(t) for t in range(self.T)]
        return Counter(per_frame).most_common(1)[0][0]

    def _clean(self, pts: np.ndarray) -> bool:
        ys, xs = pts[:, 0], pts[:, 1]
        if ys.min() == 0 or xs.min() == 0 or xs.max() == self.W - 1:
            return False  # cut by the frame edge (the floor is fine: objects rest there)
        if self.wall_cols.any():  # touching the grey wall: partially hidden
            near = self.wall_cols.copy()
            near[1:] |= self.wall_cols[:-1]
            near[:-1] |= self.wall_cols[1:]
            if near[xs].any():
                return False
        return True

    def shape(self, color: str) -> str | None:
        votes = Counter()
        for t in range(self.T):
            for pts in self.blobs[color][t]:
                if self._clean(pts):
                    votes[shape_of(pts)] += 1
        return votes.most_common(1)[0][0] if votes else None

    def track(self, color: str) -> np.ndarray:
        """Centroid (x, y) of the largest blob of `color` per frame, NaN where absent."""
        out = np.full((self.T, 2), np.nan)
        for t in range(self.T):
            if self.blobs[color][t]:
                pts = self.blobs[color][t][0]
                out[t] = pts[:, 1].mean() + 0.5, pts[:, 0].mean() + 0.5
        return out


# --------------------------------------------------------------------------- physics


def split_at_bounces(y: np.ndarray) -> list[np.ndarray]:
    """Frame index segments between floor bounces (y grows downwards)."""
    idx = np.flatnonzero(~np.isnan(y))
    if len(idx) < 3:
        return []
    segs, cur = [], [idx[0]]
    for a, b, c in zip(idx[:-2], idx[1:-1], idx[2:], strict=True):
        if y[b] > y[a] + 1e-6 and y[c] < y[b] - 1e-6:  # a local maximum of y = a bounce
            cur.append(b)
            segs.append(np.array(cur))
            cur = [b]  # the contact frame belongs to neither arc's interior; keep as edge
        else:
            cur.append(b)
    cur.append(idx[-1])
    segs.append(np.array(cur))
    return segs


def fit_ballistic(track: np.ndarray, floor_y: float | None = None) -> dict:
    """Quadratic fits of y(t) per arc between bounces.

    Returns rms residual (px), fitted gravity (px/frame^2, median over arcs) and restitution
    estimates at bounces (|v_after| / |v_before| from the two arcs' fitted velocities).
    """
    y = track[:, 1]
    segs = [s for s in split_at_bounces(y) if len(s) >= 4]
    res, gs, fits = [], [], []
    for s in segs:
        inner = s[1:-1] if len(s) >= 6 else s  # drop contact frames where the arc is clipped
        tt = inner.astype(float)
        if len(tt) < 4:
            continue
        coef = np.polyfit(tt, y[inner], 2)
        res.append(y[inner] - np.polyval(coef, tt))
        gs.append(2 * coef[0])
        fits.append((s, coef))
    rest = []
    for (s1, c1), (s2, c2) in zip(fits[:-1], fits[1:], strict=False):
        if s1[-1] != s2[0]:
            continue
        tb = float(s1[-1])
        v_in = 2 * c1[0] * tb + c1[1]
        v_out = 2 * c2[0] * tb + c2[1]
        if v_in > 0.3 and v_out < 0:
            rest.append(abs(v_out) / v_in)
    allres = np.concatenate(res) if res else np.array([])
    return {
        "arcs": len(gs),
        "rms": float(np.sqrt(np.mean(allres**2))) if len(allres) else None,
        "gravity": float(np.median(gs)) if gs else None,
        "restitution": float(np.median(rest)) if rest else None,
    }


def visible_runs(present: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for t, p in enumerate(list(present) + [False]):
        if p and start is None:
            start = t
        elif not p and start is not None:
            runs.append((start, t))
            start = None
    return runs


# --------------------------------------------------------------------------- the world's track

# a fitted start may lie this far outside the ranges the world draws a motion's start from:
# positions by px, speeds by a share of the range's top plus an absolute 0.1 px/frame
FIT_WIDEN_PX = 2.0
FIT_WIDEN_SPEED = 0.1
# the search: uniform draws, then rounds of perturbing the best few by a shrinking step
FIT_DRAWS, FIT_ELITES, FIT_ROUNDS, FIT_PERTURB = 2048, 12, 6, 128


def centroid_offset(shape: str, radius: float) -> float:
    """How far below an object's centre the centroid of its pixels lies: a triangle's (apex
    up) is a third of the way up from its base; a ball's and a square's is the centre."""
    return radius / 3.0 if shape == "triangle" else 0.0


def start_bounds(
    motion: str, radius: float, cfg: WorldConfig, free_x: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (lo, hi) of (x, y, |vx|, vy) a fitted start may take: the world's ranges for
    `motion` (world.start_ranges), a little wider, inside the frame. `free_x`: anywhere on
    the floor's width (a wall clip draws x beside its wall)."""
    rng = start_ranges(motion, radius, cfg)
    r, W, H = float(radius), float(cfg.width), float(cfg.height)

    def speed(lo: float, hi: float) -> tuple[float, float]:
        m = FIT_WIDEN_SPEED * max(abs(lo), abs(hi)) + 0.1
        return lo - m, hi + m

    x = (r, W - r) if free_x else (rng["x"][0] - FIT_WIDEN_PX, rng["x"][1] + FIT_WIDEN_PX)
    y = (rng["y"][0] - FIT_WIDEN_PX, rng["y"][1] + FIT_WIDEN_PX)
    sx, vy = speed(*rng["speed_x"]), speed(*rng["vy"])
    lo = np.array([max(r, x[0]), max(r, y[0]), max(0.0, sx[0]), vy[0]])
    hi = np.array([min(W - r, x[1]), min(H - r, y[1]), sx[1], vy[1]])
    return lo, hi


def visible_pixels(
    shape: str,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: float,
    height: int,
    hidden_cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the analysis sees of an object drawn at (cx, cy) (arrays of one shape) where the
    columns `hidden_cols` (bool [W]) hide it: its visible pixel count and their centroid
    (x, y; NaN where none shows). Column by column in closed form, the pixels
    `world.shape_mask` draws (pixel centres inside the shape), so that thousands of
    candidate trajectories cost a few array operations rather than a rendering each."""
    W = len(hidden_cols)
    r = float(radius)
    col = np.arange(W) + 0.5
    dx = col - np.asarray(cx, np.float64)[..., None]
    cy = np.asarray(cy, np.float64)[..., None]
    ax = np.abs(dx)
    if shape == "ball":
        h = np.sqrt(np.maximum(r * r - dx * dx, 0.0))
        valid, lo, hi = r * r - dx * dx >= 0, -h, h
    elif shape == "square":
        valid, lo, hi = ax <= r, np.full_like(dx, -r), np.full_like(dx, r)
    elif shape == "triangle":  # apex up: rows from 2|dx| - r down to the base at r
        valid, lo, hi = ax <= r, 2 * ax - r, np.full_like(dx, r)
    else:
        raise ValueError(shape)
    # rows k whose centre k + 0.5 - cy lies in [lo, hi]
    k_lo = np.maximum(np.ceil(lo + cy - 0.5), 0)
    k_hi = np.minimum(np.floor(hi + cy - 0.5), height - 1)
    n_col = np.where(valid & ~hidden_cols, np.maximum(k_hi - k_lo + 1, 0), 0)
    n = n_col.sum(-1)
    safe = np.maximum(n, 1)
    x = (n_col * col).sum(-1) / safe
    y = (n_col * ((k_lo + k_hi) / 2 + 0.5)).sum(-1) / safe
    return n, np.where(n > 0, x, np.nan), np.where(n > 0, y, np.nan)


def visible_area(
    shape: str,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: float,
    height: int,
    hidden_cols: np.ndarray,
    sub: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`visible_pixels` without the pixel grid: the visible area of the shape itself (px²)
    and its centroid, integrated over `sub` vertical strips per pixel of its width. It moves
    smoothly with (cx, cy), so a fit to it is a least-squares problem; the grid's rounding
    is left in the residual, as in the smooth model of a whole object (`centroid_offset`)."""
    W = len(hidden_cols)
    r = float(radius)
    n = max(1, int(math.ceil(2 * r * sub)))
    dx = (np.arange(n) + 0.5) * (2 * r / n) - r  # strips across the shape, its own frame
    cx = np.asarray(cx, np.float64)[..., None]
    cy = np.asarray(cy, np.float64)[..., None]
    xs = cx + dx
    col = np.floor(xs).astype(np.int64)
    inside = (col >= 0) & (col < W)
    shown = inside & ~hidden_cols[np.clip(col, 0, W - 1)]
    ax = np.abs(dx)
    if shape == "ball":
        h = np.sqrt(np.maximum(r * r - dx * dx, 0.0))
        lo, hi = -h, h
    elif shape == "square":
        lo, hi = np.full_like(dx, -r), np.full_like(dx, r)
    elif shape == "triangle":  # apex up
        lo, hi = 2 * ax - r, np.full_like(dx, r)
    else:
        raise ValueError(shape)
    top, bottom = np.maximum(lo + cy, 0.0), np.minimum(hi + cy, float(height))
    length = np.where(shown, np.maximum(bottom - top, 0.0), 0.0)
    area = length.sum(-1) * (2 * r / n)
    safe = np.maximum(length.sum(-1), 1e-12)
    x = (length * xs).sum(-1) / safe
    y = (length * (top + bottom) / 2).sum(-1) / safe
    return area, np.where(area > 0, x, np.nan), np.where(area > 0, y, np.nan)


# in a wall fit, each px² of area short of `min_px` in a frame where the clip shows the
# object (or over it, where the clip does not) costs this much (px²); and in its last rounds,
# on the pixel grid, a frame where one shows it and the other does not; the smooth cost then
# only breaks ties between starts that draw the same pixels
PRESENCE_COST = 1.0
PIXEL_PRESENCE_COST = 9.0
SETTLE_TIE = 0.01
FIT_SETTLE_ROUNDS = 4


def fit_start(
    track: np.ndarray,
    shape: str,
    radius: float,
    motion: str,
    cfg: WorldConfig,
    use: np.ndarray | None = None,
    free_x: bool = False,
    wall: np.ndarray | None = None,
    min_px: int = 1,
    seed: int = 0,
) -> dict | None:
    """The trajectory of this world (its simulator, its gravity and restitution) that best
    explains `track` (float [T, 2], the object's centroid, NaN where it is not seen) over the
    frames `use` (default: every tracked one), from a frame-0 state within `start_bounds`.

    Without `wall` it is fitted to the centroids, the centre moved by `centroid_offset`.
    With `wall` (bool [W], columns that hide) to what shows of it, `visible_area`: the
    centroid of the visible part where the clip shows the object, and in every frame of
    `use` whether at least `min_px` px² of it show (PRESENCE_COST per px² on the wrong side
    of that). Both are smooth models: the pixel grid's rounding stays in the residual, as it
    does for the simulator's own clips. A wall fit then settles, near that optimum, on a
    start whose pixels (`visible_pixels`) are what the clip shows, where there is one.

    Returns {"start": [x, y, vx, vy], "positions": [T, 2] centres, "centroids": [T, 2]
    (the smooth model's, whole object), "rms": px over the frames used}; None with fewer
    than two frames that show the object. Deterministic: a seeded random search refined
    around its best."""
    seen = np.isfinite(track).all(axis=1)
    used = seen.copy() if use is None else np.asarray(use, bool) & (seen | (wall is not None))
    if (used & seen).sum() < 2:
        return None
    lo, hi = start_bounds(motion, radius, cfg, free_x)
    off = centroid_offset(shape, radius)
    want, shown = np.nan_to_num(track[used]), seen[used]
    gen = np.random.default_rng(seed)

    def clamp(c: np.ndarray) -> np.ndarray:
        sign = np.where(c[:, 2] < 0, -1.0, 1.0)
        c[:, [0, 1, 3]] = np.clip(c[:, [0, 1, 3]], lo[[0, 1, 3]], hi[[0, 1, 3]])
        c[:, 2] = sign * np.clip(np.abs(c[:, 2]), lo[2], hi[2])
        return c

    def score(c: np.ndarray) -> np.ndarray:
        pos = simulate_alone(c[:, 0], c[:, 1], c[:, 2], c[:, 3], radius, cfg)[:, used]
        if wall is None:
            pos[..., 1] += off
            return ((pos - want) ** 2).sum(-1).mean(-1)
        area, x, y = visible_area(shape, pos[..., 0], pos[..., 1], radius, cfg.height, wall)
        d2 = np.nan_to_num((x - want[:, 0]) ** 2 + (y - want[:, 1]) ** 2, nan=0.0)
        wrong = np.where(shown, np.maximum(min_px - area, 0.0), np.maximum(area - min_px, 0.0))
        return (np.where(shown, d2, 0.0) + PRESENCE_COST * wrong).mean(-1)

    def search(score, elite, elite_err, rounds: int, first_step: float):
        for k in range(rounds):
            step = (hi - lo) * first_step * 0.45**k
            moved = np.repeat(elite, FIT_PERTURB, axis=0)
            moved = clamp(moved + gen.normal(size=moved.shape) * step)
            pool = np.concatenate([elite, moved])
            pool_err = np.concatenate([elite_err, score(moved)])
            best = np.argsort(pool_err, kind="stable")[:FIT_ELITES]
            elite, elite_err = pool[best], pool_err[best]
        return elite, elite_err

    cand = lo + (hi - lo) * gen.random((FIT_DRAWS, 4))
    cand[:, 2] *= gen.choice([-1.0, 1.0], FIT_DRAWS)
    err = score(cand)
    best = np.argsort(err, kind="stable")[:FIT_ELITES]
    elite, elite_err = search(score, cand[best], err[best], FIT_ROUNDS, 0.15)
    rms = float(np.sqrt(elite_err[0]))
    if wall is not None:
        # settle on the pixels near the smooth optimum: the starts that draw what the clip
        # shows, the smooth model's cost choosing among them
        def pixel_score(c: np.ndarray) -> np.ndarray:
            pos = simulate_alone(c[:, 0], c[:, 1], c[:, 2], c[:, 3], radius, cfg)[:, used]
            n, x, y = visible_pixels(shape, pos[..., 0], pos[..., 1], radius, cfg.height, wall)
            shows = n >= min_px
            d2 = np.nan_to_num((x - want[:, 0]) ** 2 + (y - want[:, 1]) ** 2, nan=0.0)
            miss = np.where(shows != shown, PIXEL_PRESENCE_COST, 0.0)
            exact = (np.where(shows & shown, d2, 0.0) + miss).mean(-1)
            return exact + SETTLE_TIE * score(c)

        elite, _ = search(pixel_score, elite, pixel_score(elite), FIT_SETTLE_ROUNDS, 0.02)
    x, y, vx, vy = (np.array([v]) for v in elite[0])
    pos = simulate_alone(x, y, vx, vy, radius, cfg)[0]
    cen = pos.copy()
    cen[:, 1] += off
    return {
        "start": [float(v) for v in elite[0]],
        "positions": pos,
        "centroids": cen,
        "rms": rms,
    }


def bounce_frames(y: np.ndarray, min_rise: float) -> list[int]:
    """Frames where the height peaks downwards (y grows down): the object met the floor and
    went up again, by at least `min_rise` px within two frames on both sides."""
    out = []
    for b in range(1, len(y) - 1):
        if not np.isfinite(y[b - 1 : b + 2]).all():
            continue
        if y[b] >= y[b - 1] and y[b] > y[b + 1]:
            before = np.nanmin(y[max(0, b - 2) : b])
            after = np.nanmin(y[b + 1 : b + 3])
            if y[b] - before >= min_rise and y[b] - after >= min_rise:
                out.append(b)
    return out


# a bounce the timing check insists on rises this much on both sides; one that only matches
# another rises at least BOUNCE_MATCH_PX (a shallow last hop can show in one and not the other)
BOUNCE_PX = 1.0
BOUNCE_MATCH_PX = 0.3
PHYSICS_TOL_PX = 0.65  # rms px of the tracked centroid off the world's closest trajectory
PHYSICS_MIN_TRACKED = 0.75  # share of frames the object must be tracked in


def bounces_agree(seen: np.ndarray, expected: np.ndarray, frames: int = 1) -> bool:
    """Every clear bounce of either height curve has one in the other within `frames`."""

    def covered(a: np.ndarray, b: np.ndarray) -> bool:
        near = bounce_frames(b, BOUNCE_MATCH_PX)
        return all(any(abs(t - u) <= frames for u in near) for t in bounce_frames(a, BOUNCE_PX))

    return covered(seen, expected) and covered(expected, seen)


def physics(
    an: ClipAnalysis, color: str, shape: str, radius: float, motion: str, cfg: WorldConfig
) -> dict:
    """Does the clip's one object move as this world moves it? Its tracked centroid against
    the world's own trajectory that comes closest (`fit_start`, from a start the world could
    draw for `motion`), frame by frame: rms position error, and the bounce frames of the two
    within a frame of each other. An object tracked in fewer than PHYSICS_MIN_TRACKED of the
    frames fails: a clip is never dropped because its object cannot be followed.

    The quadratic fits of the height between bounces (`fit_ballistic`) ride along as
    secondary figures (arc_rms, gravity, restitution)."""
    tr = an.track(color)
    tracked = np.isfinite(tr).all(axis=1)
    arc = fit_ballistic(tr)
    out = {
        "ok": False,
        "tracked": int(tracked.sum()),
        "rms": None,
        "max_px": None,
        "timing": None,
        "bounces": None,
        "expected_bounces": None,
        "start": None,
        "arc_rms": arc["rms"],
        "gravity": arc["gravity"],
        "restitution": arc["restitution"],
    }
    if tracked.sum() < math.ceil(PHYSICS_MIN_TRACKED * an.T):
        return out
    fit = fit_start(tr, shape, radius, motion, cfg)
    err = np.hypot(*(tr[tracked] - fit["centroids"][tracked]).T)
    timing = bounces_agree(tr[:, 1], fit["centroids"][:, 1])
    out.update(
        rms=float(np.sqrt(np.mean(err**2))),
        max_px=float(err.max()),
        timing=timing,
        bounces=bounce_frames(tr[:, 1], BOUNCE_PX),
        expected_bounces=bounce_frames(fit["centroids"][:, 1], BOUNCE_PX),
        start=[round(v, 3) for v in fit["start"]],
    )
    out["ok"] = bool(out["rms"] <= PHYSICS_TOL_PX and timing)
    return out


# --------------------------------------------------------------------------- permanence

PERMANENCE_TOL_PX = 6.0  # the reappearing object's centroid off the world's, at most
PERMANENCE_FRAMES = 1  # the reappearance (and the time hidden) off the world's, at most
PERMANENCE_AFTER = 3  # frames from the reappearance on whose position is checked


def occlusion(present: np.ndarray) -> tuple[int, int | None] | None:
    """(first hidden frame, frame it is back or None) of the object's occlusion: the first
    gap after it was first seen lasting two frames or more, or else the first gap of one
    frame (a one-frame dropout before the real occlusion is a flicker, not the occlusion);
    None when it never goes out of sight."""
    runs = visible_runs(present)
    if not runs:
        return None
    T = len(present)
    gaps = [(a[1], b[0]) for a, b in zip(runs[:-1], runs[1:], strict=True)]
    if runs[-1][1] < T:
        gaps.append((runs[-1][1], T))
    if not gaps:
        return None
    long = [g for g in gaps if g[1] - g[0] >= 2]
    hide, back = (long or gaps)[0]
    return hide, (back if back < T else None)


def permanence(
    an: ClipAnalysis,
    color: str,
    shape: str,
    radius: float,
    motion: str,
    cfg: WorldConfig,
    wall_x: float | None = None,
    tol: float = PERMANENCE_TOL_PX,
) -> dict:
    """Does an object that goes behind the wall come out when and where this world brings
    it out? The world's trajectory closest to what the clip shows on one side of the
    occlusion (from the object's first appearance to the frame it vanishes in; the other
    side when it shows in fewer than two frames before: `fit_start` with the wall), drawn
    behind the clip's own wall (or the asked-for one where the clip has none), says which
    frames hide the object and where its visible part is. The clip passes
    when the object reappears within PERMANENCE_FRAMES of the predicted frame, was hidden for
    as many frames give or take as many, and shows within `tol` px of the prediction in its
    first PERMANENCE_AFTER frames back.

    Keys: occluded, reappeared, timing_ok, ok, error_px, hidden / hidden_expected (frames),
    back / back_expected (frame index), fit_frames."""
    T, H, W = an.T, an.H, an.W
    tr = an.track(color)
    present = np.isfinite(tr).all(axis=1)
    out: dict = {
        "occluded": False,
        "reappeared": False,
        "timing_ok": False,
        "ok": False,
        "error_px": None,
        "hidden": None,
        "hidden_expected": None,
        "back": None,
        "back_expected": None,
        "fit_frames": None,
    }
    gap = occlusion(present)
    if gap is None:
        return out
    hide, back = gap
    out.update(occluded=True, hidden=(T if back is None else back) - hide, back=back)
    out["reappeared"] = back is not None
    wall = an.wall_cols
    if not wall.any() and wall_x is not None:
        wall = np.abs(np.arange(W) + 0.5 - wall_x) <= cfg.occluder_width / 2
    # one side of the occlusion, with the frame it starts (or ends) in: what the clip shows
    # before it predicts the rest; after it, when the object shows in fewer than two frames
    # before (a clip that starts with the object at the wall)
    frame = np.arange(T)
    before = (frame >= int(np.argmax(present))) & (frame <= hide)
    after = frame >= back - 1 if back is not None else np.zeros(T, bool)
    use = before if (before & present).sum() >= 2 else after
    if (use & present).sum() < 2:
        use = before | after
    fit = fit_start(
        tr,
        shape,
        radius,
        motion,
        cfg,
        use=use,
        free_x=True,
        wall=wall,
        min_px=an.min_px,
    )
    if fit is None:
        return out
    out["fit_frames"] = [int(t) for t in np.flatnonzero(use)]
    pos = fit["positions"]
    n, vis_x, vis_y = visible_pixels(shape, pos[:, 0], pos[:, 1], radius, H, wall)
    shows = n >= an.min_px
    seen_at = np.stack([vis_x, vis_y], axis=1)
    want = occlusion(shows)
    if want is not None:
        out["hidden_expected"] = (T if want[1] is None else want[1]) - want[0]
        out["back_expected"] = want[1]
    if back is None:
        return out
    # where the clip and the world both show it; a frame where the world has it still behind
    # the wall (within the frame of slack the timing allows) has nothing to compare with
    near = [t for t in range(back, min(T, back + PERMANENCE_AFTER)) if present[t]]
    both = [t for t in near if shows[t]]
    errs = [np.hypot(*(tr[t] - seen_at[t])) for t in both]
    errs = errs or [np.hypot(*(tr[t] - fit["centroids"][t])) for t in near]
    out["error_px"] = float(max(errs))
    out["timing_ok"] = bool(
        out["back_expected"] is not None
        and abs(back - out["back_expected"]) <= PERMANENCE_FRAMES
        and abs(out["hidden"] - out["hidden_expected"]) <= PERMANENCE_FRAMES
    )
    out["ok"] = bool(out["timing_ok"] and out["error_px"] <= tol)
    return out


# --------------------------------------------------------------------------- cameos


def cameo_error(frames: np.ndarray, pattern: np.ndarray) -> float:
    """Mean |RGB| difference (0..1) between the pattern and the largest non-background,
    non-wall blob, sampled on the pattern's grid; averaged over frames where it is clean."""
    lab = classify(frames, max_dist=1e9)
    bg = lab >= N_OBJ_COLORS
    errs = []
    H, W = frames.shape[1:3]
    ph, pw = pattern.shape[:2]
    for t in range(len(frames)):
        comps = components(~bg[t], min_pixels(H, W))
        if not comps:
            errs.append(1.0)
            continue
        pts = comps[0]
        y0, x0 = pts.min(0)
        y1, x1 = pts.max(0) + 1
        if y1 - y0 < 4 or x1 - x0 < 4:
            errs.append(1.0)
            continue
        ys = (y0 + (np.arange(ph) + 0.5) * (y1 - y0) / ph).astype(int)
        xs = (x0 + (np.arange(pw) + 0.5) * (x1 - x0) / pw).astype(int)
        crop = frames[t][ys][:, xs].astype(float)
        errs.append(float(np.abs(crop - pattern.astype(float)).mean() / 255.0))
    return float(np.median(errs))
