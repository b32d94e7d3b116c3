"""The worker's semantic IP check: the prompt's MiniLM vector against each asset's reference
text (rights.semantic does the maths; this module keeps the asset vectors).

An asset's vector is computed once per version of its description and stored on the row
(`embedding`, `embedding_version`), so a worker embeds only the prompt. Imported only where
torch is installed (the `worker` extra): the web tier's catalogue never calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.conf import settings

from . import semantic
from .models import IPAsset


def threshold_for(asset: IPAsset) -> float:
    if asset.semantic_threshold is not None:
        return asset.semantic_threshold
    configured = settings.RIFF_RIGHTS_SEMANTIC_THRESHOLD
    return configured if configured is not None else semantic.DEFAULT_THRESHOLD


def embedding_stamp(asset: IPAsset) -> int:
    """What a stored vector was computed for: the asset's version (any change of name,
    aliases or description bumps it) and the way reference vectors are made
    (semantic.REFERENCE_VERSION), so changing either recomputes it."""
    return asset.version * 100 + semantic.REFERENCE_VERSION


def asset_vectors(assets: Sequence[IPAsset]) -> list[tuple[IPAsset, np.ndarray]]:
    """(asset, reference vector) for every asset that has a description, computing the stale
    ones in one batch and storing them for the next worker. The reference vector is the one
    the threshold was calibrated for (rights.semantic.reference_vectors: sentence vectors of
    the description with the asset's own names replaced, pooled)."""
    described = [a for a in assets if a.description.strip()]
    stale = [a for a in described if a.embedding_version != embedding_stamp(a) or not a.embedding]
    if stale:
        vectors = semantic.reference_vectors([(a.description, [a.name, *a.aliases]) for a in stale])
        for asset, vector in zip(stale, vectors, strict=True):
            raw, stamp = semantic.to_bytes(vector), embedding_stamp(asset)
            # Only if the row is still at that version: a concurrent edit re-embeds later.
            IPAsset.objects.filter(pk=asset.pk, version=asset.version).update(
                embedding=raw, embedding_version=stamp
            )
            asset.embedding, asset.embedding_version = raw, stamp
    found = []
    for asset in described:
        vector = semantic.from_bytes(asset.embedding)
        if vector is not None:
            found.append((asset, vector))
    return found


def semantic_hits(*, prompt: str, assets: Sequence[IPAsset]) -> list[tuple[IPAsset, float]]:
    """(asset, cosine) for each asset the prompt describes closely enough, best first."""
    entries = asset_vectors(assets)
    if not entries or not prompt.strip():
        return []
    vector = semantic.embed([prompt])[0]
    by_id = {asset.pk: asset for asset, _ in entries}
    hits = semantic.semantic_matches(
        vector, [(asset.pk, v, threshold_for(asset)) for asset, v in entries]
    )
    return [(by_id[key], float(score)) for key, score in hits]
