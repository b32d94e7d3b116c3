"""Prompt and steering embeddings: MiniLM sentence vectors (384 floats, unit length).

Imported only by worker tasks (torch and sentence-transformers live in the `worker` extra);
the web tier reads the stored bytes with `from_bytes` (numpy only).
"""

from __future__ import annotations

import numpy as np

DIM = 384


def embed_texts(texts: list[str]) -> np.ndarray:
    """[n, 384] float32, L2-normalised (config.core.embeddings, shared with rights)."""
    from config.core.embeddings import embed_texts as _embed

    return _embed(texts)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw) -> np.ndarray | None:
    if not raw:
        return None
    vector = np.frombuffer(bytes(raw), dtype=np.float32)
    return vector if vector.shape == (DIM,) else None
