"""The semantic IP check: does a prompt *describe* a registered character without naming it?

Runs in the worker (the alias match at admission catches names; docs/rights-detection.md).
Each asset has one reference vector, computed once from its reference text when the asset is
saved (`reference_vector`), stored as 384 float32 bytes (`to_bytes` / `from_bytes`, the same
format as the feed's embeddings). A prompt matches an asset when the cosine between the
prompt's MiniLM embedding and the asset's reference vector is at least the asset's threshold
(`DEFAULT_THRESHOLD` unless an operator calibrated another).

The reference vector is the normalised mean of the embeddings of the reference text's
sentences, with the asset's own names and aliases replaced by "the character": names say
nothing about what the character looks like, and the prompts this check exists for do not
contain them. On the labelled set's dev split this beats embedding the raw text (average
precision 0.994 vs 0.959; `manage.py evaluate_rights` prints the comparison).

numpy only at import time; embedding (`embed`, `reference_vector`) loads MiniLM through
config.core.embeddings, so call those in worker code, never in a web request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence

import numpy as np

DIM = 384

# Calibrated on the dev half of config/devtools/data/rights_semantic_set.json with
# `manage.py evaluate_rights`: the lowest threshold whose dev precision is >= 0.95 (rule and
# measured precision/recall on the held-out test half: docs/rights-detection.md).
DEFAULT_THRESHOLD = 0.51
# Bumped whenever `reference_vector` changes how it builds the vector (text preparation,
# pooling, model): vectors stored under another version must be recomputed, and
# DEFAULT_THRESHOLD recalibrated with them.
REFERENCE_VERSION = 1

_NAME_STANDIN = "the character"
# A sentence ends at . ! or ? followed by a space (a quoted exclamation mid-sentence does not
# end it: `shouts "Zap!" when...`).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def embed(texts: list[str]) -> np.ndarray:
    """[n, 384] float32, L2-normalised MiniLM embeddings (loads the model on first use)."""
    from config.core.embeddings import embed_texts

    return embed_texts(list(texts))


def reference_parts(description: str, names: Sequence[str] = ()) -> list[str]:
    """The pieces of a reference text that are embedded: its sentences, with every name and
    alias in `names` (and its possessive) replaced by "the character". At least one piece
    (the whole text) unless the text is blank."""
    text = " ".join(description.split())
    for name in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        pattern = r"(?<!\w)" + r"[\s\-_.]*".join(map(re.escape, name.split())) + r"(?:'s)?(?!\w)"
        text = re.sub(pattern, _NAME_STANDIN, text, flags=re.IGNORECASE)
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]
    return parts or ([text] if text.strip() else [])


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def reference_vectors(
    items: Sequence[tuple[str, Sequence[str]]],
    embed_fn: Callable[[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """[n, 384] reference vectors for many `(description, names)` at once (one model call).
    A blank description gives a zero vector, which matches nothing. `embed_fn` replaces
    MiniLM (the evaluation's random-vector control uses it)."""
    return pooled_vectors(
        [reference_parts(description, names) for description, names in items], embed_fn
    )


def pooled_vectors(
    parts: Sequence[Sequence[str]], embed_fn: Callable[[list[str]], np.ndarray] | None = None
) -> np.ndarray:
    """[n, 384]: for each list of texts, the unit-length mean of their embeddings (zero for
    an empty list)."""
    flat = [p for ps in parts for p in ps]
    vectors = (embed_fn or embed)(flat) if flat else np.zeros((0, DIM), dtype=np.float32)
    out = np.zeros((len(parts), DIM), dtype=np.float32)
    i = 0
    for row, ps in enumerate(parts):
        if ps:
            out[row] = _unit(vectors[i : i + len(ps)].mean(axis=0))
        i += len(ps)
    return out


def reference_vector(description: str, names: Sequence[str] = ()) -> np.ndarray:
    """The vector stored for an asset: pass its reference text and its name and aliases."""
    return reference_vectors([(description, names)])[0]


def semantic_matches(
    prompt_vector: np.ndarray,
    assets: Sequence[tuple[Hashable, np.ndarray | None, float | None]],
) -> list[tuple[Hashable, float]]:
    """(key, cosine) for every asset whose cosine with the prompt >= its own threshold, best
    first (ties keep the input order).

    `assets` are `(key, reference vector, threshold)`; a missing vector (not computed yet)
    never matches and a threshold of None means DEFAULT_THRESHOLD. Vectors need not be unit
    length: both sides are normalised here, so the score is always a cosine.
    """
    rows = [(key, vec, thr) for key, vec, thr in assets if vec is not None]
    if not rows:
        return []
    prompt = _unit(prompt_vector)
    if not np.any(prompt):
        return []
    matrix = np.stack([np.asarray(vec, dtype=np.float32) for _, vec, _ in rows])
    norms = np.linalg.norm(matrix, axis=1)
    cosines = (matrix @ prompt) / np.where(norms > 0, norms, 1.0)
    thresholds = np.array(
        [DEFAULT_THRESHOLD if thr is None else thr for _, _, thr in rows], dtype=np.float64
    )
    hits = np.nonzero((cosines >= thresholds) & (norms > 0))[0]
    order = sorted(hits, key=lambda i: (-cosines[i], i))
    return [(rows[i][0], float(cosines[i])) for i in order]


def to_bytes(vector: np.ndarray) -> bytes:
    """384 float32, little-endian (1,536 bytes): what the asset row stores."""
    return np.asarray(vector, dtype="<f4").reshape(DIM).tobytes()


def from_bytes(raw) -> np.ndarray | None:
    """The stored vector, or None when absent or not 384 floats."""
    if not raw:
        return None
    vector = np.frombuffer(bytes(raw), dtype="<f4")
    return vector.astype(np.float32) if vector.shape == (DIM,) else None
