"""Chat rendering: the tokenizer's template when present, the paper's StarChat format otherwise."""

from __future__ import annotations

import pytest

from selfdebug.generate.chat import (
    STARCHAT_END,
    render_chat,
    render_prompt,
    render_starchat,
    resolve_chat_format,
    stop_strings,
    with_prefix,
)
from selfdebug.generate.tiny import CHAT_TEMPLATE, _train_tokenizer

CHAT = [
    {"role": "system", "content": "You are a programmer."},
    {"role": "user", "content": "Write add(a, b)."},
    {"role": "assistant", "content": "def add(a, b):\n    return a - b"},
    {"role": "user", "content": "AssertionError: expect add(1, 2) == 3, but was -1. Fix it."},
]


@pytest.fixture(scope="module")
def tok_template():
    tok = _train_tokenizer(300)
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(scope="module")
def tok_base():
    return _train_tokenizer(300)


def test_starchat_exact_format():
    assert render_starchat(CHAT) == (
        "<|system|>\nYou are a programmer.<|end|>\n"
        "<|user|>\nWrite add(a, b).<|end|>\n"
        "<|assistant|>\ndef add(a, b):\n    return a - b<|end|>\n"
        "<|user|>\nAssertionError: expect add(1, 2) == 3, but was -1. Fix it.<|end|>\n"
        "<|assistant|>\n"
    )


def test_template_is_used_when_present(tok_template):
    text = render_chat(CHAT, tok_template, "auto")
    assert text.startswith("<|im_start|>system\nYou are a programmer.<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|user|>" not in text
    assert resolve_chat_format(tok_template, "auto") == "template"


def test_base_model_falls_back_to_starchat(tok_base):
    assert resolve_chat_format(tok_base, "auto") == "starchat"
    assert render_chat(CHAT, tok_base) == render_starchat(CHAT)
    with pytest.raises(ValueError, match="no chat template"):
        render_chat(CHAT, tok_base, "template")


def test_starchat_can_be_forced(tok_template):
    assert render_chat(CHAT, tok_template, "starchat") == render_starchat(CHAT)


def test_stop_strings_add_end_marker_only_for_starchat_chats(tok_template, tok_base):
    assert stop_strings(CHAT, tok_base, "auto", ("\nassert",)) == ("\nassert", STARCHAT_END)
    assert stop_strings(CHAT, tok_template, "auto", ("\nassert",)) == ("\nassert",)
    assert stop_strings("def f():", tok_base, "auto", ()) == ()  # raw prompts are sent as is
    assert render_prompt("def f():", tok_base) == "def f():"


@pytest.mark.parametrize(
    "chat, match",
    [
        ([], "non-empty list"),
        ([{"role": "user"}], "'role' and 'content'"),
        ([{"role": "bot", "content": "x"}], "role must be one of"),
        ([{"role": "user", "content": 3}], "content must be a str"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "system message may only come first",
        ),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message"),
        ([{"role": "user", "content": "a", "prefix": True}], "must be an assistant"),
        ([{"role": "assistant", "content": "a", "prefix": True}], "needs a turn before it"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "prefix": True},
          {"role": "user", "content": "c"}], "only the last message"),
    ],
)
def test_bad_chats_are_rejected_clearly(chat, match):
    with pytest.raises(ValueError, match=match):
        render_starchat(chat)


def test_unknown_chat_format_is_rejected(tok_template):
    with pytest.raises(ValueError, match="chat_format must be one of"):
        render_chat(CHAT, tok_template, "chatml")


def test_a_reply_prefix_is_the_open_assistant_turn_followed_by_its_text(tok_template, tok_base):
    """The model continues the prefix: the rendered prompt is the chat without it, with the assistant turn
    opened, and then the prefix text exactly (no end-of-turn after it)."""
    prefix = "The code above is wrong because"
    chat = with_prefix(CHAT, prefix)
    assert render_chat(chat, tok_template) == render_chat(CHAT, tok_template) + prefix
    assert render_starchat(chat) == render_starchat(CHAT) + prefix
    assert render_chat(chat, tok_base) == render_starchat(CHAT) + prefix
    assert CHAT[-1]["role"] == "user"  # with_prefix copies
