"""The ``cdfs`` chart of a sweep: TTFT, TPOT and end-to-end latency ECDFs of the completed requests of a
few runs (read from their ``requests.parquet``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.report.sweep import LOAD_UNITS, fmt_value, series_labels
from simulator.report.sweep_style import (
    CDFS_KEY,
    FORMATS,
    LINESTYLES,
    SLO_COLOR,
    chart_context,
    finish_chart,
    fmt_seconds,
    log_axis,
    runs_caption,
    save_chart,
    series_colors,
    slo_lines,
    span_is_large,
    time_unit,
    tint,
)


def _ecdf(ax, values: np.ndarray, **kw) -> None:
    v = np.sort(values[~np.isnan(values)], kind="stable")
    if v.size:
        ax.step(np.r_[v[0], v], np.r_[0.0, np.arange(1, v.size + 1) / v.size], where="post", **kw)


def cdfs_chart(
    df: pd.DataFrame,
    root: str | Path,
    runs: Sequence[str],
    out_dir: str | Path,
    *,
    x: str,
    series: Sequence[str],
    slo_ttft: float | None = None,
    slo_tpot: float | None = None,
    formats: Sequence[str] = FORMATS,
    stem: str = CDFS_KEY,
) -> list[Path]:
    """TTFT, TPOT and e2e ECDFs of the completed requests of ``runs`` (run names of ``df``)."""
    data = _read_runs(df, root, runs, x, series)
    style, color = _line_looks(df, runs, x, data)
    panels = [
        ("ttft", "Time to first token", slo_lines(df, "ttft", slo_ttft)),
        ("tpot", "Time per output token", slo_lines(df, "tpot", slo_tpot)),
        ("e2e", "End-to-end latency", slo_lines(df, "e2e", None)),
    ]

    with chart_context():
        fig = Figure(figsize=(13, 4.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 3)
        for ax, (metric, title, slos) in zip(axes, panels):
            _cdf_panel(ax, data, f"{metric}_s", title, slos, style, color)
        axes[0].set_ylabel("fraction of completed requests")
        handles, legends = axes[0].get_legend_handles_labels()
        # one legend column per series when they have the same number of runs (legends fill column by column)
        names = list(dict.fromkeys(d[1] for d in data))
        per_series = [sum(1 for d in data if d[1] == n) for n in names]
        ncol = len(names) if len(set(per_series)) == 1 and len(names) <= 4 else min(3, max(1, len(handles)))
        title = (
            f"Latency CDFs of {len(data)} runs (completed requests; grey lines at p50 and p99)\n"
            f"{runs_caption(df[df['run'].isin(list(runs))])}"
        )
        finish_chart(fig, handles, legends, ncol, title, (0.02, 0.04))
        return save_chart(fig, out_dir, stem, formats)


def _read_runs(df: pd.DataFrame, root: str | Path, runs: Sequence[str], x: str, series: Sequence[str]) -> list[tuple]:
    """Per run: (legend, series label, load text, its completed requests)."""
    labels = series_labels(df, series)
    by_run = {r: i for i, r in enumerate(df["run"])}
    x_name = "load" if x == "offered_rps" else x
    unit = LOAD_UNITS.get(x.split(".")[-1].split("@")[0], "")
    data = []
    for r in runs:
        i = by_run[r]
        req = pd.read_parquet(Path(root) / r / "requests.parquet", columns=["status", "ttft_s", "tpot_s", "e2e_s"])
        done = req[req["status"].astype(str) == "completed"]
        name = labels.iloc[i]
        at = f"{x_name} {fmt_value(df[x].iloc[i])}" + (f" {unit}" if unit else "")
        legend = f"run {r}: " + (at if name == "all runs" else f"{name}, {at}")
        data.append((legend, name, fmt_value(df[x].iloc[i]), done))
    return data


def _line_looks(df: pd.DataFrame, runs: Sequence[str], x: str, data: list[tuple]) -> tuple[dict, dict]:
    """(line style per load, colour per (series, load)).

    The series' own colour (a policy's everywhere), and per load a line style and a shade, lightest
    for the lowest load: the same load reads the same across series.
    """
    by_run = {r: i for i, r in enumerate(df["run"])}
    raw = {fmt_value(df[x].iloc[by_run[r]]): df[x].iloc[by_run[r]] for r in runs}
    loads = list(dict.fromkeys(d[2] for d in data))
    numeric = pd.to_numeric(pd.Series([raw[v] for v in loads], dtype=object), errors="coerce")
    if numeric.notna().all():
        loads = [loads[i] for i in np.argsort(numeric.to_numpy(dtype=float), kind="stable")]
    names = list(dict.fromkeys(d[1] for d in data))
    hue = series_colors(df, names)
    style = {v: LINESTYLES[i % len(LINESTYLES)] for i, v in enumerate(loads)}
    shade = {v: 1.0 if len(loads) == 1 else 0.45 + 0.55 * i / (len(loads) - 1) for i, v in enumerate(loads)}
    color = {(n, v): tint(hue[n], shade[v]) for n in names for v in loads}
    return style, color


def _cdf_panel(ax, data: list[tuple], col: str, title: str, slos: list[float], style: dict, color: dict) -> None:
    """One metric's ECDFs, one line per run, with its SLO lines and p50 / p99 guides."""
    per_run = [d[3][col].to_numpy(dtype=float) for d in data]
    per_run = [v[~np.isnan(v)] for v in per_run]
    pooled = np.concatenate(per_run) if per_run else np.empty(0)
    lows = [float(np.percentile(v, 1)) for v in per_run if v.size]
    highs = [float(np.percentile(v, 99)) for v in per_run if v.size]
    log = bool(lows) and span_is_large([min(lows), max(highs)], 20.0)
    scale, unit_s = (1.0, "s") if log else time_unit(highs)
    for (legend, name, load, _), values in zip(data, per_run):
        v = values * scale
        if log:
            v = v[v > 0]
        _ecdf(ax, v, color=color[(name, load)], linestyle=style[load], label=legend, linewidth=1.5)
    for s in slos:
        ax.axvline(s * scale, color=SLO_COLOR, linestyle=":", linewidth=1.3)
        ax.annotate(
            f"SLO {fmt_seconds(s)}",
            (s * scale, 0.02),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=8,
            color=SLO_COLOR,
            rotation=90,
            va="bottom",
        )
    for p in (0.5, 0.99):
        ax.axhline(p, color="0.8", linewidth=0.8, zorder=0)
    if not pooled.size:
        ax.text(0.5, 0.5, "no completed requests", ha="center", va="center", transform=ax.transAxes)
    if log:
        ax.set_xscale("log")
        log_axis(ax.xaxis)
        ax.set_xlabel("seconds (log scale)")
    else:
        ax.set_xlim(left=0)
        ax.set_xlabel("seconds" if unit_s == "s" else "milliseconds")
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
