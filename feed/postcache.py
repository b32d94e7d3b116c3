"""Feed rows from each web process's memory, checked against stamps in Redis (issue #31).

A feed page used to read its posts from PostgreSQL on every request: one statement joining the
post, its author, its video, its counters and the viewer's like, under the visibility rule
(feed.hydrate). The statement is cheap; its round trip and the Python around it were most of a
page's cost beyond `GET /me` (docs/bench-feed.md). Here each process keeps what pages are made
of, each piece valid while its stamps in Redis are the ones it read before it read the piece
(config.core.stamps), and a page whose pieces are all good makes one Redis round trip for the
stamps (every kind's ride the token check's: feed.feeds.feed_preload; Following's and For
You's are read by the script that reads the page's ids) and none to PostgreSQL:

- a post's *card*: its row, its video and its counts (stamp `post:<id>`, dropped by any save
  or delete of the post, of its video, and by every counter change: likes, comments, remixes,
  views);
- an author's row: name, display name, avatar, active (`user:<id>`, accounts);
- what the viewer has to do with them: a block either way and a follow, per author (under
  `graph:<id>`, accounts), and a like, per post (a like or unlike changes the post's count, so
  its card's stamp goes and the like is read again with it). For You's pages, mostly posts
  new to the viewer, take the likes from the viewer's order instead while the viewer's graph
  and `likes:<id>` stamps (the latter dropped by `like_set`) are those it was ranked under
  (`known`, feed.ranking.snapshot);
- Latest's *window*: the newest `WINDOW` live posts (`latest`, dropped by any post's save or
  delete: a new post, a removal, a restore).

A row is visible by the rule of feed.hydrate.VISIBLE, applied to these pieces: a live post, an
active author, no block either way (and for Following, a followed author). A test holds pages
built here equal to the database's answer after each kind of change.

The gaps, all bounded by RIFF_FEED_CACHE_SECONDS (no piece is trusted longer, whatever its
stamp): a change made while Redis is unreachable can't drop its stamp; a cameo deleted outright
(handles are kept with the cards; a cameo goes only with its owner's account, whose revocation
takes every post showing it down first). Raw SQL that changes posts, videos, users,
likes, follows or blocks must drop the stamps itself. Redis unreachable: `rows_for` answers None
and the caller reads the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from accounts.stamps import graph_stamp, user_stamp
from config.core.redis import STAMPS_LUA
from config.core.sql import fetchall
from config.core.stamps import StampedCache, stamp_key, stamps_args, stamps_drop, stamps_read

from .hydrate import COUNTS_JOIN, Row

# Latest's window: how many of the newest live posts a process keeps in order. Pages past it
# read the database.
WINDOW = 400


def _max_entries() -> int:
    return settings.RIFF_FEED_CACHE_ENTRIES


def enabled() -> bool:
    return settings.RIFF_FEED_CACHE_SECONDS > 0


_POST_KEY = stamp_key("post", "")
_USER_KEY = user_stamp("")


def post_stamp(post_id) -> str:
    return f"{_POST_KEY}{post_id}"


LATEST_STAMP = stamp_key("latest", "all")
_LIKES_KEY = stamp_key("likes", "")


def likes_stamp(user_id) -> str:
    """Which posts the user likes: dropped by each of their likes and unlikes (`like_set`)."""
    return f"{_LIKES_KEY}{user_id}"


def likes_changed(user_id) -> None:
    stamps_drop([likes_stamp(user_id)])


# --- what changes drop ------------------------------------------------------------------------


def posts_changed(post_ids, *, listed: bool = False) -> None:
    """These posts' cards changed (and, `listed`, which posts are live: Latest's window)."""
    keys = [post_stamp(pk) for pk in post_ids]
    stamps_drop([*keys, LATEST_STAMP] if listed else keys)


def on_post_saved(sender, instance, created: bool = False, **kwargs) -> None:
    """post_save and post_delete of a post: its card and Latest's window."""
    posts_changed([instance.pk], listed=True)


def on_video_saved(sender, instance, created: bool = False, **kwargs) -> None:
    """A video's state, sizes or owner are in the cards of the posts that show it."""
    if created:
        return
    from .models import Post

    post_ids = list(Post.objects.filter(video_id=instance.pk).values_list("pk", flat=True))
    if post_ids:
        posts_changed(post_ids)


# --- the cached pieces ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    id: uuid.UUID
    created_at: datetime
    author: str
    live: bool
    head: tuple  # Row.values up to the author: id .. created_at
    tail: tuple  # Row.values after the author: the video and the counts
    handles: tuple  # (cameo id, handle) of its cameos that exist (Row.handles)


@dataclass(frozen=True, slots=True)
class Author:
    active: bool
    fields: tuple  # Row.values' author part: id, username, display_name, avatar_small


@dataclass(frozen=True, slots=True)
class Viewer:
    """What pages learned of one viewer while their graph stamp stayed the same. The dicts
    only grow; a new stamp starts a new entry."""

    # post id -> (the post's stamp it was read under, liked): a like changes the post's count,
    # so its stamp, and the fact is read again with the card. Kept with the stamp, not just
    # under the viewer's: another viewer's page may have read the card again first.
    liked: dict
    authors: dict  # author id -> (a block either way, followed)


_cards = StampedCache(max_entries=50_000, max_age=60)
_authors = StampedCache(max_entries=50_000, max_age=60)
_viewers = StampedCache(max_entries=20_000, max_age=60)
_window = StampedCache(max_entries=1, max_age=60)
CACHES = (_cards, _authors, _viewers, _window)


def forget_all() -> None:
    for cache in CACHES:
        cache.clear()


def _configure() -> None:
    """Limits from settings (read on each use: tests change them)."""
    age, entries = settings.RIFF_FEED_CACHE_SECONDS, _max_entries()
    for cache in CACHES:
        cache.max_age = age
    for cache in (_cards, _authors):
        cache.max_entries = entries
    _viewers.max_entries = max(entries // 2, 1)


# Everything a page needs of some posts that the caches could not answer, in one statement:
# the card, the author, and what the viewer has to do with them (a like; a block either way
# and a follow of the author). Probes by index, one per post (as feed.hydrate's like).
_CARD_COLUMNS = (
    "SELECT p.id, p.created_at, p.author_id::text, p.state = 'live', "
    "p.id::text, p.caption, p.allow_remix, p.remix_of_id::text, p.root_id::text, p.depth, "
    "p.cameo_ids, p.created_at, "
    "v.id::text, v.generation_id::text, v.state, v.seconds, v.width, v.height, v.frame_count, "
    "v.sha256, v.created_at, v.owner_id::text, "
    "coalesce(c.likes, 0), coalesce(c.comments, 0), coalesce(c.remixes, 0), "
    "coalesce(c.views, 0), "
    "a.id::text, a.username, a.display_name, a.avatar_small, a.is_active, "
)
_CARD_FROM = (
    "FROM feed_post p JOIN accounts_user a ON a.id = p.author_id "
    "JOIN generation_video v ON v.id = p.video_id " + COUNTS_JOIN + " "
)
_READ_SQL = (
    _CARD_COLUMNS  # noqa: S608 - constant fragments
    + "coalesce(lk.yes, false), coalesce(bk.yes, false), coalesce(fw.yes, false) "
    + _CARD_FROM
    + "LEFT JOIN LATERAL (SELECT true AS yes FROM feed_like l "
    "WHERE l.post_id = p.id AND l.user_id = %(viewer)s LIMIT 1) lk ON true "
    "LEFT JOIN LATERAL (SELECT true AS yes FROM accounts_block b "
    "WHERE (b.blocker_id = %(viewer)s AND b.blocked_id = p.author_id) "
    "OR (b.blocker_id = p.author_id AND b.blocked_id = %(viewer)s) LIMIT 1) bk ON true "
    "LEFT JOIN LATERAL (SELECT true AS yes FROM accounts_follow f "
    "WHERE f.follower_id = %(viewer)s AND f.followee_id = p.author_id LIMIT 1) fw ON true "
    "WHERE p.id = ANY(%(ids)s)"
)
# The same without the viewer's part, for a page that knows it already (For You's, while its
# order's facts hold: `known`): the cards and their authors, three index probes a post fewer.
# Its last three columns are placeholders, never read.
_CARDS_SQL = (
    _CARD_COLUMNS + "false, false, false " + _CARD_FROM + "WHERE p.id = ANY(%(ids)s)"  # noqa: S608
)

# What the viewer has to do with posts whose cards are good: likes of the posts, blocks either
# way and follows of the authors, each by index.
_FACTS_SQL = (
    "SELECT 'l', l.post_id::text FROM feed_like l "
    "WHERE l.user_id = %(viewer)s AND l.post_id = ANY(%(ids)s) "
    "UNION ALL SELECT 'b', b.blocked_id::text FROM accounts_block b "
    "WHERE b.blocker_id = %(viewer)s AND b.blocked_id = ANY(%(authors)s) "
    "UNION ALL SELECT 'b', b.blocker_id::text FROM accounts_block b "
    "WHERE b.blocked_id = %(viewer)s AND b.blocker_id = ANY(%(authors)s) "
    "UNION ALL SELECT 'f', f.followee_id::text FROM accounts_follow f "
    "WHERE f.follower_id = %(viewer)s AND f.followee_id = ANY(%(authors)s)"
)

# The limit is written in, not bound: a generic plan for an unknown LIMIT sorts every post.
_WINDOW_SQL = (
    "SELECT p.id, p.created_at, p.id::text FROM feed_post p WHERE p.state = 'live' "  # noqa: S608
    f"ORDER BY p.created_at DESC, p.id DESC LIMIT {int(WINDOW)}"
)


# --- reading ----------------------------------------------------------------------------------


def viewer_keys(viewer) -> list[str]:
    """The stamps of what the viewer has to do with any post: their graph and their likes."""
    return [graph_stamp(viewer), likes_stamp(viewer)]


# For the scripts that read a page's ids (For You's order, Following's inbox) and the stamps
# the page will check in the same round trip: `page_stamps(ids, authors, a)`, where `ids` and
# `authors` are Lua lists (an author may be false: not known), reads the viewer's stamps
# (ARGV[a], joined), each post's (ARGV[a + 1] .. id) and each known author's (ARGV[a + 2] ..
# id), setting missing ones with the value prefix and expiry ARGV[a + 3], ARGV[a + 4]
# (config.core.stamps). With no viewer keys it reads nothing (false). `script_stamp_keys` is
# the same list in Python.
PAGE_STAMPS_LUA = (
    STAMPS_LUA
    + """
local function page_stamps(ids, authors, a)
  if ARGV[a] == '' then return false end
  local keys = {}
  for key in string.gmatch(ARGV[a], '%S+') do keys[#keys + 1] = key end
  for i = 1, #ids do
    keys[#keys + 1] = ARGV[a + 1] .. ids[i]
    if authors[i] then keys[#keys + 1] = ARGV[a + 2] .. authors[i] end
  end
  return stamps_of(keys, ARGV[a + 3], ARGV[a + 4])
end
"""
)


def script_stamp_args(viewer, use: bool = True) -> list:
    """The five ARGV of `page_stamps`: empty viewer keys (nothing read) when the page won't use
    the caches."""
    if not use or not enabled():
        return ["", "", "", "", 0]
    return [" ".join(viewer_keys(viewer)), _POST_KEY, _USER_KEY, *stamps_args()]


def script_stamp_keys(viewer, pairs) -> list[str]:
    """The keys `page_stamps` read, in order, for `(post id, author id or None)` pairs."""
    keys = viewer_keys(viewer)
    for pid, author in pairs:
        keys.append(_POST_KEY + pid)
        if author:
            keys.append(_USER_KEY + author)
    return keys


class _Page:
    """One request's view of the caches: the stamps it read (each before anything it read
    from PostgreSQL under it) and what it learned."""

    def __init__(self, viewer) -> None:
        self.viewer = str(viewer)
        self.stamps: dict[str, bytes] = {}

    def read_stamps(self, keys) -> bool:
        keys = [k for k in dict.fromkeys(keys) if k not in self.stamps]
        if not keys:
            return True
        values = stamps_read(keys)
        if values is None:
            return False
        self.stamps.update(zip(keys, values, strict=True))
        return True

    def keys_for(self, ids: list[str]) -> list[str]:
        """The stamps `rows` checks for `ids`, as far as this process knows them now: the
        viewer's, the posts', and the authors of the cards it holds."""
        keys = viewer_keys(self.viewer)
        keys += [_POST_KEY + i for i in ids]
        peek = _cards.peek
        keys += [_USER_KEY + card.author for card in map(peek, ids) if card is not None]
        return keys

    def _viewer(self) -> Viewer:
        stamp = (self.stamps[graph_stamp(self.viewer)],)
        entry = _viewers.get(self.viewer, stamp)
        if entry is None:
            entry = Viewer(liked={}, authors={})
            _viewers.put(self.viewer, stamp, entry)
        return entry

    def rows(
        self, ids: list[str], *, followed: bool, known: dict | None = None
    ) -> list[Row] | None:
        """The visible rows among `ids`, in that order; None when Redis can't be reached.
        `known`: see `rows_for`."""
        known = known or {}
        stamps = self.stamps
        # Only the stamps not read yet in this request (none, when a script read
        # them with an earlier round trip): the authors' too, for cards this process holds.
        if not self.read_stamps(self.keys_for(ids)):
            return None
        viewer = self._viewer()
        likes, graph = viewer.liked, viewer.authors
        cards, authors, needed, facts = {}, {}, [], []
        for i in ids:
            stamp = stamps[_POST_KEY + i]
            card = _cards.get(i, (stamp,))
            author = None
            if card is not None:
                key = _USER_KEY + card.author
                if key in stamps:
                    author = _authors.get(card.author, (stamps[key],))
            if card is None or author is None:
                needed.append(i)
                continue
            cards[i], authors[card.author] = card, author
            if i in known:
                continue
            like = likes.get(i)
            if like is None or like[0] != stamp or card.author not in graph:
                facts.append(i)
        if needed:
            # The viewer's likes, blocks and follows only when the page doesn't know them.
            viewer_part = not known or any(i not in known for i in needed)
            self._read(needed, cards, authors, graph, likes, viewer_part=viewer_part)
        if facts:
            self._facts(facts, cards, graph, likes)
        rows = []
        for i in ids:
            card = cards.get(i)
            if card is None or not card.live:  # gone, or not live
                continue
            author = authors[card.author]
            if i in known:
                liked, blocked, follows = known[i], False, False
            else:
                liked = likes[i][1]
                blocked, follows = graph[card.author]
            if not author.active or blocked or (followed and not follows):
                continue
            values = (*card.head, *author.fields, *card.tail, liked)
            rows.append(
                Row(id=card.id, created_at=card.created_at, values=values, handles=card.handles)
            )
        return rows

    def _read(self, ids, cards, authors, graph, likes, *, viewer_part: bool = True) -> None:
        """Reads `ids` from PostgreSQL and keeps what this request's stamps cover: every card
        (its post's stamp was read first) with the viewer's like of it, the viewer's block and
        follow of its author (under their graph stamp, read first too), and an
        author only if this request read their stamp before this read. An author learned here
        is used for this page and kept by the next one that reads their stamp first."""
        from .hydrate import cameo_handles, cameo_ids_decoded

        ids_ = [uuid.UUID(i) for i in ids]
        if viewer_part:
            rows = fetchall(_READ_SQL, {"viewer": uuid.UUID(self.viewer), "ids": ids_})
        else:  # `known` answers for every one of them (`rows`): no facts read, none kept
            rows = fetchall(_CARDS_SQL, {"ids": ids_})
        cameos = {r[4]: cameo_ids_decoded(r[10]) for r in rows}
        # Handles don't change; a cameo goes only with its owner's account, whose revocation
        # has taken every post showing it down first.
        handles = cameo_handles(c for ids_ in cameos.values() for c in ids_)
        for r in rows:
            pid, author_id = r[4], r[2]
            head = (*r[4:10], cameos[pid], r[11])
            shown = tuple((c, handles[c]) for c in cameos[pid] if c in handles)
            card = Card(
                id=r[0],
                created_at=r[1],
                author=author_id,
                live=r[3],
                head=head,
                tail=r[12:26],
                handles=shown,
            )
            _cards.put(pid, (self.stamps[post_stamp(pid)],), card)
            cards[pid] = card
            author = Author(active=r[30], fields=r[26:30])
            key = user_stamp(author_id)
            if key in self.stamps:
                _authors.put(author_id, (self.stamps[key],), author)
            authors[author_id] = author
            if viewer_part:
                likes[pid] = (self.stamps[post_stamp(pid)], r[31])
                graph[author_id] = (r[32], r[33])

    def _facts(self, ids, cards, graph, likes) -> None:
        """The viewer's likes of these posts and blocks and follows of their authors, for
        posts whose cards are good: a lighter statement than `_read` (a viewer's first page
        of posts this process already holds, in each process)."""
        unknown = list({cards[i].author for i in ids} - graph.keys())
        rows = fetchall(
            _FACTS_SQL,
            {
                "viewer": uuid.UUID(self.viewer),
                "ids": [uuid.UUID(i) for i in ids],
                "authors": [uuid.UUID(a) for a in unknown],
            },
        )
        found = {("l", ""), *((kind, ident) for kind, ident in rows)}
        for i in ids:
            likes[i] = (self.stamps[_POST_KEY + i], ("l", i) in found)
        for a in unknown:
            graph[a] = (("b", a) in found, ("f", a) in found)

    def window(self) -> list[tuple] | None:
        """Latest's window: (created_at, id, id text) of the newest live posts, newest first."""
        if not self.read_stamps([LATEST_STAMP]):
            return None
        stamp = (self.stamps[LATEST_STAMP],)
        window = _window.get("latest", stamp)
        if window is None:
            window = [(r[1], r[0], r[2]) for r in fetchall(_WINDOW_SQL, {})]
            _window.put("latest", stamp, window)
        return window


def rows_for(
    viewer,
    ids: list,
    *,
    followed: bool = False,
    stamps: dict | None = None,
    known: dict | None = None,
) -> list[Row] | None:
    """The rows `feed.hydrate.posts_page(viewer_id=viewer, ids=ids, followed_by=...)` answers,
    from this process's caches where their stamps allow, reading what they lack in one
    statement (a lighter one when only the viewer's likes, blocks or follows are missing).
    None when Redis can't be reached. `stamps`: some already read in this request (by the
    script that read the page's ids: Following's inbox, For You's order); the rest are read
    here.
    `known`: {post id: liked} for posts whose authors no block stands between the viewer and
    (For You's order, while its facts hold: feed.ranking.snapshot.order_facts_now); not for
    `followed` pages, which need the follows."""
    _configure()
    page = _Page(viewer)
    if stamps:
        page.stamps.update(stamps)
    return page.rows([str(i) for i in ids], followed=followed, known=None if followed else known)


def latest_keys(viewer, before: tuple | None, limit: int) -> list[str]:
    """The stamps a Latest page will check, as far as this process can tell now: the window's,
    and those of the posts it expects on the page. Read in one round trip (by `latest_rows`,
    or ahead of it on token authentication's: feed.apis.FeedApi.preload)."""
    held = _window.peek("latest")
    guess = _slice(held, before, limit) if held is not None else ()
    return [LATEST_STAMP, *_Page(viewer).keys_for([i for _, _, i in guess])]


def latest_rows(
    viewer, before: tuple | None, limit: int, *, stamps: dict | None = None
) -> list[Row] | None:
    """Up to `limit` rows of Latest after the keyset `before`, as `posts_page` answers them;
    None when the window can't answer (it ends before the page does, or Redis is down).
    `stamps`: those of `latest_keys`, when they were read already."""
    _configure()
    page = _Page(viewer)
    if stamps:
        page.stamps.update(stamps)
    # One round trip in the usual case (none when `stamps` has them): the window's stamp with
    # the stamps of the posts this process expects on the page.
    elif not page.read_stamps(latest_keys(viewer, before, limit)):
        return None
    window = page.window()
    if window is None:
        return None
    start = _start(window, before)
    rows: list[Row] = []
    # Hidden posts (blocked, inactive authors) are skipped; read on until the page is full.
    while len(rows) < limit and start < len(window):
        chunk = window[start : start + (limit - len(rows))]
        got = page.rows([i for _, _, i in chunk], followed=False)
        if got is None:
            return None
        rows += got
        start += len(chunk)
    if len(rows) < limit and len(window) >= WINDOW:
        return None  # the page runs past the window: the database answers
    return rows


def _start(window: list[tuple], before: tuple | None) -> int:
    if before is None:
        return 0
    at, pk = before
    key = (at, pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk)))
    for index, (created, pid, _) in enumerate(window):
        if (created, pid) < key:
            return index
    return len(window)


def _slice(window: list[tuple], before: tuple | None, limit: int) -> list[tuple]:
    start = _start(window, before)
    return window[start : start + limit]
