"""Confidence intervals by bootstrap: honest error bars on small dev sets."""

from __future__ import annotations

import random
from collections.abc import Sequence


def _percentiles(means: list[float], confidence: float) -> tuple[float, float]:
    means.sort()
    alpha = (1 - confidence) / 2
    lo = means[int(alpha * (len(means) - 1))]
    hi = means[round((1 - alpha) * (len(means) - 1))]
    return lo, hi


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; deterministic for a given seed."""
    n = len(values)
    if n == 0:
        return (0.0, 0.0)
    if len(set(values)) == 1:
        return (float(values[0]), float(values[0]))
    try:
        import numpy as np
    except ImportError:
        rng = random.Random(seed)
        means = [sum(rng.choices(values, k=n)) / n for _ in range(n_resamples)]
        return _percentiles(means, confidence)
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    rows = max(1, 1_000_000 // n)  # resample in blocks: a 10k-item dev set must not need gigabytes
    means: list[float] = []
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        means.extend(data[rng.integers(0, n, size=(size, n))].mean(axis=1).tolist())
    return _percentiles(means, confidence)


def paired_bootstrap_ci(baseline: Sequence[float], candidate: Sequence[float], **kwargs: float) -> tuple[float, float]:
    """Interval of mean(candidate - baseline) over the same examples (for comparing programs)."""
    if len(baseline) != len(candidate):
        raise ValueError(f"paired scores need equal lengths, got {len(baseline)} and {len(candidate)}")
    return bootstrap_ci([c - b for b, c in zip(baseline, candidate, strict=True)], **kwargs)  # type: ignore[arg-type]
