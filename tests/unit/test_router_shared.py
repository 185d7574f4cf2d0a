"""Usage-based routing's counts shared through Redis (a real one): a request is taken while the
deployment has room for it in rpm and tpm this minute, and a refused one counts nothing."""

from __future__ import annotations

import asyncio
import os
import time

from llmrelay.router.cooldown import Cooldowns
from llmrelay.router.shared import PREFIX, Shared, connect

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def test_requests_are_taken_up_to_rpm_and_until_tpm_is_used() -> None:
    shared = Shared(connect(REDIS_URL), Cooldowns())
    by_rpm, by_tpm = (f"dep-{os.urandom(6).hex()}" for _ in range(2))
    if 60 - time.time() % 60 < 1:  # the counts are per minute: start clear of a minute's turn
        await asyncio.sleep(1.1)
    minute = int(time.time() // 60)
    try:
        assert [await shared.take_request(by_rpm, 2, None) for _ in range(3)] == [True, True, False]
        assert await shared.client.get(f"{PREFIX}rpm:{by_rpm}:{minute}") == "2"  # the refused one undone
        assert await shared.take_request(by_tpm, None, 50)
        await shared.add_tokens(by_tpm, 60)
        assert not await shared.take_request(by_tpm, None, 50)
        assert 0 < await shared.client.ttl(f"{PREFIX}tpm:{by_tpm}:{minute}") <= 120
    finally:
        await shared.close()
