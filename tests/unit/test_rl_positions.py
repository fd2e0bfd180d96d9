"""Where the rewards land (``selfdebug.rl.positions``), on text tokenised by the tiny model's byte-level BPE
tokenizer: the last explanation token and the last code token (not the fence), for "Explain + Refine" and
"Refine" replies, from the offset mapping and from generated ids; and the per-token reward vector."""

from __future__ import annotations

import pytest
import torch

from selfdebug.prompts import format_reply, parse_reply
from selfdebug.rl.positions import (
    offsets_from_ids,
    reply_spans,
    reward_positions,
    reward_positions_for_ids,
    token_rewards,
)

EXPLANATION = "The loop stops one element too early → the last item is never added."
CODE = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def tok():
    from selfdebug.generate.tiny import _train_tokenizer

    return _train_tokenizer(512)  # the tiny model's tokenizer, without writing the model


def shown(tok, text: str, index: int | None) -> str:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    if index is None:
        return "None"
    s, e = enc["offset_mapping"][index]
    return f"token {index} {tokens[index]!r} = {text[s:e]!r} (of {len(tokens)}; next: {tokens[index + 1:index + 3]})"


def piece(tok, text: str, index: int) -> str:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    s, e = enc["offset_mapping"][index]
    return text[s:e]


def test_explain_refine_positions(tok):
    reply = format_reply(EXPLANATION, CODE)
    assert parse_reply(reply).explanation == EXPLANATION  # the format the positions read
    pos = reward_positions(tok, reply)
    msg = f"explanation at {shown(tok, reply, pos.explanation)}; code at {shown(tok, reply, pos.code)}"
    # the explanation ends with its full stop, the code with "b" of "a + b": not the newline, not the fence
    assert piece(tok, reply, pos.explanation).endswith("."), msg
    assert piece(tok, reply, pos.code).strip() == "b", msg
    n = len(tok(reply, add_special_tokens=False)["input_ids"])
    assert pos.explanation < pos.code < n - 2, msg  # the closing fence and newline come after
    assert "```" in tok.decode(tok(reply, add_special_tokens=False)["input_ids"][pos.code + 1:]), msg


def test_refine_positions_have_no_explanation(tok):
    reply = format_reply("", CODE)
    pos = reward_positions(tok, reply, mode="refine")
    msg = f"code at {shown(tok, reply, pos.code)}"
    assert pos.explanation is None, msg
    assert piece(tok, reply, pos.code).strip() == "b", msg
    # prose in a "Refine" reply earns no explanation reward; an Explain+Refine reply without prose neither
    assert reward_positions(tok, format_reply(EXPLANATION, CODE), mode="refine").explanation is None
    assert reward_positions(tok, reply).explanation is None


def test_quoted_wrong_code_and_prose_after_the_block(tok):
    # the explanation quotes the wrong code; parse_reply picks the block defining the entry point, last
    reply = ("The bug is here:\n```python\ndef add(a, b):\n    return a - b\n```\nIt subtracts instead of adding.\n\n"
             + format_reply("", CODE) + "\nHope this helps!")
    parsed = parse_reply(reply, entry_point="add")
    assert parsed.code == CODE and parsed.explanation.endswith("adding.")
    pos = reward_positions(tok, reply, entry_point="add")
    msg = f"explanation at {shown(tok, reply, pos.explanation)}; code at {shown(tok, reply, pos.code)}"
    assert piece(tok, reply, pos.explanation).endswith("."), msg
    spans = reply_spans(reply, entry_point="add")
    assert reply[: spans.explanation_end + 1].endswith("adding."), msg
    assert reply[: spans.code_end + 1].endswith("return a + b"), msg


def test_unterminated_block_ends_at_the_last_code_character(tok):
    reply = f"{EXPLANATION}\n\n```python\n{CODE}    "  # cut off by the token limit
    spans = reply_spans(reply)
    assert reply[: spans.code_end + 1].endswith("a + b")
    assert reply[: spans.explanation_end + 1].endswith("added.")
    assert reply_spans("return 1\n").explanation_end is None  # no block: all code


def test_positions_from_generated_ids_match_the_offset_mapping(tok):
    reply = format_reply(EXPLANATION, CODE)
    ids = tok(reply, add_special_tokens=False)["input_ids"]
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    text, spans = offsets_from_ids(tok, [*ids, eos])
    assert text == reply and spans[-1][0] == spans[-1][1]  # the skipped special token has an empty span
    assert reward_positions_for_ids(tok, [*ids, eos]) == reward_positions(tok, reply)


def test_token_rewards_places_rewards_and_subtracts_kl():
    kl = torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5])
    out = token_rewards(5, [(1, 2.0), (3, -4.0), (None, 9.0)], kl, kl_coef=0.5)
    assert torch.allclose(out, torch.tensor([-0.05, 2.1, -0.15, -4.0, -0.25]))
    both = token_rewards(3, [(2, 1.0), (2, 0.5)])
    assert both.tolist() == [0.0, 0.0, 1.5]
    with pytest.raises(IndexError):
        token_rewards(3, [(3, 1.0)])
    with pytest.raises(ValueError):
        token_rewards(3, [], torch.zeros(4), 0.1)
