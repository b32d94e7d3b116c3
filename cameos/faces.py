"""Is there a human face in this picture? The check that keeps real people out of the ways in
that don't verify them: a `character` cameo's recording (cameos.tasks.cameo_verify) and a
generation's reference image (generation.runner). A real person needs the verified `person`
cameo flow (a liveness challenge, their own consent).

OpenCV's frontal-face Haar cascade (`haarcascade_frontalface_default.xml`, shipped inside the
`opencv-python-headless` wheel: nothing is downloaded). cv2 is imported inside the function:
it is a worker dependency (the `worker` extra), and the web tier never calls this.

Tuned (tests/cameos/test_faces.py) on real photos: scikit-image's `astronaut` (a person, found
at 256 px and up with 29-45 overlapping detections) against `coffee`, `chelsea` (a cat) and
`rocket`, and riff-world's procedural frames at 32-512 px (at most 2 and 6 detections). A
face must collect MIN_NEIGHBORS detections, which sits between the two with room on both
sides, and be at least MIN_FACE of the picture's short side: a face too small to see is not
a likeness. Frontal faces only: a profile or a drawn face can pass, which human review of
characters is there for.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

__all__ = ["face_count"]

# Larger pictures are shrunk to this long side first: faces worth refusing are big in the
# frame, and the cascade's cost grows with the pixel count.
MAX_SIDE = 640
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 10
MIN_FACE = 0.1  # of the short side
MIN_FACE_PX = 24  # the cascade's own window

# One classifier per thread: OpenCV does not promise that one instance detects in two threads
# at once (a threaded worker pool, the tests' worker thread).
_local = threading.local()


def _classifier():
    classifier = getattr(_local, "cascade", None)
    if classifier is None:
        import cv2

        classifier = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        )
        if classifier.empty():
            raise RuntimeError("OpenCV's frontal-face cascade could not be loaded")
        _local.cascade = classifier
    return classifier


def face_count(image: np.ndarray) -> int:
    """How many frontal human faces the picture shows. `image`: uint8 [H, W, 3] RGB (or
    [H, W] grey, or [H, W, 4] RGBA); a picture under MIN_FACE_PX on its short side has none."""
    import cv2

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"face_count needs uint8 pixels, got {array.dtype}")
    if array.ndim == 3:
        array = array[..., :3]
    height, width = array.shape[:2]
    if min(height, width) < MIN_FACE_PX:
        return 0
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        array = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR))
    gray = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    # Evens out exposure, so a dim or washed-out photo is judged like a well-lit one.
    gray = cv2.equalizeHist(np.ascontiguousarray(gray))
    side = max(MIN_FACE_PX, int(min(gray.shape) * MIN_FACE))
    faces = _classifier().detectMultiScale(
        gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(side, side)
    )
    return len(faces)
