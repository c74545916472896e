"""What every sweep chart shares: save settings, style context, colours, axes helpers and the caption.

The chart families (:mod:`simulator.report.sweep_latency`, :mod:`~simulator.report.sweep_cdfs`,
:mod:`~simulator.report.sweep_cost`, :mod:`~simulator.report.sweep_timeline`) build on these;
:mod:`simulator.report.sweep_charts` gathers them under one name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.colors
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simulator.report.charts import (
    OTHER_COLORS,
    PNG_METADATA,
    POLICY_COLORS,
    STYLE,
    fit_log_ticks,
    plain_log_axis,
    policy_color,
)
from simulator.report.sweep import fmt_value

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.9; annotations only

FORMATS = ("png", "svg")
#: fixed save settings per format: no dates, no varying ids
METADATA = {"png": PNG_METADATA, "svg": {"Date": None}}
RC: dict[RcKeyType, Any] = {"svg.hashsalt": "servesim", "svg.fonttype": "path"}
SLO_COLOR = "0.3"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
LINESTYLES = ("-", "--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 4)))

#: the file stem (chart key) of each sweep chart, as ``servesim-report`` writes it
LATENCY_CHART = "latency_vs_load"
CDFS_KEY = "cdfs"
COST_CHART = "cost_frontier"
TIMELINE_CHART = "timeline"

POLICY_KEYS = ("scheduler", "scheduler.policy")


# ---------------------------------------------------------------- saving and finishing


def save_chart(fig: Figure, out_dir: str | Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """``fig`` as ``out_dir/stem.<fmt>`` in each of ``formats``, with fixed metadata."""
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


def finish_chart(fig: Figure, handles, labels, ncol: int, title: str, bottom: tuple[float, float]) -> None:
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
def chart_context():
    """The project style, plus the settings that keep SVG output reproducible."""
    with matplotlib.style.context(STYLE), matplotlib.rc_context(RC):
        yield


# ---------------------------------------------------------------- the caption


def _uniq(df: pd.DataFrame, col: str) -> list[str]:
    if col not in df.columns:
        return []
    return [fmt_value(v) for v in pd.unique(df[col].astype(object).where(df[col].notna(), None)) if v is not None]


def _join(values: list[str], limit: int = 3) -> str:
    return " / ".join(values[:limit]) + (" / ..." if len(values) > limit else "")


def _span_text(values: list[int], fmt: str = "{}") -> str:
    """``a`` when one value, else ``first-last``, of sorted ``values``; ``?`` when none."""
    if not values:
        return "?"
    return fmt.format(values[0]) if len(set(values)) == 1 else f"{fmt.format(values[0])}-{fmt.format(values[-1])}"


def runs_caption(df: pd.DataFrame) -> str:
    """What the runs of a sweep table simulated, in one line (a chart title's second line):
    model, GPUs, batching, arrivals, requests, seeds per point."""
    model = _join(_uniq(df, "model")) or "?"
    hw = _join(_uniq(df, "hardware")) or "?"
    reps = _uniq(df, "replicas")
    tp = _uniq(df, "tp")
    fleet = _span_text(sorted(int(float(r)) for r in reps) if reps else [])
    tps = "TP" + _join(tp) if tp else ""
    sched = _join(_uniq(df, "scheduler"))
    arrival = _join(_uniq(df, "arrival"))
    req = sorted({int(v) for v in df["requests"].dropna()}) if "requests" in df.columns else []
    nreq = _span_text(req, "{:,}")
    parts = [f"{model} on {fleet}x {hw}" + (f" ({tps})" if tps else "")]
    if sched:
        parts.append(f"{sched} batching")
    if arrival:
        parts.append(f"{arrival} arrivals")
    parts.append(f"{nreq} requests per run")
    seeds = (
        sorted({int(v) for v in pd.to_numeric(df["replications"], errors="coerce").dropna()})
        if "replications" in df.columns
        else []
    )
    if seeds and seeds[-1] > 1:
        parts.append(f"{_join([str(r) for r in seeds])} seeds per point (mean, 95% CI)")
    return ", ".join(parts)


# ---------------------------------------------------------------- colours


def _policy_of(label: str) -> str | None:
    """The batching policy a series label names and nothing else (``scheduler=static``), else None."""
    key, _, value = str(label).partition("=")
    return value if key in POLICY_KEYS and value in POLICY_COLORS and "," not in value else None


def label_colors(labels: Sequence[str]) -> dict[str, str]:
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


def series_colors(df: pd.DataFrame, labels: Sequence[str]) -> dict[str, str]:
    """:func:`label_colors`, except that a lone series of runs that all share one policy takes that policy's colour."""
    labels = list(dict.fromkeys(labels))
    if len(labels) == 1 and _policy_of(labels[0]) is None and "scheduler" in df.columns:
        policies = set(df["scheduler"].dropna().astype(str))
        if len(policies) == 1 and next(iter(policies)) in POLICY_COLORS:
            return {labels[0]: policy_color(next(iter(policies)))}
    return label_colors(labels)


def shared_color_markers(colors: dict[str, str]) -> dict[str, str]:
    """A marker per series that tells apart series sharing a colour (past the palette's eight): the
    first series of a colour gets a circle, the next of that colour a square, and so on (MARKERS)."""
    seen: dict[str, int] = {}
    out = {}
    for label, color in colors.items():
        out[label] = MARKERS[seen.get(color, 0) % len(MARKERS)]
        seen[color] = seen.get(color, 0) + 1
    return out


def tint(color: str, strength: float) -> tuple[float, float, float]:
    """``color`` mixed with white: ``strength`` 1 is the colour itself, 0 white."""
    r, g, b = matplotlib.colors.to_rgb(color)
    return round(1.0 - strength * (1.0 - r), 6), round(1.0 - strength * (1.0 - g), 6), round(1.0 - strength * (1.0 - b), 6)


# ---------------------------------------------------------------- axes and values


def numeric_x(df: pd.DataFrame, x: str) -> tuple[np.ndarray, list[str] | None]:
    """x positions: the column itself when numeric, else category positions and their names."""
    if pd.api.types.is_numeric_dtype(df[x]) and not pd.api.types.is_bool_dtype(df[x]):
        return pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float), None
    names = [fmt_value(v) for v in df[x].astype(object)]
    cats = list(dict.fromkeys(names))
    return np.array([cats.index(n) for n in names], dtype=float), cats


def span_is_large(values: Sequence[float], factor: float = 30.0) -> bool:
    """Whether the positive finite ``values`` span more than ``factor`` (then: log scale)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    return bool(v.size) and v.max() / v.min() > factor


def time_unit(values: Sequence[float]) -> tuple[float, str]:
    """(scale, unit): milliseconds when every finite value is under a second, else seconds."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return (1e3, "ms") if v.size and v.max() < 1.0 else (1.0, "s")


def slo_lines(df: pd.DataFrame, metric: str, override: float | None) -> list[float]:
    """The SLO lines to draw: the override, else the runs' own distinct values."""
    if override is not None:
        return [float(override)]
    col = f"slo_{metric}_s"
    if col not in df.columns:
        return []
    return sorted({float(v) for v in pd.to_numeric(df[col], errors="coerce").dropna()})


log_axis = plain_log_axis


def fmt_x(v: float, cats: list[str] | None) -> str:
    if cats is not None:
        return cats[int(v)]
    return f"{v:g}"


def fmt_seconds(v: float) -> str:
    return f"{v:g} s" if v >= 1 else f"{v * 1e3:g} ms"
