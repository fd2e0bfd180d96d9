"""An executed notebook as a person sees it: opened in JupyterLab in headless Chromium, captured as a PNG,
with the rendered page's DOM for checks (``tests/slow/test_notebook_render.py``; ``make screenshot``).

    python -m selfdebug.report.screenshot NOTEBOOK.ipynb OUT.png [--dom OUT.html] [--width W --height H]

JupyterLab runs on 127.0.0.1, on a free port, behind a random token, with its own settings, workspaces and
runtime files in a temporary folder (no news or update checks, every cell attached to the page) and serves
a copy of the notebook, so nothing the user has is read or changed. Chromium (Debian: ``apt-get install
chromium``) is driven through its DevTools protocol, with the websocket client of tornado (a JupyterLab
dependency): the capture waits until every cell and output of the notebook is on the page and every image
has loaded, instead of sleeping for a guessed time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfdebug.io import atomic_write_bytes, atomic_write_text

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# What is on the page: the open notebook's cells, outputs, images (loaded or not), tables, stderr outputs
# (JupyterLab shows them on red) and widget views.
_PROBE = """(() => {
  const nb = document.querySelector('.jp-NotebookPanel .jp-Notebook');
  if (!nb) return null;
  const imgs = [...nb.querySelectorAll('.jp-OutputArea-output img')];
  return {cells: nb.querySelectorAll('.jp-Cell').length,
          outputs: nb.querySelectorAll('.jp-OutputArea-child').length,
          images: imgs.length, loaded: imgs.every(i => i.complete && i.naturalWidth > 0),
          tables: nb.querySelectorAll('.jp-OutputArea-output table').length,
          stderr: nb.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
          widgets: nb.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length};
})()"""


class RenderError(RuntimeError):
    """The notebook could not be rendered: no Chromium, JupyterLab did not start, or the page never settled."""


@dataclass
class Rendered:
    png: Path
    dom: str
    """The rendered notebook's HTML (its ``.jp-Notebook`` element) once it had settled."""
    seen: dict[str, Any]
    """What was on the page when it was captured: cells, outputs, images (and whether they had loaded),
    tables in outputs, stderr outputs, widget views."""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop a process started here (in its own session), then whatever it left in that session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # JupyterLab shuts its kernels down on SIGTERM
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RenderError(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a local URL)
                return
        except OSError:
            time.sleep(0.3)
    raise RenderError(f"JupyterLab did not answer {url.split('?')[0]} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _expected(notebook: Path) -> dict[str, int]:
    """What the page must hold once rendered. JupyterLab shows consecutive stream outputs of one cell that
    go to the same stream (stdout or stderr) as one output."""
    nb = json.loads(notebook.read_text())
    shown, images = 0, 0
    for cell in nb["cells"]:
        previous = None
        for o in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            stream = o.get("name") if o.get("output_type") == "stream" else None
            shown += not (stream and stream == previous)
            images += "image/png" in o.get("data", {})
            previous = stream
    return {"cells": len(nb["cells"]), "outputs": shown, "images": images}


async def _capture(devtools_port: int, url: str, want: dict[str, int], width: int, height: int,
                   timeout_s: float) -> tuple[bytes, str, dict[str, Any]]:
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=10) as resp:  # noqa: S310
        pages = [t for t in json.load(resp) if t.get("type") == "page"]
    if not pages:
        raise RenderError("chromium has no page to drive")
    conn = await websocket_connect(pages[0]["webSocketDebuggerUrl"], max_message_size=1 << 28)
    ids = itertools.count(1)

    async def call(method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(ids)
        await conn.write_message(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # events (none are enabled) and other replies are skipped
            raw = await conn.read_message()
            if raw is None:
                raise RenderError(f"chromium closed the DevTools connection during {method}")
            reply = json.loads(raw)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RenderError(f"DevTools {method}: {reply['error']}")
                return reply["result"]

    async def evaluate(expression: str) -> Any:
        return (await call("Runtime.evaluate", expression=expression, returnByValue=True))["result"].get("value")

    try:
        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        deadline, seen, stable = time.monotonic() + timeout_s, None, 0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = await evaluate(_PROBE)
            # every count but the outputs must be reached (outputs may legitimately fall short, see below)
            ready = bool(now) and now["loaded"] and all(now.get(k, 0) >= v for k, v in want.items() if k != "outputs")
            stable = stable + 1 if ready and now == seen else 0
            seen = now
            # Settled: three identical looks in a row once every output is there (fonts, image sizes), or six
            # when fewer are: an output JupyterLab cannot render (a widget whose state was not saved) never comes
            if ready and stable >= (3 if now["outputs"] >= want["outputs"] else 6):
                break
        else:
            raise RenderError(f"the notebook did not finish rendering within {timeout_s:.0f} s: "
                              f"expected {want}, the page had {seen}")
        shot = await call("Page.captureScreenshot", format="png")
        dom = await evaluate("document.querySelector('.jp-NotebookPanel .jp-Notebook').outerHTML")
        return base64.b64decode(shot["data"]), dom, seen
    finally:
        conn.close()


def render_notebook(notebook: str | Path, png: str | Path, *, width: int = 1400, height: int = 2400,
                    timeout_s: float = 120.0, extra_expected: dict[str, int] | None = None) -> Rendered:
    """Open ``notebook`` in JupyterLab in headless Chromium; write the view to ``png``; return it with the DOM.

    ``extra_expected``: more things the page must show before the capture, as counts by name (e.g. drawn
    widget views); they are waited for like the cells and outputs."""
    notebook, png = Path(notebook), Path(png)
    if not notebook.is_file():
        raise FileNotFoundError(f"render_notebook: no notebook at {notebook}")
    chromium = find_chromium()
    if chromium is None:
        raise RenderError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); on Debian: apt-get install chromium")
    want = {**_expected(notebook), **(extra_expected or {})}
    with tempfile.TemporaryDirectory(prefix="selfdebug-render-") as tmp_name:
        tmp = Path(tmp_name)
        served = tmp / "served"
        served.mkdir()
        shutil.copy2(notebook, served / notebook.name)
        for rel, values in LAB_SETTINGS.items():
            (tmp / "settings" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "settings" / rel).write_text(json.dumps(values))
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
               "JUPYTER_CONFIG_DIR": str(tmp / "config")}
        port, token = _free_port(), base64.b32encode(os.urandom(20)).decode().lower()
        lab_log = tmp / "lab.log"
        lab_cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                   f"--ServerApp.root_dir={served}"]
        root = os.geteuid() == 0  # containers often run as root; JupyterLab and Chromium then need a flag
        with open(lab_log, "wb") as lab_out:
            lab = subprocess.Popen(lab_cmd + (["--allow-root"] if root else []), env=env, stdout=lab_out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        browser = None
        try:
            _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", lab, lab_log, timeout_s=60)
            profile = tmp / "chromium"
            flags = ["--headless", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
                     f"--user-data-dir={profile}", f"--window-size={width},{height}"]
            if root:
                flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
            browser = subprocess.Popen([chromium, *flags, "about:blank"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            active = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (active.is_file() and active.read_text().strip()):
                if browser.poll() is not None or time.monotonic() > deadline:
                    raise RenderError(f"{chromium} did not open its DevTools port (exit code {browser.poll()})")
                time.sleep(0.2)
            devtools_port = int(active.read_text().split()[0])
            # /doc/: JupyterLab's single-document view (no side panels); ?reset: no saved workspace
            url = f"http://127.0.0.1:{port}/doc/tree/{notebook.name}?reset&token={token}"
            data, dom, seen = asyncio.run(_capture(devtools_port, url, want, width, height, timeout_s))
        finally:
            if browser is not None:
                _stop(browser, grace_s=5)
            _stop(lab)
    atomic_write_bytes(png, data)
    return Rendered(png=png, dom=dom, seen=seen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--dom", type=Path, help="also write the rendered notebook's HTML here")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    return run_cli(lambda: render_notebook(args.notebook, args.png, width=args.width, height=args.height), args.dom)


def run_cli(render: Callable[[], Any], dom: Path | None) -> int:
    """A screenshot command's end: render, write the DOM if asked, say what was seen; 1 with the reason on
    failure (no Chromium, no notebook, a page that never showed what it must)."""
    try:
        shot = render()
    except (RenderError, FileNotFoundError) as e:
        print(f"screenshot: {e}", file=sys.stderr)
        return 1
    if dom:
        atomic_write_text(dom, shot.dom)
    print(f"{shot.png}: {shot.seen}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
