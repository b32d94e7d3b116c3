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
