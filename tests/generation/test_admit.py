"""generation.services.admission.admit: the one way an API view starts a generation (the
generations endpoint and the remix endpoint both call it with validated input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from config.core.errors import Forbidden
from generation.models import Aspect, Generation, GenerationCameo, GenerationStatus
from generation.services.admission import admit

pytestmark = pytest.mark.django_db


def test_admit_applies_the_promised_defaults(user, settings):
    settings.RIFF_DEFAULT_SECONDS = 3
    job = admit(user=user, payload={"prompt": "a red ball bounces"})
    job.refresh_from_db()
    assert (job.owner, job.prompt, job.status) == (user, "a red ball bounces", "queued")
    assert (job.seconds, job.aspect, job.remix_of_id, job.serve_id) == (
        3,
        Aspect.PORTRAIT,
        None,
        "",
    )
    assert 0 <= job.seed < 2**31
    assert not GenerationCameo.objects.filter(generation=job).exists()


def test_admit_takes_every_validated_field(user, other, active_cameo, make_post):
    from cameos.models import CameoGrant

    cameo = active_cameo(other)
    CameoGrant.objects.create(cameo=cameo, user=user)
    parent = make_post(other)
    job = admit(
        user=user,
        payload={
            "prompt": "again",
            "cameos": [cameo.pk],
            "remix_of": parent.pk,
            "seconds": 4,
            "aspect": Aspect.SQUARE,
            "seed": 7,
            "serve_id": "",
        },
    )
    job.refresh_from_db()
    assert (job.remix_of_id, job.seconds, job.aspect, job.seed) == (parent.pk, 4, "1:1", 7)
    assert list(job.cameo_links.values_list("cameo_id", flat=True)) == [cameo.pk]


def test_a_refused_admission_writes_nothing(user):
    before = Generation.objects.count()
    with pytest.raises(Forbidden) as refused:
        admit(
            user=user, payload={"prompt": "x", "cameos": ["00000000-0000-0000-0000-000000000000"]}
        )
    assert refused.value.code == "cameo_permission_denied"
    assert Generation.objects.count() == before
    assert not Generation.objects.filter(status=GenerationStatus.QUEUED).exists()


def test_no_app_imports_another_apps_views():
    """Views call services; remix used to import generation.apis to reuse a view helper."""
    base = Path(settings.BASE_DIR)
    offenders = [
        str(path.relative_to(base))
        for app in ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation")
        for path in (base / app).rglob("*.py")
        for other in ("accounts", "cameos", "rights", "generation", "feed", "remix", "moderation")
        if other != app and f"from {other}.apis import" in path.read_text()
    ]
    assert offenders == []


def _both_outs(generation, request) -> tuple[dict, dict]:
    import json

    from rest_framework.renderers import JSONRenderer

    from generation.serializers import GenerationOut, generation_out

    expected = GenerationOut(generation, context={"request": request}).data
    return json.loads(json.dumps(generation_out(generation, request))), json.loads(
        JSONRenderer().render(expected)
    )


@pytest.mark.parametrize("state", ["queued", "failed", "succeeded", "removed", "cancelled"])
def test_generation_out_is_exactly_the_serializer(
    user, other, active_cameo, make_post, make_video_row, state
):
    """Admission and `GET /generations/{id}` build the body by hand (generation_out); it must
    stay GenerationOut in every state: cameos in their order, a remix parent, an error, a
    video (signed URLs, absolute), a removed video hidden."""
    from django.utils import timezone
    from rest_framework.test import APIRequestFactory

    from cameos.models import CameoGrant

    request = APIRequestFactory().get("/api/v1/generations", HTTP_X_FORWARDED_PROTO="https")
    if state in ("succeeded", "removed"):
        job = make_video_row(user, state="draft" if state == "succeeded" else "removed").generation
        job.completed_at = timezone.now()
        job.progress = 1.0
        job.save()
    else:
        cameos = [active_cameo(other), active_cameo(other)]
        for cameo in cameos:
            CameoGrant.objects.create(cameo=cameo, user=user)
        parent = make_post(other)
        job = admit(
            user=user,
            payload={
                "prompt": "a ball ✨",
                "cameos": [cameos[1].pk, cameos[0].pk],
                "remix_of": parent.pk,
                "seed": 7,
            },
        )
        if state != "queued":
            job.status = state
            job.error_code = "engine_error" if state == "failed" else ""
            job.error_message = "it broke" if state == "failed" else ""
            job.completed_at = timezone.now()
            job.save()
        job = Generation.objects.prefetch_related("cameo_links").get(pk=job.pk)
    got, expected = _both_outs(job, request)
    assert got == expected
    assert got["status"] == ("succeeded" if state == "removed" else state)
    assert (got["video"] is None) is (state != "succeeded")
    if state == "succeeded":
        assert got["video"]["content_url"].startswith("https://testserver:80/api/v1/videos/")
    if state == "failed":
        assert got["error"] == {"code": "engine_error", "message": "it broke"}
    if state in ("queued", "failed", "cancelled"):
        assert len(got["cameos"]) == 2 and got["remix_of"] is not None


def test_admission_answers_with_generation_out(user):
    """The 202 body, as the endpoint writes it, against the serializer on the stored row."""
    from rest_framework.test import APIClient, APIRequestFactory

    from accounts.tokens import token_issue

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")
    r = client.post("/api/v1/generations", {"prompt": "a red ball"}, format="json")
    assert r.status_code == 202, r.content
    job = Generation.objects.prefetch_related("cameo_links").get(pk=r.json()["id"])
    request = APIRequestFactory().get("/")
    _, expected = _both_outs(job, request)
    assert r.json() == expected
