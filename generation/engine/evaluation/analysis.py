"""Image analysis of clips: colour segmentation, blobs, shapes, tracks, ballistic fits.

numpy only. Works on any uint8 [T, H, W, 3] clip, generated or simulated.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..world import BACKGROUNDS, COLORS, OCCLUDER_COLOR

PALETTE_NAMES = list(COLORS) + [f"bg:{b}" for b in BACKGROUNDS] + ["occluder"]
PALETTE = np.array(
    list(COLORS.values()) + list(BACKGROUNDS.values()) + [OCCLUDER_COLOR], dtype=np.float32
)
N_OBJ_COLORS = len(COLORS)
UNKNOWN = -1


def classify(frames: np.ndarray, max_dist: float = 90.0) -> np.ndarray:
    """Nearest palette entry per pixel ([T, H, W] int; -1 where nothing is close)."""
    x = frames.astype(np.float32)[..., None, :]
    d = np.sqrt(((x - PALETTE) ** 2).sum(-1))
    lab = d.argmin(-1)
    lab[d.min(-1) > max_dist] = UNKNOWN
    return lab


def components(mask: np.ndarray, min_px: int = 1) -> list[np.ndarray]:
    """4-connected components of a 2D bool mask, as arrays of (y, x), largest first."""
    H, W = mask.shape
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
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
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
    """Per-colour blobs of one clip, computed once."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.T, self.H, self.W = frames.shape[:3]
        self.labels = classify(frames)
        self.min_px = min_pixels(self.H, self.W)
        self.occluder = self.labels == PALETTE_NAMES.index("occluder")
        self.wall_cols = wall_columns(self.occluder)
        self.blobs: dict[str, list[list[np.ndarray]]] = {}
        for ci, name in enumerate(COLORS):
            m = self.labels == ci
            if m.sum() < self.min_px:
                self.blobs[name] = [[] for _ in range(self.T)]
                continue
            self.blobs[name] = [components(m[t], self.min_px) for t in range(self.T)]

    def pixels(self, color: str) -> np.ndarray:
        return (self.labels == list(COLORS).index(color)).reshape(self.T, -1).sum(1)

    def dominant_color(self) -> str | None:
        counts = {c: int(self.pixels(c).sum()) for c in COLORS}
        best = max(counts, key=counts.get)
        return best if counts[best] >= self.min_px else None

    def present_colors(self, frac: float = 0.5) -> list[str]:
        return [c for c in COLORS if (self.pixels(c) >= self.min_px).mean() >= frac]

    def count(self) -> int:
        """Mode over frames of the number of object blobs (all colours)."""
        per_frame = [sum(len(self.blobs[c][t]) for c in COLORS) for t in range(self.T)]
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


def permanence(an: ClipAnalysis, color: str, tol: float = 6.0) -> dict:
    """Does an object that disappears (behind the wall) come out again where expected?"""
    px = an.pixels(color)
    present = px >= an.min_px
    runs = visible_runs(present)
    out = {"occluded": False, "reappeared": False, "ok": False, "error_px": None}
    if not runs or len(runs) < 2 and runs[0] == (0, an.T):
        return out
    first = runs[0]
    if first[1] >= an.T:
        return out
    out["occluded"] = True
    if len(runs) < 2:
        return out
    out["reappeared"] = True
    tr = an.track(color)
    before = [t for t in range(first[0], first[1]) if not np.isnan(tr[t, 0])]
    t_back = runs[1][0]
    if len(before) >= 2:
        # full-visibility frames only: the partially hidden ones drag the centroid
        full = [t for t in before if px[t] >= 0.8 * px[before].max()] or before
        tt = np.array(full[-4:], float)
        vx = np.polyfit(tt, tr[full[-4:], 0], 1)[0] if len(tt) >= 2 else 0.0
        pred = tr[full[-1], 0] + vx * (t_back - full[-1])
        # at re-entry only part of the object shows: compare against the wall side
        back = tr[t_back, 0]
        err = abs(back - pred)
        occ_cols = np.flatnonzero(an.wall_cols)
        if len(occ_cols):
            lo, hi = occ_cols.min(), occ_cols.max() + 1
            exit_x = hi if vx > 0 else lo
            err = min(err, abs(back - exit_x))
        out["error_px"] = float(err)
        out["ok"] = bool(err <= tol)
    else:
        out["ok"] = True
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
