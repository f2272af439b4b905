"""The Redis store packs its commands with hiredis: the same bytes as redis-py's own packer, the same refusals, and
a store opened from its URL uses it against the real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from gateway.store.redis import RedisStore
from gateway.store.redis.packing import pack
from tests.store.conftest import PHONE_KEY, REDIS_URL

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "中"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"x"),
    (b"EVALSHA", "a" * 40, 2, "k1", b"k2", 1.5, 0.1, -7, 2**70, "中文" * 3000, b"\x00\xff", bytearray(b"ba"),
     memoryview(b"mv"), ""),
]


def test_a_command_packs_to_the_protocol_bytes() -> None:
    assert b"".join(pack(("SET", "k", "中"))) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\xe4\xb8\xad\r\n"
    assert b"".join(pack(("CONFIG GET", "maxmemory"))) == b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n"
    assert b"".join(pack((b"ZADD", "z", 1.5, 3))) == b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$1\r\n3\r\n"


@pytest.mark.parametrize("args", COMMANDS)
def test_hiredis_packs_what_redis_py_would_have_sent(args: tuple[Any, ...]) -> None:
    assert b"".join(pack(args)) == b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}])
def test_what_redis_py_refuses_is_refused(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        pack(("SET", "k", bad))


async def test_a_store_opened_from_its_url_packs_with_hiredis_and_round_trips(redis_namespace: str) -> None:
    store = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
    await store.open()
    try:
        connection = store.redis.connection_pool.connection_class
        assert connection.__name__ == "HiredisConnection" and issubclass(connection, Connection)
        key = f"{redis_namespace}:packing"
        value = "工单 ".encode() + bytes(range(256))
        await store.redis.hset(key, mapping={"body": value, "n": 12, "f": 0.25})
        assert await store.redis.hmget(key, ["body", "n", "f"]) == [value, b"12", b"0.25"]
        async with store.redis.pipeline(transaction=False) as pipe:
            pipe.hget(key, "body")
            pipe.hincrby(key, "n", 1)
            assert await pipe.execute() == [value, 13]
        await store.redis.delete(key)
    finally:
        await store.close()
