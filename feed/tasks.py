"""Feed tasks: embeddings on workers (torch stays out of the web tier), partition upkeep."""

from __future__ import annotations

from celery import shared_task
from django.db import connection

from .models import FeedPreference, Post


@shared_task(name="feed.tasks.post_embed", acks_late=True, ignore_result=True)
def post_embed(post_id: str) -> bool:
    """Stores the MiniLM embedding of the post's prompt and caption. Idempotent."""
    post = Post.objects.select_related("video__generation").filter(pk=post_id).first()
    if post is None or post.embedding:
        return False
    from .embeddings import embed_texts, to_bytes

    text = post.video.generation.prompt
    if post.caption:
        text = f"{text}. {post.caption}"
    Post.objects.filter(pk=post.pk).update(embedding=to_bytes(embed_texts([text])[0]))
    return True


@shared_task(name="feed.tasks.preference_embed", acks_late=True, ignore_result=True)
def preference_embed(user_id: str) -> bool:
    """Embeds the user's steering text; a newer text written meanwhile is left to its own task."""
    pref = FeedPreference.objects.filter(user_id=user_id).first()
    if pref is None or not pref.steer:
        return False
    from .embeddings import embed_texts, to_bytes

    steer = pref.steer
    vector = to_bytes(embed_texts([steer])[0])
    updated = FeedPreference.objects.filter(pk=pref.pk, steer=steer).update(steer_embedding=vector)
    if updated:
        # The steering applies from the next For You session on, ranked afresh.
        from .ranking.snapshot import drop_quietly

        drop_quietly(user_id=user_id)
    return True


@shared_task(name="feed.tasks.feed_order_refresh", ignore_result=True)
def feed_order_refresh(user_id: str) -> int:
    """Re-ranks a viewer's For You order for their next session (feed.ranking.snapshot).
    Returns the order's length; 0 for a viewer who is gone."""
    from accounts.models import User

    from .ranking import build_order
    from .ranking.snapshot import snapshot_save

    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return 0
    order = build_order(user)
    snapshot_save(user_id=user.pk, entries=order.entries, facts=order.facts)
    return len(order.entries)


@shared_task(name="feed.tasks.post_fanout", acks_late=True, ignore_result=True)
def post_fanout(post_id: str) -> int:
    """Fan-out for authors with many followers (feed.services._enqueue_fanout). Idempotent:
    ZADD of the same member is a no-op."""
    from accounts.models import Follow

    from . import inbox

    post = Post.objects.filter(pk=post_id, state="live").first()
    if post is None:
        return 0
    follower_ids = Follow.objects.filter(followee_id=post.author_id).values_list(
        "follower_id", flat=True
    )
    return inbox.fanout(
        post_id=post.pk,
        author_id=post.author_id,
        created_at=post.created_at,
        follower_ids=list(follower_ids),
    )


@shared_task(name="feed.tasks.feed_partitions_ensure", ignore_result=True)
def feed_partitions_ensure() -> list[str]:
    from .partitions import ensure_partitions

    return ensure_partitions(connection)


@shared_task(name="feed.tasks.feed_trending_refresh", ignore_result=True, expires=240)
def feed_trending_refresh() -> int:
    """Recomputes the global trending list For You reads (beat, every few minutes)."""
    from .ranking.sources import trending_refresh

    return len(trending_refresh())


@shared_task(name="feed.tasks.feed_cold_start_refresh", ignore_result=True, expires=60)
def feed_cold_start_refresh() -> int:
    """Recomputes the shared cold-start list (beat, every minute) so no viewer pays for it."""
    from .ranking.sources import cold_start_refresh

    return len(cold_start_refresh())


@shared_task(name="feed.tasks.feed_embeddings_sweep", ignore_result=True)
def feed_embeddings_sweep() -> int:
    """Beat: embeds recent live posts and steering texts still without an embedding (their
    task's message was lost, e.g. the broker was down at publish). Bounded per run."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from config.core.redis import publish

    now = timezone.now()
    settled = now - timedelta(minutes=5)
    posts = Post.objects.filter(
        state="live",
        embedding__isnull=True,
        created_at__lt=settled,
        created_at__gt=now - timedelta(days=settings.RIFF_FEED_CANDIDATE_DAYS),
    ).values_list("pk", flat=True)[:500]
    prefs = (
        FeedPreference.objects.filter(steer_embedding__isnull=True, updated_at__lt=settled)
        .exclude(steer="")
        .values_list("user_id", flat=True)[:500]
    )
    sent = 0
    for post_id in posts:
        publish(post_embed, str(post_id))
        sent += 1
    for user_id in prefs:
        publish(preference_embed, str(user_id))
        sent += 1
    return sent
