"""Property test of the event-sourced moderation status (issue #30): random sequences of
actions and appeals on two users and their posts, through the real services.

After every sequence, for every subject: the stored SubjectStatus equals the status rebuilt
from its events from scratch, equals this test's own model of what the actions mean, and
matches the world (the post is taken down exactly when the status says so, the account is
active exactly when not banned, its suspension is the status's). Refused actions write no
event.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from accounts.models import User
from config.core.errors import ApiError
from feed.models import Post
from moderation.models import ModerationEvent, SubjectStatus
from moderation.projection import project
from moderation.services import appeal_create, appeal_decide, event_record

pytestmark = pytest.mark.django_db

USER_ACTIONS = ["strike", "suspend", "ban", "unban", "mute_reporter", "label", "note"]
POST_ACTIONS = ["takedown", "reverse_takedown", "label", "escalate", "acknowledge", "note"]
APPEALS = ["appeal_approve", "appeal_reject"]

op = st.tuples(
    st.integers(0, 3),  # subject: users 0-1, posts 2-3
    st.integers(0, 100),  # which action (modulo the subject's list)
    st.sampled_from(["graphic", "spoiler", "satire"]),  # label
    st.booleans(),  # a timed takedown / suspension
)


@pytest.fixture
def cast(make_user, make_post, staff_in):
    """An admin, and a maker of fresh subjects: each example gets its own two users and posts
    (events are insert-only, so subjects can't be reset between examples)."""
    admin, _ = staff_in("admin", "boss")

    def fresh():
        tag = uuid.uuid4().hex[:8]
        users = [make_user(username=f"{n}{tag}") for n in ("uma", "ugo")]
        return users, [make_post(u) for u in users]

    return admin, fresh


class Model:
    """What the actions mean, written independently of moderation.projection."""

    def __init__(self) -> None:
        self.down = False
        self.labels: set[str] = set()
        self.escalated = False
        self.strikes = 0
        self.suspended = False
        self.banned = False
        self.muted = False
        self.appealable: list = []  # (event, kind, label) not yet appealed

    def apply(self, kind: str, event, label: str) -> None:
        if kind == "takedown":
            self.down = True
        elif kind == "reverse_takedown":
            self.down = False
        elif kind == "label":
            self.labels.add(label)
        elif kind == "escalate":
            self.escalated = True
        elif kind == "acknowledge":
            self.escalated = False
        elif kind == "strike":
            self.strikes += 1
        elif kind == "suspend":
            self.suspended = True
        elif kind == "ban":
            self.banned = True
        elif kind == "unban":
            self.banned = False
        elif kind == "mute_reporter":
            self.muted = True
        if kind in ("takedown", "label", "strike", "suspend", "ban", "mute_reporter"):
            self.appealable.append((event, kind, label))

    def undo(self, kind: str, label: str) -> None:
        if kind == "takedown":
            self.down = False
        elif kind == "label":
            self.labels.discard(label)
        elif kind == "strike":
            self.strikes -= 1
        elif kind == "suspend":
            self.suspended = False
        elif kind == "ban":
            self.banned = False
        elif kind == "mute_reporter":
            self.muted = False


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, min_size=10, max_size=30))
def test_status_is_the_projection_of_the_events_and_matches_the_world(cast, ops):
    admin, fresh = cast
    users, posts = fresh()
    subjects = [("user", u) for u in users] + [("post", p) for p in posts]
    keys = [(t, str(o.pk)) for t, o in subjects]
    models = {key: Model() for key in keys}

    for index, pick, label, timed in ops:
        subject_type, obj = subjects[index]
        model = models[keys[index]]
        actions = (USER_ACTIONS if subject_type == "user" else POST_ACTIONS) + APPEALS
        kind = actions[pick % len(actions)]
        before = ModerationEvent.objects.count()
        if kind in APPEALS:
            if not model.appealable:
                continue
            target, target_kind, target_label = model.appealable.pop(0)
            owner = obj if subject_type == "user" else obj.author
            appeal = appeal_create(user=owner, event_id=target.public_id, text="please")
            approve = kind == "appeal_approve"
            appeal_decide(appeal=appeal, actor=admin, approve=approve)
            if approve:
                model.undo(target_kind, target_label)
            continue
        try:
            event, created = event_record(
                actor=admin,
                subject_type=subject_type,
                subject_id=str(obj.pk),
                type=kind,
                reason="property",
                label=label if kind == "label" else "",
                duration_hours=48 if timed and kind in ("takedown", "suspend") else None,
            )
        except ApiError:
            assert ModerationEvent.objects.count() == before  # a refusal writes nothing
            continue
        assert created
        model.apply(kind, event, label)

    for (subject_type, obj), key in zip(subjects, keys, strict=True):
        model = models[key]
        events = list(
            ModerationEvent.objects.filter(subject_type=key[0], subject_id=key[1]).order_by("id")
        )
        stored = SubjectStatus.objects.filter(subject_type=key[0], subject_id=key[1]).first()
        if stored is None:
            assert not events
            continue
        ours = project(events)
        for name, value in ours.as_fields().items():
            assert getattr(stored, name) == value, (key, name)
        assert ours.taken_down == model.down, key
        assert set(ours.labels) == model.labels, key
        assert ours.escalated == model.escalated, key
        assert len(ours.strikes) == model.strikes, key
        assert (ours.suspended_until is not None) == model.suspended, key
        assert ours.banned == model.banned and ours.muted == model.muted, key
        if subject_type == "post":
            state = Post.objects.get(pk=obj.pk).state
            assert (state == "taken_down") == stored.taken_down, (key, state)
        else:
            user = User.objects.get(pk=obj.pk)
            assert user.is_active == (not stored.banned), key
            assert user.suspended_until == stored.suspended_until, key
