"""The rating notebook as a rater sees it, in a real browser: ``figures/human_rating_notebook.png``.

    python -m selfdebug.human.screenshot [OUT.png] [--rater NAME] [--dom OUT.html]

Runs ``notebooks/09_human_eval.ipynb`` with papermill on the ``cpu`` profile's records (the committed ones
when ``runs/cpu/evaluate`` has none) (a temporary study
folder, a fixed rater name, so the widget shows that rater's first item with the rubric), then opens the
executed notebook in JupyterLab in headless Chromium with the project's shared helper
(:func:`selfdebug.report.screenshot.render_notebook`). JupyterLab draws the widgets from the widget state
papermill saved in the notebook, i.e. the very HTML the live widget shows. Three things make that work:

- JupyterLab draws widget views only in a *trusted* notebook, so the executed copy is signed, in a
  temporary Jupyter data folder (``JUPYTER_DATA_DIR``) that the helper's JupyterLab inherits: the user's
  own notebook signatures are neither read nor written.
- The helper waits until the cells, outputs and images are on the page; widget views come later (once the
  page's kernel is up), so here it also waits for every widget view the notebook saved.
- Widgets restored from saved state are not connected to the kernel that made them, and ipywidgets marks
  each with a red broken-link icon; a live session has no such icons, so a style output hides them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfdebug.config import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "09_human_eval.ipynb"
PNG = REPO_ROOT / "figures" / "human_rating_notebook.png"
RATER = "Example rater"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HIDE_DISCONNECTED = "<style>.jupyter-widgets-disconnected::before{content:none!important;display:none!important}</style>"


def _prepare(executed: Path, data_dir: Path) -> None:
    """Add the style output after the first widget view, then sign the notebook in ``data_dir``."""
    import nbformat
    from nbformat.sign import NotebookNotary

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs):
            cell.outputs.append(nbformat.v4.new_output("display_data", data={"text/html": HIDE_DISCONNECTED}))
            break
    else:
        raise RuntimeError(f"{executed}: the executed rating notebook shows no widget")
    data_dir.mkdir(parents=True, exist_ok=True)
    NotebookNotary(data_dir=str(data_dir)).sign(nb)
    nbformat.write(nb, executed)


@contextmanager
def _jupyter_data_dir(path: Path) -> Iterator[None]:
    old = os.environ.get("JUPYTER_DATA_DIR")
    os.environ["JUPYTER_DATA_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("JUPYTER_DATA_DIR", None)
        else:
            os.environ["JUPYTER_DATA_DIR"] = old


def _widget_views(notebook: Path) -> int:
    """How many saved widget views the executed notebook holds: the page must draw them all."""
    nb = json.loads(Path(notebook).read_text())
    return sum(WIDGET_VIEW in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []))


@dataclass
class RatingShot:
    png: Path
    dom: str
    seen: dict[str, Any]
    first_item: dict[str, Any]
    """The item the rater sees first (the one on the screenshot)."""


def render_rating_notebook(png: str | Path = PNG, *, rater: str = RATER, width: int = 1500, height: int = 2300,
                           workdir: str | Path | None = None) -> RatingShot:
    """Execute the rating notebook for ``rater`` on the committed records and capture it in Chromium."""
    import papermill

    from selfdebug.human.sample import read_items
    from selfdebug.human.widgets import rater_order
    from selfdebug.report.screenshot import render_notebook

    with tempfile.TemporaryDirectory(prefix="selfdebug-human-shot-") as tmp_name:
        tmp = Path(workdir) if workdir else Path(tmp_name)
        study = tmp / "study"
        executed = tmp / NOTEBOOK.name
        papermill.execute_notebook(
            str(NOTEBOOK), str(executed), kernel_name="python3", progress_bar=False, cwd=str(REPO_ROOT),
            # no records parameter: the injected parameters cell, on the page too, names no model or folder
            parameters={"profile": "cpu", "run_dir": str(study), "rater": rater},
        )
        items = [it for it in read_items(study / "items.jsonl") if not it["empty"]]
        _prepare(executed, tmp / "jupyter-data")
        with _jupyter_data_dir(tmp / "jupyter-data"):
            shot = render_notebook(executed, png, width=width, height=height,
                                   extra_expected={"widgets": _widget_views(executed)})
    return RatingShot(shot.png, shot.dom, shot.seen, rater_order(items, rater)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("png", nargs="?", type=Path, default=PNG)
    ap.add_argument("--rater", default=RATER)
    ap.add_argument("--dom", type=Path, help="also write the rendered notebook's HTML here")
    args = ap.parse_args(argv)
    from selfdebug.report.screenshot import run_cli

    return run_cli(lambda: render_rating_notebook(args.png, rater=args.rater), args.dom)


if __name__ == "__main__":
    raise SystemExit(main())
