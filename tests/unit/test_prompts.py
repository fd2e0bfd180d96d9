from selfdebug.problems.base import Problem, TestCase
from selfdebug.prompts import initial_chat, parse_reply, refine_chat, truncate_feedback

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
