import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cameos.models import Audience, Cameo, CameoStatus
from cameos.services import cameo_create
from generation.models import Appearance, Generation, GenerationCameo, GenerationStatus, Video


@pytest.fixture
def active_cameo(db):
    def make(owner, *, audience=Audience.APPROVED, kind="object", handle=None):
        cameo = cameo_create(owner=owner, kind=kind, display_name="thing", handle=handle)
        Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE, audience=audience)
        cameo.refresh_from_db()
        return cameo

    return make


@pytest.fixture
def make_video_row(db):
    """A finished generation with a stored (tiny) video, for visibility tests that don't need
    the engine. Whole-pipeline tests make real ones."""

    def make(owner, *, cameos=(), state="draft"):
        job = Generation.objects.create(
            owner=owner, prompt="p", seed=1, status=GenerationStatus.SUCCEEDED
        )
        names = {
            "content": default_storage.save(
                f"videos/t/{job.pk}.mp4", ContentFile(b"\0\0\0\x18ftypmp42")
            ),
            "poster": default_storage.save(f"videos/t/{job.pk}.jpg", ContentFile(b"jpg")),
            "preview": default_storage.save(f"videos/t/{job.pk}.webp", ContentFile(b"webp")),
        }
        video = Video.objects.create(
            owner=owner,
            generation=job,
            state=state,
            seconds=2,
            width=512,
            height=512,
            frame_count=16,
            sha256="0" * 64,
            **names,
        )
        for cameo in cameos:
            GenerationCameo.objects.create(generation=job, cameo=cameo, instructions_version=1)
            Appearance.objects.create(video=video, cameo=cameo, instructions_version=1)
        return video

    return make
