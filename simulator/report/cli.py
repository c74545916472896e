"""``servesim-report DIR``: one table and the standard charts of a sweep.

Collects every run under ``DIR`` (a ``servesim -m`` multirun folder, one run
folder, or folders of sweeps) into ``sweep.parquet`` / ``sweep.csv``, draws
``latency_vs_load``, ``cdfs``, ``cost_frontier`` (when the runs differ in cost) and ``timeline`` (PNG and
SVG), and prints the table's key figures. See docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import ServesimError
from simulator.report.sweep import (
    ReportError,
    axis_label,
    collect,
    collect_files,
    cost_axis,
    cost_text,
    fmt_value,
    highest_load_run,
    is_load,
    knees,
    series_default,
    series_labels,
    short_names,
    spread_runs,
    unfinished_runs,
    write_table,
    x_default,
)
from simulator.report.sweep_levers import LEVER_KEY, levers_chart

PROG = "servesim-report"
RUN_FILES = ("requests", "steps", "replicas")


class _UsageError(Exception):
    """A bad command line, raised by the argument parser instead of exiting (reported in one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every servesim command
        raise _UsageError(message)

#: a run whose drain after the last arrival is longer than this share of it gets a note
DRAIN_WARNING = 0.25


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Collect the runs of a sweep into one table (sweep.parquet, sweep.csv) and draw its charts: "
        "latency vs load, latency CDFs, throughput/goodput vs cost, and one run's timeline.",
    )
    p.add_argument(
        "dir",
        metavar="DIR",
        help="a sweep folder (servesim -m ... writes multirun/<date>/<time>/), a run folder, or a folder of sweeps",
    )
    p.add_argument("--out", metavar="DIR", help="where to write the table and charts (default: DIR)")
    p.add_argument(
        "--x",
        metavar="COLUMN",
        help="load axis: a table column (default: the varying override that "
        "looks like load, e.g. workload.rate, else offered_rps)",
    )
    p.add_argument(
        "--series",
        metavar="COLUMNS",
        help="comma-separated columns whose values make one line each "
        "(default: the other varying overrides; 'none' for one series)",
    )
    p.add_argument(
        "--runs",
        metavar="RUNS",
        help="comma-separated runs (the table's run column) for the CDF chart (default: up to 6 spread over the sweep)",
    )
    p.add_argument(
        "--timeline",
        metavar="RUN",
        help="the run whose timeline to draw (default: the highest load of the first series)",
    )
    p.add_argument(
        "--slo-ttft",
        type=float,
        metavar="SECONDS",
        help="TTFT SLO for lines and knees (default: each run's slo.ttft_s)",
    )
    p.add_argument(
        "--slo-tpot",
        type=float,
        metavar="SECONDS",
        help="TPOT SLO for lines and knees (default: each run's slo.tpot_s)",
    )
    p.add_argument(
        "--formats", default="png,svg", metavar="LIST", help="chart formats: png, svg or both (default: png,svg)"
    )
    p.add_argument("--no-charts", action="store_true", help="write the table only")
    p.add_argument(
        "--include",
        default="",
        metavar="FILES",
        help="also stack these run files of every run, a "
        "'run' column first: requests, steps, replicas (writes sweep_<name>.parquet)",
    )
    p.add_argument("--rows", type=int, default=15, metavar="N", help="table rows to print (default: 15)")
    return p


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _check_columns(df: pd.DataFrame, names: Sequence[str], option: str) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ReportError(
            f"{option}: no column {', '.join(map(repr, missing))} in the table "
            f"(overrides and figures, e.g. {', '.join(_hint(df))})"
        )


def _hint(df: pd.DataFrame) -> list[str]:
    from simulator.report.sweep import override_columns

    return (override_columns(df) + ["offered_rps", "gpus", "usd_per_hour"])[:6]


def _check_runs(df: pd.DataFrame, runs: Sequence[str], option: str) -> None:
    known = set(df["run"])
    bad = [r for r in runs if r not in known]
    if bad:
        shown = ", ".join(list(df["run"])[:8]) + (", ..." if len(df) > 8 else "")
        raise ReportError(f"{option}: no run {', '.join(map(repr, bad))} in the sweep (runs: {shown})")


def _ms(v: float) -> str:
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v * 1e3:,.1f}" if v < 10 else f"{v * 1e3:,.0f}"


def _num(v: float, fmt: str = "{:.2f}") -> str:
    return "-" if v is None or not np.isfinite(v) else fmt.format(v)


# ---------------------------------------------------------------- printing


def _render(
    df: pd.DataFrame,
    x: str,
    series: Sequence[str],
    kn: pd.DataFrame | None,
    written: list[Path],
    rows: int,
    notes: list[str],
    skipped: dict[str, str] | None = None,
) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)  # paths stay whole, for copy and paste
    console.print(_sweep_table(df, x, series, rows))
    if kn is not None and len(kn):
        _print_knees(console, kn, x)
    for n in notes:
        console.print(n)
    console.print("wrote:")
    for p in written:
        console.print(f"  {p}")
    for name, why in (skipped or {}).items():
        console.print(f"  (no {name} chart: {why})")


def _sweep_table(df: pd.DataFrame, x: str, series: Sequence[str], rows: int):
    """The first ``rows`` runs: their series and load, key figures, and a caption on what is not shown."""
    from rich.table import Table

    table = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
        padding=(0, 1, 0, 1),
        collapse_padding=True,
        title=f"sweep: {len(df)} run{'s' if len(df) != 1 else ''}",
        title_justify="left",
    )
    table.add_column("run", overflow="fold", max_width=12)
    _add_axis_columns(table, df, x, series, rows)
    table.add_column("thru\nreq/s", justify="right", no_wrap=True)
    table.add_column("goodput\nreq/s", justify="right", no_wrap=True)
    table.add_column("SLO\nmet", justify="right", no_wrap=True)
    table.add_column("p99 TTFT\nms", justify="right", no_wrap=True)
    table.add_column("p99 TPOT\nms", justify="right", no_wrap=True)
    table.add_column("GPUs", justify="right", no_wrap=True)
    table.add_column("$/h", justify="right", no_wrap=True)
    for i in range(min(rows, len(df))):
        table.add_row(*_row_cells(df.iloc[i], x, series))
    notes_below = _table_notes(df, rows)
    if notes_below:
        table.caption = "\n".join(notes_below)
        table.caption_justify = "left"
    return table


def _add_axis_columns(table, df: pd.DataFrame, x: str, series: Sequence[str], rows: int) -> None:
    """A column per series key and the load axis, headed by its short name, as wide as its values."""
    names = short_names([c for c in [*series, x] if c != "offered_rps"])
    shown = head_rows = df.head(rows)
    for c in [*series, x]:
        head = "offered\nreq/s" if c == "offered_rps" else names[c].replace(".", ".\n")
        cells = [fmt_value(v) for v in shown[c]] if len(head_rows) else [""]
        width = max(max(map(len, head.split("\n"))), min(max(map(len, cells)), 18))
        table.add_column(
            head,
            justify="right" if c == x else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=width,
            max_width=max(width, 18),
        )


def _row_cells(r: pd.Series, x: str, series: Sequence[str]) -> list[str]:
    cells = [str(r["run"])]
    cells += [fmt_value(r[c]) for c in series]
    cells += [
        fmt_value(r[x]),
        _num(r["throughput_rps"]),
        _num(r["goodput_rps"]),
        _num(r["slo_attainment"] * 100, "{:.1f}%") if np.isfinite(r["slo_attainment"]) else "-",
        _ms(r["ttft_p99_s"]),
        _ms(r["tpot_p99_s"]),
        _num(r["gpus"], "{:g}"),
        _num(r["usd_per_hour"], "{:.2f}"),
    ]
    return cells


def _table_notes(df: pd.DataFrame, rows: int) -> list[str]:
    """The table's caption: rows left out, and that replicated figures are means."""
    notes_below = []
    if len(df) > rows:
        notes_below.append(f"... {len(df) - rows} more rows in sweep.csv")
    if "replications" in df.columns and (df["replications"] > 1).any():
        n = sorted({int(v) for v in df["replications"] if v > 1})
        notes_below.append(
            f"figures are means over {'/'.join(map(str, n))} seeds; their 95% CIs are the *_ci95_low/high columns of sweep.csv"
        )
    return notes_below


def _print_knees(console, kn: pd.DataFrame, x: str) -> None:
    console.print(f"knee (highest {axis_label(x)} with p99 TTFT and TPOT within SLO):")
    for _, k in kn.iterrows():
        value = (
            "none (the lowest load misses)"
            if k["knee"] is None or pd.isna(k["knee"])
            else ((">= " if k["all_met"] else "") + f"{k['knee']:g}")
        )
        console.print(f"  {k['series']}: {value}")


# ---------------------------------------------------------------- the command as a function


def report(
    directory: str | Path,
    *,
    out: str | Path | None = None,
    x: str | None = None,
    series: Sequence[str] | None = None,
    runs: Sequence[str] | None = None,
    timeline: str | None = None,
    slo_ttft: float | None = None,
    slo_tpot: float | None = None,
    formats: Sequence[str] = ("png", "svg"),
    charts: bool = True,
    include: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[Path], dict]:
    """The whole command as a function: (table, files written, what was chosen)."""
    from simulator.report import sweep_charts as sc

    root = Path(directory)
    df = collect(root)
    out_dir = Path(out) if out is not None else root
    x, series = _axes(df, x, series)
    _check_options(formats, include)
    numeric_x = pd.api.types.is_numeric_dtype(df[x]) and not pd.api.types.is_bool_dtype(df[x])
    chosen: dict = {"x": x, "series": list(series), "knees": None, "notes": _drain_notes(df), "skipped": {}}
    if numeric_x and is_load(x):
        chosen["knees"] = knees(df, x, series, slo_ttft=slo_ttft, slo_tpot=slo_tpot)
    written = _write_tables(df, root, out_dir, include)
    if runs:
        _check_runs(df, runs, "--runs")
    if timeline:
        _check_runs(df, [timeline], "--timeline")
    if not charts:
        return df, written, chosen

    written += sc.latency_vs_load_chart(
        df, out_dir, x=x, series=series, slo_ttft=slo_ttft, slo_tpot=slo_tpot, formats=formats
    )
    slos = {"slo_ttft": slo_ttft, "slo_tpot": slo_tpot}
    written += _cdfs(df, root, out_dir, x, series, runs, slos, formats, chosen)
    written += _cost_frontier(df, out_dir, x, series, formats, chosen)
    written += _timeline(df, root, out_dir, x, series, timeline, formats, chosen)
    if LEVER_KEY in df.columns and numeric_x and is_load(x):  # servesim -m experiment=levers
        written += levers_chart(df, out_dir, x=x, slo_ttft=slo_ttft, slo_tpot=slo_tpot, formats=formats)
    return df, written, chosen


def _axes(df: pd.DataFrame, x: str | None, series: Sequence[str] | None) -> tuple[str, list[str]]:
    """The load axis and the series keys: as given (checked against the table), else the defaults."""
    x = x or x_default(df)
    _check_columns(df, [x], "--x")
    series = series_default(df, x) if series is None else [c for c in series if c.lower() != "none"]
    _check_columns(df, series, "--series")
    return x, series


def _check_options(formats: Sequence[str], include: Sequence[str]) -> None:
    from simulator.report.sweep_style import FORMATS

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ReportError(f"--formats: {', '.join(bad) or 'nothing'} is not a chart format (png, svg)")
    bad = [f for f in include if f not in RUN_FILES]
    if bad:
        raise ReportError(f"--include: {', '.join(bad)} is not a run file ({', '.join(RUN_FILES)})")


def _drain_notes(df: pd.DataFrame) -> list[str]:
    """A note when some runs spent much of their time draining a backlog (their throughput understates)."""
    draining = df[df["drain_share"] > DRAIN_WARNING] if "drain_share" in df.columns else df.iloc[:0]
    if not len(draining):
        return []
    return [
        f"note: {len(draining)} of {len(df)} runs spent over {DRAIN_WARNING:.0%} of their time draining a backlog "
        "after the last arrival (drain_share), so their throughput and goodput understate what they sustain "
        "while traffic lasts; run more requests per point before reading capacity from them"
    ]


def _write_tables(df: pd.DataFrame, root: Path, out_dir: Path, include: Sequence[str]) -> list[Path]:
    """sweep.parquet and sweep.csv, and one ``sweep_<name>.parquet`` per run file of ``include``."""
    written = write_table(df, out_dir)
    for name in include:
        stacked = collect_files(root, name, list(df["run"]))
        p = out_dir / f"sweep_{name}.parquet"
        stacked.to_parquet(p, index=False)
        written.append(p)
    return written


def _cdfs(df, root: Path, out_dir: Path, x: str, series, runs, slos: dict, formats, chosen: dict) -> list[Path]:
    """The CDF chart of ``runs`` (default: a spread of the runs that kept their requests)."""
    from simulator.report import sweep_charts as sc

    has_requests = [r for r in df["run"] if (root / r / "requests.parquet").is_file()]
    if runs:
        missing = [r for r in runs if r not in has_requests]
        if missing:
            raise ReportError(f"--runs: {', '.join(missing)} has no requests.parquet")
        picked = list(runs)
    else:
        picked = spread_runs(df[df["run"].isin(has_requests)], x, series)
    chosen["cdf_runs"] = picked
    if picked:
        return sc.cdfs_chart(df, root, picked, out_dir, x=x, series=series, **slos, formats=formats)
    chosen["notes"].append("no run has requests.parquet: no CDF chart")
    return []


def _cost_frontier(df, out_dir: Path, x: str, series, formats, chosen: dict) -> list[Path]:
    """The cost frontier when the runs differ in cost; else none, and an old one is removed."""
    from simulator.report import sweep_charts as sc

    cost = cost_axis(df)
    costs = set(pd.to_numeric(df[cost], errors="coerce").dropna().tolist())
    if len(costs) > 1:
        return sc.cost_frontier_chart(df, out_dir, x=x, series=series, formats=formats)
    # one fleet: nothing to trade against cost, the chart would be one column of points
    what = (
        "no run has a cost"
        if not costs
        else f"every run costs the same ({cost_text(next(iter(costs)), cost)})"
    )
    chosen["skipped"][sc.COST_CHART] = what
    for fmt in formats:  # a chart left by an earlier report of other runs would mislead
        (out_dir / f"{sc.COST_CHART}.{fmt}").unlink(missing_ok=True)
    return []


def _timeline(df, root: Path, out_dir: Path, x: str, series, timeline, formats, chosen: dict) -> list[Path]:
    """The timeline of run ``timeline`` (default: the highest load of the first series)."""
    from simulator.report import sweep_charts as sc

    with_steps = df[[(root / r / "steps.parquet").is_file() for r in df["run"]]]
    if timeline and timeline not in set(with_steps["run"]):
        raise ReportError(f"--timeline: run {timeline} has no steps.parquet")
    one = timeline or (highest_load_run(with_steps, x, series) if len(with_steps) else None)
    chosen["timeline"] = one
    if one is None:
        chosen["notes"].append("no run has steps.parquet: no timeline chart")
        return []
    i = int(np.flatnonzero(df["run"].to_numpy() == one)[0])
    row = df.iloc[i]
    label = series_labels(df, series).iloc[i]
    what = (f"{label}, " if series else "") + (
        f"load {fmt_value(row[x])} req/s" if x == "offered_rps" else f"{x}={fmt_value(row[x])}"
    )
    title = f"Timeline of run {one} ({what})\n{sc.runs_caption(df.iloc[[i]])}"
    return sc.run_timeline_chart(root / one, out_dir, title=title, formats=formats)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``servesim-report``; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        df, written, chosen = report(
            args.dir,
            out=args.out,
            x=args.x,
            series=_csv(args.series) if args.series is not None else None,
            runs=_csv(args.runs) or None,
            timeline=args.timeline,
            slo_ttft=args.slo_ttft,
            slo_tpot=args.slo_tpot,
            formats=[f.lower() for f in _csv(args.formats)],
            charts=not args.no_charts,
            include=_csv(args.include),
        )
    except (ServesimError, OSError) as exc:
        skipped = unfinished_runs(args.dir) if Path(args.dir).is_dir() else []
        print(f"{PROG}: error: {exc}" + (f"; {_failed_folders(skipped)}" if skipped else ""), file=sys.stderr)
        return 2
    notes = list(chosen["notes"])
    skipped = unfinished_runs(args.dir)
    if skipped:
        print(f"{PROG}: warning: {_failed_folders(skipped)} left out", file=sys.stderr)
    _render(
        df, chosen["x"], chosen["series"], chosen["knees"], written, max(args.rows, 0), notes, chosen.get("skipped")
    )
    return 0


def _failed_folders(names: list[str]) -> str:
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{len(names)} run folder(s) without summary.json (failed? each one's cli.log says why): {shown}"


if __name__ == "__main__":
    sys.exit(main())
