"""Django's PostgreSQL backend, with a pool that pings a connection on checkout only when it
may have gone bad.

With `CONN_HEALTH_CHECKS`, Django's pool runs psycopg_pool's `check_connection` on every
checkout: an empty query, one more round trip to PostgreSQL in every request that touches the
database (docs/bench-feed.md found it in every feed page's profile). Here a connection skips
that ping when both hold:

- it was handed out less than `FRESH_SECONDS` ago (so it was working a moment ago; the pool
  discards a connection returned broken), and
- nothing has arrived on its socket since. An idle connection in the pool receives nothing,
  unless the server is telling it something: a backend that is terminated, or a server that
  shuts down, sends its error and closes the socket, which makes it readable.

Any other connection gets psycopg_pool's own check, so a stale or suspicious connection is
treated exactly as before (and a failed check is retried on another connection, as before).
Pools that skip validation inside a short window of use are common practice (HikariCP's
`aliveBypassWindowMs` is 500 ms). What it gives up: a connection whose server vanished without
a word (a cable pulled, a host gone) within the window fails its request instead of being
replaced first; the pool then drops it.
"""

from __future__ import annotations

import select
from time import monotonic

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg import pq
from psycopg_pool import ConnectionPool

FRESH_SECONDS = 0.5
# Set on each psycopg connection when the pool hands it out.
CHECKED_AT = "riff_handed_out_at"


def _socket_has_input(conn) -> bool:
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def check_unless_fresh(conn) -> None:
    """psycopg_pool's `check` callback: raises when the connection doesn't work."""
    now = monotonic()
    last = getattr(conn, CHECKED_AT, None)
    fresh = (
        last is not None
        and now - last < FRESH_SECONDS
        and conn.pgconn.status == pq.ConnStatus.OK
        and conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        and not _socket_has_input(conn)
    )
    if not fresh:
        ConnectionPool.check_connection(conn)
    setattr(conn, CHECKED_AT, now)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        pools = self._connection_pools
        if self.alias not in pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            params = self.get_connection_params()
            params["autocommit"] = True  # Django sets the real mode on checkout
            pool = ConnectionPool(
                kwargs=params,
                open=False,
                configure=self._configure_connection,
                check=check_unless_fresh if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **({} if options is True else options),
            )
            # Threads racing here build a pool each; the first one stored wins (none is open).
            pools.setdefault(self.alias, pool)
        return pools[self.alias]
