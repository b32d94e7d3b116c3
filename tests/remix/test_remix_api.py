"""POST /posts/{id}/remix, the remix check on POST /generations, /remixes and remix counts."""

from __future__ import annotations

import uuid

import pytest

from accounts.services import block_create
from feed.models import Post
from feed.selectors import post_counts
from feed.serving import serve_id_make
from generation.models import Generation
from tests.conftest import client_for
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def remix_count(post) -> int:
    return post_counts([post.pk]).get(post.pk, {}).get("remixes") or 0


# --- starting a remix -------------------------------------------------------------------------


def test_remix_starts_a_generation_of_the_post(api, user, other, make_post):
    post = make_post(other)
    serve_id = serve_id_make(user_id=user.pk, reason="latest")
    r = api.post(
        f"/api/v1/posts/{post.pk}/remix",
        {"prompt": "the same, but at night", "serve_id": serve_id},
        format="json",
    )
    assert r.status_code == 202, r.content
    body = r.json()
    assert (body["remix_of"], body["status"], body["prompt"]) == (
        str(post.pk),
        "queued",
        "the same, but at night",
    )
    job = Generation.objects.get(pk=body["id"])
    assert (job.owner_id, job.remix_of_id, job.serve_id) == (user.pk, post.pk, serve_id)


def test_remix_ignores_a_serve_id_not_served_to_the_caller(api, user, other, make_post):
    post = make_post(other)
    theirs = serve_id_make(user_id=other.pk, reason="latest")
    for serve_id in (theirs, "made-up"):
        r = api.post(
            f"/api/v1/posts/{post.pk}/remix", {"prompt": "x", "serve_id": serve_id}, format="json"
        )
        assert r.status_code == 202, r.content
        assert Generation.objects.get(pk=r.json()["id"]).serve_id == ""


def test_remix_body_cannot_point_at_another_parent(api, other, make_post):
    post, elsewhere = make_post(other), make_post(other, allow_remix=False)
    jobs = Generation.objects.count()
    r = api.post(
        f"/api/v1/posts/{post.pk}/remix",
        {"prompt": "x", "remix_of": str(elsewhere.pk)},
        format="json",
    )
    # Strict input: the path names the parent, and a body that names one is refused.
    assert_error(r, 400, "invalid", "remix_of")
    assert Generation.objects.count() == jobs


def test_remix_is_idempotent(api, other, make_post):
    post = make_post(other)
    url, body = f"/api/v1/posts/{post.pk}/remix", {"prompt": "again"}
    first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]
    assert Generation.objects.filter(remix_of_id=post.pk).count() == 1
    other_body = api.post(url, {"prompt": "else"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert_error(other_body, 422, "idempotency_mismatch")


def test_remix_validates_the_prompt(api, other, make_post):
    post = make_post(other)
    before = Generation.objects.count()
    r = api.post(f"/api/v1/posts/{post.pk}/remix", {"prompt": "  "}, format="json")
    assert_error(r, 400, "invalid", "prompt")
    assert Generation.objects.count() == before


# --- refusals, on both endpoints --------------------------------------------------------------


def _attempts(api, post_id):
    yield api.post(f"/api/v1/posts/{post_id}/remix", {"prompt": "x"}, format="json")
    yield api.post("/api/v1/generations", {"prompt": "x", "remix_of": str(post_id)}, format="json")


def test_no_remix_post_is_refused_on_both_endpoints(api, other, make_post):
    post = make_post(other, allow_remix=False)
    before = Generation.objects.count()
    for r in _attempts(api, post.pk):
        assert_error(r, 403, "remix_not_allowed")
    assert Generation.objects.count() == before


def test_a_block_refuses_remixes_both_ways(user, other, make_post):
    theirs, mine = make_post(other), make_post(user)
    block_create(blocker=other, blocked=user)
    before = Generation.objects.count()
    for client, post in ((client_for(user), theirs), (client_for(other), mine)):
        for r in _attempts(client, post.pk):
            assert_error(r, 403, "remix_not_allowed")
    assert Generation.objects.count() == before


def test_missing_or_deleted_post_is_404_on_both_endpoints(api, other, make_post):
    post = make_post(other)
    client_for(other).delete(f"/api/v1/posts/{post.pk}")
    before = Generation.objects.count()
    for post_id in (post.pk, uuid.uuid4()):
        for r in _attempts(api, post_id):
            assert_error(r, 404, "not_found")
    assert Generation.objects.count() == before


def test_a_refusal_is_replayed_under_its_idempotency_key(api, other, make_post):
    post = make_post(other, allow_remix=False)
    url = f"/api/v1/posts/{post.pk}/remix"
    for _ in range(2):
        r = api.post(url, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
        assert_error(r, 403, "remix_not_allowed")
    assert not Generation.objects.filter(remix_of_id=post.pk).exists()


# --- remix counts -----------------------------------------------------------------------------


def test_remix_count_is_exact_after_publish_and_delete(api, user, other, make_post):
    post = make_post(other)
    remixes = [make_post(user, remix_of=post) for _ in range(3)]
    grandchild = make_post(other, remix_of=remixes[0])
    assert remix_count(post) == 3 and remix_count(remixes[0]) == 1

    assert api.delete(f"/api/v1/posts/{remixes[1].pk}").status_code == 204
    assert remix_count(post) == 2
    body = api.get(f"/api/v1/posts/{post.pk}").json()
    assert body["remix_count"] == 2
    listed = api.get(f"/api/v1/posts/{post.pk}/remixes").json()["results"]
    assert [p["id"] for p in listed] == [str(remixes[2].pk), str(remixes[0].pk)]
    assert listed[1]["remix_count"] == 1
    # Deleting a remix never moves its own remixes: the grandchild keeps its place.
    assert api.delete(f"/api/v1/posts/{remixes[0].pk}").status_code == 204
    assert remix_count(post) == 1
    grandchild.refresh_from_db()
    assert (grandchild.remix_of_id, grandchild.depth) == (remixes[0].pk, 2)


def test_remix_published_from_the_remix_endpoint_is_linked(api, user, other, make_post):
    post = make_post(other)
    job_id = api.post(f"/api/v1/posts/{post.pk}/remix", {"prompt": "x"}, format="json").json()["id"]
    remix = make_post(user, remix_of=Generation.objects.get(pk=job_id).remix_of_id)
    assert (remix.remix_of_id, remix.root_id, remix.depth) == (post.pk, post.pk, 1)
    assert remix_count(post) == 1


# --- /remixes ---------------------------------------------------------------------------------


def test_remixes_pages_are_exact(api, user, other, make_post, bulk_fan):
    post = make_post(other)
    fan = bulk_fan(user, post, 25)
    tied = bulk_fan(other, post, 4, same_time=True)  # equal created_at: the id breaks the tie
    expected = sorted(fan + tied, key=lambda p: (p.created_at, p.pk), reverse=True)
    seen, url = [], f"/api/v1/posts/{post.pk}/remixes?limit=10"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 10
        seen += page["results"]
        url = page["next"]
    assert [p["id"] for p in seen] == [str(p.pk) for p in expected]
    assert all(p["remix_of"] == str(post.pk) and p["depth"] == 1 for p in seen)


def test_remixes_hide_blocked_and_removed(api, user, other, make_user, make_post):
    post = make_post(other)
    stranger = make_user(username="carol")
    kept = make_post(other, remix_of=post)
    hidden = make_post(stranger, remix_of=post)
    removed = make_post(other, remix_of=post)
    client_for(other).delete(f"/api/v1/posts/{removed.pk}")
    block_create(blocker=user, blocked=stranger)
    ids = [p["id"] for p in api.get(f"/api/v1/posts/{post.pk}/remixes").json()["results"]]
    assert ids == [str(kept.pk)]
    # Someone who blocked nobody sees both live remixes.
    ids = [
        p["id"] for p in client_for(other).get(f"/api/v1/posts/{post.pk}/remixes").json()["results"]
    ]
    assert ids == [str(hidden.pk), str(kept.pk)]
    assert Post.objects.filter(remix_of=post).count() == 3


def test_remixes_of_an_invisible_post_is_404(api, user, other, make_post):
    post = make_post(other)
    block_create(blocker=other, blocked=user)
    assert_error(api.get(f"/api/v1/posts/{post.pk}/remixes"), 404, "not_found")
