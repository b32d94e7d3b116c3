"""Reads for posts. Post visibility lives here and only here.

A post is visible when it is `live` (not deleted, not taken down by moderation, its video not
removed or taken down, no cameo in it revoked: those flip `state` through feed.services and its
hooks, so lists never join through appearances) and no block stands between its author and the
viewer. Every list (Latest, Following and its inboxes, For You sources and snapshot pages,
remixes, lineage, tree, a user's posts) goes through `posts_visible_to`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from accounts.selectors import blocked_user_ids
from cameos.models import Cameo
from config.core.errors import NotFound
from config.core.lookups import uuid_array  # and `__any` (long id lists), registered
from config.core.sql import fetchall

from .models import Comment, Like, Post, PostCounter, PostState


def posts_visible_to(user, *, blocked: set | None = None) -> QuerySet[Post]:
    qs = Post.objects.filter(state=PostState.LIVE, author__is_active=True)
    blocked = blocked_user_ids(user) if blocked is None else blocked
    if blocked:
        qs = qs.exclude(author_id__any=blocked)
    return qs.select_related("author", "video", "video__owner")


def post_visible(*, user, post_id) -> Post:
    post = posts_visible_to(user).filter(pk=post_id).first()
    if post is None:
        raise NotFound("No such post.")
    return post


def posts_following(*, user) -> QuerySet[Post]:
    """Posts by people `user` follows (the database path; feed.inbox is the fast one)."""
    return posts_visible_to(user).filter(author__follower_set__follower=user)


def posts_by(*, user, author) -> QuerySet[Post]:
    """`author`'s posts that `user` may see (none when a block stands between them)."""
    return posts_visible_to(user).filter(author=author)


def comments_of(*, user, post: Post) -> QuerySet[Comment]:
    """The post's comments; those moderation took down are hidden from everyone, their authors
    included (feed.services.comment_takedown says why)."""
    qs = Comment.objects.filter(
        post=post, author__is_active=True, hidden_at__isnull=True
    ).select_related("author")
    blocked = blocked_user_ids(user)
    return qs.exclude(author_id__in=blocked) if blocked else qs


_COUNT_NAMES = ("likes", "comments", "remixes", "views", "completes", "see_less")
# The shards summed per post, for a list of posts sent as one array (a ranking asks for ~1,000:
# through the ORM, compiling and converting the aggregate cost more than running it).
_COUNTS_SQL = (
    "SELECT post_id, "  # noqa: S608 - the model's table and column names only
    + ", ".join(f"sum({name})::bigint" for name in _COUNT_NAMES)
    + f" FROM {PostCounter._meta.db_table} WHERE post_id = ANY(%s::uuid[]) GROUP BY post_id"
)


def post_counts(post_ids: Iterable) -> dict:
    """{post_id: {likes, comments, remixes, views, completes, see_less}} summed over the
    shards, one prepared statement; posts without counters are left out."""
    rows = fetchall(_COUNTS_SQL, [uuid_array(post_ids)])
    return {row[0]: dict(zip(_COUNT_NAMES, row[1:], strict=True)) for row in rows}


def annotate_posts(posts: list[Post], *, viewer) -> list[Post]:
    """Attaches counts, `liked_by_me` and cameo briefs to a page of posts: three queries in all,
    whatever the page size."""
    if not posts:
        return posts
    ids = [p.pk for p in posts]
    counts = post_counts(ids)
    liked = set()
    if viewer is not None and viewer.is_authenticated:
        liked = set(
            Like.objects.filter(user=viewer, post_id__in=ids).values_list("post_id", flat=True)
        )
    cameo_ids = {c for p in posts for c in p.cameo_ids}
    cameos = {}
    if cameo_ids:
        cameos = {str(c.pk): c for c in Cameo.objects.filter(pk__in=cameo_ids).only("id", "handle")}
    zero = {"likes": 0, "comments": 0, "remixes": 0, "views": 0}
    for post in posts:
        c = counts.get(post.pk, zero)
        post.like_count = c["likes"] or 0
        post.comment_count = c["comments"] or 0
        post.remix_count = c["remixes"] or 0
        post.view_count = c["views"] or 0
        post.liked_by_me = post.pk in liked
        post.cameo_briefs = [cameos[i] for i in post.cameo_ids if i in cameos]
    return posts


def live_post_of_video(*, video_id):
    """`video.live_post` provider: the live post showing `video_id`, or None."""
    return (
        Post.objects.filter(video_id=video_id, state=PostState.LIVE)
        .values_list("pk", flat=True)
        .first()
    )
