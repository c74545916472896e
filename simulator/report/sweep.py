"""A sweep as one tidy table: one row per run, its overrides and its headline figures.

A *sweep* is any folder holding run directories (a folder with a
``summary.json``): a hydra multirun root (``multirun/<date>/<time>/``, one
numbered run per job), a single run directory, or folders of several sweeps
nested in each other. :func:`collect` finds every run under it and returns a
:class:`pandas.DataFrame` with

* ``run``: the run directory relative to the sweep folder (``.`` for the
  folder itself); rows are sorted by it, numbers in names compared as numbers
  (``2`` before ``10``), so the table follows hydra's job order;
* one column per override key of ``.hydra/overrides.yaml`` (``workload.rate``,
  ``scheduler``, ...), typed as hydra typed it (``2`` an integer, ``2.5`` a
  float, ``false`` a boolean); a key missing from a run is empty there;
* scenario descriptors from ``summary["scenario"]`` and ``summary["slo"]``
  (:data:`DESCRIPTORS`) where no override of the same name exists;
* every figure of :func:`simulator.metrics.headline.headline` under its flat
  name (``ttft_p99_s``, ``goodput_rps``, ...). For a replicated run (its
  summary has a ``replications`` block) a figure is the mean over the
  replications and ``<name>_ci95_low`` / ``<name>_ci95_high`` follow it.

Runs nested inside a run directory (per-replication folders, say) belong to
that run and are not collected separately. :func:`knee` and
:func:`pareto_front` are the two readings the charts mark; :func:`x_default`,
:func:`series_default` and :func:`series_labels` choose and name the chart
axes from the overrides that vary.

The table itself is built in :mod:`simulator.report.sweep_table` (finding
runs, overrides, :func:`collect`, :func:`write_table`) and importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from simulator.report.sweep_table import (
    CI_SUFFIXES,
    DESCRIPTORS,
    OVERRIDES_FILE,
    SUMMARY_FILE,
    TABLE_CSV,
    TABLE_PARQUET,
    ReportError,
    collect,
    collect_files,
    figures,
    find_runs,
    headline_names,
    override_columns,
    parse_overrides,
    read_overrides,
    unfinished_runs,
    write_table,
)

#: lower-case last parts of override keys that set the offered load
LOAD_KEYS = ("rate", "target_rate", "rps", "qps", "load", "users", "concurrency", "speedup")
#: units of load-like keys, for axis labels
LOAD_UNITS = {
    "rate": "req/s",
    "target_rate": "req/s",
    "rps": "req/s",
    "qps": "req/s",
    "offered_rps": "req/s",
    "users": "users",
    "concurrency": "users",
    "speedup": "x trace speed",
}


# ---------------------------------------------------------------- axes and series


def _distinct(values: pd.Series) -> int:
    return values.astype(object).where(values.notna(), None).map(repr).nunique()


def varying(df: pd.DataFrame, columns: Iterable[str] | None = None) -> list[str]:
    """The columns (default: the overrides) whose value differs between runs."""
    cols = override_columns(df) if columns is None else list(columns)
    return [c for c in cols if c in df.columns and _distinct(df[c]) > 1]


def looks_like_load(key: str) -> bool:
    return key.split(".")[-1].split("@")[0].lower() in LOAD_KEYS


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def x_default(df: pd.DataFrame) -> str:
    """The first varying numeric override that looks like load; else ``offered_rps`` if it
    varies; else the first varying numeric override; else ``offered_rps``."""
    moving = varying(df)
    for c in moving:
        if looks_like_load(c) and _numeric(df[c]):
            return c
    if "offered_rps" in df.columns and _distinct(df["offered_rps"]) > 1:
        return "offered_rps"
    for c in moving:
        if _numeric(df[c]):
            return c
    return "offered_rps"


def is_load(x: str) -> bool:
    """Whether ``x`` is a load axis (knees are read along load only)."""
    return x == "offered_rps" or looks_like_load(x)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each key's shortest dotted suffix that no other key ends with
    (``cluster.disaggregation.prefill.replicas`` -> ``prefill.replicas`` next to ``decode.replicas``)."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != k and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        out[k] = tail
    return out


def series_default(df: pd.DataFrame, x: str) -> list[str]:
    """The varying overrides other than ``x`` (seeds too: say ``--series`` to pool them)."""
    return [c for c in varying(df) if c != x]


def fmt_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def series_labels(df: pd.DataFrame, series: Sequence[str]) -> pd.Series:
    """``key=value, key=value`` per row (a key a run lacks is left out); ``all runs`` without series."""
    if not series:
        return pd.Series(["all runs"] * len(df), index=df.index, dtype=object)

    def label(row) -> str:
        parts = [f"{c}={fmt_value(row[c])}" for c in series if not _missing(row[c])]
        return ", ".join(parts) or "(unset)"

    return df.apply(label, axis=1).astype(object)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def axis_label(x: str) -> str:
    unit = LOAD_UNITS.get(x.split(".")[-1].split("@")[0])
    if x == "offered_rps":
        return "offered load (req/s)"
    return f"{x} ({unit})" if unit else x


# ---------------------------------------------------------------- readings


def knee(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, slo: float | Sequence[float] | np.ndarray | None
) -> float | None:
    """The highest load whose latency still meets the SLO.

    Walking up the load axis, the knee is the last ``x`` before the first
    point with ``y > slo`` (or no value: nothing completed); ``None`` when the
    lowest load already misses or there is no SLO. ``slo`` may be one value
    or one per point. Points at the same ``x`` are averaged first.
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    s = np.broadcast_to(np.asarray(np.nan if slo is None else slo, dtype=float), x.shape)
    keep = ~np.isnan(x)
    if not keep.any():
        return None
    frame = (
        pd.DataFrame({"x": x[keep], "y": y[keep], "slo": s[keep]})
        .groupby("x", sort=True)
        .agg(y=("y", lambda v: v.mean() if v.notna().all() else np.nan), slo=("slo", "min"))
    )
    best = None
    for xv, row in frame.iterrows():
        if np.isnan(row["slo"]) or np.isnan(row["y"]) or row["y"] > row["slo"]:
            break
        best = float(xv)
    return best


def knees(
    df: pd.DataFrame,
    x: str,
    series: Sequence[str],
    *,
    slo_ttft: float | None = None,
    slo_tpot: float | None = None,
    stat: str = "p99",
) -> pd.DataFrame:
    """Per series: the knee of p99 TTFT, of p99 TPOT, and both together (the lower).

    SLOs default to each run's own (``slo_ttft_s``, ``slo_tpot_s``). A series
    whose runs lack ``x`` altogether (another sweep in the same folder) is left out;
    ``all_met`` says every load of the series met both, so the true knee lies
    beyond the sweep.
    """
    labels = series_labels(df, series)
    rows = []
    for label in pd.unique(labels):
        g = df[labels == label]
        if g[x].isna().all():  # runs of another sweep in the same folder, without this axis: no knee to read
            continue
        out: dict[str, object] = {"series": label}
        judged, met = [], True
        for metric, override in (("ttft", slo_ttft), ("tpot", slo_tpot)):
            slo = _slo_values(g, metric, override)
            y = g[f"{metric}_{stat}_s"].to_numpy(dtype=float)
            k = knee(g[x], y, slo)
            out[f"{metric}_knee"] = k
            if not np.isnan(slo).all():
                judged.append(k)
                met = met and bool((y <= slo).all())
        knees_met = [k for k in judged if k is not None]
        out["knee"] = None if not judged or len(knees_met) < len(judged) else min(knees_met)
        out["all_met"] = bool(judged) and met
        rows.append(out)
    return pd.DataFrame(rows, columns=["series", "ttft_knee", "tpot_knee", "knee", "all_met"])


def _slo_values(g: pd.DataFrame, metric: str, override: float | None) -> np.ndarray:
    if override is not None:
        return np.full(len(g), float(override))
    col = f"slo_{metric}_s"
    if col not in g.columns:
        return np.full(len(g), np.nan)
    return pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float)


def pareto_front(df: pd.DataFrame, cost: str, value: str) -> pd.Series:
    """True for the runs on the cost / value Pareto front (least cost, most value).

    A run is on it when no other run costs as little or less and delivers as
    much or more, one of them strictly; of identical runs the first counts.
    Runs with a missing cost or value are off it.
    """
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(dtype=float)
    v = pd.to_numeric(df[value], errors="coerce").to_numpy(dtype=float)
    on = np.zeros(len(df), dtype=bool)
    ok = np.flatnonzero(~np.isnan(c) & ~np.isnan(v))
    order = ok[np.lexsort((np.arange(len(ok)), -v[ok], c[ok]))]
    best = -np.inf
    for i in order:
        if v[i] > best:
            on[i] = True
            best = v[i]
    return pd.Series(on, index=df.index, name="pareto")


def cost_axis(df: pd.DataFrame) -> str:
    """``usd_per_hour`` when every run has a price, else ``gpus``."""
    if "usd_per_hour" in df.columns and len(df) and df["usd_per_hour"].notna().all():
        return "usd_per_hour"
    return "gpus"


def cost_text(v: float, cost: str) -> str:
    """A cost for people: ``$12.75/h`` or ``3 GPUs`` (``cost`` is the column :func:`cost_axis` chose)."""
    return f"${v:,.2f}/h" if cost == "usd_per_hour" else f"{v:g} GPUs"


def spread_runs(df: pd.DataFrame, x: str, series: Sequence[str], k: int = 6) -> list[str]:
    """Up to ``k`` runs spread over the sweep: per series, loads evenly spaced from lowest to highest."""
    labels = series_labels(df, series)
    groups = list(pd.unique(labels))
    per = max(1, k // max(1, len(groups)))
    picked: list[str] = []
    for label in groups:
        g = df[labels == label]
        g = (
            g.iloc[np.argsort(pd.to_numeric(g[x], errors="coerce").to_numpy(dtype=float), kind="stable")]
            if pd.api.types.is_numeric_dtype(g[x])
            else g
        )
        n = len(g)
        idx = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(per, n))}) if n else []
        picked += [g["run"].iloc[i] for i in idx]
        if len(picked) >= k:
            break
    return picked[:k]


def highest_load_run(df: pd.DataFrame, x: str, series: Sequence[str]) -> str:
    """The run at the highest load of the first series."""
    labels = series_labels(df, series)
    g = df[labels == labels.iloc[0]]
    if pd.api.types.is_numeric_dtype(g[x]):
        xs = pd.to_numeric(g[x], errors="coerce").to_numpy(dtype=float)
        if not np.isnan(xs).all():
            return str(g["run"].iloc[int(np.nanargmax(xs))])
    return str(g["run"].iloc[-1])


__all__ = [
    "CI_SUFFIXES",
    "DESCRIPTORS",
    "OVERRIDES_FILE",
    "SUMMARY_FILE",
    "ReportError",
    "TABLE_CSV",
    "TABLE_PARQUET",
    "axis_label",
    "collect",
    "collect_files",
    "cost_axis",
    "cost_text",
    "figures",
    "find_runs",
    "headline_names",
    "highest_load_run",
    "is_load",
    "knee",
    "knees",
    "override_columns",
    "pareto_front",
    "parse_overrides",
    "read_overrides",
    "series_default",
    "series_labels",
    "short_names",
    "spread_runs",
    "unfinished_runs",
    "varying",
    "write_table",
    "x_default",
]
