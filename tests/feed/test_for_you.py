"""For You: sources, creation-weighted scoring, the author cap, steering, stable sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from accounts.services import block_create, follow_create
from cameos.models import Audience
from feed.embeddings import to_bytes
from feed.models import EventKind, FeedEvent, FeedPreference, Post, PostState
from feed.ranking.scoring import score_all
from feed.ranking.sources import Candidate
from feed.serving import serve_id_make, serve_id_parse, serve_ids_make
from generation.models import Generation, GenerationStatus, Video
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def bulk_posts(author, n, *, prompts=None, embeddings=None, cameo_ids=(), minutes_ago=1, **kw):
    """`n` live posts by `author` in four bulk inserts (no storage, no fan-out), newest first."""
    now = timezone.now()
    prompts = prompts or [f"post {i} by {author.username}" for i in range(n)]
    gens = Generation.objects.bulk_create(
        Generation(owner=author, prompt=prompts[i], seed=1, status=GenerationStatus.SUCCEEDED)
        for i in range(n)
    )
    videos = Video.objects.bulk_create(
        Video(
            owner=author,
            generation=g,
            state="posted",
            seconds=2,
            width=512,
            height=512,
            frame_count=16,
            sha256="0" * 64,
            content=f"videos/t/{g.pk}.mp4",
            poster=f"videos/t/{g.pk}.jpg",
            preview=f"videos/t/{g.pk}.webp",
        )
        for g in gens
    )
    posts = []
    for i, video in enumerate(videos):
        pid = uuid.uuid4()
        posts.append(
            Post(
                id=pid,
                author=author,
                video=video,
                caption=prompts[i],
                cameo_ids=[str(c) for c in cameo_ids],
                embedding=None if embeddings is None else to_bytes(embeddings[i]),
                created_at=now - timedelta(minutes=minutes_ago + i),
                **{"root_id": pid, **kw},
            )
        )
    return Post.objects.bulk_create(posts)


def scroll(client, limit: int, *, between=None, max_pages=50) -> list[dict]:
    url, items, page = f"/api/v1/feed?kind=for_you&limit={limit}", [], 0
    while url and page < max_pages:
        r = client.get(url)
        assert r.status_code == 200, r.content
        body = r.json()
        assert len(body["results"]) <= limit
        items += body["results"]
        url = body["next"]
        page += 1
        if between and url:
            between(page)
    return items


def post_ids(items) -> list[str]:
    return [i["post"]["id"] for i in items if i["kind"] == "post"]


@pytest.fixture(autouse=True)
def _no_cards(settings):
    # Cards have their own tests (test_cards.py); here they would only shift positions.
    settings.RIFF_FEED_CARD_EVERY = 10_000
    settings.RIFF_FEED_CARD_MAX_GAP = 10_000


def test_author_cap_keeps_a_prolific_followee_to_its_share(user, make_user, settings):
    prolific = make_user(username="prolific")
    friends = [make_user(username=f"friend{i}") for i in range(3)]
    for u in (prolific, *friends):
        follow_create(follower=user, followee=u)
    bulk_posts(prolific, 50)
    for i, f in enumerate(friends):
        bulk_posts(f, 2, minutes_ago=60 * (i + 1))
    for i in range(6):
        bulk_posts(make_user(username=f"stranger{i}"), 1, minutes_ago=30)
    client = client_for(user)
    first = client.get("/api/v1/feed?kind=for_you&limit=20").json()["results"]
    authors = [i["post"]["author"]["username"] for i in first]
    cap = settings.RIFF_FEED_AUTHOR_CAP
    assert authors.count("prolific") <= cap
    # The friends are not crowded out.
    assert {f"friend{i}" for i in range(3)} <= set(authors)
    everything = scroll(client, 20)
    names = [i["post"]["author"]["username"] for i in everything]
    window = settings.RIFF_FEED_AUTHOR_WINDOW
    for start in range(len(names)):
        assert names[start : start + window].count("prolific") <= cap


def test_every_item_has_a_verifiable_serve_id_and_reason(user, make_user):
    maker = make_user(username="maker")
    follow_create(follower=user, followee=maker)
    bulk_posts(maker, 3)
    bulk_posts(make_user(username="other1"), 2)
    items = scroll(client_for(user), 10)
    assert len(items) == 5
    reasons = set()
    for item in items:
        parsed = serve_id_parse(item["serve_id"], user_id=user.pk)
        assert parsed is not None and parsed.reason == item["reason"]
        reasons.add(item["reason"])
    assert "following" in reasons


def test_a_pages_serve_ids_are_distinct_and_bound_to_their_viewer(user, make_user):
    other = make_user(username="other")
    reasons = ["following", "trending", "card-remix_this"] * 7
    ids = serve_ids_make(user_id=user.pk, reasons=reasons)
    assert len(ids) == 21 and len(set(ids)) == 21
    assert len({sid.split(".")[1] for sid in ids}) == 21  # a token each, not a shared one
    for sid, reason in zip(ids, reasons, strict=True):
        assert serve_id_parse(sid, user_id=user.pk).reason == reason
        assert serve_id_parse(sid, user_id=other.pk) is None
        # The signature covers the token: another item's token doesn't verify with it.
        _, token, sig = sid.split(".")
        forged = f"{reason}.{'0' * 12 if token != '0' * 12 else '1' * 12}.{sig}"
        assert serve_id_parse(forged, user_id=user.pk) is None
    assert serve_ids_make(user_id=user.pk, reasons=[]) == []


def test_pages_never_repeat_or_skip_when_posts_arrive(user, make_user):
    authors = [make_user(username=f"a{i}") for i in range(15)]
    for a in authors:
        bulk_posts(a, 2)
    initial = {str(pk) for pk in Post.objects.values_list("pk", flat=True)}

    def publish(page):
        bulk_posts(authors[page], 2, minutes_ago=0)

    ids = post_ids(scroll(client_for(user), 7, between=publish))
    assert len(ids) == len(set(ids)), "a post repeated"
    assert set(ids) == initial, "a post was skipped or a new one slipped into the session"
    # A new session picks up what arrived meanwhile.
    fresh = post_ids(client_for(user).get("/api/v1/feed?kind=for_you&limit=100").json()["results"])
    assert set(fresh) - initial


def test_blocked_and_removed_posts_never_appear(user, make_user, other):
    blocker = make_user(username="blocker")
    blocked = make_user(username="blocked")
    later = make_user(username="later")
    for u in (blocker, blocked, later, other):
        follow_create(follower=user, followee=u)
    bulk_posts(blocker, 2)
    bulk_posts(blocked, 2)
    bulk_posts(later, 3)
    (removed,) = bulk_posts(other, 1)
    kept = bulk_posts(other, 3, minutes_ago=5)
    Post.objects.filter(pk=removed.pk).update(state=PostState.REMOVED)
    block_create(blocker=blocker, blocked=user)
    block_create(blocker=user, blocked=blocked)
    client = client_for(user)
    r = client.get("/api/v1/feed?kind=for_you&limit=2").json()
    items = list(r["results"])
    # A block made mid-session hides the rest of that author's posts from later pages.
    block_create(blocker=user, blocked=later)
    url = r["next"]
    while url:
        body = client.get(url).json()
        items += body["results"]
        url = body["next"]
    seen_authors = {i["post"]["author"]["username"] for i in items[2:]}
    assert {"blocker", "blocked", "later"}.isdisjoint(seen_authors)
    ids = set(post_ids(items))
    assert str(removed.pk) not in ids
    assert {str(p.pk) for p in kept} <= ids


def test_steering_changes_the_order(user, make_user):
    from feed.embeddings import embed_texts

    prompts = [
        "an anime girl with a glowing katana on a neon Tokyo rooftop",
        "anime mecha robots battle in space, cel shaded",
        "a football striker scores a last-minute goal in a packed stadium",
        "basketball slam dunk replay in slow motion",
        "a soccer goalkeeper dives to save a penalty kick",
        "tennis final match point at Wimbledon",
    ]
    vectors = embed_texts(prompts + ["more anime and manga, fewer sports"])
    for i, prompt in enumerate(prompts):
        # Sports posts are newer, so without steering they lead.
        bulk_posts(
            make_user(username=f"c{i}"),
            1,
            prompts=[prompt],
            embeddings=[vectors[i]],
            minutes_ago=10 if i < 2 else 1,
        )
    client = client_for(user)
    before = client.get("/api/v1/feed?kind=for_you&limit=6").json()["results"]
    anime = {p.caption for p in Post.objects.all() if "anime" in p.caption}
    assert before[0]["post"]["caption"] not in anime
    FeedPreference.objects.create(
        user=user, steer="more anime and manga, fewer sports", steer_embedding=to_bytes(vectors[-1])
    )
    after = client.get("/api/v1/feed?kind=for_you&limit=6").json()["results"]
    assert {i["post"]["caption"] for i in after[:2]} == anime
    assert "steering" in {i["reason"] for i in after[:2]}


def test_not_personalized_serves_only_trending_and_latest(user, make_user, active_cameo):
    friend = make_user(username="friend")
    follow_create(follower=user, followee=friend)
    cameo = active_cameo(friend, audience=Audience.EVERYONE)
    bulk_posts(friend, 2, cameo_ids=[cameo.pk])
    bulk_posts(make_user(username="stranger"), 2)
    client = client_for(user)
    personal = scroll(client, 10)
    assert "cameo_graph" in {i["reason"] for i in personal}
    r = client.put("/api/v1/feed/preferences", {"steer": "", "personalized": False}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["personalized"] is False
    plain = scroll(client, 10)
    assert {i["reason"] for i in plain} <= {"trending", "latest"}
    assert len(plain) == 4


def test_preferences_round_trip(api, user):
    r = api.get("/api/v1/feed/preferences")
    assert r.json() == {"steer": "", "personalized": True, "steer_ready": False, "updated_at": None}
    r = api.put("/api/v1/feed/preferences", {"steer": "more cats"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["steer"], r.json()["personalized"]) == ("more cats", True)
    assert api.get("/api/v1/feed/preferences").json()["steer"] == "more cats"
    r = api.put("/api/v1/feed/preferences", {"steer": "x" * 501}, format="json")
    assert r.status_code == 400


def test_seen_posts_sink_to_the_end(user, make_user):
    maker = make_user(username="maker")
    follow_create(follower=user, followee=maker)
    posts = bulk_posts(maker, 3)
    # The newest, best-placed post was already seen.
    FeedEvent.objects.bulk_create(
        [
            FeedEvent(
                user_id=user.pk,
                post_id=posts[0].pk,
                serve_id=serve_id_make(user_id=user.pk, reason="following"),
                kind=EventKind.IMPRESSION,
            )
        ]
    )
    ids = post_ids(scroll(client_for(user), 10))
    assert ids[-1] == str(posts[0].pk) and len(ids) == 3


def test_creation_signals_outweigh_likes():
    now = timezone.now()

    def cand(**signals):
        c = Candidate(
            id=uuid.uuid4(),
            author_id=uuid.uuid4(),
            created_at=now,
            allow_remix=True,
            cameo_ids=[],
            embedding=None,
            reasons={"latest"},
        )
        # An average post: every rate at its prior, unless the test says otherwise.
        average = {"views": 1000, "likes": 80, "remixes": 20, "cameo_uses": 10, "completes": 300}
        for k, v in {**average, **signals}.items():
            setattr(c, k, v)
        return c

    liked = cand(likes=400)  # 5x the average like rate
    remixed = cand(remixes=40)  # 2x the average remix rate
    cameo = cand(cameo_uses=25)  # 2.5x the average cameo-use rate
    disliked = cand(remixes=40, see_less=100)
    ranked = score_all([liked, remixed, cameo, disliked], now=now)
    assert ranked.index(remixed) < ranked.index(liked)
    assert ranked.index(cameo) < ranked.index(liked)
    assert ranked[-1] is disliked
    # Smoothing: two views and one remix don't beat a proven remix magnet.
    lucky = cand(views=2, remixes=1, likes=0, cameo_uses=0, completes=0)
    assert score_all([lucky, remixed], now=now)[0] is remixed


def test_remix_lineage_and_trending_sources(user, make_user):
    maker = make_user(username="maker")
    (root,) = bulk_posts(user, 1)
    (theirs,) = bulk_posts(maker, 1, remix_of=root, root_id=root.pk, depth=1)
    (hot,) = bulk_posts(make_user(username="hot"), 1, minutes_ago=300)
    bulk_posts(make_user(username="kid"), 3, remix_of=hot, root_id=hot.pk, depth=1)
    items = scroll(client_for(user), 20)
    by_id = {i["post"]["id"]: i["reason"] for i in items}
    assert by_id[str(theirs.pk)] == "remix_lineage"
    assert by_id[str(hot.pk)] == "trending"
    assert str(root.pk) not in by_id  # never your own posts


def test_query_count_is_bounded_per_page(user, make_user, django_assert_max_num_queries):
    for i in range(8):
        a = make_user(username=f"q{i}")
        follow_create(follower=user, followee=a)
        bulk_posts(a, 3)
    client = client_for(user)
    first = client.get("/api/v1/feed?kind=for_you&limit=5").json()
    # Later pages are slices of the snapshot: the same handful of queries at any page size.
    with django_assert_max_num_queries(12):
        r = client.get(first["next"].replace("limit=5", "limit=15"))
    assert r.status_code == 200 and len(r.json()["results"]) == 15


def test_an_expired_session_starts_a_fresh_one(user, make_user):
    bulk_posts(make_user(username="m"), 4)
    client = client_for(user)
    first = client.get("/api/v1/feed?kind=for_you&limit=2").json()
    from config.core.redis import redis_client

    for key in redis_client().scan_iter("riff:fy:snap:*"):
        redis_client().delete(key)
    r = client.get(first["next"])
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    bad = client.get("/api/v1/feed?kind=for_you&cursor=nonsense")
    assert bad.status_code == 400


def test_embedding_dim_sanity():
    # bulk_posts stores float32 bytes the ranker reads back with from_bytes.
    from feed.embeddings import from_bytes

    v = np.ones(384, dtype=np.float32) / np.sqrt(384)
    assert np.allclose(from_bytes(to_bytes(v)), v)


def test_cold_start_lifts_new_posts_of_small_creators_only(user, make_user, settings):
    from feed.ranking.sources import context_for, source_cold_start

    settings.RIFF_FEED_SMALL_CREATOR_FOLLOWERS = 3
    newcomer, star = make_user(username="newcomer"), make_user(username="star")
    for i in range(3):
        follow_create(follower=make_user(username=f"fan{i}"), followee=star)
    fresh = bulk_posts(newcomer, 2)
    bulk_posts(star, 2)
    old = bulk_posts(newcomer, 1, minutes_ago=60 * 24 * 3)  # older than the 48 h window
    found = source_cold_start(context_for(user))
    assert set(found) == {p.pk for p in fresh}
    assert old[0].pk not in found
    # The list is shared: a new post shows only once beat refreshes it.
    newer = bulk_posts(newcomer, 1)
    assert set(source_cold_start(context_for(user))) == {p.pk for p in fresh}
    from feed.tasks import feed_cold_start_refresh

    assert feed_cold_start_refresh() == 3
    assert set(source_cold_start(context_for(user))) == {p.pk for p in fresh + newer}


def test_trending_is_computed_once_and_shared(user, other, make_user):
    from feed.ranking import sources

    hot = bulk_posts(other, 1)[0]
    for i in range(3):
        bulk_posts(make_user(username=f"riffer{i}"), 1, remix_of=hot, root_id=hot.pk, depth=1)
    first = sources.source_trending(sources.context_for(user))
    assert first[0] == hot.pk
    # A new hot post doesn't show until the shared list is refreshed (beat, every 4 minutes).
    hotter = bulk_posts(other, 1)[0]
    for i in range(5):
        bulk_posts(make_user(username=f"fan{i}"), 1, remix_of=hotter, root_id=hotter.pk, depth=1)
    assert sources.source_trending(sources.context_for(user)) == first
    from feed.tasks import feed_trending_refresh

    assert feed_trending_refresh() == 2
    assert sources.source_trending(sources.context_for(user))[:2] == [hotter.pk, hot.pk]


def test_cameo_graph_finds_only_cameos_the_consent_rule_lets_the_viewer_use(
    user, make_user, active_cameo
):
    """The source's cameo list is the consent rule (cameos.consent) compiled once per process:
    each audience, a grant, a block and the viewer's own cameo, read fresh at each ranking."""
    from cameos.services import cameo_grant
    from feed.ranking.sources import context_for, source_cameo_graph

    friend, stranger = make_user(username="friend"), make_user(username="stranger")
    follow_create(follower=user, followee=friend)
    shown = {
        "everyone": active_cameo(friend, audience=Audience.EVERYONE),
        "approved": active_cameo(friend, audience=Audience.APPROVED),
        "only_me": active_cameo(friend, audience=Audience.ONLY_ME),
        "mine": active_cameo(user, audience=Audience.ONLY_ME),
        "unfollowed": active_cameo(stranger, audience=Audience.EVERYONE),
    }
    poster = make_user(username="poster")
    posts = {name: bulk_posts(poster, 1, cameo_ids=[c.pk])[0].pk for name, c in shown.items()}

    def found() -> set:
        got = set(source_cameo_graph(context_for(user)))
        return {name for name, pid in posts.items() if pid in got}

    assert found() == {"everyone", "mine"}
    cameo_grant(cameo=shown["approved"], user=user, granted_by=friend)
    assert found() == {"everyone", "mine", "approved"}
    block_create(blocker=friend, blocked=user)
    assert found() == {"mine"}
    follow_create(follower=stranger, followee=friend)
    # Another viewer of the same process gets their own answer (their own cameo included).
    assert set(source_cameo_graph(context_for(stranger))) == {
        posts["everyone"],
        posts["unfollowed"],
    }
