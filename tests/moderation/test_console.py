"""The moderation console over HTTP (Django's test client): who may see and do what, that
every action needs a reason and a confirmation, CSRF, bulk acknowledgement, appeals, the
dashboard and the staff video endpoint. Every refusal is checked to change nothing."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import Notification, User
from feed.models import Post
from moderation.models import Appeal, ModerationEvent, Report, SubjectStatus, Ticket
from moderation.services import appeal_create, event_record
from tests.conftest import client_for
from tests.moderation.conftest import report

pytestmark = pytest.mark.django_db


def console(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def staff(make_user):
    """staff("moderator") -> a logged-in console client for a staff user in that group (no
    group for None)."""

    def make(role: str | None, name: str | None = None):
        user = make_user(username=name or f"{role or 'norole'}_c", is_staff=True)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user, console(user)

    return make


@pytest.fixture
def world(make_user, make_post):
    """owen's post reported by rita (violence) and ravi (spam); zed's post reported by rosa."""
    owen, zed = make_user(username="owen"), make_user(username="zed")
    rita, ravi, rosa = (make_user(username=n) for n in ("rita", "ravi", "rosa"))
    post = make_post(owen, caption="a bouncing ball", prompt="a red ball bounces")
    other = make_post(zed, caption="other", prompt="a blue cube")
    report(client_for(rita), "post", post.pk, "violence", details="at 0:01")
    report(client_for(ravi), "post", post.pk, "spam")
    report(client_for(rosa), "post", other.pk, "spam")
    ticket = Ticket.objects.get(subject_id=str(post.pk))
    other_ticket = Ticket.objects.get(subject_id=str(other.pk))
    return {
        "owen": owen,
        "zed": zed,
        "rita": rita,
        "post": post,
        "other": other,
        "ticket": ticket,
        "other_ticket": other_ticket,
    }


def state():
    return (
        Report.objects.count(),
        list(Ticket.objects.order_by("pk").values_list("status", "outcome", "assignee_id")),
        ModerationEvent.objects.count(),
        list(SubjectStatus.objects.order_by("pk").values()),
        list(User.objects.order_by("pk").values_list("is_active", "suspended_until")),
        list(Post.objects.order_by("pk").values_list("state", flat=True)),
        list(Appeal.objects.order_by("pk").values_list("status", flat=True)),
    )


def urls(world):
    t, video = world["ticket"], world["post"].video_id
    return {
        "get": [
            "/console/",
            f"/console/reports/{t.pk}",
            "/console/appeals",
            "/console/dashboard",
            f"/console/media/videos/{video}/video",
        ],
        "post": [
            f"/console/reports/{t.pk}/act",
            f"/console/reports/{t.pk}/assign",
            "/console/bulk/acknowledge",
            f"/console/appeals/{uuid.uuid4()}/decide",
        ],
    }


def act(client, ticket, action, reason="graphic violence", confirm=True, **extra):
    data = {"action": action, "reason": reason, **extra}
    if confirm:
        data["confirm"] = "yes"
    return client.post(f"/console/reports/{ticket.pk}/act", data)


# --- who may come in ----------------------------------------------------------------------


def test_anonymous_and_non_staff_are_sent_to_the_admin_login(world):
    before = state()
    for client in (Client(), console(world["rita"])):
        for url in urls(world)["get"]:
            r = client.get(url)
            assert r.status_code == 302 and r["Location"].startswith("/admin/login/?next="), url
        for url in urls(world)["post"]:
            r = client.post(url, {"action": "takedown", "reason": "x", "confirm": "yes"})
            assert r.status_code == 302 and r["Location"].startswith("/admin/login/"), url
    assert state() == before


def test_staff_without_a_moderation_role_get_403_everywhere(world, staff):
    _, client = staff(None)
    before = state()
    for url in urls(world)["get"]:
        r = client.get(url)
        assert r.status_code == 403, url
        assert b"no moderation role" in r.content
    for url in urls(world)["post"]:
        r = client.post(url, {"action": "takedown", "reason": "x", "confirm": "yes"})
        assert r.status_code == 403, url
    assert state() == before


def test_triage_reads_notes_and_escalates_but_cannot_take_down(world, staff):
    user, client = staff("triage")
    ticket = world["ticket"]
    assert client.get("/console/").status_code == 200
    page = client.get(f"/console/reports/{ticket.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    # Only the buttons the role may use are shown.
    assert 'value="note"' in html and 'value="escalate"' in html
    for hidden in ("takedown", "acknowledge", "label", "strike", "suspend", "ban"):
        assert f'value="{hidden}"' not in html, hidden
    assert "Appeals</a>" not in html  # not in the navigation either
    assert client.get("/console/dashboard").status_code == 200
    assert client.get("/console/appeals").status_code == 403
    # ...and they are refused server-side: 403, nothing changed.
    before = state()
    for action in ("takedown", "acknowledge", "strike", "suspend", "ban", "label"):
        r = act(client, ticket, action, label="x")
        assert r.status_code == 403, action
    r = client.post(
        "/console/bulk/acknowledge",
        {"tickets": [str(ticket.pk)], "reason": "fine", "confirm": "yes"},
    )
    assert r.status_code == 403
    assert state() == before
    # What triage may do works.
    assert act(client, ticket, "note", reason="looked at it").status_code == 302
    assert act(client, ticket, "escalate", reason="needs a lead").status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert list(ModerationEvent.objects.values_list("type", "actor_name")) == [
        ("note", user.username),
        ("escalate", user.username),
    ]


def test_only_an_admin_may_ban_from_the_console(world, staff):
    _, mod = staff("moderator")
    _, adm = staff("admin")
    ticket = world["ticket"]
    assert 'value="ban"' not in mod.get(f"/console/reports/{ticket.pk}").content.decode()
    before = state()
    assert act(mod, ticket, "ban", reason="repeat offender").status_code == 403
    assert state() == before
    assert 'value="ban"' in adm.get(f"/console/reports/{ticket.pk}").content.decode()
    assert act(adm, ticket, "ban", reason="repeat offender").status_code == 302
    world["owen"].refresh_from_db()
    assert world["owen"].is_active is False
    assert ModerationEvent.objects.get().subject_id == str(world["owen"].pk)


# --- actions: reason, confirmation, CSRF ----------------------------------------------------


def test_an_action_needs_a_reason_and_writes_nothing_without_one(world, staff):
    _, client = staff("moderator")
    before = state()
    for reason in ("", "   "):
        r = act(client, world["ticket"], "takedown", reason=reason)
        assert r.status_code == 400
        assert "a reason is required" in r.content.decode()
    # A label needs its label, too.
    assert act(client, world["ticket"], "label", reason="why").status_code == 400
    assert state() == before


def test_an_action_asks_for_confirmation_first(world, staff):
    _, client = staff("moderator")
    before = state()
    r = act(client, world["ticket"], "takedown", reason="graphic violence", confirm=False)
    assert r.status_code == 200
    html = r.content.decode()
    assert "Confirm" in html and 'name="confirm" value="yes"' in html
    assert 'name="action" value="takedown"' in html and "graphic violence" in html
    assert state() == before


def test_takedown_from_the_console_goes_through_the_event_service(world, staff, anon):
    mod, client = staff("moderator")
    ticket, post = world["ticket"], world["post"]
    page = client.get(f"/console/reports/{ticket.pk}").content.decode()
    for shown in ('value="takedown"', 'value="strike"', 'value="suspend"', "a red ball bounces"):
        assert shown in page, shown
    r = act(client, ticket, "takedown", reason="graphic violence", duration_hours="48")
    assert r.status_code == 302 and r["Location"] == f"/console/reports/{ticket.pk}"
    (event,) = ModerationEvent.objects.all()
    assert (event.type, event.reason, event.actor_id, event.duration_hours) == (
        "takedown",
        "graphic violence",
        mod.pk,
        48,
    )
    assert sorted(event.report_ids) == sorted(str(r.pk) for r in ticket.reports.all())
    post.refresh_from_db()
    ticket.refresh_from_db()
    assert post.state == "taken_down"
    assert (ticket.status, ticket.outcome) == ("closed", "actioned")
    assert Notification.objects.filter(recipient=world["rita"], kind="report.resolved").exists()
    after = client.get(f"/console/reports/{ticket.pk}").content.decode()
    assert "Take down: done" in after
    assert 'value="reverse_takedown"' in after and 'value="takedown"' not in after
    # Staff still watch it; the public content endpoint answers 404.
    assert client.get(f"/console/media/videos/{post.video_id}/video").status_code == 200
    rita = client_for(world["rita"])
    assert rita.get(f"/api/v1/videos/{post.video_id}/content").status_code == 404


def test_service_refusals_are_shown_as_messages(world, staff, make_post):
    mod, client = staff("moderator")
    own = make_post(mod, prompt="mine")
    report(client_for(world["rita"]), "post", own.pk, "spam")
    ticket = Ticket.objects.get(subject_id=str(own.pk))
    before = state()
    r = act(client, ticket, "strike", reason="self")
    assert r.status_code == 302
    page = client.get(r["Location"]).content.decode()
    assert "Nobody moderates their own account." in page
    assert state() == before


def test_csrf_is_enforced(world, staff):
    mod, _ = staff("moderator")
    client = console(mod, enforce_csrf_checks=True)
    before = state()
    assert act(client, world["ticket"], "takedown").status_code == 403
    r = client.post(
        "/console/bulk/acknowledge",
        {"tickets": [str(world["ticket"].pk)], "reason": "fine", "confirm": "yes"},
    )
    assert r.status_code == 403
    assert state() == before
    # With the page's token it goes through.
    client.get(f"/console/reports/{world['ticket'].pk}")
    token = client.cookies["csrftoken"].value
    r = act(client, world["ticket"], "takedown", csrfmiddlewaretoken=token)
    assert r.status_code == 302 and ModerationEvent.objects.count() == 1


# --- the queue, assigning, bulk ----------------------------------------------------------------


def test_the_queue_lists_tickets_by_priority_with_filters(world, staff):
    _, client = staff("triage")
    html = client.get("/console/").content.decode()
    first, second = str(world["ticket"].pk), str(world["other_ticket"].pk)
    assert html.index(first) < html.index(second)  # violence + 2 reporters before spam
    for shown in ("rita", "ravi", "violence", "harm", "a bouncing ball", "@owen"):
        assert shown in html, shown
    only_spam = client.get("/console/?queue=spam").content.decode()
    assert second in only_spam and first not in only_spam
    closed = client.get("/console/?status=closed").content.decode()
    assert first not in closed and "Nothing here" in closed
    # An unknown filter value is ignored, not a 500.
    assert client.get("/console/?status=lost&queue=nope").status_code == 200


def test_assign_to_me(world, staff):
    user, client = staff("triage")
    r = client.post(f"/console/reports/{world['ticket'].pk}/assign", {"next": "/console/"})
    assert r.status_code == 302 and r["Location"] == "/console/"
    world["ticket"].refresh_from_db()
    assert (world["ticket"].status, world["ticket"].assignee_id) == ("assigned", user.pk)
    # An outside `next` is not followed.
    r = client.post(
        f"/console/reports/{world['ticket'].pk}/assign", {"next": "https://evil.example/"}
    )
    assert r["Location"] == f"/console/reports/{world['ticket'].pk}"


def test_bulk_acknowledge(world, staff):
    mod, client = staff("moderator")
    chosen = [str(world["ticket"].pk), str(world["other_ticket"].pk)]
    before = state()
    missing = client.post("/console/bulk/acknowledge", {"tickets": chosen, "confirm": "yes"})
    assert missing.status_code == 302 and state() == before  # no reason: nothing
    asked = client.post("/console/bulk/acknowledge", {"tickets": chosen, "reason": "fine"})
    assert asked.status_code == 200 and b"Confirm" in asked.content and state() == before
    r = client.post(
        "/console/bulk/acknowledge",
        {"tickets": chosen, "reason": "not violent, a cartoon", "confirm": "yes"},
    )
    assert r.status_code == 302
    assert set(Ticket.objects.values_list("status", "outcome")) == {("closed", "no_action")}
    events = ModerationEvent.objects.order_by("id")
    assert [(e.type, e.reason, e.actor_id) for e in events] == [
        ("acknowledge", "not violent, a cartoon", mod.pk)
    ] * 2
    assert {e.subject_id for e in events} == {str(world["post"].pk), str(world["other"].pk)}
    assert Post.objects.filter(state="live").count() == 2
    assert Notification.objects.filter(kind="report.resolved").count() == 3
    assert "Acknowledged 2 ticket(s)" in client.get("/console/").content.decode()


# --- appeals -------------------------------------------------------------------------------


def test_appeals_are_decided_in_the_console_with_a_reason(world, staff):
    mod, client = staff("moderator")
    post = world["post"]
    down, _ = event_record(
        actor=mod, subject_type="post", subject_id=str(post.pk), type="takedown", reason="gore"
    )
    appeal = appeal_create(user=world["owen"], event_id=down.public_id, text="it is ketchup")
    page = client.get("/console/appeals").content.decode()
    assert "it is ketchup" in page and "gore" in page
    url = f"/console/appeals/{appeal.pk}/decide"
    before = state()
    assert client.post(url, {"decision": "approve", "confirm": "yes"}).status_code == 302
    assert client.post(url, {"decision": "approve", "reason": "ok"}).status_code == 200  # confirm
    assert state() == before
    r = client.post(url, {"decision": "approve", "reason": "it is ketchup", "confirm": "yes"})
    assert r.status_code == 302
    appeal.refresh_from_db()
    post.refresh_from_db()
    assert (appeal.status, post.state) == ("approved", "live")
    decision = ModerationEvent.objects.latest("id")
    assert (decision.type, decision.approved, decision.reason) == (
        "resolve_appeal",
        True,
        "it is ketchup",
    )
    # Deciding twice: a message, nothing new.
    before = state()
    client.post(url, {"decision": "reject", "reason": "again", "confirm": "yes"})
    assert "decided already" in client.get("/console/appeals").content.decode()
    assert state() == before


# --- dashboard and media -----------------------------------------------------------------------


def test_dashboard_renders_its_charts(world, staff):
    mod, client = staff("moderator")
    act(client, world["ticket"], "takedown")
    html = client.get("/console/dashboard").content.decode()
    assert html.count("<svg") >= 4
    for shown in (
        "Open tickets per queue",
        "Median handling time",
        "Moderation actions per day",
        "Generations per hour",
        "Creation shares",
    ):
        assert shown in html, shown
    assert client.get("/console/dashboard?days=7").status_code == 200
    assert client.get("/console/dashboard?days=99999999").status_code == 200


def test_staff_video_file_with_ranges(world, staff):
    _, client = staff("triage")
    video = world["post"].video
    url = f"/console/media/videos/{video.pk}/video"
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Content-Type"] == "video/mp4"
    assert whole["Accept-Ranges"] == "bytes" and "no-store" in whole["Cache-Control"]
    body = b"".join(whole.streaming_content)
    part = client.get(url, HTTP_RANGE="bytes=2-5")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 2-5/{len(body)}"
    assert b"".join(part.streaming_content) == body[2:6]
    tail = client.get(url, HTTP_RANGE="bytes=-4")
    assert b"".join(tail.streaming_content) == body[-4:]
    assert client.get(url, HTTP_RANGE=f"bytes={len(body)}-").status_code == 416
    assert client.get(f"/console/media/videos/{video.pk}/poster").status_code == 200
    assert client.get(f"/console/media/videos/{video.pk}/other").status_code == 404
    assert client.get(f"/console/media/videos/{uuid.uuid4()}/video").status_code == 404


# --- the admin -----------------------------------------------------------------------------------


def test_the_moderation_admin_is_read_only(world, make_user):
    boss = make_user(username="boss", is_staff=True, is_superuser=True)
    client = console(boss)
    event_record(
        actor=boss, subject_type="post", subject_id=str(world["post"].pk), type="note", reason="hm"
    )
    for model in ("ticket", "report", "moderationevent", "subjectstatus", "appeal"):
        assert client.get(f"/admin/moderation/{model}/").status_code == 200, model
        assert client.get(f"/admin/moderation/{model}/add/").status_code == 403, model
    pk = ModerationEvent.objects.get().pk
    change = client.get(f"/admin/moderation/moderationevent/{pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert client.get(f"/admin/moderation/moderationevent/{pk}/delete/").status_code == 403
