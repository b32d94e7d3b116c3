"""Re-ranking: a greedy pass that turns scored candidates into the session's order.

At each position the best remaining candidate is taken by

    adjusted = score/max_score * AUTHOR_DECAY ** (posts by that author already placed)
               - DIVERSITY * (max cosine to the last few placed posts' prompt embeddings)

(MMR-style diversity), subject to two rules:

* a HARD author cap: a candidate whose author already has `cap` posts among the previous
  `window - 1` placed posts is not eligible, so any `window` consecutive posts hold at most
  `cap` by one author. It is never relaxed: when only capped authors remain the order ends
  (their other posts are in Following). A page no longer than `window` therefore holds at most
  `cap / window` of one author.
* an in-network share: while the placed in-network share (authors the viewer follows) is
  below `in_network_share` and an eligible in-network candidate exists, the pick is the best
  in-network one.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..embeddings import DIM
from .sources import Candidate

RECENT_FOR_DIVERSITY = 5


def rerank(
    cands: list[Candidate],
    *,
    size: int,
    cap: int,
    window: int,
    decay: float,
    diversity: float,
    in_network_share: float,
) -> list[Candidate]:
    n = len(cands)
    if n == 0:
        return []
    scores = np.array([c.score for c in cands], dtype=np.float64)
    scores = scores / max(scores.max(), 1e-12)
    vectors = np.zeros((n, DIM), dtype=np.float32)
    for i, c in enumerate(cands):
        if c.embedding is not None:
            vectors[i] = c.embedding
    authors = [c.author_id for c in cands]
    author_index = {a: k for k, a in enumerate(dict.fromkeys(authors))}
    author_of = np.array([author_index[a] for a in authors])
    in_network = np.array([c.in_network for c in cands])
    placed_by_author = np.zeros(len(author_index), dtype=np.int64)
    available = np.ones(n, dtype=bool)
    order: list[int] = []
    in_net_placed = 0
    for _ in range(min(size, n)):
        recent = Counter(author_of[i] for i in order[-(window - 1) :]) if window > 1 else {}
        eligible = available.copy()
        for a, k in recent.items():
            if k >= cap:
                eligible &= author_of != a
        if not eligible.any():
            break
        if in_net_placed < in_network_share * (len(order) + 1):
            wanted = eligible & in_network
            if wanted.any():
                eligible = wanted
        adjusted = scores * np.power(decay, placed_by_author[author_of])
        if order and diversity:
            last = vectors[order[-RECENT_FOR_DIVERSITY:]]
            adjusted = adjusted - diversity * np.clip(vectors @ last.T, 0, None).max(axis=1)
        adjusted = np.where(eligible, adjusted, -np.inf)
        pick = int(np.argmax(adjusted))
        order.append(pick)
        available[pick] = False
        placed_by_author[author_of[pick]] += 1
        in_net_placed += int(in_network[pick])
    return [cands[i] for i in order]
