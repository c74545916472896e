"""The ``latency_vs_load`` chart of a sweep: p50 (dashed) and p99 (solid) TTFT and TPOT against the
load axis, one colour per series, the SLO dotted and each series' knee (the highest load whose p99 still
meets the SLO) a hollow diamond; error bars where runs were replicated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from simulator.report.sweep import axis_label, is_load, knee, looks_like_load, series_labels
from simulator.report.sweep_style import (
    FORMATS,
    LATENCY_CHART,
    SLO_COLOR,
    chart_context,
    finish_chart,
    fmt_seconds,
    fmt_x,
    log_axis,
    numeric_x,
    runs_caption,
    save_chart,
    series_colors,
    shared_color_markers,
    slo_lines,
    span_is_large,
    time_unit,
)


@dataclass
class _LoadPlot:
    """What every panel of the chart shares: the table, its series and the x positions."""

    df: pd.DataFrame
    x: str
    labels: pd.Series
    order: list
    colors: dict[str, str]
    xs_all: np.ndarray
    cats: list[str] | None
    marks_knee: bool
    markers: dict[str, str]  # a circle, or another shape for a series that shares its colour


def latency_vs_load_chart(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    x: str,
    series: Sequence[str],
    slo_ttft: float | None = None,
    slo_tpot: float | None = None,
    formats: Sequence[str] = FORMATS,
    stem: str = LATENCY_CHART,
) -> list[Path]:
    """p50/p99 TTFT and TPOT against ``x``, one colour per series, SLO and knees marked."""
    labels = series_labels(df, series)
    order = list(pd.unique(labels))
    xs_all, cats = numeric_x(df, x)
    colors = series_colors(df, order)
    plot = _LoadPlot(df, x, labels, order, colors, xs_all, cats, cats is None and is_load(x), shared_color_markers(colors))
    panels = [("ttft", "Time to first token", slo_ttft), ("tpot", "Time per output token", slo_tpot)]

    with chart_context():
        fig = Figure(figsize=(12, 4.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        knee_labels: dict[tuple[int, float], tuple[int, float]] = {}
        for ax, (metric, title, override) in zip(axes, panels):
            _latency_panel(ax, plot, metric, title, override, knee_labels)
        handles = _legend_handles(plot)
        what = "load" if x == "offered_rps" or looks_like_load(x) else x
        finish_chart(fig, handles, None, min(len(handles), 4), f"Latency vs {what}\n{runs_caption(df)}", (0.05, 0.035))
        return save_chart(fig, out_dir, stem, formats)


def _latency_panel(ax, plot: _LoadPlot, metric: str, title: str, override: float | None, knee_labels: dict) -> None:
    """One metric's panel: every series' p50 and p99 lines and knee, the SLO lines, the axes."""
    df = plot.df
    slos = slo_lines(df, metric, override)
    log, scale, unit = _panel_scale(df, metric, slos)
    for label in plot.order:
        mask = (plot.labels == label).to_numpy()
        g = df[mask].assign(_x=plot.xs_all[mask])
        agg = g.groupby("_x", sort=True)
        color = plot.colors[label]
        for stat, style in (("p50", "--"), ("p99", "-")):
            _stat_line(ax, g, agg, f"{metric}_{stat}_s", stat, style, color, scale, plot.markers[label])
        if plot.marks_knee and slos:
            _mark_knee(ax, g, agg, metric, override, slos, color, scale, knee_labels)
    _slo_lines(ax, slos, scale)
    _format_axes(ax, plot, log, unit)
    ax.set_title(f"{title}: p99 (solid), p50 (dashed)")


def _panel_scale(df: pd.DataFrame, metric: str, slos: list[float]) -> tuple[bool, float, str]:
    """(log scale?, scale, unit) of a metric's panel, from its p50/p99 values, their CIs and the SLOs."""
    cols = [f"{metric}_p50_s", f"{metric}_p99_s"]
    vals = [v for c in cols for v in df[c].to_numpy(dtype=float)]
    vals += [
        v
        for c in cols
        for s in ("_ci95_low", "_ci95_high")
        if c + s in df.columns
        for v in df[c + s].to_numpy(dtype=float)
    ]
    log = span_is_large(vals + slos)
    scale, unit = (1.0, "s") if log else time_unit(vals + slos)
    return log, scale, unit


def _stat_line(ax, g: pd.DataFrame, agg, col: str, stat: str, style: str, color: str, scale: float, marker: str) -> None:
    """One series' p50 or p99 over load: the mean per x, with 95% CI error bars when the runs have them."""
    size = 3.5 if marker == "o" else 4.5  # a square or triangle reads as large as the circle at a little more
    mean = agg[col].mean()
    xv, yv = mean.index.to_numpy(dtype=float), mean.to_numpy(dtype=float) * scale
    lo_c, hi_c = col + "_ci95_low", col + "_ci95_high"
    if lo_c in g.columns and hi_c in g.columns and g[[lo_c, hi_c]].notna().any().any():
        lo = agg[lo_c].mean().to_numpy(dtype=float) * scale
        hi = agg[hi_c].mean().to_numpy(dtype=float) * scale
        yerr = np.vstack([np.clip(yv - lo, 0, None), np.clip(hi - yv, 0, None)])
        yerr = np.where(np.isnan(yerr), 0.0, yerr)
        ax.errorbar(
            xv,
            yv,
            yerr=yerr,
            color=color,
            linestyle=style,
            marker=marker,
            markersize=size,
            capsize=2.5,
            elinewidth=0.9,
            linewidth=1.4 if stat == "p99" else 1.1,
        )
    else:
        ax.plot(
            xv,
            yv,
            color=color,
            linestyle=style,
            marker=marker,
            markersize=size,
            linewidth=1.6 if stat == "p99" else 1.1,
            alpha=1.0 if stat == "p99" else 0.8,
        )


def _mark_knee(ax, g, agg, metric: str, override, slos: list[float], color: str, scale: float, knee_labels: dict) -> None:
    """The series' knee as a hollow diamond, labelled (``knee >=`` when every load met the SLO)."""
    slo_rows = ([override] * len(g)) if override is not None else g.get(f"slo_{metric}_s")
    k = knee(g["_x"], g[f"{metric}_p99_s"], np.asarray(slo_rows, dtype=float))
    if k is None:
        return
    ky = float(agg[f"{metric}_p99_s"].mean().loc[k]) * scale
    ax.plot(
        [k],
        [ky],
        marker="D",
        markersize=10,
        markerfacecolor="none",
        markeredgecolor=color,
        markeredgewidth=1.6,
        linestyle="none",
        zorder=5,
    )
    beyond = bool((agg[f"{metric}_p99_s"].mean().to_numpy(dtype=float) * scale <= max(slos) * scale).all())
    # series sharing a knee stack their labels in one column under the first one's diamond
    nth, anchor = knee_labels.get((id(ax), k), (0, ky))
    knee_labels[(id(ax), k)] = (nth + 1, anchor)
    ax.annotate(
        ("knee \u2265 " if beyond else "knee ") + fmt_x(k, None),
        (k, anchor),
        xytext=(6, -12 - 11 * nth),
        textcoords="offset points",
        fontsize=8,
        color=color,
    )


def _slo_lines(ax, slos: list[float], scale: float) -> None:
    """Each SLO as a dotted horizontal line, its value at the left."""
    for s in slos:
        ax.axhline(s * scale, color=SLO_COLOR, linestyle=":", linewidth=1.3)
        ax.annotate(
            f"SLO {fmt_seconds(s)}",
            (0.0, s * scale),
            xycoords=("axes fraction", "data"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=8,
            color=SLO_COLOR,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def _format_axes(ax, plot: _LoadPlot, log: bool, unit: str) -> None:
    """Scales, limits, ticks and labels of a panel."""
    if log:
        ax.set_yscale("log")
        log_axis(ax.yaxis)
        ax.set_ylabel("seconds (log scale)")
    else:
        ax.set_ylim(bottom=0)
        ax.set_ylabel("seconds" if unit == "s" else "milliseconds")
    cats = plot.cats
    if cats is not None:
        tilt = max(map(len, cats)) > 8
        ax.set_xticks(range(len(cats)), cats, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    finite = plot.xs_all[np.isfinite(plot.xs_all)]
    if cats is None and finite.size and np.all(finite == np.round(finite)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(axis_label(plot.x))


def _legend_handles(plot: _LoadPlot) -> list[Line2D]:
    """A line per series, then the p99 / p50 / SLO line styles and (when marked) the knee."""
    shapes = len(set(plot.markers.values())) > 1
    handles = [
        Line2D([], [], color=plot.colors[lab], linewidth=2, label=lab, marker=plot.markers[lab] if shapes else None, markersize=6)
        for lab in plot.order
    ]
    handles += [
        Line2D([], [], color="0.2", linestyle="-", label="p99"),
        Line2D([], [], color="0.2", linestyle="--", linewidth=1.1, label="p50"),
        Line2D([], [], color=SLO_COLOR, linestyle=":", linewidth=1.3, label="SLO"),
    ]
    if plot.marks_knee:
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                markersize=8,
                markerfacecolor="none",
                markeredgecolor="0.2",
                linestyle="none",
                label="knee: highest load with p99 within SLO",
            )
        )
    return handles
