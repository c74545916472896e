"""Finding the runs of a sweep and collecting them into one table (see :mod:`simulator.report.sweep`).

:func:`find_runs` walks the sweep folder, :func:`read_overrides` types each
run's hydra overrides, :func:`collect` builds the table (one row per run:
overrides, scenario descriptors, headline figures and their 95% CIs) and
:func:`write_table` writes it as ``sweep.parquet`` and ``sweep.csv``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from simulator.errors import ServesimError
from simulator.files import SUMMARY_FILE
from simulator.metrics.headline import headline
from simulator.metrics.sections import Summary

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


def job_folders(directory: str | Path) -> list[tuple[str, Path]]:
    """Hydra job folders under ``directory`` (each with ``.hydra/overrides.yaml``), as (name relative
    to ``directory``, folder), in natural order."""
    root = Path(directory)
    found = [(_rel(ov.parent.parent, root), ov.parent.parent) for ov in root.rglob("overrides.yaml") if ov.parent.name == ".hydra"]
    return sorted(found, key=lambda job: _natural_key(job[0]))


def unfinished_runs(directory: str | Path) -> list[str]:
    """Hydra job folders (with ``.hydra/overrides.yaml``) that have no summary.json: failed points."""
    return [name for name, folder in job_folders(directory) if not (folder / SUMMARY_FILE).is_file()]


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


def figures(summary: Summary) -> dict[str, float]:
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


def _descriptors(summary: Summary) -> dict[str, object]:
    out: dict[str, object] = {}
    sections: Mapping[str, Any] = summary  # read by the (section, key) names of DESCRIPTORS
    for col, (block, key) in DESCRIPTORS.items():
        out[col] = (sections.get(block) or {}).get(key)
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


__all__ = [
    "CI_SUFFIXES",
    "DESCRIPTORS",
    "OVERRIDES_FILE",
    "ReportError",
    "SUMMARY_FILE",
    "TABLE_CSV",
    "TABLE_PARQUET",
    "collect",
    "collect_files",
    "figures",
    "find_runs",
    "headline_names",
    "override_columns",
    "parse_overrides",
    "read_overrides",
    "unfinished_runs",
    "write_table",
]
