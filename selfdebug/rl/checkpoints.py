"""PPO checkpoints of an RL run: ``step-NNNNNN/`` holds the RL adapter and value head (``PolicyWithValue.save``),
the optimizer's state and ``state.json`` (the step and the run's trajectory key). A folder is written as
``.tmp`` and renamed whole, so a kill mid-save leaves the previous checkpoint as the newest; the last
``KEEP_CHECKPOINTS`` are kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from selfdebug.io import atomic_write_json

KEEP_CHECKPOINTS = 2


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (a folder is renamed into place once whole)."""
    done = [p for p in folder.glob("step-*") if (p / "state.json").is_file() and not p.name.endswith(".tmp")]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(folder: Path, step: int, policy: Any, optimizer: Any, state: dict[str, Any]) -> Path:
    import torch

    final = folder / f"step-{step:06d}"
    tmp = folder / f"step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    atomic_write_json(tmp / "state.json", {**state, "step": step})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(folder.glob("step-*"), key=lambda p: p.name)[:-KEEP_CHECKPOINTS]:
        if not old.name.endswith(".tmp"):
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, policy: Any, optimizer: Any) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(policy.model, load_file(str(path / "adapter_model.safetensors")))
    if getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"{path}: adapter tensors the policy does not have: {result.unexpected_keys[:5]}")
    policy.value_head.load_state_dict(load_file(str(path / "value_head.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=policy.value_head.weight.device,
                                         weights_only=True))
    return json.loads((path / "state.json").read_text())
