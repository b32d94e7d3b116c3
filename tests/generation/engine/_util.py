"""Helpers shared by the engine tests."""

from __future__ import annotations

import torch


def random_text(B: int, L: int = 5, seed: int = 0):
    """Precomputed random prompt embeddings for tests that are not about text."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, L, 384, generator=g),
        torch.ones(B, L, dtype=torch.bool),
        torch.nn.functional.normalize(torch.randn(B, 384, generator=g), dim=-1),
    )


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter (including the zero-initialised adaLN / output layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
