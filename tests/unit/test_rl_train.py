"""``run_rl`` (``selfdebug.rl.train``) on the tiny model and a hand-written collection: it trains, logs each
iteration, saves an RL adapter over the merged SFT model that transformers loads as it is (the evaluation path),
does nothing on a rerun; and ``python -m selfdebug.rl`` killed with SIGKILL after its first checkpoint resumes to
exactly the weights and the step log of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_rl_data import collection, record
from test_rl_reward_fn import FakeEmbedder

from selfdebug.config import REPO_ROOT, load_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny model and an "SFT" adapter over it (random A and B, so that merging it changes the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selfdebug.generate.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("rl_train")
    path = build_tiny_model(root / "model", seed=0)
    torch.manual_seed(5)
    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(str(path)),
                         LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                    task_type="CAUSAL_LM"))
    sft.save_pretrained(root / "sft")
    return path, root / "sft"


def records() -> list[dict]:
    return [record("explain_refine"), record("refine", teacher="t2"),
            record("explain_refine", solution="MBPP/602/def", task_id="MBPP/602", verified=[])]


def overrides(root: Path, tiny: tuple[Path, Path], *extra: str) -> list[str]:
    return [f"model.id=tiny:{tiny[0]}", f"rl.collection={root}", f"rl.sft_adapter={tiny[1]}",
            "rl.max_new_tokens=16", *extra]


class FakeSandbox:
    def __init__(self):
        self.jobs = []

    def run(self, jobs, progress=False):
        self.jobs += jobs
        return [{"status": "wrong_answer", "passed": False, "n_passed": 1, "n_total": 3} for _ in jobs]


def test_rl_trains_logs_saves_a_loadable_adapter_and_skips_a_finished_run(tmp_path, tiny):
    import torch
    from transformers import AutoModelForCausalLM

    from selfdebug.rl.train import run_rl

    root = collection(tmp_path, records())
    cfg = load_config("smoke", overrides(root, tiny, "rl.steps=3", "rl.save_steps=2", "rl.limit=null"))
    sandbox = FakeSandbox()
    out = tmp_path / "rl"
    summary = run_rl(cfg, out, sandbox=sandbox, embedder=FakeEmbedder())
    assert summary["prompts"] == 4 and summary["prompts_by_format"] == {"refine": 2, "explain_refine": 2}
    assert summary["prompts_without_reference"] == 2 and summary["steps"] == 3
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("refinement_reward", "s_ut", "kl_ref", "value", "clip_frac", "entropy", "response_tokens"):
        assert all(isinstance(r[key], float) for r in rows), key
    assert rows[0]["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # the fresh RL adapter is the SFT model
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 3 * cfg.rl.batch_size
    ran = sum(r["status"] != "no_code" for r in rollouts)
    assert len(sandbox.jobs) <= ran  # what ran, ran in the sandbox (repeats come from executions.jsonl)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    assert (out / "curves.png").stat().st_size > 1000 and (out / "config.yaml").is_file()

    # the evaluation's path: model.id = the adapter folder, loaded by transformers over sft_merged/
    model_dir = out / "model"
    cfg_json = json.loads((model_dir / "adapter_config.json").read_text())
    assert cfg_json["base_model_name_or_path"] == str((out / "sft_merged").resolve())
    assert (model_dir / "tokenizer_config.json").is_file() and (model_dir / "value_head.safetensors").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    rl_model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    sft_model = AutoModelForCausalLM.from_pretrained(str(out / "sft_merged"))
    base = AutoModelForCausalLM.from_pretrained(str(tiny[0]))
    with torch.no_grad():
        rl_logits, sft_logits, base_logits = (m(ids).logits.float() for m in (rl_model, sft_model, base))
    assert not torch.allclose(sft_logits, base_logits, atol=1e-4)  # the SFT adapter is merged in
    assert not torch.allclose(rl_logits, sft_logits, atol=1e-6)  # and the RL adapter moved

    again = run_rl(cfg, out, sandbox=sandbox, embedder=FakeEmbedder())
    assert again.get("skipped") and again["weights_sha256"] == summary["weights_sha256"]
    # llama.cpp's settings do not touch a run transformers sampled: still this run (and runs made before they existed)
    other_cap = load_config("smoke", overrides(root, tiny, "rl.steps=3", "rl.save_steps=2", "rl.limit=null",
                                               "rl.is_cap=3.0", "rl.rollout_gguf_type=q8_0"))
    assert run_rl(other_cap, out, sandbox=sandbox, embedder=FakeEmbedder()).get("skipped")


def _cli(run_dir: Path, args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "selfdebug.rl", "--profile", "smoke", "--run-dir", str(run_dir)]
    for a in args:
        cmd += ["--override", a]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TQDM_DISABLE="1")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {**load_file(str(folder / "adapter_model.safetensors")), **load_file(str(folder / "value_head.safetensors"))}


def _trajectory(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # timings differ


@pytest.mark.parametrize("engine", ["hf", "llamacpp"])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, tiny, engine):
    """With llama.cpp rollouts too: the resumed run serves the checkpoint's adapter and draws the same samples."""
    import torch

    if engine == "llamacpp":
        pytest.importorskip("llama_cpp")
    root = collection(tmp_path, records())
    # "Refine" prompts only: no explanation, so the subprocess never loads the sentence embedder
    args = overrides(root, tiny, "rl.steps=6", "rl.save_steps=2", "rl.formats=[refine]", f"rl.rollout_engine={engine}")
    whole = _cli(tmp_path / "whole", args)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-3000:]
    killed = _cli(tmp_path / "killed", args)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if any((p / "state.json").is_file() for p in checkpoints.glob("step-*")):
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
    assert summary["resumed_from"] not in (None, "step-000006") and reference["resumed_from"] is None
    assert summary["weights_sha256"] == reference["weights_sha256"]
    a, b = _tensors(tmp_path / "whole" / "model"), _tensors(tmp_path / "killed" / "model")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _trajectory(tmp_path / "killed") == _trajectory(tmp_path / "whole")  # the same samples and updates
    assert reference["rollout_engine"] == summary["rollout_engine"] == engine
