"""A teacher behind an OpenAI-compatible endpoint that errors and times out (a real local HTTP server in a
thread): failures are recorded and counted, finished replies are kept, and a rerun asks only for what failed."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_collect_helpers import TASKS, ScriptedModel, config, task_of

from selfdebug.collect.filter import run_filter
from selfdebug.collect.refine import run_refine
from selfdebug.collect.sample import run_sample
from selfdebug.generate.openai import OpenAIBackend
from selfdebug.io import read_jsonl
from selfdebug.sandbox import Sandbox, SandboxConfig


class Teacher:
    """Fixes every task, except while ``broken``: task 602 gets HTTP 500, task 603 an answer too late."""

    def __init__(self) -> None:
        self.broken = True
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def handler(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                num = task_of(body["messages"][0]["content"])
                with state.lock:
                    state.asked.append(num)
                try:
                    if state.broken and num == 602:
                        self.send_response(500)
                        self.end_headers()
                        self.wfile.write(b'{"error": "internal"}')
                        return
                    if state.broken and num == 603:
                        time.sleep(1.0)  # past the client's timeout
                    text = f"The operator is wrong.\n\n```python\n{TASKS[num][2]}```"
                    data = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": text}}],
                                       "usage": {"prompt_tokens": 10, "completion_tokens": 10}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        return Handler


@pytest.fixture
def server():
    teacher = Teacher()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), teacher.handler())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield teacher, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_endpoint_errors_and_timeouts_are_recorded_and_retried_on_rerun(tmp_path, server):
    teacher, url = server
    cfg = config(tmp_path)
    run = tmp_path / "run"
    endpoint = OpenAIBackend("teacher", base_url=url, max_retries=1, backoff_s=0.01, timeout_s=0.3, concurrency=2)
    with Sandbox(SandboxConfig(workers=1, run_timeout_s=20.0)) as box:
        run_sample(cfg, run, backend=ScriptedModel(), sandbox=box)
        first = run_refine(cfg, run, backend=endpoint, sandbox=box)
        # 602's two requests fail (500), then 603's first times out: three in a row, the teacher is given up
        assert first["teacher_errors"] == 4 and not first["complete"]
        assert not (run / "refine" / "done.json").exists()
        attempts = {a["record_id"]: a for a in read_jsonl(run / "refine" / "attempts.jsonl")}
        errors = sorted((rid.split("/")[1], a["teacher_error"]) for rid, a in attempts.items() if a["teacher_error"])
        assert [num for num, _ in errors] == ["602", "602", "603", "603"]
        assert all("HTTP 500" in e for num, e in errors if num == "602")
        assert {"timed out" in e or "given up" in e for num, e in errors if num == "603"} == {True}
        assert all(len(a["replies"]) == 3 for a in attempts.values() if "/601/" in a["record_id"])
        # the dataset can be built from what there is: the missing replies are counted, not hidden
        partial = run_filter(cfg, run, backend=endpoint, sandbox=box)
        assert partial["teacher_errors"] == 4 and not partial["complete"]
        assert json.loads((run / "results.json").read_text())["counts"]["teacher_errors"] == 4
        assert not (run / "filter" / "done.json").exists()
        teacher.broken = False
        teacher.asked.clear()
        final = run_filter(cfg, run, backend=endpoint, sandbox=box)
    assert final["complete"] and final["teacher_errors"] == 0
    assert sorted(set(teacher.asked)) == [602, 603] and len(teacher.asked) == 4 * 3  # only what failed, per sample
    records = list(read_jsonl(run / "data" / "refinements.jsonl"))
    assert {r["problem_id"]: r["n_verified"] for r in records if r["mode"] == "explain_refine"} == {
        "MBPP/601": 1, "MBPP/602": 1, "MBPP/603": 1}  # three identical replies: one pair, two duplicates
