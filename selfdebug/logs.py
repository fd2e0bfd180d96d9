"""A stage's log goes to its run folder; whoever watches the stage (a notebook, papermill's terminal) sees
only what needs attention.

``with log_to_run_dir(run_dir, "evaluate") as run_log: ...`` appends every record at INFO and above, with
timestamps, to ``run_dir/evaluate.log`` and shows WARNING and above on stderr. Without it, an executed
notebook opens with screens of INFO lines in red above its first table; with it, the notebook shows a
summary (:func:`selfdebug.report.explore.stage_summary`) and the file keeps the whole story, across
invocations (a resumed stage appends, under a header line naming the invocation).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
KEEP_WARNINGS = 20
OWN_HANDLER_LOGGERS = {"transformers": "transformers.utils.logging"}
"""Libraries that log through a stderr handler of their own and do not propagate, and the module that
installs it (on first use, which may be in the middle of a stage, so it is imported first). While a stage
logs to its run folder their records go through the root logger instead: into the file and the summary."""


@dataclass
class RunLog:
    """Where one invocation's log went and what it wrote there."""

    path: Path
    counts: Counter[int] = field(default_factory=Counter)
    """Records written to the file during this invocation, per level number (``logging.INFO``, ...)."""

    warnings_seen: list[str] = field(default_factory=list)
    """The first :data:`KEEP_WARNINGS` records at WARNING and above, formatted (a summary repeats them)."""

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    @property
    def warnings(self) -> int:
        """Records at WARNING and above (errors included)."""
        return sum(n for level, n in self.counts.items() if level >= logging.WARNING)

    @property
    def errors(self) -> int:
        return sum(n for level, n in self.counts.items() if level >= logging.ERROR)


class _CountingHandler(logging.Handler):
    def __init__(self, run_log: RunLog, level: int):
        super().__init__(level)
        self.run_log = run_log
        self.setFormatter(logging.Formatter(CONSOLE_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.run_log.counts[record.levelno] += 1
        if record.levelno >= logging.WARNING and len(self.run_log.warnings_seen) < KEEP_WARNINGS:
            self.run_log.warnings_seen.append(self.format(record))


def _level(value: int | str, what: str) -> int:
    if isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    if not isinstance(level, int):
        raise ValueError(f"log_to_run_dir: {what}={value!r} is not a logging level (DEBUG, INFO, WARNING, ...)")
    return level


def _is_console(handler: logging.Handler) -> bool:
    """A handler that already shows records to a person (a stream that is not a file)."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


@contextmanager
def log_to_run_dir(run_dir: str | Path, name: str, *, level: int | str = "INFO",
                   console_level: int | str = "WARNING") -> Iterator[RunLog]:
    """Send the root logger's records at ``level`` and above to ``run_dir/<name>.log`` while the block runs,
    and those at ``console_level`` and above to stderr (unless a console handler is installed already).

    The root logger's level and handlers are restored on exit. An exception that ends the block is written
    to the file with its traceback (the notebook shows its own), then re-raised.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"log_to_run_dir: name must be a plain file stem such as 'evaluate', got {name!r}")
    file_level, shown_level = _level(level, "level"), _level(console_level, "console_level")
    path = Path(run_dir) / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    run_log = RunLog(path=path)
    root = logging.getLogger()
    # appended, not truncated: the log of a resumed stage keeps the invocations it resumes from
    file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    file_handler.setLevel(file_level)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    counter = _CountingHandler(run_log, file_level)
    added: list[logging.Handler] = [file_handler, counter]
    if not any(_is_console(h) for h in root.handlers):
        # the root logger now has a handler, so logging's last-resort stderr output no longer fires:
        # warnings need a console handler of their own
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(shown_level)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        added.append(console)
    old_level = root.level
    root.setLevel(min(file_level, shown_level))
    for h in added:
        root.addHandler(h)
    # Python warnings (warnings.warn) become log records too, so they reach the file and the summary; an
    # already-capturing caller is left as it is (logging keeps the original showwarning while it captures)
    capture = getattr(logging, "_warnings_showwarning", None) is None
    if capture:
        logging.captureWarnings(True)
    detached = {}
    for lib, module in OWN_HANDLER_LOGGERS.items():
        try:
            importlib.import_module(module).get_logger()  # installs the library's handler now, if not yet
        except ImportError:
            continue
        lib_logger = logging.getLogger(lib)
        if not lib_logger.propagate:
            detached[lib] = lib_logger.handlers[:]
            for h in detached[lib]:
                lib_logger.removeHandler(h)
            lib_logger.propagate = True
    logging.getLogger(__name__).info("---- %s: invocation started (pid %d, log %s) ----", name, os.getpid(), path)
    # one line on stdout so that a person (or papermill's terminal) knows where the details are
    print(f"{name}: the full log (INFO and above) goes to {_shown(path)}")
    try:
        yield run_log
    except BaseException as exc:
        record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, "%s: stopped by %s: %s",
                                   (name, type(exc).__name__, exc), sys.exc_info())
        for h in (file_handler, counter):  # not the console: the notebook shows the traceback itself
            h.handle(record)
        raise
    else:
        logging.getLogger(__name__).info("---- %s: invocation finished ----", name)
    finally:
        if capture:
            logging.captureWarnings(False)
        for lib, handlers in detached.items():
            lib_logger = logging.getLogger(lib)
            lib_logger.propagate = False
            for h in handlers:
                lib_logger.addHandler(h)
        for h in added:
            root.removeHandler(h)
        file_handler.close()
        root.setLevel(old_level)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter in a notebook)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
