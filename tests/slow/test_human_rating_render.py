"""The rating notebook as a rater sees it in JupyterLab in headless Chromium (selfdebug.human.screenshot,
the script that makes figures/human_rating_notebook.png): the widget is drawn with the rater's first item,
the rubric and both scales, and nothing names the model or its records folder. Needs Debian's chromium."""

import html
import re
import struct

import pytest

from selfdebug.human.rubric import LEVELS
from selfdebug.report.screenshot import find_chromium

pytestmark = pytest.mark.slow
pytest.importorskip("papermill")


def test_the_rating_notebook_renders_an_item_with_the_rubric(tmp_path):
    if find_chromium() is None:
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    from selfdebug.human.screenshot import render_rating_notebook

    shot = render_rating_notebook(tmp_path / "shot.png", rater="Render Test", width=1400, height=2400, workdir=tmp_path)
    dom, item = shot.dom, shot.first_item
    assert shot.seen["widgets"] > 0 and shot.seen["stderr"] == 0
    assert "Error displaying widget" not in dom and "VBox(children=" not in dom  # a drawn widget, not its repr
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    for field in ("problem", "wrong_code", "feedback", "explanation"):
        first_line = next(line for line in item[field].splitlines() if line.strip())
        assert first_line.strip() in text, field
    assert "Item 1 of" in text and "Rating as Render Test" in text
    assert LEVELS["correctness"][1] in text and LEVELS["helpfulness"][5] in text
    assert "Correctness" in text and "Helpfulness" in text and "Skip" in text
    assert "figures/results" not in text and item["attempt_id"] not in text
    head = shot.png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1400, 2400)
