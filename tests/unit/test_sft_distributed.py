"""SFT in two CPU processes (gloo) on the tiny model, started by ``torchrun`` (the launcher ``accelerate launch``
uses for several GPUs; on CPUs accelerate starts processes only through MPI): both ranks end with the same
weights, rank 0 alone writes the run, and the examples per step stay ``sft.batch_size``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from test_sft_examples import collection
from test_sft_train import many_records, overrides

from selfdebug.config import REPO_ROOT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from selfdebug.generate.tiny import build_tiny_model

    path = tmp_path_factory.mktemp("tiny-ddp")
    build_tiny_model(path)
    return path


def run_two_processes(module: str, run_dir, overrides_: list[str], port_base: int) -> subprocess.CompletedProcess:
    """``python -m <module> --profile smoke`` in two CPU processes under torchrun (skips without the launcher)."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torch's launcher is not installed next to this interpreter")
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(port_base + os.getpid() % 1000),
           "-m", module, "--profile", "smoke", "--run-dir", str(run_dir)]
    for a in overrides_:
        cmd += ["--override", a]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_two_cpu_processes_end_with_identical_weights(tmp_path, tiny):
    root = collection(tmp_path, many_records(8))
    args = overrides(root, tiny, "sft.epochs=2", "sft.batch_size=4", "sft.micro_batch_size=1")
    done = run_two_processes("selfdebug.sft", tmp_path / "ddp", args, 29500)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2  # run_sft gathered both ranks' digests and found them equal
    # 17 examples, 4 per step (2 processes x 1 x accumulation 2): 5 steps an epoch, as on one process
    assert summary["examples"]["total"] == 17 and summary["steps"] == 2 * 5
    assert (tmp_path / "ddp" / "model" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "ddp" / "model.tmp").exists()
