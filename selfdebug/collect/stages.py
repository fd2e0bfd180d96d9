"""The three stages in order (``python -m selfdebug.collect all``); each runs the ones before it that are
not done, so ``run_filter`` alone is the whole collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfdebug.collect.filter import run_filter
from selfdebug.collect.refine import run_refine
from selfdebug.collect.sample import run_sample
from selfdebug.config import Config

STAGES = {"sample": run_sample, "refine": run_refine, "filter": run_filter}


def run_all(config: Config, run_dir: str | Path | None = None, backend: Any = None,
            sandbox: Any = None) -> dict[str, Any]:
    """Every stage; returns the filter stage's summary."""
    return run_filter(config, run_dir, backend=backend, sandbox=sandbox)
