"""The executed evaluation notebook as a person sees it: opened in JupyterLab in headless Chromium
(selfdebug.report.screenshot), after a papermill run on the smoke profile. Needs Debian's ``chromium``."""

import json
import re
import struct

import pytest

from selfdebug.config import REPO_ROOT
from selfdebug.report.screenshot import find_chromium, render_notebook

pytestmark = pytest.mark.slow
papermill = pytest.importorskip("papermill")

WIDTH, HEIGHT = 1200, 7000  # tall enough to hold the whole smoke notebook, so every output is on screen


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    if find_chromium() is None:
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    from selfdebug.generate.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("render")
    model = build_tiny_model(tmp / "model")
    out = tmp / "06_evaluate.ipynb"
    papermill.execute_notebook(
        str(REPO_ROOT / "notebooks" / "06_evaluate.ipynb"), str(out),
        parameters={"profile": "smoke", "run_dir": str(tmp / "run"), "overrides": [f"model.id={model}"]},
        kernel_name="python3", progress_bar=False, cwd=str(REPO_ROOT),
    )
    return out


def test_jupyterlab_shows_tables_figures_and_records_without_stderr(executed, tmp_path):
    shot = render_notebook(executed, tmp_path / "shot.png", width=WIDTH, height=HEIGHT)
    seen, dom = shot.seen, shot.dom
    # nothing on red: no log lines, no text progress bars, no "IProgress not found"
    assert seen["stderr"] == 0, "JupyterLab shows stderr output"
    assert "IProgress not found" not in dom and "Error displaying widget" not in dom
    assert not re.search(r"INFO:? ?selfdebug\.", dom), "JupyterLab shows INFO log lines"
    # every figure the notebook embeds is on the page and has loaded
    nb = json.loads(executed.read_text())
    pngs = sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert pngs >= 3 and seen["images"] == pngs and seen["loaded"]
    # the summary, Tables 2-4 (rendered from Markdown), the outcomes frame and the records table
    assert "Full log:" in dom
    for title in ("Table 2: pass@k", "Table 3: overall pass@k", "Table 4: success-refinement rate"):
        assert title in dom, title
    headers = set(re.findall(r"<th[^>]*>([^<]*)</th>", dom))
    assert {"Approach", "MBPP pass@1", "HumanEval pass@1", "benchmark", "chain", "round", "status", "feedback",
            "explanation", "code"} <= headers, headers
    assert seen["tables"] >= 6  # summary, tables 2-4, outcomes, records
    # the records table comes last, and the code it lists keeps its line breaks
    last_table = dom.rsplit("<table", 1)[1]
    assert "failing Explain + Refine attempts" in last_table and "pre-wrap" in last_table
    # a PNG of the requested size was written
    head = shot.png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (WIDTH, HEIGHT)
