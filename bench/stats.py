"""Percentiles and ratios for benchmark reports."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def p50_ratio_interval(a_s: Sequence[float], b_s: Sequence[float], rounds: int = 2000,
                       seed: int = 0) -> list[float]:
    """95 % bootstrap interval of ``p50(a) / p50(b)``: both sample sets resampled with replacement
    ``rounds`` times. On this 2-core machine two runs of one build differ by several per cent; an
    interval that straddles a target says the run cannot tell which side of it the build is on."""
    if not a_s or not b_s:
        raise ValueError("no samples")
    rng = random.Random(seed)
    ratios = sorted(
        percentile(rng.choices(a_s, k=len(a_s)), 50) / percentile(rng.choices(b_s, k=len(b_s)), 50)
        for _ in range(rounds)
    )
    return [round(percentile(ratios, 2.5), 3), round(percentile(ratios, 97.5), 3)]
