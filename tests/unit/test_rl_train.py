"""``run_rl`` (``selfdebug.rl.train``) on the tiny model and a hand-written collection: it trains, logs each
iteration, saves an RL adapter over the merged SFT model that transformers loads as it is (the evaluation path),
does nothing on a rerun; and ``python -m selfdebug.rl`` killed with SIGKILL after its first checkpoint resumes to
draw exactly the samples of an uninterrupted run and land on its weights (bitwise, or within ``WEIGHT_NOISE``)."""

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
    """``python -m selfdebug.rl`` in a child; its stderr goes to ``run_dir.stderr`` (a pipe left unread could fill
    and stall the child), appended, so a killed run and its resumption leave one record."""
    cmd = [sys.executable, "-m", "selfdebug.rl", "--profile", "smoke", "--run-dir", str(run_dir)]
    for a in args:
        cmd += ["--override", a]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TQDM_DISABLE="1")
    with open(_stderr_path(run_dir), "a") as err:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)


def _stderr_path(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}.stderr"


def _warnings(run_dir: Path) -> str:
    """The run's warnings (an engine fallback, a probe that died): what a failure message needs to name."""
    lines = _stderr_path(run_dir).read_text().splitlines()
    return "\n".join(ln for ln in lines if "WARNING" in ln and "FutureWarning" not in ln)[-3000:] or "(none)"


def _tail(run_dir: Path) -> str:
    return _stderr_path(run_dir).read_text()[-3000:]


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {**load_file(str(folder / "adapter_model.safetensors")), **load_file(str(folder / "value_head.safetensors"))}


def _trajectory(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # timings differ


def _samples(run_dir: Path) -> list[tuple]:
    """Every rollout of the run: its step, prompt, text and rewards (what a resumed run must draw again)."""
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    return [(r["step"], r["prompt_id"], r["text"], r["status"], r["refinement_reward"]) for r in rows]


WEIGHT_NOISE = 1e-4
"""How far (max |difference|) a resumed run's weights may land from the uninterrupted run's when they are not
bitwise equal. They are bitwise equal on the Intel Xeon where this was measured, in every one of 20 repeats, also
two at a time; one CI run (its machine unrecorded) was not, and CPU float reductions (MKL, oneDNN, ggml) are not
promised bitwise from run to run on every processor. The faults this test is
for move them far more: resuming without the optimizer's state, 0.0105; serving the zero adapter after resuming,
0.0094 (both measured on this test's runs) - and both change the samples drawn, which must match exactly."""


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
    assert whole.wait(timeout=300) == 0, _tail(tmp_path / "whole")
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
    assert resumed.wait(timeout=300) == 0, _tail(tmp_path / "killed")
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    reference = json.loads((tmp_path / "whole" / "summary.json").read_text())
    notes = (f"resumed from {summary['resumed_from']}; engines {reference['rollout_engine']} / "
             f"{summary['rollout_engine']}; warnings of the uninterrupted run:\n{_warnings(tmp_path / 'whole')}\n"
             f"of the killed and resumed run:\n{_warnings(tmp_path / 'killed')}")
    assert summary["resumed_from"] not in (None, "step-000006") and reference["resumed_from"] is None, notes
    assert reference["rollout_engine"] == summary["rollout_engine"] == engine, notes
    drawn, again = _samples(tmp_path / "whole"), _samples(tmp_path / "killed")
    first = next((i for i, (a, b) in enumerate(zip(drawn, again, strict=False)) if a != b), None)
    assert len(drawn) == len(again) and first is None, (
        f"the resumed run drew other samples: first at rollout {first}: {drawn[first] if first is not None else ''}"
        f" vs {again[first] if first is not None else ''}; {notes}")
    a, b = _tensors(tmp_path / "whole" / "model"), _tensors(tmp_path / "killed" / "model")
    assert a.keys() == b.keys()
    if summary["weights_sha256"] != reference["weights_sha256"]:
        gap = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
        assert gap <= WEIGHT_NOISE, f"the resumed weights differ by up to {gap:.3g}; {notes}"
        import warnings

        warnings.warn(f"the resumed run drew the same samples and its weights are within {gap:.2g} of the "
                      f"uninterrupted run's, but not bitwise equal on this machine ({notes})", stacklevel=1)
    else:
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert _trajectory(tmp_path / "killed") == _trajectory(tmp_path / "whole")  # the same samples and updates
