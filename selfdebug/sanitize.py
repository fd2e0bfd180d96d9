"""Strip a model's solution down to the program the tests need (the issue's §7; evalplus's ``sanitize``).

Models append their own checks to a solution: ``print(f(3))``, ``assert f(2) == 5, "Test case 4 failed"``,
an ``if __name__ == "__main__":`` block, ``n = int(input())``. Run as is, such a line can fail (or block on
standard input) before any real test runs, and the benchmark counts the sample wrong for a reason that is
not the solution. evalplus removes them before scoring (its sanitizer raised the cpu profile's greedy
HumanEval score from 54.9% to 56.7%); so do we, with our own AST-based rules:

* every top-level ``import`` / ``from ... import`` is kept;
* the *roots* are the entry point, the names the tests and the test script reference, and (for completion
  prompts) the names the prompt defines; a top-level statement that binds a needed name (a function, class,
  assignment, or a compound statement such as ``try: from math import comb`` that binds it) is kept, and
  the global names it uses are needed in turn (transitively, through function bodies, methods, decorators,
  default values, base classes); the analysis is scope-aware (``symtable``), so a local ``result`` inside
  the entry point does not keep a top-level ``result = f(5)`` test line;
* a statement that changes a needed global in place (``memo[0] = 1``) is kept with it; so are calls that
  configure the interpreter (``sys.setrecursionlimit(...)``, ``random.seed(...)``: ``CONFIG_CALLS``) and
  assignments into an imported module (``decimal.getcontext().prec = 50``);
* everything else at top level goes: asserts, prints and other expression statements, ``__main__`` blocks,
  loops and ``if`` blocks that bind nothing needed, stray assignments;
* code that does not compile, or that does not define the entry point at top level (a bare function body
  for a completion prompt, a misnamed function), is returned unchanged: the sandbox reports the error.

Kept statements keep their original text, comments inside them and the blank lines between them; comment
lines right before a dropped statement go with it. Code from which nothing is dropped comes back unchanged.
Standard-input programs (``stdout`` tests) are never sanitized: their top-level code *is* the solution.
"""

from __future__ import annotations

import ast
import re
import symtable
import warnings
from collections.abc import Iterable
from functools import lru_cache

from selfdebug.problems.base import Problem

CONFIG_CALLS = frozenset({
    "sys.setrecursionlimit", "sys.set_int_max_str_digits", "random.seed", "numpy.random.seed",
    "decimal.getcontext",
})
"""Top-level calls that set up the interpreter rather than test the solution (fully qualified names)."""


def _tree(code: str) -> ast.Module | None:
    """The module's AST, or None when it does not compile (syntax, or 'return' outside a function)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. are not our business here
            tree = ast.parse(code)
            compile(tree, "<solution>", "exec", dont_inherit=True)  # symtable errors; compiles, never runs
    except (SyntaxError, ValueError, MemoryError, RecursionError, TypeError):
        return None
    return tree


def names_of(source: str) -> tuple[set[str], set[str]]:
    """``(bound, used)``: the global names a piece of module-level code binds, and those it reads.

    ``used`` counts names read at module level and names that function and class bodies look up globally,
    not their locals, parameters or names of enclosing functions. The source must compile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        top = symtable.symtable(source, "<solution>", "exec")
    bound, used = set(), set()
    for sym in top.get_symbols():
        if sym.is_assigned() or sym.is_imported():
            bound.add(sym.get_name())
        if sym.is_referenced():
            used.add(sym.get_name())
    stack = list(top.get_children())
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        used.update(s.get_name() for s in table.get_symbols() if s.is_global())
    return bound, used


def _root(node: ast.expr) -> str | None:
    """``a`` for ``a.b[0].c`` or ``a.f().g``: the name an attribute/subscript/call chain starts from."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    return (isinstance(node.test.ops[0], ast.Eq) and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it imports (``np`` -> ``numpy``, ``setrecursionlimit`` -> ``sys.setrecursionlimit``)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _configures(node: ast.stmt, aliases: dict[str, str]) -> bool:
    """A call in ``CONFIG_CALLS`` or an assignment into an imported module: set-up, not a test."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        name = _dotted(node.value.func)
        if name:
            head, _, rest = name.partition(".")
            full = aliases.get(head, head) + ("." + rest if rest else "")
            return head in aliases and full in CONFIG_CALLS
    if isinstance(node, ast.Assign):
        roots = [_root(t) for t in node.targets if not isinstance(t, ast.Name)]
        return bool(roots) and len(roots) == len(node.targets) and all(r in aliases for r in roots)
    return False


def _mutated(node: ast.stmt) -> set[str]:
    """Globals a top-level assignment changes in place (``memo[0] = 1``, ``cfg.x = 2``, ``total += 1``)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    else:
        return set()
    return {r for t in targets if (r := _root(t)) is not None}


def _start(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def sanitize(code: str, entry_point: str, keep: Iterable[str] = ()) -> str:
    """``code`` without the top-level statements the entry point (and the names in ``keep``) do not need.

    The rules are in this module's docstring. Returns ``code`` itself when it does not compile, does not
    define ``entry_point`` at top level, or has nothing to drop."""
    if not entry_point:
        raise ValueError("sanitize: entry_point is empty; name the function the tests call")
    tree = _tree(code)
    if tree is None or not tree.body:
        return code
    aliases = _import_aliases(tree)
    info: list[tuple[set[str], set[str]] | None] = []  # (binds or mutates, uses); None: import, __main__
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) or _is_main_guard(node):
            info.append(None)
            continue
        try:
            bound, used = names_of(ast.unparse(node))
        except (SyntaxError, ValueError, RecursionError):  # a statement that only compiles in context
            return code
        info.append((bound | _mutated(node), used))
    if not any(i is not None and entry_point in i[0] for i in info):
        return code  # nothing to anchor on: a bare body, or the model named its function otherwise
    kept = [isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body]
    needed = {entry_point, *keep}
    for j, node in enumerate(tree.body):
        if not kept[j] and info[j] is not None and _configures(node, aliases):
            kept[j] = True
            needed |= info[j][1]
    changed = True
    while changed:  # the closure: keep what binds a needed name, then need what it uses
        changed = False
        for j, item in enumerate(info):
            if not kept[j] and item is not None and item[0] & needed:
                kept[j], changed = True, True
                needed |= item[1]
    if all(kept):
        return code
    out = _without(code, tree, kept)
    return out if _tree(out) is not None else code  # never hand back something worse than we got


def _without(code: str, tree: ast.Module, kept: list[bool]) -> str:
    """``code`` minus the dropped top-level statements and the comment/blank lines just before them."""
    spans = [(_start(n), n.end_lineno or n.lineno) for n in tree.body]
    lines_of = [set(range(a, b + 1)) for a, b in spans]
    shared = any(lines_of[i] & lines_of[i + 1] and kept[i] != kept[i + 1] for i in range(len(spans) - 1))
    if shared:  # `x = 1; print(x)`: cut statement by statement, losing comments between them
        parts = []
        for node, k in zip(tree.body, kept, strict=True):
            if k:
                head = "".join(f"@{ast.get_source_segment(code, d)}\n" for d in getattr(node, "decorator_list", []))
                parts.append(head + (ast.get_source_segment(code, node) or ast.unparse(node)))
        return "\n".join(parts).strip("\n") + "\n"
    lines = code.split("\n")
    keep_line = [True] * len(lines)
    prev_end = 0
    for (_, end), k in zip(spans, kept, strict=True):
        if not k:
            for i in range(prev_end, end):  # the gap before it (comments, blanks) and the statement
                keep_line[i] = False
        prev_end = end
    if not kept[-1]:
        for i in range(prev_end, len(lines)):
            keep_line[i] = False
    text = "\n".join(line for line, k in zip(lines, keep_line, strict=True) if k)
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip() + "\n"


@lru_cache(maxsize=4096)
def _script_names(source: str, defined: bool) -> frozenset[str]:
    """Global names a trusted piece of benchmark code uses (``defined=False``) or binds (``True``)."""
    if not source.strip() or _tree(source) is None:
        return frozenset()
    bound, used = names_of(source)
    return frozenset(bound if defined else used)


def _expr_names(call: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(call, mode="eval")) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set()


def _top_names(tree: ast.Module) -> set[str]:
    """A cheap superset of the names the module binds at top level (no scope analysis)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        else:
            out.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return out


def sanitize_for(problem: Problem, code: str) -> str:
    """Sanitize a model's answer ``code`` to ``problem`` (before ``problem.program`` assembles it).

    Roots beyond the entry point: names the tests' calls (e.g. MBPP's ``Pair(5, 24)``) and the test script
    use, and for completion prompts every name the prompt defines (HumanEval/10's ``is_palindrome``,
    HumanEval/38's ``encode_cyclic``), so a model's own copy of a prompt helper stays as it would run."""
    tests = [*problem.tests, *problem.plus_tests]
    if not problem.entry_point or any(t.comparison == "stdout" for t in tests):
        return code  # a standard-input program: its top-level code is the solution
    keep = set(_script_names(problem.test_script, False))
    if problem.style == "completion":
        keep |= _script_names(problem.prompt, True)
    tree = _tree(code)
    if tree is not None:
        # only names the code defines can matter; parse just the test calls that mention one (HumanEval+
        # has thousands of calls per problem, most of them huge literals)
        defined = _top_names(tree) - keep - {problem.entry_point}
        for t in tests:
            hits = {name for name in defined if name in t.call}
            if hits:
                keep |= hits & _expr_names(t.call)
    return sanitize(code, problem.entry_point, keep)
