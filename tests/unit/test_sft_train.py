"""SFT on the tiny model: it trains (the loss falls), saves an adapter with the tokenizer, does nothing on a
rerun, and a run killed with SIGKILL between checkpoints resumes to the same weights as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sft_examples import collection, record

from selfdebug.config import REPO_ROOT, load_config


def many_records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        r = record()
        r["record_id"] = f"MBPP/{601 + i}/abc/self/explain_refine"
        out.append(r)
    return out


def overrides(root: Path, tiny: Path, *extra: str) -> list[str]:
    return [f"model.id=tiny:{tiny}", f"sft.collection={root}", "sft.lora_dropout=0.0", *extra]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from selfdebug.generate.tiny import build_tiny_model

    path = tmp_path_factory.mktemp("tiny-sft")
    build_tiny_model(path)
    return path


def test_sft_trains_saves_an_adapter_and_skips_a_finished_run(tmp_path, tiny):
    from selfdebug.sft.train import run_sft

    root = collection(tmp_path, many_records(4))
    cfg = load_config("smoke", overrides(root, tiny, "sft.epochs=8", "sft.learning_rate=0.005"))
    summary = run_sft(cfg, tmp_path / "sft")
    assert summary["examples"] == {"code": 1, "refine": 4, "explain_refine": 4, "total": 9}
    assert summary["steps"] == 8 * 5  # 9 examples, batch 2 (the last batch holds one) -> 5 steps an epoch
    assert summary["last_loss"] < summary["first_loss"]
    model = tmp_path / "sft" / "model"
    assert (model / "adapter_config.json").is_file() and (model / "tokenizer_config.json").is_file()
    assert (tmp_path / "sft" / "curves.png").stat().st_size > 1000
    log = [json.loads(line) for line in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert sum("loss" in h for h in log) == summary["steps"]
    again = run_sft(cfg, tmp_path / "sft")
    assert again.get("skipped") and again["steps"] == summary["steps"]
    # a memory setting only: the finished run is still this run
    checkpointed = load_config("smoke", overrides(root, tiny, "sft.epochs=8", "sft.learning_rate=0.005",
                                                  "sft.gradient_checkpointing=true"))
    assert run_sft(checkpointed, tmp_path / "sft").get("skipped")


def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _cli(run_dir: Path, args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "selfdebug.sft", "--profile", "smoke", "--run-dir", str(run_dir)]
    for a in args:
        cmd += ["--override", a]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TQDM_DISABLE="1")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("batching", ["random", "by_length"])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, tiny, batching):
    """Also with micro batches grouped by length (a batch sampler, which the resumed run must skip into)."""
    import torch

    root = collection(tmp_path, many_records(12))
    args = overrides(root, tiny, "sft.epochs=4", "sft.save_steps=2", f"sft.batching={batching}")
    whole = _cli(tmp_path / "whole", args)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-3000:]
    killed = _cli(tmp_path / "killed", args)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if any((p / "trainer_state.json").is_file() for p in checkpoints.glob("checkpoint-*")):
            break
        time.sleep(0.01)
    assert killed.poll() is None, "the run ended before it could be killed: make it longer"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "model").exists()
    resumed = _cli(tmp_path / "killed", args)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    reference = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["resumed_from"] is not None and summary["steps"] == reference["steps"]
    a, b = _adapter(tmp_path / "whole" / "model"), _adapter(tmp_path / "killed" / "model")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_by_length_batching_trains_on_the_same_examples_with_little_padding(tmp_path, tiny):
    """``sft.batching: by_length``: every example once, as with random micro batches, with far less padding; an
    unknown batching is a config error naming the key."""
    from selfdebug.config import ConfigError
    from selfdebug.sft.train import run_sft

    records = []
    for i in range(16):  # four lengths of explanation, so that random micro batches of 2 pad
        r = record(explanation="Off by one. " * (1 + 12 * (i % 4)))
        r["record_id"] = f"MBPP/{601 + i}/abc/self/explain_refine"
        records.append(r)
    root = collection(tmp_path, records, solutions=False)
    runs = {}
    for batching, seed in (("random", 0), ("by_length", 0)):
        cfg = load_config("smoke", overrides(root, tiny, "sft.epochs=1", "sft.batch_size=8", "sft.micro_batch_size=2",
                                             "sft.formats=[explain_refine]", "sft.max_steps=null", "sft.max_length=4096",
                                             f"sft.batching={batching}", f"seed={seed}"))
        runs[batching, seed] = run_sft(cfg, tmp_path / f"{batching}-{seed}")
    plain, grouped = runs["random", 0], runs["by_length", 0]
    assert plain["steps"] == grouped["steps"] == 2
    assert grouped["tokens_seen"] == plain["tokens_seen"]  # the same 16 examples, each once
    # measured: 0.18 of the random micro batches' tokens are padding, 0.06 of the grouped ones'
    assert plain["padding_share"] > 0.1 and grouped["padding_share"] < plain["padding_share"] / 2
    with pytest.raises(ConfigError, match="sft.batching"):
        load_config("smoke", overrides(root, tiny, "sft.batching=sorted"))
