"""Engine tests need neither the database nor Redis nor media storage.

The project-wide autouse fixtures (tests/conftest.py) flush Redis and point MEDIA_ROOT at a
temporary directory; the engine touches neither, so they are replaced here by no-ops. That
lets these tests run with or without pytest-django (`-p no:django`).
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _clean_redis():
    yield


@pytest.fixture(autouse=True)
def _media_root():
    yield


@pytest.fixture(autouse=True)
def _deterministic_torch():
    # one thread: these models are tiny, and the CI box is shared (oversubscribed threads
    # spin-wait and make small ops 10x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_cfg():
    from generation.engine.model import CONFIGS

    return CONFIGS["tiny"]


@pytest.fixture(scope="session")
def hash_encoder():
    from generation.engine.text import TextEncoder

    return TextEncoder("hash", max_tokens=16)


@pytest.fixture(scope="session")
def minilm():
    """The MiniLM encoder, loaded once per test session (offline, from the wheel)."""
    from generation.engine.text import TextEncoder

    return TextEncoder("minilm", max_tokens=32)
