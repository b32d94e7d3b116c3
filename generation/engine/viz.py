"""PNG helpers: clip grids and loss curves (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def clip_grid(
    clips: list[np.ndarray],
    every: int = 2,
    scale: int = 3,
    gap: int = 2,
    refs: list[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Rows = clips, columns = every `every`-th frame; an optional reference column first."""
    rows = []
    for i, c in enumerate(clips):
        fr = list(c[::every])
        if refs is not None:
            ref = refs[i] if refs[i] is not None else np.zeros_like(c[0])
            fr = [ref] + fr
        H, W = c.shape[1:3]
        row = np.full((H, len(fr) * (W + gap), 3), 40, np.uint8)
        for j, f in enumerate(fr):
            row[:, j * (W + gap) : j * (W + gap) + W] = f
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    out = np.full((sum(r.shape[0] + gap for r in rows), width, 3), 40, np.uint8)
    y = 0
    for r in rows:
        out[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return np.kron(out, np.ones((scale, scale, 1), np.uint8))


def save_grid(
    path: str | Path,
    clips: list[np.ndarray],
    captions: list[str] | None = None,
    refs: list[np.ndarray | None] | None = None,
    title: str = "",
) -> None:
    grid = clip_grid(clips, refs=refs)
    if not captions:
        Image.fromarray(grid).save(path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(w / 100 + 3.5, h / 100 + 0.6), dpi=100)
    ax.imshow(grid, interpolation="nearest")
    row_h = h / len(clips)
    ax.set_yticks([row_h * (i + 0.5) for i in range(len(clips))])
    ax.set_yticklabels([c[:60] for c in captions], fontsize=7)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # a long row label is not cut on the left
    plt.close(fig)


def save_loss_curve(
    path: str | Path, steps: list[int], losses: list[float], title: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps_a, loss_a = np.asarray(steps), np.asarray(losses)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps_a, loss_a, lw=0.5, alpha=0.35, label="loss")
    if len(loss_a) > 20:
        k = max(5, len(loss_a) // 50)
        smooth = np.convolve(loss_a, np.ones(k) / k, mode="valid")
        ax.plot(steps_a[k - 1 :], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("velocity MSE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
