"""config.core.redis.Batch: a pipeline's commands in one EVALSHA, with a pipeline's answers."""

from __future__ import annotations

import pytest
import redis

from config.core.redis import Batch, command_run, redis_client


def _queue(target) -> None:
    target.set("t:stamp", "a", nx=True, ex=60)  # missing: set
    target.set("t:stamp", "b", nx=True, ex=60)  # present: not set
    target.get("t:stamp")
    target.get("t:missing")
    target.incr("t:count")
    target.incr("t:count")
    target.expire("t:count", 120)
    target.expire("t:missing", 120)  # no such key: False


def _run(batch: Batch, scripted: bool) -> list:
    """A batch's replies, sent as plain commands or (with a stamps read queued last, which only
    the script can run) as the script; the stamps read's own reply left out."""
    if not scripted:
        return list(batch.execute())
    batch.stamps("t:stamp-of:", 60, "t:a-stamp")
    replies = list(batch.execute())
    assert len(replies[-1]) == 1 and replies[-1][0]
    return replies[:-1]


SCRIPTED = pytest.mark.parametrize("scripted", [False, True], ids=["plain", "script"])


@SCRIPTED
def test_a_batch_answers_what_a_pipeline_answers(scripted):
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    _queue(pipe)
    expected = pipe.execute()
    assert expected == [True, None, b"a", None, 1, 2, True, False]
    client.delete("t:stamp", "t:count")

    batch = Batch(client)
    _queue(batch)
    assert _run(batch, scripted) == expected
    # The commands ran: the values and expiries are in Redis.
    assert client.get("t:stamp") == b"a" and 0 < client.ttl("t:stamp") <= 60
    assert client.get("t:count") == b"2" and 60 < client.ttl("t:count") <= 120


@SCRIPTED
def test_sorted_set_reads_answer_as_a_pipelines_do(scripted):
    client = redis_client()
    client.zadd("t:inbox", {"a": 1.5, "b": 2.25, "c": 3.0})

    def queue(target, withscores_kwargs):
        target.zrevrangebyscore("t:inbox", "+inf", "(0", num=2, **withscores_kwargs)
        target.zrevrangebyscore("t:inbox", 2.25, "(0", num=5, **withscores_kwargs)
        target.zrevrangebyscore("t:missing", "+inf", "(0", num=5, **withscores_kwargs)
        target.zcard("t:inbox")
        target.zcard("t:missing")

    pipe = client.pipeline(transaction=False)
    queue(pipe, {"start": 0, "withscores": True})
    expected = pipe.execute()
    assert expected[0] == [(b"c", 3.0), (b"b", 2.25)] and expected[3:] == [3, 0]
    batch = Batch(client)
    queue(batch, {})
    assert _run(batch, scripted) == expected


@SCRIPTED
def test_a_batch_is_one_send(redis_sends, scripted):
    batch = Batch(redis_client())
    _queue(batch)
    batch.command("PING")
    redis_sends.clear()
    _run(batch, scripted)
    assert len(redis_sends) == 1


def test_a_batch_survives_a_server_that_forgot_its_scripts():
    client = redis_client()
    client.script_flush()
    batch = Batch(client)
    batch.incr("t:count")
    batch.get("t:count")
    assert _run(batch, scripted=True) == [1, b"1"]


@SCRIPTED
def test_a_failing_command_fails_the_batch_and_the_connection_stays_in_step(scripted):
    client = redis_client()
    client.set("t:text", "not a number")
    batch = Batch(client)
    batch.get("t:text")
    batch.incr("t:text")
    after = batch.command("GET", "t:text")
    with pytest.raises(redis.exceptions.ResponseError):
        _run(batch, scripted)
    assert command_run(client, "GET", "t:text") == b"not a number"
    batch = Batch(client)
    batch.get("t:text")
    after = batch.command("GET", "t:text")
    replies = batch.execute()
    assert list(replies) == [b"not a number"] and replies.reply(after) == b"not a number"


def test_an_empty_batch_sends_nothing(redis_sends):
    redis_sends.clear()
    assert Batch(redis_client()).execute() == []
    assert redis_sends == []


def test_a_batch_sets_only_with_nx():
    with pytest.raises(ValueError):
        Batch(redis_client()).set("t:stamp", "a", nx=False, ex=60)


def test_stamps_are_made_once_kept_and_a_key_named_twice_has_one():
    from config.core.stamps import stamps_queue, stamps_read

    client = redis_client()
    client.set("t:old", "kept")
    first = stamps_read(["t:old", "t:new", "t:new", "t:other"])
    assert first[0] == b"kept" and first[1] == first[2] != first[3]
    assert client.get("t:new") == first[1] and 0 < client.ttl("t:new") <= 86_400
    assert stamps_read(["t:new", "t:other"]) == [first[1], first[3]]
    batch = Batch(client)
    take = stamps_queue(batch, ["t:other", "t:third"])
    got = take(batch.execute())
    assert got["t:other"] == first[3] and got["t:third"] == client.get("t:third")


def _thread_link(client):
    from config.core import redis as riff_redis

    return riff_redis._local.links[client]


def _client_id(client) -> int:
    return command_run(client, "CLIENT", "ID")


def test_each_thread_keeps_its_own_connection():
    """command_run writes and reads on a connection of the calling thread's own, the same one
    call after call; another thread gets another."""
    import threading

    client = redis_client()
    first = _client_id(client)
    assert _client_id(client) == first
    link = _thread_link(client)
    other = []
    worker = threading.Thread(target=lambda: other.append(_client_id(client)))
    worker.start()
    worker.join()
    assert other and other[0] != first
    assert _thread_link(client) is link and _client_id(client) == first


def test_connections_the_server_dropped_are_replaced(monkeypatch):
    """One the server closed while idle (a restart, CLIENT KILL) is reopened before sending, so
    the call succeeds; one that fails mid-call fails that call with redis-py's error and is
    closed, so the next call opens a new one."""

    import redis as redis_lib
    from django.conf import settings

    client = redis_client()
    assert command_run(client, "SET", "t:k", "v") == b"OK"
    killed = _client_id(client)
    killer = redis_lib.Redis.from_url(settings.REDIS_URL)
    assert killer.client_kill_filter(_id=killed) == 1
    killer.close()
    assert command_run(client, "GET", "t:k") == b"v"
    assert _client_id(client) != killed

    link = _thread_link(client)

    class Broken:
        def sendall(self, data):
            raise ConnectionResetError("reset by peer")

        def fileno(self):
            return link.sock.fileno()

    monkeypatch.setattr(link, "sock", Broken())
    with pytest.raises(redis_lib.exceptions.ConnectionError, match="reset by peer"):
        command_run(client, "GET", "t:k")
    assert link.conn._sock is None  # closed, not used again half-read
    assert command_run(client, "GET", "t:k") == b"v"

    link = _thread_link(client)

    class Slow:
        def sendall(self, data):
            pass

        def recv(self, size):
            raise TimeoutError("timed out")

    monkeypatch.setattr(link, "sock", Slow())
    with pytest.raises(redis_lib.exceptions.TimeoutError):
        command_run(client, "GET", "t:k")
    assert link.conn._sock is None
    assert command_run(client, "GET", "t:k") == b"v"


def test_a_server_that_is_gone_is_a_connection_error(settings):
    import redis as redis_lib

    from config.core.redis import _client

    with pytest.raises(redis_lib.exceptions.ConnectionError):
        command_run(_client("redis://127.0.0.1:1/0"), "GET", "t:k")


def test_links_opened_or_tried_do_not_use_up_the_pools_limit():
    """A link is never given back to redis-py's pool, so it must not count against the pool's
    `max_connections`: past that many links made or tried (an outage, dropped connections),
    every call would fail with MaxConnectionsError, Redis up or not."""
    import redis as redis_lib

    from config.core.redis import _client

    gone = _client("redis://127.0.0.1:1/0")
    for _ in range(gone.connection_pool.max_connections + 5):
        with pytest.raises(redis_lib.exceptions.ConnectionError) as raised:
            command_run(gone, "GET", "t:k")
        assert not isinstance(raised.value, redis_lib.exceptions.MaxConnectionsError)
    client = redis_client()
    command_run(client, "SET", "t:k", "v")
    for _ in range(client.connection_pool.max_connections + 5):
        _thread_link(client).close()  # the next call finds it closed and opens another
        assert command_run(client, "GET", "t:k") == b"v"
    # The pool's own connections (redis-py's calls) are still there to take.
    assert client.get("t:k") == b"v"


def test_a_reply_error_keeps_the_connection():
    import redis as redis_lib

    client = redis_client()
    command_run(client, "SET", "t:k", "v")
    before = _client_id(client)
    with pytest.raises(redis_lib.exceptions.ResponseError):
        command_run(client, "INCR", "t:k")
    assert _client_id(client) == before
    with pytest.raises(redis_lib.exceptions.NoScriptError):
        command_run(client, "EVALSHA", "0" * 40, 0)
    assert command_run(client, "GET", "t:k") == b"v"
    assert _client_id(client) == before


def test_commands_ride_the_batch_and_come_back_raw(redis_sends):
    client = redis_client()
    client.hset("t:h", mapping={"a": 1})
    client.rpush("t:l", "x", "y")
    batch = Batch(client)
    batch.incr("t:count")
    at_hash = batch.command("HGETALL", "t:h")
    at_list = batch.command("LRANGE", "t:l", 0, -1)
    at_bad = batch.command("INCR", "t:l")  # wrong type: an error reply
    at_len = batch.command("LLEN", "t:l")
    redis_sends.clear()
    replies = batch.execute()
    assert len(redis_sends) == 1
    assert list(replies) == [1]
    assert replies.reply(at_hash) == {b"a": b"1"}
    assert replies.reply(at_list) == [b"x", b"y"]
    assert replies.reply(at_len) == 2  # read past the error: the connection stays in step
    with pytest.raises(redis.exceptions.ResponseError):
        replies.reply(at_bad)
    with pytest.raises(redis.exceptions.ResponseError):
        replies.check()
    assert command_run(client, "GET", "t:count") == b"1"


def test_commands_alone_and_after_a_forgotten_script():
    client = redis_client()
    only = Batch(client)
    at = only.command("SET", "t:k", "v")
    assert list(only.execute()) == [] and only.execute().reply(at) == b"OK"
    client.script_flush()
    batch = Batch(client)
    batch.incr("t:count")
    at = batch.command("GET", "t:k")
    replies = batch.execute()
    assert list(replies) == [1] and replies.reply(at) == b"v"
    replies.check()
