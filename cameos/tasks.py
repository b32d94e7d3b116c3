from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .models import Cameo, CameoKind, CameoStatus
from .recording import analyse_recording

logger = logging.getLogger(__name__)


@shared_task(name="cameos.tasks.cameo_verify", acks_late=True, max_retries=3)
def cameo_verify(cameo_id: str) -> str:
    """Runs the automatic checks on a cameo's recording. Idempotent: a cameo that is no longer
    `verifying` (already decided, revoked, or re-recorded and decided) is left alone."""
    from .services import cameo_record_verification

    cameo = Cameo.objects.filter(pk=cameo_id).first()
    if cameo is None or cameo.status != CameoStatus.VERIFYING or not cameo.recording:
        return "skipped"
    with default_storage.open(cameo.recording, "rb") as fh:
        data = fh.read()
    analysis = analyse_recording(data, require_audio=cameo.kind == CameoKind.PERSON)
    stamp = uuid.uuid4().hex[:8]
    names = [
        default_storage.save(f"cameos/{cameo.pk}/ref-{stamp}-{i}.png", ContentFile(png))
        for i, png in enumerate(analysis.reference_frames)
    ]
    # Re-check under the row lock: a concurrent revoke or a second delivery may have won.
    current = Cameo.objects.filter(pk=cameo_id).values_list("status", flat=True).first()
    if current != CameoStatus.VERIFYING:
        for name in names:
            default_storage.delete(name)
        return "skipped"
    old = list(cameo.reference_frames)
    try:
        cameo = cameo_record_verification(cameo=cameo, analysis=analysis, reference_names=names)
    except Exception:
        for name in names:
            default_storage.delete(name)
        raise
    for name in old:
        default_storage.delete(name)
    logger.info("cameo %s verified: %s", cameo_id, cameo.status)
    return cameo.status
