"""The sandbox sees the interpreter it runs with and its installed packages wherever they live, read-only.

Users clone into /tmp, so the harness may run from a virtual environment under /tmp, which the sandbox
covers with its private tmpfs. Here such an environment is built (a checkout folder under /tmp with its own
``.venv``, numpy installed in it, the project's other dependencies layered on through a ``.pth`` file) and a
sandboxed program imports numpy from it, at every namespace level this machine offers.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfdebug.problems.base import Problem, TestCase
from selfdebug.sandbox import isolation

REPO = Path(__file__).resolve().parents[2]

PROGRAM = '''
import os
import numpy
import yaml

def f():
    here = os.path.dirname(numpy.__file__)
    try:
        open(os.path.join(here, "written-by-sandbox"), "w").close()
        writable = True
    except OSError:
        writable = False
    return [here, int(numpy.arange(5).sum()), os.path.dirname(yaml.__file__), writable,
            os.path.exists(SECRET), sorted(os.listdir(os.path.dirname(SECRET)))]
'''

DRIVER = '''
import json, sys
from selfdebug.problems.base import Problem
from selfdebug.sandbox import Job, Sandbox, SandboxConfig
problem, levels = Problem.from_dict(json.loads(sys.argv[1])), json.loads(sys.argv[2])
out = {"prefix": sys.prefix}
for level in levels:
    with Sandbox(SandboxConfig(workers=1, force_level=level, run_timeout_s=20.0)) as sb:
        r = sb.run([Job(program=problem.reference, problem=problem)])[0]
    out[level] = {"status": r.status, "feedback": r.feedback}
print(json.dumps(out))
'''


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same files, no download and no 70 MB copy
    except OSError:
        shutil.copy2(src, dst)


def _levels() -> list[str]:
    top = isolation.isolation_level()
    out = [top] if top != "rlimits" else []  # rlimits hides nothing: there is nothing to test
    if top.startswith("root-ns") and isolation._probe(["unshare", "--user", "--map-root-user",
                                                       *isolation.NS_FLAGS, "true"]):
        out.append("user-ns")
    return out


@pytest.fixture(scope="module")
def checkout_venv() -> Iterator[dict[str, Path]]:
    if not _levels():
        pytest.skip("no namespace isolation on this machine: nothing is hidden")
    root = Path(tempfile.mkdtemp(prefix="selfdebug-venv-", dir="/tmp"))
    try:
        checkout = root / "checkout"
        venv = checkout / ".venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                       check=True, capture_output=True, text=True).stdout.strip())
        import numpy

        ours = Path(numpy.__file__).resolve().parent.parent
        for name in ("numpy", "numpy.libs"):
            if (ours / name).is_dir():
                shutil.copytree(ours / name, site_dir / name, copy_function=_link_or_copy)
        outer = [p for p in site.getsitepackages() if Path(p, "yaml").is_dir()]
        (site_dir / "_outer.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
        secret = checkout / "secret.txt"
        secret.write_text("the checkout beside .venv stays hidden\n")
        yield {"python": python, "site": site_dir, "outer": Path(outer[0]), "secret": secret, "checkout": checkout}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sandbox_run_from_a_venv_under_tmp_imports_numpy_from_it(checkout_venv: dict[str, Path]) -> None:
    v = checkout_venv
    levels = _levels()
    # numpy from the venv under /tmp, a package its .pth file layers on, nothing writable, and the checkout
    # beside .venv still hidden
    expected = [str(v["site"] / "numpy"), 10, str(v["outer"] / "yaml"), False, False, [".venv"]]
    problem = Problem(task_id="t/venv", benchmark="t", prompt="", entry_point="f", style="full",
                      reference=PROGRAM.replace("SECRET", repr(str(v["secret"]))),
                      tests=[TestCase("f()", expected)])
    proc = subprocess.run([str(v["python"]), "-c", DRIVER, json.dumps(problem.to_dict()), json.dumps(levels)],
                          cwd=v["checkout"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["prefix"].startswith("/tmp/"), out["prefix"]  # the harness really runs from under /tmp
    for level in levels:
        assert out[level]["status"] == "passed", f"{level}: {out[level]['feedback']}"
