"""Harness side of one warm worker: starts its fork server, sends a request, and enforces the outer bound.

If the fork server does not answer within the bound (or dies), its whole process group and namespace are
killed and a fresh one is started: no candidate can hold the harness past ``bound``.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from selfdebug.sandbox import isolation

log = logging.getLogger(__name__)
MAX_REPLY_BYTES = 1 << 30
"""A reply carries at most ``max_result_bytes`` of values, re-encoded; beyond this the worker is broken."""


OnPartial = Callable[[list[dict[str, Any]], list[bytes]], bool]
"""Sees a streamed job's events and payloads so far; True: a test failed, stop the job."""


class WorkerError(RuntimeError):
    """The fork server failed (a sandbox failure, never a model failure). ``died``: it was gone before
    answering (worth one retry on a fresh worker); otherwise it overran its bound."""

    def __init__(self, message: str, died: bool = False) -> None:
        super().__init__(message)
        self.died = died


class Worker:
    def __init__(self, index: int, level: str, conf: dict[str, Any], memory_bytes: int, pids: int) -> None:
        self.index = index
        self.level = level
        self.conf = dict(conf)
        self.uid = isolation.UID_BASE + index if level.startswith("root-ns") else None
        self.memory_bytes = memory_bytes
        self.pids = pids
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroups: list[str] = []
        self.scratch: str | None = None
        self.restarts = 0
        self._buf = bytearray()

    def start(self) -> None:
        conf = dict(self.conf, level=self.level, uid=self.uid)
        if self.level == "root-ns-cgroup":
            name = f"selfdebug-sandbox-{os.getpid()}-{self.index}-{self.restarts}"
            self.cgroups = isolation.make_cgroups(name, self.memory_bytes, self.pids)
            conf["cgroups"] = self.cgroups
        if self.level == "rlimits":
            self.scratch = tempfile.mkdtemp(prefix="selfdebug-sandbox-")
            conf["scratch"] = self.scratch
        # -S: no site hooks (editable finders, .pth imports) in the warm interpreter, which keeps it small
        # and cheap to fork; every site-packages folder of the harness (those .pth files add included) stays
        # importable through PYTHONPATH.
        cmd = [*isolation.launch_prefix(self.level), sys.executable, "-S", "-m", "selfdebug.sandbox.forkserver",
               json.dumps(conf)]
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONPATH": os.pathsep.join([repo, *isolation.package_paths()])}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True, env=env, cwd="/")
        hello = json.loads(self._read_line(time.monotonic() + 60))
        if not hello.get("ready"):
            self.kill()
            raise WorkerError(f"worker {self.index} failed to start at level {self.level}: {hello.get('error')}")

    def _read_reply(self, deadline: float, on_partial: OnPartial | None = None,
                    job_id: object = None) -> dict[str, Any]:
        """A reply: a JSON header line, then ``n_payloads`` raw value lines (kept as bytes, parsed later).
        A streamed job's partial replies come first: their events and payloads are gathered into the final
        reply, and ``on_partial(events, payloads)`` sees them as they come; once it says a test failed, the
        job is stopped (fast check)."""
        events: list[dict[str, Any]] = []
        payloads: list[bytes] = []
        stop_sent = False
        while True:
            reply = json.loads(self._read_line(deadline))
            if not isinstance(reply, dict):
                raise ValueError("reply is not an object")
            n = reply.get("n_payloads", 0)
            payloads += [self._read_line(deadline) for _ in range(n if isinstance(n, int) else 0)]
            got = reply.get("events", [])
            events += got if isinstance(got, list) else []
            if not reply.get("partial"):
                reply["events"], reply["payloads"] = events, payloads
                return reply
            if on_partial is not None and not stop_sent and on_partial(events, payloads):
                stop_sent = True
                self._stop(job_id)

    def _stop(self, job_id: object) -> None:
        """Ask the fork server to end the running job; best effort (the job ends by itself anyway), and
        never blocking: the fork server may be busy writing its next partial reply to us."""
        assert self.proc is not None and self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        data = (json.dumps({"stop": job_id}) + "\n").encode()
        os.set_blocking(fd, False)
        try:
            os.write(fd, data)  # under PIPE_BUF bytes: written whole or not at all
        except OSError:  # a full pipe (BlockingIOError) or a dead worker: the job just runs on
            pass
        finally:
            os.set_blocking(fd, True)

    def _read_line(self, deadline: float) -> bytes:
        """The next line; replies to pipelined requests may arrive together, so the rest is kept."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = self._buf
        scanned = 0  # bytes already known to hold no newline (a long reply arrives in many chunks)
        while True:
            cut = buf.find(b"\n", scanned)
            if cut >= 0:
                line = bytes(buf[:cut])
                del buf[: cut + 1]
                return line
            scanned = len(buf)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"worker {self.index} gave no answer within its bound")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerError(f"worker {self.index} died (exit {self.proc.poll()})", died=True)
            buf += chunk
            if len(buf) > MAX_REPLY_BYTES:
                raise WorkerError(f"worker {self.index} reply too large")

    def send(self, req: dict[str, Any] | bytes) -> None:
        """Queue one job (a request, or its encoded line) on the fork server, which runs them in order;
        restarts a dead worker first."""
        if self.proc is None or self.proc.poll() is not None:
            self.restart()
        assert self.proc is not None and self.proc.stdin is not None
        data = req if isinstance(req, bytes) else (json.dumps(req) + "\n").encode()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError as e:
            self._fail(e)
            raise WorkerError(f"worker {self.index} died: {e}", died=True) from None

    def receive(self, bound_s: float, on_partial: OnPartial | None = None, job_id: object = None) -> dict[str, Any]:
        """The reply to the oldest queued job, within ``bound_s``; on failure the worker is restarted (its
        queued jobs are lost) and ``WorkerError`` raised. ``on_partial``: see ``_read_reply``."""
        try:
            return self._read_reply(time.monotonic() + bound_s, on_partial, job_id)
        except (WorkerError, OSError, ValueError) as e:
            self._fail(e)
            raise WorkerError(str(e), died=getattr(e, "died", isinstance(e, OSError))) from None

    def request(self, req: dict[str, Any], bound_s: float, on_partial: OnPartial | None = None) -> dict[str, Any]:
        self.send(req)
        return self.receive(bound_s, on_partial, req.get("id"))

    def _fail(self, err: BaseException) -> None:
        log.warning("sandbox worker %d failed (%s); restarting it", self.index, err)
        try:
            self.restart()
        except WorkerError as e:  # the next send tries again; its job then gets a sandbox_error
            log.error("sandbox worker %d could not restart: %s", self.index, e)
            self.kill()

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def kill(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("sandbox worker %d did not die", self.index)
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f and f.close()
                except OSError:
                    pass
            self.proc = None
        self._buf = bytearray()
        if self.cgroups:
            time.sleep(0.05)
            isolation.remove_cgroups(self.cgroups)
            self.cgroups = []
        if self.scratch:
            import shutil

            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
