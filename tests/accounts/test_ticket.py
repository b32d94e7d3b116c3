"""The realtime ticket service (accounts.realtime.realtime_ticket_issue) and its thin view."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.realtime import TICKET_PREFIX, RealtimeTicket, realtime_ticket_issue
from accounts.tokens import token_issue, token_lookup

pytestmark = pytest.mark.django_db


def test_a_ticket_is_stored_once_bound_to_the_token_it_was_minted_with(user, settings):
    settings.RIFF_REALTIME_TICKET_TTL = 45
    token = token_lookup(token_issue(user=user))
    issued = realtime_ticket_issue(token=token)
    assert isinstance(issued, RealtimeTicket) and issued.expires_in == 45
    key = TICKET_PREFIX + issued.ticket
    assert cache.get(key) == f"{user.pk}:{token.pk}"
    redis = cache._cache.get_client(write=True)
    assert 0 < redis.ttl(cache.make_key(key)) <= 45  # it expires on its own
    again = realtime_ticket_issue(token=token)
    assert again.ticket != issued.ticket and len(issued.ticket) >= 32


def test_the_view_hands_out_the_services_ticket(api, user):
    response = api.post("/api/v1/realtime/ticket")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"ticket", "expires_in", "url"}
    assert body["url"] == f"ws://testserver/ws/?ticket={body['ticket']}"
    user_id, _, token_id = cache.get(TICKET_PREFIX + body["ticket"]).partition(":")
    assert user_id == str(user.pk) and token_id.isdigit()
