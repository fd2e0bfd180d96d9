"""The rewards of a batch of sampled responses (LeDex §2.3, App. A.3): parse, run, score, place.

For each response (the generated token ids of one ``RlPrompt``):

1. the text is decoded from the ids, with each token's character span (``positions.offsets_from_ids``: the
   rewards land on the tokens that were sampled, not on a re-tokenisation);
2. it is read as the collection's filter reads a teacher's reply (``selfdebug.prompts.parse_reply``, then
   ``selfdebug.sanitize.sanitize_for``); a "Refine" prompt's reply has no explanation, whatever its prose;
3. the code runs **in the sandbox only** (``executor``: ``selfdebug.collect.common.CachedExecutor`` over the
   configured sandbox, which also logs and reuses verdicts) against the problem's tests: ``S_ut = n_passed /
   n_total``; a reply without code is not run (``S_ut = 0``);
4. ``S_cb``: mean CodeBLEU against the solution's verified refinements; ``S_ex``: mean embedding cosine
   similarity of the explanation to the verified explanations (``selfdebug.rl.scores``; None without
   references, see ``selfdebug.rl.rewards`` for what that gives), mapped onto the reward by the configured
   similarity range (``rl.explanation_range``; the paper's [0.4, 1.0] by default);
5. the refinement reward lands on the last code token and the explanation reward on the last explanation token
   (``selfdebug.rl.positions``); a reply with no visible code character (empty, or an empty block) gets its
   refinement reward on its last token, so that an empty reply is not rewarded 0 for saying nothing.
   ``rewards`` is the per-token vector of these placements (the KL term is PPO's, ``selfdebug.rl.step``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from selfdebug.problems.base import Problem
from selfdebug.prompts import parse_reply
from selfdebug.rl.data import RlPrompt
from selfdebug.rl.positions import RewardPositions, offsets_from_ids, positions_from_offsets, token_rewards
from selfdebug.rl.rewards import (
    PAPER_EXPLANATION_RANGE,
    explanation_constants,
    explanation_reward,
    refinement_reward,
)
from selfdebug.rl.scores import CODEBLEU_WEIGHTS, Embedder, codebleu_score, explanation_similarity
from selfdebug.sanitize import sanitize_for

Executor = Callable[[list[tuple[str, Problem]]], list[dict[str, Any]]]
"""(program, problem) pairs -> sandbox verdicts (dicts with ``status``, ``passed``, ``n_passed``, ``n_total``)."""


@dataclass
class ScoredResponse:
    prompt_id: str
    fmt: str
    text: str
    explanation: str
    code: str
    status: str
    """The sandbox's verdict (``passed``, ``wrong_answer``, ...), or ``no_code``."""
    s_ut: float
    s_cb: float | None
    s_ex: float | None
    refinement_reward: float
    explanation_reward: float | None
    """None: no explanation token (a "Refine" reply, or no prose before the code)."""
    positions: RewardPositions
    code_index: int
    """Where the refinement reward lands (``positions.code``, else the last token)."""
    n_tokens: int
    rewards: torch.Tensor = field(repr=False)
    """``[n_tokens]``: the two rewards at their tokens, 0 elsewhere."""

    @property
    def placements(self) -> list[tuple[int | None, float]]:
        out: list[tuple[int | None, float]] = []
        if self.explanation_reward is not None:
            out.append((self.positions.explanation, self.explanation_reward))
        out.append((self.code_index, self.refinement_reward))
        return out

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_row(self) -> dict[str, Any]:
        """JSON-safe, for the run's rollout log."""
        return {"prompt_id": self.prompt_id, "format": self.fmt, "text": self.text, "status": self.status,
                "s_ut": self.s_ut, "s_cb": self.s_cb, "s_ex": self.s_ex, "refinement_reward": self.refinement_reward,
                "explanation_reward": self.explanation_reward, "explanation_index": self.positions.explanation,
                "code_index": self.code_index, "n_tokens": self.n_tokens}


class RewardFunction:
    """Scores responses to ``RlPrompt``s; see the module docstring. ``embedder`` is used only when a reply has
    an explanation and its solution has verified explanations (a lazy ``SentenceEmbedder`` loads then)."""

    def __init__(self, tokenizer: Any, executor: Executor, embedder: Embedder,
                 codebleu_weights: Sequence[float] = CODEBLEU_WEIGHTS, reward_clip: float | None = None,
                 explanation_range: Sequence[float] = PAPER_EXPLANATION_RANGE):
        self.tokenizer, self.executor, self.embedder = tokenizer, executor, embedder
        self.weights = tuple(codebleu_weights)
        self.reward_clip = reward_clip
        self.explanation_constants = explanation_constants(*explanation_range)

    def __call__(self, prompts: Sequence[RlPrompt], responses: Sequence[Sequence[int]]) -> list[ScoredResponse]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        parsed = []
        for prompt, ids in zip(prompts, responses, strict=True):
            if not len(ids):
                raise ValueError(f"{prompt.prompt_id}: an empty response (a response holds at least its end token)")
            text, offsets = offsets_from_ids(self.tokenizer, list(ids))
            problem = prompt.problem
            reply = parse_reply(text, problem.entry_point)
            code = sanitize_for(problem, reply.code) if reply.code.strip() else ""
            explanation = reply.explanation if prompt.fmt == "explain_refine" else ""
            positions = positions_from_offsets(text, offsets, problem.entry_point, prompt.fmt)
            parsed.append((text, code, explanation, positions, len(ids)))
        runs = [i for i, (_, code, *_rest) in enumerate(parsed) if code.strip()]
        verdicts = dict(zip(runs, self.executor([(prompts[i].problem.program(parsed[i][1]), prompts[i].problem)
                                                 for i in runs]), strict=True)) if runs else {}
        out = []
        for i, (prompt, (text, code, explanation, positions, n)) in enumerate(zip(prompts, parsed, strict=True)):
            verdict = verdicts.get(i)
            if verdict is None:
                status, s_ut = "no_code", 0.0
            else:
                total = verdict.get("n_total") or 0
                status = verdict["status"]
                s_ut = (verdict.get("n_passed") or 0) / total if total else float(bool(verdict.get("passed")))
            s_cb = codebleu_score(code, prompt.refinements, self.weights)
            r_code = refinement_reward(s_cb, s_ut, clip=self.reward_clip)
            s_ex, r_expl = None, None
            if positions.explanation is not None and explanation.strip():
                s_ex = explanation_similarity(explanation, prompt.explanations, self.embedder)
                r_expl = explanation_reward(s_ex, *self.explanation_constants, clip=self.reward_clip)
            code_index = positions.code if positions.code is not None else n - 1
            scored = ScoredResponse(prompt.prompt_id, prompt.fmt, text, explanation, code, status, s_ut, s_cb, s_ex,
                                    r_code, r_expl, positions, code_index, n, torch.zeros(0))
            scored.rewards = token_rewards(n, scored.placements)
            out.append(scored)
        return out
