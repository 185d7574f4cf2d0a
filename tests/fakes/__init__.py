"""Fake upstream providers, run as real HTTP servers for end-to-end tests."""

from tests.fakes.process import FakeServer, FakeServerError, start_fake

__all__ = ["FakeServer", "FakeServerError", "start_fake"]
