"""Execution sandbox: runs model-written programs against structured tests, isolated and bounded.

See ``isolation`` for the levels, ``forkserver`` for the warm workers, ``verdict`` for how results are
decided (in the harness process, never inside the sandbox). Names are imported lazily, so the fork server
(which imports only ``isolation``, ``runner`` and ``plain``) stays small and cheap to fork.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfdebug.sandbox.isolation import isolation_level as isolation_level
    from selfdebug.sandbox.sandbox import Sandbox as Sandbox
    from selfdebug.sandbox.sandbox import SandboxUnavailable as SandboxUnavailable
    from selfdebug.sandbox.types import ExecResult as ExecResult
    from selfdebug.sandbox.types import Job as Job
    from selfdebug.sandbox.types import SandboxConfig as SandboxConfig
    from selfdebug.sandbox.types import TestOutcome as TestOutcome
    from selfdebug.sandbox.types import outcome_counts as outcome_counts

_WHERE = {"isolation_level": "isolation", "Sandbox": "sandbox", "SandboxUnavailable": "sandbox",
          "ExecResult": "types", "Job": "types", "SandboxConfig": "types", "TestOutcome": "types",
          "outcome_counts": "types"}

__all__ = ["ExecResult", "Job", "Sandbox", "SandboxConfig", "SandboxUnavailable", "TestOutcome",
           "isolation_level", "outcome_counts"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"selfdebug.sandbox.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'selfdebug.sandbox' has no attribute {name!r}")
