"""Safety rules in moderation (docs/moderation-safety.md): the prompt blocklist, public-figure
protection at admission, and the output check that holds a video for review. Through HTTP
where there is an endpoint; the worker is `generation.tasks.generation_run`, called directly."""

from __future__ import annotations

import io
from unittest import mock

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import Notification
from cameos.models import Audience, Cameo, CameoGrant
from cameos.services import cameo_update
from config.core.errors import Conflict, Forbidden
from generation.engine import backends
from generation.engine.backends import GeneratedClip, clear_engine_cache, register_engine
from generation.models import Generation, Video
from generation.tasks import generation_run
from moderation import safety
from moderation.models import (
    BlockedFrameHash,
    ModerationEvent,
    ProtectedFigure,
    Report,
    SafetyRule,
    Ticket,
)
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import assert_error
from tests.moderation.conftest import event

pytestmark = pytest.mark.django_db


def generate(client, prompt, **body):
    return client.post("/api/v1/generations", {"prompt": prompt, **body}, format="json")


# --- the prompt blocklist ---------------------------------------------------------------------


def test_blocklist_rules_refuse_with_content_policy_and_leave_nothing(api, teen_birth_date):
    SafetyRule.objects.create(name="gore", pattern="Gore", message="No gore.")
    SafetyRule.objects.create(name="teen", pattern=r"horror\w*", kind="regex", teens_only=True)
    SafetyRule.objects.create(name="off", pattern="calm", enabled=False)
    error = assert_error(generate(api, "lots of ＧＯＲＥ here"), 403, "content_policy")
    assert error["message"] == "No gore."
    assert generate(api, "gorefree horrorshow, calm").status_code == 202
    teen = client_for(UserFactory(username="teen", birth_date=teen_birth_date))
    assert_error(generate(teen, "horrorshow"), 403, "content_policy")
    assert Generation.objects.count() == 1


def test_a_blocked_prompt_is_refused_before_any_cameo_refusal(api, other, active_cameo):
    """content_policy answers first, as before the move: the blocklist is the
    `admission.prompt_check` hook, called where admission checked the rules itself."""
    SafetyRule.objects.create(name="gore", pattern="gore", message="No gore.")
    forbidden = active_cameo(other, handle="bobs.cat")
    body = {"cameos": [str(forbidden.pk)]}
    assert_error(generate(api, "gore", **body), 403, "content_policy")
    assert_error(generate(api, "a dance", **body), 403, "cameo_permission_denied")
    assert not Generation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_existing_databases_rules_move_with_their_ids_and_back():
    """moderation 0003 copies generation's rows; generation 0004 (after it) drops the old
    table. Unapplied, the rows go back."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("generation", "0003_video_takedown"), ("moderation", "0002_events_insert_only")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("generation", "SafetyRule")
        kept = old.objects.create(name="gore", pattern="gore", message="No.", teens_only=True)
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        moved = SafetyRule.objects.get()
        assert (moved.pk, moved.name, moved.message, moved.teens_only) == (
            kept.pk,
            "gore",
            "No.",
            True,
        )
        assert SafetyRule.objects.create(name="next", pattern="x").pk > kept.pk  # sequence
        assert "generation_safetyrule" not in connection.introspection.table_names()
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        back = executor.loader.project_state(before).apps.get_model("generation", "SafetyRule")
        assert sorted(back.objects.values_list("name", flat=True)) == ["gore", "next"]
    finally:
        MigrationExecutor(connection).migrate(latest)


def test_the_rules_live_in_moderation_only():
    import generation.models

    assert not hasattr(generation.models, "SafetyRule")
    assert SafetyRule._meta.app_label == "moderation"


# --- public figures ---------------------------------------------------------------------------


@pytest.fixture
def figure(make_user, active_cameo):
    """Marlowe Quince (an invented singer) has a person cameo anyone may use."""
    marlowe = make_user(username="marlowe")
    cameo = active_cameo(marlowe, audience=Audience.EVERYONE, kind="person", handle="marlowe.q")
    return ProtectedFigure.objects.create(
        name="Marlowe Quince", aliases=["The Quince Machine"], cameo=cameo, note="asked by mail"
    )


@pytest.mark.parametrize(
    "prompt",
    [
        "Marlowe Quince dancing on the moon",
        "M4rl0we  Qu1nce's concert",
        "m a r l o w e quince at a party",
        "MARLOWE-QUINCE!",
        "Маrlоwе Quincе in a car",  # Cyrillic а, о, е
        "Marlowe\u200b Quince",  # a zero-width space
        "quince machine sings",  # an alias, its article optional
    ],
)
def test_a_protected_figure_is_refused_without_their_cameo(api, figure, prompt):
    error = assert_error(generate(api, prompt), 403, "content_policy", "prompt")
    assert "Marlowe Quince" in error["fields"]["prompt"][0]
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    "prompt", ["marlowesque quinces", "a quince tart", "Marlowe the cat", "Christopher Marlowe"]
)
def test_other_words_are_not_the_figure(api, figure, prompt):
    assert generate(api, prompt).status_code == 202


def test_their_own_cameo_is_their_consent(api, figure):
    cameo = figure.cameo
    by_id = generate(api, "Marlowe Quince sings", cameos=[str(cameo.pk)])
    assert by_id.status_code == 202, by_id.content
    by_handle = generate(api, "@marlowe.q as M4rlowe Quince on stage")
    assert by_handle.status_code == 202 and by_handle.json()["cameos"] == [str(cameo.pk)]


def test_a_figure_without_a_usable_cameo_is_refused_before_cameo_refusals(
    api, figure, other, active_cameo
):
    """Whoever can't bring the figure's cameo in at all is refused in the prompt check, before
    a cameo refusal; whoever could but didn't is refused once the cameos are known."""
    forbidden = active_cameo(other, handle="bobs.cat")
    Cameo.objects.filter(pk=figure.cameo_id).update(audience=Audience.ONLY_ME)
    assert_error(generate(api, "Marlowe Quince", cameos=[str(forbidden.pk)]), 403, "content_policy")
    Cameo.objects.filter(pk=figure.cameo_id).update(audience=Audience.EVERYONE)
    assert_error(
        generate(api, "Marlowe Quince", cameos=[str(forbidden.pk)]),
        403,
        "cameo_permission_denied",
    )
    own_cameo = figure.cameo_id
    figure.cameo = None  # staff unlink it in the admin (a save: the matcher notices)
    figure.save()
    assert_error(generate(api, "Marlowe Quince", cameos=[str(own_cameo)]), 403, "content_policy")
    assert not Generation.objects.exists()


def test_a_cameos_instructions_naming_a_figure_need_the_figure_too(
    api, user, other, figure, active_cameo
):
    """Another cameo can't be made into the person through its instructions. Its restrictions
    (what it must never do) may name them."""
    puppet = active_cameo(other, audience=Audience.EVERYONE, handle="bobs.puppet")
    cameo_update(cameo=puppet, data={"instructions": "sings exactly like M4rlowe Qu1nce"})
    error = assert_error(generate(api, "@bobs.puppet sings"), 403, "content_policy", "cameos")
    assert "Marlowe Quince" in error["fields"]["cameos"][0]
    both = generate(api, "@bobs.puppet and @marlowe.q sing")
    assert both.status_code == 202, both.content
    cameo_update(
        cameo=puppet, data={"instructions": "a puppet", "restrictions": "never Marlowe Quince"}
    )
    assert generate(api, "@bobs.puppet sings").status_code == 202
    assert Generation.objects.count() == 2


def test_the_matcher_follows_every_change_of_the_list(api, figure):
    assert generate(api, "Dorrit Vale reads").status_code == 202
    added = ProtectedFigure.objects.create(name="Dorrit Vale")
    assert_error(generate(api, "D0rrit Vale reads"), 403, "content_policy")
    added.aliases = ["Dee Vee Star"]
    added.save()
    assert_error(generate(api, "dee vee star"), 403, "content_policy")
    added.delete()
    assert generate(api, "Dorrit Vale reads again").status_code == 202


def test_the_figure_form_validates_names_like_ip_aliases(active_cameo, make_user):
    from moderation.safety_admin import ProtectedFigureForm

    pet = active_cameo(make_user(username="pet_owner"), kind="pet")
    form = ProtectedFigureForm(
        data={"name": "Al", "aliases_text": "the\nGood Alias", "cameo": str(pet.pk), "note": ""}
    )
    assert not form.is_valid()
    assert set(form.errors) == {"name", "aliases_text", "cameo"}
    ok = ProtectedFigureForm(data={"name": "  Wren   Solace ", "aliases_text": "Wrenny S\n\n"})
    assert ok.is_valid(), ok.errors
    saved = ok.save()
    assert (saved.name, saved.aliases) == ("Wren Solace", ["Wrenny S"])


# --- the output check -------------------------------------------------------------------------

SIDE = 32


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


BLOCKED = noise(1)  # "a known abusive frame"
CLEAN = noise(2)


class PatternEngine:
    """Returns clips made of whatever frame `PatternEngine.frame` is."""

    name, fps, max_context_frames = "safety-pattern", 8, 0
    height = width = SIDE
    frame = CLEAN

    def generate(self, requests, on_progress=None):
        if on_progress is not None:
            on_progress(1, 1)
        clip = np.stack([PatternEngine.frame] * 8)
        return [GeneratedClip(clip, self.fps, {}) for _ in requests]


@pytest.fixture
def pattern_engine(settings):
    register_engine("safety-pattern", lambda **_: PatternEngine())
    settings.RIFF_ENGINE, settings.RIFF_ENGINE_OPTIONS = "safety-pattern", {}
    PatternEngine.frame = CLEAN
    yield PatternEngine
    clear_engine_cache()
    with backends._LOCK:
        backends._FACTORIES.pop("safety-pattern", None)


def run_generation(client, prompt="a pattern"):
    """POST /generations, then the worker; returns the generation as its owner sees it."""
    admitted = generate(client, prompt)
    assert admitted.status_code == 202, admitted.content
    gid = admitted.json()["id"]
    assert generation_run(gid) == "succeeded"
    return client.get(f"/api/v1/generations/{gid}").json()


def test_dhash_is_robust_to_size_and_letterbox_and_signed_storage_round_trips():
    value = safety.dhash(BLOCKED)
    bigger = np.asarray(Image.fromarray(BLOCKED).resize((96, 96), Image.Resampling.BILINEAR))
    boxed = np.zeros((170, 96, 3), np.uint8)
    boxed[37:133] = bigger
    assert bin(value ^ safety.dhash(boxed)).count("1") <= 8
    assert bin(value ^ safety.dhash(CLEAN)).count("1") > 16
    for v in (0, 1, 2**63 - 1, 2**63, 2**64 - 1, value):
        stored = safety.hash_to_db(v)
        assert -(2**63) <= stored < 2**63 and safety.hash_from_db(stored) == v


def test_no_hash_registered_passes_at_once():
    with mock.patch.object(safety, "dhash") as hashed:
        assert safety.output_problems(frames=np.stack([BLOCKED] * 4)) == []
    hashed.assert_not_called()


def test_a_blocklisted_frame_holds_the_video_and_opens_a_ticket(
    api, user, pattern_engine, moderator
):
    safety.blocked_frame_hash_add(value=safety.dhash(BLOCKED), label="case 17")
    pattern_engine.frame = BLOCKED
    seen = run_generation(api)
    # The owner sees the generation succeeded and its video held; nobody sees the video.
    assert seen["status"] == "succeeded" and seen["video"]["state"] == "held"
    video_id = seen["video"]["id"]
    assert_error(api.get(f"/api/v1/videos/{video_id}"), 404, "not_found")
    assert_error(api.get(f"/api/v1/videos/{video_id}/content"), 404, "not_found")
    content_url = seen["video"]["content_url"]  # signed: the hold still wins
    assert client_for(UserFactory()).get(content_url).status_code == 404
    assert api.get("/api/v1/drafts").json()["results"] == []
    # Publishing it is the 404 of a draft that isn't there (as for a taken-down one).
    assert_error(api.post("/api/v1/posts", {"video_id": video_id}, format="json"), 404, "not_found")
    # A system report in the output_check queue, which moderators see.
    (ticket,) = Ticket.objects.all()
    assert (ticket.subject_type, ticket.subject_id) == ("video", video_id)
    assert (ticket.work_queue, ticket.status, ticket.reporter_count) == ("output_check", "open", 1)
    (report,) = Report.objects.all()
    assert report.reporter is None and report.reason == "other"
    assert "case 17" in report.details and "bits apart" in report.details
    _, as_mod = moderator
    queue = as_mod.get("/api/v1/moderation/reports").json()["results"]
    assert [t["subject_id"] for t in queue] == [video_id]


def test_a_clean_video_is_a_draft_as_before(api, pattern_engine):
    safety.blocked_frame_hash_add(value=safety.dhash(BLOCKED), label="case 17")
    seen = run_generation(api)
    assert seen["video"]["state"] == "draft"
    assert api.get(f"/api/v1/videos/{seen['video']['id']}").status_code == 200
    assert not Ticket.objects.exists()


def test_a_check_that_fails_holds_the_video(api, pattern_engine, settings):
    settings.RIFF_HOOKS = {
        **settings.RIFF_HOOKS,
        "video.output_check": [f"{__name__}.broken_check", f"{__name__}.quiet_check"],
    }
    seen = run_generation(api)
    assert seen["video"]["state"] == "held"
    assert "could not run (RuntimeError)" in Report.objects.get().details


def test_the_check_list_is_configurable(api, pattern_engine, settings):
    settings.RIFF_HOOKS = {**settings.RIFF_HOOKS, "video.output_check": [f"{__name__}.quiet_check"]}
    safety.blocked_frame_hash_add(value=safety.dhash(CLEAN))
    assert run_generation(api)["video"]["state"] == "draft"
    settings.RIFF_HOOKS = {**settings.RIFF_HOOKS, "video.output_check": [f"{__name__}.picky_check"]}
    assert run_generation(api, "another")["video"]["state"] == "held"
    assert Report.objects.get().details == "too many squares"


def broken_check(*, job, frames):
    raise RuntimeError("model missing")


def quiet_check(*, job, frames):
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    return []


def picky_check(*, job, frames):
    return ["too many squares"]


@pytest.fixture
def held(api, user, pattern_engine):
    safety.blocked_frame_hash_add(value=safety.dhash(BLOCKED))
    pattern_engine.frame = BLOCKED
    seen = run_generation(api)
    return Video.objects.get(pk=seen["video"]["id"])


def test_a_moderator_releases_a_held_video_to_draft(api, user, held, moderator, triage):
    triage_user, _ = triage
    with pytest.raises(Forbidden):
        safety.held_release(video=held, actor=triage_user)
    assert Video.objects.get(pk=held.pk).state == "held"
    mod, _ = moderator
    released = safety.held_release(video=held, actor=mod, reason="a test pattern")
    assert released.state == "draft"
    assert api.get(f"/api/v1/videos/{held.pk}").status_code == 200
    assert [v["id"] for v in api.get("/api/v1/drafts").json()["results"]] == [str(held.pk)]
    (ticket,) = Ticket.objects.all()
    assert (ticket.status, ticket.outcome) == ("closed", "no_action")
    (recorded,) = ModerationEvent.objects.all()
    assert (recorded.type, recorded.reason, recorded.actor_id) == (
        "acknowledge",
        "a test pattern",
        mod.pk,
    )
    assert Notification.objects.filter(recipient=user, kind="video.released").count() == 1
    # Again: nothing more happens. A posted video is not "released".
    safety.held_release(video=held, actor=mod)
    assert ModerationEvent.objects.count() == 1
    assert api.post("/api/v1/posts", {"video_id": str(held.pk)}, format="json").status_code == 201
    from generation.services.videos import video_release

    with pytest.raises(Conflict):
        video_release(video=held)


def test_a_held_video_taken_down_and_appealed_is_held_again(api, held, moderator):
    """Reversing a takedown never delivers a held video unreviewed: it goes back to `held`
    with a new ticket."""
    _, as_mod = moderator
    down = event(as_mod, "video", held.pk, "takedown", reason="abusive frame")
    assert down.status_code == 201, down.content
    assert Video.objects.get(pk=held.pk).state == "taken_down"
    assert Ticket.objects.get().status == "closed"
    appeal = api.post(
        "/api/v1/appeals", {"event_id": down.json()["id"], "text": "it is noise"}, format="json"
    )
    assert appeal.status_code == 201, appeal.content
    approved = as_mod.post(
        f"/api/v1/moderation/appeals/{appeal.json()['id']}/approve", {}, format="json"
    )
    assert approved.status_code == 200, approved.content
    assert Video.objects.get(pk=held.pk).state == "held"
    assert_error(api.get(f"/api/v1/videos/{held.pk}/content"), 404, "not_found")
    reopened = Ticket.objects.exclude(status="closed").get()
    assert reopened.work_queue == "output_check" and reopened.subject_id == str(held.pk)


def test_a_cameo_owner_still_finds_and_removes_a_held_video(
    api, user, other, active_cameo, pattern_engine
):
    safety.blocked_frame_hash_add(value=safety.dhash(BLOCKED))
    pattern_engine.frame = BLOCKED
    cameo = active_cameo(other, handle="bobs.cat")
    CameoGrant.objects.create(cameo=cameo, user=user)
    seen = run_generation(api, "@bobs.cat")
    bob = client_for(other)
    listed = bob.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert [a["video"]["state"] for a in listed] == ["held"]
    video_id = seen["video"]["id"]
    assert bob.delete(f"/api/v1/cameos/{cameo.pk}/appearances/{video_id}").status_code == 204
    assert Video.objects.get(pk=video_id).state == "removed"


def test_the_hash_form_takes_an_image_or_hex():
    from moderation.safety_admin import BlockedFrameHashForm

    out = io.BytesIO()
    Image.fromarray(BLOCKED).save(out, format="PNG")
    upload = SimpleUploadedFile("frame.png", out.getvalue(), content_type="image/png")
    form = BlockedFrameHashForm(data={"label": "from image"}, files={"image": upload})
    assert form.is_valid(), form.errors
    row = form.save()
    assert safety.hash_from_db(row.hash) == safety.dhash(BLOCKED)
    typed = BlockedFrameHashForm(data={"label": "shared", "hash_hex": "FFFFFFFFFFFFFFFF"})
    assert typed.is_valid(), typed.errors
    assert typed.save().hash == -1
    assert not BlockedFrameHashForm(data={"label": "x", "hash_hex": "xyz"}).is_valid()
    assert not BlockedFrameHashForm(data={"label": "nothing"}).is_valid()
    assert BlockedFrameHash.objects.count() == 2


def test_the_release_endpoint_needs_a_moderator(api, held, moderator, triage):
    _, as_triage = triage
    url = f"/api/v1/moderation/videos/{held.pk}/release"
    refused = as_triage.post(url, {"reason": "fine"}, format="json")
    assert refused.status_code == 403 and Video.objects.get(pk=held.pk).state == "held"
    _, as_mod = moderator
    released = as_mod.post(url, {"reason": "a test pattern"}, format="json")
    assert released.status_code == 200, released.content
    assert released.json()["events"][-1]["type"] == "acknowledge"
    assert Video.objects.get(pk=held.pk).state == "draft"
    assert (
        as_mod.post(f"/api/v1/moderation/videos/{held.pk}x/release", {}, format="json").status_code
        == 404
    )
