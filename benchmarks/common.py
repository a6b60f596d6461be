"""Helpers the benchmark scripts share (run them from the repository root)."""

from __future__ import annotations

import statistics


def mean_sd(xs: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.{digits}f} ± {sd:.{digits}f}"
