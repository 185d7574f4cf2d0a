"""Router state shared by every instance through Redis (`redis_host`/`redis_port`/
`redis_password` or `redis_url` in router_settings).

Keys: `llmrelay:fails:<deployment>:<class>` counts failures in the current minute (INCR, then
a 60 s expiry); `llmrelay:cooldown:<deployment>` holds a cooldown's end until it passes;
`llmrelay:rpm:<deployment>:<minute>` and `llmrelay:tpm:...` count usage-based routing's
requests and tokens. A new
cooldown is published on `llmrelay:cooldowns`, so every instance skips the deployment at once;
an instance that starts later reads the cooldowns still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..redis_calls import Script, commands
from .cooldown import WINDOW, Cooldowns

log = logging.getLogger("llmrelay")
PREFIX = "llmrelay:"
CHANNEL = PREFIX + "cooldowns"
RECONNECT_DELAY = 1.0
# KEYS: rpm key, tpm key; ARGV: rpm, tpm (-1: none), ttl. 1 and the request counted, or 0 and nothing.
_TAKE = Script("""
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tpm then return 0 end
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if rpm >= 0 and count > rpm then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
""")
_ADD = Script("redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1")


def connect(url: str) -> Any:
    from redis import asyncio as aioredis

    return aioredis.from_url(url, decode_responses=True)


class Shared:
    def __init__(self, client: Any, cooldowns: Cooldowns) -> None:
        self.client = client
        self.cooldowns = cooldowns
        self._calls = commands(client)  # the per-request counts: one write per loop turn, a kept connection
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    async def count_failure(self, dep_id: str, kind: str) -> int:
        key = f"{PREFIX}fails:{dep_id}:{kind}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(WINDOW), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def cool(self, dep_id: str, until: float) -> None:
        ms = max(1, int((until - time.time()) * 1000))
        await self.client.set(f"{PREFIX}cooldown:{dep_id}", repr(until), px=ms)
        await self.client.publish(CHANNEL, f"{dep_id} {until!r}")

    async def take_request(self, dep_id: str, rpm: int | None, tpm: int | None) -> bool:
        """Count a request against the deployment's rpm this minute, for every instance; False
        (and nothing counted) when it is at its rpm or tpm already. One script, one round trip."""
        minute = int(time.time() // 60)
        keys = [f"{PREFIX}rpm:{dep_id}:{minute}", f"{PREFIX}tpm:{dep_id}:{minute}"]
        args = [-1 if rpm is None else rpm, -1 if tpm is None else tpm, 2 * int(WINDOW)]
        return int(await _TAKE(self._calls, keys, args)) == 1

    async def add_tokens(self, dep_id: str, tokens: int) -> None:
        key = f"{PREFIX}tpm:{dep_id}:{int(time.time() // 60)}"
        await _ADD(self._calls, [key], [tokens, 2 * int(WINDOW)])

    async def start(self) -> None:
        """Subscribe, then read the cooldowns already running; returns once both are done (or
        Redis could not be reached: the listener keeps trying in the background)."""
        if self._task is not None:
            return
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5)

    async def _listen(self) -> None:
        assert self._ready is not None
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._load()
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._apply(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cooldowns: Redis subscription lost (%s); reconnecting", exc)
                self._ready.set()
                await asyncio.sleep(RECONNECT_DELAY)

    async def _load(self) -> None:
        async for key in self.client.scan_iter(match=f"{PREFIX}cooldown:*"):
            value = await self.client.get(key)
            if value is not None:
                self.cooldowns.mark(key.removeprefix(f"{PREFIX}cooldown:"), float(value))

    def _apply(self, data: str) -> None:
        dep_id, _, until = data.rpartition(" ")
        with contextlib.suppress(ValueError):
            self.cooldowns.mark(dep_id, float(until))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._calls.close()
            await self.client.aclose()
