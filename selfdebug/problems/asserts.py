"""Turn assert-style benchmark tests into structured :class:`TestCase` objects, with ``ast`` only.

Nothing here executes benchmark or model code: the converter reads the syntax tree of the test text.

Rules, per ``assert TEST`` (``candidate`` renamed to the entry point first):

- ``A == B`` where one side calls the entry point (the *call side*) and the other side does not:
  ``call`` = the call side; ``expected`` = ``ast.literal_eval`` of the other side, or, if that side is not a
  literal (``float('inf')``, ``sum(...)``), ``expected_from="reference"`` (the sandbox runs the reference
  with the same call; the gold check guarantees that the reference satisfies the original assert).
- ``A is None|True|False`` -> ``eq`` with that constant (the harness compares plain data).
- ``abs(A - B) < T`` / ``<= T`` (either order inside ``abs``) -> ``close`` with ``atol=T``.
- ``math.isclose(A, B[, rel_tol=R][, abs_tol=T])`` with literal ``B`` -> ``close`` with
  ``atol = max(T, R * |B|)`` (defaults R=1e-9, T=0 as in ``math.isclose``); otherwise ``truthy``.
- ``f(X)`` -> ``truthy``; ``not f(X)`` -> ``falsy``.
- anything else (``!=``, ``<``, ``in``, both sides calling the entry point, ...) -> ``truthy`` of the whole
  assertion expression: always exact, only less informative in feedback.
- ``assert <constant>`` (``assert True, "..."`` in HumanEval) is dropped.

Statements around the asserts: imports are kept (returned, to be run as setup code); ``NAME = EXPR`` with a
*deterministic* expression (literals, pure builtins, earlier such names) is inlined into later asserts;
``for NAME in range(<int literals>)`` whose body converts is unrolled; bare expression statements that are
a name or a constant (HumanEval/129 has a stray ``print``) are dropped. Anything else (random inputs,
helper functions, while loops) raises :class:`NotStructurable`; the caller then keeps the script only.
"""

from __future__ import annotations

import ast
import io
import tokenize
import warnings
from dataclasses import dataclass, field

from selfdebug.problems.base import TestCase

# Calls allowed inside an inlined assignment: pure, deterministic builtins (no random, no I/O).
_PURE_BUILTINS = frozenset(
    "abs all any bool dict enumerate filter float frozenset int len list map max min range reversed round "
    "set sorted str sum tuple zip chr ord".split()
)
_MAX_UNROLL = 1000


class NotStructurable(ValueError):
    """The test code has a statement the converter cannot put in structured form."""


@dataclass
class Converted:
    tests: list[TestCase]
    imports: list[str] = field(default_factory=list)
    """Import statements found in the test code, needed by some calls (run them as setup code)."""


def rename_source(text: str, old: str | None, new: str) -> str:
    """``text`` with every NAME token ``old`` replaced by ``new`` (strings and comments untouched)."""
    if not old or old == new or old not in text:
        return text
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text
    lines = text.splitlines(keepends=True)
    # Replace from the end so earlier offsets stay valid.
    for tok in reversed(toks):
        if tok.type == tokenize.NAME and tok.string == old:
            (row, col), (_, end) = tok.start, tok.end
            line = lines[row - 1]
            lines[row - 1] = line[:col] + new + line[end:]
    return "".join(lines)


class _Substitute(ast.NodeTransformer):
    """Rename ``candidate`` and replace inlined variable names by their (deterministic) expressions."""

    def __init__(self, rename: dict[str, str], env: dict[str, ast.expr]):
        self.rename = rename
        self.env = env

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load):
            if node.id in self.env:
                return ast.copy_location(_copy(self.env[node.id]), node)
            if node.id in self.rename:
                return ast.copy_location(ast.Name(id=self.rename[node.id], ctx=ast.Load()), node)
        return node


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound_in_comprehensions(node: ast.AST) -> set[str]:
    bound: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.comprehension):
            bound |= _names(n.target)
        elif isinstance(n, ast.Lambda):
            bound |= {a.arg for a in n.args.args}
    return bound


def _is_deterministic(node: ast.expr) -> bool:
    """Only literals, pure builtin calls and comprehensions over them (names already substituted)."""
    free = _names(node) - _bound_in_comprehensions(node)
    if not free <= _PURE_BUILTINS:
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in _PURE_BUILTINS):
            return False
        if isinstance(n, (ast.Attribute, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return False
    return True


def _literal(node: ast.expr) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _number(node: ast.expr) -> float | None:
    ok, value = _literal(node)
    if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _is_math_isclose(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "isclose" and isinstance(func.value, ast.Name) and func.value.id == "math"
    return isinstance(func, ast.Name) and func.id == "isclose"


def _one(test: ast.expr, entry: str, source: str) -> TestCase | None:
    """The TestCase for one assertion expression (already renamed/substituted)."""

    def calls_entry(node: ast.AST) -> bool:
        return entry in _names(node)

    def expected_side(call_node: ast.expr, other: ast.expr, **kw: object) -> TestCase:
        ok, value = _literal(other)
        if ok:
            return TestCase(call=ast.unparse(call_node), expected=value, source=source, **kw)  # type: ignore[arg-type]
        return TestCase(call=ast.unparse(call_node), expected_from="reference", source=source, **kw)  # type: ignore[arg-type]

    whole = TestCase(call=ast.unparse(test), comparison="truthy", source=source)
    if isinstance(test, ast.Constant):
        return None  # ``assert True, "..."``: nothing to test
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return TestCase(call=ast.unparse(test.operand), comparison="falsy", source=source)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            if calls_entry(left) and not calls_entry(right):
                return expected_side(left, right)
            if calls_entry(right) and not calls_entry(left):
                return expected_side(right, left)
            return whole
        if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value in (None, True, False):
            return TestCase(call=ast.unparse(left), expected=right.value, source=source)
        if isinstance(op, (ast.Lt, ast.LtE)):
            tol = _number(right)
            inner = left
            if (
                tol is not None
                and isinstance(inner, ast.Call)
                and ast.unparse(inner.func) in ("abs", "fabs", "math.fabs")
            ):
                arg = inner.args[0] if len(inner.args) == 1 else None
                if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Sub):
                    a, b = arg.left, arg.right
                    if calls_entry(a) and not calls_entry(b):
                        return expected_side(a, b, comparison="close", atol=tol)
                    if calls_entry(b) and not calls_entry(a):
                        return expected_side(b, a, comparison="close", atol=tol)
        return whole
    if isinstance(test, ast.Call) and _is_math_isclose(test.func) and len(test.args) == 2:
        kw = {k.arg: _number(k.value) for k in test.keywords}
        if None not in kw.values() and set(kw) <= {"rel_tol", "abs_tol"}:
            a, b = test.args
            if calls_entry(b) and not calls_entry(a):
                a, b = b, a
            ref = _number(b)
            if calls_entry(a) and not calls_entry(b) and ref is not None:
                atol = max(kw.get("abs_tol") or 0.0, (kw.get("rel_tol") or 1e-9) * abs(ref))
                return TestCase(call=ast.unparse(a), expected=ref, comparison="close", atol=atol, source=source)
        return whole
    if isinstance(test, ast.Call):
        return TestCase(call=ast.unparse(test), comparison="truthy", source=source)
    return whole


def _source_of(stmt: ast.Assert, text: str, rename: dict[str, str]) -> str:
    seg = ast.get_source_segment(text, stmt.test) or ast.unparse(stmt.test)
    for old, new in rename.items():
        seg = rename_source(seg, old, new)
    return "assert " + seg


def convert_statements(
    stmts: list[ast.stmt], text: str, entry: str, *, candidate: str | None = "candidate"
) -> Converted:
    """Convert a block of test statements (a ``check`` body, or MBPP's ``test_list`` parsed together)."""
    rename = {candidate: entry} if candidate and candidate != entry else {}
    out = Converted(tests=[])
    env: dict[str, ast.expr] = {}
    unrolled = 0

    def walk(block: list[ast.stmt]) -> None:
        nonlocal unrolled
        for stmt in block:
            if isinstance(stmt, ast.Assert):
                test = _Substitute(rename, env).visit(_copy(stmt.test))
                # Show the benchmark's own text, unless inlined names changed what it means.
                uses_env = bool(_names(stmt.test) & set(env))
                source = "assert " + ast.unparse(test) if uses_env else _source_of(stmt, text, rename)
                case = _one(test, entry, source)
                if case is not None:
                    out.tests.append(case)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                out.imports.append(ast.unparse(stmt))
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                value = _Substitute({}, env).visit(_copy(stmt.value))
                if not _is_deterministic(value):
                    raise NotStructurable(f"line {stmt.lineno}: assignment of a non-constant value")
                env[stmt.targets[0].id] = value
            elif isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name) and not stmt.orelse:
                rng = stmt.iter
                if not (isinstance(rng, ast.Call) and isinstance(rng.func, ast.Name) and rng.func.id == "range"):
                    raise NotStructurable(f"line {stmt.lineno}: loop over something other than range()")
                bounds = [_literal(_Substitute({}, env).visit(_copy(a))) for a in rng.args]
                if rng.keywords or not all(ok and isinstance(v, int) for ok, v in bounds):
                    raise NotStructurable(f"line {stmt.lineno}: range() with non-constant bounds")
                values = range(*[v for _, v in bounds])  # type: ignore[misc]
                unrolled += len(values)
                if unrolled > _MAX_UNROLL:
                    raise NotStructurable(f"line {stmt.lineno}: loop too long to unroll")
                saved = env.get(stmt.target.id)
                for v in values:
                    env[stmt.target.id] = ast.Constant(v)
                    walk(stmt.body)
                env.pop(stmt.target.id)
                if saved is not None:
                    env[stmt.target.id] = saved
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, (ast.Name, ast.Constant)):
                continue  # a bare name or docstring: no effect
            elif isinstance(stmt, ast.Pass):
                continue
            else:
                raise NotStructurable(f"line {stmt.lineno}: unsupported statement {type(stmt).__name__}")

    walk(stmts)
    return out


def convert_check(test_code: str, entry: str) -> Converted:
    """Convert a HumanEval-style test module (``METADATA`` + ``def check(candidate): ...``)."""
    tree = ast.parse(test_code)
    checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if len(checks) != 1:
        raise NotStructurable("no single `def check(candidate)` in the test code")
    check = checks[0]
    param = check.args.args[0].arg if check.args.args else "candidate"
    # Module-level imports and constants (METADATA) go through the same rules as the check body.
    body = [s for s in tree.body if s is not check] + check.body
    out = convert_statements(body, test_code, entry, candidate=param)
    if not out.tests:
        raise NotStructurable("no assertions found")
    return out


def convert_asserts(asserts: list[str], entry: str) -> Converted:
    """Convert a list of assert statements that call the entry point by name (MBPP ``test_list``)."""
    tests: list[TestCase] = []
    imports: list[str] = []
    for i, text in enumerate(asserts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes in regex strings of MBPP asserts
                tree = ast.parse(text.strip())
        except SyntaxError as e:
            raise NotStructurable(f"test {i}: syntax error: {e.msg}") from e
        part = convert_statements(tree.body, text.strip(), entry, candidate=None)
        tests.extend(part.tests)
        imports.extend(part.imports)
    return Converted(tests=tests, imports=imports)
