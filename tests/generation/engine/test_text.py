from __future__ import annotations

import torch

from generation.engine.text import TextEncoder


def test_hash_encoder_shapes_cache_and_null(tmp_path):
    enc = TextEncoder("hash", max_tokens=6, cache_size=2, disk_cache=tmp_path / "c.pt")
    toks, mask, pooled = enc.batch(["a red ball bounces to the right today", "", "blue"])
    assert toks.shape == (3, 6, 384) and pooled.shape == (3, 384)
    assert mask.sum(1).tolist() == [6, 0, 1]
    assert torch.count_nonzero(pooled[1]) == 0  # the empty prompt is the null prompt
    assert torch.allclose(pooled[0].norm(), torch.tensor(1.0), atol=1e-4)
    enc.embed(["x", "y", "z"])
    assert len(enc._lru) == 2  # LRU bound
    enc.save()
    again = TextEncoder("hash", max_tokens=6, disk_cache=tmp_path / "c.pt")
    assert "blue" in again._disk
    torch.testing.assert_close(
        again.embed(["blue"])[0][1], enc.embed(["blue"])[0][1], atol=1e-3, rtol=1e-3
    )


def test_minilm_encoder_offline(minilm):
    toks, mask, pooled = minilm.batch(
        [
            "a red ball bounces to the right",
            "a red ball bounces to the left",
            "three white squares slide behind a grey wall",
        ]
    )
    assert toks.shape[0] == 3 and toks.shape[2] == 384 and pooled.shape == (3, 384)
    assert mask[0].sum() == 10  # [CLS] a red ball bounce ##s to the right [SEP]
    sim = pooled @ pooled.T
    assert sim[0, 1] > sim[0, 2]
