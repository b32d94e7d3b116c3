"""Re-deriving the ledger from its transfers (manage.py ledger_check, and the tests)."""

from __future__ import annotations

from django.db import connection

# Per account, the four sums as the transfers say they are. A pending transfer counts as
# pending until a post or void references it; a post then counts as posted.
DERIVED_SQL = """
WITH effects AS (
    SELECT t.debit_account_id AS account_id,
           CASE WHEN t.type IN ('posted', 'post_pending') THEN t.amount_micros ELSE 0 END AS dp,
           0::bigint AS cp,
           CASE WHEN t.type = 'pending' AND r.id IS NULL THEN t.amount_micros ELSE 0 END AS dpe,
           0::bigint AS cpe
    FROM rights_transfer t LEFT JOIN rights_transfer r ON r.pending_id = t.id
  UNION ALL
    SELECT t.credit_account_id,
           0,
           CASE WHEN t.type IN ('posted', 'post_pending') THEN t.amount_micros ELSE 0 END,
           0,
           CASE WHEN t.type = 'pending' AND r.id IS NULL THEN t.amount_micros ELSE 0 END
    FROM rights_transfer t LEFT JOIN rights_transfer r ON r.pending_id = t.id
)
SELECT a.id, a.currency,
       a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
       COALESCE(SUM(e.dp), 0), COALESCE(SUM(e.cp), 0),
       COALESCE(SUM(e.dpe), 0), COALESCE(SUM(e.cpe), 0)
FROM rights_ledgeraccount a LEFT JOIN effects e ON e.account_id = a.id
GROUP BY a.id ORDER BY a.id
"""

# Each revenue event's parts add up to its amount (held or not, voided or not). Parts a
# dispute settlement voided were replaced by the settled split (rights.claims), which counts
# instead of them.
EVENTS_SQL = """
SELECT e.id, e.amount_micros, COALESCE(SUM(t.amount_micros), 0)
FROM rights_revenueevent e
LEFT JOIN rights_transfer t ON t.event_id = e.id AND t.kind = 'split'
     AND t.type IN ('posted', 'pending')
     AND NOT EXISTS (SELECT 1 FROM rights_transfer v
                     WHERE v.pending_id = t.id AND v.key LIKE '%%:settle-void')
GROUP BY e.id HAVING e.amount_micros <> COALESCE(SUM(t.amount_micros), 0)
"""

# A transfer's currency is its accounts' currency; a resolution repeats its pending transfer.
SHAPE_SQL = """
SELECT t.id FROM rights_transfer t
JOIN rights_ledgeraccount d ON d.id = t.debit_account_id
JOIN rights_ledgeraccount c ON c.id = t.credit_account_id
LEFT JOIN rights_transfer p ON p.id = t.pending_id
WHERE d.currency <> t.currency OR c.currency <> t.currency
   OR (p.id IS NOT NULL AND (p.type <> 'pending' OR p.amount_micros <> t.amount_micros
       OR p.debit_account_id <> t.debit_account_id OR p.credit_account_id <> t.credit_account_id))
"""


def ledger_problems() -> list[str]:
    """Every difference between the cached balances and the transfers, unbalanced currencies,
    events whose parts do not add up, malformed transfers. [] when the ledger is sound."""
    problems: list[str] = []
    totals: dict[str, list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(DERIVED_SQL)
        for pk, currency, *sums in cursor.fetchall():
            cached, derived = sums[:4], [int(v) for v in sums[4:]]
            if list(cached) != derived:
                problems.append(
                    f"account {pk} ({currency}): cached dp/cp/dpe/cpe {cached} but the transfers"
                    f" give {derived}"
                )
            total = totals.setdefault(currency, [0, 0, 0, 0])
            for i, value in enumerate(derived):
                total[i] += value
        for currency, (dp, cp, dpe, cpe) in sorted(totals.items()):
            if dp != cp or dpe != cpe:
                problems.append(f"{currency}: debits {dp} != credits {cp} (pending {dpe} / {cpe})")
        cursor.execute(EVENTS_SQL)
        for pk, amount, parts in cursor.fetchall():
            problems.append(f"revenue event {pk}: amount {amount} but parts add up to {parts}")
        cursor.execute(SHAPE_SQL)
        for (pk,) in cursor.fetchall():
            problems.append(f"transfer {pk}: currency or pending resolution does not match")
    return problems
