"""Reports, the queue, moderation events, roles and appeals over HTTP (API.md "Reports and
moderation"). Every refusal is checked to change nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Notification, User
from cameos.models import Audience, Cameo, CameoStatus
from feed.models import Post
from moderation.models import Appeal, ModerationEvent, Report, SubjectStatus, Ticket
from moderation.services import strikes_in_force, takedowns_expire
from tests.conftest import client_for
from tests.helpers import assert_error
from tests.moderation.conftest import event, report

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user, make_post, active_cameo):
    """owen posts a video showing mia's cameo; rita, ravi and rosa are readers."""
    owen, mia = make_user(username="owen"), make_user(username="mia")
    readers = [make_user(username=n) for n in ("rita", "ravi", "rosa")]
    cameo = active_cameo(mia, audience=Audience.EVERYONE, handle="mia.face")
    post = make_post(owen, cameos=[cameo])
    return {"owen": owen, "mia": mia, "readers": readers, "cameo": cameo, "post": post}


def state():
    return (
        Report.objects.count(),
        Ticket.objects.count(),
        ModerationEvent.objects.count(),
        list(SubjectStatus.objects.order_by("pk").values()),
        list(User.objects.order_by("pk").values_list("is_active", "suspended_until")),
        list(Post.objects.order_by("pk").values_list("state", flat=True)),
    )


# --- reports ----------------------------------------------------------------------------------


def test_one_report_per_reporter_and_subject_and_one_ticket_per_subject(world):
    rita, ravi, rosa = (client_for(u) for u in world["readers"])
    post = world["post"]
    first = report(rita, "post", post.pk, "spam", details="ads in the video")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["status"], body["outcome"], body["reason"]) == ("open", "", "spam")
    again = report(rita, "post", post.pk, "hate")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    report(ravi, "post", post.pk, "harassment")
    report(rosa, "post", post.pk, "spam")
    (ticket,) = Ticket.objects.all()
    assert ticket.reporter_count == 3 and ticket.reason == "harassment"
    assert ticket.work_queue == "harm"
    mine = rita.get("/api/v1/me/reports").json()["results"]
    assert [r["id"] for r in mine] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"subject_type": "post", "subject_id": "not-an-id", "reason": "spam"}, 400, "subject_id"),
        (
            {"subject_type": "planet", "subject_id": str(uuid.uuid4()), "reason": "spam"},
            400,
            "subject_type",
        ),
        (
            {"subject_type": "post", "subject_id": str(uuid.uuid4()), "reason": "boring"},
            400,
            "reason",
        ),
        ({"subject_type": "post", "subject_id": str(uuid.uuid4()), "reason": "spam"}, 404, None),
        ({"subject_type": "post", "reason": "spam"}, 400, "subject_id"),
    ],
)
def test_bad_reports_change_nothing(world, body, status, field):
    before = state()
    response = client_for(world["readers"][0]).post("/api/v1/reports", body, format="json")
    assert response.status_code == status
    if field:
        assert field in response.json()["error"]["fields"]
    assert state() == before


def test_a_reporter_cannot_probe_what_they_cannot_see(world, make_video_row):
    draft = make_video_row(world["owen"])  # a draft: only owen (and cameo owners) see it
    generation = draft.generation_id
    rita = client_for(world["readers"][0])
    before = state()
    assert_error(report(rita, "video", draft.pk), 404, "not_found")
    assert_error(report(rita, "generation", generation), 404, "not_found")
    assert state() == before


def test_priority_orders_the_queue_and_a_likeness_report_by_its_owner_jumps_it(
    world, make_post, make_user, triage
):
    other = make_post(make_user(username="zed"))
    rita, ravi = (client_for(u) for u in world["readers"][:2])
    report(rita, "post", other.pk, "minor_safety")
    report(ravi, "post", world["post"].pk, "spam")
    _, as_triage = triage
    order = [t["subject_id"] for t in as_triage.get("/api/v1/moderation/reports").json()["results"]]
    assert order == [str(other.pk), str(world["post"].pk)]
    # mia, whose likeness is in owen's post, says she did not consent: first in the queue.
    report(client_for(world["mia"]), "post", world["post"].pk, "likeness_misuse")
    queue = as_triage.get("/api/v1/moderation/reports").json()["results"]
    assert queue[0]["subject_id"] == str(world["post"].pk) and queue[0]["likeness_self"] is True
    assert queue[0]["queue"] == "likeness" and queue[0]["reporter_count"] == 2
    likeness = as_triage.get("/api/v1/moderation/reports?queue=likeness").json()["results"]
    assert [t["subject_id"] for t in likeness] == [str(world["post"].pk)]
    assert_error(as_triage.get("/api/v1/moderation/reports?status=lost"), 400, "invalid", "status")


def test_only_moderation_roles_see_the_queue(world, make_user):
    staff_without_role = client_for(make_user(username="plainstaff", is_staff=True))
    for client in (client_for(world["owen"]), staff_without_role):
        assert_error(client.get("/api/v1/moderation/reports"), 403, "permission_denied")
        assert_error(
            client.get(f"/api/v1/moderation/subjects/post/{world['post'].pk}"),
            403,
            "permission_denied",
        )


def test_assign_to_self_or_a_moderator(world, triage, moderator, make_user):
    report(client_for(world["readers"][0]), "post", world["post"].pk)
    ticket = Ticket.objects.get()
    _, as_triage = triage
    mod, _ = moderator
    url = f"/api/v1/moderation/reports/{ticket.pk}/assign"
    mine = as_triage.post(url, {}, format="json").json()
    assert (mine["status"], mine["assignee"]) == ("assigned", "triage_1")
    theirs = as_triage.post(url, {"username": mod.username}, format="json").json()
    assert theirs["assignee"] == mod.username
    make_user(username="noroles")
    assert_error(as_triage.post(url, {"username": "noroles"}, format="json"), 400, "invalid")
    assert Ticket.objects.get().assignee == mod


# --- events and roles -------------------------------------------------------------------------


def test_a_triage_user_may_not_ban_and_nothing_changes(world, triage):
    _, as_triage = triage
    before = state()
    for kind in ("ban", "takedown", "suspend", "strike"):
        subject = ("user", world["owen"].pk) if kind != "takedown" else ("post", world["post"].pk)
        assert_error(event(as_triage, *subject, kind), 403, "permission_denied")
    assert state() == before
    noted = event(as_triage, "post", world["post"].pk, "note", reason="looks off")
    assert noted.status_code == 201 and noted.json()["actor"] == "triage_1"
    escalated = event(as_triage, "post", world["post"].pk, "escalate", reason="needs a lawyer")
    assert escalated.status_code == 201


def test_a_moderator_may_not_ban_an_admin_may(world, moderator, admin_role):
    _, as_mod = moderator
    assert_error(event(as_mod, "user", world["owen"].pk, "ban"), 403, "permission_denied")
    _, as_admin = admin_role
    owen_client = client_for(world["owen"])
    banned = event(as_admin, "user", world["owen"].pk, "ban", reason="repeated deepfakes")
    assert banned.status_code == 201
    owen = User.objects.get(pk=world["owen"].pk)
    assert owen.is_active is False
    assert owen_client.get("/api/v1/me").status_code == 401  # tokens revoked
    unbanned = event(as_admin, "user", world["owen"].pk, "unban", reason="appeal by mail")
    assert unbanned.status_code == 201 and User.objects.get(pk=owen.pk).is_active


def test_reasons_are_required_where_the_contract_says(world, moderator):
    _, as_mod = moderator
    before = state()
    for kind, subject in (("takedown", "post"), ("strike", "user"), ("suspend", "user")):
        sid = world["post"].pk if subject == "post" else world["owen"].pk
        assert_error(event(as_mod, subject, sid, kind, reason=""), 400, "invalid", "reason")
    assert_error(event(as_mod, "post", world["post"].pk, "strike"), 400, "invalid", "subject_type")
    assert_error(event(as_mod, "post", world["post"].pk, "label"), 400, "invalid", "label")
    assert state() == before


def test_takedown_closes_reports_tells_everyone_and_the_owner_may_appeal(world, moderator):
    rita_user = world["readers"][0]
    rita, owen = client_for(rita_user), client_for(world["owen"])
    filed = report(rita, "post", world["post"].pk, "violence").json()
    mod, as_mod = moderator
    down = event(
        as_mod,
        "post",
        world["post"].pk,
        "takedown",
        reason="graphic violence",
        report_ids=[filed["id"]],
    )
    assert down.status_code == 201, down.content
    event_id = down.json()["id"]
    # Gone from the post endpoint and its video's content; the reporter sees the outcome.
    assert_error(rita.get(f"/api/v1/posts/{world['post'].pk}"), 404, "not_found")
    assert_error(rita.get(f"/api/v1/videos/{world['post'].video_id}/content"), 404, "not_found")
    (mine,) = rita.get("/api/v1/me/reports").json()["results"]
    assert (mine["status"], mine["outcome"]) == ("closed", "actioned")
    kinds = set(Notification.objects.values_list("recipient__username", "kind"))
    assert {("rita", "report.resolved"), ("owen", "moderation.action")} <= kinds
    subject = as_mod.get(f"/api/v1/moderation/subjects/post/{world['post'].pk}").json()
    assert subject["status"]["taken_down"] is True and subject["owner"] == "owen"
    assert [e["type"] for e in subject["events"]] == ["takedown"]
    # Taking it down again is a conflict; nothing new is written.
    assert_error(event(as_mod, "post", world["post"].pk, "takedown"), 409, "invalid_transition")

    # The owner appeals once; a stranger can't; the moderator approves and it is back.
    assert_error(
        rita.post("/api/v1/appeals", {"event_id": event_id, "text": "not mine"}, format="json"),
        404,
        "not_found",
    )
    appeal = owen.post(
        "/api/v1/appeals", {"event_id": event_id, "text": "it is a film"}, format="json"
    )
    assert appeal.status_code == 201 and appeal.json()["status"] == "pending"
    twice = owen.post("/api/v1/appeals", {"event_id": event_id, "text": "again"}, format="json")
    assert_error(twice, 409, "already_appealed")
    pending = as_mod.get("/api/v1/moderation/appeals").json()["results"]
    assert [a["id"] for a in pending] == [appeal.json()["id"]]
    approved = as_mod.post(
        f"/api/v1/moderation/appeals/{appeal.json()['id']}/approve", {}, format="json"
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert rita.get(f"/api/v1/posts/{world['post'].pk}").status_code == 200
    status = SubjectStatus.objects.get(subject_type="post", subject_id=str(world["post"].pk))
    assert status.taken_down is False and status.event_count == 2
    assert Notification.objects.filter(recipient=world["owen"], kind="appeal.decided").exists()
    again = as_mod.post(
        f"/api/v1/moderation/appeals/{appeal.json()['id']}/reject", {}, format="json"
    )
    assert_error(again, 409, "invalid_transition")


def test_an_appeal_after_the_window_is_refused(world, moderator, settings):
    _, as_mod = moderator
    struck = event(as_mod, "user", world["owen"].pk, "strike", reason="spam").json()
    settings.RIFF_APPEAL_WINDOW_DAYS = 0
    owen = client_for(world["owen"])
    late = owen.post("/api/v1/appeals", {"event_id": struck["id"], "text": "sorry"}, format="json")
    assert_error(late, 409, "appeal_window_closed")
    assert not Appeal.objects.exists()


def test_external_ids_make_an_event_once(world, moderator):
    _, as_mod = moderator
    first = event(as_mod, "post", world["post"].pk, "label", label="graphic", external_id="ext-1")
    again = event(as_mod, "post", world["post"].pk, "label", label="graphic", external_id="ext-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and ModerationEvent.objects.count() == 1


def test_strikes_expire_and_suspension_blocks_creating(world, moderator):
    owen = world["owen"]
    _, as_mod = moderator
    struck = event(as_mod, "user", owen.pk, "strike", reason="spam", duration_hours=1)
    assert struck.status_code == 201
    status = SubjectStatus.objects.get(subject_type="user", subject_id=str(owen.pk))
    assert len(strikes_in_force(status)) == 1
    assert strikes_in_force(status, now=timezone.now() + timedelta(hours=2)) == []
    suspended = event(as_mod, "user", owen.pk, "suspend", reason="cool off", duration_hours=24)
    assert suspended.status_code == 201
    client = client_for(owen)
    assert_error(
        client.post("/api/v1/generations", {"prompt": "a cat"}, format="json"),
        403,
        "account_suspended",
    )
    assert client.get("/api/v1/me").status_code == 200


def test_timed_takedowns_end_on_time(world, moderator):
    _, as_mod = moderator
    event(as_mod, "post", world["post"].pk, "takedown", reason="pending review", duration_hours=1)
    assert takedowns_expire() == 0
    assert takedowns_expire(now=timezone.now() + timedelta(hours=2)) == 1
    types = list(ModerationEvent.objects.order_by("id").values_list("type", "actor_name"))
    assert types == [("takedown", "moderator_1"), ("reverse_takedown", "")]
    assert Post.objects.get(pk=world["post"].pk).state == "live"


def test_revoking_a_cameo_goes_through_the_consent_path(world, moderator):
    _, as_mod = moderator
    revoked = event(as_mod, "cameo", world["cameo"].pk, "revoke_cameo", reason="impersonation")
    assert revoked.status_code == 201
    assert Cameo.objects.get(pk=world["cameo"].pk).status == CameoStatus.REVOKED
    # Its videos go with it, as when the owner revokes it.
    assert Post.objects.get(pk=world["post"].pk).state == "removed"


def test_a_muted_reporter_is_heard_by_nobody(world, moderator):
    rita_user = world["readers"][0]
    _, as_mod = moderator
    assert (
        event(as_mod, "user", rita_user.pk, "mute_reporter", reason="abusive reports").status_code
        == 201
    )
    filed = report(client_for(rita_user), "post", world["post"].pk, "hate")
    assert filed.status_code == 201 and filed.json()["status"] == "open"
    assert as_mod.get("/api/v1/moderation/reports").json()["results"] == []


def test_which_events_answer_which_reports(world, moderator, triage):
    rita, ravi = (client_for(u) for u in world["readers"][:2])
    first = report(rita, "post", world["post"].pk, "spam").json()
    _, as_triage = triage
    _, as_mod = moderator
    # A note and an escalation answer nothing, even when they name the report.
    event(as_triage, "post", world["post"].pk, "note", report_ids=[first["id"]])
    event(as_triage, "post", world["post"].pk, "escalate", report_ids=[first["id"]])
    assert rita.get("/api/v1/me/reports").json()["results"][0]["status"] == "escalated"
    # A label answers the reports it names ("actioned"), and only those.
    event(as_mod, "post", world["post"].pk, "label", label="ad", report_ids=[first["id"]])
    assert rita.get("/api/v1/me/reports").json()["results"][0]["outcome"] == "actioned"
    second = report(ravi, "post", world["post"].pk, "spam").json()
    assert second["status"] == "open"  # a new ticket: the first one is closed
    # Acknowledging settles the subject: every open report is answered "no action".
    event(as_mod, "post", world["post"].pk, "acknowledge", reason="not spam")
    (theirs,) = ravi.get("/api/v1/me/reports").json()["results"]
    assert (theirs["status"], theirs["outcome"]) == ("closed", "no_action")
    other = report(rita, "user", world["owen"].pk, "spam").json()
    wrong = event(as_mod, "post", world["post"].pk, "label", label="x", report_ids=[other["id"]])
    assert_error(wrong, 400, "invalid", "report_ids")


def test_actions_show_in_the_admins_recent_actions(world, moderator):
    from django.contrib.admin.models import LogEntry

    _, as_mod = moderator
    event(as_mod, "post", world["post"].pk, "takedown", reason="graphic")
    (entry,) = LogEntry.objects.all()
    assert entry.object_id == str(world["post"].pk) and entry.user.username == "moderator_1"
    assert entry.change_message == "moderation takedown: graphic"


def test_reports_on_a_subject_deleted_since_can_still_be_closed(world, moderator, make_user):
    from accounts.services import user_delete

    troll = make_user(username="troll")
    filed = report(client_for(world["readers"][0]), "user", troll.pk, "harassment").json()
    troll_id = troll.pk
    user_delete(user=troll)
    _, as_mod = moderator
    assert_error(event(as_mod, "user", troll_id, "strike"), 404, "not_found")
    closed = event(as_mod, "user", troll_id, "acknowledge", reason="account gone")
    assert closed.status_code == 201
    mine = client_for(world["readers"][0]).get("/api/v1/me/reports").json()["results"]
    assert [(r["id"], r["status"]) for r in mine] == [(filed["id"], "closed")]
