"""Fixtures for generation tests live in tests/conftest.py (shared with feed and remix)."""
