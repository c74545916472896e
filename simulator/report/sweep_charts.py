"""The standard charts of a sweep (one table row per run, see :mod:`simulator.report.sweep`).

* :func:`latency_vs_load_chart` -> ``latency_vs_load``: p50 (dashed) and p99
  (solid) TTFT and TPOT against the load axis, one colour per series, the SLO
  as a dotted line and each series' knee (the highest load whose p99 still
  meets the SLO) as a hollow diamond; error bars where runs were replicated.
* :func:`cdfs_chart` -> ``cdfs``: TTFT, TPOT and end-to-end latency ECDFs of
  the completed requests of a few runs (read from their ``requests.parquet``).
* :func:`cost_frontier_chart` -> ``cost_frontier``: throughput and goodput of
  every run against what it costs ($/hour, or GPUs without prices), with the
  Pareto front (most goodput for least cost) drawn and labelled.
* :func:`run_timeline_chart` -> ``timeline``: one run over simulated time:
  batch size, KV-cache usage, requests waiting, and replicas serving.

Every chart is written in each of the requested formats (PNG, SVG) with fixed
metadata, under the project style sheet loaded inside the function, so the
same table gives byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from simulator.report.charts import (
    NEUTRAL_COLOR,
    OTHER_COLORS,
    PNG_METADATA,
    POLICY_COLORS,
    STYLE,
    bin_width,
    fit_log_ticks,
    integral_per_bin,
    plain_log_axis,
    policy_color,
)
from simulator.report.sweep import (
    LOAD_UNITS,
    axis_label,
    cost_axis,
    fmt_value,
    is_load,
    knee,
    looks_like_load,
    pareto_front,
    series_labels,
    short_names,
)

FORMATS = ("png", "svg")
#: fixed save settings per format: no dates, no varying ids
METADATA = {"png": PNG_METADATA, "svg": {"Date": None}}
RC = {"svg.hashsalt": "servesim", "svg.fonttype": "path"}
SLO_COLOR = "0.3"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
LINESTYLES = ("-", "--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 4)))

LATENCY_CHART = "latency_vs_load"
CDF_CHART = "cdfs"
COST_CHART = "cost_frontier"
TIMELINE_CHART = "timeline"


# ---------------------------------------------------------------- shared helpers


def _save(fig: Figure, out_dir: str | Path, stem: str, formats: Sequence[str]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt not in METADATA:
            raise ValueError(f"unknown chart format {fmt!r} (known: {', '.join(METADATA)})")
        p = out / f"{stem}.{fmt}"
        fig.savefig(p, format=fmt, metadata=METADATA[fmt])
        paths.append(p)
    return paths


def _finish(fig: Figure, handles, labels, ncol: int, title: str, bottom: tuple[float, float]) -> None:
    """The shared ending of a sweep chart: a legend along the bottom, the two-line title, a layout
    leaving ``bottom[0] + bottom[1] x legend rows`` of the figure's height for the legend."""
    if labels is None:
        fig.legend(handles=handles, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, -0.01))
    else:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, -0.01))
    rows = math.ceil(len(handles) / ncol) if handles else 0
    fig.suptitle(title, fontsize=10.5)
    fit_log_ticks(fig)
    fig.tight_layout(rect=(0, bottom[0] + bottom[1] * rows, 1, 1))
    fit_log_ticks(fig)  # the layout may have narrowed the panels


@contextmanager
def _context():
    """The project style, plus the settings that keep SVG output reproducible."""
    with matplotlib.style.context(STYLE), matplotlib.rc_context(RC):
        yield


def _uniq(df: pd.DataFrame, col: str) -> list[str]:
    if col not in df.columns:
        return []
    return [fmt_value(v) for v in pd.unique(df[col].astype(object).where(df[col].notna(), None)) if v is not None]


def _join(values: list[str], limit: int = 3) -> str:
    return " / ".join(values[:limit]) + (" / ..." if len(values) > limit else "")


def describe(df: pd.DataFrame) -> str:
    """What the runs simulated, in one line: model, GPUs, batching, arrivals, requests."""
    model = _join(_uniq(df, "model")) or "?"
    hw = _join(_uniq(df, "hardware")) or "?"
    reps = _uniq(df, "replicas")
    tp = _uniq(df, "tp")
    nums = sorted(int(float(r)) for r in reps) if reps else []
    fleet = (f"{nums[0]}" if len(set(nums)) == 1 else f"{nums[0]}-{nums[-1]}") if nums else "?"
    tps = "TP" + _join(tp) if tp else ""
    sched = _join(_uniq(df, "scheduler"))
    arrival = _join(_uniq(df, "arrival"))
    req = sorted({int(v) for v in df["requests"].dropna()}) if "requests" in df.columns else []
    nreq = (f"{req[0]:,}" if len(req) == 1 else f"{req[0]:,}-{req[-1]:,}") if req else "?"
    parts = [f"{model} on {fleet}x {hw}" + (f" ({tps})" if tps else "")]
    if sched:
        parts.append(f"{sched} batching")
    if arrival:
        parts.append(f"{arrival} arrivals")
    parts.append(f"{nreq} requests per run")
    reps = (
        sorted({int(v) for v in pd.to_numeric(df["replications"], errors="coerce").dropna()})
        if "replications" in df.columns
        else []
    )
    if reps and reps[-1] > 1:
        parts.append(f"{_join([str(r) for r in reps])} seeds per point (mean, 95% CI)")
    return ", ".join(parts)


POLICY_KEYS = ("scheduler", "scheduler.policy")


def _policy_of(label: str) -> str | None:
    """The batching policy a series label names and nothing else (``scheduler=static``), else None."""
    key, _, value = str(label).partition("=")
    return value if key in POLICY_KEYS and value in POLICY_COLORS and "," not in value else None


def _colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per series label, the same in every chart: a policy's own (charts.POLICY_COLORS) when the
    label names only a policy; else the other Okabe-Ito colours in order, then the policy colours this
    chart does not use (only past four such series), so no two series of a chart share a colour up to eight."""
    labels = list(dict.fromkeys(labels))
    used = {_policy_of(label) for label in labels}
    free = list(OTHER_COLORS) + [c for p, c in POLICY_COLORS.items() if p not in used]
    out: dict[str, str] = {}
    k = 0
    for label in labels:
        policy = _policy_of(label)
        if policy is not None:
            out[label] = POLICY_COLORS[policy]
        else:
            out[label] = free[k % len(free)]
            k += 1
    return out


def _series_colors(df: pd.DataFrame, labels: Sequence[str]) -> dict[str, str]:
    """:func:`_colors`, except that a lone series of runs that all share one policy takes that policy's colour."""
    labels = list(dict.fromkeys(labels))
    if len(labels) == 1 and _policy_of(labels[0]) is None and "scheduler" in df.columns:
        policies = set(df["scheduler"].dropna().astype(str))
        if len(policies) == 1 and next(iter(policies)) in POLICY_COLORS:
            return {labels[0]: policy_color(next(iter(policies)))}
    return _colors(labels)


def _tint(color: str, strength: float) -> tuple[float, float, float]:
    """``color`` mixed with white: ``strength`` 1 is the colour itself, 0 white."""
    r, g, b = matplotlib.colors.to_rgb(color)
    return tuple(round(1.0 - strength * (1.0 - c), 6) for c in (r, g, b))


def _numeric_x(df: pd.DataFrame, x: str) -> tuple[np.ndarray, list[str] | None]:
    """x positions: the column itself when numeric, else category positions and their names."""
    if pd.api.types.is_numeric_dtype(df[x]) and not pd.api.types.is_bool_dtype(df[x]):
        return pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float), None
    names = [fmt_value(v) for v in df[x].astype(object)]
    cats = list(dict.fromkeys(names))
    return np.array([cats.index(n) for n in names], dtype=float), cats


def _span_is_large(values: Sequence[float], factor: float = 30.0) -> bool:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    return bool(v.size) and v.max() / v.min() > factor


def _time_unit(values: Sequence[float]) -> tuple[float, str]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return (1e3, "ms") if v.size and v.max() < 1.0 else (1.0, "s")


def _slo(df: pd.DataFrame, metric: str, override: float | None) -> list[float]:
    """The SLO lines to draw: the override, else the runs' own distinct values."""
    if override is not None:
        return [float(override)]
    col = f"slo_{metric}_s"
    if col not in df.columns:
        return []
    return sorted({float(v) for v in pd.to_numeric(df[col], errors="coerce").dropna()})


_log_axis = plain_log_axis


def _fmt_x(v: float, cats: list[str] | None) -> str:
    if cats is not None:
        return cats[int(v)]
    return f"{v:g}"


def _cost_text(v: float, cost: str) -> str:
    return f"${v:,.2f}/h" if cost == "usd_per_hour" else f"{v:g} GPUs"


def _fmt_s(v: float) -> str:
    return f"{v:g} s" if v >= 1 else f"{v * 1e3:g} ms"


# ---------------------------------------------------------------- latency vs load


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
    colors = _series_colors(df, order)
    xs_all, cats = _numeric_x(df, x)
    marks_knee = cats is None and is_load(x)
    panels = [("ttft", "Time to first token", slo_ttft), ("tpot", "Time per output token", slo_tpot)]

    with _context():
        fig = Figure(figsize=(12, 4.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        knee_labels: dict[tuple[int, float], int] = {}
        for ax, (metric, title, override) in zip(axes, panels):
            slos = _slo(df, metric, override)
            cols = [f"{metric}_p50_s", f"{metric}_p99_s"]
            vals = [v for c in cols for v in df[c].to_numpy(dtype=float)]
            vals += [
                v
                for c in cols
                for s in ("_ci95_low", "_ci95_high")
                if c + s in df.columns
                for v in df[c + s].to_numpy(dtype=float)
            ]
            log = _span_is_large(vals + slos)
            scale, unit = (1.0, "s") if log else _time_unit(vals + slos)
            for label in order:
                mask = (labels == label).to_numpy()
                g = df[mask].assign(_x=xs_all[mask])
                agg = g.groupby("_x", sort=True)
                color = colors[label]
                for stat, style in (("p50", "--"), ("p99", "-")):
                    col = f"{metric}_{stat}_s"
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
                            marker="o",
                            markersize=3.5,
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
                            marker="o",
                            markersize=3.5,
                            linewidth=1.6 if stat == "p99" else 1.1,
                            alpha=1.0 if stat == "p99" else 0.8,
                        )
                if marks_knee and slos:
                    slo_rows = ([override] * len(g)) if override is not None else g.get(f"slo_{metric}_s")
                    k = knee(g["_x"], g[f"{metric}_p99_s"], np.asarray(slo_rows, dtype=float))
                    if k is not None:
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
                        beyond = bool(
                            (agg[f"{metric}_p99_s"].mean().to_numpy(dtype=float) * scale <= max(slos) * scale).all()
                        )
                        nth = knee_labels.setdefault((id(ax), k), 0)  # series sharing a knee stack their labels
                        knee_labels[(id(ax), k)] += 1
                        ax.annotate(
                            ("knee \u2265 " if beyond else "knee ") + _fmt_x(k, None),
                            (k, ky),
                            xytext=(6, -12 - 11 * nth),
                            textcoords="offset points",
                            fontsize=8,
                            color=color,
                        )
            for s in slos:
                ax.axhline(s * scale, color=SLO_COLOR, linestyle=":", linewidth=1.3)
                ax.annotate(
                    f"SLO {_fmt_s(s)}",
                    (0.0, s * scale),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=8,
                    color=SLO_COLOR,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
                )
            if log:
                ax.set_yscale("log")
                _log_axis(ax.yaxis)
                ax.set_ylabel("seconds (log scale)")
            else:
                ax.set_ylim(bottom=0)
                ax.set_ylabel("seconds" if unit == "s" else "milliseconds")
            if cats is not None:
                tilt = max(map(len, cats)) > 8
                ax.set_xticks(range(len(cats)), cats, rotation=20 if tilt else 0, ha="right" if tilt else "center")
            finite = xs_all[np.isfinite(xs_all)]
            if cats is None and finite.size and np.all(finite == np.round(finite)):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(axis_label(x))
            ax.set_title(f"{title}: p99 (solid), p50 (dashed)")

        handles = [Line2D([], [], color=colors[lab], linewidth=2, label=lab) for lab in order]
        handles += [
            Line2D([], [], color="0.2", linestyle="-", label="p99"),
            Line2D([], [], color="0.2", linestyle="--", linewidth=1.1, label="p50"),
            Line2D([], [], color=SLO_COLOR, linestyle=":", linewidth=1.3, label="SLO"),
        ]
        if marks_knee:
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
        what = "load" if x == "offered_rps" or looks_like_load(x) else x
        _finish(fig, handles, None, min(len(handles), 4), f"Latency vs {what}\n{describe(df)}", (0.05, 0.035))
        return _save(fig, out_dir, stem, formats)


# ---------------------------------------------------------------- CDFs


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
    stem: str = CDF_CHART,
) -> list[Path]:
    """TTFT, TPOT and e2e ECDFs of the completed requests of ``runs`` (run names of ``df``)."""
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
    # the series' own colour (a policy's everywhere), and per load a line style and a shade, lightest
    # for the lowest load: the same load reads the same across series
    raw = {fmt_value(df[x].iloc[by_run[r]]): df[x].iloc[by_run[r]] for r in runs}
    loads = list(dict.fromkeys(d[2] for d in data))
    numeric = pd.to_numeric(pd.Series([raw[v] for v in loads], dtype=object), errors="coerce")
    if numeric.notna().all():
        loads = [loads[i] for i in np.argsort(numeric.to_numpy(dtype=float), kind="stable")]
    names = list(dict.fromkeys(d[1] for d in data))
    hue = _series_colors(df, names)
    style = {v: LINESTYLES[i % len(LINESTYLES)] for i, v in enumerate(loads)}
    shade = {v: 1.0 if len(loads) == 1 else 0.45 + 0.55 * i / (len(loads) - 1) for i, v in enumerate(loads)}
    color = {(n, v): _tint(hue[n], shade[v]) for n in names for v in loads}
    panels = [
        ("ttft", "Time to first token", _slo(df, "ttft", slo_ttft)),
        ("tpot", "Time per output token", _slo(df, "tpot", slo_tpot)),
        ("e2e", "End-to-end latency", _slo(df, "e2e", None)),
    ]

    with _context():
        fig = Figure(figsize=(13, 4.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 3)
        for ax, (metric, title, slos) in zip(axes, panels):
            col = f"{metric}_s"
            per_run = [d[3][col].to_numpy(dtype=float) for d in data]
            per_run = [v[~np.isnan(v)] for v in per_run]
            pooled = np.concatenate(per_run) if per_run else np.empty(0)
            lows = [float(np.percentile(v, 1)) for v in per_run if v.size]
            highs = [float(np.percentile(v, 99)) for v in per_run if v.size]
            log = bool(lows) and _span_is_large([min(lows), max(highs)], 20.0)
            scale, unit_s = (1.0, "s") if log else _time_unit(highs)
            for (legend, name, load, _), values in zip(data, per_run):
                v = values * scale
                if log:
                    v = v[v > 0]
                _ecdf(ax, v, color=color[(name, load)], linestyle=style[load], label=legend, linewidth=1.5)
            for s in slos:
                ax.axvline(s * scale, color=SLO_COLOR, linestyle=":", linewidth=1.3)
                ax.annotate(
                    f"SLO {_fmt_s(s)}",
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
                _log_axis(ax.xaxis)
                ax.set_xlabel("seconds (log scale)")
            else:
                ax.set_xlim(left=0)
                ax.set_xlabel("seconds" if unit_s == "s" else "milliseconds")
            ax.set_ylim(0, 1.01)
            ax.set_title(title)
        axes[0].set_ylabel("fraction of completed requests")
        handles, legends = axes[0].get_legend_handles_labels()
        # one legend column per series when they have the same number of runs (legends fill column by column)
        per_series = [sum(1 for d in data if d[1] == n) for n in names]
        ncol = len(names) if len(set(per_series)) == 1 and len(names) <= 4 else min(3, max(1, len(handles)))
        title = (
            f"Latency CDFs of {len(data)} runs (completed requests; grey lines at p50 and p99)\n"
            f"{describe(df[df['run'].isin(list(runs))])}"
        )
        _finish(fig, handles, legends, ncol, title, (0.02, 0.04))
        return _save(fig, out_dir, stem, formats)


# ---------------------------------------------------------------- cost frontier


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
    labels = series_labels(df, series)
    order = list(pd.unique(labels))
    colors = _series_colors(df, order)
    markers = {label: MARKERS[i % len(MARKERS)] for i, label in enumerate(order)}
    names = short_names([k for k in [*series, x] if k != "offered_rps"])
    cost = cost_axis(df)
    cost_label = "cost ($/hour, GPUs x price)" if cost == "usd_per_hour" else "GPUs"
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(dtype=float)
    # series sharing a cost are nudged sideways a little, so one does not hide another
    cx = c.copy()
    lab = labels.to_numpy()
    shared = pd.DataFrame({"c": c, "s": lab}).dropna().groupby("c")["s"].nunique()
    if len(order) > 1 and (shared > 1).any() and np.isfinite(c).any():
        step = min(0.012, 0.06 / len(order)) * max(float(np.nanmax(np.abs(c))) * 1.3, 1e-9)
        for i, label in enumerate(order):
            cx[lab == label] += (i - (len(order) - 1) / 2) * step
    panels = [
        ("throughput_rps", "Throughput: completed requests/s"),
        ("goodput_rps", "Goodput: requests/s that met every SLO"),
    ]

    with _context():
        fig = Figure(figsize=(12, 4.8))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (value, title) in zip(axes, panels):
            v = df[value].to_numpy(dtype=float)
            for label in order:
                m = (labels == label).to_numpy()
                lo_c, hi_c = value + "_ci95_low", value + "_ci95_high"
                if lo_c in df.columns and df.loc[m, lo_c].notna().any():
                    lo, hi = df.loc[m, lo_c].to_numpy(dtype=float), df.loc[m, hi_c].to_numpy(dtype=float)
                    yerr = np.where(np.isnan([v[m] - lo, hi - v[m]]), 0.0, np.clip([v[m] - lo, hi - v[m]], 0, None))
                    ax.errorbar(
                        cx[m],
                        v[m],
                        yerr=yerr,
                        color=colors[label],
                        linestyle="none",
                        marker=markers[label],
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
                        color=colors[label],
                        linestyle="none",
                        marker=markers[label],
                        markersize=5,
                        alpha=0.85,
                        label=label,
                    )
            front = pareto_front(df, cost, value).to_numpy()
            idx = np.flatnonzero(front)
            idx = idx[np.argsort(c[idx], kind="stable")]
            if idx.size:
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
                    lines = ["Pareto front, least cost first:"]
                    for n, i in enumerate(idx, start=1):
                        short = [f"{names[k]}={fmt_value(df[k].iloc[i])}" for k in series if k != x]
                        what = ", ".join(short + [f"{names.get(x, 'load')}={fmt_value(df[x].iloc[i])}"])
                        lines.append(
                            f"{n}. run {df['run'].iloc[i]}: {what}\n    {v[i]:.3g} req/s for {_cost_text(c[i], cost)}"
                        )
                        ax.annotate(
                            str(n),
                            (cx[i], v[i]),
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
            if np.isfinite(c).any() and np.nanmin(c) >= 0:
                ax.set_xlim(0, max(float(np.nanmax(c)) * 1.3, 1e-9))
            ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], float(np.nanmax(v)) * 1.1 if np.isfinite(v).any() else 1.0))
            ax.set_xlabel(cost_label)
            ax.set_title(title)
            if len(set(c[np.isfinite(c)].tolist())) == 1:  # e.g. a load sweep on one fleet: nothing to trade
                ax.text(0.02, 0.02, "every run costs the same: this compares the runs'\noffered loads, not configurations",
                        transform=ax.transAxes, fontsize=8, color=SLO_COLOR, va="bottom")
        axes[0].set_ylabel("requests/s")
        handles, names = axes[1].get_legend_handles_labels()
        last = [i for i, n in enumerate(names) if n == "Pareto front"]
        keep = [i for i in range(len(names)) if i not in last] + last
        handles, names = [handles[i] for i in keep], [names[i] for i in keep]
        ncol = min(4, max(1, len(handles)))
        title = (
            f"Throughput and goodput vs cost ({len(df)} runs; circled: the Pareto front, "
            f"most requests/s for the least cost)\n{describe(df)}"
        )
        _finish(fig, handles, names, ncol, title, (0.02, 0.045))
        return _save(fig, out_dir, stem, formats)


# ---------------------------------------------------------------- one run's timeline


def run_timeline_chart(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    row: pd.Series | None = None,
    title: str | None = None,
    formats: Sequence[str] = FORMATS,
    stem: str = TIMELINE_CHART,
) -> list[Path]:
    """One run over simulated time: batch size, KV usage, requests waiting, replicas serving.

    Engine-step figures are binned over time: the step-time-weighted mean
    (line) and the maximum (faint) of the steps starting in each bin, over
    all replicas; requests waiting are summed over replicas and time-averaged.
    """
    run_dir = Path(run_dir)
    steps = pd.read_parquet(
        run_dir / "steps.parquet",
        columns=["start_s", "duration_s", "batch_size", "kv_blocks_used", "kv_blocks_total", "num_waiting"],
    )
    rep_file = run_dir / "replicas.parquet"
    replicas = pd.read_parquet(rep_file) if rep_file.is_file() else None
    if replicas is not None and not len(replicas):
        replicas = None
    start = steps["start_s"].to_numpy(dtype=float)
    dur = steps["duration_s"].to_numpy(dtype=float)
    window = float((start + dur).max()) if len(steps) else 0.0
    if replicas is not None:
        window = max(window, float(replicas["time_s"].max()))
    window = window or 1.0
    width = bin_width(window, target_bins=80)
    nbins = int(math.ceil(window / width - 1e-9)) or 1
    edges = np.arange(nbins + 1) * width
    idx = np.clip((start // width).astype(np.int64), 0, nbins - 1)
    busy = np.bincount(idx, weights=dur, minlength=nbins)[:nbins]

    def mean_max(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(idx, weights=values * dur, minlength=nbins)[:nbins] / busy
        peak = np.full(nbins, np.nan)
        np.fmax.at(peak, idx, values)
        return mean, peak

    def stairs(ax, y, **kw):
        ax.step(edges, np.append(y, y[-1:]), where="post", **kw)

    # the run's batching policy colours its lines, as it colours its series in the other charts
    policy = row.get("scheduler") if row is not None else None
    if policy is None and (run_dir / "summary.json").is_file():
        policy = json.loads((run_dir / "summary.json").read_text()).get("scenario", {}).get("scheduler")
    color = policy_color(policy)
    tint = _tint(color, 0.4)
    n_panels = 4 if replicas is not None else 3
    with _context():
        fig = Figure(figsize=(11, 2.3 * sum([1.0, 1.0, 1.0, 0.6][:n_panels]) + 1.1))
        FigureCanvasAgg(fig)
        ratios = [1.0, 1.0, 1.0, 0.6][:n_panels]
        axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
        ax_batch, ax_kv, ax_wait = axes[:3]
        if len(steps):
            mean, peak = mean_max(steps["batch_size"].to_numpy(dtype=float))
            stairs(ax_batch, peak, color=tint, linewidth=1.0, label="max")
            stairs(ax_batch, mean, color=color, label="mean (step-time weighted)")
            used = steps["kv_blocks_used"].to_numpy(dtype=float)
            total = steps["kv_blocks_total"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(total > 0, used / total, 0.0) * 100
            mean, peak = mean_max(share)
            stairs(ax_kv, peak, color=tint, linewidth=1.0, label="max")
            stairs(ax_kv, mean, color=color, label="mean (step-time weighted)")
            waiting = integral_per_bin(start, dur, steps["num_waiting"].to_numpy(dtype=float), edges)
            stairs(ax_wait, waiting / width, color=color, label="time-averaged, sum over replicas")
        else:
            for ax in axes[:3]:
                ax.text(0.5, 0.5, "no engine steps", ha="center", va="center", transform=ax.transAxes)
        ax_batch.set_ylim(bottom=0)
        ax_batch.set_ylabel("sequences")
        ax_batch.set_title("Batch size: sequences per engine step (per replica)")
        ax_kv.set_ylim(0, 105)
        ax_kv.set_ylabel("% of blocks")
        ax_kv.set_title("KV-cache usage: share of each replica's KV blocks in use")
        ax_wait.set_ylim(0, max(1.0, ax_wait.get_ylim()[1]))
        ax_wait.set_ylabel("requests")
        ax_wait.set_title("Queue length: requests waiting for admission to a batch")
        if replicas is not None:
            ax_rep = axes[3]
            ev = replicas.iloc[np.argsort(replicas["time_s"].to_numpy(dtype=float), kind="stable")]
            t = ev["time_s"].to_numpy(dtype=float)
            last = np.append(t[1:] != t[:-1], True)
            times = np.append(t[last], max(window, t[-1]))
            serving = ev["serving"].to_numpy(dtype=float)[last]
            ax_rep.step(times, np.append(serving, serving[-1]), where="post", color=color, label="replicas serving\n(entry pool: prefill\nwhen disaggregated)")
            if "billed_gpus" in ev.columns:
                billed = ev["billed_gpus"].to_numpy(dtype=float)[last]
                ax_rep.step(
                    times,
                    np.append(billed, billed[-1]),
                    where="post",
                    color=NEUTRAL_COLOR,
                    linestyle="--",
                    linewidth=1.2,
                    label="GPUs billed",
                )
                top = max(float(serving.max()), float(billed.max()), 1.0)
            else:
                top = max(float(serving.max()), 1.0)
            ax_rep.set_ylim(0, top * 1.25 + 0.5)
            ax_rep.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax_rep.set_ylabel("replicas / GPUs")
            ax_rep.set_title("Fleet: replicas serving and GPUs billed")
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        axes[-1].set_xlabel(f"simulated time (s); engine figures in {width:g} s bins")
        axes[-1].set_xlim(0, window)
        if title is None:
            title = f"Timeline of run {run_dir.name}"
            if row is not None:
                title += "\n" + describe(row.to_frame().T)
        fig.suptitle(title, fontsize=10.5)
        fig.tight_layout()
        return _save(fig, out_dir, stem, formats)


__all__ = [
    "CDF_CHART",
    "COST_CHART",
    "FORMATS",
    "LATENCY_CHART",
    "TIMELINE_CHART",
    "cdfs_chart",
    "cost_frontier_chart",
    "describe",
    "latency_vs_load_chart",
    "run_timeline_chart",
]
