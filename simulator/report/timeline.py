"""The cluster timeline: what the fleet, the traffic and the tiers did over time.

One figure, five panels sharing one time axis (seconds of simulated time):

1. replicas serving and GPUs billed (step functions of the replica events in
   ``replicas.parquet``), with replica failures marked (black dotted lines,
   repeated faintly in every panel) and, for spot replicas, each notice (a
   vermillion tick at the top of the panel, and a faint vermillion line in
   the panels below: serving drops there) and its reclaim ``notice_s`` later
   (a vermillion dash-dot line);
2. requests per second in time bins: arrivals offered (line), completions
   stacked by tier above zero, rejections stacked by reason below zero
   (each counted when it finally ended: after its retries);
3. p99 TTFT of the requests *arriving* in each bin, per tier, with each
   tier's TTFT target dashed in the same colour (log scale when the values
   span more than a factor of 30);
4. requests waiting, summed over replicas and averaged over each bin;
5. KV-cache usage: the share of KV blocks in use, averaged over the busy
   replicas' steps in each bin and on the busiest replica (where the
   shedding watermarks act), with the admission KV watermarks dashed.

Written as ``cluster_timeline.png`` by ``Result.save`` when the scenario has
tiers, autoscaling or failures (:func:`wants_cluster_timeline`). Like the
other charts it uses the project style sheet inside the function and fixed
PNG metadata, so the same data gives a byte-identical file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from simulator.metrics.breakdown import label_order, spot_reclaims
from simulator.metrics.sections import Summary
from simulator.report.charts import (
    NEUTRAL_COLOR,
    OKABE_ITO,
    PNG_METADATA,
    STYLE,
    bin_width,
    fit_log_ticks,
    integral_per_bin,
    plain_log_axis,
    policy_color,
)

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: tiers: Okabe-Ito hues (colour-blind safe); rejection reasons: the Okabe-Ito hues the first tiers leave free,
#: then greys; the fleet, the queue and KV usage: the run's batching policy colour (as in every other chart),
#: GPUs billed and failures in neutral dark grey and black
TIER_COLORS = (
    OKABE_ITO["blue"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["yellow"],
)
REASON_COLORS = {
    "queue_full": OKABE_ITO["vermillion"],
    "wait_too_long": OKABE_ITO["yellow"],
    "kv_pressure": OKABE_ITO["orange"],
    "slo_unattainable": "0.45",
    "rate_limited": "0.65",
    "no_replica": "0.1",
    "replica_failure": "0.3",
    "kv_capacity": "0.8",
    "prompt_exceeds_max_batch_tokens": "0.55",
}
OTHER_REASON_COLORS = ("0.9", "0.7", "0.5", "0.35")
FAILURE_COLOR = OKABE_ITO["black"]
RECLAIM_COLOR = OKABE_ITO["vermillion"]


def wants_cluster_timeline(cfg: ScenarioConfig) -> bool:
    """True when the scenario has tiers, an autoscaler, replica failures or spot replicas (interruptions)."""
    cluster = getattr(cfg, "cluster", None)
    autoscaler = getattr(cluster, "autoscaler", None)
    failures = getattr(cluster, "failures", None)
    groups = getattr(cluster, "groups", None) or {}
    spot = getattr(cluster, "tier", None) == "spot" or any(getattr(g, "tier", None) == "spot" for g in groups.values())
    return bool(
        getattr(cfg, "tiers", None)
        or getattr(autoscaler, "enabled", False)
        or getattr(failures, "at_s", None)
        or getattr(failures, "mtbf_gpu_hours", None) is not None
        or spot
    )


def _labels(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), "", dtype=object)
    return df[col].astype(object).where(df[col].notna(), "").astype(str).to_numpy()


@dataclass(frozen=True)
class _Outages:
    """When replicas stopped: failures, spot reclaims (a failure after a spot notice) and the notices."""

    failures: np.ndarray
    reclaims: np.ndarray
    notices: np.ndarray

    @classmethod
    def none(cls) -> _Outages:
        return cls(np.empty(0), np.empty(0), np.empty(0))

    @classmethod
    def of(cls, ev: pd.DataFrame, notice_s: float) -> _Outages:
        """From the replica events in time order: a ``failed`` event ``notice_s`` after its
        replica's ``interrupted`` event (the spot notice) is that notice's reclaim; any other
        failure, one that strikes during a notice included, is a failure."""
        t = ev["time_s"].to_numpy(dtype=float)
        event = ev["event"].astype(str).to_numpy()
        reclaimed = spot_reclaims(ev, notice_s)
        return cls(t[(event == "failed") & ~reclaimed], t[reclaimed], t[event == "interrupted"])

    def lines(self, top: bool):
        """(time, colour, line style, label) of the lines to draw: failures everywhere; in the top
        panel spot reclaims, below it spot notices (where capacity drops); each label once."""
        marks: list[tuple[np.ndarray, str, str, str | None]] = [(self.failures, FAILURE_COLOR, ":", "replica failure")]
        marks.append((self.reclaims, RECLAIM_COLOR, "-.", "spot reclaim") if top else (self.notices, RECLAIM_COLOR, "-", None))
        for times, color, style, label in marks:
            for i, t in enumerate(times):
                yield float(t), color, style, label if i == 0 else None


def _replica_steps(result, end_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Outages]:
    """(times, serving, billed GPUs, outages): step functions held until ``end_s``."""
    rep = getattr(result, "replicas", None)
    if rep is None or len(rep) == 0:
        cl = result.summary.get("cluster", {})
        n = cl.get("serving_replicas", {}).get("max", result.summary["scenario"].get("replicas", 0))
        g = result.summary.get("cost", {}).get("gpus", n)
        return np.array([0.0, end_s]), np.array([n, n], float), np.array([g, g], float), _Outages.none()
    ev = rep.iloc[np.argsort(rep["time_s"].to_numpy(), kind="stable")]
    t = ev["time_s"].to_numpy(dtype=float)
    last = np.append(t[1:] != t[:-1], True)  # the state after the last event of each instant
    times = np.append(t[last], max(end_s, t[-1]))
    serving = ev["serving"].to_numpy(dtype=float)[last]
    billed = ev["billed_gpus"].to_numpy(dtype=float)[last]
    pricing = getattr(getattr(result, "config", None), "pricing", None)
    notice_s = float(pricing.spot.notice_s) if pricing is not None else 0.0
    return times, np.append(serving, serving[-1]), np.append(billed, billed[-1]), _Outages.of(ev, notice_s)


def _tier_targets(cfg: ScenarioConfig, tiers: list[str]) -> dict[str, float | None]:
    conf = getattr(cfg, "tiers", None) or {}
    out = {}
    for name in tiers:
        t = conf.get(name)
        out[name] = t.ttft_s if t is not None and t.ttft_s is not None else cfg.slo.ttft_s
    return out


def _legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


@dataclass
class _Bins:
    """The run's time bins: about 60 of a round width over the whole run."""

    window: float
    width: float
    nbins: int
    edges: np.ndarray
    centers: np.ndarray

    def counts(self, times: np.ndarray) -> np.ndarray:
        """How many of ``times`` fall in each bin."""
        idx = np.clip((np.asarray(times, float) // self.width).astype(np.int64), 0, self.nbins - 1)
        return np.bincount(idx, minlength=self.nbins)[: self.nbins].astype(float)


@dataclass
class _Tiers:
    """The tiers drawn (``[""]`` for one untiered series), their colours and names, each request's tier."""

    has_tiers: bool
    names: list[str]
    colors: dict[str, str]
    label: dict[str, str]
    of_request: np.ndarray


def _time_bins(summary: Summary, req: pd.DataFrame) -> _Bins:
    window = summary.get("window", {}).get("end_s")
    window = float(window) if window and np.isfinite(window) else 0.0
    if len(req):
        window = max(window, float(np.nanmax(req["finish_s"].to_numpy(dtype=float))), float(req["arrival_s"].max()))
    window = window or 1.0
    width = bin_width(window, target_bins=60)
    nbins = int(math.ceil(window / width - 1e-9)) or 1
    edges = np.arange(nbins + 1) * width
    return _Bins(window, width, nbins, edges, edges[:-1] + width / 2)


def _tiers(cfg: ScenarioConfig, req: pd.DataFrame, run_color: str) -> _Tiers:
    tier_col = _labels(req, "tier")
    has_tiers = bool(getattr(cfg, "tiers", None)) or (tier_col != "").any()
    tiers = label_order(set(tier_col), "tier", getattr(cfg, "tiers", None)) if has_tiers else [""]
    tier_palette = [c for c in TIER_COLORS if c != run_color]  # the fleet's lines are in the policy's colour
    colors = {t: tier_palette[i % len(tier_palette)] for i, t in enumerate(tiers)}
    tier_name = {t: (t or "untiered") if has_tiers else "all requests" for t in tiers}
    return _Tiers(has_tiers, tiers, colors, tier_name, tier_col)


def cluster_timeline_chart(result, path: str | Path) -> Path:
    """Draw the cluster timeline of one run (see the module docstring) to ``path`` (PNG)."""
    cfg, req, steps, summary = result.config, result.requests, result.steps, result.summary
    bins = _time_bins(summary, req)
    run_color = policy_color(summary["scenario"].get("scheduler"))
    tiers = _tiers(cfg, req, run_color)
    times, serving, billed, outages = _replica_steps(result, bins.window)

    with matplotlib.style.context(STYLE):
        fig = Figure(figsize=(11, 11.5))
        FigureCanvasAgg(fig)
        axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": [1.0, 1.5, 1.3, 0.9, 0.9]})
        ax_rep, ax_rps, ax_ttft, ax_queue, ax_kv = axes
        _fleet_panel(ax_rep, times, serving, billed, outages, run_color)
        _traffic_panel(ax_rps, req, bins, tiers)
        _ttft_panel(ax_ttft, cfg, req, bins, tiers)
        _engine_panels(ax_queue, ax_kv, steps, bins, run_color)
        _kv_watermarks(ax_kv, cfg, tiers)
        ax_kv.set_ylim(0, 105)
        ax_kv.set_ylabel("% of blocks")
        ax_kv.set_title("KV-cache usage: share of KV blocks in use (mean and busiest replica)")
        ax_kv.set_xlabel("simulated time (s)")
        ax_kv.set_xlim(0, bins.window)

        for ax in axes:
            if ax is not ax_rep:
                for t, color, style, _ in outages.lines(top=False):
                    ax.axvline(t, color=color, linestyle=style, linewidth=1.0, alpha=0.5)
            if ax is not ax_rps:
                _legend(ax)

        fig.suptitle(_title(summary, req, tiers, outages), fontsize=10)
        fit_log_ticks(fig)
        fig.tight_layout()
        fit_log_ticks(fig)
        path = Path(path)
        fig.savefig(path, metadata=PNG_METADATA)
    return path


def _fleet_panel(ax_rep, times, serving, billed, outages: _Outages, run_color: str) -> None:
    """(1) replicas serving and GPUs billed; failures, spot reclaims and spot notices marked."""
    ax_rep.step(times, serving, where="post", color=run_color, label="replicas serving")
    ax_rep.step(times, billed, where="post", color=NEUTRAL_COLOR, linestyle="--", linewidth=1.2, label="GPUs billed")
    top = max(float(serving.max()), float(billed.max()), 1.0)
    ax_rep.set_ylim(0, top * 1.2 + 0.5)
    for t, color, style, label in outages.lines(top=True):
        ax_rep.axvline(t, color=color, linestyle=style, linewidth=1.4, label=label)
    for i, t in enumerate(outages.notices):  # a tick at the top: the notice, before the reclaim's line
        ax_rep.axvline(float(t), ymin=0.88, ymax=1.0, color=RECLAIM_COLOR, linewidth=2.0, label="spot notice" if i == 0 else None)
    ax_rep.set_ylabel("replicas / GPUs")
    ax_rep.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rep.set_title("Fleet: replicas serving and GPUs billed")


def _traffic_panel(ax_rps, req: pd.DataFrame, bins: _Bins, tiers: _Tiers) -> None:
    """(2) traffic: offered, completed by tier (above zero), rejected by reason (below zero)."""
    status = req["status"].astype(str).to_numpy()
    done = status == "completed"
    rejected = status == "rejected"
    finish = req["finish_s"].to_numpy(dtype=float)
    arrival = req["arrival_s"].to_numpy(dtype=float)
    centers, width = bins.centers, bins.width
    ax_rps.axhline(0, color="0.3", linewidth=0.8)
    bottom = np.zeros(bins.nbins)
    tier_of_done = tiers.of_request[done]
    completed_bars, rejected_bars = [], []
    for t in tiers.names:
        rate = bins.counts(finish[done][tier_of_done == t]) / width
        completed_bars.append(ax_rps.bar(centers, rate, width=width, bottom=bottom, color=tiers.colors[t], alpha=0.85,
                                         linewidth=0, label=f"completed: {tiers.label[t]}"))
        bottom += rate
    reasons = _labels(req, "reject_reason")[rejected]
    known = [r for r in REASON_COLORS if r in set(reasons)]
    others = sorted(set(reasons) - set(known))
    palette = {**REASON_COLORS, **{r: OTHER_REASON_COLORS[i % len(OTHER_REASON_COLORS)] for i, r in enumerate(others)}}
    below = np.zeros(bins.nbins)
    for r in known + others:
        rate = bins.counts(finish[rejected][reasons == r]) / width
        rejected_bars.append(ax_rps.bar(centers, -rate, width=width, bottom=-below, color=palette[r], alpha=0.85,
                                        linewidth=0, label=f"rejected: {r or 'unknown'}"))
        below += rate
    offered_rate = np.append(bins.counts(arrival), bins.counts(arrival)[-1:]) / width
    (offered,) = ax_rps.step(bins.edges, offered_rate, where="post", color="black", linewidth=1.3,
                             label="offered (arrivals)")
    if below.any():
        lim = max(float(ax_rps.get_ylim()[1]), float(below.max()) * 1.1)
        ax_rps.set_ylim(-float(below.max()) * 1.15, lim)
    ax_rps.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{abs(v):g}"))
    ax_rps.set_ylabel("requests/s")
    # legend top to bottom as drawn: offered, completions (last stacked on top first), rejections
    handles = [offered, *completed_bars[::-1], *rejected_bars]
    ax_rps.legend(handles, [h.get_label() for h in handles], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    ax_rps.set_title(f"Requests per second ({width:g} s bins): completed above zero, rejected below")


def _p99_per_bin(idx: np.ndarray, values: np.ndarray, nbins: int) -> np.ndarray:
    """The 99th percentile of ``values`` in each bin (``idx``: each value's bin); NaN where empty."""
    p99 = np.full(nbins, np.nan)
    if values.size:
        order = np.argsort(idx, kind="stable")
        idx, values = idx[order], values[order]
        cuts = np.flatnonzero(np.diff(idx)) + 1
        for b, chunk in zip(idx[np.r_[0, cuts]], np.split(values, cuts)):
            p99[b] = np.percentile(chunk, 99)
    return p99


def _ttft_panel(ax_ttft, cfg: ScenarioConfig, req: pd.DataFrame, bins: _Bins, tiers: _Tiers) -> None:
    """(3) p99 TTFT by arrival bin, per tier, with each tier's target."""
    done = req["status"].astype(str).to_numpy() == "completed"
    arrival = req["arrival_s"].to_numpy(dtype=float)
    ttft = req["ttft_s"].to_numpy(dtype=float)
    targets = _tier_targets(cfg, tiers.names)
    spread = []
    for t in tiers.names:
        mine = done & (tiers.of_request == t) & ~np.isnan(ttft)
        idx = np.clip((arrival[mine] // bins.width).astype(np.int64), 0, bins.nbins - 1)
        p99 = _p99_per_bin(idx, ttft[mine], bins.nbins)
        ok = ~np.isnan(p99)
        name, color = tiers.label[t], tiers.colors[t]
        if ok.any():
            ax_ttft.plot(bins.centers[ok], p99[ok], marker="o", markersize=2.8, color=color, label=f"p99 TTFT: {name}")
            spread.extend([np.nanmin(p99), np.nanmax(p99)])
        if targets[t] is not None:
            ax_ttft.axhline(targets[t], color=color, linestyle="--", linewidth=1.1, label=f"TTFT target: {name}")
            spread.append(targets[t])
    positive = [v for v in spread if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax_ttft.set_yscale("log")
        plain_log_axis(ax_ttft.yaxis)
        ax_ttft.set_ylabel("seconds (log scale)")
    else:
        ax_ttft.set_ylim(bottom=0)
        ax_ttft.set_ylabel("seconds")
    if not spread:
        ax_ttft.text(0.5, 0.5, "no completed requests", ha="center", va="center", transform=ax_ttft.transAxes)
    ax_ttft.set_title("p99 time to first token of the requests arriving in each bin (completed ones)")


def _engine_panels(ax_queue, ax_kv, steps: pd.DataFrame, bins: _Bins, run_color: str) -> None:
    """(4) queue and (5) KV usage, from the engine steps."""
    nbins, edges, width = bins.nbins, bins.edges, bins.width
    if len(steps):
        start = steps["start_s"].to_numpy(dtype=float)
        dur = steps["duration_s"].to_numpy(dtype=float)
        sidx = np.clip((start // width).astype(np.int64), 0, nbins - 1)
        waiting = integral_per_bin(start, dur, steps["num_waiting"].to_numpy(dtype=float), edges)
        ax_queue.step(edges, np.append(waiting, waiting[-1:]) / width, where="post", color=run_color,
                      label="requests waiting")
        used = steps["kv_blocks_used"].to_numpy(dtype=float)
        total = steps["kv_blocks_total"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, used / total, 0.0)
            busy = np.bincount(sidx, weights=dur, minlength=nbins)[:nbins]
            kv = np.bincount(sidx, weights=share * dur, minlength=nbins)[:nbins] / busy * 100
        peak = np.full(nbins, np.nan)
        np.fmax.at(peak, sidx, share * 100)  # the busiest replica: where the watermarks bite
        ax_kv.step(edges, np.append(peak, peak[-1:]), where="post", color=run_color, alpha=0.4, linewidth=1.0,
                   label="busiest replica")
        ax_kv.step(edges, np.append(kv, kv[-1:]), where="post", color=run_color, label="mean over busy replicas")
    else:
        for ax in (ax_queue, ax_kv):
            ax.text(0.5, 0.5, "no engine steps", ha="center", va="center", transform=ax.transAxes)
    ax_queue.set_ylim(bottom=0)
    ax_queue.set_ylabel("requests")
    ax_queue.set_title("Requests waiting (sum over replicas, time-averaged per bin)")


def _kv_watermarks(ax_kv, cfg: ScenarioConfig, tiers: _Tiers) -> None:
    """The admission KV watermarks (per tier, else the default) as dashed lines, tiers sharing one named together."""
    marks: dict[float, list[str]] = {}  # watermark -> the tiers shed above it
    default_mark = getattr(getattr(cfg, "admission", None), "kv_watermark", None)
    for t in tiers.names:
        conf = (getattr(cfg, "tiers", None) or {}).get(t)
        mark = conf.kv_watermark if conf is not None and conf.kv_watermark is not None else default_mark
        if mark is not None:
            marks.setdefault(float(mark), []).append(tiers.label[t])
    for mark, names in sorted(marks.items()):
        first = next(t for t in tiers.names if tiers.label[t] == names[0])
        ax_kv.axhline(mark * 100, color=tiers.colors[first], linestyle="--", linewidth=1.0,
                      label=f"shed above: {', '.join(names)}")


def _title(summary: Summary, req: pd.DataFrame, tiers: _Tiers, outages: _Outages) -> str:
    """Model, fleet, batching, arrivals, mean offered rate, requests, and the tiers, failures and spot reclaims."""
    s = summary["scenario"]
    arrival = req["arrival_s"].to_numpy(dtype=float)
    cl = summary.get("cluster", {})
    sr = cl.get("serving_replicas", {})
    fleet = (f"{sr['min']}-{sr['max']}" if sr.get("min") != sr.get("max") else f"{sr.get('max', s['replicas'])}")
    span = float(arrival.max()) if len(arrival) else 0.0
    rate = f"{len(arrival) / span:.3g} req/s mean offered" if span > 0 else f"{s['rate_rps']:g} req/s"
    extra = []
    if tiers.has_tiers:
        extra.append(f"{len(tiers.names)} tiers")
    for n, what in ((len(outages.failures), "failure"), (len(outages.reclaims), "spot reclaim")):
        if n:
            extra.append(f"{n} {what}" + ("s" if n != 1 else ""))
    return (
        f"{s['model']} on {fleet}x {s['hardware']} (TP{s['tp']}), {s['scheduler']} batching, "
        f"{s['arrival']} arrivals, {rate}, {len(req):,} requests" + (f" - {', '.join(extra)}" if extra else "")
    )
