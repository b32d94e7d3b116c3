"""The whole pipeline on real PostgreSQL, Redis, a real Celery worker and the real engine code
(tiny config): sign up, verify a cameo, grant a friend, the friend generates with it and
watches progress on the websocket, the MP4 decodes and its C2PA manifest validates, the cameo
owner finds the draft among the appearances and removes it everywhere."""

import io

import av
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.services import invite_mint
from cameos.models import Cameo
from config.asgi import application
from generation.models import Appearance, Generation, Video
from generation.provenance import verify_media
from tests.e2e.test_cameo_verification import wait_for
from tests.helpers import generation_events
from tests.media import make_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("close_sync_thread_connections"),
]


def register(username: str) -> APIClient:
    client = APIClient()
    code = invite_mint(created_by=None).code
    response = client.post(
        "/api/v1/auth/register",
        {
            "username": username,
            "email": f"{username}@example.com",
            "password": "a long secret pass",
            "invite_code": code,
            "birth_date": "1990-02-03",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    client.token = response.json()["token"]
    return client


@sync_to_async
def setup_cameo_and_friend():
    alice, bob = register("alice"), register("bob")
    cameo_id = alice.post(
        "/api/v1/cameos", {"kind": "person", "display_name": "Alice"}, format="json"
    ).json()["id"]
    video = SimpleUploadedFile("me.mp4", make_video(3.0), content_type="video/mp4")
    assert (
        alice.put(
            f"/api/v1/cameos/{cameo_id}/recording", {"video": video}, format="multipart"
        ).status_code
        == 202
    )
    assert wait_for(lambda: Cameo.objects.get(pk=cameo_id).status == "active", 60), (
        Cameo.objects.get(pk=cameo_id).status_reason
    )
    assert (
        alice.post(
            f"/api/v1/cameos/{cameo_id}/grants", {"username": "bob"}, format="json"
        ).status_code
        == 201
    )
    return alice, bob, cameo_id


async def test_friend_generates_with_a_granted_cameo(celery_worker):
    alice, bob, cameo_id = await setup_cameo_and_friend()
    ws = WebsocketCommunicator(
        application, "/ws/", headers=[(b"authorization", f"Bearer {bob.token}".encode())]
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    assert (await ws.receive_json_from(timeout=10))["type"] == "hello"

    response = await sync_to_async(bob.post)(
        "/api/v1/generations",
        {"prompt": "@alice bounces like a red ball", "seconds": 2, "aspect": "9:16", "seed": 11},
        format="json",
        HTTP_IDEMPOTENCY_KEY="e2e-1",
    )
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    assert response.json()["cameos"] == [cameo_id]

    progress, final = await generation_events(ws, job_id)
    await ws.disconnect()
    assert final["type"] == "generation.succeeded", final
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] < 1.0

    body = (await sync_to_async(bob.get)(f"/api/v1/generations/{job_id}")).json()
    assert body["status"] == "succeeded" and body["progress"] == 1.0
    video_id = body["video"]["id"]
    content = await sync_to_async(bob.get)(f"/api/v1/videos/{video_id}/content")
    assert content.status_code == 200 and content["Content-Type"] == "video/mp4"
    data = b"".join(content.streaming_content)

    video = await sync_to_async(Video.objects.get)(pk=video_id)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f for f in container.decode(stream)]
    assert len(frames) == 16 == video.frame_count
    assert (frames[0].width, frames[0].height) == (video.width, video.height)
    assert video.width == 512 and video.height > video.width  # 9:16, short side 512

    result = verify_media(data)
    assert result.has_manifest and result.valid and result.trusted
    assert result.riff["video_id"] == video_id and result.riff["generation_id"] == job_id
    import hashlib

    assert hashlib.sha256(data).hexdigest() == video.sha256 == body["video"]["sha256"]

    # Anyone can ask whether a file was made here.
    upload = SimpleUploadedFile("clip.mp4", data, content_type="video/mp4")
    answer = (
        await sync_to_async(alice.post)(
            "/api/v1/provenance/verify", {"file": upload}, format="multipart"
        )
    ).json()
    assert (
        answer["ours"] is True
        and answer["video_id"] == video_id
        and answer["valid_signature"] is True
    )
    assert answer["manifest"]["generation_id"] == job_id
    stranger = SimpleUploadedFile("x.mp4", make_video(2.0), content_type="video/mp4")
    answer = (
        await sync_to_async(alice.post)(
            "/api/v1/provenance/verify", {"file": stranger}, format="multipart"
        )
    ).json()
    assert answer["ours"] is False and answer["manifest"] is None

    # Bob publishes the draft; alice finds it in Latest with her cameo on it.
    published = await sync_to_async(bob.post)(
        "/api/v1/posts", {"video_id": video_id, "caption": "me and alice"}, format="json"
    )
    assert published.status_code == 201, published.json()
    post_id = published.json()["id"]
    latest = (await sync_to_async(alice.get)("/api/v1/feed?kind=latest")).json()["results"]
    assert [item["post"]["id"] for item in latest] == [post_id]
    assert [c["id"] for c in latest[0]["post"]["cameos"]] == [cameo_id]

    # The cameo owner sees bob's video and removes it everywhere, the post with it.
    appearances = (await sync_to_async(alice.get)(f"/api/v1/cameos/{cameo_id}/appearances")).json()[
        "results"
    ]
    assert [a["video"]["id"] for a in appearances] == [video_id]
    assert (await sync_to_async(alice.get)(f"/api/v1/videos/{video_id}")).status_code == 200
    removed = await sync_to_async(alice.delete)(f"/api/v1/cameos/{cameo_id}/appearances/{video_id}")
    assert removed.status_code == 204
    assert (await sync_to_async(bob.get)(f"/api/v1/videos/{video_id}/content")).status_code == 404
    assert (await sync_to_async(bob.get)("/api/v1/drafts")).json()["results"] == []
    assert (await sync_to_async(alice.get)("/api/v1/feed?kind=latest")).json()["results"] == []
    assert (await sync_to_async(bob.get)(f"/api/v1/posts/{post_id}")).status_code == 404
    assert await sync_to_async(Appearance.objects.filter(video_id=video_id).count)() == 1
    assert await sync_to_async(Generation.objects.filter(owner__username="bob").count)() == 1
