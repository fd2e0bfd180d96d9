"""pass@k with the unbiased estimator of Chen et al. (2021), in its numerically stable product form."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes.

    ``1 - C(n-c, k) / C(n, k)`` computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the
    huge binomials. A ``k`` larger than ``n`` is an error: the estimate does not exist, and counting it as
    1.0 or dropping the problem would inflate the score.
    """
    if not (isinstance(n, (int, np.integer)) and isinstance(c, (int, np.integer)) and isinstance(k, (int, np.integer))):
        raise TypeError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or k < 1:
        raise ValueError(f"pass_at_k needs n >= 1 and k >= 1, got n={n}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} is undefined with only n={n} samples (k must be <= n)")
    if not 0 <= c <= n:
        raise ValueError(f"number correct c={c} must lie in 0..n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_per_problem(ns: Sequence[int], cs: Sequence[int], k: int) -> np.ndarray:
    """pass@k for each problem; every problem must have at least k samples (else ValueError naming it)."""
    if len(ns) != len(cs):
        raise ValueError(f"{len(ns)} sample counts but {len(cs)} correct counts")
    out = np.empty(len(ns))
    for i, (n, c) in enumerate(zip(ns, cs, strict=True)):
        try:
            out[i] = pass_at_k(int(n), int(c), k)
        except ValueError as exc:
            raise ValueError(f"problem #{i}: {exc}") from exc
    return out


def mean_pass_at_k(ns: Sequence[int], cs: Sequence[int], k: int) -> float:
    return float(pass_at_k_per_problem(ns, cs, k).mean())
