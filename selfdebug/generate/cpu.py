"""What this machine's CPU can do, and the speed choices that follow from it (made per machine, recorded).

The project runs on any x86-64 CPU: machines of the same kind have had an AMD EPYC without AVX2 and an Intel
Xeon with AVX-512, AVX512-BF16 and AMX behind them. Which precision is fastest for torch depends on that:
with AVX512-BF16 or AMX, oneDNN runs bf16 matmuls natively (about twice the fp32 speed in our training and
generation measurements); without them bf16 is emulated by widening to fp32 and is slower than fp32 itself.
So ``dtype: auto`` on a CPU means bf16 only where the CPU has native bf16 arithmetic.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16")
"""The flags that decide kernels and precision here; every run records which of them the CPU has."""


def parse_cpuinfo(text: str) -> dict[str, object]:
    """Model name and feature flags of the first processor listed in a /proc/cpuinfo text."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return {"model": model or platform.processor() or platform.machine(), "flags": frozenset(flags)}


@functools.cache
def cpu_info() -> dict[str, object]:
    """This machine's CPU (cached: it does not change while a process runs)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags known, so no native-bf16 claim either
        text = ""
    return parse_cpuinfo(text)


def has_native_bf16(flags: frozenset[str] | set[str] | None = None) -> bool:
    flags = cpu_info()["flags"] if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def cpu_summary(info: dict[str, object] | None = None) -> dict[str, object]:
    """What a run records about the CPU: model name, the flags that matter (present or not), core count."""
    import os

    info = info or cpu_info()
    flags = info["flags"]
    return {"model": info["model"], "cores": len(os.sched_getaffinity(0)),
            "flags": {f: f in flags for f in REPORTED_FLAGS}}


def auto_cpu_dtype(flags: frozenset[str] | set[str] | None = None) -> str:
    """``bfloat16`` where the CPU computes in bf16 natively, else ``float32`` (emulated bf16 is slower)."""
    return "bfloat16" if has_native_bf16(flags) else "float32"


def describe_cpu(summary: dict[str, object] | None = None) -> str:
    """One line naming the CPU and the flags that matter, for run summaries and benchmark reports."""
    summary = summary or cpu_summary()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in summary.get("flags", {}).items())
    return f"{summary.get('model')}, {summary.get('cores')} cores ({flags})"
