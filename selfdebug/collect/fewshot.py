"""The sampling prompt: the plain instruction chat, or for base models (the paper-* profiles) a k-shot one.

The paper sampled its pre-trained models "with 3-shot examples" (§2.1). Ours are MBPP's prompt split
(task ids 1-10, reserved upstream for few-shot prompting and in no train or test split), shown as earlier
turns of the same chat: each example's task as a user turn, its reference solution as the assistant's
answer (written with ``format_reply``), then the problem. The StarChat format renders it for a base model.
"""

from __future__ import annotations

from functools import lru_cache

from selfdebug.generate.base import Chat
from selfdebug.problems.base import Problem
from selfdebug.prompts import format_reply, initial_chat

FEW_SHOT_TASKS = (2, 3, 4)
"""MBPP prompt-split tasks used first (the usual MBPP few-shot choice); more come from the rest of the split."""


@lru_cache(maxsize=4)
def _examples(mirror: str | None) -> tuple[Problem, ...]:
    from selfdebug.problems.mbpp import load_mbpp

    pool = load_mbpp("prompt", mirror=mirror)
    nums = [p.metadata["task_num"] for p in pool]
    order = [n for n in FEW_SHOT_TASKS if n in nums] + [n for n in nums if n not in FEW_SHOT_TASKS]
    by_num = {p.metadata["task_num"]: p for p in pool}
    return tuple(by_num[n] for n in order)


def sampling_chat(problem: Problem, shots: int = 0, mirror: str | None = None) -> Chat:
    """``initial_chat(problem)``, preceded by ``shots`` solved examples when ``shots > 0``."""
    if shots <= 0:
        return initial_chat(problem)
    examples = _examples(mirror)
    if shots > len(examples):
        raise ValueError(f"collect.few_shot={shots}: MBPP's prompt split has only {len(examples)} examples")
    chat: Chat = []
    for ex in examples[:shots]:
        chat += [*initial_chat(ex), {"role": "assistant", "content": format_reply("", ex.reference)}]
    return chat + initial_chat(problem)
