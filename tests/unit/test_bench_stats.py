"""``bench.stats``: the bootstrap interval of a p50 ratio brackets the ratio and narrows with data."""

from __future__ import annotations

import random

import pytest

from bench.stats import p50_ratio_interval, percentile


def _samples(n: int, centre: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(centre, centre * 0.1) for _ in range(n)]


def test_the_interval_brackets_the_observed_ratio() -> None:
    a, b = _samples(150, 1.10, 1), _samples(150, 1.00, 2)
    lo, hi = p50_ratio_interval(a, b)
    observed = percentile(a, 50) / percentile(b, 50)
    assert lo <= observed <= hi
    assert lo < hi


def test_more_samples_give_a_narrower_interval() -> None:
    small = p50_ratio_interval(_samples(30, 1.1, 3), _samples(30, 1.0, 4))
    large = p50_ratio_interval(_samples(3000, 1.1, 3), _samples(3000, 1.0, 4))
    assert large[1] - large[0] < small[1] - small[0]
    assert large[0] > 1.0  # 10 % apart with 3,000 samples each: clearly apart


def test_identical_distributions_straddle_one() -> None:
    lo, hi = p50_ratio_interval(_samples(300, 1.0, 5), _samples(300, 1.0, 6))
    assert lo < 1.0 < hi


def test_the_same_seed_gives_the_same_interval() -> None:
    a, b = _samples(50, 1.0, 7), _samples(50, 1.0, 8)
    assert p50_ratio_interval(a, b, seed=3) == p50_ratio_interval(a, b, seed=3)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError):
        p50_ratio_interval([], [1.0])
