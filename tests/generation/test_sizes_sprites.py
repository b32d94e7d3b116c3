"""Delivered sizes (the Videos API's `size`), the letterbox and its undoing at any ratio, the
sprite sheet and the engine frames kept beside every MP4. Real encodes decoded with PyAV and
Pillow; jobs run through the worker on the tiny engine."""

from __future__ import annotations

import io
import uuid

import av
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from config.core.errors import NotFound
from generation import media, runner
from generation.frames import (
    decode_frames,
    decode_to_engine,
    frames_from_npz,
    frames_to_engine,
    frames_to_npz,
    letterbox,
    unletterbox,
)
from generation.media import SPRITE_FRAMES, probe_mp4, render_video
from generation.models import Generation, Video, VideoState
from generation.services.videos import video_remove, video_spritesheet
from generation.tasks import generation_run
from remix.context import parent_frames

SIZES = [(720, 1280), (1280, 720), (1024, 1792), (1792, 1024)]
SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def stored_names(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def aspect_of(width: int, height: int) -> str:
    return "9:16" if height > width else "16:9"


def worker_video(user, **fields) -> Video:
    job = Generation.objects.create(owner=user, prompt="a red ball bounces", seed=7, **fields)
    assert generation_run(str(job.pk)) == "succeeded"
    return Video.objects.get(generation=job)


# One flat colour per frame, inside a one-pixel white frame: each decoded frame says which it
# is, and a crop of the picture would lose the white edge.
COLOURS = [(40 + 13 * i, 200 - 11 * i, (90 + 47 * i) % 256) for i in range(16)]


def engine_clip() -> np.ndarray:
    frames = np.zeros((16, 32, 32, 3), np.uint8)
    for i, colour in enumerate(COLOURS):
        frames[i] = 255
        frames[i, 1:-1, 1:-1] = colour
    return frames


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_each_size_is_delivered_at_exactly_that_size(user, size):
    width, height = size
    video = worker_video(user, size=f"{width}x{height}", aspect=aspect_of(width, height))
    info = probe_mp4(read(video.content))
    assert (info["width"], info["height"], info["frames"]) == (width, height, 16)
    assert (video.width, video.height) == (width, height)
    assert Image.open(io.BytesIO(read(video.poster))).size == (width, height)
    preview = Image.open(io.BytesIO(read(video.preview)))
    assert preview.size == (256, round(256 * height / width)) or preview.size == (
        round(256 * width / height),
        256,
    )
    # the engine's own frames are kept as they were made: square, unpadded
    frames, fps = frames_from_npz(read(video.engine_frames))
    assert frames.shape == (16, 32, 32, 3) and fps == 8.0
    # without a size, the aspect at RIFF_VIDEO_SHORT_SIDE as before: never the same size
    plain = worker_video(user, aspect=aspect_of(width, height))
    padded = letterbox(engine_clip(), aspect_of(width, height)).shape[1:3]  # 57x32 or 32x57
    assert (plain.height, plain.width) == media.output_size(*padded, 512)
    assert (plain.width, plain.height) in {(512, 912), (912, 512)}


@pytest.mark.django_db
def test_a_size_that_cant_be_rendered_fails_the_job(user):
    job = Generation.objects.create(owner=user, prompt="p", seed=1, size="721x1280")
    assert generation_run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert (job.error_code, job.attempts) == ("invalid_size", 1)
    assert not Video.objects.filter(generation=job).exists() and job.size == "721x1280"


def rendered_at(size: tuple[int, int], frames: np.ndarray | None = None) -> bytes:
    clip = engine_clip() if frames is None else frames
    width, height = size
    return render_video(
        frames=letterbox(clip, f"{width}:{height}"), fps=8, handle="al", size=size
    ).mp4


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_size_pads_and_never_crops_and_unletterbox_finds_the_picture(size):
    width, height = size
    decoded = decode_frames(rendered_at(size))
    assert len(decoded) == 16 and decoded[0].shape == (height, width, 3)
    for got, colour in zip(frames_to_engine(decoded, height=32, width=32), COLOURS, strict=True):
        # the whole picture is back: its white frame on every side, its colour inside
        for edge in (got[0, 4:-4], got[-1, 4:-4], got[4:-4, 0], got[4:-4, -1]):
            assert edge.mean() > 200, edge.mean()
        assert np.abs(got[4:-4, 4:-4].reshape(-1, 3).mean(axis=0) - colour).max() < 10
    # the bars are black, and only outside the picture
    first = decoded[len(decoded) // 2].astype(int)
    if height > width:
        assert first[:40, width // 3 : 2 * width // 3].max() < 30
        assert first[-40:, width // 3 : 2 * width // 3].max() < 30
    else:
        assert first[height // 3 : 2 * height // 3, :40].max() < 30
        assert first[height // 3 : 2 * height // 3, -40:].max() < 30


@pytest.mark.django_db
@pytest.mark.parametrize("size", [(1024, 1792), (1792, 1024)], ids=["1024x1792", "1792x1024"])
def test_the_remix_provider_undoes_a_sized_video(user, make_post, size):
    post = make_post(user)
    name = default_storage.save(f"videos/r/{post.video_id}.mp4", ContentFile(rendered_at(size)))
    Video.objects.filter(pk=post.video_id).update(content=name)
    job = Generation.objects.create(owner=user, prompt="again", seed=3, remix_of_id=post.pk)
    frames = parent_frames(job=job, height=32, width=32, count=4)
    assert frames.shape == (4, 32, 32, 3)
    for got, colour in zip(frames, COLOURS[-4:], strict=True):
        assert np.abs(got[4:-4, 4:-4].reshape(-1, 3).mean(axis=0) - colour).max() < 10
        assert min(got[0, 4:-4].mean(), got[-1, 4:-4].mean(), got[4:-4, 0].mean()) > 200


@pytest.mark.parametrize(
    "ratio", ["3:1", "1:3", "5:4", "4:5", "1:1", "9:16", "16:9", "4:7", "7:4", "1024:1792"]
)
@pytest.mark.parametrize("engine", [(32, 32), (24, 40), (40, 24)])
def test_unletterbox_undoes_letterbox_at_any_ratio_and_scale(ratio, engine):
    height, width = engine
    picture = np.random.default_rng(0).integers(1, 256, (1, height, width, 3), dtype=np.uint8)
    padded = letterbox(picture, ratio)[0]
    num, den = (int(x) for x in ratio.split(":"))
    assert padded.shape[0] >= height and padded.shape[1] >= width  # padded, never cropped
    assert abs(padded.shape[1] / padded.shape[0] - num / den) < 1 / min(padded.shape[:2])
    for scale in (1, 7, 22.5):
        # delivered at an exact even size of that ratio (the scales per axis differ a little)
        out_w = round(scale * padded.shape[1] / 2) * 2
        out_h = round(out_w * den / num / 2) * 2 if scale != 1 else padded.shape[0]
        out_w = out_w if scale != 1 else padded.shape[1]
        big = np.asarray(Image.fromarray(padded).resize((out_w, out_h), Image.Resampling.NEAREST))
        inner = unletterbox(big, height=height, width=width)
        back = np.asarray(Image.fromarray(inner).resize((width, height), Image.Resampling.NEAREST))
        assert (back == picture[0]).all(axis=-1).mean() > 0.9, (ratio, engine, scale)


@pytest.mark.parametrize("size", SIZES + [(512, 910)], ids=SIZE_IDS + ["512x910"])
def test_the_watermark_is_legible_at_every_size(size):
    width, height = size
    tile, margin = media.watermark_tile(size, "al")
    # scaled with the short side (an eleventh of it or more): never a sliver in a big frame
    assert tile.height >= min(width, height) / 11 and margin >= min(width, height) / 40
    flat = np.full((9, 32, 32, 3), 60, np.uint8)
    first = decode_frames(rendered_at(size, flat))[0].astype(int)
    box = first[margin : margin + tile.height, margin : margin + tile.width]
    # white letters outlined in black over the black bars: both show, in the first corner
    assert (box > 150).all(axis=-1).mean() > 0.04
    other = first[margin : margin + tile.height, width - margin - tile.width : width - margin]
    assert (other > 150).all(axis=-1).mean() < 0.001


# --- sprite sheets ----------------------------------------------------------------------------


def flat_clip(count: int) -> np.ndarray:
    colours = [((17 * i) % 256, (255 - 9 * i) % 256, (60 + 31 * i) % 256) for i in range(count)]
    frames = np.zeros((count, 32, 32, 3), np.uint8)
    for i, colour in enumerate(colours):
        frames[i] = colour
    return frames


@pytest.mark.parametrize(
    "count,grid", [(40, (5, 5)), (25, (5, 5)), (16, (4, 4)), (6, (3, 2)), (1, (1, 1))]
)
def test_the_sprite_sheet_is_a_grid_of_evenly_spaced_frames(count, grid):
    clip = flat_clip(count)
    rendered = render_video(frames=letterbox(clip, "720:1280"), fps=8, handle="x", size=(720, 1280))
    sheet = Image.open(io.BytesIO(rendered.spritesheet))
    assert sheet.format == "JPEG"
    cols, rows = grid
    assert sheet.size == (cols * 90, rows * 160)  # tiles 160 px on the long side
    pixels = np.asarray(sheet.convert("RGB")).astype(int)
    picks = np.linspace(0, count - 1, num=min(SPRITE_FRAMES, count)).round().astype(int)
    for cell, index in enumerate(picks):
        x, y = (cell % cols) * 90 + 45, (cell // cols) * 160 + 80
        assert (
            np.abs(pixels[y - 5 : y + 5, x - 5 : x + 5].mean(axis=(0, 1)) - clip[index, 0, 0]).max()
            < 12
        )
    for cell in range(len(picks), cols * rows):  # cells past the last frame stay black
        x, y = (cell % cols) * 90 + 45, (cell // cols) * 160 + 80
        assert pixels[y, x].max() < 20


@pytest.mark.django_db
def test_every_video_gets_its_sprite_sheet_and_engine_frames(user):
    video = worker_video(user, seconds=4)
    assert video.spritesheet.endswith("-sprites.jpg") and video.engine_frames.endswith(".npz")
    base = video.content.removesuffix(".mp4")
    assert video.spritesheet == f"{base}-sprites.jpg"
    sheet = Image.open(io.BytesIO(read(video.spritesheet)))
    assert (sheet.format, sheet.size) == ("JPEG", (5 * 90, 5 * 160))  # 32 frames: 25 tiles
    frames, _ = frames_from_npz(read(video.engine_frames))
    assert frames.shape == (32, 32, 32, 3)


@pytest.mark.django_db
def test_video_spritesheet_builds_one_for_an_old_video_once(user, settings):
    video = worker_video(user)
    default_storage.delete(video.spritesheet)
    Video.objects.filter(pk=video.pk).update(spritesheet="")
    old = Video.objects.get(pk=video.pk)
    before = stored_names(settings)

    name = video_spritesheet(video=old)
    assert old.spritesheet == name == Video.objects.get(pk=video.pk).spritesheet
    assert name == video.content.removesuffix(".mp4") + "-sprites.jpg"
    sheet = Image.open(io.BytesIO(read(name)))
    assert (sheet.format, sheet.size) == ("JPEG", (4 * 90, 4 * 160))  # 16 frames at 512x910
    assert len(stored_names(settings)) == len(before) + 1

    # again: nothing built; a caller holding a stale row builds, finds the first one under
    # the lock, and deletes its own copy
    assert video_spritesheet(video=Video.objects.get(pk=video.pk)) == name
    stale = Video.objects.get(pk=video.pk)
    stale.spritesheet = ""
    assert video_spritesheet(video=stale) == name
    assert len(stored_names(settings)) == len(before) + 1


@pytest.mark.django_db
def test_video_spritesheet_refuses_a_video_it_cant_read(user, make_video_row, settings):
    unreadable = make_video_row(user)  # its "MP4" is a few header bytes
    before = stored_names(settings)
    with pytest.raises(NotFound) as refused:
        video_spritesheet(video=unreadable)
    assert refused.value.code == "not_found"
    assert stored_names(settings) == before
    assert Video.objects.get(pk=unreadable.pk).spritesheet == ""

    video = worker_video(user)
    Video.objects.filter(pk=video.pk).update(spritesheet="")
    stale = Video.objects.get(pk=video.pk)
    video_remove(video=video, reason="test")  # removed while a request was building it
    with pytest.raises(NotFound):
        video_spritesheet(video=stale)
    assert Video.objects.get(pk=video.pk).spritesheet == ""
    assert not [n for n in stored_names(settings) if n.endswith("-sprites.jpg")][1:]


@pytest.mark.django_db
def test_removing_a_video_deletes_every_file(user, settings, django_capture_on_commit_callbacks):
    video = worker_video(user)
    names = [video.content, video.poster, video.preview, video.spritesheet, video.engine_frames]
    assert all(names) and all(default_storage.exists(n) for n in names)
    with django_capture_on_commit_callbacks(execute=True):
        video_remove(video=video, reason="test")
    assert Video.objects.get(pk=video.pk).state == VideoState.REMOVED
    assert not [n for n in names if default_storage.exists(n)]


# --- engine frames files ----------------------------------------------------------------------


def test_engine_frames_round_trip_and_refuse_anything_else():
    clip = flat_clip(12)
    frames, fps = frames_from_npz(frames_to_npz(clip, 8))
    assert np.array_equal(frames, clip) and frames.dtype == np.uint8 and fps == 8.0
    pickled = io.BytesIO()
    np.savez(pickled, frames=np.array([object()], dtype=object), fps=8.0)
    wrong = io.BytesIO()
    np.savez(wrong, frames=np.zeros((2, 4, 4), np.uint8), fps=8.0)
    for bad in (b"", b"not a zip", pickled.getvalue(), wrong.getvalue()):
        with pytest.raises(ValueError):
            frames_from_npz(bad)


def test_decoding_to_engine_size_keeps_only_what_it_needs():
    data = rendered_at((1280, 720))
    last = decode_to_engine(data, height=32, width=32, last=3)
    every = decode_to_engine(data, height=32, width=32)
    assert last.shape == (3, 32, 32, 3) and every.shape == (16, 32, 32, 3)
    assert np.array_equal(last, every[-3:])
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.width == 1280


def test_render_job_uses_the_size_and_keeps_the_engine_frames(db, user):
    job = Generation.objects.create(owner=user, prompt="p", seed=1, size="1792x1024")
    clip = engine_clip()
    rendered = runner.render_job(job, video_id=uuid.uuid4(), frames=clip, fps=8.0)
    assert (rendered.width, rendered.height, rendered.frame_count) == (1792, 1024, 16)
    frames, _ = frames_from_npz(rendered.engine_frames)
    assert np.array_equal(frames, clip)
