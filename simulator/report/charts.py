"""Charts for design reviews.

Figures are built with matplotlib's object API (no pyplot state) under the
project style sheet, and saved with fixed metadata so the same data gives
byte-identical PNGs.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STYLE = Path(__file__).with_name("servesim.mplstyle")
PNG_METADATA = {"Software": None}

#: Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/): the only hues the charts use,
#: besides greys. The style sheet's colour cycle is the same eight, in this order.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "reddish_purple": "#CC79A7",
    "vermillion": "#D55E00",
    "sky_blue": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: each batching policy keeps one colour in every chart (single runs, sweeps, timelines), so slides agree;
#: the two policies most often compared (continuous, chunked_prefill) get the pair that differs most
POLICY_COLORS = {
    "continuous": OKABE_ITO["blue"],
    "chunked_prefill": OKABE_ITO["orange"],
    "static": OKABE_ITO["bluish_green"],
    "inflight": OKABE_ITO["reddish_purple"],
}
#: colours for anything that is not a policy, the policies' colours left out so they never mean something else
#: (yellow last: it is faint on white)
OTHER_COLORS = (OKABE_ITO["vermillion"], OKABE_ITO["sky_blue"], OKABE_ITO["black"], OKABE_ITO["yellow"])
#: a run whose policy has no colour of its own (several pools with different policies)
NEUTRAL_COLOR = "0.2"


def policy_color(policy: str | None) -> str:
    """The colour of a batching policy in every chart; a neutral dark grey for anything else."""
    return POLICY_COLORS.get(str(policy), NEUTRAL_COLOR)


def plain_log_axis(axis) -> None:
    """Log scale with plain-number ticks (0.1, 0.2, 0.5, 1, 2 ...) instead of powers of ten; see fit_log_ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _overlapping(labels: list, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in labels]
    return any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def visible_tick_labels(axis) -> list:
    """The major tick labels ``axis`` draws: inside its view and not empty, in order."""
    lo, hi = sorted(axis.get_view_interval())
    tol = (hi - lo) * 1e-9
    out = []
    for loc, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels()):
        if lo - tol <= loc <= hi + tol and label.get_visible() and label.get_text():
            out.append(label)
    return out


def tick_labels_overlap(fig) -> list[str]:
    """The axes of ``fig`` whose neighbouring major tick labels overlap once drawn (``x``/``y`` + title)."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    bad = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            if _overlapping(visible_tick_labels(axis), renderer):
                bad.append(f"{name}: {ax.get_title()}")
    return bad


def fit_log_ticks(fig) -> None:
    """Thin the major ticks of every log axis until no two neighbouring tick labels overlap.

    Tries 1-2-5 per decade, then 1-3, then one per decade, then every second, third ... decade.
    Deterministic for the same figure, so charts stay byte-identical.
    """
    from matplotlib.ticker import LogLocator

    candidates = [(1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            for k in range(12):
                fig.draw_without_rendering()
                if not _overlapping(visible_tick_labels(axis), renderer):
                    break
                if k + 1 < len(candidates):
                    axis.set_major_locator(LogLocator(base=10, subs=candidates[k + 1]))
                else:  # one label every n decades
                    lo, hi = sorted(axis.get_view_interval())
                    decades = max(math.log10(max(hi, 1e-300) / max(lo, 1e-300)), 1.0)
                    n = k + 2 - len(candidates)
                    axis.set_major_locator(LogLocator(base=10, subs=(1.0,), numticks=max(2, int(decades / n) + 1)))


def _cdf(ax, values: np.ndarray, weights: np.ndarray | None = None, **kw) -> None:
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = ~np.isnan(v)
    v, w = v[keep], w[keep]
    if v.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    y = np.cumsum(w) / w.sum()
    ax.step(v, y, where="post", **kw)


def _mark(ax, value: float | None) -> None:
    """A dashed vertical line at ``value`` (before the limits are set, so that they take it in)."""
    if value is not None:
        ax.axvline(value, color="0.35", linestyle="--", linewidth=1)


def _mark_label(ax, value: float | None, label: str) -> None:
    """The label of a :func:`_mark` line, on whichever side has room (after the limits are set)."""
    if value is not None:
        x_axes = ax.transAxes.inverted().transform(ax.transData.transform((value, 0.5)))[0]
        left = x_axes > 0.15  # near the left spine the label goes right of the line
        ax.text(value, 0.62, f"{label} " if left else f" {label}", color="0.35", fontsize=8, rotation=90,
                va="top", ha="right" if left else "left")


def _annotate_percentiles(ax, stats: dict, scale: float, unit: str) -> None:
    """Faint p50/p99 guide lines and their values, lower right."""
    for p in (0.5, 0.99):
        ax.axhline(p, color="0.82", linewidth=0.8, zorder=0)
    if stats.get("p50") is None:
        return
    text = f"p50 {stats['p50'] * scale:,.3g} {unit}\np99 {stats['p99'] * scale:,.3g} {unit}"
    ax.text(0.97, 0.06, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"})


def latency_cdf_chart(result, path: str | Path) -> Path:
    """TTFT, TPOT, inter-token latency and end-to-end latency CDFs of one run."""
    s = result.summary["scenario"]
    req = result.requests
    done = req[req["status"] == "completed"]
    gaps, counts = result.itl if result.itl is not None else (np.empty(0), np.empty(0))
    slo = result.config.slo
    lat = result.summary["latency_s"]
    panels = [
        ("Time to first token", done["ttft_s"].to_numpy(), None, slo.ttft_s, lat["ttft"], False),
        ("Time per output token", done["tpot_s"].to_numpy(), None, slo.tpot_s, lat["tpot"], False),
        ("Inter-token latency (all tokens)", gaps, counts, None, lat["itl"], True),
        ("End-to-end latency", done["e2e_s"].to_numpy(), None, slo.e2e_s, lat["e2e"], False),
    ]
    with matplotlib.style.context(STYLE):
        fig = Figure(figsize=(13, 3.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 4)
        for ax, (title, values, weights, line, stats, log) in zip(axes, panels):
            scale, unit = _unit(values)
            _cdf(ax, np.asarray(values, dtype=float) * scale, weights, color=policy_color(s["scheduler"]))
            _mark(ax, None if line is None else line * scale)
            _annotate_percentiles(ax, stats, scale, unit)
            ax.set_title(title)
            ax.set_xlabel(("seconds" if unit == "s" else "milliseconds") + (" (log scale)" if log else ""))
            ax.set_ylim(0, 1.01)
            if log and np.size(values):
                ax.set_xscale("log")
                plain_log_axis(ax.xaxis)
            else:
                ax.set_xlim(left=0)
            _mark_label(ax, None if line is None else line * scale, "SLO")
        axes[0].set_ylabel("fraction of requests")
        axes[2].set_ylabel("fraction of tokens")
        fig.suptitle(
            f"{s['model']} on {s['replicas']}x {s['hardware']} (TP{s['tp']}), {s['scheduler']} batching, "
            f"{s['arrival']} {s['rate_rps']:g} req/s, {len(done)} requests - latency model: {s['latency_model']}",
            fontsize=9.5,
        )
        fit_log_ticks(fig)
        fig.tight_layout()
        fit_log_ticks(fig)
        path = Path(path)
        fig.savefig(path, metadata=PNG_METADATA)
    return path


def _unit(values) -> tuple[float, str]:
    """Milliseconds for sub-second distributions, seconds otherwise."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size and np.percentile(v, 99) < 1.0:
        return 1e3, "ms"
    return 1.0, "s"


def bin_width(window: float, target_bins: int = 60) -> float:
    """A round bin width (1, 2 or 5 x 10^k seconds) giving about ``target_bins`` bins over ``window``."""
    raw = max(window, 1e-9) / target_bins
    base = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * base >= raw:
            return m * base
    return 10.0 * base


def integral_per_bin(start: np.ndarray, dur: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Integral over each bin of a quantity held at ``values[i]`` during step i ([start, start + dur)).

    A step that straddles bin edges contributes to each bin its overlap only,
    so a long step near the end of a bin does not inflate that bin.
    """
    end = start + dur
    order_s, order_e = np.argsort(start, kind="stable"), np.argsort(end, kind="stable")
    s_sorted, e_sorted = start[order_s], end[order_e]
    vs, ve = values[order_s], values[order_e]
    cum_vs, cum_vs_t = np.concatenate(([0.0], np.cumsum(vs))), np.concatenate(([0.0], np.cumsum(vs * s_sorted)))
    cum_ve, cum_ve_t = np.concatenate(([0.0], np.cumsum(ve))), np.concatenate(([0.0], np.cumsum(ve * e_sorted)))
    ns = np.searchsorted(s_sorted, edges, side="right")  # steps started by each edge
    ne = np.searchsorted(e_sorted, edges, side="right")  # steps ended by each edge
    # the integral up to an edge: started steps count value x (edge - start), ended ones stop at their end
    area = (cum_vs[ns] * edges - cum_vs_t[ns]) - (cum_ve[ne] * edges - cum_ve_t[ne])
    return np.diff(area)
