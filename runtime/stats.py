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


class RecentRate:
    """FPS and mean invoke time over the same last `size` frames, for an on-screen HUD.

    A whole-run average FPS beside the latest frame's invoke time describes two different
    moments; over one window both answer "how is it running now".
    """

    def __init__(self, size: int = 30):
        from collections import deque

        self._done_at = deque(maxlen=size)
        self._invoke_ms = deque(maxlen=size)

    def add(self, done_at_s: float, invoke_ms: float) -> None:
        self._done_at.append(done_at_s)
        self._invoke_ms.append(invoke_ms)

    @property
    def frames(self) -> int:
        return len(self._done_at)

    @property
    def fps(self) -> float | None:
        """Frames completed per second across the window; None before two frames."""
        span = self._done_at[-1] - self._done_at[0] if len(self._done_at) > 1 else 0.0
        return (len(self._done_at) - 1) / span if span > 0 else None

    @property
    def invoke_ms(self) -> float | None:
        return sum(self._invoke_ms) / len(self._invoke_ms) if self._invoke_ms else None

    def hud_line(self) -> str:
        fps = f"{self.fps:5.1f} FPS" if self.fps is not None else "  --- FPS"
        invoke = f"{self.invoke_ms:.1f} ms" if self.invoke_ms is not None else "--"
        return f"{fps}  invoke {invoke}  (last {self.frames} frames)"
