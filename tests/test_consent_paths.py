"""Regression tests for the consent findings of the outside attack (issue #27, findings 1-4),
each through HTTP: a likeness reaches a video only with consent, whatever the path, and leaves
every video, draft and file when consent goes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from accounts.models import Follow
from accounts.services import block_create
from cameos.models import Audience, Cameo, CameoStatus
from cameos.services import cameo_transition
from feed.models import Post, PostState
from generation.models import Generation, GenerationCameo, GenerationStatus, Video
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db
# Files are deleted after commit: these tests commit for real.
commits = pytest.mark.django_db(transaction=True)


def mutuals(a, b) -> None:
    Follow.objects.create(follower=a, followee=b)
    Follow.objects.create(follower=b, followee=a)


@pytest.fixture
def cast(make_user, active_cameo, make_post):
    """X owns a `mutuals` cameo; Y (X's mutual) posted a video with it; Z is a stranger."""
    x, y, z = make_user(username="xavier"), make_user(username="yvonne"), make_user(username="zed")
    mutuals(x, y)
    cameo = active_cameo(x, audience=Audience.MUTUALS, handle="xavier.face")
    post = make_post(y, cameos=[cameo])
    return x, y, z, cameo, post


def files_of(video: Video) -> list[str]:
    return [video.content, video.poster, video.preview]


# --- 1. a remix carries the parent's cameos --------------------------------------------------


def test_a_remix_cannot_launder_a_cameo(cast):
    x, y, z, cameo, post = cast
    stranger = client_for(z)
    r = stranger.post(f"/api/v1/posts/{post.pk}/remix", {"prompt": "again"}, format="json")
    assert_error(r, 403, "cameo_permission_denied", "cameos")
    r = stranger.post(
        "/api/v1/generations", {"prompt": "again", "remix_of": str(post.pk)}, format="json"
    )
    assert_error(r, 403, "cameo_permission_denied", "cameos")
    assert not Generation.objects.filter(owner=z).exists()


def test_a_remix_inherits_the_parents_cameos_as_its_own(cast, make_user):
    x, y, z, cameo, post = cast
    friend = make_user(username="wanda")
    mutuals(x, friend)
    r = client_for(friend).post(f"/api/v1/posts/{post.pk}/remix", {"prompt": "p"}, format="json")
    assert r.status_code == 202, r.content
    assert r.json()["cameos"] == [str(cameo.pk)]
    link = GenerationCameo.objects.get(generation_id=r.json()["id"])
    assert (link.cameo_id, link.instructions_version) == (cameo.pk, cameo.instructions_version)


def test_a_remix_counts_inherited_cameos_towards_the_limit(cast, settings, make_user):
    x, y, z, cameo, post = cast
    settings.RIFF_MAX_CAMEOS_PER_VIDEO = 1
    friend = make_user(username="wanda")
    mutuals(x, friend)
    own = Cameo.objects.create(
        owner=friend, kind="object", display_name="mug", handle="wanda.mug", handle_key="wanda.mug"
    )
    Cameo.objects.filter(pk=own.pk).update(status=CameoStatus.ACTIVE)
    r = client_for(friend).post(
        f"/api/v1/posts/{post.pk}/remix", {"prompt": "p", "cameos": [str(own.pk)]}, format="json"
    )
    assert_error(r, 400, "too_many_cameos")
    assert not Generation.objects.filter(owner=friend).exists()


def test_a_hidden_parent_reveals_nothing_about_its_cameos(cast):
    x, y, z, cameo, post = cast
    block_create(blocker=y, blocked=z)
    r = client_for(z).post(f"/api/v1/posts/{post.pk}/remix", {"prompt": "p"}, format="json")
    assert_error(r, 403, "remix_not_allowed")
    Post.objects.filter(pk=post.pk).update(state=PostState.REMOVED)
    r = client_for(z).post(
        "/api/v1/generations", {"prompt": "p", "remix_of": str(post.pk)}, format="json"
    )
    assert_error(r, 404, "not_found")
    assert not Generation.objects.filter(owner=z).exists()


@commits
def test_removing_an_appearance_reaches_every_remix_carrying_it(cast, make_user, make_post):
    x, y, z, cameo, post = cast
    friend = make_user(username="wanda")
    mutuals(x, friend)
    child = make_post(friend, remix_of=post, cameos=[cameo])
    grandchild_draft = Video.objects.get(pk=make_post(y, remix_of=child, cameos=[cameo]).video_id)
    in_flight = Generation.objects.create(owner=friend, prompt="p", seed=1, remix_of_id=child.pk)
    GenerationCameo.objects.create(generation=in_flight, cameo=cameo, instructions_version=1)
    unrelated = make_post(y)
    files = files_of(child.video) + files_of(grandchild_draft)

    owner = client_for(x)
    r = owner.delete(f"/api/v1/cameos/{cameo.pk}/appearances/{post.video_id}")
    assert r.status_code == 204, r.content

    for p in (post, child):
        assert client_for(friend).get(f"/api/v1/posts/{p.pk}").status_code == 404
    assert Video.objects.get(pk=grandchild_draft.pk).state == "removed"
    assert Generation.objects.get(pk=in_flight.pk).status == GenerationStatus.FAILED
    assert not any(default_storage.exists(name) for name in files)
    assert owner.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"] == []
    assert client_for(z).get(f"/api/v1/posts/{unrelated.pk}").status_code == 200


# --- 2. deleting an account removes every video with the likeness ----------------------------


@commits
def test_account_deletion_removes_drafts_with_the_likeness(cast, make_video_row):
    x, y, z, cameo, post = cast
    draft = make_video_row(y, cameos=[cameo])
    files = files_of(draft) + files_of(post.video)
    assert client_for(x).delete("/api/v1/me").status_code == 204

    author = client_for(y)
    assert_error(author.get(f"/api/v1/videos/{draft.pk}"), 404, "not_found")
    r = author.post("/api/v1/posts", {"video_id": str(draft.pk)}, format="json")
    assert_error(r, 404, "not_found")
    assert_error(author.get(f"/api/v1/posts/{post.pk}"), 404, "not_found")
    assert not Post.objects.filter(video=draft).exists()
    assert not any(default_storage.exists(name) for name in files)


# --- 3. likeness files go with consent and are never public ----------------------------------


def likeness_files(cameo: Cameo) -> list[str]:
    recording = default_storage.save(f"cameos/{cameo.pk}/recording-x.mp4", ContentFile(b"mp4"))
    frames = [
        default_storage.save(f"cameos/{cameo.pk}/ref-{i}.png", ContentFile(b"png")) for i in (0, 1)
    ]
    Cameo.objects.filter(pk=cameo.pk).update(recording=recording, reference_frames=frames)
    cameo.refresh_from_db()
    return [recording, *frames]


@commits
def test_deleting_an_account_deletes_its_files(user, api, active_cameo, make_video_row):
    cameo = active_cameo(user)
    names = likeness_files(cameo) + files_of(make_video_row(user))
    assert all(default_storage.exists(name) for name in names)
    assert api.delete("/api/v1/me").status_code == 204
    assert [name for name in names if default_storage.exists(name)] == []


@commits
@pytest.mark.parametrize("status", [CameoStatus.REVOKED, CameoStatus.REJECTED])
def test_revocation_and_rejection_delete_the_recording(user, active_cameo, status):
    cameo = active_cameo(user)
    Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.VERIFYING)
    names = likeness_files(cameo)
    cameo_transition(cameo=cameo, to=status, reason="test")
    cameo.refresh_from_db()
    assert (cameo.recording, cameo.reference_frames) == ("", [])
    assert [name for name in names if default_storage.exists(name)] == []


@commits
def test_revoking_through_the_api_deletes_the_recording(user, api, active_cameo):
    cameo = active_cameo(user)
    names = likeness_files(cameo)
    assert api.delete(f"/api/v1/cameos/{cameo.pk}").status_code in (200, 204)
    assert Cameo.objects.get(pk=cameo.pk).status == CameoStatus.REVOKED
    assert [name for name in names if default_storage.exists(name)] == []


def test_media_serves_public_avatars_only(user, active_cameo, make_video_row, settings):
    cameo = active_cameo(user)
    recording, frame, _ = likeness_files(cameo)
    video = make_video_row(user)
    avatar = default_storage.save(f"avatars/{user.pk}/a-128.jpg", ContentFile(b"jpeg"))
    settings.MEDIA_ROOT = default_storage.location
    anon = APIClient()
    for name in (recording, frame, video.content, video.poster):
        assert anon.get(f"/media/{name}").status_code == 404, name
    for sneaky in (f"avatars/../{recording}", f"avatars/%2e%2e/{recording}", f"/{recording}"):
        assert anon.get(f"/media/{sneaky}").status_code == 404, sneaky
    r = anon.get(f"/media/{avatar}")
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == b"jpeg"


def test_reference_frames_are_for_staff_only(user, active_cameo, make_user):
    cameo = active_cameo(user)
    likeness_files(cameo)
    url = f"/admin/cameos/cameo/{cameo.pk}/reference/0/"
    visitor = APIClient()
    visitor.force_login(make_user(username="plain"))
    assert visitor.get(url).status_code == 302  # to the admin login
    staff = APIClient()
    staff.force_login(make_user(username="staffer", is_staff=True, is_superuser=True))
    r = staff.get(url)
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == b"png"
    assert staff.get(f"/admin/cameos/cameo/{cameo.pk}/reference/7/").status_code == 404


def test_content_urls_are_signed_and_expire(user, api, make_video_row, settings, monkeypatch):
    video = make_video_row(user)
    url = api.get(f"/api/v1/videos/{video.pk}").json()["content_url"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert set(query) == {"variant", "expires", "sig"}
    anon = APIClient()
    r = anon.get(parts.path, {k: v[0] for k, v in query.items()})
    assert r.status_code == 200
    assert b"".join(r.streaming_content).startswith(b"\0\0\0\x18ftyp")
    # The signature covers one variant of one video, and nothing without it.
    forged = {**{k: v[0] for k, v in query.items()}, "variant": "poster"}
    assert_error(anon.get(parts.path, forged), 401, "not_authenticated")
    tampered = {**{k: v[0] for k, v in query.items()}, "sig": "0" * 40}
    assert_error(anon.get(parts.path, tampered), 401, "not_authenticated")
    assert_error(anon.get(parts.path, {"variant": "video"}), 401, "not_authenticated")
    # Expired.
    import config.core.media

    monkeypatch.setattr(config.core.media.time, "time", lambda: int(query["expires"][0]) + 1)
    assert_error(
        anon.get(parts.path, {k: v[0] for k, v in query.items()}), 401, "not_authenticated"
    )
    monkeypatch.undo()
    # Removal wins over a valid signature.
    Video.objects.filter(pk=video.pk).update(state="removed")
    assert_error(anon.get(parts.path, {k: v[0] for k, v in query.items()}), 404, "not_found")


# --- 4. a block hides videos as it hides posts -----------------------------------------------


def test_a_block_hides_the_video_and_its_content(cast):
    x, y, z, cameo, post = cast
    stranger = client_for(z)
    assert stranger.get(f"/api/v1/videos/{post.video_id}").status_code == 200
    block_create(blocker=y, blocked=z)
    assert_error(stranger.get(f"/api/v1/posts/{post.pk}"), 404, "not_found")
    assert_error(stranger.get(f"/api/v1/videos/{post.video_id}"), 404, "not_found")
    r = stranger.get(f"/api/v1/videos/{post.video_id}/content")
    assert_error(r, 404, "not_found")
    # Either direction.
    other = UserFactory(username="other")
    block_create(blocker=other, blocked=y)
    assert_error(client_for(other).get(f"/api/v1/videos/{post.video_id}"), 404, "not_found")
    # The cameo's owner still finds a video with their likeness, to remove it.
    block_create(blocker=y, blocked=x)
    assert client_for(x).get(f"/api/v1/videos/{post.video_id}").status_code == 200
