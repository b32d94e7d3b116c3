"""Writes for posts: publish, delete, likes, comments, feed events, moderation's reversible
takedowns (posts, comments), and the hooks lower layers call (video removed / taken down /
restored, cameo revoked, account deleted, block)."""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import redis
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Follow, User
from accounts.services import is_blocked_between, notification_create, user_suspension_check
from cameos.consent import cameo_can_use
from config.core.errors import Conflict, Forbidden, NotFound
from config.core.redis import degraded, enqueue_after_commit, redis_client
from config.core.states import StateMachine
from generation.models import Appearance, Generation, Video, VideoState
from generation.services.videos import video_restore, video_takedown, video_transition

from . import inbox
from .models import (
    COUNTER_SHARDS,
    Comment,
    EventKind,
    FeedEvent,
    FeedPreference,
    Like,
    Post,
    PostState,
)
from .postcache import likes_changed, posts_changed
from .ranking.snapshot import drop_quietly as order_drop
from .serving import serve_id_parse

logger = logging.getLogger(__name__)

COUNTER_FIELDS = ("likes", "comments", "remixes", "views", "completes", "see_less")


# --- counters ---------------------------------------------------------------------------------


def counters_add(*, field: str, deltas: dict) -> None:
    """Adds each `deltas[post_id]` to one random shard of that post's `field`, in one upsert.

    Runs in the caller's transaction, so a count moves exactly when the row it counts does.
    Concurrent writers land on different shards and don't queue on one row lock; shards appear
    lazily on first touch.
    """
    if field not in COUNTER_FIELDS:
        raise ValueError(field)
    deltas = {k: v for k, v in deltas.items() if v}
    if not deltas:
        return
    rows, params = [], []
    placeholders = "(" + ", ".join(["%s"] * (2 + len(COUNTER_FIELDS))) + ")"
    for post_id, delta in deltas.items():
        rows.append(placeholders)
        params += [post_id, random.randrange(COUNTER_SHARDS)]
        params += [delta if name == field else 0 for name in COUNTER_FIELDS]
    updates = ", ".join(f"{n} = feed_postcounter.{n} + EXCLUDED.{n}" for n in COUNTER_FIELDS)
    # The cards of these posts hold their counts (feed.postcache).
    posts_changed(deltas.keys())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO feed_postcounter (post_id, shard, {', '.join(COUNTER_FIELDS)}) "  # noqa: S608
            f"VALUES {', '.join(rows)} ON CONFLICT (post_id, shard) DO UPDATE SET {updates}",
            params,
        )


def counter_add(*, post_id, field: str, delta: int) -> None:
    counters_add(field=field, deltas={post_id: delta})


# --- posts ------------------------------------------------------------------------------------


def _lineage_parent(*, user: User, generation: Generation) -> Post | None:
    """The post a remix draft riffs on, re-checked at publish (it may have changed since)."""
    if generation.remix_of_id is None:
        return None
    parent = Post.objects.select_for_update().filter(pk=generation.remix_of_id).first()
    if parent is None:
        # The parent's author deleted their account: the remix becomes a root of its own.
        return None
    if (
        parent.state != PostState.LIVE
        or not parent.allow_remix
        or is_blocked_between(user, parent.author)
    ):
        raise Forbidden("The original no longer allows remixes.", code="remix_not_allowed")
    return parent


@transaction.atomic
def post_publish(
    *, user: User, video_id, caption: str = "", allow_remix: bool = True
) -> tuple[Post, bool]:
    """Publishes an own draft; returns (post, created). Publishing the same video again returns
    the existing post (idempotent). Consent is re-checked for every cameo in the video. A
    suspended user is refused (403 `account_suspended`); a taken-down draft is not a draft
    anyone may publish (404, as for a removed one)."""
    user_suspension_check(user=user)
    video = (
        Video.objects.select_for_update()
        .select_related("generation")
        .filter(pk=video_id, owner=user)
        .first()
    )
    if video is None or video.state in (VideoState.REMOVED, VideoState.TAKEN_DOWN, VideoState.HELD):
        raise NotFound("No such draft.")
    if video.state == VideoState.POSTED:
        existing = Post.objects.filter(video=video).first()
        if existing is not None and existing.state == PostState.LIVE:
            return existing, False
        raise NotFound("No such draft.")
    appearances = list(Appearance.objects.filter(video=video).select_related("cameo"))
    for appearance in appearances:
        if not cameo_can_use(user, appearance.cameo).allowed:
            raise Forbidden(
                f"You may no longer use @{appearance.cameo.handle}.",
                code="cameo_permission_denied",
                fields={"cameos": [str(appearance.cameo_id)]},
            )
    parent = _lineage_parent(user=user, generation=video.generation)
    post = Post(
        author=user,
        video=video,
        caption=caption,
        allow_remix=allow_remix,
        cameo_ids=[str(a.cameo_id) for a in appearances],
        serve_id=video.generation.serve_id,
    )
    if parent is not None:
        post.remix_of = parent
        post.root_id = parent.root_id
        post.depth = parent.depth + 1
    else:
        post.root_id = post.id
    post.save()
    video_transition(video=video, to=VideoState.POSTED)
    if parent is not None:
        counter_add(post_id=parent.pk, field="remixes", delta=1)
        if parent.author_id != user.pk:
            notification_create(
                recipient=parent.author,
                kind="post.remixed",
                actor=user,
                data={"post_id": str(parent.pk), "remix_id": str(post.pk)},
            )
    _enqueue_fanout(post)
    _enqueue_embedding(post)
    return post, True


INLINE_FANOUT_MAX = 1000


def _enqueue_fanout(post: Post) -> None:
    """Pushes the post into live follower inboxes after commit: inline for most authors, on a
    worker for big accounts so publishing stays fast whatever the follower count."""
    followers = Follow.objects.filter(followee_id=post.author_id)
    if followers.count() > INLINE_FANOUT_MAX:
        from .tasks import post_fanout

        enqueue_after_commit(post_fanout, str(post.pk), component="feed_fanout")
        return
    follower_ids = list(followers.values_list("follower_id", flat=True))
    transaction.on_commit(
        lambda: inbox.fanout(
            post_id=post.pk,
            author_id=post.author_id,
            created_at=post.created_at,
            follower_ids=follower_ids,
        )
    )


def _enqueue_embedding(post: Post) -> None:
    """The prompt embedding (diversity, steering) is computed on a worker (torch lives there);
    feed.tasks.feed_embeddings_sweep catches up on any whose message was lost."""
    from .tasks import post_embed

    enqueue_after_commit(post_embed, str(post.pk), component="feed_embedding")


P = PostState
POST_STATES = StateMachine(
    "post",
    {
        P.LIVE: {P.TAKEN_DOWN, P.REMOVED},
        # Moderation's takedown is reversible; a removal (its video removed for good, the
        # account deleted) still reaches a taken-down post.
        P.TAKEN_DOWN: {P.LIVE, P.REMOVED},
        P.REMOVED: set(),
    },
    field="state",
)


def post_transition(*, post: Post, to: str, reason: str = "") -> Post:
    """The only way a post's state changes. The caller holds the row lock."""
    POST_STATES.check(post.state, to)
    fields = ["state"]
    if to == P.REMOVED:
        post.removed_reason = reason[:200]
        fields.append("removed_reason")
    elif to == P.TAKEN_DOWN:
        post.takedown_reason = reason[:200]
        post.taken_down_at = timezone.now()
        fields += ["takedown_reason", "taken_down_at"]
    elif post.state == P.TAKEN_DOWN:  # restored
        post.takedown_reason = ""
        post.taken_down_at = None
        fields += ["takedown_reason", "taken_down_at"]
    post.state = to
    post.save(update_fields=fields)
    return post


def _remix_counted(post: Post, delta: int) -> None:
    """A parent's remix count counts its live remixes: it moves whenever one leaves or comes
    back."""
    if post.remix_of_id is not None:
        counter_add(post_id=post.remix_of_id, field="remixes", delta=delta)


def _post_remove(post: Post, reason: str) -> bool:
    """Takes a live or taken-down post out for good; keeps the parent's remix count exact (a
    taken-down post was already uncounted)."""
    if post.state == P.REMOVED:
        return False
    was_live = post.state == P.LIVE
    post_transition(post=post, to=P.REMOVED, reason=reason)
    if was_live:
        _remix_counted(post, -1)
    return True


def _post_hide(post: Post, reason: str) -> bool:
    """live -> taken_down (the caller holds the row lock); False when it was not live."""
    if post.state != P.LIVE:
        return False
    post_transition(post=post, to=P.TAKEN_DOWN, reason=reason)
    _remix_counted(post, -1)
    return True


def _post_show(post: Post) -> bool:
    """taken_down -> live (the caller holds the row lock); False when it was not taken down."""
    if post.state != P.TAKEN_DOWN:
        return False
    post_transition(post=post, to=P.LIVE)
    _remix_counted(post, +1)
    return True


def _locked_post_and_video(post: Post) -> tuple[Post, Video]:
    """Locks the video row, then the post row: the order video_takedown / video_restore /
    video_remove take them in (their hooks lock the post), so no two of them deadlock."""
    video = Video.objects.select_for_update().get(pk=post.video_id)
    return Post.objects.select_for_update().get(pk=post.pk), video


@transaction.atomic
def post_takedown(*, post: Post, reason: str) -> Post:
    """Moderation takes a post down, reversibly, with its video: the post leaves every list
    (feeds, inboxes and For You snapshots are re-checked, remixes / lineage / tree, the
    author's posts), `/posts/{id}` and its video and content answer 404 to everyone, the
    parent's remix count drops by one. Likes, comments and counters stay for the restore; the
    files are kept.

    Idempotent: a post already taken down is returned as it is. A removed post: 409
    `invalid_transition`.
    """
    locked, video = _locked_post_and_video(post)
    if locked.state == P.REMOVED:
        POST_STATES.check(locked.state, P.TAKEN_DOWN)
    _post_hide(locked, reason)
    # Its `video.taken_down` hook finds the post already down and leaves it be.
    video_takedown(video=video, reason=reason)
    post.state = locked.state
    return locked


@transaction.atomic
def post_restore(*, post: Post) -> Post:
    """Reverses `post_takedown` (or `video_takedown` of its video): the video is posted again
    and the post is back everywhere, with the same counts.

    Idempotent: a live post is returned as it is. A post removed for good meanwhile (its video
    removed by a cameo owner's consent withdrawal, the account deleted): 409
    `invalid_transition`.
    """
    locked, video = _locked_post_and_video(post)
    if locked.state == P.LIVE:
        return locked
    if locked.state == P.REMOVED or video.state == VideoState.REMOVED:
        raise Conflict(
            "This post was removed for good and can't be restored.", code="invalid_transition"
        )
    _post_show(locked)
    # Its `video.restored` hook finds the post already live.
    video_restore(video=video)
    post.state = locked.state
    return locked


@transaction.atomic
def post_delete(*, user: User, post: Post) -> None:
    """The author deletes a post: it leaves every list and its video is removed."""
    from generation.services import video_remove

    # Video row first, then the post: the order a takedown locks them in.
    Video.objects.select_for_update().filter(pk=post.video_id).first()
    locked = Post.objects.select_for_update().filter(pk=post.pk, author=user).first()
    if locked is None or locked.state != PostState.LIVE:
        raise NotFound("No such post.")
    _post_remove(locked, "deleted by its author")
    video_remove(video=locked.video, reason="post deleted by its author")


# --- likes and comments -----------------------------------------------------------------------


@transaction.atomic
def like_set(*, user: User, post: Post, liked: bool) -> bool:
    """Idempotent both ways; returns whether anything changed."""
    if liked:
        try:
            with transaction.atomic():
                Like.objects.create(post=post, user=user)
        except IntegrityError:
            return False
        # The post's count changes, so its cached card goes, and the like is read with it; the
        # liker's likes stamp goes too (For You's orders keep their likes under it:
        # feed.postcache, ranking.snapshot).
        counter_add(post_id=post.pk, field="likes", delta=1)
        likes_changed(user.pk)
        return True
    deleted, _ = Like.objects.filter(post=post, user=user).delete()
    if deleted:
        counter_add(post_id=post.pk, field="likes", delta=-1)
        likes_changed(user.pk)
    return bool(deleted)


@transaction.atomic
def comment_create(*, user: User, post: Post, body: str) -> Comment:
    """A suspended user is refused (403 `account_suspended`)."""
    user_suspension_check(user=user)
    comment = Comment.objects.create(post=post, author=user, body=body)
    counter_add(post_id=post.pk, field="comments", delta=1)
    if post.author_id != user.pk:
        notification_create(
            recipient=post.author,
            kind="post.commented",
            actor=user,
            data={"post_id": str(post.pk), "comment_id": str(comment.pk)},
        )
    return comment


@transaction.atomic
def comment_takedown(*, comment: Comment, reason: str) -> Comment:
    """Moderation hides a comment, reversibly: it leaves `/posts/{id}/comments` for everyone,
    its author included (showing it to its author alone would be a shadow ban: they'd think
    it is public, and moderation tells them instead), and the post's comment_count drops by
    one, so the count always matches the list. Idempotent (the first reason stands)."""
    locked = Comment.objects.select_for_update().get(pk=comment.pk)
    if locked.hidden_at is None:
        locked.hidden_at = timezone.now()
        locked.hidden_reason = reason[:200]
        locked.save(update_fields=["hidden_at", "hidden_reason"])
        counter_add(post_id=locked.post_id, field="comments", delta=-1)
    comment.hidden_at, comment.hidden_reason = locked.hidden_at, locked.hidden_reason
    return locked


@transaction.atomic
def comment_restore(*, comment: Comment) -> Comment:
    """Reverses `comment_takedown`: back in the list and the count. Idempotent."""
    locked = Comment.objects.select_for_update().get(pk=comment.pk)
    if locked.hidden_at is not None:
        locked.hidden_at = None
        locked.hidden_reason = ""
        locked.save(update_fields=["hidden_at", "hidden_reason"])
        counter_add(post_id=locked.post_id, field="comments", delta=1)
    comment.hidden_at, comment.hidden_reason = locked.hidden_at, locked.hidden_reason
    return locked


# --- feed events ------------------------------------------------------------------------------

EVENT_DEDUPE_TTL = 2 * 24 * 3600
# Event kinds that move a post counter (once per serve), and the counter they move.
COUNTED_EVENTS = {
    EventKind.IMPRESSION: "views",
    EventKind.COMPLETED: "completes",
    EventKind.SEE_LESS: "see_less",
}


def _dedupe_key(row: FeedEvent) -> str:
    # impressions keep their historical dedupe key; other kinds are keyed by kind too
    kind = "" if row.kind == EventKind.IMPRESSION else f":{row.kind}"
    return f"{row.serve_id}:{row.post_id}{kind}"


def _first_counted(user: User, rows: list[FeedEvent]) -> list[bool]:
    """Per counted event (inserted in this transaction), whether it is the first arrival of its
    serve_id, post and kind: SET NX in Redis, or the event table itself when Redis is down."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        for row in rows:
            pipe.set(f"riff:imp:{user.pk}:{_dedupe_key(row)}", 1, nx=True, ex=EVENT_DEDUPE_TTL)
        return [bool(ok) for ok in pipe.execute()]
    except redis.RedisError:
        degraded("feed_event_dedupe", f"(for {user.pk}; checked in the database)")
        return _first_counted_in_db(user, rows)


def _first_counted_in_db(user: User, rows: list[FeedEvent]) -> list[bool]:
    """An event is first unless an earlier row of the viewer has its serve_id, post and kind
    within the dedupe window. A lock per viewer, held to commit, keeps two concurrent batches
    from both counting one event (the second one's query sees the first one's rows). The one
    gap: a replay that straddles Redis' return is counted again, as Redis never saw the first.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"riff:imp:{user.pk}"]
        )
    since = min(r.created_at for r in rows) - timedelta(seconds=EVENT_DEDUPE_TTL)
    earlier = FeedEvent.objects.filter(
        user_id=user.pk,
        created_at__gte=since,
        post_id__in={r.post_id for r in rows},
        kind__in={r.kind for r in rows},
        serve_id__in={r.serve_id for r in rows},
    ).exclude(pk__in=[r.pk for r in rows])
    seen = {
        (sid, str(pid), kind)
        for sid, pid, kind in earlier.values_list("serve_id", "post_id", "kind")
    }
    first = []
    for r in rows:
        key = (r.serve_id, str(r.post_id), r.kind)
        first.append(key not in seen)
        seen.add(key)  # a batch may carry the same event twice
    return first


@transaction.atomic
def events_record(*, user: User, events: list[dict[str, Any]]) -> tuple[int, int]:
    """Stores a batch of feed events; returns (accepted, rejected).

    An event is rejected when its serve_id was not served to this user or its post doesn't
    exist. Each impression counts once towards the post's views, each completion and see-less
    once towards its counter, however often they are replayed.
    """
    post_ids = {e["post_id"] for e in events}
    existing = set(Post.objects.filter(pk__in=post_ids).values_list("pk", flat=True))
    now = timezone.now()
    rows: list[FeedEvent] = []
    counted: list[FeedEvent] = []
    for e in events:
        if e["post_id"] not in existing or serve_id_parse(e["serve_id"], user_id=user.pk) is None:
            continue
        row = FeedEvent(
            created_at=now,
            user_id=user.pk,
            post_id=e["post_id"],
            serve_id=e["serve_id"],
            kind=EventKind[e["event"].upper()].value,
            watched_ms=e.get("watched_ms"),
        )
        rows.append(row)
        if row.kind in COUNTED_EVENTS:
            counted.append(row)
    FeedEvent.objects.bulk_create(rows)
    if counted:
        first = _first_counted(user, counted)
        for kind, field in COUNTED_EVENTS.items():
            deltas = Counter(
                r.post_id for r, ok in zip(counted, first, strict=True) if ok and r.kind == kind
            )
            counters_add(field=field, deltas=dict(deltas))
    if any(r.kind == EventKind.SEE_LESS for r in rows):
        # "See less" reshapes the viewer's ranking: their next For You session ranks afresh.
        transaction.on_commit(lambda: order_drop(user_id=user.pk))
    return len(rows), len(events) - len(rows)


# --- preferences ------------------------------------------------------------------------------


@transaction.atomic
def preferences_set(*, user: User, steer: str, personalized: bool) -> FeedPreference:
    pref, _ = FeedPreference.objects.select_for_update().get_or_create(user=user)
    changed = pref.steer != steer
    pref.steer = steer
    pref.personalized = personalized
    if changed:
        pref.steer_embedding = None
    pref.updated_at = timezone.now()
    pref.save()
    if changed and steer:
        from .tasks import preference_embed

        enqueue_after_commit(preference_embed, str(user.pk), component="feed_embedding")
    # The next For You session is ranked with the new preferences (feed.ranking.snapshot).
    transaction.on_commit(lambda: order_drop(user_id=user.pk))
    return pref


# --- hooks called by lower layers (settings name them) ----------------------------------------


def on_video_removed(*, video: Video) -> None:
    """`video.removed` hook: a removed video takes its post (live or taken down) with it."""
    post = Post.objects.select_for_update().filter(video_id=video.pk).first()
    if post is not None:
        _post_remove(post, video.removed_reason or "video removed")


def on_video_taken_down(*, video: Video) -> None:
    """`video.taken_down` hook: the post of a taken-down video is taken down with it."""
    post = Post.objects.select_for_update().filter(video_id=video.pk).first()
    if post is not None:
        _post_hide(post, video.takedown_reason or "video taken down")


def on_video_restored(*, video: Video) -> None:
    """`video.restored` hook: a video posted again brings its post back. A post removed for
    good meanwhile can't come back, and its video must not be posted alone: 409."""
    post = Post.objects.select_for_update().filter(video_id=video.pk).first()
    if post is None or video.state != VideoState.POSTED:
        return
    if post.state == P.REMOVED:
        raise Conflict(
            "This post was removed for good and can't be restored.", code="invalid_transition"
        )
    _post_show(post)


def on_account_deleted(*, user: User) -> None:
    """`account.deleted` hook: keeps other posts' counts exact before the cascade removes
    this user's likes, comments and remixes, and deletes their feed events (no FK there)."""
    likes = Counter(Like.objects.filter(user=user).values_list("post_id", flat=True))
    counters_add(field="likes", deltas={k: -v for k, v in likes.items()})
    # Hidden comments left the counts when they were taken down.
    comments = Counter(
        Comment.objects.filter(author=user, hidden_at__isnull=True).values_list(
            "post_id", flat=True
        )
    )
    counters_add(field="comments", deltas={k: -v for k, v in comments.items()})
    for post in Post.objects.select_for_update().filter(
        author=user, state__in=[P.LIVE, P.TAKEN_DOWN]
    ):
        _post_remove(post, "account deleted")
    FeedEvent.objects.filter(user_id=user.pk).delete()
    inbox.drop(user_id=user.pk)


def admission_serve_id(*, user: User, request) -> None:
    """`admission.adjust` hook: keeps a generation's `serve_id` only when it was served to this
    user, so creation metrics can't be inflated with invented or borrowed ids. An invalid one
    never blocks the generation; it is just not recorded."""
    if request.serve_id and serve_id_parse(request.serve_id, user_id=user.pk) is None:
        request.serve_id = ""
