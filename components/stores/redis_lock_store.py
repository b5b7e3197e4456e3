"""A Redis lock store whose lock is atomic across Rasa processes.

Rasa's ``RedisLockStore`` issues tickets with a read-modify-write of one Redis
key (GET, change, SET). Two Rasa processes that receive messages of the same
conversation at the same moment can both read "no lock", both take ticket 0
and both process at once; their tracker writes then overwrite each other. The
scale-out test (tests/e2e/test_scale_out.py) lost 5 of 6 concurrent messages
that way.

``AtomicRedisLockStore`` keeps the endpoint config of ``type: redis`` (url,
port, db, username, password, key_prefix, ...) and replaces the ticket lock
with a Redis mutex per conversation: ``SET key token NX PX lifetime`` to take
it, a compare-and-delete script to release it (redis-py's ``Lock``). A holder
that dies frees the lock when ``lock_lifetime`` (Rasa's ``TICKET_LOCK_LIFETIME``,
60 s by default) passes. Waiting is polled with ``asyncio.sleep`` so the
event loop keeps serving other conversations. It gives mutual exclusion, not
first-come-first-served order among messages that arrive at the same moment.

    lock_store:
      type: rasa_safe_hybrid.stores.redis_lock_store.AtomicRedisLockStore
      url: localhost
      port: 6379
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Optional

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

POLL_S = 0.02


class AtomicRedisLockStore(RedisLockStore):
    """One message of a conversation at a time, across all Rasa processes."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        """Holds the conversation's mutex for the block; raises ``LockError`` after
        waiting ``lock_lifetime`` seconds (the holder would have expired by then).
        """
        mutex = self.red.lock(f"{self.key_prefix}mutex:{conversation_id}", timeout=lock_lifetime,
                              thread_local=False)
        start = time.monotonic()
        while not mutex.acquire(blocking=False):
            if time.monotonic() - start > lock_lifetime:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(POLL_S)
        waited = time.monotonic() - start
        if waited > POLL_S:
            logger.debug(f"Acquired lock for conversation '{conversation_id}' after waiting {waited:.2f} s.")
        try:
            yield TicketLock(conversation_id)
        finally:
            try:
                mutex.release()
            except Exception as error:  # noqa: BLE001 - expired (held longer than its lifetime)
                logger.warning(
                    f"Lock for conversation '{conversation_id}' had expired before it was released "
                    f"({error}); handling took longer than {lock_lifetime:g} s."
                )
