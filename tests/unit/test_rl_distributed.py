"""RL in two CPU processes (gloo) on the tiny model, started by ``torchrun`` (the launcher ``accelerate launch`` uses
for several GPUs): each rank samples and scores half of every iteration's prompts, the gradients are averaged, both
ranks end with the same weights (the run compares them and fails otherwise), and rank 0 alone writes the run, whose
log covers every rank's rollouts."""

from __future__ import annotations

import json

from test_rl_data import collection
from test_rl_train import overrides, records, tiny  # noqa: F401 - tiny is a fixture
from test_sft_distributed import run_two_processes


def test_two_cpu_processes_train_the_same_weights_on_their_shares(tmp_path, tiny):  # noqa: F811
    root = collection(tmp_path, records())
    # "Refine" prompts only: no explanation, so no sentence embedder is loaded
    args = overrides(root, tiny, "rl.steps=2", "rl.save_steps=1", "rl.batch_size=4", "rl.mini_batch_size=2",
                     "rl.formats=[refine]", "rl.limit=null")
    out = tmp_path / "ddp"
    done = run_two_processes("selfdebug.rl", out, args, 30500)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2  # run_rl gathered both ranks' weight digests and found them equal
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rollouts] == [1] * 4 + [2] * 4  # both ranks' halves, logged once by rank 0
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "model" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001", "step-000002"]


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path, tiny):  # noqa: F811
    root = collection(tmp_path, records())
    args = overrides(root, tiny, "rl.batch_size=3", "rl.mini_batch_size=1", "rl.formats=[refine]")
    done = run_two_processes("selfdebug.rl", tmp_path / "odd", args, 31500)
    assert done.returncode != 0
    assert "multiples of the number of processes (2)" in done.stderr
