"""Learning curves of a report: one PNG per metric, x = session index, one line per method with its
95 % band (matplotlib, imported on first use: ``pip install 'multisessioncollab[plot]'``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

# Okabe & Ito (2008), readable with every common colour-vision deficiency; yellow last (faint on white)
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
FIGSIZE: tuple[float, float] = (7.0, 4.2)
"""inches; with DPI, 1050 x 630 pixels"""
DPI = 150


def require_matplotlib() -> None:
    """Raise ImportError with the install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'multisessioncollab[plot]'") from e


def method_style(index: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``index``-th method (the same in every plot); past the
    palette, the line style tells methods of one colour apart."""
    return {"color": PALETTE[index % len(PALETTE)], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINESTYLES[(index // len(PALETTE)) % len(LINESTYLES)]}


def plot_learning_curve(records: Sequence[dict[str, Any]], metric: str, path: str | Path, *,
                        methods: Sequence[str], max_turns: int | None = None) -> Path:
    """Draw ``metric`` per session index, one line per method with its 95 % band, into ``path`` (PNG).

    Args:
        records: :func:`benchmarks.report.summarize` records with ``by_session=True``.
        metric: a key of :data:`benchmarks.report.METRIC_SPECS`.
        path: the PNG to write.
        methods: the methods in legend order; a method's colour is given by its place here.
        max_turns: the runs' max_turns (the upper end of the y axis for effort and turns).
    """
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from benchmarks.report import METRIC_SPECS

    spec = METRIC_SPECS[metric]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    alpha = min(0.15, 0.22 / math.sqrt(max(1, len(methods))))  # many overlapping bands stay readable
    band_kind = "Wilson score interval" if spec.binary else "t interval clipped to the metric's range"
    for i, method in enumerate(methods):
        pts = sorted((r["session"], r[metric], r[metric + "_lo"], r[metric + "_hi"]) for r in records
                     if r["method"] == method and not math.isnan(r[metric]))
        if not pts:
            continue
        x = [p[0] for p in pts]
        style = method_style(i)
        ax.plot(x, [p[1] * spec.scale for p in pts], label=method, linewidth=1.8, markersize=4.5, **style)
        band = [p for p in pts if not (math.isnan(p[2]) or math.isnan(p[3]))]
        if band:
            ax.fill_between([p[0] for p in band], [p[2] * spec.scale for p in band],
                            [p[3] * spec.scale for p in band], color=style["color"], alpha=alpha, linewidth=0)
    low, high = spec.bounds(max_turns)
    y0, y1 = ax.get_ylim()
    pad = 0.03 * ((high - low) * spec.scale if math.isfinite(high) else y1 - y0)
    ax.set_ylim(max(y0, low * spec.scale - pad), min(y1, high * spec.scale + pad) if math.isfinite(high) else y1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Session index")
    ax.set_ylabel(spec.axis)
    fig.suptitle(f"{spec.label} per session", x=0.01, ha="left", fontsize=12, fontweight="bold")
    ax.set_title(f"mean over users with 95 % band ({band_kind})", loc="left", fontsize=9, color="#444444")
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title="method", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
                  title_fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_learning_curves(records: Sequence[dict[str, Any]], out_dir: str | Path, *, methods: Sequence[str],
                         metrics: Sequence[str], max_turns: int | None = None) -> dict[str, Path]:
    """``curve_<metric>.png`` in ``out_dir`` for each metric (see :func:`plot_learning_curve`)."""
    return {m: plot_learning_curve(records, m, Path(out_dir) / f"curve_{m}.png", methods=methods,
                                   max_turns=max_turns) for m in metrics}
