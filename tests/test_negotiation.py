"""config.core.negotiation.QuickNegotiation: DRF's answer, without parsing in the usual cases."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, StaticHTMLRenderer
from rest_framework.request import Request

from config.core.negotiation import QuickNegotiation

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "text/html",
    "application/json; indent=4",
    "application/json;q=0.5, text/html",
    "application/*",
    "text/*, */*;q=0.1",
    "",
    "garbage",
    "application/JSON",
    "*/*; charset=utf-8",
]
QUERIES = ["", "kind=latest", "format=json", "format=api", "%66ormat=json", "cursor=abc-_"]
RENDERER_LISTS = [
    [JSONRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer()],
    [StaticHTMLRenderer(), JSONRenderer()],
]


def _answer(negotiator, accept, query, renderers):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/api/v1/me?{query}" if query else "/", **headers))
    try:
        renderer, media_type = negotiator.select_renderer(request, renderers)
    except exceptions.NotAcceptable:
        return "406"
    except Http404:  # a `?format=` no renderer has
        return "404"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", RENDERER_LISTS, ids=lambda r: type(r[0]).__name__)
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_same_answer_as_drf(accept, query, renderers):
    assert _answer(QuickNegotiation(), accept, query, renderers) == _answer(
        DefaultContentNegotiation(), accept, query, renderers
    )


def test_the_usual_cases_do_not_reach_drf(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed")

    monkeypatch.setattr(DefaultContentNegotiation, "select_renderer", refuse)
    for accept in (None, "*/*", "application/json"):
        assert _answer(QuickNegotiation(), accept, "kind=latest", [JSONRenderer()]) == (
            "JSONRenderer",
            "application/json",
        )
    # Anything else is DRF's to answer.
    with pytest.raises(AssertionError, match="parsed"):
        _answer(QuickNegotiation(), "text/html", "", [JSONRenderer()])
    with pytest.raises(AssertionError, match="parsed"):
        _answer(QuickNegotiation(), None, "format=json", [JSONRenderer()])


def test_an_api_request_that_accepts_no_json_is_still_refused(api):
    response = api.get("/api/v1/me", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"
    assert api.get("/api/v1/me", HTTP_ACCEPT="application/json").status_code == 200
    assert api.get("/api/v1/me").headers["Content-Type"] == "application/json"
