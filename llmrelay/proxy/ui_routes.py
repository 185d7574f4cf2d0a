"""The admin page at `/ui`: static files shipped in the package (`proxy/static/`), no build
step. The page itself needs no key; every figure on it comes from the JSON admin routes,
which check the key the page sends (the master key or a `proxy_admin`'s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
JS = "text/javascript; charset=utf-8"
FILES = {"index.html": "text/html; charset=utf-8", "dom.js": JS, "app.js": JS, "style.css": "text/css; charset=utf-8"}
# Only the page's own files run; nothing inline, nothing from elsewhere, no framing.
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def ui_routes() -> list[tuple[str, Handler, str]]:
    static = resources.files(__package__) / "static"
    bodies = {name: (static / name).read_bytes() for name in FILES}  # read once: the files are small

    def serve(name: str) -> Handler:
        async def handler(request: Request) -> Response:
            return Response(bodies[name], media_type=FILES[name], headers=HEADERS)

        return handler

    return [("/ui", serve("index.html"), "GET"), ("/ui/", serve("index.html"), "GET"),
            *((f"/ui/{name}", serve(name), "GET") for name in FILES if name != "index.html")]  # fmt: skip
