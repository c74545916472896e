"""The chart of ``servesim-trace stats``: one recorded trace on one page.

:func:`stats_chart` draws, from a :class:`~simulator.workload.traces.Trace`
and its :func:`~simulator.workload.traces.describe` summary:

* the request rate over time, in "nice" bins (1 s, 5 min, 1 h, ...) of about
  120 to the trace, with the mean rate dashed;
* the inter-arrival time histogram, log-spaced when the gaps span decades,
  linear for a narrow range, with same-instant arrivals (zero gaps, which a
  log axis cannot show) as a bar of their own;
* prompt and output length histograms on log axes, p50 dashed and p99 dotted;
* with prefix ids, the share of blocks (and of prompt tokens) that repeat an
  earlier request's, per time bin.

The figure is built with matplotlib's object API under the project style
sheet and saved with fixed metadata, so the same trace gives a byte-identical
PNG.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.workload.traces import Trace, describe, order, prefix_reuse
from simulator.workload.traces.stats import _reordered_prefix

_NICE_BINS = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
)
_BOX = {"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"}


def _time_unit(span: float) -> tuple[float, str]:
    if span > 3 * 3600:
        return 3600.0, "hours"
    if span > 600:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _fmt_s(s: float) -> str:
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def _fmt_gap(x: float) -> str:
    """A gap-axis tick: 10 µs, 0.1 ms, 1 s."""
    if x < 1e-3:
        return f"{x * 1e6:.3g} µs"
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def _token_bins(v: np.ndarray, n: int = 50) -> np.ndarray:
    """About ``n`` log-spaced bins with integer edges (no empty bins between small integers)."""
    lo, hi = max(float(v.min()), 1.0), float(v.max())
    edges = np.unique(np.round(np.logspace(np.log10(lo), np.log10(hi + 1), n + 1)))
    if len(edges) < 2:
        edges = np.array([lo, lo + 1])
    return edges - 0.5


@dataclass
class _TimeBins:
    """The time axis shared by the rate and reuse panels."""

    t: np.ndarray  # arrival times since the first request, in time order (s)
    span: float
    tscale: float
    tunit: str
    width: float
    edges: np.ndarray
    counts: np.ndarray
    widths: np.ndarray
    centers: np.ndarray  # in tunit


def _time_bins(t: np.ndarray) -> _TimeBins:
    span = float(t[-1])
    tscale, tunit = _time_unit(span)
    width = next((b for b in _NICE_BINS if span / b <= 120), _NICE_BINS[-1]) if span > 0 else 1.0
    edges = np.arange(0.0, span, width) if span > 0 else np.zeros(1)  # every request at one instant: one bin
    if len(edges) > 1 and span - edges[-1] < width / 2:
        edges = edges[:-1]  # fold a short last piece into the bin before
    edges = np.append(edges, span if span > edges[-1] else edges[-1] + width)  # the last bin may be partial
    counts, _ = np.histogram(t, bins=edges)
    widths = np.diff(edges)
    centers = (edges[:-1] + edges[1:]) / 2 / tscale
    return _TimeBins(t, span, tscale, tunit, width, edges, counts, widths, centers)


def _layout(fig, has_prefix: bool, zeros: int) -> dict:
    """The panels: rate (and reuse) on top; gaps (with a zero-gap bar), prompt and output below."""
    grid = fig.add_gridspec(2, 6)
    ax = {}
    if has_prefix:
        ax["rate"], ax["reuse"] = fig.add_subplot(grid[0, :3]), fig.add_subplot(grid[0, 3:])
    else:
        ax["rate"], ax["reuse"] = fig.add_subplot(grid[0, :]), None
    if zeros:  # zero gaps (same-instant arrivals) get their own bar: a log axis cannot show 0
        sub = grid[1, 0:2].subgridspec(1, 2, width_ratios=(1, 5), wspace=0.5)
        ax["zero"], ax["gap"] = fig.add_subplot(sub[0, 0]), fig.add_subplot(sub[0, 1])
    else:
        ax["zero"], ax["gap"] = None, fig.add_subplot(grid[1, 0:2])
    ax["in"], ax["out"] = (fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in (1, 2))
    return ax


def _plot_rate(ax, tb: _TimeBins, s: dict) -> None:
    ax.stairs(tb.counts / tb.widths, tb.edges / tb.tscale, color="C0", fill=True, alpha=0.15)
    ax.stairs(tb.counts / tb.widths, tb.edges / tb.tscale, color="C0", linewidth=1.4)
    ax.axhline(s["mean_rate_rps"], color="0.35", linestyle="--", linewidth=1)
    ax.text(
        0.99,
        0.97,
        f"mean {s['mean_rate_rps']:.3g} req/s",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8.5,
        color="0.25",
        bbox=_BOX,
    )
    ax.set_title(f"Request rate ({_fmt_s(tb.width)} bins)")
    ax.set_xlabel(f"time since first request ({tb.tunit})")
    ax.set_ylabel("requests / s")
    ax.set_xlim(0, tb.span / tb.tscale if tb.span > 0 else 1)
    ax.set_ylim(bottom=0)


def _gap_histogram(ax, gaps: np.ndarray) -> None:
    """The positive gaps: log-spaced bins when they span decades, linear ones otherwise."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    pos = gaps[gaps > 0]
    if pos.size:
        lo, hi = float(pos.min()), float(pos.max())
        if hi >= 20 * lo:  # spans decades: log-spaced bins, plain decade labels
            bins = np.logspace(np.log10(lo), np.log10(hi * 1.0001), 50)
            heights, _, _ = ax.hist(pos, bins=bins, color="C0", alpha=0.8)
            ax.set_ylim(0, 1.25 * max(heights.max(), 1))  # room for the numbers box
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _fmt_gap(x)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("gap (log scale)")
        else:  # a narrow range (e.g. a fixed period): linear bins, so the ticks stay readable
            pad = max(hi - lo, 1e-3 * hi) * 0.05
            bins = np.linspace(lo - pad, hi + pad, 51)
            heights, _, _ = ax.hist(pos, bins=bins, color="C0", alpha=0.8)
            ax.set_ylim(0, 1.25 * max(heights.max(), 1))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.6g}"))
            ax.set_xlabel("seconds")
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no gap > 0 s", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_xlabel("seconds")


def _plot_gaps(ax_gap, ax_zero, gaps: np.ndarray, s: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    _gap_histogram(ax_gap, gaps)
    zeros = s["zero_gaps"]
    note = f"mean {gaps.mean():.3g} s, CV {s['interarrival_cv']:.2f}" if gaps.size else "one request"
    ax_gap.text(0.97, 0.95, note, transform=ax_gap.transAxes, ha="right", va="top", fontsize=8.5, bbox=_BOX)
    ax_gap.yaxis.set_major_locator(MaxNLocator(integer=True))
    if ax_zero is None:
        ax_gap.set_title("Inter-arrival time")
    else:
        share = zeros / gaps.size
        pct = f"{share:.0%}" if share >= 0.1 else f"{100 * share:.2g}%"
        ax_gap.set_title(f"Inter-arrival time ({zeros:,} of {gaps.size:,} gaps are 0 s, {pct})")
        ax_zero.bar([0], [zeros], width=0.6, color="0.45", alpha=0.8)
        ax_zero.set_xlim(-0.6, 0.6)
        ax_zero.set_ylim(0, 1.15 * zeros)
        ax_zero.set_xticks([0], ["0 s"])
        ax_zero.set_yticks([])
        ax_zero.spines["left"].set_visible(False)
        ax_zero.grid(False)
        ax_zero.text(0, zeros, f"{zeros:,}", ha="center", va="bottom", fontsize=8.5)
        ax_zero.set_xlabel("(own scale)", fontsize=8.5)
    ax_gap.set_ylabel("requests")


def _plot_lengths(ax, values: np.ndarray, d: dict, title: str, color: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    thousands = FuncFormatter(lambda x, _: "" if x < 1 else f"{x / 1000:g}k" if x >= 1000 else f"{x:,.0f}")
    v = values.astype(float)
    heights, _, _ = ax.hist(v, bins=_token_bins(v), color=color, alpha=0.8)
    ax.set_ylim(0, 1.3 * max(heights.max(), 1))  # room for the numbers box
    ax.set_xscale("log")
    for q, style in (("p50", "--"), ("p99", ":")):
        ax.axvline(d[q], color="0.3", linestyle=style, linewidth=1)
    ax.text(
        0.97,
        0.95,
        f"mean {d['mean']:,.0f}\np50 {d['p50']:,.0f}\np99 {d['p99']:,.0f}\nmax {d['max']:,.0f}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8.5,
        bbox=_BOX,
    )
    ax.set_title(title + " (dashed p50, dotted p99)")
    ax.set_xlabel("tokens (log scale)")
    decades = np.log10(max(v.max(), 2.0) / max(v.min(), 1.0))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(thousands)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _plot_reuse(ax, tr: Trace, tb: _TimeBins, s: dict) -> None:
    t, edges = tb.t, tb.edges
    req, reused, tokens = prefix_reuse(tr)
    b = np.clip(np.digitize(t[req], edges) - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    blocks = np.bincount(b, minlength=nb)
    share = np.bincount(b, weights=reused, minlength=nb) / np.maximum(blocks, 1)
    prompt_tok = np.bincount(np.clip(np.digitize(t, edges) - 1, 0, nb - 1), weights=tr.prompt_tokens, minlength=nb)
    tok_share = np.bincount(b, weights=tokens * reused, minlength=nb) / np.maximum(prompt_tok, 1)
    has = blocks > 0
    ax.step(
        tb.centers[has],
        100 * share[has],
        where="mid",
        color="C4",
        label=f"blocks reused (all: {100 * s['prefix']['block_reuse']:.1f}%)",
    )
    ax.step(
        tb.centers[has],
        100 * tok_share[has],
        where="mid",
        color="C5",
        linestyle="--",
        label=f"prompt tokens in reused blocks (all: {100 * s['prefix']['token_reuse']:.1f}%)",
    )
    ax.set_ylim(0, 100)
    ax.set_xlim(0, tb.span / tb.tscale if tb.span > 0 else 1)
    ax.set_title(f"Prefix reuse ({s['prefix']['block_tokens']}-token blocks seen in an earlier request)")
    ax.set_xlabel(f"time since first request ({tb.tunit})")
    ax.set_ylabel("% per bin")
    ax.legend(loc="lower right")


def stats_chart(trace: Trace, path: str | os.PathLike, summary: dict | None = None) -> Path:
    """Rate over time, inter-arrival and length distributions (and prefix reuse over time) as a PNG."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from simulator.report.charts import PNG_METADATA, STYLE

    s = summary or describe(trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = order(trace, sort=True)
    tr = _reordered_prefix(trace, idx)
    tb = _time_bins(tr.arrival_s - tr.arrival_s[0])

    with matplotlib.style.context(STYLE):
        fig = Figure(figsize=(13, 7.2))
        FigureCanvasAgg(fig)
        ax = _layout(fig, s["prefix"] is not None, s["zero_gaps"])
        _plot_rate(ax["rate"], tb, s)
        _plot_gaps(ax["gap"], ax["zero"], np.diff(tb.t), s)
        _plot_lengths(ax["in"], tr.prompt_tokens, s["prompt_tokens"], "Prompt length", "C2")
        _plot_lengths(ax["out"], tr.output_tokens, s["output_tokens"], "Output length", "C3")
        ax["in"].set_ylabel("requests")
        if ax["reuse"] is not None:
            _plot_reuse(ax["reuse"], tr, tb, s)

        name = Path(trace.path).name
        first = f", first request {s['origin']}" if s.get("origin") else ""
        fig.suptitle(
            f"{name} ({trace.format}): {s['requests']:,} requests over {s['duration_s'] / tb.tscale:,.3g} {tb.tunit}{first}",
            fontsize=11,
        )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, metadata=PNG_METADATA)
    return path
