"""What the Videos API does, in Riff's terms: every video starts through `generation_admit`.

- create: a generation with `size` (the delivered frame) and `seconds` (4, 8 or 12: the worker
  extends clip by clip past what the engine makes at once), optionally from a first-frame image;
- remix: a new clip continuing the source's last frames under a new prompt; when the source is
  posted it is a remix of that post (lineage, revenue), as the app's remix is;
- extension: the source continued by `seconds` more, delivered stitched (source + new);
- edit: the source re-rendered under a new prompt (same seed, length and frame);
- delete: the video removed everywhere (its post too) and gone from /v1; a running job is
  cancelled first;
- characters: a cameo of kind `character` owned by the key's user, from an uploaded video;
  it goes through verification and review like every character (a real person is refused:
  that needs the verified cameo flow).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from accounts.models import User
from cameos.models import Cameo, CameoKind
from cameos.recording import probe_recording
from cameos.services import cameo_create, cameo_submit_recording
from config.core import hooks
from config.core.errors import ApiError, Conflict, Invalid, NotFound, TooLarge

from ..engine.backends import engine_takes_images
from ..hooks import VIDEO_LIVE_POST
from ..models import Aspect, Generation, GenerationStatus, SourceMode, Video, VideoState
from ..services.admission import AdmissionRequest, generation_admit
from ..services.jobs import TERMINAL, generation_cancel
from ..services.videos import video_remove
from . import shapes

ASPECT_OF_SIZE = {
    "720x1280": Aspect.PORTRAIT,
    "1024x1792": Aspect.PORTRAIT,
    "1280x720": Aspect.LANDSCAPE,
    "1792x1024": Aspect.LANDSCAPE,
}
# The longest side a reference image is kept at: the engine reads a few dozen pixels of it.
REFERENCE_LONG_SIDE = 1024
DELIVERABLE = (VideoState.DRAFT, VideoState.POSTED)


def model_resolve(name: str | None) -> str:
    """The engine a `model` names: a configured one, or an alias of the default one."""
    if not name:
        return settings.RIFF_ENGINE
    if name in settings.RIFF_VIDEO_MODELS:
        return name
    if name in settings.RIFF_VIDEO_MODEL_ALIASES:
        return settings.RIFF_ENGINE
    raise Invalid(
        f"The model '{name[:64]}' does not exist here; use one of: "
        + ", ".join(settings.RIFF_VIDEO_MODELS)
        + ".",
        code="model_not_found",
        fields={"model": ["Unknown model."]},
    )


# ------------------------------------------------------------------------ reference image


def _refuse_reference(message: str, code: str = "invalid_media") -> Invalid:
    return Invalid(message, code=code, fields={"input_reference": [message]})


def reference_bytes(value) -> bytes:
    """The image bytes of `input_reference`: an upload, or `{"image_url": "data:...;base64,"}`.
    Remote URLs are not fetched (the server would be a proxy into wherever it runs) and there
    is no Files API for a `file_id`; both are refused with a sentence that says what works."""
    if hasattr(value, "read"):
        if value.size is None or value.size > settings.RIFF_VIDEO_REFERENCE_MAX_BYTES:
            raise TooLarge(
                "The reference image is too large.",
                fields={
                    "input_reference": [f"At most {settings.RIFF_VIDEO_REFERENCE_MAX_BYTES} bytes."]
                },
            )
        return value.read()
    if not isinstance(value, dict) or len(value) != 1:
        raise _refuse_reference(
            'Send an image file, or {"image_url": "data:image/...;base64,..."}.'
        )
    if "file_id" in value:
        raise _refuse_reference(
            "There is no Files API here: upload the image itself.", "input_reference_unsupported"
        )
    url = value.get("image_url")
    if not isinstance(url, str):
        raise _refuse_reference("image_url must be a string.")
    head, _, data = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise _refuse_reference(
            "Only data: URLs are taken (the server fetches nothing): upload the image or send "
            "data:image/...;base64,...",
            "input_reference_unsupported",
        )
    if len(data) > settings.RIFF_VIDEO_REFERENCE_MAX_BYTES * 4 // 3 + 4:
        raise TooLarge(
            "The reference image is too large.", fields={"input_reference": ["Too large."]}
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse_reference("The data URL is not valid base64.") from None


def reference_store(data: bytes) -> str:
    """Decodes, checks and re-encodes an image as PNG (dropping whatever else the file
    carried); returns its storage name. Refuses what Pillow can't read or a pixel bomb."""
    if not data:
        raise _refuse_reference("The reference image is empty.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > settings.RIFF_VIDEO_REFERENCE_MAX_PIXELS:
                raise TooLarge(
                    "The reference image has too many pixels.",
                    fields={"input_reference": ["Too many pixels."]},
                )
            if probe.format not in ("PNG", "JPEG", "WEBP", "GIF", "BMP"):
                raise UnidentifiedImageError(probe.format)
            image = probe.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise _refuse_reference(
            "The reference must be a PNG, JPEG, WebP, GIF or BMP image.", "unsupported_media"
        ) from None
    image.thumbnail((REFERENCE_LONG_SIDE, REFERENCE_LONG_SIDE))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return default_storage.save(f"references/{uuid.uuid4().hex}.png", ContentFile(out.getvalue()))


# ------------------------------------------------------------------------------- sources


def api_generations(*, user: User):
    """The caller's /v1 videos: every generation of theirs (made here or in the app) that was
    not deleted through this API."""
    return Generation.objects.filter(owner=user, api_deleted_at__isnull=True).select_related(
        "video", "source_video"
    )


def _uuid(value: str):
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def api_generation(*, user: User, video_id: str) -> Generation:
    """One of the caller's videos; anyone else's, a malformed or an unknown id is 404 alike."""
    pk = _uuid(video_id)
    generation = api_generations(user=user).filter(pk=pk).first() if pk else None
    if generation is None:
        raise NotFound(f"No video found with id '{str(video_id)[:100]}'.", code="not_found")
    return generation


def source_video(*, user: User, video_id: str, param: str = "video") -> tuple[Generation, Video]:
    """A completed video of the caller's that a new one may start from."""
    generation = api_generation(user=user, video_id=video_id)
    video = shapes.video_of(generation)
    if generation.status != GenerationStatus.SUCCEEDED or video is None:
        raise Conflict(
            "The video is not completed yet.",
            code="video_not_ready",
            fields={param: ["Not ready."]},
        )
    if video.state not in DELIVERABLE:
        raise Conflict(
            "The video is not available (held, taken down or removed).",
            code="video_unavailable",
            fields={param: ["Unavailable."]},
        )
    return generation, video


def source_id_of_upload(*, user: User, upload) -> str:
    """The /v1 id of the caller's video whose delivered MP4 is exactly `upload`."""
    if upload.size is None or upload.size > settings.RIFF_PROVENANCE_MAX_BYTES:
        raise TooLarge("The video is too large.", fields={"video": ["Too large."]})
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    generation_id = (
        Video.objects.filter(
            owner=user, sha256=digest.hexdigest(), generation__api_deleted_at__isnull=True
        )
        .values_list("generation_id", flat=True)
        .first()
    )
    if generation_id is None:
        raise Invalid(
            "Only a video made here by you can be extended or edited: send its id as "
            '{"id": "..."} or the file exactly as downloaded. Other footage could show people '
            "who have not agreed to it; a character's footage goes to /v1/videos/characters.",
            code="video_upload_unsupported",
            fields={"video": ["Not a video of yours made here."]},
        )
    return str(generation_id)


def _admit(user: User, **fields) -> Generation:
    generation = generation_admit(user=user, request=AdmissionRequest(**fields))
    return api_generation(user=user, video_id=str(generation.pk))


# ------------------------------------------------------------------------------- writes


def video_api_create(*, user: User, data: dict) -> Generation:
    size = data.get("size", shapes.DEFAULT_SIZE)
    model = model_resolve(data.get("model"))
    reference = data.get("input_reference")
    name = ""
    if reference is not None:
        if not (settings.RIFF_VIDEO_REFERENCE_IMAGES and engine_takes_images(model)):
            raise _refuse_reference(
                f"The {model} engine can't start a clip from an image.",
                "input_reference_unsupported",
            )
        name = reference_store(reference_bytes(reference))
    try:
        return _admit(
            user,
            prompt=data["prompt"],
            seconds=int(data.get("seconds", shapes.DEFAULT_SECONDS)),
            aspect=ASPECT_OF_SIZE[size],
            size=size,
            model=model,
            reference_image=name,
        )
    except BaseException:
        if name:
            default_storage.delete(name)
        raise


def _from_source(source: Generation, video: Video, user: User, **fields) -> Generation:
    """Admits a job that starts from `video` (of job `source`): same frame, engine and, unless
    given, length (the whole source)."""
    fields.setdefault("seconds", max(1, round(video.seconds)))
    return _admit(
        user,
        aspect=source.aspect,
        size=source.size,
        model=source.model,
        source_video=video,
        **fields,
    )


def video_api_remix(*, user: User, video_id: str, prompt: str) -> Generation:
    source, video = source_video(user=user, video_id=video_id)
    return _from_source(
        source,
        video,
        user,
        prompt=prompt,
        source_mode=SourceMode.REMIX,
        # A posted video's remix is a remix of its post, exactly as in the app.
        remix_of_id=hooks.provide(VIDEO_LIVE_POST.name, video_id=video.pk),
    )


def video_api_extend(*, user: User, video_id: str, prompt: str, seconds: int) -> Generation:
    source, video = source_video(user=user, video_id=video_id)
    if round(video.seconds) + seconds > settings.RIFF_VIDEO_MAX_SECONDS:
        raise Invalid(
            f"An extended video may be at most {settings.RIFF_VIDEO_MAX_SECONDS} seconds long.",
            code="too_long",
            fields={"seconds": ["Too long."]},
        )
    return _from_source(
        source, video, user, prompt=prompt, seconds=seconds, source_mode=SourceMode.EXTEND
    )


def video_api_edit(*, user: User, video_id: str, prompt: str) -> Generation:
    source, video = source_video(user=user, video_id=video_id)
    # The same noise under a new prompt keeps what the prompt change doesn't touch.
    return _from_source(
        source, video, user, prompt=prompt, seed=source.seed, source_mode=SourceMode.EDIT
    )


def video_api_cancel(*, user: User, video_id: str) -> Generation:
    generation = api_generation(user=user, video_id=video_id)
    generation_cancel(generation=generation)
    return api_generation(user=user, video_id=video_id)


@transaction.atomic
def video_api_delete(*, user: User, video_id: str) -> str:
    """Removes the video (its files, its post) and hides the job from /v1; a job still queued
    or rendering is cancelled first, so nothing is delivered afterwards."""
    generation = api_generation(user=user, video_id=video_id)
    locked = Generation.objects.select_for_update().get(pk=generation.pk)
    if locked.status not in TERMINAL:
        generation_cancel(generation=locked)
    video = Video.objects.filter(generation=locked).first()
    if video is not None and video.state != VideoState.REMOVED:
        video_remove(video=video, reason="deleted by its owner")
    Generation.objects.filter(pk=locked.pk).update(api_deleted_at=timezone.now())
    return str(locked.pk)


# ------------------------------------------------------------------------------ characters


def character_create(*, user: User, name: str, upload) -> Cameo:
    """A `character` cameo from an uploaded video: probed first (nothing is written for a bad
    file), then created and submitted in one transaction. Verification and review follow as
    for every character; a real person's face is refused there."""
    if upload.size is None or upload.size > settings.RIFF_CAMEO_MAX_BYTES:
        raise TooLarge(
            "The character video is too large.",
            fields={"video": [f"At most {settings.RIFF_CAMEO_MAX_BYTES} bytes."]},
        )
    data = upload.read()
    try:
        info = probe_recording(data, require_audio=False)
    except ApiError as exc:
        exc.fields = exc.fields or {"video": [str(exc.detail)]}
        raise
    with transaction.atomic():
        cameo = cameo_create(owner=user, kind=CameoKind.CHARACTER, display_name=name)
        return cameo_submit_recording(cameo=cameo, data=data, info=info)


def character_of(*, user: User, character_id: str) -> Cameo:
    pk = _uuid(character_id)
    cameo = (
        Cameo.objects.filter(pk=pk, owner=user, kind=CameoKind.CHARACTER).first() if pk else None
    )
    if cameo is None:
        raise NotFound(f"No character found with id '{str(character_id)[:100]}'.", code="not_found")
    return cameo
