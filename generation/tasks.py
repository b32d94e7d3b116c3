"""The generation worker (`gpu` queue) and the beat tasks that keep jobs moving.

A job runs once however often its message is delivered: the claim is a conditional UPDATE,
every later write presents the attempt number it claimed with, and the video row is unique per
generation. A crash leaves a `running` job whose lease runs out; `generation_sweep` then
re-queues it (or fails it after the last attempt), so no job stays `running` forever.
"""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.conf import settings
from django.db import transaction

from cameos.consent import cameo_decisions
from config.core import hooks
from config.core.errors import ApiError
from rights.catalogue import IPDecision, ip_decision
from rights.claims import claims_record

from .dispatch import dispatch_after_commit
from .engine.backends import EngineUnavailable
from .hooks import OUTPUT_CHECK
from .metrics import JOBS_IN_FLIGHT
from .models import Generation, GenerationCameo, GenerationStatus
from .runner import render_job, sample_job
from .services.admission import inherited_video
from .services.jobs import (
    LostLease,
    ProgressReporter,
    generation_claim,
    generation_heartbeat,
    generation_reap,
    generation_transition,
)
from .services.videos import delete_files, store_rendered, video_create
from .timing import StageClock, report
from .webhooks import tasks as webhook_tasks  # noqa: F401 - registers them with Celery
from .webhooks.services import video_event_type, webhook_event_emit

logger = logging.getLogger(__name__)
G = GenerationStatus


def _ip_decision(job: Generation) -> IPDecision:
    links = GenerationCameo.objects.filter(generation=job).select_related("cameo")
    return ip_decision(
        user=job.owner,
        prompt=job.prompt,
        cameos=[link.cameo for link in links],
        semantic=True,
        inherited_from=inherited_video(job.source_video_id, job.remix_of_id),
    )


def _output_problems(job: Generation, frames) -> list[str]:
    """What the output checks (the `video.output_check` hook) found in the sampled frames.
    A check that raises is a problem too: fail closed, an unchecked video is held for review,
    never delivered (and the job is not retried: the frames are fine to keep)."""
    try:
        answers = hooks.run(OUTPUT_CHECK.name, job=job, frames=frames)
    except Exception as exc:
        logger.exception("generation %s: the output check failed", job.pk)
        return [f"The output check could not run ({exc.__class__.__name__}); held to be safe."]
    return [str(problem) for found in answers for problem in (found or [])]


def _consent_lost(job: Generation) -> str | None:
    """The handle of the first of the job's cameos its owner may no longer use, or None. One
    query for the links, one for every decision (cameos.consent.cameo_decisions)."""
    links = list(
        GenerationCameo.objects.filter(generation=job)
        .order_by("position")
        .values_list("cameo_id", "cameo__handle")
    )
    if not links:
        return None
    decisions = cameo_decisions(job.owner, [cameo_id for cameo_id, _ in links])
    for cameo_id, handle in links:
        decision = decisions.get(cameo_id)
        if decision is None or not decision.allowed:
            return handle
    return None


@shared_task(name="generation.tasks.generation_run", acks_late=True, bind=True)
def generation_run(self, generation_id: str) -> str:
    clock = StageClock()
    outcome = "error"
    try:
        outcome = _run(generation_id, clock)
        return outcome
    finally:
        if outcome != "skipped":
            report(str(generation_id), clock, outcome)


def _run(generation_id: str, clock: StageClock) -> str:
    with clock.stage("claim"):
        job = generation_claim(generation_id=generation_id)
        if job is None:
            return "skipped"
    clock.engine = job.model or settings.RIFF_ENGINE
    in_flight = JOBS_IN_FLIGHT.labels(clock.engine)
    in_flight.inc()
    try:
        return _run_claimed(job, clock)
    finally:
        in_flight.dec()


def _run_claimed(job: Generation, clock: StageClock) -> str:
    generation_id = job.pk
    attempt = job.attempts
    try:
        with clock.stage("checks"):
            lost = _consent_lost(job)
            if lost:
                return _fail(
                    job, attempt, "cameo_consent_revoked", f"@{lost} can no longer be used."
                )
            # Registered IP against the catalogue as it is now, with the semantic check (a
            # description of a blocked character without its name); what it matched becomes
            # the video's claims.
            ip = _ip_decision(job)
            refusal = ip.refusal()
            if refusal is not None:
                return _fail(job, attempt, "ip_blocked", str(refusal.detail))

        progress = ProgressReporter(job)
        try:
            frames, fps = sample_job(job, progress, clock=clock)
        finally:
            progress.close()
            clock.note("progress", progress.seconds)
        with clock.stage("verify"):
            # Consent is checked again after sampling: an owner may have withdrawn it
            # meanwhile.
            lost = _consent_lost(job)
            if lost:
                return _fail(
                    job,
                    attempt,
                    "cameo_consent_revoked",
                    f"@{lost} was withdrawn while generating.",
                )
            # The output check looks at the frames before anything is delivered: a problem
            # holds the video for moderation (state `held`) instead of making it a draft.
            problems = _output_problems(job, frames)
            generation_heartbeat(generation=job, progress=0.96)
        video_id = uuid.uuid4()
        rendered = render_job(job, video_id=video_id, frames=frames, fps=fps, clock=clock)
        with clock.stage("store"):
            files = store_rendered(generation=job, rendered=rendered)
        try:
            with clock.stage("finish"), transaction.atomic():
                generation_transition(generation=job, to=G.SUCCEEDED, attempt=attempt)
                if _consent_lost(job):
                    raise _ConsentRace()
                video_create(
                    generation=job,
                    video_id=video_id,
                    rendered=rendered,
                    files=files,
                    problems=problems,
                )
                claims_record(video_id=video_id, owner=job.owner, matches=ip.matches)
                webhook_event_emit(
                    user_id=job.owner_id,
                    event_type=video_event_type(status=G.SUCCEEDED, held=bool(problems)),
                    data={"id": str(job.pk)},
                )
            clock.mark_finished()
        except _ConsentRace:
            delete_files(files.values())
            return _fail(
                job, attempt, "cameo_consent_revoked", "A cameo was withdrawn while finishing."
            )
        except BaseException:
            delete_files(files.values())
            raise
        return "succeeded"
    except LostLease:
        logger.info("generation %s: lease lost or cancelled; stopping", generation_id)
        return "lost"
    except EngineUnavailable as exc:
        logger.error("generation %s: engine unavailable: %s", generation_id, exc)
        return _fail(
            job, attempt, "engine_unavailable", "The video engine is not available on this worker."
        )
    except ApiError as exc:
        # The job's own inputs refused on the worker (generation.runner: `source_unavailable`,
        # `input_reference_unsupported`, `input_reference_person`, ...): another attempt would
        # meet the same inputs, so the job fails at once with the refusal's code.
        logger.info("generation %s refused: %s", generation_id, exc.code)
        return _fail(job, attempt, exc.code, str(exc.detail))
    except Exception as exc:
        logger.exception("generation %s failed", generation_id)
        return _retry_or_fail(job, attempt, "engine_error", f"{exc.__class__.__name__}: {exc}")


class _ConsentRace(Exception):
    pass


def _fail(job: Generation, attempt: int, code: str, message: str) -> str:
    try:
        generation_transition(
            generation=job, to=G.FAILED, attempt=attempt, error_code=code, error_message=message
        )
    except LostLease:
        return "lost"
    return "failed"


def _retry_or_fail(job: Generation, attempt: int, code: str, message: str) -> str:
    if attempt >= settings.RIFF_GENERATION_MAX_ATTEMPTS:
        return _fail(job, attempt, code, message)
    try:
        with transaction.atomic():
            generation_transition(generation=job, to=G.QUEUED, attempt=attempt)
            # Sent once the retry is committed; a message the broker refused is re-sent by
            # generation_sweep (generation.dispatch).
            dispatch_after_commit(job)
    except LostLease:
        return "lost"
    return "retrying"


@shared_task(name="generation.tasks.generation_sweep")
def generation_sweep() -> dict[str, int]:
    return generation_reap()
