"""Loss and learning-rate curves of a training run, from the Trainer's log history."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def curves_figure(history: list[dict[str, Any]], path: str | Path, title: str = "SFT") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfdebug.io import atomic_write_bytes

    steps = [h for h in history if "loss" in h and "step" in h]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot([h["step"] for h in steps], [h["loss"] for h in steps], marker=".", color="#2e86ab")
    left.set_xlabel("optimizer step")
    left.set_ylabel("training loss (final reply tokens)")
    left.set_title(f"{title}: loss")
    right.plot([h["step"] for h in steps], [h.get("learning_rate", float("nan")) for h in steps], color="#d1495b")
    right.set_xlabel("optimizer step")
    right.set_ylabel("learning rate")
    right.set_title(f"{title}: learning rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
