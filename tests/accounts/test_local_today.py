"""accounts.models.local_today: timezone.localdate() worked out once a day, exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts import models
from accounts.models import local_today


def _at(monkeypatch, instant: datetime) -> None:
    """Both clocks local_today reads, set to `instant`."""
    monkeypatch.setattr(models.time, "time", instant.timestamp)
    monkeypatch.setattr(timezone, "now", lambda: instant)


@pytest.fixture(autouse=True)
def _forget(monkeypatch):
    monkeypatch.setattr(models, "_today", (None, date.min, float("-inf")))


def test_it_is_localdate_and_the_day_ends_at_midnight(monkeypatch):
    _at(monkeypatch, datetime(2026, 3, 7, 23, 59, 59, 999_000, tzinfo=UTC))
    assert local_today() == date(2026, 3, 7) == timezone.localdate()
    _at(monkeypatch, datetime(2026, 3, 8, 0, 0, 0, tzinfo=UTC))
    assert local_today() == date(2026, 3, 8)


@override_settings(TIME_ZONE="America/New_York")
def test_a_zone_s_midnight_across_a_change_of_offset(monkeypatch):
    # New York, 2026-03-08: clocks go from 02:00 to 03:00; the day before starts at 05:00 UTC.
    _at(monkeypatch, datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC))
    assert local_today() == date(2026, 3, 7)
    _at(monkeypatch, datetime(2026, 3, 8, 5, 0, 0, tzinfo=UTC))
    assert local_today() == date(2026, 3, 8)
    # The next day starts at 04:00 UTC (UTC-4 now), not 05:00.
    _at(monkeypatch, datetime(2026, 3, 9, 3, 59, 59, tzinfo=UTC))
    assert local_today() == date(2026, 3, 8)
    _at(monkeypatch, datetime(2026, 3, 9, 4, 0, 0, tzinfo=UTC))
    assert local_today() == date(2026, 3, 9) == timezone.localdate()


def test_a_changed_time_zone_is_worked_out_anew(monkeypatch):
    _at(monkeypatch, datetime(2026, 6, 1, 22, 30, tzinfo=UTC))
    assert local_today() == date(2026, 6, 1)
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        assert local_today() == date(2026, 6, 2)
    assert local_today() == date(2026, 6, 1)


def test_a_teen_turns_adult_on_the_birthday(make_user, monkeypatch, settings):
    settings.RIFF_ADULT_AGE = 18
    user = make_user(username="nearly", birth_date=date(2008, 6, 2))
    _at(monkeypatch, datetime(2026, 6, 1, 23, 59, tzinfo=UTC))
    assert user.is_teen
    _at(monkeypatch, datetime(2026, 6, 2, 0, 0, tzinfo=UTC))
    assert not user.is_teen
