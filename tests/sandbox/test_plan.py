"""Per-test time limits: evalplus's rule, max(floor, factor x reference time), capped."""

from __future__ import annotations

import pytest

from selfdebug.sandbox.plan import time_limits
from selfdebug.sandbox.types import SandboxConfig

CFG = SandboxConfig(timeout_floor_s=1.0, timeout_factor=4.0, per_test_timeout_cap_s=10.0)


def test_limit_is_the_larger_of_floor_and_factor_times_reference() -> None:
    # evalplus 0.3.1, untrusted_check: max(min_time_limit, gt_time_limit_factor * t) with 1.0 and 4.0
    assert time_limits(CFG, 3, [0.1, 0.5, 2.0]) == pytest.approx([1.0, 2.0, 8.0])


def test_limit_is_capped_and_unfinished_reference_tests_get_the_cap() -> None:
    assert time_limits(CFG, 2, [5.0, None]) == [10.0, 10.0]


def test_no_reference_gives_every_test_the_floor() -> None:
    assert time_limits(CFG, 3, []) == [1.0, 1.0, 1.0]
