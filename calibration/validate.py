"""Validate a profile against real decoder-stack steps.

A Llama-shaped stack with random weights (:mod:`.stack`) runs engine
iterations of varied composition - decode-only batches of several sizes and
context lengths, prefill-only batches, and mixed steps - each timed over
repeats; the profile's predictor prices the same compositions. The report
gives the absolute percentage error (APE) of every step, its median and 90th
percentile, and a predicted-vs-measured chart.

The per-step overhead (the cost outside the operators, ``a + b * tokens``)
is fitted first on a *separate* set of compositions, so validation never
scores a step the fit saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fit import Predictor, causal_pairs
from .profile import Profile

REPORT_JSON = "validation.json"
REPORT_MD = "validation.md"
REPORT_PNG = "validation.png"


@dataclass(frozen=True)
class Composition:
    prefill_seqs: int
    prompt_len: int
    decode_seqs: int
    ctx: int

    @property
    def label(self) -> str:
        parts = []
        if self.prefill_seqs:
            parts.append(f"prefill {self.prefill_seqs}x{self.prompt_len}")
        if self.decode_seqs:
            parts.append(f"decode {self.decode_seqs}@{self.ctx}")
        return " + ".join(parts)


def fit_compositions(device_kind: str) -> list[Composition]:
    """Steps used only to fit the per-step overhead (disjoint from validation)."""
    if device_kind == "cuda":
        return [
            Composition(0, 0, 2, 384), Composition(0, 0, 24, 768), Composition(0, 0, 96, 1536),
            Composition(1, 384, 0, 0), Composition(1, 1536, 0, 0), Composition(1, 768, 24, 768),
        ]
    return [
        Composition(0, 0, 2, 96), Composition(0, 0, 8, 384), Composition(0, 0, 24, 160),
        Composition(1, 48, 0, 0), Composition(1, 192, 0, 0), Composition(1, 96, 6, 192),
    ]


def validation_compositions(device_kind: str) -> list[Composition]:
    """Varied steps, disjoint from :func:`fit_compositions`."""
    if device_kind == "cuda":
        decode = [Composition(0, 0, b, c) for b in (1, 8, 32, 128) for c in (512, 2048)]
        prefill = [Composition(b, L, 0, 0) for b, L in ((1, 512), (1, 2048), (2, 1024), (4, 256))]
        mixed = [Composition(1, L, b, c) for L, b, c in ((256, 16, 1024), (512, 64, 512), (1024, 32, 2048), (128, 96, 1024))]
    else:
        decode = [Composition(0, 0, b, c) for b in (1, 4, 16) for c in (64, 512)]
        prefill = [Composition(b, L, 0, 0) for b, L in ((1, 64), (1, 256), (2, 128), (4, 32))]
        mixed = [Composition(1, L, b, c) for L, b, c in ((32, 8, 256), (128, 4, 128), (64, 16, 512), (256, 2, 64))]
    return decode + prefill + mixed


def predict(predictor: Predictor, c: Composition, *, with_overhead: bool = True) -> float:
    parts = predictor.parts(
        c.prefill_seqs,
        c.prefill_seqs * c.prompt_len,
        causal_pairs(c.prefill_seqs, c.prompt_len),
        c.decode_seqs,
        c.decode_seqs * (c.ctx + 1),  # the step's own token joins the context, as in the simulator
    )
    return parts.total if with_overhead else parts.total - parts.overhead


def measure_steps(stack, comps: list[Composition], *, warmup: int, repeats: int, threads: int | None) -> list[np.ndarray]:
    return [
        stack.time_step(c.prefill_seqs, c.prompt_len, c.decode_seqs, c.ctx, warmup=warmup, repeats=repeats, threads=threads)
        for c in comps
    ]


def _summary_stat(samples: np.ndarray, statistic: str) -> float:
    return float(np.percentile(samples, 10)) if statistic == "p10" else float(np.median(samples))


def fit_overhead(
    profile: Profile, stack, *, device_kind: str, warmup=2, repeats=7, threads=None, statistic: str = "median"
) -> tuple[float, float]:
    """Per-step cost outside the timed operators, as ``a + b * tokens``.

    Least squares of (measured step - summed operators) on the fit
    compositions, weighted by 1 / measured so that it minimises the
    *relative* error that validation reports (an absolute fit lets the long
    prefill steps dictate the fixed term). ``a`` (fixed: launches, sampling,
    Python) and ``b`` (per token: embedding lookup, splits and
    concatenations) are kept >= 0.
    """
    pred = Predictor(
        profile, num_layers=stack.num_layers, step_overhead_s=0.0, step_overhead_per_token_s=0.0, statistic=statistic
    )
    comps = fit_compositions(device_kind)
    samples = measure_steps(stack, comps, warmup=warmup, repeats=repeats, threads=threads)
    measured = np.array([_summary_stat(s, statistic) for s in samples])
    resid = measured - np.array([predict(pred, c, with_overhead=False) for c in comps])
    tokens = np.array([c.prefill_seqs * c.prompt_len + c.decode_seqs for c in comps], dtype=float)
    w = 1.0 / measured
    A = np.column_stack([np.ones_like(tokens), tokens]) * w[:, None]
    (a, b), *_ = np.linalg.lstsq(A, resid * w, rcond=None)
    if b < 0:  # constant only
        a, b = max(float(np.dot(w * w, resid) / np.dot(w, w)), 0.0), 0.0
    elif a < 0:  # per-token only
        wt = w * tokens
        a, b = 0.0, max(float(np.dot(wt, resid * w) / np.dot(wt, wt)), 0.0)
    return float(a), float(b)


def validate(profile: Profile, stack, *, device_kind: str, warmup=2, repeats=7, threads=None) -> tuple[pd.DataFrame, dict]:
    """Measured vs predicted for every validation composition, and the error summary."""
    pred = Predictor(profile, num_layers=stack.num_layers)
    comps = validation_compositions(device_kind)
    samples = measure_steps(stack, comps, warmup=warmup, repeats=repeats, threads=threads)
    rows = []
    for c, s in zip(comps, samples):
        measured = _summary_stat(s, pred.statistic)
        predicted = predict(pred, c)
        rows.append(
            {
                "step": c.label,
                "prefill_seqs": c.prefill_seqs,
                "prompt_len": c.prompt_len,
                "decode_seqs": c.decode_seqs,
                "ctx": c.ctx,
                "measured_s": measured,
                "measured_p10_s": float(np.percentile(s, 10)),
                "measured_p90_s": float(np.percentile(s, 90)),
                "predicted_s": predicted,
                "ape": abs(predicted - measured) / measured,
            }
        )
    df = pd.DataFrame(rows)
    summary = {
        "steps": len(df),
        "layers": stack.num_layers,
        "median_ape": float(df["ape"].median()),
        "p90_ape": float(df["ape"].quantile(0.9)),
        "max_ape": float(df["ape"].max()),
        "step_overhead_s": pred.overhead,
        "step_overhead_per_token_s": pred.overhead_per_token,
        "statistic": pred.statistic,
        "repeats": repeats,
    }
    return df, summary


def chart(df: pd.DataFrame, summary: dict, title: str, path: Path) -> Path:
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from simulator.report.charts import PNG_METADATA, STYLE

    with matplotlib.style.context(STYLE):
        fig = Figure(figsize=(6.2, 5.4))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        kinds = {
            "decode only": (df["prefill_seqs"] == 0),
            "prefill only": (df["decode_seqs"] == 0),
            "mixed": (df["prefill_seqs"] > 0) & (df["decode_seqs"] > 0),
        }
        ms = 1e3
        for name, mask in kinds.items():
            d = df[mask]
            ax.errorbar(
                d["measured_s"] * ms,
                d["predicted_s"] * ms,
                xerr=[(d["measured_s"] - d["measured_p10_s"]) * ms, (d["measured_p90_s"] - d["measured_s"]) * ms],
                fmt="o",
                label=name,
                capsize=2,
            )
        lo = min(df["measured_s"].min(), df["predicted_s"].min()) * ms * 0.8
        hi = max(df["measured_s"].max(), df["predicted_s"].max()) * ms * 1.25
        ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=1, linestyle="--", label="exact")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", alpha=0.5, label="±10%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"measured step time (ms, {summary['statistic']}; bars p10-p90)")
        ax.set_ylabel("predicted step time (ms)")
        ax.set_title(title, fontsize=9.5)
        ax.text(
            0.03,
            0.97,
            f"median APE {summary['median_ape']:.1%}\np90 APE {summary['p90_ape']:.1%}\n{summary['steps']} steps",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"},
        )
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, metadata=PNG_METADATA)
    return path


def write_report(directory: Path, df: pd.DataFrame, summary: dict, metadata: dict) -> None:
    directory = Path(directory)
    model = metadata.get("model", {}).get("name", "?")
    title = f"{model} on {metadata.get('device', '?')} ({metadata.get('dtype', '?')}, TP{metadata.get('tp', 1)}): predicted vs measured"
    chart(df, summary, title, directory / REPORT_PNG)
    (directory / REPORT_JSON).write_text(json.dumps({"summary": summary, "steps": df.to_dict(orient="records")}, indent=2) + "\n")
    lines = [
        f"# Validation: {model} on {metadata.get('device', '?')}",
        "",
        f"Profile measured {metadata.get('date', '?')} with torch {metadata.get('torch', '?')}, "
        f"{metadata.get('dtype', '?')} weights, TP {metadata.get('tp', 1)}; decoder stack of "
        f"{summary['layers']} layers with random weights; {summary['repeats']} timed repeats per step; "
        f"times compared at their {summary['statistic']}.",
        "",
        f"**Median absolute percentage error {summary['median_ape']:.1%}, p90 {summary['p90_ape']:.1%}, "
        f"max {summary['max_ape']:.1%}** over {summary['steps']} steps; fitted per-step overhead "
        f"{summary['step_overhead_s'] * 1e3:.3f} ms + {summary['step_overhead_per_token_s'] * 1e6:.2f} µs per token.",
        "",
        "Signed error by kind of step (positive: predicted slower than measured): "
        + ", ".join(
            f"{kind} {err:+.1%}"
            for kind, err in (
                ("decode only", (df["predicted_s"] / df["measured_s"] - 1)[df["prefill_seqs"] == 0].mean()),
                ("prefill only", (df["predicted_s"] / df["measured_s"] - 1)[df["decode_seqs"] == 0].mean()),
                ("mixed", (df["predicted_s"] / df["measured_s"] - 1)[(df["prefill_seqs"] > 0) & (df["decode_seqs"] > 0)].mean()),
            )
        )
        + ".",
        "",
        "| step | measured (ms) | p10-p90 (ms) | predicted (ms) | error |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.step} | {r.measured_s * 1e3:.3f} | {r.measured_p10_s * 1e3:.3f}-{r.measured_p90_s * 1e3:.3f} "
            f"| {r.predicted_s * 1e3:.3f} | {(r.predicted_s / r.measured_s - 1):+.1%} |"
        )
    lines += ["", f"![predicted vs measured]({REPORT_PNG})", ""]
    (directory / REPORT_MD).write_text("\n".join(lines))
