"""feed.ranking.rerank against a plain reading of its rules (issue #31 made it incremental).

The reference below recomputes everything at every position, as the module docstring states
the rules: eligibility (not placed, author under the cap in the window), the in-network share,
the author decay and the diversity penalty over the last few placed posts. The incremental
pass must place exactly the same posts in exactly the same order for any input."""

from __future__ import annotations

from collections import Counter, deque
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from feed.embeddings import DIM
from feed.ranking.rerank import RECENT_FOR_DIVERSITY, rerank
from feed.ranking.sources import Candidate


def reference(cands, *, size, cap, window, decay, diversity, in_network_share):
    placed: list[int] = []
    vectors = [c.embedding for c in cands]
    top = max(max(c.score for c in cands), 1e-12)
    use_diversity = bool(diversity) and any(v is not None for v in vectors)
    in_net = 0
    for _ in range(min(size, len(cands))):
        last = [cands[i].author_id for i in placed[-(window - 1) :]] if window > 1 else []
        counts = Counter(last)
        eligible = [
            i for i in range(len(cands)) if i not in placed and counts[cands[i].author_id] < cap
        ]
        if not eligible:
            break
        if in_net < in_network_share * (len(placed) + 1):
            wanted = [i for i in eligible if cands[i].in_network]
            if wanted:
                eligible = wanted

        def adjusted(i):
            by_author = sum(1 for j in placed if cands[j].author_id == cands[i].author_id)
            value = cands[i].score / top * decay**by_author
            if use_diversity and placed:
                sims = []
                for j in placed[-RECENT_FOR_DIVERSITY:]:
                    a = vectors[i] if vectors[i] is not None else np.zeros(DIM, np.float32)
                    b = vectors[j] if vectors[j] is not None else np.zeros(DIM, np.float32)
                    sims.append(max(float(a @ b), 0.0))
                value -= diversity * max(sims)
            return value

        # The first of equals wins, as numpy's argmax does.
        best = max(eligible, key=lambda i: (adjusted(i), -i))
        placed.append(best)
        in_net += int(cands[best].in_network)
    return placed


def _candidates(seed: int, n: int, authors: int, with_vectors: bool) -> list[Candidate]:
    rng = np.random.default_rng(seed)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    out = []
    for i in range(n):
        vector = None
        if with_vectors and rng.random() < 0.8:
            raw = rng.normal(size=DIM).astype(np.float32)
            vector = raw / np.linalg.norm(raw)
        out.append(
            Candidate(
                id=i,
                author_id=f"a{int(rng.integers(authors))}",
                created_at=now,
                allow_remix=True,
                cameo_ids=[],
                embedding=vector,
                reasons={"latest"},
                in_network=bool(rng.random() < 0.3),
                # Few distinct values, so ties between candidates happen.
                score=float(rng.integers(1, 6)) / 5,
            )
        )
    return out


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    authors=st.integers(1, 8),
    size=st.integers(1, 45),
    cap=st.integers(1, 3),
    window=st.integers(1, 6),
    decay=st.sampled_from([1.0, 0.8, 0.5]),
    diversity=st.sampled_from([0.0, 0.3]),
    share=st.sampled_from([0.0, 0.25, 1.0]),
    with_vectors=st.booleans(),
)
def test_rerank_places_what_the_rules_say(
    seed, n, authors, size, cap, window, decay, diversity, share, with_vectors
):
    cands = _candidates(seed, n, authors, with_vectors)
    rules = dict(
        size=size,
        cap=cap,
        window=window,
        decay=decay,
        diversity=diversity,
        in_network_share=share,
    )
    got = [c.id for c in rerank(cands, **rules)]
    assert got == reference(cands, **rules)


def test_rerank_cap_holds_in_every_window():
    """Five posts by one author and five by others, cap 1 in any 3 in a row: the one author
    never appears twice within three consecutive places, and the order ends when only they
    are left."""
    now = datetime(2026, 12, 7, tzinfo=UTC)
    cands = [
        Candidate(
            id=i,
            author_id="big" if i < 5 else f"other{i}",
            created_at=now,
            allow_remix=True,
            cameo_ids=[],
            embedding=None,
            reasons={"latest"},
            score=1.0 if i < 5 else 0.5,
        )
        for i in range(10)
    ]
    got = [c.author_id for c in rerank(cands, size=10, cap=1, window=3, decay=1.0,
                                       diversity=0.0, in_network_share=0.0)]  # fmt: skip
    assert got == ["big", "other5", "other6", "big", "other7", "other8", "big", "other9"]
    window = deque(maxlen=3)
    for author in got:
        window.append(author)
        assert list(window).count("big") <= 1
