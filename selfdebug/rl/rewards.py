"""The paper's two rewards (LeDex §2.3, App. A.3), as pure functions of the scores in ``selfdebug.rl.scores``.

Both live on the same [-5, 5] scale and are added at different tokens (``selfdebug.rl.positions``):

- refinement: ``R(r) = 5 * (S_cb + S_ut) - 5``, the average of CodeBLEU against the verified refinements of the
  same wrong solution and the unit-test pass rate, rescaled from [0, 1] to [-5, 5];
- explanation: ``R(e) = (50 * S_ex - 35) / 3``, which maps the cosine similarities the paper observed, [0.4, 1.0],
  onto [-5, 5], with 0.7 the border between a good and a bad explanation (reward 0).

No reference (the paper does not say what it did; ``LEDEX.md`` §4.4 lists it as unconfirmed):

- a wrong solution with no verified refinement has nothing to compute CodeBLEU against. ``s_cb=None`` then
  counts the unit tests twice (``S_cb := S_ut``, so ``R(r) = 10 * S_ut - 5``). Setting ``S_cb = 0`` would cap a
  refinement that passes every test at 0, below a correct refinement of an easier problem that merely resembles
  its reference: it would punish the policy for the problem being hard, exactly where a fix is worth the most.
  A refinement that fails every test still gets -5, as it would with ``S_cb = 0``.
- a wrong solution with no verified explanation (only "Refine" pairs were verified, or none) has nothing to
  compare an explanation with. ``s_ex=None`` gives 0, the value at the good/bad border: no reward and no penalty.
  ``S_ex = 0`` would give -35/3 = -11.7, more than twice the bottom of the paper's range, for something the
  policy cannot change. (An empty explanation is another matter: there is no explanation token to reward, so the
  refinement reward alone applies, as the paper says for replies without an explanation.)
"""

from __future__ import annotations

REFINEMENT_SCALE = 5.0
REFINEMENT_OFFSET = -5.0
EXPLANATION_SCALE = 50.0
EXPLANATION_OFFSET = -35.0
EXPLANATION_DIVISOR = 3.0


def _clip(value: float, clip: float | None) -> float:
    return value if clip is None else max(-clip, min(clip, value))


def refinement_reward(s_cb: float | None, s_ut: float, scale: float = REFINEMENT_SCALE,
                      offset: float = REFINEMENT_OFFSET, clip: float | None = None) -> float:
    """``scale * (s_cb + s_ut) + offset`` (the paper: ``5 * (S_cb + S_ut) - 5``).

    ``s_cb``: mean CodeBLEU against the verified refinements, in [0, 1]; ``None`` when the wrong solution has
    none, which counts ``s_ut`` in its place (module docstring). ``s_ut``: share of the problem's tests passed.
    ``clip``: bound the reward to [-clip, clip] (None: the paper's formula as it is)."""
    if not 0.0 <= s_ut <= 1.0:
        raise ValueError(f"s_ut is a pass fraction in [0, 1], got {s_ut}")
    s_cb = s_ut if s_cb is None else s_cb
    return _clip(scale * (s_cb + s_ut) + offset, clip)


PAPER_EXPLANATION_RANGE = (0.4, 1.0)
"""The cosine similarities the paper observed with all-roberta-large-v1; its constants map them onto [-5, 5]."""


def explanation_constants(low: float, high: float) -> tuple[float, float, float]:
    """``(scale, offset, divisor)`` of ``explanation_reward`` that map ``[low, high]`` linearly onto [-5, 5]
    (the midpoint to 0): ``[0.4, 1.0]`` gives the paper's ``(50, -35, 3)``."""
    if not low < high:
        raise ValueError(f"explanation range must have low < high, got [{low}, {high}]")
    # 50 * (s - midpoint) / divisor is +5 at s = high when divisor = 5 * (high - low): the paper's 50 and 3 at
    # its own range, and the same form at any other
    return 50.0, -50.0 * (low + high) / 2.0, 5.0 * (high - low)


def explanation_reward(s_ex: float | None, scale: float = EXPLANATION_SCALE, offset: float = EXPLANATION_OFFSET,
                       divisor: float = EXPLANATION_DIVISOR, clip: float | None = None) -> float:
    """``(scale * s_ex + offset) / divisor`` (the paper: ``(50 * S_ex - 35) / 3``).

    ``s_ex``: mean cosine similarity to the verified explanations; ``None`` when there are none, which gives 0,
    the reward at the good/bad border (module docstring). Cosine similarity may be below the paper's observed
    0.4, so the reward may be below -5; ``clip`` bounds it (None: the paper's formula as it is)."""
    if s_ex is None:
        return 0.0
    return _clip((scale * s_ex + offset) / divisor, clip)
