"""``servesim-validate``: replay a recorded benchmark of a real engine, compare, and calibrate.

    servesim-validate RESULT [RESULT ...] [key=value ...] [--format NAME] [--out DIR]
    servesim-validate RESULT [...] [key=value ...] --calibrate [--holdout RESULT ...]

Each RESULT is a benchmark client's result file (see ``--help`` for the
formats); ``key=value`` overrides set the scenario it is replayed on (the
model, GPU, TP and engine the benchmark ran). Every recording gets
``OUT/<name>/validate.md``, ``validate.png``/``.svg``, ``comparison.csv`` and,
when requests pair, ``per_request.csv``. ``--calibrate`` fits the latency
factors to the RESULTs (:mod:`simulator.validation.calibrate`), writes
``OUT/calibrated.yaml`` with its provenance, and reports every recording,
those held out (``--holdout``) included, before and after.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pandas as pd
from rich.console import Console

from simulator.api import run_workload
from simulator.errors import ServesimError
from simulator.validation.calibrate import Fit, fit, with_factors
from simulator.validation.compare import comparison, headline_error, measured_figures, per_request, simulated_figures
from simulator.validation.formats import read_recording
from simulator.validation.recording import FORMATS, Recording
from simulator.validation.replay import Replay, replay
from simulator.validation.report import chart, markdown
from simulator.version import __version__

PROG = "servesim-validate"


@dataclass
class Checked:
    rec: Recording
    replay: Replay
    table: pd.DataFrame
    out: Path


def _parser() -> argparse.ArgumentParser:
    known = "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values())
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=f"formats: {known}")
    ap.add_argument("args", nargs="+", metavar="RESULT or key=value", help="recordings and scenario overrides")
    ap.add_argument("--format", choices=sorted(FORMATS), help="read every RESULT as this format (default: recognise each)")
    ap.add_argument("--out", default="validation", help="where the reports go (default: ./validation)")
    ap.add_argument("--calibrate", action="store_true", help="fit the latency factors to the RESULTs")
    ap.add_argument("--holdout", nargs="*", default=[], metavar="RESULT", help="recordings reported but not fitted")
    ap.add_argument("--max-evaluations", type=int, default=60, help="calibration: simulations of every recording at most")
    ap.add_argument("--formats", default="png,svg", help="chart formats, comma-separated: png, svg (to choose a reader: --format)")
    return ap


def check(
    rec: Recording, rp: Replay, overrides: list[str], out: Path, formats: Sequence[str],
    factors: dict | None = None, fit_lines: list[str] | None = None,
) -> Checked:  # fmt: skip
    """Run ``rec``'s replay ``rp`` (with fitted ``factors``), compare, write its report; the comparison table."""
    if factors is not None:
        rp = replace(rp, cfg=with_factors(rp.cfg, factors))
    result = run_workload(rp.cfg, rp.workload)
    table = comparison(measured_figures(rp.recorded, rec.meta.get("duration_s")), simulated_figures(result))
    pairs = per_request(rp.recorded, result) if rp.paired else None
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    if pairs is not None:
        pairs.to_csv(out / "per_request.csv", index=False)
    scenario = (" ".join(overrides) or "the defaults") + (" with the calibrated latency factors" if factors is not None else "")
    title = f"{Path(rec.path).name}: measured (solid) and servesim (dashed), {len(rp.recorded)} requests; {scenario}"
    chart(rp, result, title, out, formats)
    (out / "validate.md").write_text(markdown(rec, rp, table, pairs, scenario, fit_lines or []))
    return Checked(rec, rp, table, out)


def _fit_lines(f: Fit) -> list[str]:
    rows = [f"| `latency.{k}` | {f.start[k]:.4g} | {v:.4g} | ±{f.stderr.get(k, float('nan')):.2g} |" for k, v in f.factors.items()]
    trade = "; ".join(f"`{a}` and `{b}`" for a, b in f.correlated)
    return [
        "## Calibration",
        "",
        f"Fitted with `{PROG} --calibrate` ({f.evaluations} evaluations; {f.message}); "
        f"RMS of the log errors {f.cost_start:.3f} before, {f.cost_end:.3f} after.",
        "",
        "| factor | start | fitted | standard error |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        *([f"The recordings trade these factors against each other (|correlation| > 0.9): {trade}; "
           "recordings at other loads would separate them.", ""] if trade else []),
    ]  # fmt: skip


def write_calibrated(path: Path, f: Fit, fitted: list[Recording], held: list[Recording], overrides: list[str]) -> None:
    """The fitted factors as a scenario file (``# @package _global_``) with where they came from."""
    lines = [
        "# @package _global_",
        f"# Latency factors fitted by {PROG} --calibrate (servesim {__version__}, {date.today().isoformat()})",
        f"# to: {', '.join(r.path for r in fitted)}",
        f"# held out: {', '.join(r.path for r in held) or 'none'}",
        f"# scenario: {' '.join(overrides) or 'the defaults'}",
        f"# RMS log error {f.cost_start:.3f} -> {f.cost_end:.3f} over {f.evaluations} evaluations; {f.message}",
        "# Use: pass these overrides to servesim (or to servesim-validate, to check other recordings):",
        "#   " + " ".join(f"latency.{k}={v:.6g}" for k, v in f.factors.items()),
        *[f"# {k}: standard error {f.stderr.get(k, float('nan')):.2g}" for k in f.factors],
        *[f"# the recordings trade {a} against {b} (|correlation| > 0.9)" for a, b in f.correlated],
        "latency:",
        *[f"  {k}: {v:.6g}" for k, v in f.factors.items()],
    ]
    path.write_text("\n".join(lines) + "\n")


def _print(console: Console, checked: Sequence[Checked], label: str) -> None:
    for c in checked:
        console.print(f"{label}{Path(c.rec.path).name}: median |error| {headline_error(c.table) * 100:.1f}% · report {c.out / 'validate.md'}")


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    overrides = [a for a in args.args if "=" in a]
    files = [a for a in args.args if "=" not in a]
    if not files:
        raise ServesimError("give at least one recorded benchmark result file")
    console = Console(highlight=False, soft_wrap=True)
    from simulator.report.sweep_style import FORMATS as CHART_FORMATS

    fmts = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in CHART_FORMATS]
    if bad or not fmts:
        hint = f" (to read every RESULT as {bad[0]}, use --format {bad[0]})" if bad and bad[0] in FORMATS else ""
        raise ServesimError(f"--formats {args.formats}: chart formats are png and svg{hint}.")
    recs = [read_recording(p, args.format) for p in files]
    held = [read_recording(p, args.format) for p in args.holdout]
    out = Path(args.out)
    name = lambda r: Path(r.path).stem  # noqa: E731
    before = [check(r, replay(r, overrides), overrides, out / name(r), fmts) for r in [*recs, *held]]
    _print(console, before, "")
    if not args.calibrate:
        return 0
    f = fit([c.replay for c in before[: len(recs)]], recs, args.max_evaluations)
    write_calibrated(out / "calibrated.yaml", f, recs, held, overrides)
    lines = _fit_lines(f)
    after = [check(c.rec, c.replay, overrides, out / f"{name(c.rec)}-calibrated", fmts, f.factors, lines) for c in before]
    console.print("calibrated: " + " ".join(f"latency.{k}={v:.4g}" for k, v in f.factors.items()) + f" · {out / 'calibrated.yaml'}")
    _print(console, after[: len(recs)], "fitted   ")
    _print(console, after[len(recs):], "held out ")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except ServesimError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
