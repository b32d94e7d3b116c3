"""The shipped checkpoint: generates a held-out prompt in the colour it asks for."""

from __future__ import annotations

import pytest

from generation.engine.analysis import ClipAnalysis
from generation.engine.interface import DEFAULT_WEIGHTS, GenerationRequest, get_engine
from generation.engine.world import HELD_OUT_PAIRS

pytestmark = pytest.mark.skipif(
    not DEFAULT_WEIGHTS.exists(),
    reason=f"no shipped weights at {DEFAULT_WEIGHTS} yet "
    "(manage.py train_engine, then manage.py train_engine --export)",
)


def test_shipped_checkpoint_generates_the_requested_colour(minilm):
    assert ("purple", "triangle") in HELD_OUT_PAIRS  # never seen in training
    engine = get_engine("riff-world", steps=12, method="euler")
    prompts = [
        "a large purple triangle bounces to the right",
        "an orange ball falls onto the floor",
    ]
    clips = engine.generate([GenerationRequest(p, seed=1) for p in prompts])
    assert ClipAnalysis(clips[0].frames).dominant_color() == "purple"
    assert ClipAnalysis(clips[1].frames).dominant_color() == "orange"
    assert clips[0].frames.shape == (16, 32, 32, 3)
    assert DEFAULT_WEIGHTS.stat().st_size < 30 * 1024 * 1024
