"""AtomicRedisLockStore against the real Redis on loopback: two stores stand
for two Rasa processes."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig
from rasa_safe_hybrid.stores.redis_lock_store import AtomicRedisLockStore

pytestmark = pytest.mark.service


def store() -> AtomicRedisLockStore:
    return AtomicRedisLockStore(EndpointConfig(url="127.0.0.1", port=6379, db=0, key_prefix="locktest",
                                               type="rasa_safe_hybrid.stores.redis_lock_store.AtomicRedisLockStore"))


async def test_two_processes_never_hold_one_conversation_at_once():
    conversation = f"c-{uuid.uuid4().hex}"
    stores = [store(), store()]
    inside, overlaps, order = [0], [0], []

    async def handle(n: int) -> None:
        async with stores[n % 2].lock(conversation):
            inside[0] += 1
            overlaps[0] = max(overlaps[0], inside[0])
            order.append(n)
            await asyncio.sleep(0.05)  # work while holding the lock
            inside[0] -= 1

    await asyncio.gather(*(handle(n) for n in range(8)))
    assert overlaps[0] == 1 and sorted(order) == list(range(8))
    assert stores[0].red.get(f"{stores[0].key_prefix}mutex:{conversation}") is None  # released


async def test_other_conversations_are_not_blocked():
    a, b = store(), store()
    async with a.lock(f"busy-{uuid.uuid4().hex}"):
        await asyncio.wait_for(_enter(b, f"free-{uuid.uuid4().hex}"), timeout=1)


async def _enter(lock_store: AtomicRedisLockStore, conversation: str) -> None:
    async with lock_store.lock(conversation):
        pass


async def test_a_dead_holder_frees_the_lock_after_its_lifetime():
    conversation = f"c-{uuid.uuid4().hex}"
    crashed = store().red.lock(f"{store().key_prefix}mutex:{conversation}", timeout=0.5, thread_local=False)
    assert crashed.acquire(blocking=False)  # a process took the lock and died
    with pytest.raises(LockError):
        async with store().lock(conversation, lock_lifetime=0.2):
            pass
    await asyncio.sleep(0.4)
    await asyncio.wait_for(_enter(store(), conversation), timeout=1)
