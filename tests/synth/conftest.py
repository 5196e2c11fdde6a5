"""Fixtures for synthetic-data tests: a registry with the built-in generators, a loopback fake server."""

from __future__ import annotations

import pytest

from phijax.synth.testing import FakeServer


@pytest.fixture
def server():
    """A fake OpenAI-compatible server on 127.0.0.1 (ephemeral port), stopped after the test."""
    with FakeServer() as fake:
        yield fake
