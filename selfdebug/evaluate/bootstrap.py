"""Confidence intervals by bootstrap over problems (problems are the unit of sampling in a benchmark)."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    per_problem: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``per_problem`` and its percentile bootstrap interval ``(mean, low, high)``.

    ``per_problem`` may be 1-D (one score per problem) or 2-D ``(problems, 2)`` holding a numerator and a
    denominator per problem, for ratios pooled over problems (the success-refinement rate: fixed / wrong).
    """
    values = np.asarray(per_problem, dtype=float)
    if values.shape[0] == 0:
        raise ValueError("bootstrap_ci needs at least one problem")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    if values.ndim == 1:
        point = float(values.mean())
        stats = values[idx].mean(axis=1)
    elif values.ndim == 2 and values.shape[1] == 2:
        num, den = values[:, 0], values[:, 1]
        point = float(num.sum() / den.sum()) if den.sum() > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = num[idx].sum(axis=1) / den[idx].sum(axis=1)
        stats = stats[np.isfinite(stats)]
        if stats.size == 0:
            return point, float("nan"), float("nan")
    else:
        raise ValueError(f"per_problem must be 1-D or (problems, 2), got shape {values.shape}")
    alpha = (1 - ci) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return point, float(low), float(high)
