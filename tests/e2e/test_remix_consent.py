"""Consent through a remix chain, on a real worker (issue #27, finding 1): a stranger can't
remix a likeness in; a friend who may use it can, and the remix carries it as an appearance
that its owner sees, publish re-checks, and revocation takes down with every copy and file."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from accounts.models import Follow
from cameos.models import Audience
from feed.models import Post
from generation.models import Appearance, Generation, Video
from tests.conftest import client_for
from tests.e2e.test_cameo_verification import wait_for
from tests.helpers import assert_error

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def generate(client, path: str, body: dict) -> Video:
    response = client.post(path, body, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert wait_for(lambda: Generation.objects.get(pk=job_id).status == "succeeded", 120), (
        Generation.objects.get(pk=job_id).error_message
    )
    return Video.objects.get(generation_id=job_id)


def test_a_likeness_follows_a_remix_chain_and_leaves_it(celery_worker, make_user, active_cameo):
    owner, friend, fan, stranger = (
        make_user(username=name) for name in ("xavier", "yvonne", "wanda", "zed")
    )
    for other in (friend, fan):
        Follow.objects.create(follower=owner, followee=other)
        Follow.objects.create(follower=other, followee=owner)
    cameo = active_cameo(owner, audience=Audience.MUTUALS, handle="xavier.face")
    as_owner, as_friend, as_fan, as_stranger = map(client_for, (owner, friend, fan, stranger))

    video = generate(as_friend, "/api/v1/generations", {"prompt": "@xavier.face waves"})
    published = as_friend.post("/api/v1/posts", {"video_id": str(video.pk)}, format="json")
    assert published.status_code == 201, published.content
    post_id = published.json()["id"]

    # The stranger may not use the cameo, so may not remix a post showing it either way.
    refused = as_stranger.post(f"/api/v1/posts/{post_id}/remix", {"prompt": "x"}, format="json")
    assert_error(refused, 403, "cameo_permission_denied")
    refused = as_stranger.post(
        "/api/v1/generations", {"prompt": "x", "remix_of": post_id}, format="json"
    )
    assert_error(refused, 403, "cameo_permission_denied")
    assert not Generation.objects.filter(owner=stranger).exists()

    # A mutual may: the remix carries the likeness as an appearance of its own.
    remix = generate(as_fan, f"/api/v1/posts/{post_id}/remix", {"prompt": "at night"})
    assert list(Appearance.objects.filter(video=remix).values_list("cameo_id", flat=True)) == [
        cameo.pk
    ]
    seen = as_owner.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert {a["video"]["id"] for a in seen} == {str(video.pk), str(remix.pk)}
    remix_post = as_fan.post("/api/v1/posts", {"video_id": str(remix.pk)}, format="json")
    assert remix_post.status_code == 201, remix_post.content
    assert [c["id"] for c in remix_post.json()["cameos"]] == [str(cameo.pk)]

    # Revoking the cameo removes every video with it, the remix's too, files and all.
    files = [name for v in (video, remix) for name in (v.content, v.poster, v.preview)]
    assert all(default_storage.exists(name) for name in files)
    assert as_owner.delete(f"/api/v1/cameos/{cameo.pk}").status_code in (200, 204)
    for pk in (post_id, remix_post.json()["id"]):
        assert_error(as_fan.get(f"/api/v1/posts/{pk}"), 404, "not_found")
        assert Post.objects.get(pk=pk).state == "removed"
    for v in (video, remix):
        assert_error(as_fan.get(f"/api/v1/videos/{v.pk}/content"), 404, "not_found")
    assert [name for name in files if default_storage.exists(name)] == []
