"""The execution cache's key of a problem's tests: any plain value a test expects (MBPP train has dicts with
tuple keys) gives a key, the same one in every process, and a different one when a test changes."""

from __future__ import annotations

import subprocess
import sys

from selfdebug.collect.common import _tests_digest, problem_digest
from selfdebug.config import REPO_ROOT
from selfdebug.problems.base import Problem, TestCase


def problem(expected: object) -> Problem:
    return Problem(task_id="MBPP/700", benchmark="mbpp", prompt="", entry_point="f", style="full", reference="",
                   tests=[TestCase("f()", expected)])


def test_tests_with_tuple_keys_and_sets_get_a_stable_key():
    value = {(1, 2): {"b", "a", "c"}, (0, 1): frozenset({3, 1}), "k": [1.5, None, (2,)]}
    key = _tests_digest(problem(value))
    code = ("from selfdebug.collect.common import _tests_digest, problem_digest\nfrom selfdebug.problems.base import Problem, "
            "TestCase\nv = {(1, 2): {'b', 'a', 'c'}, (0, 1): frozenset({3, 1}), 'k': [1.5, None, (2,)]}\n"
            "print(_tests_digest(Problem(task_id='MBPP/700', benchmark='mbpp', prompt='', entry_point='f', "
            "style='full', reference='', tests=[TestCase('f()', v)])))")
    # another interpreter hashes strings with another seed: set order differs, the key must not
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}, check=True).stdout.strip()
    assert other == key
    assert _tests_digest(problem({(1, 2): {"a"}})) != key
    assert _tests_digest(problem([1, 2])) != _tests_digest(problem((1, 2)))  # a list is not a tuple


def test_the_sample_stage_names_its_problems_the_same_in_every_process():
    """A finished stage is recognised by its hash; a set of strings in a test must not change it per process."""
    code = ("from selfdebug.collect.common import problem_digest\nfrom selfdebug.problems.base import Problem, "
            "TestCase\nprint(problem_digest(Problem(task_id='MBPP/700', benchmark='mbpp', prompt='', "
            "entry_point='f', style='full', reference='', tests=[TestCase('f()', {'b', 'a', 'c', 'd'})])))")
    runs = {subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout.strip() for seed in ("1", "2", "3")}
    assert runs == {problem_digest(problem({"b", "a", "c", "d"}))}

