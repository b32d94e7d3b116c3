"""The console in a real browser (issue #30, "What it must show"): Playwright drives Debian's
Chromium against the app on pytest-django's live server.

A moderator signs in through /admin/login/, opens the top report from the queue with the
keyboard, the video plays (a real H.264 MP4), takes the post down with a reason and confirms;
the post is then gone from the feed, `/posts/{id}` and its content answer 404 and the reporter
has a `report.resolved` notification; the owner appeals over the API; an admin approves in the
console and the post is back.

`RIFF_SCREENSHOTS=1` also saves the queue, the report page and the dashboard to
docs/img/moderation-*.png (docs/moderation-console.md shows them); CI leaves the docs alone.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone

from accounts.models import Notification
from generation.models import Generation, GenerationStatus, Video
from moderation.models import Ticket
from tests.conftest import client_for, png_bytes
from tests.media import make_video
from tests.moderation.conftest import report

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
PASSWORD = "correct horse battery"  # tests.factories.PASSWORD


def _playwright():
    """Playwright and Debian's Chromium, or a skip that says why. Under CI both are installed
    (.ci/run, the dev extra), so a missing one there is a failure, not a skip."""
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"Debian's Chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture
def browser(monkeypatch):
    sync_playwright = _playwright()
    # Playwright's sync API keeps an asyncio loop running on this thread, which makes Django
    # refuse ORM calls here ("You cannot call this from an async context"). The test thread only
    # sets up rows and reads them back between browser steps (the server runs in its own
    # thread), so that guard is lifted for this test.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
            # With a loop running, Django's connections are per context, not per thread: the
            # ones this test opened must be closed here, or the test database can't be dropped.
            connections.close_all()


def shot(page, name: str) -> None:
    if os.environ.get("RIFF_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"moderation-{name}.png"), full_page=True)


def real_video(post) -> None:
    """Gives the post's video a real H.264 MP4 and JPEG poster (the fixtures store stand-ins)."""
    video = post.video
    data = make_video(3.0, audio=False, size=(320, 240), fps=12)
    content = default_storage.save(f"videos/t/{video.pk}-real.mp4", ContentFile(data))
    poster = default_storage.save(
        f"videos/t/{video.pk}-real.jpg",
        ContentFile(png_bytes((320, 240), (40, 60, 140), fmt="JPEG")),
    )
    Video.objects.filter(pk=video.pk).update(
        content=content,
        poster=poster,
        sha256=hashlib.sha256(data).hexdigest(),
        seconds=3,
        width=320,
        height=240,
    )


def login(context, base: str, username: str):
    page = context.new_page()
    page.goto(f"{base}/console/")
    assert "/admin/login/" in page.url  # the console sits behind the admin's staff login
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/console/")
    return page


def feed_ids(client) -> set[str]:
    body = client.get("/api/v1/feed?kind=latest&limit=100").json()
    return {item["post"]["id"] for item in body["results"] if item["kind"] == "post"}


def test_moderator_takes_a_post_down_and_an_admin_approves_the_appeal(
    browser, live_server, make_user, make_post
):
    owen, zed = make_user(username="owen"), make_user(username="zed")
    rita, ravi, rosa = (make_user(username=n) for n in ("rita", "ravi", "rosa"))
    mod = make_user(username="maya_mod", is_staff=True)
    mod.groups.add(Group.objects.get_or_create(name="moderator")[0])
    boss = make_user(username="ada_admin", is_staff=True)
    boss.groups.add(Group.objects.get_or_create(name="admin")[0])

    post = make_post(owen, caption="ball vs. wall", prompt="a red ball bounces off a wall")
    real_video(post)
    other = make_post(zed, caption="news?", prompt="a newsreader announces a fake event")
    as_rita = client_for(rita)
    report(as_rita, "post", post.pk, "violence", details="the ending is graphic")
    report(client_for(ravi), "post", post.pk, "harassment")
    report(client_for(rosa), "post", other.pk, "misleading_synthetic")
    report(client_for(ravi), "user", zed.pk, "spam", details="posts the same thing all day")
    ticket = Ticket.objects.get(subject_id=str(post.pk))
    # Some generator traffic for the dashboard's hourly chart.
    now = timezone.now()
    for hours, status in ((1, GenerationStatus.FAILED), (3, GenerationStatus.FAILED)):
        Generation.objects.create(
            owner=zed, prompt="x", seed=1, status=status, created_at=now - timedelta(hours=hours)
        )
    assert str(post.pk) in feed_ids(as_rita)

    base = live_server.url
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = login(context, base, mod.username)

    # The queue: the top row is the post (violence, two reporters).
    first = page.locator("#queue tbody tr").first
    assert first.get_attribute("data-ticket") == str(ticket.pk)
    assert "current" in (first.get_attribute("class") or "")
    shot(page, "queue")

    # Enter opens the selected (top) ticket.
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/console/reports/{ticket.pk}")
    assert "a red ball bounces off a wall" in page.inner_text("blockquote.prompt")

    # The video loads and plays ("p" toggles playback).
    page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " return v && v.readyState >= 2 && v.duration > 2.5 }",
        timeout=15_000,
    )
    page.keyboard.press("p")
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.3", timeout=15_000
    )
    page.evaluate("document.getElementById('player').pause()")
    shot(page, "report")

    # Take it down: a reason, the button, then the confirmation.
    page.click("button[value=takedown]")  # no reason yet: the browser refuses to submit
    assert page.locator("#actions .confirm").is_hidden()
    page.fill("#reason", "graphic violence at the end (rule 4)")
    page.click("button[value=takedown]")
    confirm = page.locator("#actions .confirm-button")
    assert confirm.is_visible() and "Take down" in confirm.inner_text()
    with page.expect_navigation():
        confirm.click()
    assert "Take down: done" in page.inner_text(".messages")
    assert "graphic violence at the end (rule 4)" in page.inner_text("table.history")

    # Gone: from the feed, the post and its content; the reporter is told.
    assert str(post.pk) not in feed_ids(as_rita)
    assert as_rita.get(f"/api/v1/posts/{post.pk}").status_code == 404
    assert as_rita.get(f"/api/v1/videos/{post.video_id}/content").status_code == 404
    resolved = Notification.objects.get(recipient=rita, kind="report.resolved")
    assert resolved.data["outcome"] == "actioned"

    # The owner appeals the takedown they were told about.
    told = Notification.objects.get(recipient=owen, kind="moderation.action")
    as_owen = client_for(owen)
    appeal = as_owen.post(
        "/api/v1/appeals",
        {"event_id": told.data["event_id"], "text": "it is a cartoon ball"},
        format="json",
    )
    assert appeal.status_code == 201, appeal.content

    # An admin approves it in the console.
    admin_page = login(
        browser.new_context(viewport={"width": 1400, "height": 900}), base, boss.username
    )
    admin_page.click("text=Appeals")
    card = admin_page.locator(f"#appeal-{appeal.json()['id']}")
    assert "it is a cartoon ball" in card.inner_text()
    card.locator("input[name=reason]").fill("a cartoon, not graphic")
    card.locator("button[value=approve]").click()
    with admin_page.expect_navigation():
        card.locator(".confirm-button").click()
    assert "Appeal approved." in admin_page.inner_text(".messages")

    # The post is back everywhere.
    assert as_rita.get(f"/api/v1/posts/{post.pk}").status_code == 200
    assert as_rita.get(f"/api/v1/videos/{post.video_id}/content").status_code == 200
    assert str(post.pk) in feed_ids(as_rita)

    admin_page.goto(f"{base}/console/dashboard")
    assert admin_page.locator("svg.chart").count() >= 4
    shot(admin_page, "dashboard")
    context.close()
