"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sandbox():
    """One warm worker with a 20 s run limit, per test module: the collection stages' scripted programs are tiny.
    A module that needs other limits defines its own ``sandbox`` (pytest prefers the nearer definition)."""
    from selfdebug.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(workers=1, run_timeout_s=20.0)) as box:
        yield box
