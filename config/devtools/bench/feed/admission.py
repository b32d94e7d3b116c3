"""The admission scenario's set-up and clean-up: two cameos the callers hold grants to, one
`POST /api/v1/generations` per caller, and afterwards the generations, the cameos and the
broker messages naming those generations deleted."""

from __future__ import annotations

import time
from datetime import datetime

from django.core.management.base import CommandError
from django.db import connection, transaction

from accounts.models import AuthToken, User
from config.devtools.seeding import SEED_PREFIX

from .broker import purge_broker

GENERATIONS = "/api/v1/generations"
# Admission prompts start with this, so the clean-up finds exactly the bench's generations.
ADMISSION_PROMPT = "bench_feed admission:"


def admission_setup(callers: list[User], *, exclude: set) -> list[str]:
    """Two active cameos owned by two other seeded adults, with a grant to every caller (the
    `approved` audience): each admission then runs two consent checks that allow. Returns the
    cameo ids."""
    from cameos.models import Cameo, CameoGrant, CameoKind, CameoStatus
    from cameos.services import cameo_create

    candidates = User.objects.filter(
        username__startswith=SEED_PREFIX, is_active=True, birth_date__isnull=False
    ).exclude(pk__in=exclude)
    owners = [u for u in candidates.order_by("pk")[:50] if not u.is_teen][:2]
    if len(owners) < 2:
        raise CommandError("admission needs two seeded users besides the viewers")
    stamp = str(int(time.time()))
    cameo_ids = []
    with transaction.atomic():
        for i, owner in enumerate(owners):
            cameo = cameo_create(
                owner=owner,
                kind=CameoKind.OBJECT,
                display_name="bench",
                handle=f"benchfeed{stamp}{i}",
            )
            # Verification needs a recording and a worker; the bench measures admission.
            Cameo.objects.filter(pk=cameo.pk).update(status=CameoStatus.ACTIVE)
            CameoGrant.objects.bulk_create(
                CameoGrant(cameo=cameo, user=u, granted_by=owner) for u in callers
            )
            cameo_ids.append(str(cameo.pk))
    return cameo_ids


def admission_entries(tokens: list[str], cameo_ids: list[str]) -> list[tuple]:
    """One request per caller. No Idempotency-Key: it is optional (accounts.idempotency), and
    a replayed key would measure the replay, not admission."""
    body = {"prompt": f"{ADMISSION_PROMPT} a red ball bounces", "cameos": cameo_ids}
    return [("POST", GENERATIONS, token, body) for token in tokens]


def admission_cleanup(*, caller_ids: list, cameo_ids: list[str], since: datetime) -> dict:
    """Deletes the bench's generations (their cameo links cascade), cameos (grants and
    instructions cascade), then the broker messages that name those generations."""
    from cameos.models import Cameo
    from generation.models import Generation

    generations = Generation.objects.filter(
        owner_id__in=caller_ids, prompt__startswith=ADMISSION_PROMPT, created_at__gte=since
    )
    ids = {str(pk) for pk in generations.values_list("pk", flat=True)}
    generations.delete()
    Cameo.objects.filter(pk__in=cameo_ids).delete()
    return {"generations_deleted": len(ids), "broker_messages_purged": purge_broker(ids)}


def settle_tables() -> dict:
    """VACUUM (ANALYZE) of the tables a bench run fills and empties again (tokens, cameos and
    grants, generations and their cameo links), so that every run starts from the same state:
    {table: dead rows found}. With autovacuum off (as on the development boxes) each run
    left its deleted rows behind, and the next run's index scans walked them: a For You page's
    "last creation" lookup, admission's quota count, a cold token lookup. Two runs 30 minutes
    apart on one database differed that way (For You's PostgreSQL share 0.33 -> 0.63 ms a
    page at 200k). VACUUM can't run in a transaction: this needs autocommit."""
    from cameos.models import Cameo, CameoGrant
    from generation.models import Generation, GenerationCameo

    tables = [m._meta.db_table for m in (AuthToken, Cameo, CameoGrant, Generation, GenerationCameo)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [tables],
        )
        dead = dict(cursor.fetchall())
        for table in tables:
            cursor.execute(f'VACUUM (ANALYZE) "{table}"')
    return {table: int(dead.get(table, 0)) for table in tables}
