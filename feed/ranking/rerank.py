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

from collections import Counter, deque

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
    """The greedy pass. Per placed post it does O(n) array work: the similarity of every
    candidate to the new post is computed once (a mat-vec) and kept in a ring of the last
    RECENT_FOR_DIVERSITY rows, the author decay is a running per-candidate multiplier, and
    which authors are at the cap is a per-author flag kept as the window moves (a set
    membership test of every candidate per position cost more than the rest of a position's
    work without diversity)."""
    n = len(cands)
    if n == 0:
        return []
    scores = np.array([c.score for c in cands], dtype=np.float64)
    scores = scores / max(scores.max(), 1e-12)
    with_vec = [i for i, c in enumerate(cands) if c.embedding is not None]
    use_diversity = bool(diversity) and bool(with_vec)
    if use_diversity:
        vectors = np.zeros((n, DIM), dtype=np.float32)
        vectors[with_vec] = np.stack([cands[i].embedding for i in with_vec])
        ring = np.zeros((RECENT_FOR_DIVERSITY, n), dtype=np.float64)
    authors = [c.author_id for c in cands]
    author_index = {a: k for k, a in enumerate(dict.fromkeys(authors))}
    author_of = np.array([author_index[a] for a in authors])
    capped = np.zeros(len(author_index), dtype=bool)  # authors at the cap in the window
    in_network = np.array([c.in_network for c in cands])
    author_mult = np.ones(n, dtype=np.float64)
    available = np.ones(n, dtype=bool)
    recent: deque[int] = deque()  # authors of the last `window - 1` placed posts
    in_window = Counter()
    order: list[int] = []
    in_net_placed = 0
    for _ in range(min(size, n)):
        eligible = available & ~capped[author_of]
        if not eligible.any():
            break
        if in_net_placed < in_network_share * (len(order) + 1):
            wanted = eligible & in_network
            if wanted.any():
                eligible = wanted
        adjusted = scores * author_mult
        if use_diversity and order:
            adjusted = adjusted - diversity * ring[: min(len(order), RECENT_FOR_DIVERSITY)].max(0)
        pick = int(np.argmax(np.where(eligible, adjusted, -np.inf)))
        order.append(pick)
        available[pick] = False
        a = int(author_of[pick])
        author_mult[author_of == a] *= decay
        in_net_placed += int(in_network[pick])
        if use_diversity:
            ring[(len(order) - 1) % RECENT_FOR_DIVERSITY] = np.clip(
                vectors @ vectors[pick], 0, None
            )
        if window > 1:
            recent.append(a)
            in_window[a] += 1
            if len(recent) > window - 1:
                old = recent.popleft()
                in_window[old] -= 1
                if not in_window[old]:
                    del in_window[old]
                capped[old] = in_window[old] >= cap
            capped[a] = in_window[a] >= cap
    return [cands[i] for i in order]
