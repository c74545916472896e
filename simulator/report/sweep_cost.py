"""The ``cost_frontier`` chart of a sweep: throughput and goodput of every run against what it costs
($/hour, or GPUs without prices), with the Pareto front (most goodput for least cost) drawn and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.report.sweep import cost_axis, cost_text, fmt_value, pareto_front, series_labels, short_names
from simulator.report.sweep_style import (
    COST_CHART,
    FORMATS,
    MARKERS,
    SLO_COLOR,
    chart_context,
    finish_chart,
    runs_caption,
    save_chart,
    series_colors,
)


@dataclass
class _CostPlot:
    """What both panels share: the table, its series, their looks, and the cost of every run."""

    df: pd.DataFrame
    x: str
    series: Sequence[str]
    labels: pd.Series
    order: list
    colors: dict[str, str]
    markers: dict[str, str]
    names: dict[str, str]
    cost: str
    c: np.ndarray  # each run's cost
    cx: np.ndarray  # where its point is drawn (nudged when series share a cost)


def cost_frontier_chart(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    x: str,
    series: Sequence[str],
    formats: Sequence[str] = FORMATS,
    stem: str = COST_CHART,
) -> list[Path]:
    """Throughput and goodput against cost, every run a point, the goodput Pareto front labelled."""
    plot = _cost_plot(df, x, series)
    cost_label = "cost ($/hour, GPUs x price)" if plot.cost == "usd_per_hour" else "GPUs"
    panels = [
        ("throughput_rps", "Throughput: completed requests/s"),
        ("goodput_rps", "Goodput: requests/s that met every SLO"),
    ]

    with chart_context():
        fig = Figure(figsize=(12, 4.8))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (value, title) in zip(axes, panels):
            _cost_panel(ax, plot, value, title, cost_label)
        axes[0].set_ylabel("requests/s")
        handles, names = _front_last(*axes[1].get_legend_handles_labels())
        ncol = min(4, max(1, len(handles)))
        title = (
            f"Throughput and goodput vs cost ({len(df)} runs; circled: the Pareto front, "
            f"most requests/s for the least cost)\n{runs_caption(df)}"
        )
        finish_chart(fig, handles, names, ncol, title, (0.02, 0.045))
        return save_chart(fig, out_dir, stem, formats)


def _cost_plot(df: pd.DataFrame, x: str, series: Sequence[str]) -> _CostPlot:
    labels = series_labels(df, series)
    order = list(pd.unique(labels))
    markers = {label: MARKERS[i % len(MARKERS)] for i, label in enumerate(order)}
    names = short_names([k for k in [*series, x] if k != "offered_rps"])
    cost = cost_axis(df)
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(dtype=float)
    # series sharing a cost are nudged sideways a little, so one does not hide another
    cx = c.copy()
    lab = labels.to_numpy()
    shared = pd.DataFrame({"c": c, "s": lab}).dropna().groupby("c")["s"].nunique()
    if len(order) > 1 and (shared > 1).any() and np.isfinite(c).any():
        step = min(0.012, 0.06 / len(order)) * max(float(np.nanmax(np.abs(c))) * 1.3, 1e-9)
        for i, label in enumerate(order):
            cx[lab == label] += (i - (len(order) - 1) / 2) * step
    return _CostPlot(df, x, series, labels, order, series_colors(df, order), markers, names, cost, c, cx)


def _front_last(handles: list, names: list[str]) -> tuple[list, list[str]]:
    """The legend entries with "Pareto front" moved to the end."""
    last = [i for i, n in enumerate(names) if n == "Pareto front"]
    keep = [i for i in range(len(names)) if i not in last] + last
    return [handles[i] for i in keep], [names[i] for i in keep]


def _cost_panel(ax, plot: _CostPlot, value: str, title: str, cost_label: str) -> None:
    """One figure (throughput or goodput) against cost: the runs, the Pareto front, the axes."""
    df, c = plot.df, plot.c
    v = df[value].to_numpy(dtype=float)
    for label in plot.order:
        _series_points(ax, plot, value, v, label)
    _pareto(ax, plot, value, v)
    if np.isfinite(c).any() and np.nanmin(c) >= 0:
        ax.set_xlim(0, max(float(np.nanmax(c)) * 1.3, 1e-9))
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], float(np.nanmax(v)) * 1.1 if np.isfinite(v).any() else 1.0))
    ax.set_xlabel(cost_label)
    ax.set_title(title)
    if len(set(c[np.isfinite(c)].tolist())) == 1:  # e.g. a load sweep on one fleet: nothing to trade
        ax.text(0.02, 0.02, "every run costs the same: this compares the runs'\noffered loads, not configurations",
                transform=ax.transAxes, fontsize=8, color=SLO_COLOR, va="bottom")


def _series_points(ax, plot: _CostPlot, value: str, v: np.ndarray, label: str) -> None:
    """One series' runs as points, with 95% CI error bars when replicated."""
    df, cx = plot.df, plot.cx
    m = (plot.labels == label).to_numpy()
    lo_c, hi_c = value + "_ci95_low", value + "_ci95_high"
    if lo_c in df.columns and df.loc[m, lo_c].notna().any():
        lo, hi = df.loc[m, lo_c].to_numpy(dtype=float), df.loc[m, hi_c].to_numpy(dtype=float)
        yerr = np.where(np.isnan([v[m] - lo, hi - v[m]]), 0.0, np.clip([v[m] - lo, hi - v[m]], 0, None))
        ax.errorbar(
            cx[m],
            v[m],
            yerr=yerr,
            color=plot.colors[label],
            linestyle="none",
            marker=plot.markers[label],
            markersize=5,
            capsize=2.5,
            elinewidth=0.9,
            alpha=0.85,
            label=label,
        )
    else:
        ax.plot(
            cx[m],
            v[m],
            color=plot.colors[label],
            linestyle="none",
            marker=plot.markers[label],
            markersize=5,
            alpha=0.85,
            label=label,
        )


def _pareto(ax, plot: _CostPlot, value: str, v: np.ndarray) -> None:
    """The Pareto front as a staircase with its runs circled; on the goodput panel numbered and listed."""
    c, cx = plot.c, plot.cx
    front = pareto_front(plot.df, plot.cost, value).to_numpy()
    idx = np.flatnonzero(front)
    idx = idx[np.argsort(c[idx], kind="stable")]
    if not idx.size:
        return
    # the front as a staircase: each step holds the best value reachable for that money
    fx = np.r_[cx[idx], cx[idx][-1]]
    fy = np.r_[v[idx], v[idx][-1]]
    xmax = np.nanmax(cx) if np.isfinite(cx).any() else cx[idx][-1]
    fx[-1] = xmax + 0.05 * max(xmax - np.nanmin(cx), abs(xmax), 1e-9)
    ax.step(fx, fy, where="post", color="0.15", linewidth=1.2, zorder=1, label="Pareto front")
    ax.plot(
        cx[idx],
        v[idx],
        linestyle="none",
        marker="o",
        markersize=9,
        markerfacecolor="none",
        markeredgecolor="0.15",
        markeredgewidth=1.3,
        zorder=4,
    )
    if value == "goodput_rps":
        _front_labels(ax, plot, v, idx)


def _front_labels(ax, plot: _CostPlot, v: np.ndarray, idx: np.ndarray) -> None:
    """Number the front's runs on the chart and list them, least cost first, to the right of the panel."""
    df, x, names = plot.df, plot.x, plot.names
    lines = ["Pareto front, least cost first:"]
    for n, i in enumerate(idx, start=1):
        short = [f"{names[k]}={fmt_value(df[k].iloc[i])}" for k in plot.series if k != x]
        what = ", ".join(short + [f"{names.get(x, 'load')}={fmt_value(df[x].iloc[i])}"])
        lines.append(f"{n}. run {df['run'].iloc[i]}: {what}\n    {v[i]:.3g} req/s for {cost_text(plot.c[i], plot.cost)}")
        ax.annotate(
            str(n),
            (plot.cx[i], v[i]),
            xytext=(-6, 6),
            textcoords="offset points",
            fontsize=8.5,
            fontweight="bold",
            color="0.1",
            ha="right",
            va="bottom",
            zorder=6,
        )
    ax.text(
        1.03,
        1.0,
        "\n".join(lines),
        transform=ax.transAxes,
        fontsize=8,
        va="top",
        ha="left",
        linespacing=1.35,
    )
