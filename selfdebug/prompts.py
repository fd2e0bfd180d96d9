"""Instruction templates (initial, "Refine", "Explain + Refine") and parsing code/explanations from replies.

The paper's templates exist only as images; these are our own, modelled on its description (§2.2): the
wrong solution sits in the chat history as the assistant's first answer, then a user turn gives the
execution feedback and asks either for a refined solution ("Refine") or for an explanation of the bug
followed by the refinement ("Expl. + Refine", chain-of-thought style). Chats are rendered by
``selfdebug.generate.chat`` with the model's template, or the StarChat format for base models.

``parse_reply`` reads a reply back into (explanation, code); ``format_reply`` writes a training target that
``parse_reply`` reads back exactly. What of the code then runs is ``selfdebug.sanitize``'s business.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass
from typing import Literal

from selfdebug.generate.base import Chat
from selfdebug.problems.base import Problem
from selfdebug.sanitize import names_of

PromptType = Literal["refine", "explain_refine"]
PROMPT_TYPES: tuple[PromptType, ...] = ("refine", "explain_refine")
PROMPT_LABELS = {"init": "Init.", "refine": "Refine", "explain_refine": "Expl.+Refine", "resample": "Resample"}

FENCE = "```"

INITIAL_COMPLETION = (
    "Complete the following Python function. Reply with the complete function (with any imports it "
    "needs) in a single ```python code block.\n\n```python\n{prompt}\n```"
)
INITIAL_FULL = "{prompt}\n\nReply with your Python solution in a single ```python code block."
FEEDBACK_HEADER = "The code above is not correct. Running it against the tests gave:\n\n{feedback}\n\n"
REFINE_ASK = "Fix the code. Reply with the complete corrected code in a single ```python code block."
EXPLAIN_REFINE_ASK = (
    "First explain briefly what is wrong with the code and why it fails this test. Then reply with the "
    "complete corrected code in a single ```python code block."
)
MAX_FEEDBACK_CHARS = 1500
"""Long feedback (huge EvalPlus inputs, long tracebacks) is cut to keep prompts inside a small context."""


def initial_chat(problem: Problem) -> Chat:
    template = INITIAL_COMPLETION if problem.style == "completion" else INITIAL_FULL
    return [{"role": "user", "content": template.format(prompt=problem.prompt.strip("\n"))}]


def shown_code(problem: Problem, code: str) -> str:
    """The wrong solution as the assistant's answer in the chat: whole function(s), not a bare body."""
    if problem.style == "completion" and not re.search(
        rf"^(async\s+)?def\s+{re.escape(problem.entry_point)}\s*\(", code, flags=re.M
    ):
        return problem.program(code)
    return code


def truncate_feedback(feedback: str, limit: int = MAX_FEEDBACK_CHARS) -> str:
    if len(feedback) <= limit:
        return feedback
    half = limit // 2
    return feedback[:half] + f"\n... [{len(feedback) - limit} characters cut] ...\n" + feedback[-half:]


def refine_chat(problem: Problem, wrong_code: str, feedback: str, prompt_type: PromptType) -> Chat:
    """The paper's refinement chat: task, the wrong answer as the assistant's turn, feedback + the ask."""
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown prompt type {prompt_type!r}; expected one of {PROMPT_TYPES}")
    ask = REFINE_ASK if prompt_type == "refine" else EXPLAIN_REFINE_ASK
    return [
        *initial_chat(problem),
        {"role": "assistant", "content": f"{FENCE}python\n{shown_code(problem, wrong_code).strip()}\n{FENCE}"},
        {"role": "user", "content": FEEDBACK_HEADER.format(feedback=truncate_feedback(feedback)) + ask},
    ]


@dataclass(frozen=True)
class ParsedReply:
    code: str
    explanation: str
    found_block: bool
    """False when the reply had no fenced code block (the whole reply is then taken as code)."""


PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})
"""Info strings of fenced blocks that hold Python (an untagged block counts)."""

_OPEN = re.compile(r"(`{3,})[ \t]*([^`\n]*)\n")
_TICKS = re.compile(r"`{3,}")


@dataclass(frozen=True)
class _Block:
    start: int
    """Where the opening fence starts: the explanation is the prose before it."""
    end: int
    """Just after the closing fence's line (the end of the reply for a block cut off by the token limit)."""
    python: bool
    code: str
    """The block's text, normalised (``normalise_code``)."""


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _compiles(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(code, "<reply>", "exec", dont_inherit=True)  # compiled only, never run
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


_TOP_DEF = re.compile(r"(async\s+def|def|class|import|from)\s|@")


def normalise_code(code: str) -> str:
    """Code as ``parse_reply`` hands it back: no leading blank lines, one trailing newline, and a block
    indented as a whole (a reply that nests its code in a list item) moved to column 0 when it is a module
    (starts with ``def``/``class``/``import``/a decorator, and compiles once dedented). A bare function body
    (HumanEval's completion style) keeps its indentation: it is appended to the prompt's signature."""
    lines = code.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    code = "\n".join(lines).rstrip()
    if not code:
        return ""
    if code[0] in " \t":  # the first line is indented (blank lines are gone), so maybe the whole block is
        dedented = textwrap.dedent(code)
        if _TOP_DEF.match(dedented) and _compiles(dedented):
            code = dedented
    return code + "\n"


def _line_start(text: str, i: int) -> int:
    return text.rfind("\n", 0, i) + 1


def _line_end(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j + 1


def _close(text: str, c0: int, ticks: int, python: bool) -> tuple[int, int]:
    """(end of content, end of block) for a block whose content starts at ``c0``.

    A closing fence is a line holding only a run of at least ``ticks`` backticks (CommonMark). For Python,
    the first such line *at which the content parses* wins, so a line of backticks inside a multi-line
    string does not end the code; failing that, a run at the end of a code line (``return x```), then the
    first closing line (broken code), then the end of the reply (cut off by the token limit)."""
    first_line = first_inline = None
    for m in _TICKS.finditer(text, c0):
        if len(m.group()) < ticks:
            continue
        ls, le = _line_start(text, m.start()), _line_end(text, m.end())
        own_line = not text[ls : m.start()].strip() and not text[m.end() : le].strip()
        if own_line:
            if not python or _parses(text[c0:ls]):
                return ls, le
            first_line = first_line or (ls, le)
        elif first_inline is None and python and _parses(text[c0 : m.start()]):
            first_inline = (m.start(), m.end())
    return first_inline or first_line or (len(text), len(text))


def _blocks(text: str) -> list[_Block]:
    """Every fenced block, in order. An opening fence may follow prose on its line (``Here: ```python``)
    when it names Python; any other opening fence starts a line (after indentation)."""
    out, pos = [], 0
    while (m := _OPEN.search(text, pos)) is not None:
        ticks, info = m.group(1), m.group(2).strip()
        tag = info.split()[0].lower() if info else ""
        before = text[_line_start(text, m.start()) : m.start()]
        at_line_start = not before.strip()
        if not at_line_start and (not info or tag not in PYTHON_TAGS):
            pos = m.start() + len(ticks)
            continue
        python = tag in PYTHON_TAGS
        c0 = m.end()
        c_end, b_end = _close(text, c0, len(ticks), python)
        content = text[c0:c_end]
        indent = len(before) - len(before.lstrip(" ")) if at_line_start else 0
        if indent:  # CommonMark: a fence indented by n spaces takes up to n spaces off each content line
            content = "\n".join(re.sub(rf"^ {{0,{indent}}}", "", line) for line in content.split("\n"))
        out.append(_Block(m.start(), b_end, python, normalise_code(content)))
        pos = b_end
    return out


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*((async\s+)?def\s+{re.escape(name)}\s*\(|class\s+{re.escape(name)}\b)", code,
                     flags=re.M) is not None


def _helpers(chosen: str, others: list[str], versions: list[bool]) -> str:
    """Imports, functions, classes and assignments from the reply's other Python blocks that ``chosen``
    needs but does not define (transitively, scope-aware: ``selfdebug.sanitize.names_of``); the last
    definition of a name in the reply wins, except that blocks which define the entry point themselves
    (``versions``: the wrong solution quoted before the fix, an alternative) give a name only when no other
    block does. Other blocks' test lines, and what the chosen block defines itself, never come in."""
    if not _compiles(chosen) or re.search(r"^from\s+__future__\s", chosen, flags=re.M):
        return ""  # nothing to analyse; or __future__ imports, which must stay first
    own, needed = names_of(chosen)
    needed -= own
    source: dict[str, tuple[int, int, str]] = {}  # name -> (block, statement, text) of its last definition
    # the solution's other versions first, so that a block of plain helpers overrides them
    for b, code in sorted(enumerate(others), key=lambda bc: not versions[bc[0]]):
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for s, node in enumerate(tree.body):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names = {node.name}
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            else:
                continue
            lines = code.split("\n")[_first_line(node) - 1 : node.end_lineno]
            for name in names - own:
                source[name] = (b, s, "\n".join(lines))
    picked: dict[tuple[int, int], str] = {}
    todo = [n for n in needed if n in source]
    while todo:
        b, s, text = source[todo.pop()]
        if (b, s) in picked or not _compiles(text):
            continue
        picked[(b, s)] = text
        todo += [n for n in names_of(text)[1] - own if n in source and source[n][:2] not in picked]
    out = ""
    for _, text in sorted(picked.items()):  # imports one per line, definitions a blank line apart
        sep = "\n" if re.match(r"(import|from)\s", text) and re.match(r"(import|from)\s", out.rsplit("\n", 1)[-1]) \
            else "\n\n"
        out = f"{out}{sep}{text}" if out else text
    return out


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def _choose(blocks: list[_Block], entry_point: str | None) -> _Block:
    """The block whose code is the reply's: the last that defines ``entry_point``, else the longest."""
    if entry_point:
        defining = [b for b in blocks if _defines(b.code, entry_point)]
        if defining:
            return defining[-1]
    return max(blocks, key=lambda b: len(b.code))


def _prose_segments(every: list[_Block], chosen: _Block) -> list[tuple[int, int]]:
    """``[start, end)`` of the prose before ``chosen``, between the other blocks: the explanation's pieces."""
    segments, pos = [], 0
    for b in every:
        if b.start >= chosen.start:
            break
        segments.append((pos, b.start))
        pos = b.end
    segments.append((pos, chosen.start))
    return segments


@dataclass(frozen=True)
class ReplyLayout:
    """Where ``parse_reply``'s parts lie in a reply, as character ranges ``[start, end)``: what RL needs to put a
    reward on the token that ends each part (``selfdebug.rl.positions``)."""

    code: tuple[int, int]
    """The chosen block's content, between its fences (the whole reply when it has no Python block)."""
    prose: tuple[tuple[int, int], ...]
    """The explanation's pieces: the prose before the chosen block, other blocks left out."""
    found_block: bool


def reply_layout(text: str, entry_point: str | None = None) -> ReplyLayout:
    """The ranges of ``text`` that ``parse_reply(text, entry_point)`` takes its code (before normalising and the
    helpers of other blocks) and its explanation from."""
    every = _blocks(text)
    blocks = [b for b in every if b.python]
    if not blocks:
        return ReplyLayout((0, len(text)), (), False)
    chosen = _choose(blocks, entry_point)
    opening = _OPEN.match(text, chosen.start)
    assert opening is not None, "a block starts with its opening fence"
    c0 = opening.end()
    c_end, _ = _close(text, c0, len(opening.group(1)), chosen.python)
    return ReplyLayout((c0, c_end), tuple(_prose_segments(every, chosen)), True)


def parse_reply(text: str, entry_point: str | None = None) -> ParsedReply:
    """Split a reply into (explanation, code).

    The code is the Python block that defines ``entry_point`` (the last such, since a model that explains
    may first quote the wrong code), else the longest Python block; an unterminated block at the end (a
    reply cut by the token limit) still counts. Fences are found as ``_blocks`` and ``_close`` say (after
    prose on a line, a fence inside a string, indented blocks). When the code needs imports, helpers or
    constants that the reply puts in *other* Python blocks, those definitions come first (``_helpers``).
    The explanation is the prose before the chosen block, without code blocks; prose after it is ignored.
    The code is normalised (``normalise_code``). A reply without a block is all code (``found_block``
    False).
    """
    every = _blocks(text)
    blocks = [b for b in every if b.python]
    if not blocks:
        return ParsedReply(code=text.strip("\n"), explanation="", found_block=False)
    chosen = _choose(blocks, entry_point)
    prose = [text[s:e] for s, e in _prose_segments(every, chosen)]
    others = [b for b in blocks if b is not chosen]
    helpers = _helpers(chosen.code, [b.code for b in others],
                       [bool(entry_point) and _defines(b.code, entry_point) for b in others])
    code = f"{helpers}\n\n\n{chosen.code}" if helpers else chosen.code
    return ParsedReply(code=code, explanation="".join(prose).strip(), found_block=True)


def format_reply(explanation: str, code: str) -> str:
    """A reply with ``explanation`` then ``code`` in one Python block, as ``parse_reply`` reads replies:
    ``parse_reply(format_reply(e, c))`` gives back ``normalise_code(c)`` and ``e.strip()``, for any code.

    The fence is longer than any run of backticks in the code (CommonMark), so code that holds three backticks
    (in a string, say) cannot close it. An empty explanation (the "Refine" format) gives the bare block. The explanation may
    not hold three backticks in a row (it would open a block), and the code may not be empty."""
    body = normalise_code(code)
    if not body:
        raise ValueError("format_reply: the code is empty; a training target needs a program")
    prose = explanation.strip()
    if _TICKS.search(prose):
        raise ValueError("format_reply: the explanation holds three or more backticks in a row, which would "
                         f"read as a code fence: {prose[:80]!r}")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    block = f"{fence}python\n{body}{fence}\n"
    return f"{prose}\n\n{block}" if prose else block
