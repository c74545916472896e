"""Lookups and value conversions of the Perfetto export (:mod:`simulator.report.perfetto`):
pools and replicas of a run, the run's end, and seconds / cells as trace JSON values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


# -- lookups ----------------------------------------------------------------------
def pool_hardware(scenario: dict) -> dict[str, tuple[str | None, int]]:
    """pool name -> (hardware name, TP), from the scenario."""
    hw = lookup(scenario, "hardware", "name")
    cluster = scenario.get("cluster") or {}
    dis = cluster.get("disaggregation") or {}
    if dis.get("enabled"):
        parts = {"prefill": dis.get("prefill") or {}, "decode": dis.get("decode") or {}}
    elif cluster.get("groups"):
        parts = dict(cluster["groups"])
    else:
        parts = {"mixed": {"tp": cluster.get("tp", 1)}}
    return {name: ((p or {}).get("hardware") or hw, int((p or {}).get("tp") or 1)) for name, p in parts.items()}


def replica_index(steps: pd.DataFrame, replicas: pd.DataFrame | None) -> dict[int, tuple[str, int | None]]:
    """replica index -> (pool, TP when known), over every replica seen."""
    out: dict[int, tuple[str, int | None]] = {}
    if replicas is not None and len(replicas):
        for rep, group, gpus in zip(
            replicas["replica"].tolist(), replicas["group"].tolist(), replicas["gpus"].tolist()
        ):
            out.setdefault(int(rep), (text_or_none(group) or "mixed", int(gpus)))
    if len(steps):
        pools = steps["pool"].tolist() if "pool" in steps.columns else ["mixed"] * len(steps)
        for rep, pool in zip(steps["replica"].tolist(), pools):
            out.setdefault(int(rep), (text_or_none(pool) or "mixed", None))
    return out


def steps_by_replica(steps: pd.DataFrame) -> dict[int, pd.DataFrame]:
    if not len(steps):
        return {}
    order = ["replica", "start_s"] + (["step"] if "step" in steps.columns else [])
    s = steps.sort_values(order, kind="stable")
    return {int(rep): g.reset_index(drop=True) for rep, g in s.groupby("replica", sort=True)}


def run_end_us(requests: pd.DataFrame, steps: pd.DataFrame, replicas: pd.DataFrame | None) -> int:
    ends = [0.0]
    if len(steps):
        ends.append(float((steps["start_s"] + steps["duration_s"]).max()))
    for c in ("finish_s", "arrival_s"):
        if c in requests.columns and requests[c].notna().any():
            ends.append(float(requests[c].max()))
    if replicas is not None and len(replicas):
        ends.append(float(replicas["time_s"].max()))
    return int(to_us(np.float64(max(ends))))


# -- values -----------------------------------------------------------------------
def to_us(seconds):
    """Seconds -> integer microseconds (rounding is monotonic, so touching steps stay touching)."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)


def to_us_list(values) -> list[int | None]:
    arr = np.asarray([np.nan if isna(v) else float(v) for v in values], dtype=np.float64)
    ok = np.isfinite(arr)
    us = np.rint(np.where(ok, arr, 0.0) * 1e6).astype(np.int64)
    return [int(u) if k else None for u, k in zip(us.tolist(), ok.tolist())]


def isna(v) -> bool:
    if v is None or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, float) and math.isnan(v))
    except TypeError:
        return False


def text_or_none(v) -> str | None:
    return None if isna(v) else str(v)


def json_arg(v):
    """A step column value as JSON: ints stay ints, floats get 6 significant decimals."""
    if isna(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if not math.isfinite(f) else float(f"{f:.6g}")
    return str(v)


def lookup(d: object, *keys) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def version() -> str:
    from simulator.version import __version__

    return __version__
