"""The reliability suite prints its figures after the run."""

from __future__ import annotations

import pytest

from tests.reliability import figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if any(figures.COUNTS.values()):
        terminalreporter.write_sep("-", "reliability figures")
        terminalreporter.write_line(figures.summary())
