import itertools

import pytest

from selfdebug.problems.base import Problem, TestCase
from selfdebug.prompts import (
    format_reply,
    initial_chat,
    normalise_code,
    parse_reply,
    refine_chat,
    reply_layout,
    truncate_feedback,
)

HE = Problem(task_id="T/0", benchmark="humaneval", prompt='def add(a, b):\n    """Add."""\n', entry_point="add",
             style="completion", reference='def add(a, b):\n    """Add."""\n    return a + b\n',
             tests=[TestCase(call="add(1, 2)", expected=3)])
MB = Problem(task_id="1", benchmark="mbpp", prompt="Write add.\nassert add(1, 2) == 3", entry_point="add",
             style="full", reference="def add(a, b):\n    return a + b\n", tests=[TestCase(call="add(1, 2)", expected=3)])


def test_refine_chat_puts_wrong_code_in_the_assistant_turn():
    for kind in ("refine", "explain_refine"):
        chat = refine_chat(MB, "def add(a, b):\n    return a - b\n", "expect add(1, 2) == 3, but was -1", kind)
        assert [m["role"] for m in chat] == ["user", "assistant", "user"]
        assert "return a - b" in chat[1]["content"]
        assert "but was -1" in chat[2]["content"]
    assert "explain" in refine_chat(MB, "x", "f", "explain_refine")[2]["content"].lower()
    assert "explain" not in refine_chat(MB, "x", "f", "refine")[2]["content"].lower()


def test_a_bare_body_is_shown_as_the_whole_function():
    chat = refine_chat(HE, "    return a - b\n", "fb", "refine")
    assert "def add(a, b):" in chat[1]["content"] and "return a - b" in chat[1]["content"]
    assert "```python" in initial_chat(HE)[0]["content"]


def test_parse_reply_takes_the_defining_block_and_the_prose_before_it():
    reply = ("The bug: it subtracts.\n```python\ndef add(a, b):\n    return a - b\n```\nFixed:\n"
             "```python\ndef add(a, b):\n    return a + b\n```\n")
    parsed = parse_reply(reply, "add")
    assert parsed.code.strip().endswith("return a + b")
    assert parsed.explanation.startswith("The bug: it subtracts.") and "```" not in parsed.explanation


def test_parse_reply_handles_a_truncated_block_and_no_block():
    assert parse_reply("```python\ndef add(a, b):\n    return a +", "add").code.startswith("def add")
    raw = parse_reply("def add(a, b):\n    return a + b", "add")
    assert not raw.found_block and raw.code.startswith("def add")


def test_program_composition():
    assert HE.program("    return a + b\n").endswith('"""Add."""\n    return a + b\n')
    whole = HE.program("def add(a, b):\n    return a + b\n")
    assert whole.startswith(HE.prompt) and whole.rstrip().endswith("return a + b")
    assert MB.program("code") == "code"


def test_long_feedback_is_cut_in_the_middle():
    text = "A" * 5000 + "END"
    cut = truncate_feedback(text, 100)
    assert len(cut) < 200 and cut.endswith("END") and "characters cut" in cut


def test_a_fence_after_prose_on_its_line_opens_the_block():
    parsed = parse_reply("Here is the fix: ```python\ndef add(a, b):\n    return a + b\n```", "add")
    assert parsed.code == "def add(a, b):\n    return a + b\n" and parsed.explanation == "Here is the fix:"
    # prose that merely mentions ``` (no Python tag) does not open a block that swallows the real one
    parsed = parse_reply("Use ``` to quote.\n```python\ndef add(a, b):\n    return a + b\n```\n", "add")
    assert parsed.code == "def add(a, b):\n    return a + b\n" and parsed.explanation == "Use ``` to quote."


def test_backticks_inside_the_code_do_not_end_the_block():
    code = 'def add(a, b):\n    s = "```"\n    doc = """\n```\n"""\n    return a + b\n'
    parsed = parse_reply(f"Fixed:\n```python\n{code}```\nThis keeps the fence in a string.", "add")
    assert parsed.code == code
    # a fence glued to the last code line still closes it; the prose after is not code
    assert parse_reply("```python\ndef add(a, b):\n    return a + b```\nDone.", "add").code.endswith("a + b\n")


def test_an_indented_block_is_moved_to_column_zero_but_a_bare_body_keeps_its_indent():
    listed = "1. The fix:\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n2. That is all."
    assert parse_reply(listed, "add").code == "def add(a, b):\n    return a + b\n"
    indented = "```python\n    import math\n\n    def add(a, b):\n        return math.fsum([a, b])\n```"
    assert parse_reply(indented, "add").code == "import math\n\ndef add(a, b):\n    return math.fsum([a, b])\n"
    body = "```python\n    total = a + b\n    return total\n```"  # HumanEval: appended to the signature
    assert parse_reply(body, "add").code == "    total = a + b\n    return total\n"


def test_helpers_and_imports_from_other_blocks_come_with_the_chosen_block():
    reply = ("The helper:\n```python\nimport math\nfrom typing import List\n\nSCALE = 2\n\n"
             "def norm(x):\n    return math.sqrt(x) * SCALE\n\nprint(norm(4))\n```\n"
             "The old code was wrong:\n```python\ndef norm(x):\n    return 0\n\ndef total(xs):\n    return 0\n```\n"
             "Fixed:\n```python\ndef total(xs: List[float]) -> float:\n    result = sum(norm(x) for x in xs)\n"
             "    return result\n```\nUsage:\n```python\nresult = total([4.0])\nprint(result)\n```\nIt works.")
    parsed = parse_reply(reply, "total")
    assert parsed.code == ("import math\nfrom typing import List\n\nSCALE = 2\n\n"
                           "def norm(x):\n    return math.sqrt(x) * SCALE\n\n\n"
                           "def total(xs: List[float]) -> float:\n    result = sum(norm(x) for x in xs)\n"
                           "    return result\n")
    # the prose before the chosen block, without the blocks; the prose after it is not the explanation
    assert parsed.explanation == "The helper:\nThe old code was wrong:\nFixed:"
    # what the chosen block defines itself comes from nowhere else: only the import it lacks is added
    own = parse_reply(reply.replace("Fixed:\n```python\n", "Fixed:\n```python\ndef norm(x):\n    return x\n\n"),
                      "total")
    assert own.code.startswith("from typing import List\n\n\ndef norm(x):\n    return x\n\ndef total(")


CODES = [
    "def f(x):\n    return x + 1\n",
    'def f():\n    return "```"\n',
    'def f():\n    s = """\n```\n````\n"""\n    return s\n',
    "def f():\n    return '`````' + '``'\n",
    "    return a + b\n",
    "\n\n  \ndef f(x):  \n    return x\n\n\n   \n",
    "    def f(x):\n        return x\n",
    "import math\n\n\n@staticmethod\ndef f(x):\n    return math.pi  # π\n",
    "class F:\n    def f(self):\n        return 1\n\nprint(F().f())\n",
    "def f(x:\n    return ```\n```\n",
    "x = 1",
]
EXPLANATIONS = ["", "   \n", "The loop stops one short.", "  Two paragraphs.\n\nWith `inline` and ``double`` code.  ",
                "def f(x): is wrong because:", "Output:\n    indented text\n~~~"]


@pytest.mark.parametrize(("code", "explanation"), list(itertools.product(CODES, EXPLANATIONS)))
def test_format_reply_parses_back_to_what_it_was_built_from(code, explanation):
    reply = format_reply(explanation, code)
    for entry_point in (None, "f", "missing"):
        parsed = parse_reply(reply, entry_point)
        assert (parsed.code, parsed.explanation, parsed.found_block) == (normalise_code(code), explanation.strip(), True)
    assert normalise_code(normalise_code(code)) == normalise_code(code)


def test_format_reply_refuses_what_cannot_round_trip():
    with pytest.raises(ValueError, match="code is empty"):
        format_reply("why", "  \n")
    with pytest.raises(ValueError, match="backticks"):
        format_reply("see ```python\nx\n```", "x = 1\n")


@pytest.mark.parametrize("reply", [
    "The bug: off by one.\n\n```python\ndef f(x):\n    return x + 1\n```\nDone.",
    "First the old code:\n```python\ndef f(x):\n    return x\n```\nIt forgets one. Fixed:\n```python\ndef f(x):\n"
    "    return x + 1\n```\n",
    "Here: ```python\ndef f(x):\n    s = '```'\n    return x + 1\n```",
    "def f(x):\n    return x + 1\n",
    "Cut off by the limit:\n```python\ndef f(x):\n    return x +",
])
def test_the_layout_locates_what_parse_reply_returns(reply):
    """``reply_layout`` (where RL puts its rewards) points at the very text ``parse_reply`` takes: the chosen block's
    content and the prose before it."""
    layout = reply_layout(reply, "f")
    parsed = parse_reply(reply, "f")
    assert layout.found_block == parsed.found_block
    start, end = layout.code
    if parsed.found_block:
        assert normalise_code(reply[start:end]) == parsed.code
    else:
        assert reply[start:end].strip("\n") == parsed.code
    assert "".join(reply[s:e] for s, e in layout.prose).strip() == parsed.explanation
