"""The validation report: ``validate.md`` (tables, written to be read as is) and ``validate.png``/``.svg``
(measured and simulated distributions of TTFT, TPOT, ITL and e2e, one panel each)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.api import Result
from simulator.report.charts import fit_log_ticks, plain_log_axis
from simulator.report.sweep_style import FORMATS, chart_context, save_chart
from simulator.validation.compare import headline_error, recorded_gaps, tpot
from simulator.validation.recording import Recording
from simulator.validation.replay import Replay

CHART = "validate"
MEASURED, SIMULATED = "#000000", "#0072B2"
PANELS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "e2e"))
NAMES = dict(PANELS)


def _ecdf(ax, values: np.ndarray, weights: np.ndarray | None, color: str, label: str, style: str) -> None:
    keep = np.isfinite(values) & (values > 0)
    v, w = values[keep], (weights[keep] if weights is not None else np.ones(keep.sum()))
    if not len(v):
        return
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    ax.step(v[order], cum, where="post", color=color, linestyle=style, linewidth=1.6, label=label)


def _distributions(recorded: pd.DataFrame, result: Result) -> dict[str, tuple]:
    done = result.requests[result.requests["status"] == "completed"]
    per_request = lambda df: tpot(*(df[c].to_numpy(float) for c in ("ttft_s", "e2e_s", "output_tokens")))  # noqa: E731
    gaps = recorded_gaps(recorded)
    sim_gaps, sim_counts = (np.asarray(result.itl[0], float), np.asarray(result.itl[1], float)) if result.itl else (np.array([]), None)
    return {
        "ttft": ((recorded["ttft_s"].to_numpy(float), None), (done["ttft_s"].to_numpy(float), None)),
        "tpot": ((per_request(recorded), None), (per_request(done), None)),
        "itl": ((gaps, None), (sim_gaps, sim_counts)),
        "e2e": ((recorded["e2e_s"].to_numpy(float), None), (done["e2e_s"].to_numpy(float), None)),
    }


def chart(rp: Replay, result: Result, title: str, out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Measured (black) and simulated (blue) ECDFs, log time axis."""
    dists = _distributions(rp.recorded, result)
    with chart_context():
        fig = Figure(figsize=(12, 3.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 4)
        for ax, (key, name) in zip(axes, PANELS):
            (mv, mw), (sv, sw) = dists[key]
            _ecdf(ax, mv, mw, MEASURED, "measured", "-")
            _ecdf(ax, sv, sw, SIMULATED, "servesim", "--")
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("seconds (log)")
            ax.set_ylim(0, 1.01)
            if not np.isfinite(mv).any() or not (mv > 0).any():
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="0.4")
        axes[0].set_ylabel("share of requests (ITL: of gaps)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.01))
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0, 0.07, 1, 0.92))
        fit_log_ticks(fig)
        return save_chart(fig, out_dir, CHART, formats)


def _pct(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x * 100:+.1f}%"


def _num(x: float, family: str) -> str:
    if not np.isfinite(x):
        return "—"
    return f"{x:,.2f}" if family == "throughput" else f"{x * 1e3:,.1f} ms"


def markdown(rec: Recording, rp: Replay, table: pd.DataFrame, pairs: pd.DataFrame | None, scenario: str, fit_lines: list[str]) -> str:
    """The report's text."""
    lines = [
        f"# servesim against {Path(rec.path).name}",
        "",
        f"- recording: `{rec.path}` read as **{rec.format}** ({rec.meta.get('client', '')})",
        f"- requests: {len(rp.recorded)} completed replayed" + (f", {rp.failed} failed left out" if rp.failed else ""),
        f"- arrivals: {rp.described}",
        f"- scenario: `{scenario}`",
        f"- median |error| over the figures below: **{headline_error(table) * 100:.1f}%**",
        "",
        "Error = servesim / measured − 1: positive means servesim is slower (latency) or faster (throughput).",
        "",
        "| figure | measured | servesim | error |",
        "|---|---:|---:|---:|",
    ]
    for r in table.itertuples():
        unit = {"requests_per_s": "req/s", "output_tokens_per_s": "output tok/s"}.get(str(r.stat), "")
        name = f"throughput ({unit})" if r.family == "throughput" else f"{NAMES[str(r.family)]} {r.stat}"
        lines.append(f"| {name} | {_num(r.measured, str(r.family))} | {_num(r.simulated, str(r.family))} | {_pct(r.error)} |")
    if pairs is not None:
        lines += ["", "Per request (request i of the recording is simulated request i):", "",
                  "| error of | median | p90 of \\|error\\| |", "|---|---:|---:|"]  # fmt: skip
        for col, name in (("ttft_error", "TTFT"), ("e2e_error", "e2e")):
            e = pairs[col].replace([np.inf, -np.inf], np.nan).dropna()
            if len(e):
                lines.append(f"| {name} | {_pct(float(e.median()))} | {e.abs().quantile(0.9) * 100:.1f}% |")
    lines += ["", f"![measured and simulated distributions]({CHART}.png)", ""]
    return "\n".join(lines + fit_lines) + "\n"
