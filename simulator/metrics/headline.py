"""Headline figures of one run, flat: the shared vocabulary of sweeps, plans and replications.

:func:`headline` turns a ``summary.json`` dict into ``{name: number}`` with
stable, unit-suffixed names (``ttft_p99_s``, ``goodput_rps``, ...). The sweep
table (``servesim-report``), capacity search requirements
(``servesim-plan --require "ttft_p99_s<=2"``) and replication spreads all use
these names, so a figure is called the same everywhere.
"""

from __future__ import annotations

import math

from simulator.metrics.sections import LATENCY_KEYS, STAT_KEYS, Summary, WindowSection

#: latency figures reported per distribution of LATENCY_KEYS
LATENCY_STATS = STAT_KEYS

#: every figure :func:`headline` returns, in its order
FIGURES = (
    "offered_rps", "requests", "completed", "rejected", "rejection_rate", "preemptions", "retries",
    "throughput_rps", "output_tokens_per_s", "total_tokens_per_s", "slo_attainment", "goodput_rps",
    "kv_peak_usage", "kv_mean_usage", "busy_fraction", "mean_batch_size", "mean_decode_batch",
    "gpus", "peak_gpus", "gpu_hours", "usd", "usd_per_hour", "usd_per_million_tokens", "usd_per_million_output_tokens",
    "energy_kwh", "mean_power_w", "joules_per_token", "joules_per_output_token", "energy_usd",
    "sim_end_s", "drain_share",
    *(f"{key}_{stat}_s" for key in LATENCY_KEYS for stat in LATENCY_STATS),
)  # fmt: skip


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _drain_share(window: WindowSection) -> float:
    """Share of the run spent after the last arrival: the drain that throughput and goodput include.

    Large (say > 0.2) means the run ended with a backlog, so per-second figures understate what the
    configuration sustains while traffic lasts: run more requests before reading capacity from them.
    """
    end, last = window.get("end_s"), window.get("last_arrival_s")
    if end is None or last is None or not end or not math.isfinite(end):
        return float("nan")
    return max(0.0, (float(end) - float(last)) / float(end))


def _energy(summary: Summary) -> dict[str, float]:
    """Facility kWh, mean W per GPU, GPU J per token and the energy bill (NaN for a summary without them)."""
    e: dict = dict(summary.get("energy") or {})
    return {
        "energy_kwh": _num(e.get("facility_kwh")),
        "mean_power_w": _num(e.get("mean_power_w_per_gpu")),
        "joules_per_token": _num(e.get("joules_per_token")),
        "joules_per_output_token": _num(e.get("joules_per_output_token")),
        "energy_usd": _num(e.get("usd")),
    }


def headline(summary: Summary) -> dict[str, float]:
    """Flat numeric figures of one run's summary (NaN where a figure does not apply)."""
    s, rq, th, slo, cost = summary["scenario"], summary["requests"], summary["throughput"], summary["slo"], summary["cost"]
    price = cost.get("price_per_gpu_hour")
    out: dict[str, float] = {
        "offered_rps": _num(s["rate_rps"]),
        "requests": _num(rq["total"]),
        "completed": _num(rq["completed"]),
        "rejected": _num(rq["rejected"]),
        "rejection_rate": rq["rejected"] / rq["total"] if rq["total"] else float("nan"),
        "preemptions": _num(rq["preemptions"]),
        "retries": _num(rq.get("retries", 0)),
        "throughput_rps": _num(th["requests_per_s"]),
        "output_tokens_per_s": _num(th["output_tokens_per_s"]),
        "total_tokens_per_s": _num(th["total_tokens_per_s"]),
        "slo_attainment": _num(slo["attainment"]),
        "goodput_rps": _num(slo["goodput_rps"]),
        "kv_peak_usage": _num(summary["kv_cache"]["peak_usage"]),
        "kv_mean_usage": _num(summary["kv_cache"]["mean_usage"]),
        "busy_fraction": _num(summary["engine"]["busy_fraction"]),
        "mean_batch_size": _num(summary["engine"]["mean_batch_size"]),
        "mean_decode_batch": _num(summary["engine"].get("mean_decode_batch")),
        "gpus": _num(cost["gpus"]),
        "peak_gpus": _num(cost.get("peak_gpus", cost["gpus"])),
        "gpu_hours": _num(cost["gpu_hours"]),
        "usd": _num(cost["usd"]),
        "usd_per_hour": _num(cost["gpus"] * price) if price is not None else float("nan"),
        "usd_per_million_tokens": _num(cost.get("usd_per_million_tokens")),
        "usd_per_million_output_tokens": _num(cost.get("usd_per_million_output_tokens")),
        **_energy(summary),
        "sim_end_s": _num(summary["window"]["end_s"]),
        "drain_share": _drain_share(summary["window"]),
    }
    latency = summary["latency_s"]
    for key in LATENCY_KEYS:
        d = latency.get(key)
        for stat in LATENCY_STATS:
            out[f"{key}_{stat}_s"] = _num(d.get(stat)) if d is not None else float("nan")
    return {k: (v if not (isinstance(v, float) and math.isinf(v)) else float("nan")) for k, v in out.items()}


__all__ = ["headline", "FIGURES", "LATENCY_KEYS", "LATENCY_STATS"]
