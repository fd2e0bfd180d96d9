"""The sanitizer: what of a model's answer reaches the sandbox (issue 9, §7). Code is only parsed here."""

import ast

from selfdebug.evaluate.protocol import GenerationRunner, evaluate_benchmark
from selfdebug.generate.base import Completion
from selfdebug.io import JsonlLog
from selfdebug.problems import load_benchmark
from selfdebug.problems.base import Problem, TestCase
from selfdebug.sanitize import sanitize, sanitize_for


def top_names(code: str) -> list[str]:
    """What the module's top level holds: def/class names, imports, and other statements by kind."""
    out = []
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.append(node.name)
        elif isinstance(node, ast.Assign):
            out.append("=" + ast.unparse(node.targets[0]))
        else:
            out.append(ast.unparse(node).split("\n")[0])
    return out


def test_the_models_own_failing_assert_is_dropped():
    """The issue's case: this assert raised before any real test ran (expected "45123" is right)."""
    code = ('def circular_shift(x, shift):\n    s = str(x)\n    if shift > len(s):\n        return s[::-1]\n'
            '    return s[len(s) - shift:] + s[:len(s) - shift]\n\n# Test cases\n'
            'assert circular_shift(12, 1) == "21", "Test case 1 failed"\n'
            'assert circular_shift(12345, 3) == "51234", "Test case 4 failed"\nprint("All tests passed!")\n')
    out = sanitize(code, "circular_shift")
    assert out == code[: code.index("\n\n# Test cases")] + "\n"  # the function verbatim, the rest gone


def test_top_level_prints_calls_input_and_main_blocks_go():
    code = ("import sys\n\ndef f(n):\n    return n + 1\n\nprint(f(1))\nf(2)\nn = int(input())\nprint(f(n))\n"
            "for t in [1, 2]:\n    print(f(t))\nif __name__ == '__main__':\n    import doctest\n    doctest.testmod()\n")
    assert top_names(sanitize(code, "f")) == ["import sys", "f"]


def test_a_global_constant_the_entry_point_uses_stays_and_a_local_name_keeps_nothing():
    code = ("MOD = 10 ** 9 + 7\nLIMIT = 3\nUNUSED = [1, 2]\n\ndef f(xs):\n    result = [x % MOD for x in xs]\n"
            "    return result[:LIMIT]\n\nresult = f([1, 2, 3])\nprint(result)\n")
    # `result` is local to f: the top-level `result = f(...)` (a test call at import time) must not come along
    assert top_names(sanitize(code, "f")) == ["=MOD", "=LIMIT", "f"]


def test_a_class_based_solution_keeps_the_class_its_methods_need_and_drops_its_demo():
    code = ("from collections import deque\n\nSTEP = 1\n\ndef _norm(v):\n    return v * STEP\n\n"
            "class Solution:\n    def solve(self, xs):\n        q = deque(_norm(x) for x in xs)\n        return sum(q)\n\n"
            "class Unused:\n    pass\n\ndef total(xs):\n    return Solution().solve(xs)\n\n"
            "sol = Solution()\nprint(sol.solve([1, 2]))\nassert total([1]) == 1\n")
    assert top_names(sanitize(code, "total")) == ["from collections import deque", "=STEP", "_norm", "Solution",
                                                   "total"]


def test_a_recursive_helper_and_a_decorator_are_kept_with_their_decorator_lines():
    code = ("from functools import lru_cache\n\ndef traced(fn):\n    def wrap(*a):\n        return fn(*a)\n"
            "    return wrap\n\n@lru_cache(maxsize=None)\ndef ways(n):\n    return 1 if n < 2 else ways(n - 1) + ways(n - 2)\n\n"
            "@traced\ndef climb(n):\n    return ways(n)\n\nprint(climb(10))\n")
    out = sanitize(code, "climb")
    assert top_names(out) == ["from functools import lru_cache", "traced", "ways", "climb"]
    assert "@lru_cache(maxsize=None)\ndef ways" in out and "@traced\ndef climb" in out


def test_set_up_the_solution_needs_is_kept():
    code = ("import sys\nsys.setrecursionlimit(10 ** 6)\ntry:\n    from math import comb\nexcept ImportError:\n"
            "    comb = None\nmemo = {}\nmemo[0] = 1\n\ndef f(n):\n    return memo.get(n, comb(n, 1))\n\nf(3)\n")
    assert top_names(sanitize(code, "f")) == ["import sys", "sys.setrecursionlimit(10 ** 6)", "try:", "=memo",
                                               "=memo[0]", "f"]


def test_code_that_does_not_compile_or_has_nothing_to_drop_comes_back_unchanged():
    broken = "def f(x):\n    return x +\n\nassert f(1) == 2\n"
    assert sanitize(broken, "f") is broken
    outside = "return x + 1\nprint(1)\n"  # parses, but 'return' outside a function does not compile
    assert sanitize(outside, "f") is outside
    clean = "import math\n\n\n# a comment\ndef f(x):\n    return math.floor(x)  # why\n"
    assert sanitize(clean, "f") is clean
    body = "    return a + b\n"  # a completion-style body: appended to the prompt as is
    assert sanitize(body, "add") is body
    misnamed = "def g(x):\n    return x\n\nprint(g(1))\n"  # no anchor: the sandbox reports the missing name
    assert sanitize(misnamed, "f") is misnamed


CYCLIC_PROMPT = ('def encode_cyclic(s: str):\n    """Cycles groups of three."""\n    return s[1:] + s[:1]\n\n\n'
                 'def decode_cyclic(s: str):\n    """Inverse of encode_cyclic."""\n')


def test_a_completion_prompts_helpers_survive():
    """HumanEval/38-like: the tests call the prompt's encode_cyclic; the model's copy of it stays, as it would
    run unsanitized, and the prompt's own definitions are never touched."""
    p = Problem(task_id="HumanEval/38", benchmark="humaneval", prompt=CYCLIC_PROMPT, entry_point="decode_cyclic",
                style="completion", reference="", tests=[TestCase("decode_cyclic(encode_cyclic('abc'))", "abc")])
    code = ("def encode_cyclic(s: str):\n    return s[1:] + s[:1]\n\n\ndef decode_cyclic(s: str):\n"
            "    return s[-1:] + s[:-1]\n\n\nprint(decode_cyclic(encode_cyclic('abc')))\n")
    out = sanitize_for(p, code)
    assert top_names(out) == ["encode_cyclic", "decode_cyclic"]
    program = p.program(out)
    assert program.startswith(CYCLIC_PROMPT) and "print(" not in program


def test_names_the_tests_use_are_kept_and_stdin_programs_are_left_alone():
    """MBPP-style: a test builds the solution's own class (``Pair``), which the entry point never names."""
    p = Problem(task_id="601", benchmark="mbpp", prompt="Chain.", entry_point="max_chain_length", style="full",
                reference="", tests=[TestCase("max_chain_length([Pair(5, 24), Pair(15, 25)], 2)", 1),
                                     TestCase("max_chain_length([], 0)", 0, source="Pair in a string: 'x'")])
    code = ("class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\n"
            "def max_chain_length(arr, n):\n    return len(arr) - 1 if arr else 0\n\nprint(max_chain_length([], 0))\n")
    assert top_names(sanitize_for(p, code)) == ["Pair", "max_chain_length"]
    stdin = Problem(task_id="a", benchmark="apps", prompt="Read n.", entry_point="", style="full", reference="",
                    tests=[TestCase("3\n", "4\n", comparison="stdout")])
    program = "def solve(n):\n    return n + 1\n\nprint(solve(int(input())))\n"
    assert sanitize_for(stdin, program) is program
    nameless = Problem(task_id="b", benchmark="t", prompt="", entry_point="", style="full", reference="",
                       tests=[TestCase("1", 1)])
    assert sanitize_for(nameless, program) is program  # nothing to anchor on: never an error mid-run


def test_every_humaneval_reference_keeps_all_its_definitions_and_loses_the_appended_tests():
    """Real prompts, HumanEval/10 (``is_palindrome``) and /38 (``encode_cyclic``) among them: a model that
    repeats the prompt's helpers and adds its own checks keeps every definition and import (in the sandbox
    all 164 programs, sanitized, pass: see the report of issue 9)."""
    junk = "\n\nprint('demo')\nassert False, 'own test'\nif __name__ == '__main__':\n    raise SystemExit(1)\n"
    problems = load_benchmark("humaneval")
    assert {"HumanEval/10", "HumanEval/38"} <= {p.task_id for p in problems}
    for p in problems:
        out = sanitize_for(p, p.reference + junk)
        assert out.strip() == p.reference.strip(), p.task_id


class OneReply:
    name = "one"

    def generate(self, prompts, params, **_):
        reply = "```python\ndef f(x):\n    return x\n\nassert f(1) == 2, 'my own test'\n```"
        return [[Completion(text=reply, prompt_tokens=1, completion_tokens=1)] * params.n for _ in prompts]


def test_the_protocol_runs_and_records_the_sanitized_code(tmp_path):
    seen = []

    def execute(pairs):
        seen.extend(prog for prog, _ in pairs)
        return [{"passed": True, "status": "passed", "feedback": "", "n_passed": 1, "n_total": 1} for _ in pairs]

    p = Problem(task_id="P", benchmark="toy", prompt="Write f.", entry_point="f", style="full", reference="",
                tests=[TestCase("f(1)", 1)])
    runner = GenerationRunner(backend=OneReply(), cache=JsonlLog(tmp_path / "gen.jsonl"), model_tag="toy")
    records = evaluate_benchmark("toy", [p], runner=runner, execute=execute, n_samples=1, temperature=0.0,
                                 top_p=1.0, max_new_tokens=8, refine_temperature=0.0, refine_max_new_tokens=8,
                                 rounds=0, matched_baseline=False)
    assert seen == ["def f(x):\n    return x\n"]
    assert records[0]["code"] == "def f(x):\n    return x\n" and "my own test" in records[0]["completion"]
