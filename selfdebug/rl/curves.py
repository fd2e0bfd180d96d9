"""Curves of an RL run from its step log (``log.jsonl``): rewards, pass rate, KL, value loss, entropy and clip
fraction, response length."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

PANELS = (
    ("rewards", (("refinement_reward", "refinement R(r)"), ("explanation_reward", "explanation R(e)"))),
    ("scores", (("s_ut", "S_ut (tests passed)"), ("pass_rate", "all tests pass"), ("s_cb", "S_cb (CodeBLEU)"),
                ("s_ex", "S_ex (explanation sim.)"))),
    ("KL to the SFT policy (per token)", (("kl_ref", "KL"),)),
    ("value loss", (("value", "value loss"),)),
    ("entropy and clipping", (("entropy", "entropy"), ("clip_frac", "clip fraction"))),
    ("response length (tokens)", (("response_tokens", "mean length"),)),
)


def curves_figure(rows: list[dict[str, Any]], path: str | Path, title: str = "RL") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfdebug.io import atomic_write_bytes

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    steps = [r["step"] for r in rows]
    for ax, (name, series) in zip(axes.flat, PANELS, strict=True):
        for key, label in series:
            values = [r.get(key) for r in rows]
            if any(v is not None for v in values):
                ax.plot(steps, [float("nan") if v is None else v for v in values], marker=".", label=label)
        ax.set_xlabel("PPO iteration")
        ax.set_title(f"{title}: {name}")
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
