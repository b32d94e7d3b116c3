"""The one check of an uploaded file's presence and size, shared by every multipart endpoint.

The request body as a whole was already held to its route's limit before anything read it
(config.core.limits, `RIFF_BODY_LIMITS`); this is the file's own cap, which may be lower
(`RIFF_CAMEO_MAX_BYTES`, `RIFF_AVATAR_MAX_BYTES`, `RIFF_PROVENANCE_MAX_BYTES`). It runs before
the view reads the file or stores anything, so a refused upload leaves nothing behind. Every
endpoint answers alike: 400 `invalid` naming the field when the file is missing, 413
`too_large` naming the field and its cap when it is too big.
"""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from rest_framework.request import Request

from .errors import Invalid, TooLarge


def upload_file(
    request: Request, *, field: str, max_bytes: int, what: str = "file"
) -> UploadedFile:
    """The multipart file `field` of `request`, at most `max_bytes` long.

    `what` names the file in messages ("recording", "image"). Raises Invalid (400) when the
    field is missing and TooLarge (413 `too_large`) when the file is over the cap.
    """
    upload = request.FILES.get(field)
    if upload is None:
        raise Invalid(
            f"Send the {what} as multipart field '{field}'.", fields={field: ["Required."]}
        )
    if upload.size is None or upload.size > max_bytes:
        raise TooLarge(
            f"The {what} is larger than the {max_bytes} bytes this endpoint accepts.",
            fields={field: [f"At most {max_bytes} bytes."]},
        )
    return upload
