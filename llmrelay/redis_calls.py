"""Redis commands of one loop turn sent in one write, on a connection kept for them, their
replies read in order (llmrelay/batching.py): redis-py's client lends a pooled connection per
command, about 50 µs of CPU, as much as the command itself."""

from __future__ import annotations

import hashlib
from typing import Any

from .batching import Batch, Batcher


class _Keeper:
    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool

    async def take(self) -> Any:
        return await self._pool.get_connection()

    def usable(self, conn: Any) -> bool:
        return bool(conn.is_connected)

    async def give_back(self, conn: Any, *, broken: bool) -> None:
        if broken:
            await conn.disconnect()
        await self._pool.release(conn)


def commands(client: Any) -> Batcher:
    """A batcher whose items are commands (`("EVALSHA", sha, 1, key, ...)`) and whose answers are
    their replies; an error reply fails its own command only."""
    import redis

    async def run(conn: Any, batch: Batch) -> None:
        await conn.send_packed_command(conn.pack_commands([args for args, _ in batch]), check_health=False)
        for _, done in batch:
            try:
                reply = await conn.read_response()
            except redis.ResponseError as exc:  # this command's own error; the other replies follow
                if not done.done():
                    done.set_exception(exc)
                continue
            if not done.done():
                done.set_result(reply)

    return Batcher(run, _Keeper(client), (redis.ConnectionError, redis.TimeoutError, OSError))


class Script:
    """A Lua script run by its SHA on a `commands` batcher, sent whole when Redis does not know
    it (restarted, or its scripts flushed): EVAL loads it again."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, calls: Batcher, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await calls.add(("EVALSHA", self.sha, len(keys), *keys, *args))
        except NoScriptError:
            return await calls.add(("EVAL", self.source, len(keys), *keys, *args))
