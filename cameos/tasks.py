from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import shared_task
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from config.core.redis import publish

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
    analysis = analyse_recording(
        data,
        require_audio=cameo.kind == CameoKind.PERSON,
        # A character is made up; one that shows a real person's face is someone's likeness
        # without their verification, and is rejected (a person records a `person` cameo).
        check_faces=cameo.kind == CameoKind.CHARACTER,
    )
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


# A verification whose message was lost (the broker was down at upload) is sent again after
# this long; one still running by then is harmless to send twice (the task re-checks the
# status, and only one decision can be recorded).
VERIFY_RESEND_AFTER = timedelta(minutes=5)
VERIFY_GIVE_UP_AFTER = timedelta(days=1)


@shared_task(name="cameos.tasks.cameo_verify_sweep", ignore_result=True)
def cameo_verify_sweep() -> int:
    """Beat: re-sends the verification of cameos stuck in `verifying` (a lost message)."""
    now = timezone.now()
    stuck = Cameo.objects.filter(
        status=CameoStatus.VERIFYING,
        updated_at__lt=now - VERIFY_RESEND_AFTER,
        updated_at__gt=now - VERIFY_GIVE_UP_AFTER,
    ).values_list("pk", flat=True)[:500]
    count = 0
    for cameo_id in stuck:
        publish(cameo_verify, str(cameo_id))
        count += 1
    return count
