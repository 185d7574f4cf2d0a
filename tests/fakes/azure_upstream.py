"""Fake Azure OpenAI upstream: the OpenAI fake's Responses API under Azure's paths and auth.

Run with ``python -m tests.fakes.azure_upstream --port N [--background-delay S]``; the health
answer reports ``base_path: ""`` (clients take the resource root as their endpoint). Every
Responses route of the OpenAI fake (create, GET, DELETE, cancel, input_items, input_tokens,
compact) answers under three surfaces:

- ``/openai/deployments/{deployment}/responses...?api-version=...`` (the deployment is the model)
- ``/openai/responses...?api-version=YYYY-MM-DD[-preview]`` (the dated API; ``model`` names the deployment)
- ``/openai/v1/responses...`` (the v1 API: no api-version, or ``preview``), also under an Azure
  AI Foundry project (``/api/projects/{project}/openai/v1/responses...``)

Auth is an ``api-key`` header (``bad-key`` is refused) or a bearer token registered with
``POST /_fake/entra_tokens`` (``{"token": "..."}``: an Entra ID token, or the key of an endpoint
that takes its key as a bearer token); anything else is Azure's 401. A dated
path without ``api-version`` is a 404, an api-version that is not a date a 400.

Reply scripts (``/_fake/enqueue``) go to the next create, with the OpenAI fake's keys.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from tests.fakes import openai_upstream
from tests.fakes.control import Control, json_response, serve
from tests.fakes.forward import Forwarder, Rewrite

Json = dict[str, Any]
BAD_KEY = "bad-key"
SURFACE = re.compile(
    r"(?:/api/projects/[^/]+)?/openai(?:/deployments/(?P<deployment>[^/]+)|/(?P<v1>v1))?(?P<rest>/responses(?:/.*)?)"
)
DATED = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an"
    " active subscription and use a correct regional API endpoint for your resource."
)


def azure_error(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def build_app(background_delay: float = 0.5) -> Starlette:
    openai = openai_upstream.build_app(background_delay=background_delay)
    inner: Control = openai.state.fake.control
    control = Control("azure", "", on_reset=inner.reset)
    entra: set[str] = set()

    async def route(request: Request, record: Json) -> Rewrite | Response:
        match = SURFACE.fullmatch(request.url.path)
        if match is None:
            return azure_error(404, "404", "Resource not found")
        version = request.query_params.get("api-version")
        if match["v1"]:
            if version not in (None, "preview", "latest"):
                return azure_error(400, "BadRequest", "API version not supported")
        elif version is None:
            return azure_error(404, "404", "Resource not found")
        elif not DATED.fullmatch(version):
            return azure_error(400, "BadRequest", "API version not supported")
        key = request.headers.get("api-key")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if key == BAD_KEY or not (key or (scheme.lower() == "bearer" and token.strip() in entra)):
            return azure_error(401, "401", DENIED)
        body = record["body"]
        raw = await request.body()
        if match["deployment"] and isinstance(body, dict):
            body = {**body, "model": match["deployment"]}  # the deployment decides, whatever the body says
            raw = orjson.dumps(body)
        query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "api-version")
        create = request.method == "POST" and match["rest"] == "/responses"
        return Rewrite(openai, inner, "/v1" + match["rest"], {"authorization": "Bearer azure"}, raw,
                       query=query, scripted=create, drop_headers=("api-key",))  # fmt: skip

    async def register(request: Request) -> Response:
        entra.add(str(orjson.loads(await request.body())["token"]))
        return json_response({"registered": len(entra)})

    routes = [
        *control.routes(),
        Route("/_fake/entra_tokens", register, methods=["POST"]),
        Mount("/", app=Forwarder(control, route)),
    ]
    app = Starlette(routes=routes)
    app.state.fake = control
    return app


def main(argv: list[str] | None = None) -> None:
    help_ = "seconds until a background response completes"
    options = {"background_delay": {"type": float, "default": 0.5, "help": help_}}
    serve(lambda args: build_app(background_delay=args.background_delay), __doc__.splitlines()[0], argv, options)


if __name__ == "__main__":
    main()
