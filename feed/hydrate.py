"""Feed pages in one query: visibility, the post, its author, its video and owner, its counts
and the viewer's like, read by one SQL statement and turned into the `PostOut` shape directly.

Feeds are the hottest reads of the app, and building them through the ORM and DRF serializers
cost more than the data: per page, a compiled query for the page, three for counts, likes and
cameos, a query for blocks, model instances for four tables, and a serializer walk with signed
URLs per field (docs/bench-feed.md has the profile). Here:

- `VISIBLE` is the one definition of "visible to this viewer" in SQL, and it is the same
  rule as `feed.selectors.posts_visible_to`: a `live` post by an active author with no block
  either way (a test holds the two to the same answer);
- `posts_page` runs one statement for a page: the caller names which posts (ids, or a keyset
  over newest first, optionally restricted to followed authors) and gets the rows in order;
- `post_out` builds the JSON of one row; a test holds it equal to `PostOut` field for field,
  so the schema (`PostOut`) and this fast path can't drift apart.

Cameo briefs need the cameo handles: one more query, only for pages that show cameos.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.files.storage import default_storage

from cameos.models import Cameo
from config.core.fields import iso_datetime
from config.core.jsonbody import json_plain
from config.core.media import signed_query
from config.core.sql import fetchall
from generation.serializers import media_path

# The first column is the post's id as a UUID (`Row.id`); the rest are `Row.values`, where every
# id is text: they are written out as strings anyway, and text hashes and compares in C where a
# `uuid.UUID` runs Python code (a page's cache keys, `posts_json`, hashed seven UUIDs a row).
_COLUMNS = (
    "p.id, "
    "p.id::text, p.caption, p.allow_remix, p.remix_of_id::text, p.root_id::text, p.depth, "
    "p.cameo_ids, p.created_at, "
    "a.id::text, a.username, a.display_name, a.avatar_small, "
    "v.id::text, v.generation_id::text, v.state, v.seconds, v.width, v.height, v.frame_count, "
    "v.sha256, v.created_at, "
    # The video's owner is the post's author (post_publish publishes own drafts only), so the
    # owner is not joined: joining accounts_user twice made the planner's page 3x dearer.
    # Should the two ever differ, `posts_out` reads that owner on its own.
    "v.owner_id::text, "
    "coalesce(c.likes, 0), coalesce(c.comments, 0), coalesce(c.remixes, 0), "
    "coalesce(c.views, 0), coalesce(lk.liked, false)"
)

# A post's counts (its counter shards summed) as `c`, for the post `p`.
COUNTS_JOIN = (
    "LEFT JOIN LATERAL (SELECT sum(s.likes) AS likes, sum(s.comments) AS comments, "
    "sum(s.remixes) AS remixes, sum(s.views) AS views FROM feed_postcounter s "
    "WHERE s.post_id = p.id) c ON true"
)

_FROM = (
    "FROM feed_post p "  # noqa: S608 (constant fragments)
    "JOIN accounts_user a ON a.id = p.author_id "
    "JOIN generation_video v ON v.id = p.video_id " + COUNTS_JOIN + " "
    # One probe of like_unique per post (an EXISTS was hashed over all the viewer's likes).
    "LEFT JOIN LATERAL (SELECT true AS liked FROM feed_like l "
    "WHERE l.post_id = p.id AND l.user_id = %(viewer)s LIMIT 1) lk ON true "
)


# The visibility rule over `feed_post p` joined to its author `a`, for the viewer
# `%(viewer)s`: the SQL twin of feed.selectors.posts_visible_to.
VISIBLE = (
    "p.state = 'live' AND a.is_active "
    "AND NOT EXISTS (SELECT 1 FROM accounts_block b WHERE "
    "(b.blocker_id = %(viewer)s AND b.blocked_id = p.author_id) OR "
    "(b.blocker_id = p.author_id AND b.blocked_id = %(viewer)s))"
)


# Above any page size the API allows (config.core.pagination), plus the one row read ahead.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Row:
    """One visible post of a page: what ordering, cursors and creation cards need, and the
    selected columns for `posts_out`."""

    id: uuid.UUID
    created_at: datetime
    values: tuple
    # (cameo id, handle) of the post's cameos, when the row came with them (feed.postcache);
    # None: `posts_json` reads them.
    handles: tuple | None = None

    @property
    def pk(self) -> uuid.UUID:
        return self.id

    @property
    def allow_remix(self) -> bool:
        return self.values[2]

    @property
    def cameo_ids(self) -> tuple:
        return self.values[6] or ()


def posts_page(
    *,
    viewer_id,
    ids: list | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
    followed_by: object | None = None,
) -> list[Row]:
    """Visible posts for `viewer_id`, one statement.

    With `ids`: those posts (the visible ones), in the order of `ids`. Without: newest first
    (`created_at`, `id`), older than `before` when given, at most `limit`. `followed_by` keeps
    only posts by authors that user follows."""
    params: dict = {"viewer": viewer_id}
    where = [VISIBLE]
    if followed_by is not None:
        params["follower"] = followed_by
        where.append(
            "EXISTS (SELECT 1 FROM accounts_follow f WHERE f.follower_id = %(follower)s "
            "AND f.followee_id = p.author_id)"
        )
    if ids is not None:
        if not ids:
            return []
        params["ids"] = [i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in ids]
        where.append("p.id = ANY(%(ids)s)")
        tail = ""
    else:
        if before is not None:
            params["before_at"], params["before_id"] = before
            where.append("(p.created_at, p.id) < (%(before_at)s, %(before_id)s)")
        # The limit is written into the statement, not bound: PostgreSQL can't reuse one plan
        # for a page of any size (a generic plan for an unknown LIMIT is a full sort), so a
        # bound limit had every execution planned again, which cost twice the execution
        # (docs/bench-feed.md). A page size is a small int, so each size is one prepared
        # statement per connection, planned once.
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_LIMIT:
            raise ValueError(f"a page limit is an int in 1..{MAX_LIMIT}, not {limit!r}")
        tail = f" ORDER BY p.created_at DESC, p.id DESC LIMIT {limit}"
    # Only the constant fragments above and the checked int limit are joined in; every value is
    # a bound parameter.
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(where)}{tail}"  # noqa: S608
    fetched = fetchall(sql, params)
    rows = [Row(id=r[0], created_at=r[8], values=_decoded(r[1:])) for r in fetched]
    if ids is not None:
        order = {pid: i for i, pid in enumerate(params["ids"])}
        rows.sort(key=lambda r: order[r.id])
    return rows


_NO_CAMEOS = ("[]", b"[]", None)


def cameo_ids_decoded(value) -> tuple:
    """`feed_post.cameo_ids` as a raw cursor returns it (jsonb as text), as a tuple."""
    if value in _NO_CAMEOS:  # most posts: no parse
        return ()
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return tuple(value or ())


def _decoded(row: tuple) -> tuple:
    # Django reads jsonb as text and decodes it in JSONField; a raw cursor does the same here.
    return (*row[:6], cameo_ids_decoded(row[6]), *row[7:])


class _Urls:
    """Absolute URLs for one request, the way `request.build_absolute_uri` makes them, and the
    signed content URLs as of `now` (signatures change once per expiry step)."""

    def __init__(self, base: str, now: float):
        self.base = base
        self.now = now

    def media(self, name: str) -> str | None:
        if not name:
            return None
        url = default_storage.url(name)
        # Storage URLs are site paths, or absolute already (S3); build_absolute_uri keeps those.
        return self.base + url if url.startswith("/") and not url.startswith("//") else url

    def content(self, video_id: str, variant: str) -> str:
        # Same URL as generation.serializers._content_url; every part is URL-safe as it is
        # (a variant word, digits, hex), so no quoting pass is needed.
        signed = signed_query(media_path(video_id, variant), now=self.now)
        return (
            f"{self.base}/api/v1/videos/{video_id}/content?variant={variant}"
            f"&expires={signed['expires']}&sig={signed['sig']}"
        )


def _base(request) -> str:
    return request.build_absolute_uri("/")[:-1] if request is not None else ""


def _signing_now() -> float:
    """`now` rounded down to the signing step: the same URLs for the whole step."""
    step = max(1, settings.RIFF_MEDIA_URL_TTL // 2)
    return float(int(time.time()) // step * step)


def _user(urls: _Urls, pk, username, display_name, avatar_small) -> dict:
    return {
        "id": pk,
        "username": username,
        "display_name": display_name,
        "avatar_url": urls.media(avatar_small),
    }


def cameo_handles(cameo_ids) -> dict:
    """{cameo id: handle} of the cameos that exist, in one query (none without ids)."""
    cameo_ids = set(cameo_ids)
    if not cameo_ids:
        return {}
    return {
        str(pk): handle
        for pk, handle in Cameo.objects.filter(pk__in=cameo_ids).values_list("pk", "handle")
    }


def _handles(rows: list[Row]) -> dict:
    return cameo_handles(c for r in rows for c in r.cameo_ids)


def _known_handles(rows: list[Row]) -> dict:
    """`_handles`, without a query when every row that shows cameos came with its handles."""
    if any(r.handles is None for r in rows if r.cameo_ids):
        return _handles(rows)
    return {c: h for r in rows if r.handles for c, h in r.handles}


def _post(values: tuple, urls: _Urls, handles: dict, owners: dict) -> dict:
    # Ids are text already (`_COLUMNS`).
    (
        pid, caption, allow_remix, remix_of, root, depth, cameos, created,
        a_id, a_name, a_display, a_avatar,
        v_id, v_gen, v_state, v_seconds, v_width, v_height, v_frames, v_sha, v_created,
        v_owner,
        likes, comments, remixes, views, liked,
    ) = values  # fmt: skip
    video_id = v_id
    author = _user(urls, a_id, a_name, a_display, a_avatar)
    owner = author if v_owner == a_id else _user(urls, v_owner, *owners[v_owner])
    return {
        "id": pid,
        "author": author,
        "video": {
            "id": video_id,
            "owner": owner,
            "generation": v_gen,
            "state": v_state,
            "seconds": float(v_seconds),
            "width": v_width,
            "height": v_height,
            "frame_count": v_frames,
            "content_url": urls.content(video_id, "video"),
            "poster_url": urls.content(video_id, "poster"),
            "preview_url": urls.content(video_id, "preview"),
            "sha256": v_sha,
            "created_at": iso_datetime(v_created),
        },
        "caption": caption,
        "allow_remix": allow_remix,
        "like_count": int(likes),
        "comment_count": int(comments),
        "remix_count": int(remixes),
        "view_count": int(views),
        "remix_of": remix_of,
        "root": root,
        "depth": depth,
        "cameos": [{"id": c, "handle": handles[c]} for c in (cameos or ()) if c in handles],
        "liked_by_me": bool(liked),
        "created_at": iso_datetime(created),
    }


def _owners(rows: list[Row]) -> dict:
    """Owners of videos not owned by their post's author: none, unless data was made outside
    post_publish; read in one query when there are."""
    ids = {r.values[21] for r in rows if r.values[21] != r.values[8]}
    if not ids:
        return {}
    from accounts.models import User

    return {
        str(pk): (username, display, avatar)
        for pk, username, display, avatar in User.objects.filter(pk__in=ids).values_list(
            "pk", "username", "display_name", "avatar_small"
        )
    }


def posts_out(rows: list[Row], *, request) -> list[dict]:
    """The `PostOut` JSON of each row (cameo handles in one query when any row has cameos)."""
    urls, handles, owners = _Urls(_base(request), _signing_now()), _handles(rows), _owners(rows)
    return [_post(r.values, urls, handles, owners) for r in rows]


def posts_json(rows: list[Row], *, request) -> list[RawJSON]:
    """`posts_out`, already encoded. A row's JSON depends only on its selected values, the
    site's base URL, the signing step and the handles of its cameos, so it is kept per process
    under exactly that key: a post served to many viewers (Latest's first page, trending
    posts) is encoded once per change of any of them, and a changed count or like is a new
    key, never a stale answer."""
    base, now, owners = _base(request), _signing_now(), _owners(rows)
    handles = _known_handles(rows)
    return [
        _encoded(
            r.values,
            base,
            now,
            tuple((c, handles.get(c)) for c in r.cameo_ids),
            owners.get(r.values[21]),
            settings.TIME_ZONE,
        )
        for r in rows
    ]


@functools.lru_cache(maxsize=8192)
def _encoded(
    values: tuple, base: str, now: float, cameos: tuple, owner: tuple | None, zone: str
) -> RawJSON:
    handles = {c: h for c, h in cameos if h is not None}
    owners = {values[21]: owner} if owner is not None else {}
    # Plain data from the row's values: nothing in it is a RawJSON fragment.
    return RawJSON(json_plain(_post(values, _Urls(base, now), handles, owners)))


class RawJSON(bytes):
    """JSON text, written as it is by `json_bytes` (a fragment encoded earlier)."""


def json_bytes(value) -> bytes:
    """`value` as DRF's JSONRenderer writes it (UTF-8, compact, U+2028/9 escaped), with
    `RawJSON` fragments spliced in. Plain data only: dicts, lists, str, numbers, bools, None.

    One `json.dumps` writes the whole value with each fragment replaced by a marker string, and
    the fragments go where the markers came out, in order. (A recursive writer that encoded
    each container on its own cost more than the rest of a feed page's JSON.) The marker holds
    NUL characters, which `json.dumps` always escapes and no fragment's text can hold
    unescaped, and a per-process random word, so no string of the value can forge one."""
    fragments: list[bytes] = []
    body = json_plain(_marked(value, fragments))
    if not fragments:
        return body
    parts = body.split(_MARKER_JSON)
    if len(parts) != len(fragments) + 1:
        # A string of the value held the marker's text: impossible short of the random word.
        raise ValueError("a JSON value held the fragment marker")
    out = [parts[0]]
    for fragment, part in zip(fragments, parts[1:], strict=True):
        out += (fragment, part)
    return b"".join(out)


# Where a fragment goes: its JSON text is `"\u0000<word>\u0000"` (json.dumps escapes NUL).
_MARKER = f"\x00riff-{secrets.token_hex(8)}\x00"
_MARKER_JSON = json.dumps(_MARKER).encode()


def _marked(value, fragments: list[bytes]):
    """`value` with each RawJSON replaced by the marker (appended to `fragments` in the order
    json.dumps writes them: depth first, dicts in insertion order). Containers without
    fragments are returned as they are."""
    if isinstance(value, RawJSON):
        fragments.append(value)
        return _MARKER
    if isinstance(value, dict):
        return {k: _marked(v, fragments) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_marked(v, fragments) for v in value]
    return value
