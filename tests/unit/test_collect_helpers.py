"""Shared pieces of the collection tests (no tests of its own): a hand-made MBPP-format training file and a
scripted model that writes known-correct and known-wrong programs (a tiny random model rarely writes correct code)."""

from __future__ import annotations

import json
from pathlib import Path

from selfdebug.config import load_config
from selfdebug.generate.base import Completion

# task number -> (text, function name, correct code, wrong code, asserts)
TASKS = {
    601: ("Write a function to add two numbers.", "add", "def add(a, b):\n    return a + b\n",
          "def add(a, b):\n    return a - b\n", ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(2, 2) == 4"]),
    602: ("Write a function to multiply two numbers.", "mul", "def mul(a, b):\n    return a * b\n",
          "def mul(a, b):\n    return a + b\n", ["assert mul(2, 2) == 4", "assert mul(3, 4) == 12"]),
    603: ("Write a function to negate a number.", "neg", "def neg(x):\n    return -x\n",
          "def neg(x):\n    return x\n", ["assert neg(0) == 0", "assert neg(3) == -3"]),
}


def write_mbpp(path: Path, malformed: bool = True) -> Path:
    rows = [{"task_id": 11, "text": "not a training problem", "code": "def f():\n    return 1\n",
             "test_list": ["assert f() == 1"], "test_setup_code": "", "challenge_test_list": []}]
    for num, (text, _, code, _, asserts) in TASKS.items():
        rows.append({"task_id": num, "text": text, "code": code, "test_list": asserts, "test_setup_code": "",
                     "challenge_test_list": []})
    lines = [json.dumps(r) for r in rows]
    if malformed:
        lines.insert(2, json.dumps({"task_id": 650, "text": "a row without tests", "code": "x = 1"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path: Path, *extra: str):
    mbpp = write_mbpp(tmp_path / "mbpp.jsonl")
    return load_config("smoke", [f"collect.paths={{mbpp: {mbpp}}}", "collect.n_samples=3", "collect.n_refinements=3",
                                 "collect.chunk_size=2", *extra])


def task_of(text: str) -> int:
    return next(num for num, t in TASKS.items() if t[0] in text)


def block(code: str) -> str:
    return f"```python\n{code}```"


class ScriptedModel:
    """Initial samples: 0 correct, 1 wrong, 2 the same wrong code with a comment (a duplicate once
    normalised). Refinements (three turns): "Explain + Refine" sample 0 explains and fixes, 1 explains and
    stays wrong, 2 repeats sample 0 (a duplicate pair); "Refine" sample 0 fixes, 1 replies nothing, 2 fixes
    with another spacing (a duplicate refinement). Problem 603's refinements never fix it."""

    name = "scripted"

    def __init__(self) -> None:
        self.prompts = 0

    def generate(self, prompts, params, seeds=None):
        self.prompts += len(prompts)
        out = []
        for chat in prompts:
            num = task_of(chat[0]["content"])
            _, _, good, bad, _ = TASKS[num]
            texts = []
            for j in range(params.n):  # every sample is missing in these tests, so j is the sample index
                if len(chat) == 1:
                    texts.append(block([good, bad, "# a comment\n" + bad.replace("    ", "  ")][j % 3]))
                    continue
                fix = bad if num == 603 else good
                if "explain" in chat[-1]["content"].lower():
                    texts.append([f"The function uses the wrong operator.\n\n{block(fix)}",
                                  f"It is fine.\n\n{block(bad)}",
                                  f"The function uses the wrong operator.\n\n{block(fix)}"][j % 3])
                else:
                    texts.append([block(fix), "", block(fix.replace("    ", "  "))][j % 3])
            out.append([Completion(text=t, prompt_tokens=3, completion_tokens=5) for t in texts])
        return out

    def close(self) -> None:
        pass
