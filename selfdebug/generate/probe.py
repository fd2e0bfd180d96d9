"""Before llama.cpp serves a run, one real decode runs in a child process; a crash there never reaches us.

Why: llama.cpp's CPU kernels are chosen from the CPU at build and load time, and some of them crash on some
machines (ggml's AMX matmul segfaults on Intel Xeon guests that report AMX). A segfault in the engine would
kill a notebook kernel or a whole pytest run. So the settings a run will use are tried first in a throwaway
child (load the GGUF, evaluate a prompt, decode a step for every parallel sequence), and only settings whose
child exited cleanly are used in this process. When the child dies, the next candidate is tried:

1. the configured settings;
2. the same without llama.cpp's extra buffer types (``use_extra_bufts = False``: no AMX or repacked weights,
   the plain CPU kernels);
3. the ``hf`` backend (for ``backend: auto``; an explicit ``backend: llamacpp`` is an error instead).

Each fallback is logged as a warning that names how the child died (the signal) and what was chosen.
Results are remembered per process (same file, same settings), so a second backend does not probe again.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 300.0
"""A probe that has not finished by then counts as failed (a hung engine is as bad as a crashed one)."""
_PROBE_PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n" * 4
_results: dict[str, ProbeResult] = {}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    how: str
    """``ok``, or how the child failed: ``killed by SIGSEGV``, ``exit code 1: <last stderr line>``, ``timeout``."""
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "how": self.how, "seconds": round(self.seconds, 2)}


def describe_exit(returncode: int) -> str:
    """``killed by SIGSEGV`` for a negative return code (death by signal), else ``exit code N``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _child_argv(settings: dict[str, Any]) -> list[str]:
    """The probe child's command line (a seam for tests, which make it crash on purpose)."""
    return [sys.executable, "-m", "selfdebug.generate.probe", json.dumps(settings, sort_keys=True)]


def _memo_key(settings: dict[str, Any]) -> str:
    path = Path(settings["gguf_path"])
    st = path.stat()
    return json.dumps({**settings, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, sort_keys=True)


def probe(settings: dict[str, Any], timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run one decode with LlamaCppBackend(**settings) in a child process; never raises for a crash."""
    key = _memo_key(settings)
    if key in _results:
        return _results[key]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(_child_argv(settings), capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result = ProbeResult(False, f"timeout after {timeout_s:.0f} s", time.perf_counter() - t0)
    else:
        ok = proc.returncode == 0 and proc.stdout.strip().endswith("probe: ok")
        how = "ok" if ok else describe_exit(proc.returncode)
        if not ok and proc.returncode >= 0:
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:]
            how += f": {tail[0][:300]}" if tail else ""
        result = ProbeResult(ok, how, time.perf_counter() - t0)
    _results[key] = result
    return result


FALLBACKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("as configured", {}),
    ("without llama.cpp's extra buffer types (no AMX/repacked kernels)", {"extra_buffer_types": False}),
)
"""llama.cpp settings tried in order; the first whose probe child exits cleanly serves the run."""


def choose_llamacpp_settings(settings: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first llama.cpp settings that survive a probe (None if none does), and every attempt made."""
    attempts = []
    for label, change in FALLBACKS:
        candidate = {**settings, **change}
        result = probe(candidate)
        attempts.append({"settings": label, **result.to_dict()})
        if result.ok:
            if len(attempts) > 1:
                log.warning("llama.cpp probe: the configured engine %s; using llama.cpp %s instead",
                            attempts[0]["how"], label)
            return candidate, attempts
    return None, attempts


def _child(settings: dict[str, Any]) -> None:
    """Inside the probe child: the same engine a run would build, one prompt, one step for every slot."""
    from .base import SamplingParams
    from .llamacpp import LlamaCppBackend

    settings = dict(settings)
    # A short context is enough to exercise every kernel (prompt matmuls, batched decode) at little memory.
    settings["n_ctx"] = min(int(settings.get("n_ctx", 4096)), 512)
    backend = LlamaCppBackend(**settings)
    n = max(1, int(settings.get("n_parallel", 1)))
    outs = backend.generate([_PROBE_PROMPT], SamplingParams(n=n, temperature=1.0, max_new_tokens=4, seed=0))
    assert len(outs) == 1 and len(outs[0]) == n
    backend.close()
    print("probe: ok", flush=True)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
