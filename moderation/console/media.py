"""Video files for staff: the report page plays a video whatever its state (taken down ones
answer 404 on the public content endpoint), from `default_storage`, with byte ranges so the
player can seek. Only the console's views call this, after the role check."""

from __future__ import annotations

import re

from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse, StreamingHttpResponse

from config.core.files import AsyncBlocksMixin, FileStream
from generation.models import Video

VARIANTS = {
    "video": ("content", "video/mp4"),
    "poster": ("poster", "image/jpeg"),
    "preview": ("preview", "image/webp"),
}
BLOCK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeStream(AsyncBlocksMixin, StreamingHttpResponse):
    """A 206 body, read block by block (in a worker thread under ASGI, like FileStream)."""


def _blocks(fh, length: int):
    try:
        while length > 0:
            block = fh.read(min(BLOCK, length))
            if not block:
                return
            length -= len(block)
            yield block
    finally:
        fh.close()


def _range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) for one satisfiable range; None when there is no (usable) Range header;
    False when it can't be satisfied."""
    match = _RANGE.match(header.strip())
    if not match:
        return None  # several ranges or another unit: answer the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            return False
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


def video_file(request, video_id, variant: str) -> HttpResponse:
    if variant not in VARIANTS:
        raise Http404("No such variant.")
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        raise Http404("No such video.")
    field, content_type = VARIANTS[variant]
    name = getattr(video, field)
    if not name or not default_storage.exists(name):
        raise Http404("No such file.")
    size = default_storage.size(name)
    wanted = _range(request.headers.get("Range", ""), size)
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif wanted is None:
        response = FileStream(default_storage.open(name, "rb"), content_type=content_type)
    else:
        first, last = wanted
        fh = default_storage.open(name, "rb")
        fh.seek(first)
        response = RangeStream(_blocks(fh, last - first + 1), status=206)
        response["Content-Type"] = content_type
        response["Content-Length"] = str(last - first + 1)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    # Moderation material: never kept by a shared cache or the browser's disk cache.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
