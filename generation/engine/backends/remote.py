"""The "remote" backend: clips made by another server that speaks the OpenAI Videos API shape
(`POST /v1/videos`, `GET /v1/videos/{id}`, `GET /v1/videos/{id}/content`): another Riff, or
vLLM-Omni in front of an open model on a GPU box this worker doesn't have to be.

    register_engine("remote-riff", "remote", base_url="https://gpu.example.org/v1",
                    api_key="rk_...", model="", size="720x1280", fps=16)

It needs httpx, PyAV, numpy and Pillow, never torch or Django: a worker without a GPU (the web
image plus the worker extra's httpx) can run it.

What a request becomes (one remote job each):
- `size`: the request's own if the remote takes it, else the one of its `aspect` (9:16
  720x1280, 16:9 1280x720), else the engine's configured `size`;
- `seconds`: the shortest length the remote allows that covers the frames wanted; what comes
  back is decoded, resampled by timestamp to this engine's `fps` and cut to exactly those
  frames (a remote clip shorter than asked gives a shorter clip, never invented frames);
- `context_frames` (when `send_context`, the default): the last one goes as `input_reference`
  (a PNG, multipart), so a segment, a remix or a reference image continues from it;
- the seed is not sent: the OpenAI shape has none, so the same request may give another clip.

Several requests in one `generate` call are all created first and then polled together, so
the remote works on them side by side (as far as it has workers) instead of one after another;
each poll reports the mean progress of them all. Any failure, cancellation or timeout cancels
the remote jobs still running before the error leaves `generate`. A create that times out may
leave a job on the remote that nothing here knows the id of; the remote's own retention (or
its operator) has to clean it up.

Cameos never go to a remote: a request with cameo reference images (or their owners'
instructions) is refused with `cameo_unsupported`. A person consents to their likeness being
used by this Riff's own engines, on the operator's machines, under its consent checks; sending
it to another server, whatever its terms, is not what they agreed to. That is deliberate, not a
missing feature.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image

from .base import EngineUnavailable, GeneratedClip, GenerationRequest, InputUnsupported, ProgressFn

__all__ = ["RemoteUnavailable", "RemoteVideoEngine", "remote_engine"]

logger = logging.getLogger(__name__)

# The sizes the OpenAI shape allows, and the one each of Riff's aspects maps to.
OPENAI_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SIZE_OF_ASPECT = {"9:16": "720x1280", "16:9": "1280x720"}
# One HTTP call (not the job: that is `timeout`) may take this long; connecting, less.
REQUEST_SECONDS = 60.0
CONNECT_SECONDS = 10.0
# Polls may fail this long in a row (a remote restarting, a 503 behind a load balancer) before
# the attempt gives up: a blip must not throw away a job the remote is still rendering.
POLL_GRACE_SECONDS = 60.0
# Error codes of a 403 that mean "this key may not do this at all" (the worker is
# misconfigured) rather than "not this request" (Riff's `content_policy`, `ip_blocked`).
ACCESS_CODES = frozenset(
    {
        "",
        "forbidden",
        "permission_denied",
        "insufficient_permissions",
        "authentication_error",
        "invalid_api_key",
        "unsupported_country_region_territory",
    }
)
# frame times closer than this are the same instant
EPSILON = 1e-6


class RemoteUnavailable(RuntimeError):
    """The remote could not make the clip this time: not listening, 429, 5xx, its job vanished
    or ran past `timeout`. Not EngineUnavailable nor InputUnsupported, so the worker retries
    the job (docs/engine-backends.md, "Errors"). `transient`: a poll that meets it waits out
    POLL_GRACE_SECONDS before giving up."""

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


@dataclass
class _Job:
    """One request's remote job while `generate` runs."""

    request: GenerationRequest
    frames: int  # how many frames to hand back
    size: str
    seconds: int
    id: str = ""
    progress: int = 0
    finished: bool = False  # completed and downloaded, or failed: nothing left to cancel
    clip: GeneratedClip | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _remote_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an error answer: OpenAI's `{"error": {...}}`, a bare
    `{"code", "message"}` or FastAPI's `{"detail"}` (vLLM), else the status line; the code is
    "" when the answer names none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code: Any = ""
    message: Any = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code") or error.get("type") or ""
            message = error.get("message") or ""
        else:
            code = body.get("code") or ""
            message = error or body.get("message") or body.get("detail") or ""
    if not message:
        message = response.reason_phrase or response.text[:200]
    return str(code)[:64], str(message)[:500]


def _png(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)[..., :3]).save(out, format="PNG")
    return out.getvalue()


def decode_resampled(
    data: bytes, *, fps: int, count: int, max_side: int = 4096
) -> tuple[np.ndarray, float]:
    """The first `count` frames of an MP4 at `fps`, chosen by timestamp (each output instant
    shows the source frame on screen then), uint8 [T, H, W, 3], and the source's frame rate.
    Fewer than `count` when the clip is shorter. Frames are resampled while decoding, so a
    long clip at a high rate is never held whole.

    Raises RemoteUnavailable (not transient) when the bytes are not a video with frames, or
    its frames are larger than `max_side` on a side (a remote's answer is not trusted to be
    small: a 16k x 16k frame alone is 768 MB decoded)."""
    out: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if max(width, height) > max_side:
                raise RemoteUnavailable(
                    f"the remote's video is {width}x{height}, larger than {max_side} px a side",
                    transient=False,
                )
            rate = float(stream.average_rate or stream.guessed_rate or fps)
            start = last = None
            previous = None
            for index, frame in enumerate(container.decode(stream)):
                at = frame.time if frame.time is not None else index / rate
                start = at if start is None else start
                last = at - start
                while previous is not None and len(out) < count and len(out) / fps < last - EPSILON:
                    out.append(previous)
                if len(out) >= count:
                    break
                previous = frame.to_ndarray(format="rgb24")
            if previous is not None and last is not None:
                end = last + 1 / rate
                while len(out) < count and len(out) / fps < end - EPSILON:
                    out.append(previous)
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise RemoteUnavailable(
            f"the remote's video could not be decoded: {exc}", transient=False
        ) from exc
    if not out:
        raise RemoteUnavailable("the remote's video has no frames", transient=False)
    return np.stack(out), rate


class RemoteVideoEngine:
    """An `Engine` (generation.engine.backends.base) whose clips another server makes. Holds
    only its settings: each `generate` call opens its own HTTP client, so one instance serves
    any number of worker threads."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        size: str,
        sizes: Sequence[str],
        fps: int,
        seconds: Sequence[int],
        poll_interval: float,
        timeout: float,
        send_context: bool,
        verify: bool | str,
        max_bytes: int = 512 * 2**20,
        max_side: int = 4096,
    ):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model = model
        self.size = size
        self.sizes = tuple(sizes)
        self.seconds = tuple(sorted(seconds))
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.send_context = send_context
        self.verify = verify
        self.max_bytes, self.max_side = max_bytes, max_side
        self._fps = fps
        self._width, self._height = (int(n) for n in size.split("x"))

    @property
    def name(self) -> str:
        return f"remote:{self.model}" if self.model else "remote"

    @property
    def fps(self) -> int:
        return self._fps

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def max_context_frames(self) -> int:
        # One still is all `input_reference` carries.
        return 1 if self.send_context else 0

    @property
    def max_frames(self) -> int:
        return self.seconds[-1] * self._fps

    def __repr__(self) -> str:  # never the key
        return f"RemoteVideoEngine({self.base_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------------- the job

    def generate(
        self, requests: list[GenerationRequest], on_progress: ProgressFn | None = None
    ) -> list[GeneratedClip]:
        """One clip per request, in order; see the module docstring for what is sent.

        Raises InputUnsupported (`cameo_unsupported`, `too_long`, `remote_refused`,
        `remote_failed`), EngineUnavailable (the key is refused, the model or the API is not
        there) or RemoteUnavailable (retry later); whatever `on_progress` raises propagates
        unchanged, after the remote jobs are cancelled."""
        if not requests:
            return []
        jobs = [self._plan(request) for request in requests]
        deadline = time.monotonic() + self.timeout
        with self._client() as client:
            try:
                for job in jobs:
                    self._create(client, job)
                self._wait(client, jobs, deadline, on_progress)
            except BaseException:
                for job in jobs:
                    if job.id and not job.finished:
                        self._cancel(client, job.id)
                raise
        return [job.clip for job in jobs if job.clip is not None]  # all of them, by now

    def _plan(self, request: GenerationRequest) -> _Job:
        """The remote size and length for `request`; refuses what must not or cannot go."""
        if request.cameo_images or request.instructions:
            raise InputUnsupported(
                "cameo_unsupported",
                "Cameos can't be used with this engine: a likeness is only ever rendered by "
                "this server's own engines. Pick another model or leave the cameo out.",
            )
        frames = int(request.frames or round((request.seconds or self.seconds[0]) * self._fps))
        needed = frames / self._fps
        fitting = [s for s in self.seconds if s >= needed - EPSILON]
        if frames <= 0 or not fitting:
            raise InputUnsupported(
                "too_long",
                f"This engine makes 1 to {self.max_frames} frames per call, not {frames}.",
            )
        size = self._remote_size(aspect=request.aspect, size=request.size)
        return _Job(request=request, frames=frames, size=size, seconds=fitting[0])

    def _remote_size(self, *, aspect: str, size: str) -> str:
        """The remote size for a job: its own if the remote takes it, else its aspect's, else
        the configured one."""
        chosen = size if size in self.sizes else SIZE_OF_ASPECT.get(aspect, "")
        return chosen if chosen in self.sizes else self.size

    def frame_size(self, *, aspect: str = "", size: str = "") -> tuple[int, int]:
        """(height, width) of what the remote makes for a job of that shape
        (`base.frame_size_of`): context frames are handed over, and sent, at that size."""
        width, height = (int(n) for n in self._remote_size(aspect=aspect, size=size).split("x"))
        return height, width

    def _client(self) -> httpx.Client:
        headers = {"User-Agent": "riff-remote-engine"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(REQUEST_SECONDS, connect=CONNECT_SECONDS),
            verify=self.verify,
        )

    def _send(self, client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(
                f"{self.base_url} did not answer {method} {path}: {exc!r}"
            ) from exc

    def _refusal(self, response: httpx.Response, *, creating: bool) -> Exception:
        """The error an unsuccessful answer becomes (see `generate`)."""
        status = response.status_code
        code, message = _remote_error(response)
        said = f"{status} {code or 'error'}: {message}"
        if status == 429 or status >= 500:
            return RemoteUnavailable(f"{self.base_url} is busy or failing ({said})")
        if (
            status == 401
            or code == "model_not_found"
            or (status == 403 and code in ACCESS_CODES)
            or (creating and status in (404, 405))
        ):
            # Every job would meet the same key, model or URL: the worker is misconfigured.
            return EngineUnavailable(f"the remote engine at {self.base_url} refused us ({said})")
        if not creating:
            return RemoteUnavailable(f"{self.base_url} lost the job ({said})", transient=False)
        return InputUnsupported(
            "remote_refused",
            f"The remote video server refused the request ({code or status}): {message}",
        )

    def _create(self, client: httpx.Client, job: _Job) -> None:
        request = job.request
        fields = {"prompt": request.prompt, "seconds": str(job.seconds), "size": job.size}
        if self.model:
            fields["model"] = self.model
        context = request.context_frames
        if self.send_context and context is not None and len(context):
            files = {"input_reference": ("context.png", _png(context[-1]), "image/png")}
            response = self._send(client, "POST", "videos", data=fields, files=files)
        else:
            response = self._send(client, "POST", "videos", json=fields)
        if not response.is_success:
            raise self._refusal(response, creating=True)
        try:
            job.id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteUnavailable(
                f"{self.base_url} answered a create without a video id", transient=False
            ) from exc
        job.metadata = {
            "remote_id": job.id,
            "base_url": self.base_url,
            "size": job.size,
            "seconds": job.seconds,
        }
        logger.info("remote engine: job %s created at %s", job.id, self.base_url)

    def _wait(
        self,
        client: httpx.Client,
        jobs: list[_Job],
        deadline: float,
        on_progress: ProgressFn | None,
    ) -> None:
        """Polls every unfinished job once per round, downloads the ones that completed, then
        reports the mean progress (never lower than the last report) until all are done."""
        reported = 0
        failing_since: float | None = None
        while True:
            try:
                for job in jobs:
                    if not job.finished:
                        self._poll(client, job)
                failing_since = None
            except RemoteUnavailable as exc:
                if not exc.transient:
                    raise
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > POLL_GRACE_SECONDS:
                    raise
                logger.warning("remote engine: poll failed, trying again: %s", exc)
            reported = max(reported, sum(job.progress for job in jobs) // len(jobs))
            if on_progress is not None:
                on_progress(reported, 100)
            if all(job.finished for job in jobs):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemoteUnavailable(
                    f"{self.base_url} did not finish within {self.timeout:g} s", transient=False
                )
            time.sleep(min(self.poll_interval, left))

    def _poll(self, client: httpx.Client, job: _Job) -> None:
        response = self._send(client, "GET", f"videos/{job.id}")
        if not response.is_success:
            raise self._refusal(response, creating=False)
        try:
            video = response.json()
        except ValueError:
            video = None
        if not isinstance(video, dict):
            # a proxy's error page with a 200, say: as a failed poll
            raise RemoteUnavailable(f"{self.base_url} answered a poll with no video object")
        status = video.get("status")
        if status == "failed":
            job.finished = True
            error = video.get("error")
            error = error if isinstance(error, dict) else {"message": error}
            code = str(error.get("code") or "failed")[:64]
            message = str(error.get("message") or "The remote job failed.")[:500]
            raise InputUnsupported(
                "remote_failed", f"The remote video server could not make it ({code}): {message}"
            )
        if status != "completed":
            # 100 is kept for "done": a remote still encoding at 100 % reads 99.
            job.progress = max(job.progress, min(99, max(0, int(video.get("progress") or 0))))
            return
        data = self._download(client, job.id)
        frames, source_fps = decode_resampled(
            data, fps=self._fps, count=job.frames, max_side=self.max_side
        )
        job.clip = GeneratedClip(
            frames=frames, fps=self._fps, metadata={**job.metadata, "source_fps": source_fps}
        )
        job.progress = 100
        job.finished = True

    def _download(self, client: httpx.Client, job_id: str) -> bytes:
        """The finished MP4, read in chunks and refused past `max_bytes` (the remote's word for
        its size is not taken: a chunked answer has none)."""
        path = f"videos/{job_id}/content"
        try:
            with client.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    raise self._refusal(response, creating=False)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise RemoteUnavailable(
                            f"{self.base_url} sent a video over {self.max_bytes} bytes",
                            transient=False,
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(f"{self.base_url} did not answer GET {path}: {exc!r}") from exc
        return b"".join(chunks)

    def _cancel(self, client: httpx.Client, job_id: str) -> None:
        """Best effort, and never raises: the caller is already leaving with an error of its
        own. Riff's `POST …/cancel` first; a server without it (404, 405: the OpenAI shape has
        no cancel) gets `DELETE …/{id}`, which stops a job there too."""
        try:
            response = client.post(f"videos/{job_id}/cancel")
            if response.status_code in (404, 405):
                response = client.delete(f"videos/{job_id}")
            if not response.is_success:
                logger.warning(
                    "remote engine: cancelling %s answered %s %s",
                    job_id,
                    response.status_code,
                    _remote_error(response),
                )
        except Exception:
            logger.warning("remote engine: cancelling %s failed", job_id, exc_info=True)


def _size(value: str, option: str) -> str:
    width, sep, height = str(value).lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise EngineUnavailable(f"remote engine: {option} must be 'WxH', not {value!r}")
    return f"{int(width)}x{int(height)}"


def remote_engine(
    *,
    base_url: str = "",
    api_key: str = "",
    model: str = "",
    size: str = "720x1280",
    sizes: Sequence[str] = OPENAI_SIZES,
    fps: int = 16,
    seconds: Sequence[int] = (4, 8, 12),
    poll_interval: float = 1.0,
    timeout: float = 900.0,
    send_context: bool = True,
    verify: bool | str = True,
    max_bytes: int = 512 * 2**20,
    max_side: int = 4096,
) -> RemoteVideoEngine:
    """The factory the registry calls ("remote"). `base_url` ends in the API's root (…/v1);
    `api_key` may be blank for a server that takes none; `model` "" is the remote's default;
    `size` is the engine's declared frame (the context frames the worker hands over) and the
    fallback remote size; `sizes`, `seconds`: what the remote accepts; `fps`: the rate clips
    come back at; `timeout`: a whole job's seconds; `verify`: TLS verification (False, or a CA
    bundle path); `max_bytes`, `max_side`: the largest MP4 and frame taken from it. Nothing is sent until a job runs: a remote that is down now is a retryable
    failure of each job, not an engine that can't be built.

    Raises EngineUnavailable for options that can never work."""
    if not str(base_url).startswith(("http://", "https://")):
        raise EngineUnavailable(f"remote engine: base_url must be an http(s) URL, not {base_url!r}")
    try:
        allowed = sorted({int(s) for s in seconds})
        rate = int(fps)
        interval, limit = float(poll_interval), float(timeout)
    except (TypeError, ValueError) as exc:
        raise EngineUnavailable(f"remote engine: bad option: {exc}") from exc
    if not allowed or allowed[0] <= 0 or rate <= 0 or interval <= 0 or limit <= 0:
        raise EngineUnavailable(
            "remote engine: seconds, fps, poll_interval and timeout must be positive"
        )
    if not math.isfinite(limit):
        raise EngineUnavailable("remote engine: timeout must be finite")
    return RemoteVideoEngine(
        base_url=str(base_url),
        api_key=str(api_key or ""),
        model=str(model or ""),
        size=_size(size, "size"),
        sizes=[_size(s, "sizes") for s in sizes],
        fps=rate,
        seconds=allowed,
        poll_interval=interval,
        timeout=limit,
        send_context=bool(send_context),
        verify=verify,
        max_bytes=int(max_bytes),
        max_side=int(max_side),
    )
