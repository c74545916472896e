"""The ``levers`` chart: each serving lever against the reference deployment, on one page.

Drawn by ``servesim-report`` when the sweep varies ``lever`` (``servesim -m
experiment=levers``) over a load axis. One row per lever, three panels:

* **capacity at the SLO**: the highest load whose p99 TTFT and p99 TPOT both
  meet the SLO (:func:`simulator.report.sweep.knees`); a bar ending in an
  arrow means every load of the sweep met it, so the true capacity lies
  beyond;
* **p99 TTFT at the reference load** (the load nearest the workload's default
  rate that every lever ran), log scale, the SLO dotted;
* **cost of a million tokens at capacity**: the summary's
  ``cost.usd_per_million_tokens`` (prompt and output tokens) of the run at the
  lever's capacity, i.e. what the fleet costs per token when loaded as far as
  the SLO allows (at a fixed load every single-GPU lever costs the same per
  hour, so that is where levers differ); GPUs per replica when runs have no price.

Each bar is labelled with its value and, in the first panel, its change
against the ``baseline`` lever, so the page answers "which lever buys what,
and what does it cost" in one look.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.report.sweep import knees, series_labels
from simulator.report.sweep_style import FORMATS, SLO_COLOR, chart_context, save_chart

LEVERS_CHART = "levers"
LEVER_KEY = "lever"
REFERENCE = "baseline"
#: the load the TTFT and cost panels read: the default chat workload's rate
DEFAULT_LOAD = 15.0
BASE_COLOR, LEVER_COLOR, WORSE_COLOR = "0.45", "#0072B2", "#D55E00"
#: what each scenarios/lever/ file is, in words a product lead reads (others show their file name)
NAMES = {
    "baseline": "baseline",
    "chunked_prefill": "chunked prefill",
    "fp8": "FP8 weights and KV",
    "speculative": "speculative decoding (1B draft)",
    "multi_step": "multi-step scheduling (8 steps)",
    "async_scheduling": "async (overlap) scheduling",
    "tp2": "tensor parallel x2",
    "pp2": "pipeline parallel x2",
    "response_cache": "response cache (30% hits)",
    "cascade": "1B -> 8B model cascade",
    "orca": "contiguous reservations (Orca)",
}
MISSES = "misses the SLO at every load"


def reference_load(df: pd.DataFrame, x: str) -> float:
    """The load every lever ran that is nearest :data:`DEFAULT_LOAD`."""
    common = set.intersection(*(set(g[x].dropna()) for _, g in df.groupby(LEVER_KEY)))
    loads = sorted(common) or sorted(set(df[x].dropna()))
    return float(min(loads, key=lambda v: (abs(v - DEFAULT_LOAD), v)))


def lever_figures(df: pd.DataFrame, x: str, slo_ttft: float | None = None, slo_tpot: float | None = None) -> pd.DataFrame:
    """Per lever: capacity at the SLO (and whether every load met it), p99 TTFT and cost at the reference load."""
    at = reference_load(df, x)
    k = knees(df, x, [LEVER_KEY], slo_ttft=slo_ttft, slo_tpot=slo_tpot).set_index("series")
    label = dict(zip(df[LEVER_KEY].astype(str), series_labels(df, [LEVER_KEY])))  # lever -> its series label
    cost_col = "usd_per_million_tokens" if df.get("usd_per_million_tokens", pd.Series(dtype=float)).notna().any() else "gpus"
    rows = []
    for lever, g in df.groupby(LEVER_KEY, sort=False):
        ref = g[g[x] == at]
        key = label[str(lever)]
        capacity = k.loc[key, "knee"] if key in k.index else None
        loaded = g[g[x] == capacity] if capacity is not None and capacity == capacity else g.iloc[:0]
        rows.append(
            {
                "lever": str(lever),
                "capacity": capacity,
                "beyond": bool(k.loc[key, "all_met"]) if key in k.index else False,
                "ttft_p99_s": float(ref["ttft_p99_s"].mean()) if len(ref) else np.nan,
                "cost": float(loaded[cost_col].mean()) if len(loaded) else np.nan,
                "gpus": int(pd.to_numeric(g["gpus"], errors="coerce").max()) if "gpus" in g.columns else 1,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(load=at, cost=cost_col)
    # the reference first, then the levers by capacity (most first)
    out["_ref"] = out["lever"] != REFERENCE
    out["_cap"] = -pd.to_numeric(out["capacity"], errors="coerce").fillna(-1)
    return out.sort_values(["_ref", "_cap", "lever"]).drop(columns=["_ref", "_cap"]).reset_index(drop=True)


def levers_chart(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    x: str,
    slo_ttft: float | None = None,
    slo_tpot: float | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """The one-page comparison of the levers (see the module docstring)."""
    fig_df = lever_figures(df, x, slo_ttft, slo_tpot)
    at, cost_col = fig_df.attrs["load"], fig_df.attrs["cost"]
    slo = slo_ttft if slo_ttft is not None else _first(df, "slo_ttft_s")
    with chart_context():
        fig = Figure(figsize=(13, 0.55 * len(fig_df) + 2.4))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(fig_df))[::-1]
        _capacity_panel(axes[0], fig_df, y)
        _ttft_panel(axes[1], fig_df, y, at, slo)
        _cost_panel(axes[2], fig_df, y, cost_col)
        labels = [NAMES.get(v, v) + (f" ({n} GPUs)" if n > 1 else "") for v, n in zip(fig_df["lever"], fig_df["gpus"])]
        axes[0].set_yticks(y, labels)
        fig.suptitle(
            f"Serving levers against the baseline: capacity at the SLO, p99 TTFT at {at:g} req/s, cost per token at capacity\n"
            f"{_subtitle(df)}",
            fontsize=10,
        )
        slo_tpot = slo_tpot if slo_tpot is not None else _first(df, "slo_tpot_s")
        loads = sorted(set(pd.to_numeric(df[x], errors="coerce").dropna()))
        step = f"{min(np.diff(loads)):g} req/s" if len(loads) > 1 else "one load"
        fig.text(
            0.5, 0.01,
            f"SLO: p99 TTFT <= {_secs(slo)} and p99 TPOT <= {_secs(slo_tpot)} (dotted line: the TTFT SLO); capacity is read on "
            f"the sweep's load grid ({step} apart) and counts every request (a cache's hits too)\n"
            "grey: the baseline · blue: better than the baseline · orange: worse "
            "(more capacity is better; less latency and cost are better)",
            ha="center", fontsize=8, color="0.3",
        )  # fmt: skip
        fig.tight_layout(rect=(0, 0.05, 1, 0.93))
        return save_chart(fig, out_dir, LEVERS_CHART, formats)


def _colors(fig_df: pd.DataFrame, values: pd.Series, better_high: bool) -> list[str]:
    base = values[fig_df["lever"] == REFERENCE]
    ref = float(base.iloc[0]) if len(base) and pd.notna(base.iloc[0]) else np.nan
    out = []
    for lever, v in zip(fig_df["lever"], values):
        if lever == REFERENCE or np.isnan(ref) or pd.isna(v):
            out.append(BASE_COLOR)
        else:
            worse = v < ref if better_high else v > ref
            out.append(WORSE_COLOR if worse else LEVER_COLOR)
    return out


def _capacity_panel(ax: Axes, fig_df: pd.DataFrame, y: np.ndarray) -> None:
    cap = pd.to_numeric(fig_df["capacity"], errors="coerce")
    ref = cap[fig_df["lever"] == REFERENCE]
    base = float(ref.iloc[0]) if len(ref) and pd.notna(ref.iloc[0]) else np.nan
    ax.barh(y, cap.fillna(0), color=_colors(fig_df, cap, True), height=0.6)
    for yi, v, beyond in zip(y, cap, fig_df["beyond"]):
        if pd.isna(v):
            ax.text(0, yi, f"  {MISSES}", va="center", fontsize=8)
            continue
        change = f" ({v / base - 1:+.0%})" if base == base and base > 0 and v != base else ""
        ax.text(v, yi, f" {v:g}{'+' if beyond else ''} req/s{change}", va="center", fontsize=8)
    ax.set_xlabel("highest load meeting the p99 TTFT and TPOT SLOs (req/s)")
    ax.set_title("Capacity at the SLO", fontsize=10)
    ax.set_xlim(0, max(1.0, float(cap.max(skipna=True) or 0)) * 1.45)


def _ttft_panel(ax: Axes, fig_df: pd.DataFrame, y: np.ndarray, at: float, slo: float | None) -> None:
    v = fig_df["ttft_p99_s"]
    ax.barh(y, v.fillna(0), color=_colors(fig_df, v, False), height=0.6)
    for yi, t in zip(y, v):
        if pd.notna(t):
            ax.text(t, yi, f" {t * 1e3:,.0f} ms" if t < 1 else f" {t:,.3g} s", va="center", fontsize=8)
    ax.set_xscale("log")
    if slo:
        ax.axvline(slo, color=SLO_COLOR, linestyle=":", linewidth=1)
    ax.set_xlabel(f"p99 time to first token at {at:g} req/s (s, log)")
    ax.set_title("Tail latency", fontsize=10)
    ax.set_xlim(max(1e-3, float(np.nanmin(v)) / 2), float(np.nanmax(v)) * 8)


def _cost_panel(ax: Axes, fig_df: pd.DataFrame, y: np.ndarray, cost_col: str) -> None:
    v = fig_df["cost"]
    ax.barh(y, v.fillna(0), color=_colors(fig_df, v, False), height=0.6)
    dollars = cost_col != "gpus"
    for yi, c in zip(y, v):
        if pd.notna(c):
            ax.text(c, yi, f" ${c:.3f}" if dollars else f" {c:g} GPUs", va="center", fontsize=8)
        else:
            ax.text(0, yi, f"  {MISSES}", va="center", fontsize=8)
    ax.set_xlabel("$ per million tokens, at the capacity load" if dollars else "GPUs")
    ax.set_title("Cost at capacity", fontsize=10)
    ax.set_xlim(0, float(np.nanmax(v)) * 1.35 if np.isfinite(np.nanmax(v)) else 1)


def _secs(v: float | None) -> str:
    return "?" if v is None else (f"{v:g} s" if v >= 1 else f"{v * 1e3:g} ms")


def _subtitle(df: pd.DataFrame) -> str:
    """The deployment and the runs in one plain line: model, GPU, requests per run."""
    first = lambda col: str(df[col].dropna().iloc[0]) if col in df.columns and df[col].notna().any() else "?"  # noqa: E731
    n = int(pd.to_numeric(df["requests"], errors="coerce").max()) if "requests" in df.columns else 0
    return f"{first('model')} on {first('hardware')}, {n:,} requests per run, {len(df)} runs"


def _first(df: pd.DataFrame, col: str) -> float | None:
    if col not in df.columns:
        return None
    s = pd.to_numeric(df[col], errors="coerce").dropna()
    return float(s.iloc[0]) if len(s) else None
