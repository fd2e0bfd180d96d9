"""Prompt-completion examples as token ids with an explicit loss mask.

``labels`` is -100 on every prompt token (the task, the wrong solution although it is an assistant turn, the
feedback turn and the header of the final assistant turn) and the token id on the completion: the final
reply and its end-of-turn token, nothing after it (ChatML templates put a newline after ``<|im_end|>``,
which the model never has to produce). TRL's ``assistant_only_loss`` would train on the wrong code, an
assistant turn; a pre-tokenised dataset with ``labels`` is left as it is by ``SFTTrainer``, so what is
trained on is decided here alone and tested (``tests/unit/test_sft_examples.py``).
"""

from __future__ import annotations

from typing import Any

from selfdebug.sft.examples import Example, ExampleError

IGNORE = -100
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
"""End-of-turn tokens of common chat templates (ChatML, Llama 3, StarChat/Phi, Gemma), besides EOS."""


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in END_OF_TURN_TOKENS if t in vocab}
    return ids


def _ids(out: Any) -> list[int]:
    """``apply_chat_template(tokenize=True)`` returns a list, or a mapping with ``input_ids`` (newer versions)."""
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def tokenize_example(tokenizer: Any, example: Example, max_length: int | None = None) -> dict[str, Any]:
    """``input_ids``, ``labels``, ``attention_mask`` (and ``n_completion``) of one example; raises
    ``ExampleError`` when the template does not render the prompt as a prefix of the whole chat, or when the
    example is longer than ``max_length`` (cut examples would train on code without its end)."""
    prompt = _ids(tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=True))
    full = _ids(tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True))
    if full[: len(prompt)] != prompt:
        raise ExampleError(f"example {example['example_id']}: the chat template renders the prompt differently "
                           "alone and followed by the reply, so the completion cannot be told apart")
    completion = full[len(prompt):]
    ends = end_of_turn_ids(tokenizer)
    cut = next((i for i, t in enumerate(completion) if t in ends), None)
    if cut is None:  # a template that does not close the turn: the model must still learn to stop
        if tokenizer.eos_token_id is None:
            raise ExampleError(f"example {example['example_id']}: no end-of-turn token in the template, no EOS")
        completion = [*completion, tokenizer.eos_token_id]
    else:
        completion = completion[: cut + 1]
    ids = prompt + completion
    if max_length is not None and len(ids) > max_length:
        raise ExampleError(f"example {example['example_id']}: {len(ids)} tokens, more than max_length {max_length}")
    return {"input_ids": ids, "labels": [IGNORE] * len(prompt) + completion, "attention_mask": [1] * len(ids),
            "n_completion": len(completion)}


def tokenize_examples(tokenizer: Any, examples: list[Example], max_length: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Tokenised examples, and the ids of those dropped as longer than ``max_length`` (counted, not cut)."""
    kept, dropped = [], []
    for e in examples:
        try:
            row = tokenize_example(tokenizer, e, max_length)
        except ExampleError as err:
            if "more than max_length" not in str(err):
                raise
            dropped.append(e["example_id"])
            continue
        kept.append({"example_id": e["example_id"], "kind": e["kind"], **row})
    return kept, dropped


def unmasked_text(tokenizer: Any, row: dict[str, Any]) -> str:
    """The text the loss is computed on (for tests and for looking at a dataset)."""
    return tokenizer.decode([t for t in row["labels"] if t != IGNORE])


def masked_text(tokenizer: Any, row: dict[str, Any]) -> str:
    return tokenizer.decode([t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab == IGNORE])
