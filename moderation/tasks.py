"""Moderation beat tasks."""

from __future__ import annotations

from celery import shared_task

from .services import takedowns_expire


@shared_task(name="moderation.tasks.moderation_expire")
def moderation_expire() -> int:
    """Ends takedowns whose duration is over (a system `reverse_takedown` each)."""
    return takedowns_expire()
