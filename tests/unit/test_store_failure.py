"""A store that fails says so without its own words (hosts, SQL) reaching the caller."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay import Relay, errors
from llmrelay.store.base import StoredResponse
from llmrelay.store.memory import MemoryStore

SECRET = 'could not connect to server: Connection refused (10.1.2.3:5432) in "INSERT INTO responses"'


class DownStore(MemoryStore):
    async def put(self, record: StoredResponse) -> None:
        raise OSError(SECRET)


def test_a_store_outage_is_a_500_without_the_database_error(caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay(store=DownStore())
    with pytest.raises(errors.InternalServerError) as caught:
        asyncio.run(relay.create({"model": "openai/gpt-4o", "input": "hi", "mock_response": "ok"}))
    assert caught.value.body["message"] == "The response store failed."
    assert "10.1.2.3" not in str(caught.value.body)
    assert SECRET in caplog.text  # the operator still sees it
