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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from simulator.errors import ServesimError
from simulator.metrics.headline import headline

SUMMARY_FILE = "summary.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
TABLE_PARQUET = "sweep.parquet"
TABLE_CSV = "sweep.csv"

#: descriptor column -> where it comes from in summary.json
DESCRIPTORS: dict[str, tuple[str, str]] = {
    "model": ("scenario", "model"),
    "hardware": ("scenario", "hardware"),
    "scheduler": ("scenario", "scheduler"),
    "replicas": ("scenario", "replicas"),
    "tp": ("scenario", "tp"),
    "arrival": ("scenario", "arrival"),
    "seed": ("scenario", "seed"),
    "latency_model": ("scenario", "latency_model"),
    "slo_ttft_s": ("slo", "ttft_s"),
    "slo_tpot_s": ("slo", "tpot_s"),
    "slo_e2e_s": ("slo", "e2e_s"),
}
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
CI_SUFFIXES = ("_ci95_low", "_ci95_high")


class ReportError(ServesimError):
    """A sweep folder or report option the user has to fix."""


# ---------------------------------------------------------------- finding runs


def _natural_key(path: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path) if t]


def find_runs(directory: str | Path) -> list[Path]:
    """Run directories under ``directory`` (itself included), in natural path order.

    Hidden folders (``.hydra``) are not searched, nor the inside of a run.
    """
    root = Path(directory)
    found: list[Path] = []

    def walk(d: Path) -> None:
        if (d / SUMMARY_FILE).is_file():
            found.append(d)
            return
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for c in children:
            walk(c)

    walk(root)
    return sorted(found, key=lambda p: _natural_key(_rel(p, root)))


def unfinished_runs(directory: str | Path) -> list[str]:
    """Hydra job folders (with ``.hydra/overrides.yaml``) that have no summary.json: failed points."""
    root = Path(directory)
    out = []
    for ov in root.rglob("overrides.yaml"):
        d = ov.parent.parent
        if ov.parent.name == ".hydra" and not (d / SUMMARY_FILE).is_file():
            out.append(_rel(d, root))
    return sorted(out, key=_natural_key)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


# ---------------------------------------------------------------- overrides


def _scalar(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return None


def parse_overrides(lines: Iterable[str]) -> dict[str, object]:
    """``{key: typed value}`` of hydra override strings (deletions ``~key`` are left out).

    Values are typed by hydra's own override grammar (``2`` -> 2, ``2.5`` -> 2.5,
    ``false`` -> False, ``null`` -> None); lists and dicts keep their text.
    """
    out: dict[str, object] = {}
    lines = [str(x) for x in lines]
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # noqa: BLE001 - an odd line falls back to plain key=value parsing
        parsed = None
    if parsed is not None:
        for o in parsed:
            if o.is_delete():
                continue
            key = o.key_or_group + (f"@{o.package}" if o.package else "")
            if key.startswith("hydra."):
                continue
            v = o.value()
            if not (v is None or isinstance(v, (bool, int, float, str))):
                v = o.input_line.split("=", 1)[1] if o.input_line and "=" in o.input_line else str(v)
            out[key] = v
        return out
    for line in lines:
        if line.startswith("~") or "=" not in line:
            continue
        key, text = line.split("=", 1)
        key = key.lstrip("+")
        if key.startswith("hydra."):
            continue
        try:
            v = yaml.safe_load(text)
        except yaml.YAMLError:
            v = text
        out[key] = v if _scalar(v) is not None or v is None else text
    return out


def read_overrides(run_dir: str | Path) -> dict[str, object]:
    """The overrides hydra recorded for a run (``{}`` when it has none)."""
    f = Path(run_dir) / OVERRIDES_FILE
    if not f.is_file():
        return {}
    lines = yaml.safe_load(f.read_text()) or []
    return parse_overrides(lines)


# ---------------------------------------------------------------- the table


def figures(summary: dict) -> dict[str, float]:
    """headline() of a summary; for a replicated run the means, each followed by its 95% CI bounds."""
    base = headline(summary)
    rep = summary.get("replications") or {}
    figs = rep.get("figures") or {}
    if not figs:
        return base
    out: dict[str, float] = {}
    names = list(base) + [n for n in figs if n not in base]
    for name in names:
        f = figs.get(name)
        if f is None:
            out[name] = base.get(name, float("nan"))
            continue
        out[name] = _float(f.get("mean"))
        out[name + "_ci95_low"] = _float(f.get("ci95_low"))
        out[name + "_ci95_high"] = _float(f.get("ci95_high"))
    return out


def _float(v) -> float:
    try:
        return float("nan") if v is None else float(v)
    except (TypeError, ValueError):
        return float("nan")


def _descriptors(summary: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for col, (block, key) in DESCRIPTORS.items():
        out[col] = (summary.get(block) or {}).get(key)
    rep = summary.get("replications") or {}
    out["replications"] = int(rep.get("n", 1) or 1)
    return out


def _tidy_column(values: pd.Series) -> pd.Series:
    """One type per column so the table writes to Parquet: numbers, booleans or text."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, bool) for v in present):
        return values.astype(object).where(values.notna(), None)
    if present and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in present
    ):
        if len(present) == len(values) and all(isinstance(v, (int, np.integer)) for v in present):
            return values.astype("int64")
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).astype(
        object
    )


def collect(directory: str | Path) -> pd.DataFrame:
    """Every run under ``directory`` as one row (see the module docstring).

    ``df.attrs["overrides"]`` lists the override columns, in order of first
    appearance. Raises :class:`ReportError` when there are no runs.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory")
    runs = find_runs(root)
    if not runs:
        raise ReportError(f"no runs under {root} (no summary.json found in it or its subfolders)")
    rows, override_keys = [], []
    for d in runs:
        name = _rel(d, root)
        try:
            summary = json.loads((d / SUMMARY_FILE).read_text())
            figs = figures(summary)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            what = f"lacks {exc}" if isinstance(exc, KeyError) else f"cannot be read ({exc})"
            raise ReportError(f"{d / SUMMARY_FILE} {what}") from None
        try:
            ov = read_overrides(d)
        except (OSError, yaml.YAMLError) as exc:
            raise ReportError(f"{d / OVERRIDES_FILE} cannot be read ({exc})") from None
        override_keys += [k for k in ov if k not in override_keys]
        rows.append((name, ov, _descriptors(summary), figs))
    seen: list[str] = []
    for *_, figs in rows:
        seen += [k for k in figs if k not in seen]
    fig_cols: list[str] = []  # each figure followed by its confidence bounds, when some run has them
    for k in seen:
        if not k.endswith(CI_SUFFIXES):
            fig_cols += [k] + [k + sfx for sfx in CI_SUFFIXES if k + sfx in seen]
    fig_cols += [k for k in seen if k not in fig_cols]
    override_keys = [k for k in override_keys if k != "run" and k not in fig_cols]
    desc_cols = [c for c in [*DESCRIPTORS, "replications"] if c not in override_keys]
    records = []
    for name, ov, desc, figs in rows:
        rec: dict[str, object] = {"run": name}
        # an override named like a descriptor (scheduler=..., seed=...) holds it; runs without it get the descriptor
        rec.update({k: ov[k] if k in ov else desc.get(k) for k in override_keys})
        rec.update({k: desc[k] for k in desc_cols})
        rec.update({k: figs.get(k, float("nan")) for k in fig_cols})
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=["run", *override_keys, *desc_cols, *fig_cols])
    for c in ["run", *override_keys, *desc_cols]:
        df[c] = _tidy_column(df[c])
    for c in ("slo_ttft_s", "slo_tpot_s", "slo_e2e_s"):  # null (no SLO) reads as NaN
        if c in desc_cols:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in fig_cols:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df = df.copy()  # one block per dtype again after the column-wise conversions
    df.attrs["overrides"] = list(override_keys)
    return df


def override_columns(df: pd.DataFrame) -> list[str]:
    """The override columns of a collected table, also of one read back from disk.

    :func:`collect` records them in ``df.attrs`` (which ``sweep.parquet``
    keeps). Without it (``sweep.csv``) they are read from the column order:
    after ``run``, before the descriptor block that precedes the figures.
    """
    if "overrides" in df.attrs:
        return [c for c in df.attrs["overrides"] if c in df.columns]
    cols = list(df.columns)
    start = cols.index("run") + 1 if "run" in cols else 0
    figs = set(headline_names(df))
    end = next((i for i, c in enumerate(cols) if c in figs), len(cols))
    order = [*DESCRIPTORS, "replications"]
    pos = len(order)
    while end > start and cols[end - 1] in order and order.index(cols[end - 1]) < pos:
        pos = order.index(cols[end - 1])  # the descriptors keep their order: an earlier one ends the block
        end -= 1
    return cols[start:end]


def headline_names(df: pd.DataFrame) -> list[str]:
    """The columns of a table named like a headline() figure (ci95 bounds not included)."""
    from simulator.metrics.headline import FIGURES

    names = set(FIGURES)
    return [c for c in df.columns if c in names]


def write_table(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``sweep.parquet`` and ``sweep.csv`` in ``out_dir`` (the Parquet file keeps which columns are overrides)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq, csv = out / TABLE_PARQUET, out / TABLE_CSV
    table = df.copy()
    table.attrs = {"overrides": override_columns(df)}  # kept in the Parquet metadata: read_parquet restores it
    table.to_parquet(pq, index=False)
    table.to_csv(csv, index=False)
    return [pq, csv]


def collect_files(directory: str | Path, name: str, runs: Sequence[str]) -> pd.DataFrame:
    """One run file (``requests``, ``steps`` or ``replicas``) of several runs, stacked, ``run`` first."""
    root = Path(directory)
    parts = []
    for r in runs:
        f = root / r / f"{name}.parquet"
        if f.is_file():
            part = pd.read_parquet(f)
            part.insert(0, "run", r)
            parts.append(part)
    if not parts:
        return pd.DataFrame({"run": pd.Series([], dtype=object)})
    return pd.concat(parts, ignore_index=True)


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


def knee(xs: Sequence[float], ys: Sequence[float], slo: float | Sequence[float] | None) -> float | None:
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
        out["knee"] = None if not judged or any(k is None for k in judged) else min(judged)
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
    "DESCRIPTORS",
    "ReportError",
    "TABLE_CSV",
    "TABLE_PARQUET",
    "axis_label",
    "collect",
    "collect_files",
    "cost_axis",
    "figures",
    "find_runs",
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
