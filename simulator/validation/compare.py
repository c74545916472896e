"""Measured against simulated: the same figures computed the same way from both sides.

Per request (completed requests only, on both sides): TTFT; TPOT =
(e2e - TTFT) / (output tokens - 1) for requests of more than one token (the
benchmark clients' definition); e2e. ITL: every recorded inter-token gap
(the recording's lists; servesim's gaps between the steps that streamed
tokens). Throughput: completed requests and output tokens over the run's
duration, from the first send to the last answer (the clients' "benchmark
duration"). Statistics: mean, p50, p90, p99 (linear interpolation).

**Error** = simulated / measured - 1 (positive: servesim is slower for a
latency, faster for a throughput). When the replay pairs requests, each
request's own TTFT and e2e errors are summarised too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.api import Result
from simulator.metrics.stats import weighted_stats

STATS = ("mean", "p50", "p90", "p99")
LATENCIES = ("ttft", "tpot", "itl", "e2e")


def _stats(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {s: np.nan for s in STATS}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def tpot(ttft: np.ndarray, e2e: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Each request's TPOT, (e2e - TTFT) / (output - 1); NaN for one token."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(output > 1, (e2e - ttft) / (output - 1), np.nan)


def recorded_gaps(recorded: pd.DataFrame) -> np.ndarray:
    """Every inter-token gap the recording holds (its requests' ITL lists, concatenated)."""
    return np.asarray([g for lst in recorded["itl"] if lst is not None for g in lst], dtype=float)


def measured_figures(recorded: pd.DataFrame, duration_s: float | None) -> dict[str, dict[str, float]]:
    """Throughput and latency statistics of the recording's completed requests (in replay order)."""
    ttft, e2e = recorded["ttft_s"].to_numpy(float), recorded["e2e_s"].to_numpy(float)
    out_tok = recorded["output_tokens"].to_numpy(float)
    start = recorded["start_s"].to_numpy(float)
    span = float(np.nanmax(start + e2e) - np.nanmin(start)) if np.isfinite(start).all() else (duration_s or np.nan)
    figs = {
        "throughput": {"requests_per_s": len(recorded) / span, "output_tokens_per_s": float(out_tok.sum()) / span},
        "ttft": _stats(ttft),
        "tpot": _stats(tpot(ttft, e2e, out_tok)),
        "itl": _stats(recorded_gaps(recorded)),
        "e2e": _stats(e2e),
    }
    return figs


def simulated_figures(result: Result) -> dict[str, dict[str, float]]:
    """The same figures of a servesim run."""
    done = result.requests[result.requests["status"] == "completed"].sort_values("request_id")
    ttft, e2e = done["ttft_s"].to_numpy(float), done["e2e_s"].to_numpy(float)
    out_tok = done["output_tokens"].to_numpy(float)
    span = float(result.summary["window"]["end_s"])
    itl = {s: np.nan for s in STATS}
    if result.itl is not None:
        gaps, counts = result.itl
        w = weighted_stats(np.asarray(gaps, dtype=float), np.asarray(counts, dtype=np.int64))
        itl = {s: (np.nan if w[s] is None else float(w[s])) for s in STATS}  # type: ignore[literal-required]
    return {
        "throughput": {"requests_per_s": len(done) / span, "output_tokens_per_s": float(out_tok.sum()) / span},
        "ttft": _stats(ttft),
        "tpot": _stats(tpot(ttft, e2e, out_tok)),
        "itl": itl,
        "e2e": _stats(e2e),
    }


def comparison(measured: dict, simulated: dict) -> pd.DataFrame:
    """One row per figure: family, statistic, measured, simulated, signed error (simulated / measured - 1)."""
    rows = []
    for family in ("throughput", *LATENCIES):
        for stat, m in measured[family].items():
            s = simulated[family].get(stat, np.nan)
            err = s / m - 1 if np.isfinite(m) and m > 0 and np.isfinite(s) else np.nan
            rows.append({"family": family, "stat": stat, "measured": m, "simulated": s, "error": err})
    return pd.DataFrame(rows)


def per_request(recorded: pd.DataFrame, result: Result) -> pd.DataFrame | None:
    """Each paired request's TTFT and e2e errors (recorded row i = simulated request i), or None when unpaired."""
    sim = result.requests.sort_values("request_id").reset_index(drop=True)
    if len(sim) != len(recorded):
        return None
    out = pd.DataFrame(
        {
            "prompt_tokens": recorded["prompt_tokens"].to_numpy(),
            "output_tokens": recorded["output_tokens"].to_numpy(),
            "ttft_measured_s": recorded["ttft_s"].to_numpy(float),
            "ttft_simulated_s": sim["ttft_s"].to_numpy(float),
            "e2e_measured_s": recorded["e2e_s"].to_numpy(float),
            "e2e_simulated_s": sim["e2e_s"].to_numpy(float),
        }
    )
    out["ttft_error"] = out["ttft_simulated_s"] / out["ttft_measured_s"] - 1
    out["e2e_error"] = out["e2e_simulated_s"] / out["e2e_measured_s"] - 1
    return out


def headline_error(table: pd.DataFrame) -> float:
    """Median |error| over the figures that exist on both sides (what calibration drives down)."""
    e = table["error"].abs().dropna()
    return float(e.median()) if len(e) else float("nan")
