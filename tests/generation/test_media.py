"""The media pipeline and C2PA provenance on real encodes, decoded back with PyAV."""

import io

import av
import numpy as np
import pytest
from PIL import Image

from generation.media import corner_for, output_size, probe_mp4, render_video
from generation.provenance import load_signer, verify_media
from tests.media import make_video


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return load_signer(dev_dir=tmp_path_factory.mktemp("c2pa"))


def clip(t=16, h=32, w=32, background=(40, 40, 40)):
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[:] = background
    for i in range(t):
        frames[i, 12:20, i : i + 8] = (220, 30, 30)
    return frames


def decode(data):
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_render_decodes_to_the_expected_clip(signer):
    rendered = render_video(
        frames=clip(), fps=8, handle="bob", signer=signer, metadata={"video_id": "v1"}
    )
    info = probe_mp4(rendered.mp4)
    assert info == {
        "codec": "h264",
        "width": 512,
        "height": 512,
        "frames": 16,
        "fps": 8.0,
        "duration_s": 2.0,
    }
    assert (rendered.width, rendered.height, rendered.frame_count, rendered.duration_s) == (
        512,
        512,
        16,
        2.0,
    )
    poster = Image.open(io.BytesIO(rendered.poster))
    assert (poster.format, poster.size) == ("JPEG", (512, 512))
    preview = Image.open(io.BytesIO(rendered.preview))
    assert (preview.format, preview.n_frames, preview.size) == ("WEBP", 16, (256, 256))
    import hashlib

    assert rendered.sha256 == hashlib.sha256(rendered.mp4).hexdigest()
    # faststart: the index (moov) comes before the media data (mdat).
    assert rendered.mp4.find(b"moov") < rendered.mp4.find(b"mdat")


def test_watermark_moves_between_corners():
    flat = np.full((16, 32, 32, 3), 60, np.uint8)
    frames = decode(render_video(frames=flat, fps=8, handle="someone").mp4)
    assert [corner_for(i, 8) for i in (0, 8)] == ["top_left", "top_right"]

    def corner_energy(frame, corner):
        h, w = frame.shape[:2]
        ys = slice(0, h // 5) if "top" in corner else slice(h - h // 5, h)
        xs = slice(0, w // 3) if "left" in corner else slice(w - w // 3, w)
        return float(np.abs(frame[ys, xs].astype(int) - 60).mean())

    first, later = frames[0], frames[8]
    assert corner_energy(first, "top_left") > 5 > corner_energy(first, "top_right")
    assert corner_energy(later, "top_right") > 5 > corner_energy(later, "top_left")
    for corner in ("bottom_left", "bottom_right"):
        assert corner_energy(first, corner) < 2 and corner_energy(later, corner) < 2


def test_odd_sizes_and_bad_input():
    assert output_size(33, 17, 512) == (994, 512)
    assert probe_mp4(render_video(frames=clip(h=33, w=17), fps=8, handle="x").mp4)["width"] == 512
    for bad in (
        np.zeros((0, 8, 8, 3), np.uint8),
        np.zeros((4, 8, 8, 3), np.float32),
        np.zeros((4, 8, 8), np.uint8),
    ):
        with pytest.raises(ValueError):
            render_video(frames=bad, fps=8, handle="x")


def test_provenance_round_trip_and_tampering(signer, tmp_path):
    rendered = render_video(
        frames=clip(),
        fps=8,
        handle="bob",
        signer=signer,
        metadata={"video_id": "v1", "generation_id": "g1"},
    )
    assert len(decode(rendered.mp4)) == 16  # signing keeps the file playable
    result = verify_media(rendered.mp4, signer=signer)
    assert (result.has_manifest, result.valid, result.trusted) == (True, True, True)
    assert result.riff == {"video_id": "v1", "generation_id": "g1"}
    data = bytearray(rendered.mp4)
    data[data.find(b"mdat") + 64] ^= 0xFF
    tampered = verify_media(bytes(data), signer=signer)
    assert (
        tampered.has_manifest
        and not tampered.valid
        and "assertion.bmffHash.mismatch" in tampered.validation_errors
    )
    # Same dev credentials on a second load; another CA's signature is valid but not ours.
    assert load_signer(dev_dir=tmp_path / "fresh").signer_serial != signer.signer_serial
    other = load_signer(dev_dir=tmp_path / "other")
    foreign = render_video(
        frames=clip(), fps=8, handle="x", signer=other, metadata={"video_id": "v2"}
    )
    result = verify_media(foreign.mp4, signer=signer)
    assert result.valid and not result.trusted


def test_dev_credentials_are_created_once(tmp_path):
    first = load_signer(dev_dir=tmp_path)
    second = load_signer(dev_dir=tmp_path)
    assert first.signer_serial == second.signer_serial
    assert oct((tmp_path / "signer-key.pem").stat().st_mode & 0o777) == "0o600"


def test_no_manifest_and_garbage():
    assert verify_media(make_video(2.0, audio=False)).has_manifest is False
    assert verify_media(b"\x00garbage" * 100).has_manifest is False
    assert verify_media(b"").has_manifest is False


@pytest.mark.parametrize(
    "size,expected",
    [((512, 910), (256, 455)), ((512, 512), (256, 256)), ((513, 911), (256, 455))],
)
def test_the_animated_preview_is_the_frames_at_256_px(size, expected):
    """An exact halving is a 2x2 box average (Image.reduce), within a level or two of the
    BILINEAR resize it replaced; any other step is that resize."""
    from generation.media import preview_webp

    rng = np.random.default_rng(4)
    width, height = size
    # smooth content (gradients and a disc), as the upscaled frames are
    y, x = np.mgrid[0:height, 0:width]
    images = []
    for i in range(3):
        frame = np.stack(
            [x * 255 // width, y * 255 // height, np.full_like(x, 40 * i)], axis=-1
        ).astype(np.uint8)
        frame[(x - width // 2) ** 2 + (y - height // 2) ** 2 < (width // 5) ** 2] = rng.integers(
            0, 256, 3
        )
        images.append(Image.fromarray(frame))
    data = preview_webp(images, fps=8)
    preview = Image.open(io.BytesIO(data))
    assert (preview.format, preview.n_frames, preview.size) == ("WEBP", 3, expected)
    preview.seek(1)
    got = np.asarray(preview.convert("RGB")).astype(int)
    want = np.asarray(images[1].resize(expected, Image.Resampling.BILINEAR)).astype(int)
    # WebP at quality 70 is lossy: the picture, not the bytes
    assert np.abs(got - want).mean() < 4
