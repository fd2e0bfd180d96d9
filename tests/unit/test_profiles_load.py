"""Every profile in configs/ loads, and so do the problems of every benchmark it names.

Through the evaluation stage's own loader (``selfdebug.evaluate.stage.load_problems``), so a profile that
names a benchmark which cannot be loaded here (an unpinned file, a loader that rejects the data) fails this
test instead of the first minutes of a run. Each benchmark file is converted once for all profiles: the
stage's ``load_benchmark`` is wrapped by a cache of the real loader's full result, cut to the profile's
``limit`` as ``load_benchmark`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selfdebug import problems as problems_pkg
from selfdebug.config import CONFIG_DIR, load_config
from selfdebug.evaluate import stage
from selfdebug.problems import SUBSET_OF
from selfdebug.problems.sources import default_mirror

PROFILES = sorted(p.stem for p in Path(CONFIG_DIR).glob("*.yaml"))
FULL_SIZES = {"humaneval": 164, "humaneval_plus": 164, "mbpp": 500, "mbpp_plus": 378, "mbpp_plus_heldout": 270}
HAVE_MIRROR = default_mirror() is not None and (default_mirror() / "evalplus").is_dir()  # type: ignore[operator]

_cache: dict[tuple[str, str], list[Any]] = {}


def _cached_load_benchmark(name: str, *, limit: int | None = None, mirror: Any = None, **kw: Any) -> list[Any]:
    key = (name, str(mirror))
    if key not in _cache:
        _cache[key] = problems_pkg.load_benchmark(name, mirror=mirror, **kw)
    return _cache[key] if limit is None else _cache[key][:limit]


def test_every_profile_is_checked() -> None:
    assert {"base", "cpu", "smoke", "paper-starcoder-15b", "paper-codellama-7b", "paper-codellama-13b"} <= set(
        PROFILES)


@pytest.mark.skipif(not HAVE_MIRROR, reason="offline benchmark mirror not present (no downloads in tests)")
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_problems_load(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "load_benchmark", _cached_load_benchmark)
    config = load_config(profile)
    loaded = stage.load_problems(config)
    assert list(loaded) == list(config.evaluate.benchmarks)
    limit = config.evaluate.limit
    for bench, probs in loaded.items():
        full = FULL_SIZES.get(bench)
        assert len(probs) == (min(limit, full) if limit is not None else full), (profile, bench, len(probs))
        # a held-out view keeps its problems' own benchmark (MBPP+'s), so their samples are MBPP+'s
        owner = SUBSET_OF.get(bench, bench)
        assert all(p.benchmark == owner and p.reference and (p.tests or p.test_script) for p in probs), bench
