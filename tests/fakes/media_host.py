"""A web server holding images and PDFs to fetch by URL, in a thread of the test process.

``/cat.png`` (a PNG), ``/doc.pdf`` (a PDF), ``/plain.png`` (a PNG served as application/octet-stream),
``/big.png`` (BIG bytes of PNG), ``/page.html`` (a web page), ``/moved`` (a 302 to ``/cat.png``),
anything else a 404. Every request's path is kept in ``hits``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.fakes.threaded_http import serving

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
BIG = 200_000
FILES = {
    "/cat.png": ("image/png", PNG),
    "/doc.pdf": ("application/pdf", PDF),
    "/plain.png": ("application/octet-stream", PNG),
    "/big.png": ("image/png", PNG + b"\x00" * BIG),
    "/page.html": ("text/html; charset=utf-8", b"<html><body>Sign in</body></html>"),
}


@dataclass
class MediaHost:
    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def media_host() -> Iterator[MediaHost]:
    host = MediaHost("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.hits.append(self.path)
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("location", "/cat.png")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            kind, body = FILES.get(self.path, ("text/plain", b"not found"))
            self.send_response(200 if self.path in FILES else 404)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as url:
        host.url = url
        yield host
