import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from accounts.models import AuthToken, Follow, Notification, User
from tests.conftest import client_for, png_bytes
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_me_fields(api, user):
    body = api.get("/api/v1/me").json()
    assert {"id", "username", "display_name", "bio", "avatar_url", "is_teen", "created_at"} <= set(
        body
    )
    assert body["id"] == str(user.pk)
    assert body["avatar_url"] is None


def test_patch_me(api, user):
    response = api.patch(
        "/api/v1/me", {"display_name": "Alice\u202e evil", "bio": "hi"}, format="json"
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.display_name == "Alice evil"  # bidi override stripped
    assert user.bio == "hi"


def test_patch_me_too_long_changes_nothing(api, user):
    assert_error(
        api.patch("/api/v1/me", {"bio": "x" * 301, "display_name": "ok"}, format="json"),
        400,
        "invalid",
        "bio",
    )
    user.refresh_from_db()
    assert user.bio == "" and user.display_name == ""


def _stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_avatar_upload_makes_square_variants_without_exif(api, user, settings):
    image = Image.new("RGB", (300, 200), (10, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N"}  # GPS IFD
    raw = io.BytesIO()
    image.save(raw, format="JPEG", exif=exif)
    response = api.put(
        "/api/v1/me/avatar", {"image": _upload(raw.getvalue(), "me.jpg")}, format="multipart"
    )
    assert response.status_code == 200, response.content
    user.refresh_from_db()
    sizes = []
    for name in (user.avatar_large, user.avatar_small):
        with default_storage.open(name) as fh:
            stored = Image.open(fh)
            stored.load()
            sizes.append(stored.size)
            assert stored.format == "JPEG"
            assert len(stored.getexif()) == 0
    assert sizes == [(512, 512), (128, 128)]
    assert response.json()["avatar_url"].endswith(user.avatar_large)


def test_avatar_replacement_deletes_old_files(
    api, user, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api.put("/api/v1/me/avatar", {"image": _upload(png_bytes(), "a.png")}, format="multipart")
    user.refresh_from_db()
    first = user.avatar_large
    with django_capture_on_commit_callbacks(execute=True):
        api.put(
            "/api/v1/me/avatar",
            {"image": _upload(png_bytes(color=(0, 0, 255)), "b.png")},
            format="multipart",
        )
    assert not default_storage.exists(first)
    assert len(_stored_files(settings.MEDIA_ROOT)) == 2


def _upload(content, name, content_type="application/octet-stream"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.mark.parametrize(
    "content,status,code",
    [
        (b"", 400, "invalid_media"),
        (b"just some text, not an image", 415, "unsupported_media"),
        (png_bytes()[:60], 400, "invalid_media"),  # truncated
        (png_bytes(fmt="BMP"), 415, "unsupported_media"),  # real image, format not allowed
    ],
)
def test_avatar_bad_input_stores_nothing(api, user, settings, content, status, code):
    response = api.put(
        "/api/v1/me/avatar", {"image": _upload(content, "x.png")}, format="multipart"
    )
    assert_error(response, status, code)
    user.refresh_from_db()
    assert user.avatar_large == "" and user.avatar_small == ""
    assert not settings.MEDIA_ROOT.exists() or _stored_files(settings.MEDIA_ROOT) == []


def test_avatar_decompression_bomb_is_refused(api, user, settings):
    settings.RIFF_AVATAR_MAX_PIXELS = 10_000
    # A tiny file that claims a huge canvas: 4000x4000 of one colour compresses to a few KB.
    bomb = png_bytes(size=(4000, 4000), color=(0, 0, 0))
    assert len(bomb) < 100_000
    assert_error(
        api.put("/api/v1/me/avatar", {"image": _upload(bomb, "bomb.png")}, format="multipart"),
        413,
        "too_large",
    )
    assert not settings.MEDIA_ROOT.exists() or _stored_files(settings.MEDIA_ROOT) == []


def test_avatar_too_many_bytes(api, user, settings):
    settings.RIFF_AVATAR_MAX_BYTES = 1000
    assert_error(
        api.put(
            "/api/v1/me/avatar", {"image": _upload(b"\0" * 2000, "big.png")}, format="multipart"
        ),
        413,
        "too_large",
    )


def test_avatar_missing_field(api):
    assert_error(api.put("/api/v1/me/avatar", {}, format="multipart"), 400, "invalid", "image")


DELETED = []


def record_deletion(*, user):
    DELETED.append(user.username)


def test_delete_me_removes_everything_and_runs_hooks(
    api, user, other, settings, django_capture_on_commit_callbacks
):
    settings.RIFF_HOOKS = {
        **settings.RIFF_HOOKS,
        "account.deleted": ["tests.accounts.test_profile.record_deletion"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        api.put("/api/v1/me/avatar", {"image": _upload(png_bytes(), "a.png")}, format="multipart")
    Follow.objects.create(follower=user, followee=other)
    Follow.objects.create(follower=other, followee=user)
    Notification.objects.create(recipient=other, kind="follow", actor=user)
    DELETED.clear()
    assert api.delete("/api/v1/me").status_code == 204
    assert DELETED == ["alice"]
    assert not User.objects.filter(pk=user.pk).exists()
    assert not AuthToken.objects.filter(user_id=user.pk).exists()
    assert Follow.objects.count() == 0
    assert Notification.objects.count() == 0
    assert _stored_files(settings.MEDIA_ROOT) == []
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")


@pytest.mark.parametrize("avatar", [False, True])
def test_me_is_exactly_the_me_serializer(make_user, teen_birth_date, avatar):
    """`GET /me` builds its body by hand (accounts.serializers.me_out); it must stay MeOut."""
    import json

    from rest_framework.renderers import JSONRenderer
    from rest_framework.test import APIRequestFactory

    from accounts.serializers import MeOut, me_out

    user = make_user(username="mirror", display_name="Mïrror ✨", bio="a <b>bio</b>\u2028")
    if avatar:
        user.avatar_large, user.avatar_small = "avatars/l.webp", "avatars/s.webp"
        user.birth_date = teen_birth_date
        user.save()
    request = APIRequestFactory().get("/api/v1/me", HTTP_X_FORWARDED_PROTO="https")
    expected = json.loads(JSONRenderer().render(MeOut(user, context={"request": request}).data))
    assert json.loads(json.dumps(me_out(user, request))) == expected
    assert expected["is_teen"] is avatar
    r = client_for(user).get("/api/v1/me")
    assert r.json()["username"] == "mirror" and r.json()["avatar_url"] == (
        "http://testserver/media/avatars/l.webp" if avatar else None
    )
    # Written without DRF's renderer (config.core.jsonbody): the very bytes and type it writes.
    rendered = JSONRenderer().render(
        MeOut(user, context={"request": APIRequestFactory().get("/api/v1/me")}).data
    )
    assert r.content == rendered and b"\\u2028" in rendered
    assert r["Content-Type"] == "application/json"
