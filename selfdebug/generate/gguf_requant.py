"""Re-encode a GGUF's weights in another llama.cpp type, once, for a faster CPU kernel.

Why: the embedded GGUF stores most matrices as Q5_0 (Qwen2.5-0.5B's 4864-wide FFN does not divide into K-quant
super-blocks, so "Q4_K_M" falls back to Q5_0 for 133 of 170 matrices). On x86 CPUs llama.cpp has tiled matrix-
multiply kernels (llamafile's tinyBLAS) for Q8_0 but not for Q5_0, and batched decoding is compute-bound, so
the Q8_0 copy decodes faster (benchmarks/results/generate.md measures both). Q8_0 is a *widening*: every
32-weight block of the source becomes a block with 255 levels instead of 32, so each weight moves by at most
1/254 of the largest magnitude in its block, about 6% of one Q5_0 step; greedy and sampled pass@1 are compared
in the benchmark.

The derived file sits next to its source with a JSON marker naming the source (name, size, mtime) and the
type; it is rebuilt when either changes, written to a temporary name and renamed, so a crash never leaves a
half-written GGUF under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

ORIGINAL = "original"
"""``gguf_type`` that runs the GGUF exactly as stored."""
TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16", "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
         "f32": "LLAMA_FTYPE_ALL_F32"}
"""Only types that do not lose information relative to a 4-6 bit source (no further quantization)."""


def derived_path(src: Path, gguf_type: str) -> Path:
    return src.with_name(f"{src.stem}.{gguf_type}.gguf")


def _fingerprint(src: Path) -> dict:
    st = src.stat()
    return {"source": src.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def requantized_gguf(src: str | Path, gguf_type: str = ORIGINAL, n_threads: int | None = None) -> Path:
    """The GGUF to run for ``gguf_type``: ``src`` itself for ``original``, else a derived copy (made once)."""
    src = Path(src)
    if gguf_type in (None, "", ORIGINAL):
        return src
    if gguf_type not in TYPES:
        raise ValueError(f"gguf_type must be {ORIGINAL!r} or one of {sorted(TYPES)}, got {gguf_type!r}")
    if not src.is_file():
        raise FileNotFoundError(f"gguf_type {gguf_type}: source GGUF not found: {src}")
    out = derived_path(src, gguf_type)
    marker = out.with_suffix(".json")
    want = {**_fingerprint(src), "gguf_type": gguf_type}
    try:
        if out.is_file() and json.loads(marker.read_text()) == want:
            return out
    except (OSError, ValueError):
        pass  # missing or unreadable marker: rebuild

    import llama_cpp as lc

    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, TYPES[gguf_type])
    params.allow_requantize = True  # the source is already quantized: dequantize to f32, then encode
    params.nthread = n_threads or max(1, len(os.sched_getaffinity(0)))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    log.info("writing %s: %s re-encoded as %s (once; a few seconds)", out.name, src.name, gguf_type)
    t0 = time.perf_counter()
    try:
        rc = lc.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            raise RuntimeError(f"llama.cpp could not re-encode {src} as {gguf_type} (code {rc})")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    from selfdebug.io import atomic_write_json

    atomic_write_json(marker, want)
    log.info("%s written in %.1f s (%.0f MB)", out.name, time.perf_counter() - t0, out.stat().st_size / 1e6)
    return out
