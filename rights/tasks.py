"""Rights tasks: the semantic IP check for `GET /rights/check` (runs where MiniLM lives)."""

from __future__ import annotations

import json

from celery import shared_task

from config.core.redis import redis_client

from .catalogue import ip_decision

REPLY_TTL_SECONDS = 60


@shared_task(name="rights.tasks.ip_semantic_check", acks_late=False)
def ip_semantic_check(prompt: str, reply_key: str) -> None:
    """Pushes `[[asset id, cosine], ...]`, the semantic matches of `prompt`, onto the Redis
    list `reply_key`, where the web request that asked is waiting (BLPOP). Alias matches are
    the web tier's own; nobody's membership applies here (the web request filters its own)."""
    decision = ip_decision(user=None, prompt=prompt, semantic=True, alias=False)
    answer = json.dumps([[str(m.asset.pk), m.score] for m in decision.matches])
    client = redis_client()
    client.rpush(reply_key, answer)
    client.expire(reply_key, REPLY_TTL_SECONDS)
