"""Account upkeep run by beat."""

from __future__ import annotations

from celery import shared_task

from .idempotency import purge_expired


@shared_task(name="accounts.tasks.idempotency_purge")
def idempotency_purge() -> int:
    """Deletes idempotency records past their keeping time (accounts.idempotency.KEEP_FOR)."""
    return purge_expired()
