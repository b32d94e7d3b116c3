"""Creation cards and the teen daily cap.

Card policy (state in the Redis hash `riff:fy:cards:<user>`, kept a week):

* `run` counts passive post items served since the last card; when it reaches the gap, a card
  follows the next post. The gap is `RIFF_FEED_CARD_EVERY * 2**ignored`, capped at
  `RIFF_FEED_CARD_MAX_GAP`, where `ignored` counts consecutive cards served with no Generation
  by the viewer after them: ignored cards back off exponentially, and one creation resets the
  gap.
* For `RIFF_FEED_CARD_QUIET_SECONDS` after the viewer starts a Generation there are no cards
  at all and the run restarts from zero: they just created, nagging would be noise. The
  viewer's last creation is kept in the state too (`lc`, and `lc_at` when it was read or
  written): an admission writes it when it commits (`on_generation_admitted`), a page reads
  the database only when it is missing or `LAST_CREATED_SECONDS` old.
* The card type rotates over what the page offers: `remix_this` (a remixable post just shown),
  `use_cameo` (the viewer has an active cameo: "put yourself in this"), `cameo_open` (a post
  just shown features a cameo of someone else that the consent rule lets the viewer use).
  Every card carries the `post_id` it follows, so the client can report its impression with
  the card's serve_id (reason `card-<type>`), and a creation started from it is attributed.

Teens (User.is_teen) get `RIFF_FEED_TEEN_DAILY_CAP` feed posts a day across all feed kinds
(counted in Redis per UTC day); the page that reaches it ends with a `daily_limit` card and no
`next`, and later requests get only that card.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from cameos.consent import cameos_for_use
from cameos.models import Cameo
from config.core.redis import (
    Batch,
    Replies,
    degraded,
    hash_reply,
    recently_degraded,
    redis_client,
)
from config.core.sql import fetchall
from generation.models import Generation

from ..feeds import FeedPage
from ..models import EventKind, FeedEvent, Post
from ..serving import serve_id_make

CARD_TYPES = ("remix_this", "use_cameo", "cameo_open")
STATE_TTL = 7 * 24 * 3600


def _key(user_id) -> str:
    return f"riff:fy:cards:{user_id}"


@dataclass
class CardPlan:
    user: User
    run: int
    # Consecutive ignored cards, counting the last one served (judged at load time).
    ignored: int
    served: int
    quiet: bool
    gap: int
    cameos: dict | None = None
    changed: bool = False
    this_page: int = 0
    # The viewer's own usable cameos as last read (OWN_CAMEOS_SECONDS), and a fresh read to save.
    own: dict | None = None
    own_read: dict | None = None
    # The viewer's last creation as just read from the database, to keep in the state:
    # (its timestamp, "" for none; when the read began).
    last_created_read: tuple[str, float] | None = None

    @property
    def due(self) -> bool:
        return not self.quiet and self.run >= self.gap

    def note_post(self) -> None:
        if not self.quiet:
            self.run += 1
        self.changed = True

    def note_card(self) -> None:
        if self.this_page:
            # A second card in one page: the first was certainly not followed by a creation.
            self.ignored += 1
        # Within this page nothing can follow this card, so the next gap assumes it ignored.
        self.gap = _gap(self.ignored + 1)
        self.this_page += 1
        self.served += 1
        self.run = 0
        self.changed = True


def _gap(ignored: int) -> int:
    every = max(settings.RIFF_FEED_CARD_EVERY, 1)
    return min(every * 2 ** min(ignored, 16), max(settings.RIFF_FEED_CARD_MAX_GAP, every))


_LAST_CREATED = (
    f"SELECT created_at FROM {Generation._meta.db_table} "  # noqa: S608 - a model's table name
    "WHERE owner_id = %s ORDER BY created_at DESC LIMIT 1"
)


def plan_state_read(batch: Batch, *, user_id) -> int:
    """Queues the read of the viewer's card state on `batch`, so a page reads it in the round
    trip that reads its order; returns its index (`plan_state_parse`)."""
    return batch.command("HGETALL", _key(user_id))


def plan_state_parse(replies: Replies, at: int) -> dict:
    """The card state `plan_state_read` queued, as `plan_load` takes it."""
    return hash_reply(replies.reply(at))


# How long the viewer's last creation time, kept in the card state, is trusted. An admission
# updates it at once (`on_generation_admitted`); this bounds what a write that bypasses
# admission (a job made by a script, a deletion, a lost Redis write) can hide.
LAST_CREATED_SECONDS = 600


def _last_created(
    user: User, state: dict, now: datetime
) -> tuple[datetime | None, tuple[str, float] | None]:
    """The viewer's last creation, from the card state while it is fresh, else from the
    database: `(when, what to keep in the state (plan_save), or None when it came from it)`."""
    try:
        if now.timestamp() - float(state["lc_at"]) < LAST_CREATED_SECONDS:
            value = state["lc"]
            return (datetime.fromtimestamp(float(value), UTC) if value else None), None
    except (KeyError, ValueError, TypeError, OverflowError):
        pass
    # Every For You page needs it, so it is a prepared statement when it is read.
    read_at = time.time()
    rows = fetchall(_LAST_CREATED, [user.pk])
    last = rows[0][0] if rows else None
    return last, (repr(last.timestamp()) if last is not None else "", read_at)


def plan_load(user: User, *, now: datetime | None = None, state: dict | None = None) -> CardPlan:
    """The card plan: the card state (`state`, as `plan_state_read` answered, or one Redis
    round trip) and the viewer's last creation (kept in that state; one query when it is not
    there or older than LAST_CREATED_SECONDS)."""
    now = now or timezone.now()
    if state is None:
        state = redis_client().hgetall(_key(user.pk))
    state = {k.decode(): v.decode() for k, v in state.items()}
    last_created, last_created_read = _last_created(user, state, now)
    ignored = int(state.get("ignored", 0))
    if state.get("last_card"):
        created_after = last_created is not None and last_created.timestamp() >= float(
            state["last_card"]
        )
        # The previous card is judged now: a creation after it resets the back-off.
        ignored = 0 if created_after else ignored + 1
    quiet = last_created is not None and now - last_created < timedelta(
        seconds=settings.RIFF_FEED_CARD_QUIET_SECONDS
    )
    return CardPlan(
        user=user,
        # Quiet after a creation restarts the run: the next card is a full gap away.
        run=0 if quiet else int(state.get("run", 0)),
        ignored=ignored,
        served=int(state.get("served", 0)),
        quiet=quiet,
        gap=_gap(ignored),
        changed=quiet or last_created_read is not None,
        own=_own_cameos(state, now),
        last_created_read=last_created_read,
    )


# How long the viewer's own usable cameos, read for a card, are reused by later cards. Only
# pages that show no cameo use them (the query that decides consent is the costliest part of a
# page with a card). Revoking a cameo forgets its owner's list (`on_cameo_revoked`); a cameo
# that became usable meanwhile is offered once the list is read again.
OWN_CAMEOS_SECONDS = 600


def on_cameo_revoked(*, cameo) -> None:
    """`cameo.revoked` hook: the owner's cards stop offering it from the next page."""

    def forget() -> None:
        try:
            redis_client().hdel(_key(cameo.owner_id), "own", "own_at")
        except redis.RedisError:
            # Without Redis there is no card state either: cards start from scratch.
            degraded("feed_cards", f"(own cameos of {cameo.owner_id})")

    transaction.on_commit(forget)


def _own_cameos(state: dict, now: datetime) -> dict | None:
    try:
        if now.timestamp() - float(state["own_at"]) < OWN_CAMEOS_SECONDS:
            return {pk: tuple(value) for pk, value in json.loads(state["own"]).items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        pass
    return None


def plan_save(
    plan: CardPlan, *, card_served_at: datetime | None, batch: Batch | None = None
) -> None:
    """Writes the card state back if it changed; with `batch`, queued there (the caller sends
    it with the page's other writes)."""
    if not plan.changed and card_served_at is None:
        return
    mapping = {"run": plan.run, "served": plan.served}
    if plan.own_read is not None:
        mapping["own"] = json.dumps(plan.own_read)
        mapping["own_at"] = timezone.now().timestamp()
    if card_served_at is not None:
        # `ignored` now counts the cards before this one; this one is judged on the next load.
        mapping["ignored"] = plan.ignored
        mapping["last_card"] = card_served_at.timestamp()
    own_batch = batch is None
    batch = Batch(redis_client()) if own_batch else batch
    key = _key(plan.user.pk)
    batch.command("HSET", key, *(part for pair in mapping.items() for part in pair))
    if plan.last_created_read is not None:
        # Unless an admission wrote it after this read began (on_generation_admitted).
        batch.command("EVAL", _LAST_CREATED_KEEP, 1, key, *plan.last_created_read)
    batch.command("EXPIRE", key, STATE_TTL)
    if own_batch:
        batch.execute().check()


# Keeps a last creation time (ARGV[1], "" for none) known as of ARGV[2] in the card state,
# unless the state's copy is newer than that: an admission that committed after a page began
# its read wins over the read. (Compared by when each was known, not by value, so a copy
# naming a since-deleted creation is replaced by the next read.)
_LAST_CREATED_KEEP = """
local at = redis.call('HGET', KEYS[1], 'lc_at')
if at and tonumber(at) and tonumber(at) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'lc', ARGV[1], 'lc_at', ARGV[2])
return 1
"""


def on_generation_admitted(*, generation: Generation) -> None:
    """`generation.admitted` hook: the job is its owner's last creation from the next page on,
    written into the owner's card state when it commits. A generation deleted later may leave
    the copy naming it for up to LAST_CREATED_SECONDS: a few more minutes without cards,
    nothing shown that should not be."""
    owner_id, at = generation.owner_id, repr(generation.created_at.timestamp())

    def keep() -> None:
        if recently_degraded():
            # Redis failed moments ago (this request's rate limit, say): a write to a frozen
            # Redis would wait out its timeout again, and without Redis there is no For You
            # to show cards. The kept copy is re-read within LAST_CREATED_SECONDS.
            return
        try:
            batch = Batch(redis_client())
            batch.command("EVAL", _LAST_CREATED_KEEP, 1, _key(owner_id), at, time.time())
            batch.command("EXPIRE", _key(owner_id), STATE_TTL)
            batch.execute().check()
        except redis.RedisError:
            # Then the state may hold an older creation for up to LAST_CREATED_SECONDS.
            degraded("feed_cards", f"(last creation of {owner_id})")

    transaction.on_commit(keep)


# --- card content -----------------------------------------------------------------------------


_OWN_CAMEOS = f"SELECT id FROM {Cameo._meta.db_table} WHERE owner_id = %s"  # noqa: S608


def _cameos_for(plan: CardPlan, posts: list[Post]) -> dict:
    """{cameo_id: (handle, owner_id)} of the viewer's own usable cameos and the usable ones in
    the page's posts: two prepared statements (the viewer's cameo ids, then the consent rule
    over those and the page's), made only on a page that shows a card, and not even then when
    no post on the page shows a cameo and the viewer's own were read a moment ago."""
    if plan.cameos is None:
        ids = {c for p in posts for c in p.cameo_ids}
        if not ids and plan.own is not None:
            plan.cameos = plan.own
            return plan.cameos
        # The viewer's own cameos (any state) and the page's, through the consent rule's SQL
        # compiled once per process (cameos.consent.cameos_for_use): building the rule's ORM
        # expression for every card was most of a For You first page's Python.
        own = [row[0] for row in fetchall(_OWN_CAMEOS, [plan.user.pk])]
        found = cameos_for_use(plan.user, [*own, *ids])
        plan.cameos = {
            str(pk): (cameo.handle, str(cameo.owner_id))
            for pk, (cameo, decision) in found.items()
            if decision.allowed
        }
        me = str(plan.user.pk)
        plan.own_read = {pk: v for pk, v in plan.cameos.items() if v[1] == me}
    return plan.cameos


def _prompt(kind: str, plan: CardPlan, posts: list[Post]) -> dict | None:
    recent = list(reversed(posts))
    if kind == "remix_this":
        post = next((p for p in recent if p.allow_remix), None)
        if post is None:
            return None
        return {"type": kind, "text": "Remix this: make your own take.", "post_id": str(post.pk)}
    cameos = _cameos_for(plan, posts)
    if kind == "use_cameo":
        me = str(plan.user.pk)
        own = next((pk for pk, (_, owner) in cameos.items() if owner == me), None)
        post = next((p for p in recent if p.allow_remix), None)
        if own is None or post is None:
            return None
        return {
            "type": kind,
            "text": "Put yourself in this.",
            "post_id": str(post.pk),
            "cameo_id": own,
        }
    for post in recent:
        for cid in post.cameo_ids:
            if cid in cameos and cameos[cid][1] != str(plan.user.pk):
                return {
                    "type": "cameo_open",
                    "text": f"@{cameos[cid][0]}'s cameo is open to you.",
                    "post_id": str(post.pk),
                    "cameo_id": cid,
                }
    return None


def card_item(plan: CardPlan, posts: list[Post]) -> dict | None:
    """The next card for a page whose posts so far are `posts` (oldest first), or None when
    none fits; rotates over the card types."""
    for step in range(len(CARD_TYPES)):
        kind = CARD_TYPES[(plan.served + step) % len(CARD_TYPES)]
        prompt = _prompt(kind, plan, posts)
        if prompt is not None:
            plan.note_card()
            return _card(plan.user, prompt)
    return None


def _card(user: User, prompt: dict) -> dict:
    return {
        "kind": "create_prompt",
        "prompt": prompt,
        "serve_id": serve_id_make(user_id=user.pk, reason=f"card-{prompt['type']}"),
        "reason": "card",
    }


# --- teen daily cap ---------------------------------------------------------------------------

DAILY_LIMIT_TEXT = "That's your feed for today. Make something of your own?"


def daily_limit_item(user: User) -> dict:
    return _card(user, {"type": "daily_limit", "text": DAILY_LIMIT_TEXT})


def teen_cap_apply(user: User, page: FeedPage) -> FeedPage:
    """Cuts a teen's page at the day's remaining allowance (post items; cards are free) and
    ends the feed with a `daily_limit` card once it is used up. The count of posts served lives
    in Redis; without Redis the day's impressions in the database stand in for it (a limit
    for minors is not dropped because a cache is down)."""
    if not getattr(user, "is_teen", False):
        return page
    now = timezone.now()
    key = f"riff:feedcap:{user.pk}:{now:%Y%m%d}"
    cap = settings.RIFF_FEED_TEEN_DAILY_CAP
    client = redis_client()
    try:
        used = int(client.get(key) or 0)
    except redis.RedisError:
        degraded("feed_teen_cap", f"(for {user.pk}; counted from impressions)")
        client, used = None, _impressions_today(user, now=now)
    remaining = max(cap - used, 0)
    kept, posts = [], 0
    for item in page.items:
        if item["kind"] == "post":
            if posts >= remaining:
                break
            posts += 1
        kept.append(item)
    if posts and client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incrby(key, posts)
            pipe.expire(key, 2 * 24 * 3600)
            pipe.execute()
        except redis.RedisError:
            degraded("feed_teen_cap", f"(for {user.pk}; this page uncounted)")
    if used + posts >= cap and (len(kept) < len(page.items) or page.cursor or not kept):
        return FeedPage(items=[*kept, daily_limit_item(user)], cursor=None)
    return page


def _impressions_today(user: User, *, now: datetime) -> int:
    """Distinct posts the viewer reported seeing since midnight UTC (the Redis count's day):
    at most what was served (an impression is only accepted for a post served to the viewer)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        FeedEvent.objects.filter(
            user_id=user.pk, kind=EventKind.IMPRESSION, created_at__gte=midnight
        )
        .values("post_id")
        .distinct()
        .count()
    )
