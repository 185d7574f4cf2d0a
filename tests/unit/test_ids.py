"""Ids: OpenAI's length, unguessable, and in the order they were minted."""

from __future__ import annotations

import re
import time

from llmrelay.ids import new_id


def test_ids_have_openais_shape_and_never_repeat() -> None:
    ids = [new_id("resp") for _ in range(10_000)]
    assert all(re.fullmatch(r"resp_[0-9a-f]{50}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[17:] for i in ids}) == len(ids)  # the random part alone tells them apart


def test_ids_minted_later_sort_later() -> None:
    earlier = new_id("resp")
    time.sleep(0.002)
    assert all(new_id("resp") > earlier for _ in range(100))
