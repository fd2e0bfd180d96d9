"""What runs inside the confined child: load the program, evaluate each test, send plain values out.

Everything here happens after confinement, in a process the candidate controls: nothing sent from here
is trusted as a verdict. Values are serialised to plain data and compared by the harness, which alone
knows the expected values; the only record that means "passed" is the script-mode success record, which
carries a per-run secret and is labelled ``trust="script"``.
"""

from __future__ import annotations

import base64
import builtins
import errno
import json
import marshal
import os
import sys
import time
from typing import Any, NoReturn

from selfdebug.plain import NotPlain, TooLarge, decode, encode

RESULT_FD = 3
SECRET_FD = 4


_pending: list[str] = []
_compact = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps(x, separators=...)`` builds a new encoder on every call: a microsecond per test."""


def _send_value(i: int, enc: Any, t: float, flush: bool = True) -> None:
    """A value travels as a header line and then one payload line, which the fork server forwards without
    parsing (values can be tens of MB; parsing them there would cost time and memory). The header is written
    in the exact form the fork server reads without a JSON parser (``forkserver.read_event``)."""
    _pending.append(f'{{"ev":"value","i":{i},"t":{t!r}}}')
    _send_raw(_compact(enc), flush)


def _send_start(i: int) -> None:
    """Test ``i`` starts: written at once, with the previous test's result queued before it (one write per
    test); the fork server measures the test's deadline from when it reads this line."""
    _pending.append(f'{{"ev":"start","i":{i}}}')
    _flush()


def _send_raw(line: str, flush: bool) -> None:
    _pending.append(line)
    if flush:
        _flush()


def _send(obj: dict[str, Any], flush: bool = True) -> None:
    """Queue an event; write the queue out when ``flush``. Results are queued and go out together with the
    next ``start`` (one write, one wake-up of the fork server per test), whose arrival time is what the
    fork server's per-test deadline is measured from."""
    _send_raw(_compact(obj), flush)


def _flush() -> None:
    data = ("\n".join(_pending) + "\n").encode()
    _pending.clear()
    view = memoryview(data)
    while view:
        n = os.write(RESULT_FD, view)
        view = view[n:]


_PROGRAM_LINES: list[str] = []
"""The candidate's source, to point an error at its line (a bare ``AssertionError`` says nothing)."""


def _where(exc: BaseException) -> str:
    """`` (program.py, line N: <source>)`` for the innermost frame in the candidate's program, if any."""
    try:
        tb, line = exc.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "program.py":
                line = tb.tb_lineno
            tb = tb.tb_next
        if line is None or not 0 < line <= len(_PROGRAM_LINES):
            return ""
        return f" (program.py, line {line}: {_PROGRAM_LINES[line - 1].strip()[:200]})"
    except BaseException:  # noqa: BLE001 - best effort: the message matters more than the location
        return ""


def _describe(exc: BaseException) -> str:
    """Paper-style message: ``NameError: name 'x' is not defined``, with the candidate's failing line."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not hide the error type
        text = "<unprintable message>"
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name) + _where(exc)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output"  # the file-size limit (stdout, stderr or a file) was hit
    return "error"


def _fresh_globals(name: str) -> dict[str, Any]:
    return {"__name__": name, "__builtins__": builtins, "__file__": "program.py"}


def _load(req: dict[str, Any], name: str) -> dict[str, Any] | None:
    g = _fresh_globals(name)
    _PROGRAM_LINES[:] = req["program"].splitlines()
    _send({"ev": "load"})
    try:
        if req.get("setup"):
            exec(compile(req["setup"], "setup.py", "exec"), g)
        exec(compile(req["program"], "program.py", "exec"), g)
    except BaseException as e:  # noqa: BLE001 - SystemExit too: the program may not exit before the tests
        if isinstance(e, SystemExit):
            _send({"ev": "load_error", "error": f"SystemExit: program exited ({e.code!r}) before the tests",
                   "kind": "error"})
        else:
            _send({"ev": "load_error", "error": _describe(e), "kind": _kind(e)})
        return None
    _send({"ev": "loaded"}, flush=False)
    return g


def compile_calls(calls: list[str]) -> str | None:
    """Harness side: the test calls compiled once (per problem and suite) and marshalled, base64 text for the
    request: loading them costs the child well under a microsecond a test, compiling them ~15. Compiled here,
    in this module, so that the code objects are exactly what the child's own ``compile`` would make (same
    inherited future flags); the fork server runs the harness's interpreter, so the marshal format matches.
    None if a call does not compile: the child then compiles each one and reports the error on its test."""
    try:
        codes = [compile(c, f"test_{i}", "eval", optimize=0) for i, c in enumerate(calls)]
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return None
    return base64.b64encode(marshal.dumps(codes)).decode("ascii")


def _run_structured(req: dict[str, Any]) -> None:
    codes = marshal.loads(base64.b64decode(req["code"])) if req.get("code") else None
    g = _load(req, "__candidate__")
    if g is None:
        return
    for i, test in enumerate(req["tests"]):
        _send_start(i)
        t0 = time.perf_counter()
        try:
            value = eval(codes[i] if codes is not None else compile(test["call"], f"test_{i}", "eval"), g)
            t = time.perf_counter() - t0
            try:
                enc = encode(value, budget=[req["max_value_bytes"]])
            except TooLarge as e:
                _send({"ev": "error", "i": i, "error": str(e), "kind": "output"}, flush=False)
                continue
            except NotPlain as e:
                _send({"ev": "error", "i": i, "error": str(e), "kind": "nonplain"}, flush=False)
                continue
            except RecursionError:
                _send({"ev": "error", "i": i, "error": "returned value nested too deeply", "kind": "nonplain"},
                      flush=False)
                continue
            _send_value(i, enc, t, flush=False)
        except BaseException as e:  # noqa: BLE001
            _send({"ev": "error", "i": i, "error": _describe(e), "kind": _kind(e)}, flush=False)
            if req.get("stop"):
                return


def _run_stdout(req: dict[str, Any]) -> None:
    """Each test runs the whole program in a fresh grandchild with ``call`` as standard input."""
    _send({"ev": "load"})
    _send({"ev": "loaded"})
    for i, test in enumerate(req["tests"]):
        inp, out, err = f"in_{i}.txt", f"out_{i}.txt", f"err_{i}.txt"
        with open(inp, "w") as f:
            f.write(test["call"])
        _send({"ev": "start", "i": i})
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(RESULT_FD)  # the program needs neither channel
                os.close(SECRET_FD)
                fd = os.open(inp, os.O_RDONLY)
                os.dup2(fd, 0)
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)
                sys.stdin = open(0, closefd=False)
                sys.stdout = open(1, "w", closefd=False)
                g = _fresh_globals("__main__")
                if req.get("setup"):
                    exec(compile(req["setup"], "setup.py", "exec"), g)
                exec(compile(req["program"], "program.py", "exec"), g)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException as e:  # noqa: BLE001
                with open(err, "w") as f:
                    f.write(_kind(e) + " " + _describe(e))
                code = 1
            try:
                sys.stdout.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.path.exists(err):
            with open(err) as f:
                kind, _, msg = f.read(4096).partition(" ")
            _send({"ev": "error", "i": i, "error": msg, "kind": kind})
        elif os.WIFSIGNALED(status):
            _send({"ev": "signal", "i": i, "sig": os.WTERMSIG(status)})
        else:
            with open(out, "rb") as f:
                text = f.read(req["max_value_bytes"] + 1).decode("utf-8", "replace")
            _send_value(i, text, time.perf_counter() - t0)


class _PlainWrapper:
    """Wraps the candidate for assert scripts: every return value is rebuilt from plain data, so no
    object with a forged ``__eq__`` (or other dunder) reaches the script's comparisons."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return decode(json.loads(json.dumps(encode(self._fn(*args, **kwargs)))))


def _run_script(req: dict[str, Any]) -> None:
    g = _load(req, "__candidate__")
    if g is None:
        return
    entry = req.get("entry") or ""
    _send({"ev": "start", "i": 0})
    t0 = time.perf_counter()
    try:
        if entry not in g:
            raise NameError(f"name '{entry}' is not defined")
        wrapped = _PlainWrapper(g[entry])
        g[entry] = wrapped
        exec(compile(req["script"], "test.py", "exec"), g)
        check = g.get("check")
        if req.get("call_check") and callable(check):
            check(wrapped)
    except BaseException as e:  # noqa: BLE001
        _send({"ev": "error", "i": 0, "error": _describe(e), "kind": _kind(e)})
        return
    secret = os.read(SECRET_FD, 256).decode()
    _send({"ev": "script_ok", "i": 0, "secret": secret, "t": time.perf_counter() - t0})


def run_child(req: dict[str, Any]) -> NoReturn:
    """Entry point in the confined child; never returns."""
    code = 0
    try:
        mode = req["mode"]
        if mode == "structured":
            _run_structured(req)
        elif mode == "stdout":
            _run_stdout(req)
        else:
            _run_script(req)
        _send({"ev": "done"})
    except BaseException:  # noqa: BLE001 - the result channel may be closed by the candidate
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)
