"""The ``timeline`` chart of a sweep: one run over simulated time: batch size, KV-cache usage, requests
waiting, and replicas serving."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simulator.report.charts import NEUTRAL_COLOR, bin_width, integral_per_bin, policy_color
from simulator.report.sweep_style import (
    FORMATS,
    TIMELINE_CHART,
    chart_context,
    runs_caption,
    save_chart,
    tint,
)

PANEL_RATIOS = [1.0, 1.0, 1.0, 0.6]


@dataclass
class _Bins:
    """The run's time bins and, per engine step, its start, duration and bin."""

    window: float
    width: float
    nbins: int
    edges: np.ndarray
    start: np.ndarray
    dur: np.ndarray
    idx: np.ndarray
    busy: np.ndarray

    def mean_max(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per bin: the step-time-weighted mean and the maximum of ``values`` (one per step)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(self.idx, weights=values * self.dur, minlength=self.nbins)[: self.nbins] / self.busy
        peak = np.full(self.nbins, np.nan)
        np.fmax.at(peak, self.idx, values)
        return mean, peak

    def stairs(self, ax, y, **kw) -> None:
        ax.step(self.edges, np.append(y, y[-1:]), where="post", **kw)


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
    steps, replicas = _read_run(run_dir)
    bins = _bins(steps, replicas)
    color = _run_color(run_dir, row)
    n_panels = 4 if replicas is not None else 3
    with chart_context():
        fig = Figure(figsize=(11, 2.3 * sum(PANEL_RATIOS[:n_panels]) + 1.1))
        FigureCanvasAgg(fig)
        ratios = PANEL_RATIOS[:n_panels]
        axes = fig.subplots(n_panels, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
        _engine_panels(axes, steps, bins, color)
        if replicas is not None:
            _fleet_panel(axes[3], replicas, bins.window, color)
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        axes[-1].set_xlabel(f"simulated time (s); engine figures in {bins.width:g} s bins")
        axes[-1].set_xlim(0, bins.window)
        if title is None:
            title = f"Timeline of run {run_dir.name}"
            if row is not None:
                title += "\n" + runs_caption(row.to_frame().T)
        fig.suptitle(title, fontsize=10.5)
        fig.tight_layout()
        return save_chart(fig, out_dir, stem, formats)


def _read_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The run's engine steps and its replica events (None when it has none)."""
    steps = pd.read_parquet(
        run_dir / "steps.parquet",
        columns=["start_s", "duration_s", "batch_size", "kv_blocks_used", "kv_blocks_total", "num_waiting"],
    )
    rep_file = run_dir / "replicas.parquet"
    replicas = pd.read_parquet(rep_file) if rep_file.is_file() else None
    if replicas is not None and not len(replicas):
        replicas = None
    return steps, replicas


def _bins(steps: pd.DataFrame, replicas: pd.DataFrame | None) -> _Bins:
    """About 80 round-width bins over the run (the last step's end or the last replica event)."""
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
    return _Bins(window, width, nbins, edges, start, dur, idx, busy)


def _run_color(run_dir: Path, row: pd.Series | None) -> str:
    """The run's batching policy colours its lines, as it colours its series in the other charts."""
    policy = row.get("scheduler") if row is not None else None
    if policy is None and (run_dir / "summary.json").is_file():
        policy = json.loads((run_dir / "summary.json").read_text()).get("scenario", {}).get("scheduler")
    return policy_color(policy)


def _engine_panels(axes, steps: pd.DataFrame, bins: _Bins, color: str) -> None:
    """Batch size, KV-cache usage and queue length from the engine steps, with their labels."""
    ax_batch, ax_kv, ax_wait = axes[:3]
    faint = tint(color, 0.4)
    if len(steps):
        mean, peak = bins.mean_max(steps["batch_size"].to_numpy(dtype=float))
        bins.stairs(ax_batch, peak, color=faint, linewidth=1.0, label="max")
        bins.stairs(ax_batch, mean, color=color, label="mean (step-time weighted)")
        used = steps["kv_blocks_used"].to_numpy(dtype=float)
        total = steps["kv_blocks_total"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, used / total, 0.0) * 100
        mean, peak = bins.mean_max(share)
        bins.stairs(ax_kv, peak, color=faint, linewidth=1.0, label="max")
        bins.stairs(ax_kv, mean, color=color, label="mean (step-time weighted)")
        waiting = integral_per_bin(bins.start, bins.dur, steps["num_waiting"].to_numpy(dtype=float), bins.edges)
        bins.stairs(ax_wait, waiting / bins.width, color=color, label="time-averaged, sum over replicas")
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


def _fleet_panel(ax_rep, replicas: pd.DataFrame, window: float, color: str) -> None:
    """Replicas serving and (when recorded) GPUs billed, as step functions of the replica events."""
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
