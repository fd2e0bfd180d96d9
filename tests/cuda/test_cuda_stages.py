"""The training and generation stages on a CUDA GPU, on the tiny model built in the test (marked ``cuda``; skipped
where torch sees no GPU, as on the project's CPU machines). Run them on a GPU machine with
``.venv/bin/python -m pytest -m cuda tests/cuda``: greedy generation on the GPU gives the CPU's tokens, and SFT and
PPO train on the GPU in bf16 (the precision ``dtype: auto`` picks there) and write their usual artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from selfdebug.config import REPO_ROOT, load_config

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")]
SMOKE_COLLECTION = REPO_ROOT / "tests" / "fixtures" / "smoke_collection"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from selfdebug.generate.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-cuda") / "model")


def test_greedy_generation_on_the_gpu_gives_the_cpu_tokens(tiny):
    from selfdebug.generate import make_backend
    from selfdebug.generate.base import SamplingParams

    prompts = [[{"role": "user", "content": "Write a function add(a, b)."}]]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)
    tokens = {}
    for device in ("cpu", "cuda"):
        backend = make_backend({"id": str(tiny), "backend": "hf", "dtype": "float32", "device": device,
                                "batch_size": 1})
        tokens[device] = backend.generate(prompts, params)[0][0].token_ids
    assert tokens["cuda"] == tokens["cpu"] and len(tokens["cpu"]) > 0


def test_sft_trains_on_the_gpu_in_bf16(tmp_path, tiny):
    from selfdebug.sft.train import run_sft

    cfg = load_config("smoke", [f"model.id=tiny:{tiny}", "model.device=cuda", "sft.epochs=4",
                                "sft.learning_rate=0.005", "sft.lora_dropout=0.0"])
    summary = run_sft(cfg, tmp_path / "sft", collection=SMOKE_COLLECTION)
    assert summary["device"] == "cuda" and summary["dtype"] == "bfloat16"
    assert summary["last_loss"] < summary["first_loss"]
    assert (tmp_path / "sft" / "model" / "adapter_config.json").is_file()


def test_ppo_iterations_run_on_the_gpu(tmp_path, tiny):
    from selfdebug.rl.train import run_rl

    cfg = load_config("smoke", [f"model.id=tiny:{tiny}", "model.device=cuda", "rl.sft_adapter=none", "rl.steps=2"])
    summary = run_rl(cfg, tmp_path / "rl", collection=SMOKE_COLLECTION)
    assert summary["device"] == "cuda" and summary["dtype"] == "bfloat16"
    log = [json.loads(line) for line in (tmp_path / "rl" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2]  # two iterations ran and were logged
    assert all(math.isfinite(row["refinement_reward"]) and math.isfinite(row["loss"]) for row in log)
    assert (tmp_path / "rl" / "model" / "adapter_config.json").is_file()
