"""The back-fill migration gives remixes made before inheritance the cameos of their chain."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.db import connection

from feed.models import Post
from generation.models import Appearance, Generation, GenerationCameo, GenerationStatus

pytestmark = pytest.mark.django_db

migration = importlib.import_module("remix.migrations.0001_inherit_parent_cameos")


def test_legacy_remix_chain_gets_its_ancestors_cameos(user, other, active_cameo, make_post):
    cameo = active_cameo(user, handle="alice.face")
    root = make_post(user, cameos=[cameo])
    # Made before inheritance: no appearance rows below the root.
    child = make_post(other, remix_of=root)
    grandchild = make_post(other, remix_of=child)
    job = Generation.objects.create(
        owner=other, prompt="p", seed=1, remix_of_id=grandchild.pk, status=GenerationStatus.QUEUED
    )
    unrelated = make_post(other)

    migration.inherit(None, SimpleNamespace(connection=connection))
    migration.inherit(None, SimpleNamespace(connection=connection))  # re-running adds nothing

    for post in (child, grandchild):
        assert list(
            Appearance.objects.filter(video_id=post.video_id).values_list("cameo_id", flat=True)
        ) == [cameo.pk]
        assert Post.objects.get(pk=post.pk).cameo_ids == [str(cameo.pk)]
    assert list(
        GenerationCameo.objects.filter(generation=job).values_list("cameo_id", flat=True)
    ) == [cameo.pk]
    assert not Appearance.objects.filter(video_id=unrelated.video_id).exists()
    assert Post.objects.get(pk=unrelated.pk).cameo_ids == []
