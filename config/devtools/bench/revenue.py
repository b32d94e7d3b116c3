"""Revenue benchmark (`manage.py bench_revenue`): revenue events split and posted per second,
one client and N concurrent clients (threads, each with its own database connection), in the
same run as a plain single-row INSERT baseline, with the ratio.

It writes real, permanent ledger rows (transfers can't be deleted): run it on a development or
scratch database. Its posts and users are named `bench_rev_*` and made once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from django.db import connection

from accounts.models import User
from cameos.models import Audience, Cameo, CameoStatus
from cameos.services import cameo_create
from feed.models import Post
from generation.models import Appearance, Generation, GenerationStatus, Video
from rights.services import revenue_event_record

CHAIN = 3  # a root and two remixes: the event goes to the deepest


def bench_posts() -> list[Post]:
    """A root post with a monetised cameo, remixed twice (made once, reused after)."""
    users = []
    for i in range(CHAIN + 1):
        user = User.objects.filter(username=f"bench_rev_{i}").first()
        users.append(user or User.objects.create_user(f"bench_rev_{i}"))
    existing = list(Post.objects.filter(author__in=users[:CHAIN]).order_by("depth"))
    if len(existing) >= CHAIN:
        return existing[:CHAIN]
    cameo = Cameo.objects.filter(owner=users[CHAIN]).first() or cameo_create(
        owner=users[CHAIN], kind="object", display_name="bench thing"
    )
    Cameo.objects.filter(pk=cameo.pk).update(
        status=CameoStatus.ACTIVE, audience=Audience.EVERYONE, monetization_enabled=True
    )
    posts: list[Post] = []
    for author in users[:CHAIN]:
        parent = posts[-1] if posts else None
        job = Generation.objects.create(
            owner=author,
            prompt="bench",
            seed=1,
            status=GenerationStatus.SUCCEEDED,
            remix_of_id=parent.pk if parent else None,
        )
        video = Video.objects.create(
            owner=author, generation=job, state="posted", seconds=2, width=64, height=64,
            frame_count=16, content="bench", poster="bench", preview="bench", sha256="0" * 64,
        )  # fmt: skip
        Appearance.objects.create(video=video, cameo=cameo, instructions_version=1)
        post_id = uuid.uuid4()
        posts.append(
            Post.objects.create(
                id=post_id,
                author=author,
                video=video,
                remix_of=parent,
                root_id=posts[0].pk if posts else post_id,
                depth=len(posts),
                cameo_ids=[str(cameo.pk)],
            )
        )
    return posts


def _run(clients: int, per_client: int, op: Callable[[int, int], None]) -> float:
    """Events per second with `clients` threads each doing `per_client` operations."""
    errors: list[BaseException] = []

    def work(c: int) -> None:
        try:
            for i in range(per_client):
                op(c, i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return clients * per_client / elapsed


def bench_revenue(*, events: int = 2000, concurrency: int = 8) -> dict:
    post = bench_posts()[-1]
    run = uuid.uuid4().hex[:12]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_plain_insert"
            " (id bigserial PRIMARY KEY, key text UNIQUE, amount bigint)"
        )
    connection.close()

    def plain(c: int, i: int) -> None:
        # The baseline: one autocommitted single-row INSERT with a unique key.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_plain_insert (key, amount) VALUES (%s, %s)",
                [f"{run}-{c}-{i}", 1_000_000 + i],
            )

    def revenue(c: int, i: int) -> None:
        revenue_event_record(
            source=f"bench-{run}",
            key=f"{c}-{i}",
            post_id=post.pk,
            amount_micros=1_000_000 + i,
            currency="USD",
        )

    per = max(1, events // concurrency)
    report = {
        "events": events,
        "concurrency": concurrency,
        "parts_per_event": CHAIN + 2,  # creator, 2 ancestors, cameo, platform
        "plain_insert_single_per_s": _run(1, events, plain),
        "revenue_single_per_s": _run(1, events, lambda c, i: revenue(c + 1000, i)),
        "plain_insert_concurrent_per_s": _run(concurrency, per, lambda c, i: plain(c + 1, i)),
        "revenue_concurrent_per_s": _run(concurrency, per, revenue),
    }
    report["ratio_single"] = report["revenue_single_per_s"] / report["plain_insert_single_per_s"]
    report["ratio_concurrent"] = (
        report["revenue_concurrent_per_s"] / report["plain_insert_concurrent_per_s"]
    )
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}
