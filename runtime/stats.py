"""Latency statistics: percentiles and FPS from per-frame timings (milliseconds)."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def latency_summary(samples_ms: Iterable[float]) -> dict:
    """p50/p90/p99, mean, min, max and the implied FPS of a list of latencies in ms.

    Percentiles use linear interpolation between order statistics (numpy's default), so
    p50 of [1, 2, 3, 4] is 2.5.
    """
    values = np.asarray(list(samples_ms), dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    mean = float(values.mean())
    return {"count": int(values.size), "p50": round(float(p50), 3), "p90": round(float(p90), 3),
            "p99": round(float(p99), 3), "mean": round(mean, 3),
            "min": round(float(values.min()), 3), "max": round(float(values.max()), 3),
            "fps_at_p50": round(1000.0 / p50, 2) if p50 > 0 else None}
