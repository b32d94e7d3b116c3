"""Reads over remix lineage: may this post be remixed, its direct remixes, its ancestors and
its descendants (docs/remix.md).

Lineage is stored on `feed.Post` (`remix_of`, `root_id`, `depth`), written once at publish by
feed.services.post_publish. Visibility is feed.selectors' rule, reused here, never restated:
a post the viewer may not see shows up in a chain as a placeholder `{id, state: "unavailable"}`
(so the chain's shape stays honest), and is left out of lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from accounts.models import User
from accounts.selectors import blocked_user_ids
from config.core.errors import Forbidden, NotFound
from feed.models import Post, PostState
from feed.selectors import posts_visible_to

TREE_DEFAULT_DEPTH = 3
TREE_MAX_DEPTH = 10
TREE_MAX_NODES = 500

NOT_REMIXABLE = "This post can't be remixed."


def remix_parent(*, user: User, post_id, field: str | None = None) -> Post:
    """The post `user` may remix, or the refusal.

    404 when the post does not exist, is removed or its author is gone; 403 `remix_not_allowed`
    when its author turned remixes off or a block stands between the two users. The message is
    the same for both refusals so it never tells someone they were blocked. This mirrors the
    re-check at publish (feed.services._lineage_parent), so a remix admitted here is refused
    there only if something changed in between.
    """
    fields = {field: [str(post_id)]} if field else None
    post = (
        Post.objects.select_related("author")
        .filter(pk=post_id, state=PostState.LIVE, author__is_active=True)
        .first()
    )
    if post is None:
        raise NotFound("No such post.", fields=fields)
    if not post.allow_remix or post.author_id in blocked_user_ids(user):
        raise Forbidden(NOT_REMIXABLE, code="remix_not_allowed", fields=fields)
    return post


def remixes_of(*, user: User, post: Post) -> QuerySet[Post]:
    """Direct remixes of `post` the viewer may see (the caller orders and pages them; the
    (remix_of, -created_at, -id) index serves each page)."""
    return posts_visible_to(user).filter(remix_of=post)


# --- lineage ----------------------------------------------------------------------------------

# One statement however deep the chain: each step is a primary-key probe. The walk stops after
# `stop` steps, so a page costs O(offset + limit) probes, never the whole chain.
LINEAGE_SQL = """
WITH RECURSIVE chain(id, remix_of_id, depth, n) AS (
    SELECT id, remix_of_id, depth, 0 FROM feed_post WHERE id = %(start)s
  UNION ALL
    SELECT p.id, p.remix_of_id, p.depth, c.n + 1
    FROM chain c JOIN feed_post p ON p.id = c.remix_of_id
    WHERE c.n < %(stop)s
)
SELECT id, depth, n FROM chain WHERE n > %(offset)s ORDER BY n
"""


@dataclass
class LineagePage:
    ancestors: list[dict[str, Any]]  # {"id", "depth", "post": Post | None}, parent first
    more: bool
    offset: int  # ancestors before this page


def lineage(*, user: User, post: Post, offset: int, limit: int) -> LineagePage:
    """Ancestors of `post` from its parent towards the root, `limit` of them after the first
    `offset`. Bounded: one recursive query plus one for the visible posts, whatever the depth.

    A parent row that was deleted outright (its author's account went; `remix_of` is SET NULL)
    ends the walk early: the last ancestor then has `depth > 0` and no parent.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            LINEAGE_SQL, {"start": post.pk, "stop": offset + limit + 1, "offset": offset}
        )
        rows = cursor.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [row[0] for row in rows]
    visible = {p.pk: p for p in posts_visible_to(user).filter(pk__in=ids)} if ids else {}
    return LineagePage(
        ancestors=[{"id": pk, "depth": depth, "post": visible.get(pk)} for pk, depth, _ in rows],
        more=more,
        offset=offset,
    )


# --- tree -------------------------------------------------------------------------------------


@dataclass
class TreeNode:
    id: Any
    depth: int
    post: Post | None  # None: not visible to the viewer (placeholder)
    children: list[TreeNode] = field(default_factory=list)


@dataclass
class RemixTree:
    root: TreeNode
    depth: int
    truncated: bool
    nodes: list[Post]  # every visible post in the tree, for one annotate/serialize pass


def remix_tree(
    *, user: User, post: Post, depth: int = TREE_DEFAULT_DEPTH, max_nodes: int = TREE_MAX_NODES
) -> RemixTree:
    """Descendants of `post` down to `depth` levels, at most `max_nodes` of them.

    Breadth first, one query per level (so at most `depth` queries however wide a level is),
    each reading at most the nodes still allowed through the (remix_of, -created_at, -id)
    index; newest first within a level. When the cap cuts a level, `truncated` is set and the
    newest nodes are the ones kept; a client pages further with /posts/{id}/remixes, guided by
    each node's `remix_count`.

    Hidden posts (removed, or by someone on either side of a block) are walked through, so their
    visible remixes keep their place under a placeholder; a hidden post with no visible
    descendant in the tree is pruned. Hidden posts count towards the cap.
    """
    blocked = blocked_user_ids(user)
    edges: dict[Any, list[Any]] = {}
    depths: dict[Any, int] = {}
    frontier = [post.pk]
    fetched = 0
    truncated = False
    for _ in range(depth):
        if not frontier:
            break
        room = max_nodes - fetched
        rows = list(
            Post.objects.filter(remix_of_id__in=frontier)
            .order_by("-created_at", "-id")
            .values_list("id", "remix_of_id", "depth")[: room + 1]
        )
        if len(rows) > room:
            truncated = True
            rows = rows[:room]
        for pk, parent_id, level in rows:
            edges.setdefault(parent_id, []).append(pk)
            depths[pk] = level
        fetched += len(rows)
        frontier = [row[0] for row in rows]
        if truncated:
            break
    visible = (
        {p.pk: p for p in posts_visible_to(user, blocked=blocked).filter(pk__in=list(depths))}
        if depths
        else {}
    )

    def build(pk) -> TreeNode | None:
        children = [c for c in (build(k) for k in edges.get(pk, ())) if c is not None]
        node_post = visible.get(pk)
        if node_post is None and not children:
            return None
        return TreeNode(id=pk, depth=depths[pk], post=node_post, children=children)

    root = TreeNode(id=post.pk, depth=post.depth, post=post)
    root.children = [c for c in (build(k) for k in edges.get(post.pk, ())) if c is not None]
    return RemixTree(root=root, depth=depth, truncated=truncated, nodes=[post, *visible.values()])


# --- subtree (consent) --------------------------------------------------------------------

SUBTREE_SQL = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM feed_post WHERE video_id = %(video)s
  UNION
    SELECT p.id FROM feed_post p JOIN subtree s ON p.remix_of_id = s.id
)
SELECT id FROM subtree
"""


def parent_video_id(*, remix_of_id):
    """`remix.parent_video` provider: the video of post `remix_of_id`, whatever its state."""
    return Post.objects.filter(pk=remix_of_id).values_list("video_id", flat=True).first()


def subtree_post_ids(*, video_id) -> list:
    """`remix.subtree` provider: the post of `video_id` and every post below it, whatever
    their state or visibility (a consent withdrawal must reach hidden remixes too). One
    recursive statement walking the (remix_of) index; empty when the video was never posted."""
    with connection.cursor() as cursor:
        cursor.execute(SUBTREE_SQL, {"video": video_id})
        return [row[0] for row in cursor.fetchall()]
