"""CPU per upstream request of the HTTP clients a gateway could use, in one process, against
the bench's nginx: llmrelay's own (`llmrelay.http_client`), aiohttp's and httpx's.

    python bench/http_client.py [--requests 20000] [--concurrency 10] [--rounds 3]

Each round measures every client on the same nginx, a JSON body and an event stream read to
its end, and prints CPU µs per request (process time: user + system; nginx runs apart).
Ratios are against aiohttp's, measured in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop
from upstream import start_nginx

from llmrelay.http_client import Pool

BODY = b'{"model":"gpt-4o","input":"Say hello."}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
Fetch = Callable[[str], Awaitable[int]]


async def measure(fetch: Fetch, url: str, requests: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await fetch(url)

    await asyncio.gather(*(worker(50) for _ in range(concurrency)))  # warm: connections made
    start = time.process_time()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - start) / requests * 1e6


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llmrelay-http-client-"))
    nginx, port = start_nginx(workdir)
    pool = Pool(asyncio.get_running_loop())
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))

    async def llmrelay(url: str) -> int:
        resp = await pool.request("POST", url, HEADERS, BODY, 600, 10)
        async for _ in resp.content.iter_any():
            pass
        return resp.status

    async def aio(url: str) -> int:
        async with session.request("POST", url, data=BODY, headers=HEADERS, timeout=timeout) as resp:
            async for _ in resp.content.iter_any():
                pass
            return resp.status

    async def httpx_(url: str) -> int:
        async with hx.stream("POST", url, content=BODY, headers=HEADERS) as resp:
            async for _ in resp.aiter_raw():
                pass
            return resp.status_code

    clients = {"aiohttp": aio, "llmrelay": llmrelay, "httpx": httpx_}
    try:
        print(f"{'body':8} {'client':9} {'CPU us/req':>10} {'x aiohttp':>9}")
        for _ in range(args.rounds):
            for kind in ("plain", "sse"):
                url = f"http://127.0.0.1:{port}/{kind}/v1/responses"
                base = None
                for name, fetch in clients.items():
                    n = args.requests // 4 if name == "httpx" else args.requests  # httpx is slow
                    us = await measure(fetch, url, n, args.concurrency)
                    base = base or us
                    print(f"{kind:8} {name:9} {us:10.1f} {us / base:8.2f}x")
    finally:
        pool.close()
        await session.close()
        await hx.aclose()
        nginx.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    uvloop.run(main(parser.parse_args()))
