"""The coordination role (Coordination) on every backend: poll cursors, named locks, nonces."""

from __future__ import annotations

import asyncio

from gateway.store import Store


async def test_cursor_round_trip(store: Store) -> None:
    assert await store.get_cursor("prov-12345-soap") is None
    await store.set_cursor("prov-12345-soap", "2024-06-11T09:30:00+08:00|GZ001")
    await store.set_cursor("prov-12345-soap", "2024-06-11T10:00:00+08:00|GZ002")
    assert await store.get_cursor("prov-12345-soap") == "2024-06-11T10:00:00+08:00|GZ002"


async def test_a_lock_has_one_owner_until_released_or_expired(store: Store) -> None:
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 1.0)
    assert not await store.try_lock("poll:prov-12345-soap", "gateway-b", 1.0)
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 1.0)  # renewal
    await store.release_lock("poll:prov-12345-soap", "gateway-b")  # not the owner: no effect
    assert not await store.try_lock("poll:prov-12345-soap", "gateway-b", 1.0)

    await asyncio.sleep(1.1)
    assert await store.try_lock("poll:prov-12345-soap", "gateway-b", 5)
    await store.release_lock("poll:prov-12345-soap", "gateway-b")
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 5)


async def test_a_nonce_is_new_once_per_scope_until_its_ttl_ends(store: Store) -> None:
    assert await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    assert not await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    assert await store.remember_nonce("city-12345-rest", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    await asyncio.sleep(1.1)
    assert await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)


async def test_the_holder_of_a_lock_is_named_while_it_holds_it(store: Store) -> None:
    assert await store.lock_holder("poll:prov-12345-soap") is None
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 30)
    assert await store.lock_holder("poll:prov-12345-soap") == "gateway-a"
    await store.release_lock("poll:prov-12345-soap", "gateway-a")
    assert await store.lock_holder("poll:prov-12345-soap") is None


async def test_a_lock_is_taken_over_only_from_the_stale_owner_named(store: Store) -> None:
    assert await store.try_lock("poll:prov-12345-soap", "killed", 60)
    assert not await store.take_over_lock("poll:prov-12345-soap", "someone-else", "restarted", 60)
    assert await store.lock_holder("poll:prov-12345-soap") == "killed"
    assert await store.take_over_lock("poll:prov-12345-soap", "killed", "restarted", 60)
    assert await store.lock_holder("poll:prov-12345-soap") == "restarted"
    assert not await store.try_lock("poll:prov-12345-soap", "killed", 60)  # the old owner does not get it back
    assert not await store.take_over_lock("poll:prov-12345-soap", "killed", "third", 60)  # one winner
    assert await store.try_lock("poll:prov-12345-soap", "restarted", 60)  # the new owner renews it
