"""The Pareto plot of a benchmark: model-only p50 latency against mIoU, every row labelled.

matplotlib is imported only when a plot is drawn (the runtime-only install has none, and the
benchmark then writes its tables without the plot).
"""
from __future__ import annotations

import logging
from pathlib import Path

from fcnedge.runtime.fileio import atomic_path

log = logging.getLogger("fcnedge.bench")


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both model-only p50 (lower) and mIoU (higher)."""
    scored = sorted((r for r in rows if r.get("status") != "failed" and r.get("miou") is not None),
                    key=lambda r: (r["model_only_ms"]["p50"], -r["miou"]))
    front, best = [], float("-inf")
    for row in scored:
        if row["miou"] > best:
            front.append(row)
            best = row["miou"]
    return front


LABEL_GAP_PX = 2.0       # clear space kept between two stacked labels
MARKER_SIZE = 40         # scatter area in points squared
MARKER_RADIUS_PT = 3.5   # a little over sqrt(MARKER_SIZE) / 2


def stack_labels(boxes: list[tuple[float, float, float, float]],
                 obstacles: list[tuple[float, float, float, float]] = (),
                 gap: float = LABEL_GAP_PX) -> list[float]:
    """Downward shifts (pixels) for label boxes (x0, y0, x1, y1; pixels, y up) so that no two
    overlap, nor a label and an obstacle (the markers). Formats of one model often sit within a
    millisecond and a few tenths of a point, and their labels are far wider than that, so
    nearness of markers says little: the boxes decide. Labels are settled top first; a settled
    label never moves, so the highest-mIoU rows keep their labels next to their markers."""
    order = sorted(range(len(boxes)), key=lambda i: -boxes[i][3])
    settled = list(obstacles)
    shifts = [0.0] * len(boxes)
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        shift = 0.0
        while True:
            blocker = next((b for b in settled if x0 < b[2] and b[0] < x1
                            and y0 - shift < b[3] + gap and b[1] - gap < y1 - shift), None)
            if blocker is None:
                break
            shift = y1 - (blocker[1] - gap)       # top of this box just under the blocker
        shifts[i] = shift
        settled.append((x0, y0 - shift, x1, y1 - shift))
    return shifts


def plot_pareto(rows: list[dict], path: Path, title: str) -> Path | None:
    """Model-only p50 (log x) against mIoU, each row labelled, the front joined; None without
    matplotlib (it comes with the training extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log.warning("matplotlib is not installed (pip install 'fcnedge[train]'): no pareto.png")
        return None
    scored = [r for r in rows if r.get("status") != "failed" and r.get("miou") is not None]
    figure, axes = plt.subplots(figsize=(7.5, 5), dpi=120)
    points = [(row["model_only_ms"]["p50"], row["miou"]) for row in scored]
    for row, (x, y) in zip(scored, points):
        below = row.get("status") == "below floor"
        axes.scatter([x], [y], s=MARKER_SIZE, color="tab:gray" if below else "tab:blue", zorder=3)
    front = pareto_front(rows)
    if len(front) > 1:
        axes.plot([r["model_only_ms"]["p50"] for r in front], [r["miou"] for r in front],
                  color="tab:orange", lw=1.5, zorder=2, label="Pareto front")
        axes.legend(loc="lower right")
    if scored:
        axes.set_xscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(plain)
    axes.set_xlabel("model-only latency p50 (ms, log scale)")
    axes.set_ylabel("mIoU (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    _annotate_without_overlap(figure, axes, scored, points)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return path


def _annotate_without_overlap(figure, axes, rows: list[dict],
                              points: list[tuple[float, float]]) -> None:
    """Labels each marker, stacking labels whose boxes would overlap downwards, each moved label
    joined to its marker by a thin line. Boxes are measured with the figure's own renderer after
    the layout is final, so the stacking matches what is drawn."""
    if not points:
        return
    label_dx, label_dy = 6.0, 4.0                  # points right of and above the marker
    labels = [f"{row['format']} · {row['device'].split(' (')[0]}" for row in rows]
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    to_px = figure.dpi / 72.0
    right_edge = axes.get_window_extent(renderer).x1
    boxes, aligns = [], []
    for label, point in zip(labels, points):
        # A label that would run off the plot goes on the marker's left instead.
        for align in ("left", "right"):
            probe = axes.annotate(label, point, textcoords="offset points", fontsize=7,
                                  xytext=(label_dx if align == "left" else -label_dx, label_dy),
                                  ha=align)
            extent = probe.get_window_extent(renderer)
            probe.remove()
            if align == "right" or extent.x1 <= right_edge:
                break
        boxes.append((extent.x0, extent.y0, extent.x1, extent.y1))
        aligns.append(align)
    radius = MARKER_RADIUS_PT * to_px
    markers = [(x - radius, y - radius, x + radius, y + radius)
               for x, y in axes.transData.transform(points)]
    for label, point, align, shift in zip(labels, points, aligns, stack_labels(boxes, markers)):
        axes.annotate(label, point, textcoords="offset points", fontsize=7, ha=align,
                      xytext=(label_dx if align == "left" else -label_dx,
                              label_dy - shift / to_px),
                      arrowprops=None if shift == 0 else
                      {"arrowstyle": "-", "color": "0.6", "lw": 0.5})
