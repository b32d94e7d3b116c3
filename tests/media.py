"""Real media made in the tests with PyAV: videos with and without sound, of any length."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def make_video(
    seconds: float = 3.0,
    *,
    audio: bool = True,
    size: tuple[int, int] = (96, 64),
    fps: int = 10,
    container: str = "mp4",
    frozen: bool = False,
    amplitude: float = 0.3,
) -> bytes:
    """An H.264 (+AAC) clip: a bright square sweeping over a gradient, and a 440 Hz tone."""
    width, height = size
    out = io.BytesIO()
    fmt = {"mp4": "mp4", "webm": "webm"}[container]
    with av.open(out, mode="w", format=fmt) as box:
        vcodec = "libx264" if container == "mp4" else "libvpx"
        video = box.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        astream = None
        if audio:
            astream = box.add_stream("aac" if container == "mp4" else "libopus", rate=48000)
            astream.layout = "mono"
        frames = int(round(seconds * fps))
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            image = np.zeros((height, width, 3), dtype=np.uint8)
            image[..., 0] = (xx * 255 // max(1, width - 1)).astype(np.uint8)
            image[..., 2] = (yy * 255 // max(1, height - 1)).astype(np.uint8)
            offset = 0 if frozen else (i * 3) % max(1, width - 16)
            image[height // 3 : height // 3 + 16, offset : offset + 16] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                box.mux(packet)
        for packet in video.encode():
            box.mux(packet)
        if astream is not None:
            rate, chunk = 48000, 1024
            total = int(seconds * rate)
            t = np.arange(total) / rate
            wave = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, chunk):
                samples = wave[start : start + chunk].reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in astream.encode(frame):
                    box.mux(packet)
            for packet in astream.encode():
                box.mux(packet)
    return out.getvalue()
