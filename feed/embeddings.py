"""Prompt and steering embeddings: MiniLM sentence vectors (384 floats, unit length).

Imported only by worker tasks (torch and sentence-transformers live in the `worker` extra);
the web tier reads the stored bytes with `from_bytes` (numpy only).
"""

from __future__ import annotations

import numpy as np

DIM = 384


def embed_texts(texts: list[str]) -> np.ndarray:
    """[n, 384] float32, L2-normalised."""
    from generation.engine.text import load_minilm

    model = load_minilm()
    vectors = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw) -> np.ndarray | None:
    if not raw:
        return None
    vector = np.frombuffer(bytes(raw), dtype=np.float32)
    return vector if vector.shape == (DIM,) else None
