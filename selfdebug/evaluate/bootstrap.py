"""Confidence intervals by bootstrap over problems (problems are the unit of sampling in a benchmark).

Three forms: a single mean or pooled ratio (``bootstrap_ci``); the difference of two such numbers measured
on the same problems (``paired_bootstrap_diff``: both sides are resampled with the same indices, so the
interval reflects the per-problem pairing, not two independent spreads); and the unweighted mean over
groups of benchmarks that share their problems (``bootstrap_group_mean``: HumanEval and HumanEval+ are
rows of the same problems and must be resampled together).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np


def _check(values: np.ndarray, name: str = "per_problem") -> None:
    if values.shape[0] == 0:
        raise ValueError(f"{name}: the bootstrap needs at least one problem")
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 2)):
        raise ValueError(f"{name} must be 1-D or (problems, 2), got shape {values.shape}")


def _point(values: np.ndarray) -> float:
    """The statistic on the sample itself: a mean (1-D) or a pooled ratio sum(num) / sum(den) (2-D)."""
    if values.ndim == 1:
        return float(values.mean())
    den = values[:, 1].sum()
    return float(values[:, 0].sum() / den) if den > 0 else float("nan")


def _replicates(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The statistic on every bootstrap replicate (rows of ``idx``); NaN where a ratio has no denominator."""
    if values.ndim == 1:
        return values[idx].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return values[:, 0][idx].sum(axis=1) / values[:, 1][idx].sum(axis=1)


def _interval(point: float, stats: np.ndarray, ci: float) -> tuple[float, float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return point, float("nan"), float("nan")
    alpha = (1 - ci) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return point, float(low), float(high)


def _indices(n_problems: int, n_boot: int, ci: float, seed: int) -> np.ndarray:
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_problems, size=(n_boot, n_problems))


def bootstrap_ci(
    per_problem: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``per_problem`` and its percentile bootstrap interval ``(mean, low, high)``.

    ``per_problem`` may be 1-D (one score per problem) or 2-D ``(problems, 2)`` holding a numerator and a
    denominator per problem, for ratios pooled over problems (the success-refinement rate: fixed / wrong).
    """
    values = np.asarray(per_problem, dtype=float)
    _check(values)
    idx = _indices(values.shape[0], n_boot, ci, seed)
    return _interval(_point(values), _replicates(values, idx), ci)


def paired_bootstrap_diff(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``statistic(a) - statistic(b)`` with a paired percentile interval ``(diff, low, high)``.

    Row i of ``a`` and of ``b`` must be the same problem (two approaches, or two models, on it); each
    replicate draws one set of problem indices and applies it to both sides. Shapes as in ``bootstrap_ci``.
    """
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    _check(va, "a")
    _check(vb, "b")
    if va.shape != vb.shape:
        raise ValueError(f"a paired bootstrap needs both sides on the same problems: shapes {va.shape} and {vb.shape}")
    idx = _indices(va.shape[0], n_boot, ci, seed)
    return _interval(_point(va) - _point(vb), _replicates(va, idx) - _replicates(vb, idx), ci)


def bootstrap_group_mean(
    groups: Sequence[Sequence[np.ndarray]], *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Unweighted mean over groups of (the mean over a group's members of each member's statistic).

    ``groups[g][m]`` is member m of group g, shaped as in ``bootstrap_ci``; the members of one group hold
    the same problems in the same rows and are resampled with the same indices; groups are resampled
    independently. A member whose statistic is undefined (a ratio with no denominator) is left out of its
    group's mean, and a group with no defined member out of the overall mean.
    """
    if not groups or any(not members for members in groups):
        raise ValueError("bootstrap_group_mean needs at least one group, each with at least one member")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rng = np.random.default_rng(seed)  # one stream, drawn group after group: groups are independent
    points, reps = [], []
    for g, members in enumerate(groups):
        vals = [np.asarray(m, dtype=float) for m in members]
        for m, v in enumerate(vals):
            _check(v, f"group {g} member {m}")
            if v.shape != vals[0].shape:
                raise ValueError(f"group {g}: members must hold the same problems; shapes {v.shape} and {vals[0].shape}")
        idx = rng.integers(0, vals[0].shape[0], size=(n_boot, vals[0].shape[0]))
        with _quiet_nanmean():
            points.append(np.nanmean([_point(v) for v in vals]))
            reps.append(np.nanmean(np.stack([_replicates(v, idx) for v in vals]), axis=0))
    with _quiet_nanmean():
        point = float(np.nanmean(points))
        stats = np.nanmean(np.stack(reps), axis=0)
    return _interval(point, stats, ci)


@contextmanager
def _quiet_nanmean() -> Iterator[None]:
    """nanmean over an all-NaN slice is NaN (what we want: undefined stays undefined) but warns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        yield


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / n1 n0); NaN if a side is empty."""
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    above = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(above / (positive.size * negative.size))
