"""The reliability suite's shared fixtures; it prints its figures after the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.private_postgres import PrivatePostgres, private_postgres
from tests.fakes.process import FakeServer
from tests.reliability import figures


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    """A Postgres server of the module's own, which its tests may stop and start."""
    with private_postgres() as server:
        yield server


@pytest.fixture
def fake(anthropic_fake: FakeServer) -> Iterator[FakeServer]:
    anthropic_fake.reset()
    yield anthropic_fake
    anthropic_fake.reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if any(figures.COUNTS.values()):
        terminalreporter.write_sep("-", "reliability figures")
        terminalreporter.write_line(figures.summary())
