"""The contract as a client generator and a new user meet it (issue #28).

- Every answer under /api/ and /v1/ is JSON, errors the envelope, with DEBUG on as under
  `make run`: Django's DEBUG pages (HTML listing every URL pattern) never answer there.
- Request bodies are strict: a key the operation does not take is 400 `invalid` naming it,
  for every operation in the schema, JSON and multipart alike, and nothing is written.
- The docs pages load only this server's static files, and those are served.
- The schema says exactly what responses hold: always-present fields are required (nullable
  ones stay nullable), binary responses list their content types.
- `GET /users/{username}/posts` lists a user's posts.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import warnings

import pytest
from django.apps import apps
from django.core.management import call_command
from django.http import Http404
from django.urls import include, path
from rest_framework.test import APIClient

from accounts.models import AuthToken, User
from accounts.services import block_create, invite_mint
from cameos.services import access_request_create
from config.core.files import AsyncBlocksMixin, FileStream
from feed.services import like_set, post_delete
from generation.models import Generation
from rights.catalogue import AssetMatch, asset_create, holder_create
from rights.claims import claims_record
from tests.conftest import client_for, png_bytes
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


# --- every /api/ and /v1/ answer is the envelope, DEBUG included ------------------------------


def _plain_missing(request):
    raise Http404("gone")


def _plain_broken(request):
    raise RuntimeError("boom")


# Plain Django views (not DRF) under the API prefix, ahead of the project's own routes.
urlpatterns = [
    path("api/v1/_plain/missing", _plain_missing),
    path("api/v1/_plain/broken", _plain_broken),
    path("", include("config.urls")),
]


@pytest.fixture
def debug(settings):
    settings.DEBUG = True  # as under `make run` (RIFF_DEV=1)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/nope",
        "/api/v1/posts/not-a-uuid",
        "/api/v1/posts/not-a-uuid/comments",
        "/api/v1/cameos/123/grants",
        "/api/v1/me/",
        "/api/elsewhere",
    ],
)
def test_unknown_api_paths_are_the_envelope_in_debug(api, debug, url):
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(api, method)(url)
        assert response["Content-Type"] == "application/json", (method, url)
        assert_error(response, 404, "not_found")


def test_the_docs_page_keeps_its_trailing_slash_redirect(anon, debug):
    response = anon.get("/api/docs")
    assert (response.status_code, response["Location"]) == (301, "/api/docs/")


@pytest.mark.urls(__name__)
def test_errors_of_plain_views_under_the_api_are_the_envelope_in_debug(debug):
    client = APIClient(raise_request_exception=False)
    assert_error(client.get("/api/v1/_plain/missing"), 404, "not_found")
    assert_error(client.get("/api/v1/_plain/broken"), 500, "server_error")


def test_a_bad_host_header_under_the_api_is_the_envelope_in_debug(api, debug):
    error = assert_error(api.get("/api/v1/me", HTTP_HOST="evil.example"), 400, "invalid")
    assert "evil.example" not in error["message"]


def test_pages_outside_the_api_keep_djangos_debug_pages(anon, debug):
    response = anon.get("/no-such-page")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


# --- strict input ------------------------------------------------------------------------------

EXTRA = "zz_not_a_field"


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


@pytest.fixture
def walker(make_user, other, active_cameo, make_post, make_video_row):
    """A staff caller (staff-only operations validate their body too) with an object for every
    path parameter an operation with a body takes."""
    user = make_user(username="walker", is_staff=True)
    cameo = active_cameo(user)
    asked = active_cameo(user, handle="asked")
    request = access_request_create(cameo=asked, requester=other)
    post = make_post(user)
    holder = holder_create(name="Walker Studios", members=[user])
    asset = asset_create(
        holder=holder, actor=user, data={"name": "Walker Kid", "policy": "licensed", "share_bps": 5}
    )
    (claim,) = claims_record(
        video_id=post.video_id, owner=user, matches=[AssetMatch(asset, "alias", "x", "prompt")]
    )
    # Moderation: a ticket, an event on the walker's post and an appeal of it.
    from django.contrib.auth.models import Group

    from moderation.services import appeal_create, event_record, report_create

    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    report, _ = report_create(
        reporter=other, subject_type="post", subject_id=str(post.pk), reason="spam"
    )
    labelled, _ = event_record(
        actor=make_user(username="walker_mod", is_superuser=True, is_staff=True),
        subject_type="post",
        subject_id=str(post.pk),
        type="label",
        label="satire",
    )
    appeal = appeal_create(user=user, event_id=labelled.public_id, text="not satire")
    # A webhook endpoint and a delivery (rows: registering would resolve the URL).
    from generation.models import WebhookDelivery, WebhookEndpoint

    hook = WebhookEndpoint.objects.create(
        user=user, url="https://hooks.example/walk", events=["video.failed"], secret="whsec_AAAA"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=hook, event_id="evt_walker", event_type="video.failed", payload={}
    )
    return {
        "client": client_for(user),
        "params": {
            "ticket_id": report.ticket_id,
            "appeal_id": appeal.pk,
            "holder_id": holder.pk,
            "asset_id": asset.pk,
            "claim_id": claim.pk,
            "cameo_id": cameo.pk,
            "post_id": post.pk,
            "video_id": make_video_row(user).pk,
            "generation_id": post.video.generation_id,
            "request_id": request.pk,
            "username": other.username,
            "webhook_id": hook.pk,
            "delivery_id": delivery.pk,
        },
    }


def test_every_operation_with_a_body_refuses_an_unknown_field(schema, walker):
    client, params = walker["client"], walker["params"]
    before = _row_counts()
    walked = {"application/json": 0, "multipart/form-data": 0}
    failures = []

    def refused(response, what: str) -> None:
        body = response.json() if response["Content-Type"] == "application/json" else {}
        error = body.get("error", {})
        if (response.status_code, error.get("code")) != (400, "invalid") or EXTRA not in error.get(
            "fields", {}
        ):
            failures.append((what, response.status_code, str(body)[:200]))

    for template, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if not content:
                continue
            names = re.findall(r"{(\w+)}", template)
            missing = [name for name in names if name not in params]
            assert not missing, f"{template}: give the walker a value for {missing}"
            url = template.format(**{name: params[name] for name in names})
            call = getattr(client, method)
            if "application/json" in content:
                refused(call(url, {EXTRA: 1}, format="json"), f"{method} {template} json")
                walked["application/json"] += 1
            if "multipart/form-data" in content:
                response = call(url, {EXTRA: "1"}, format="multipart")
                refused(response, f"{method} {template} multipart")
                walked["multipart/form-data"] += 1
    assert not failures, failures
    assert _row_counts() == before
    # The walk reached what it was meant to (a schema that hid bodies would pass vacuously).
    assert walked["application/json"] >= 16 and walked["multipart/form-data"] == 3, walked


def test_login_refuses_remember(anon, user):
    response = anon.post(
        "/api/v1/auth/login",
        {"username": user.username, "password": "correct horse battery", "remember": True},
        format="json",
    )
    error = assert_error(response, 400, "invalid", "remember")
    assert error["fields"] == {"remember": ["Unknown field."]}
    assert error["message"] == "remember: Unknown field."
    assert not AuthToken.objects.filter(user=user).exists()


def test_a_generation_refuses_duration(api, user):
    response = api.post(
        "/api/v1/generations", {"prompt": "a red ball", "duration": 5}, format="json"
    )
    assert_error(response, 400, "invalid", "duration")
    assert not Generation.objects.exists()


def test_register_refuses_an_unknown_field_and_creates_nobody(anon):
    code = invite_mint(created_by=None).code
    body = {
        "username": "newcomer",
        "email": "n@example.com",
        "password": "a long enough secret",
        "invite_code": code,
        "birth_date": "1998-04-02",
        "referrer": "bob",
    }
    assert_error(
        anon.post("/api/v1/auth/register", body, format="json"), 400, "invalid", "referrer"
    )
    assert not User.objects.filter(username="newcomer").exists()


def test_patch_refuses_an_unknown_field_next_to_a_known_one(api, user):
    response = api.patch("/api/v1/me", {"display_name": "New", "nickname": "x"}, format="json")
    assert_error(response, 400, "invalid", "nickname")
    user.refresh_from_db()
    assert user.display_name != "New"


def test_nested_items_refuse_unknown_fields_by_their_path(api, other, make_post):
    post = make_post(other)
    event = {"post_id": str(post.pk), "serve_id": "s", "event": "impression", "dwell": 3}
    response = api.post("/api/v1/feed/events", {"events": [event]}, format="json")
    assert_error(response, 400, "invalid", "events.0.dwell")


def test_multipart_refuses_an_unknown_part_and_keeps_the_old_avatar(api, user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")
    response = api.put("/api/v1/me/avatar", {"image": image, "crop": "1"}, format="multipart")
    assert_error(response, 400, "invalid", "crop")
    user.refresh_from_db()
    assert not user.avatar_large and not user.avatar_small


def test_many_unknown_keys_are_named_a_few_at_a_time(api):
    body = {f"k{i:03d}": i for i in range(500)}
    error = assert_error(api.patch("/api/v1/me", body, format="json"), 400, "invalid")
    assert sorted(error["fields"]) == [f"k{i:03d}" for i in range(10)]


def test_request_components_forbid_additional_properties(schema):
    requests = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request")
    }
    assert len(requests) >= 18
    for name, component in requests.items():
        assert component["additionalProperties"] is False, name


# --- docs without a CDN ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_load_only_this_servers_static_files(settings, tmp_path, page):
    # As a release does: collectstatic, then WhiteNoise serves STATIC_ROOT.
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    client = APIClient()
    response = client.get(page)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    # No absolute or protocol-relative URL anywhere (attributes, inline scripts, styles).
    assert "http://" not in html and "https://" not in html and '"//' not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith("/static/drf_spectacular_sidecar/") for u in urls), urls
    for url in urls:
        static = client.get(url)
        assert static.status_code == 200, url
        assert isinstance(static, AsyncBlocksMixin), url  # streamed block by block under ASGI
        served = b"".join(static.streaming_content)
        assert served == (settings.STATIC_ROOT / url.removeprefix("/static/")).read_bytes(), url


# --- the schema says exactly what responses hold ------------------------------------------------

# Fields a response may leave out, and why.
OPTIONAL_OUTPUT = {
    # `kind` says which of the two a feed item carries.
    "FeedItemOut": {"post", "prompt"},
    # A card names a post or a cameo, or neither.
    "CreatePromptOut": {"post_id", "cameo_id"},
}
# Chain placeholders (a post the viewer may not see) carry only id, state and depth.
PLACEHOLDER_ONLY = {"id", "state", "depth", "children"}


def _response_components(schema) -> dict[str, dict]:
    return {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if not name.endswith("Request") and component.get("type") == "object"
    }


def test_every_always_present_response_field_is_required(schema):
    for name, component in _response_components(schema).items():
        properties = set(component.get("properties", {}))
        optional = properties - set(component.get("required", []))
        if name in ("ChainPostOut", "RemixTreeNodeOut"):
            assert optional == properties - PLACEHOLDER_ONLY, name
        else:
            assert optional == OPTIONAL_OUTPUT.get(name, set()), (name, optional)


@pytest.mark.parametrize(
    "component,fields",
    [
        ("GenerationOut", ["status", "progress", "created_at", "seconds", "aspect"]),
        ("PostOut", ["caption", "depth", "allow_remix", "created_at"]),
        ("VideoOut", ["state", "created_at"]),
        ("CameoOut", ["status", "audience", "instructions", "restrictions", "created_at"]),
        ("AccessRequestOut", ["status", "message", "created_at", "decided_at"]),
        ("MeOut", ["display_name", "bio", "email", "created_at"]),
        ("UserBriefOut", ["display_name"]),
    ],
)
def test_the_fields_the_issue_names_are_required(schema, component, fields):
    required = set(schema["components"]["schemas"][component]["required"])
    assert set(fields) <= required


def test_nullable_fields_stay_nullable_and_required(schema):
    schemas = schema["components"]["schemas"]
    for component, field in [
        ("GenerationOut", "completed_at"),
        ("GenerationOut", "video"),
        ("AccessRequestOut", "decided_at"),
        ("InviteOut", "used_at"),
        ("PostOut", "remix_of"),
    ]:
        assert field in schemas[component]["required"], (component, field)
        assert schemas[component]["properties"][field].get("nullable") is True, (component, field)


def test_binary_responses_list_their_content_types(schema):
    ok = schema["paths"]["/api/v1/videos/{video_id}/content"]["get"]["responses"]["200"]
    binary = {"type": "string", "format": "binary"}
    assert ok["content"] == {
        media: {"schema": binary}
        for media in ("video/mp4", "image/jpeg", "image/webp", "application/octet-stream")
    }


@pytest.mark.parametrize(
    "accept,variant,expected",
    [
        (None, "video", "video/mp4"),
        ("video/mp4", "video", "video/mp4"),  # refused 406 before: JSON was all DRF could render
        ("image/webp", "preview", "image/webp"),
        ("application/octet-stream", "video", "application/octet-stream"),
        ("application/octet-stream, video/mp4", "video", "video/mp4"),
        ("*/*", "poster", "image/jpeg"),
    ],
)
def test_content_answers_the_types_the_schema_lists(
    api, user, make_video_row, accept, variant, expected
):
    video = make_video_row(user)
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = api.get(f"/api/v1/videos/{video.pk}/content?variant={variant}", **headers)
    assert (response.status_code, response["Content-Type"]) == (200, expected)
    assert b"".join(response.streaming_content)  # read to the end, which closes the file


def test_content_errors_are_json_whatever_the_accept_header(api):
    response = api.get(f"/api/v1/videos/{uuid.uuid4()}/content", HTTP_ACCEPT="video/mp4")
    assert_error(response, 404, "not_found")


def test_file_downloads_stream_block_by_block_under_asgi(tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "clip.bin").write_bytes(data)

    async def read() -> list[bytes]:
        response = FileStream((tmp_path / "clip.bin").open("rb"))
        response.block_size = 1024
        blocks = [block async for block in response]
        response.close()
        return blocks

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django's sync-iterator fallback warns
        blocks = asyncio.run(read())
    assert b"".join(blocks) == data and len(blocks) == 10


def test_avatars_stream_block_by_block_too(api, user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("a.png", png_bytes(), content_type="image/png")
    me = api.put("/api/v1/me/avatar", {"image": image}, format="multipart").json()
    response = api.get(me["avatar_url"])
    assert response.status_code == 200 and isinstance(response, AsyncBlocksMixin)
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")  # the JPEG variant


# --- GET /users/{username}/posts ---------------------------------------------------------------


def test_a_users_posts_newest_first_in_pages(api, user, other, make_post):
    first, second, third = (make_post(other, caption=f"c{i}") for i in range(3))
    gone = make_post(other)
    post_delete(user=other, post=gone)
    make_post(user)  # someone else's post is not in the list
    like_set(user=user, post=second, liked=True)

    page = api.get(f"/api/v1/users/{other.username}/posts?limit=2").json()
    assert [p["id"] for p in page["results"]] == [str(third.pk), str(second.pk)]
    assert page["results"][1]["liked_by_me"] is True and page["results"][1]["like_count"] == 1
    assert page["results"][0]["author"]["username"] == other.username
    rest = api.get(page["next"]).json()
    assert [p["id"] for p in rest["results"]] == [str(first.pk)] and rest["next"] is None


def test_a_users_posts_have_the_post_shape(api, other, make_post):
    make_post(other)
    post = api.get(f"/api/v1/users/{other.username}/posts").json()["results"][0]
    detail = api.get(f"/api/v1/posts/{post['id']}").json()
    assert post == detail


@pytest.mark.parametrize("direction", ["they_blocked", "i_blocked"])
def test_a_block_hides_a_users_posts(api, user, other, make_post, direction):
    make_post(other)
    blocker, blocked = (other, user) if direction == "they_blocked" else (user, other)
    block_create(blocker=blocker, blocked=blocked)
    assert_error(api.get(f"/api/v1/users/{other.username}/posts"), 404, "not_found")


def test_an_unknown_users_posts_are_404(api):
    assert_error(api.get("/api/v1/users/nobody_here/posts"), 404, "not_found")


def test_a_users_posts_page_is_a_constant_number_of_queries(
    api, other, make_post, django_assert_max_num_queries
):
    for _ in range(3):
        make_post(other)
    with django_assert_max_num_queries(10) as few:
        assert len(api.get(f"/api/v1/users/{other.username}/posts").json()["results"]) == 3
    for _ in range(12):
        make_post(other)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(f"/api/v1/users/{other.username}/posts").json()["results"]) == 15


def test_user_posts_are_in_the_schema(schema):
    operation = schema["paths"]["/api/v1/users/{username}/posts"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/PaginatedPostOutList")
