"""Creation cards (run length, back-off, quiet after creating, types) and the teen cap."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
from django.utils import timezone

from accounts.services import follow_create
from cameos.models import Audience
from config.core.redis import redis_client
from feed.ranking.snapshot import drop_quietly as order_drop
from feed.serving import serve_id_parse
from generation.models import Generation, GenerationStatus
from tests.conftest import client_for
from tests.feed.test_for_you import bulk_posts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cards(settings):
    settings.RIFF_FEED_CARD_EVERY = 3
    settings.RIFF_FEED_CARD_MAX_GAP = 12
    settings.RIFF_FEED_CARD_QUIET_SECONDS = 600


@pytest.fixture
def feed_of(make_user):
    def make(viewer, n=40):
        for i in range(n // 2):
            bulk_posts(make_user(username=f"maker{i:02d}"), 2)
        return client_for(viewer)

    return make


def kinds(items) -> str:
    return "".join("C" if i["kind"] == "create_prompt" else "p" for i in items)


def page(client, limit=10, url=None):
    if url:
        url = re.sub(r"limit=\d+", f"limit={limit}", url)
    r = client.get(url or f"/api/v1/feed?kind=for_you&limit={limit}")
    assert r.status_code == 200, r.content
    return r.json()


def create(user, **kw):
    return Generation.objects.create(
        owner=user, prompt="x", seed=1, status=GenerationStatus.QUEUED, **kw
    )


def backdate_creations(user, seconds: float) -> None:
    """Moves the viewer's creations back in time, and drops the card state's copy of the last
    one (feed.ranking.cards.LAST_CREATED_SECONDS), which an UPDATE does not reach."""
    Generation.objects.filter(owner=user).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )
    redis_client().hdel(f"riff:fy:cards:{user.pk}", "lc", "lc_at")


def last_created_reads(queries) -> int:
    from feed.ranking.cards import _LAST_CREATED

    return sum(q["sql"] == _LAST_CREATED for q in queries.captured_queries)


def test_a_card_follows_the_configured_run(user, feed_of):
    client = feed_of(user)
    body = page(client, 10)
    assert kinds(body["results"]) == "pppCpppppp"
    card = body["results"][3]
    assert card["reason"] == "card"
    assert card["prompt"]["type"] == "remix_this"
    assert card["prompt"]["post_id"] == body["results"][2]["post"]["id"]
    parsed = serve_id_parse(card["serve_id"], user_id=user.pk)
    assert parsed is not None and parsed.reason == "card-remix_this"


def test_ignored_cards_back_off_and_a_creation_resets(user, feed_of):
    client = feed_of(user)
    first = page(client, 4)
    assert kinds(first["results"]) == "pppC"
    # The card was ignored: the next one is twice as far (6 posts).
    second = page(client, 8, first["next"])
    assert kinds(second["results"]) == "ppppppCp"
    # Ignored again: 12 posts (the configured maximum gap).
    third = page(client, 14, second["next"])
    assert kinds(third["results"]) == "p" * 11 + "Cpp"
    # A creation after that card (and outside the quiet window) brings the gap back to 3;
    # the run of 2 posts after the last card carries over.
    create(user, serve_id=third["results"][11]["serve_id"])
    redis_client().hset(f"riff:fy:cards:{user.pk}", "last_card", timezone.now().timestamp() - 700)
    backdate_creations(user, 650)
    fourth = page(client, 4, third["next"])
    assert kinds(fourth["results"]) == "pCpp"


def test_no_card_right_after_the_viewer_creates(user, feed_of):
    client = feed_of(user)
    create(user)
    body = page(client, 10)
    assert kinds(body["results"]) == "p" * 10
    # Once the quiet window is over, cards come back after a full run.
    backdate_creations(user, 3600)
    again = page(client, 5, body["next"])
    assert kinds(again["results"]) == "pppCp"


def test_cameo_cards(user, make_user, active_cameo, feed_of):
    friend = make_user(username="friend")
    follow_create(follower=user, followee=friend)
    open_cameo = active_cameo(friend, audience=Audience.EVERYONE, handle="friendcam")
    mine = active_cameo(user, audience=Audience.ONLY_ME, handle="mecam")
    client = feed_of(user, 4)
    bulk_posts(friend, 3, cameo_ids=[open_cameo.pk], minutes_ago=0)
    state = f"riff:fy:cards:{user.pk}"
    # Rotation: the second card offers the viewer's own cameo...
    redis_client().hset(state, mapping={"served": 1, "run": 2})
    body = page(client, 2)
    assert body["results"][0]["reason"] == "cameo_graph"
    card = body["results"][1]["prompt"]
    assert (card["type"], card["cameo_id"]) == ("use_cameo", str(mine.pk))
    assert card["text"] == "Put yourself in this."
    # ...the third the friend's cameo shown in the post just before it.
    redis_client().delete(state)
    redis_client().hset(state, mapping={"served": 2, "run": 2})
    # A new session would go on down the same ranked order (ranking.snapshot); ranked
    # afresh, it starts again with the friend's newest post.
    order_drop(user_id=user.pk)
    body = page(client, 2)
    card = body["results"][1]["prompt"]
    assert card["type"] == "cameo_open"
    assert card["cameo_id"] == str(open_cameo.pk)
    assert card["post_id"] == body["results"][0]["post"]["id"]
    assert card["text"] == "@friendcam's cameo is open to you."


def test_teen_daily_cap_ends_the_feed_with_a_card(make_user, feed_of, settings):
    settings.RIFF_FEED_TEEN_DAILY_CAP = 5
    settings.RIFF_FEED_CARD_EVERY = 10_000
    teen = make_user(username="teen", birth_date=date(date.today().year - 15, 1, 1))
    assert teen.is_teen
    client = feed_of(teen, 20)
    first = page(client, 4)
    assert kinds(first["results"]) == "pppp" and first["next"]
    second = page(client, 4, first["next"])
    assert kinds(second["results"]) == "pC" and second["next"] is None
    assert second["results"][1]["prompt"]["type"] == "daily_limit"
    assert serve_id_parse(second["results"][1]["serve_id"], user_id=teen.pk).reason == (
        "card-daily_limit"
    )
    # Every feed kind is capped for the rest of the day.
    for kind in ("for_you", "latest", "following"):
        body = page(client, url=f"/api/v1/feed?kind={kind}")
        assert kinds(body["results"]) == "C" and body["next"] is None
    adult = client_for(make_user(username="adult"))
    assert len(page(adult, 20)["results"]) == 20


def test_the_last_creation_is_read_once_then_kept_in_the_card_state(user, feed_of):
    """Every For You page needs the viewer's last creation (the quiet window, the back-off).
    It is read once and kept in the card state; the next pages read no database for it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = feed_of(user)
    with CaptureQueriesContext(connection) as queries:
        body = page(client, 4)
    assert kinds(body["results"]) == "pppC" and last_created_reads(queries) == 1
    assert redis_client().hget(f"riff:fy:cards:{user.pk}", "lc") == b""
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            body = page(client, 4, body["next"])
        assert last_created_reads(queries) == 0


def test_a_generation_admitted_through_the_api_quiets_the_next_page(
    user, feed_of, django_capture_on_commit_callbacks
):
    """Admission writes the job's time into the card state when it commits (the
    `generation.admitted` hook), so the viewer's next page has no card and reads no database
    for it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = feed_of(user)
    body = page(client, 4)
    assert kinds(body["results"]) == "pppC"
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/v1/generations", {"prompt": "a fox"}, format="json")
    assert r.status_code == 202, r.content
    made = Generation.objects.get(pk=r.json()["id"])
    key = f"riff:fy:cards:{user.pk}"
    assert float(redis_client().hget(key, "lc")) == made.created_at.timestamp()
    with CaptureQueriesContext(connection) as queries:
        quiet = page(client, 10, body["next"])
    assert kinds(quiet["results"]) == "p" * 10 and last_created_reads(queries) == 0


def test_a_kept_last_creation_is_read_again_when_old_and_never_goes_back(
    user, feed_of, django_capture_on_commit_callbacks
):
    """What a job made outside admission (a script's bulk insert, a lost Redis write) could
    hide, LAST_CREATED_SECONDS bounds; and a read from the database never replaces a later
    creation an admission wrote meanwhile."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from feed.ranking import cards

    client = feed_of(user)
    body = page(client, 4)
    key = f"riff:fy:cards:{user.pk}"
    assert redis_client().hget(key, "lc") == b""
    Generation.objects.bulk_create(
        [Generation(owner=user, prompt="x", seed=1, status=GenerationStatus.QUEUED)]
    )
    redis_client().hset(key, "lc_at", timezone.now().timestamp() - cards.LAST_CREATED_SECONDS - 1)
    with CaptureQueriesContext(connection) as queries:
        quiet = page(client, 6, body["next"])
    assert last_created_reads(queries) == 1 and kinds(quiet["results"]) == "p" * 6
    made = Generation.objects.get(owner=user)
    assert float(redis_client().hget(key, "lc")) == made.created_at.timestamp()
    # A page whose read began before an admission committed does not overwrite it.
    read_began = time.time()
    later = create(user)
    with django_capture_on_commit_callbacks(execute=True):
        cards.on_generation_admitted(generation=later)
    pipe = redis_client().pipeline()
    pipe.eval(cards._LAST_CREATED_KEEP, 1, key, repr(made.created_at.timestamp()), read_began)
    pipe.execute()
    assert float(redis_client().hget(key, "lc")) == later.created_at.timestamp()
    # A copy naming a creation since deleted is replaced by the next read once it is old, and
    # then kept again: not read on every page.
    Generation.objects.filter(pk=later.pk).delete()
    redis_client().hset(key, "lc_at", timezone.now().timestamp() - cards.LAST_CREATED_SECONDS - 1)
    with CaptureQueriesContext(connection) as queries:
        quiet = page(client, 2, quiet["next"])
    assert last_created_reads(queries) == 1
    assert float(redis_client().hget(key, "lc")) == made.created_at.timestamp()
    with CaptureQueriesContext(connection) as queries:
        page(client, 2, quiet["next"])
    assert last_created_reads(queries) == 0


def test_own_cameos_are_read_once_a_minute_for_cards(user, feed_of, active_cameo):
    """A page that shows no cameo reuses the viewer's own usable cameos read for an earlier
    card (cards.OWN_CAMEOS_SECONDS) instead of running the consent query again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    mine = active_cameo(user, audience=Audience.ONLY_ME, handle="mecam")
    client = feed_of(user, 40)
    redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"served": 1, "run": 2})
    body = page(client, 2)
    assert body["results"][1]["prompt"]["cameo_id"] == str(mine.pk)
    state = redis_client().hgetall(f"riff:fy:cards:{user.pk}")
    assert b"own" in state
    redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"served": 1, "run": 20})
    with CaptureQueriesContext(connection) as queries:
        body = page(client, 2, url=body["next"])
    assert body["results"][1]["prompt"]["cameo_id"] == str(mine.pk)
    assert not [q for q in queries.captured_queries if "cameos_cameo" in q["sql"]]
    # Stale after a minute: read again.
    redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"own_at": 0, "served": 1, "run": 20})
    with CaptureQueriesContext(connection) as queries:
        page(client, 2, url=body["next"])
    assert [q for q in queries.captured_queries if "cameos_cameo" in q["sql"]]


def test_revoking_a_cameo_stops_cards_offering_it_at_once(
    user, feed_of, active_cameo, django_capture_on_commit_callbacks
):
    from cameos.services import cameo_revoke

    mine = active_cameo(user, audience=Audience.ONLY_ME, handle="mecam")
    client = feed_of(user, 40)
    redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"served": 1, "run": 2})
    body = page(client, 2)
    assert body["results"][1]["prompt"]["cameo_id"] == str(mine.pk)
    with django_capture_on_commit_callbacks(execute=True):
        cameo_revoke(cameo=mine, actor=user)
    assert b"own" not in redis_client().hgetall(f"riff:fy:cards:{user.pk}")
    redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"served": 1, "run": 20})
    body = page(client, 2, url=body["next"])
    assert body["results"][1]["prompt"]["type"] != "use_cameo"


@pytest.mark.parametrize("case", ["only_me", "blocked", "not_active"])
def test_a_card_never_offers_a_cameo_the_consent_rule_refuses(
    user, make_user, active_cameo, feed_of, case
):
    """Cards read cameos through the consent rule's compiled SQL: a friend's cameo the viewer
    may not use (its audience, a block, not active) is never offered as `cameo_open`, and the
    viewer's own cameo only while it is active."""
    from accounts.models import Block
    from cameos.models import Cameo, CameoStatus

    friend = make_user(username="friend")
    follow_create(follower=user, followee=friend)
    audience = Audience.ONLY_ME if case == "only_me" else Audience.EVERYONE
    theirs = active_cameo(friend, audience=audience, handle="friendcam")
    mine = active_cameo(user, audience=Audience.ONLY_ME, handle="mecam")
    if case == "not_active":
        Cameo.objects.filter(pk__in=[theirs.pk, mine.pk]).update(status=CameoStatus.NEEDS_REVIEW)
    client = feed_of(user, 4)
    bulk_posts(friend, 3, cameo_ids=[theirs.pk], minutes_ago=0)
    if case == "blocked":
        # The friend blocks the viewer after posting: their posts leave the feed too, so the
        # page's cameo comes from a post of someone else that shows it.
        other = make_user(username="other")
        follow_create(follower=user, followee=other)
        bulk_posts(other, 3, cameo_ids=[theirs.pk], minutes_ago=0)
        Block.objects.create(blocker=friend, blocked=user)
    offered = []
    for served in (1, 2):  # use_cameo's turn, then cameo_open's
        redis_client().delete(f"riff:fy:cards:{user.pk}")
        redis_client().hset(f"riff:fy:cards:{user.pk}", mapping={"served": served, "run": 2})
        order_drop(user_id=user.pk)
        body = page(client, 2)
        offered += [i["prompt"] for i in body["results"] if i["kind"] == "create_prompt"]
    cameo_ids = {p.get("cameo_id") for p in offered}
    assert str(theirs.pk) not in cameo_ids
    assert (str(mine.pk) in cameo_ids) == (case != "not_active")


def test_an_admission_just_after_redis_failed_does_not_wait_on_it_again(
    user, redis_sends, django_capture_on_commit_callbacks
):
    """Against a frozen Redis each call waits out its timeout: once this process has carried
    on without Redis moments ago (the request's own rate limit, say), the card state's write
    is skipped; the kept copy is re-read within LAST_CREATED_SECONDS."""
    from config.core.redis import degraded
    from feed.ranking import cards

    made = create(user)
    degraded("test")
    redis_sends.clear()
    with django_capture_on_commit_callbacks(execute=True):
        cards.on_generation_admitted(generation=made)
    assert redis_sends == []
    assert redis_client().hget(f"riff:fy:cards:{user.pk}", "lc") is None
