"""`llmrelay.Router`: the proxy's routing (groups, retries, cooldowns, fallbacks, mid-stream
fallback, strategies) for SDK callers, as LiteLLM's `Router` offers it.

    router = llmrelay.Router(model_list=[...], num_retries=2, fallbacks=[{"gpt": ["claude"]}])
    router.responses(model="gpt", input="Hi")

`model_list` is config.yaml's; every other keyword is a `router_settings` key (plus `store`,
`drop_params`, `set_verbose`, `prompt_caching`). The methods are the module functions bound to this router.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import sdk
from .relay import Relay
from .router import Router as _Core
from .store import ResponseStore

_LITELLM = ("drop_params", "set_verbose", "prompt_caching")


class Router:
    def __init__(
        self, model_list: list[dict[str, Any]], *, store: ResponseStore | str | None = None, **settings: Any
    ) -> None:
        from .config import ConfigError, parse_config  # pydantic and yaml only for those who route

        litellm = {k: settings.pop(k) for k in _LITELLM if k in settings}
        try:
            config = parse_config({"model_list": model_list, "router_settings": settings, "litellm_settings": litellm})
        except ConfigError as exc:
            raise ValueError(f"llmrelay.Router: {str(exc).removeprefix('router_settings.')}") from None
        self.relay = Relay(
            store=store,
            router=_Core(config.deployments(), config.wildcards(), config.routing()),
            num_retries=config.num_retries,
            timeout=config.timeout,
            stream_timeout=config.stream_timeout,
            drop_params=config.litellm_settings.drop_params,
            prompt_caching=config.litellm_settings.prompt_caching,
        )
        self._started: asyncio.AbstractEventLoop | None = None

    async def _ready(self) -> Relay:
        """Join the shared cooldowns (Redis) on the loop the calls run on, once."""
        loop = asyncio.get_running_loop()
        if self._started is not loop and self.relay.router is not None:
            self._started = loop
            await self.relay.router.start()
        return self.relay

    def _run(self, coro: Any) -> Any:
        async def ready_then() -> Any:
            await self._ready()
            return await coro

        return sdk._runner.run(ready_then())

    # -- responses --------------------------------------------------------------------------

    async def aresponses(self, **params: Any) -> Any:
        return await sdk.aresponses(relay=await self._ready(), **params)

    def responses(self, *, stream: bool = False, **params: Any) -> Any:
        if stream:
            return sdk._runner.iterate(self._run(sdk.aresponses(stream=True, relay=self.relay, **params)))
        return self._run(sdk.aresponses(relay=self.relay, **params))

    async def aget_responses(self, response_id: str, **options: Any) -> Any:
        return await sdk.aget_responses(response_id, relay=await self._ready(), **options)

    def get_responses(self, response_id: str, **options: Any) -> Any:
        return sdk.get_responses(response_id, relay=self.relay, **options)

    async def adelete_responses(self, response_id: str, **options: Any) -> Any:
        return await sdk.adelete_responses(response_id, relay=await self._ready(), **options)

    def delete_responses(self, response_id: str, **options: Any) -> Any:
        return sdk.delete_responses(response_id, relay=self.relay, **options)

    async def acancel_responses(self, response_id: str, **options: Any) -> Any:
        return await sdk.acancel_responses(response_id, relay=await self._ready(), **options)

    def cancel_responses(self, response_id: str, **options: Any) -> Any:
        return sdk.cancel_responses(response_id, relay=self.relay, **options)

    async def alist_input_items(self, response_id: str, **options: Any) -> Any:
        return await sdk.alist_input_items(response_id, relay=await self._ready(), **options)

    def list_input_items(self, response_id: str, **options: Any) -> Any:
        return sdk.list_input_items(response_id, relay=self.relay, **options)

    async def acompact_responses(self, **params: Any) -> Any:
        return await sdk.acompact_responses(relay=await self._ready(), **params)

    def compact_responses(self, **params: Any) -> Any:
        return self._run(sdk.acompact_responses(relay=self.relay, **params))

    async def acount_input_tokens(self, **params: Any) -> Any:
        return await sdk.acount_input_tokens(relay=await self._ready(), **params)

    def count_input_tokens(self, **params: Any) -> Any:
        return self._run(sdk.acount_input_tokens(relay=self.relay, **params))

    async def aclose(self) -> None:
        await self.relay.aclose()
