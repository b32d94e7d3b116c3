"""Moderation fixtures: staff in each role, and a post with a cameo to report."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tests.conftest import client_for


@pytest.fixture
def staff_in(make_user):
    """staff_in("moderator") -> a staff user in that group (and a client for them)."""

    def make(role: str, name: str | None = None):
        user = make_user(username=name or f"{role}_1", is_staff=True)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user, client_for(user)

    return make


@pytest.fixture
def triage(staff_in):
    return staff_in("triage")


@pytest.fixture
def moderator(staff_in):
    return staff_in("moderator")


@pytest.fixture
def admin_role(staff_in):
    return staff_in("admin")


def report(client, subject_type, subject_id, reason="spam", **extra):
    return client.post(
        "/api/v1/reports",
        {"subject_type": subject_type, "subject_id": str(subject_id), "reason": reason, **extra},
        format="json",
    )


def event(client, subject_type, subject_id, type_, reason="rule 4", **extra):
    return client.post(
        "/api/v1/moderation/events",
        {
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "type": type_,
            "reason": reason,
            **extra,
        },
        format="json",
    )
