"""Remix fixtures: lineage shapes inserted in bulk (a 1,000-deep chain or a 5,000-wide fan in
a few statements), with the same lineage columns and counters post_publish would write."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from feed.models import Post
from feed.services import counters_add
from generation.models import Generation, GenerationStatus, Video, VideoState


def _rows(author, count: int, *, start):
    """`count` succeeded generations and their posted videos (the posts are the caller's)."""
    gens = [
        Generation(
            owner=author,
            prompt=f"p{i}",
            seed=i,
            status=GenerationStatus.SUCCEEDED,
            created_at=start,
        )
        for i in range(count)
    ]
    Generation.objects.bulk_create(gens, batch_size=2000)
    videos = [
        Video(
            owner=author,
            generation=g,
            state=VideoState.POSTED,
            seconds=2,
            width=512,
            height=512,
            frame_count=16,
            content=f"videos/t/{g.pk}.mp4",
            poster=f"videos/t/{g.pk}.jpg",
            preview=f"videos/t/{g.pk}.webp",
            sha256="0" * 64,
        )
        for g in gens
    ]
    Video.objects.bulk_create(videos, batch_size=2000)
    return videos


@pytest.fixture
def bulk_chain(db):
    """`make(author, parent, length)`: a chain of `length` remixes below `parent`, each one a
    second newer than its parent; returns the posts, parent first."""

    def make(author, parent: Post, length: int) -> list[Post]:
        start = parent.created_at
        videos = _rows(author, length, start=start)
        posts, above = [], parent
        for i, video in enumerate(videos):
            post = Post(
                id=uuid.uuid4(),
                author=author,
                video=video,
                remix_of_id=above.pk,
                root_id=parent.root_id,
                depth=parent.depth + i + 1,
                created_at=start + timedelta(seconds=i + 1),
            )
            posts.append(post)
            above = post
        Post.objects.bulk_create(posts, batch_size=2000)
        counters_add(field="remixes", deltas={p.remix_of_id: 1 for p in posts})
        return posts

    return make


@pytest.fixture
def bulk_fan(db):
    """`make(author, parent, width, same_time=False)`: `width` direct remixes of `parent`,
    post i created i seconds after the parent (all at once with `same_time`, so only the id
    orders them); returns the posts oldest first."""

    def make(author, parent: Post, width: int, *, same_time: bool = False) -> list[Post]:
        start = max(parent.created_at, timezone.now())
        videos = _rows(author, width, start=start)
        posts = [
            Post(
                id=uuid.uuid4(),
                author=author,
                video=video,
                remix_of_id=parent.pk,
                root_id=parent.root_id,
                depth=parent.depth + 1,
                created_at=start + timedelta(seconds=0 if same_time else i + 1),
            )
            for i, video in enumerate(videos)
        ]
        Post.objects.bulk_create(posts, batch_size=2000)
        counters_add(field="remixes", deltas={parent.pk: width})
        return posts

    return make
