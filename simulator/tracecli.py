"""``servesim-trace``: look at a recorded trace, or convert it to servesim's schema.

    servesim-trace stats PATH [--format F] [--out DIR]
    servesim-trace convert IN OUT.parquet|OUT.csv [--format F] [--sort]
    servesim-trace fit PATH [--format F]

``stats`` prints requests, duration, mean rate, inter-arrival CV, prompt and
output length percentiles and, when the trace has prefix ids, how much of it
repeats earlier requests; it writes ``<name>_stats.png`` into ``--out``
(default: the current directory), drawn by
:func:`simulator.report.trace_charts.stats_chart`. ``convert`` reads any
supported format (see :mod:`simulator.workload.traces`) and writes
servesim's own schema.
``fit`` prints a workload YAML block (mean rate, inter-arrival CV and
``empirical`` prompt and output length tables) that generates synthetic
traffic shaped like the trace; ``scenarios/workload/chat.yaml`` is its output
for the Azure 2023 conversation trace.
Mistakes print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from simulator.errors import ServesimError

PROG = "servesim-trace"


def _parser() -> argparse.ArgumentParser:
    from simulator.workload.traces import FORMATS

    formats = ["auto", *FORMATS]
    ap = argparse.ArgumentParser(prog=PROG, description="Inspect or convert LLM request traces for servesim.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{stats,convert,fit}")

    st = sub.add_parser("stats", help="print a summary of a trace and write a chart")
    st.add_argument("path", help="trace file")
    st.add_argument("--format", default="auto", choices=formats, help="trace format (default: detect)")
    st.add_argument("--out", default=".", help="directory for the PNG chart (default: current directory)")
    st.add_argument("--no-chart", action="store_true", help="print the summary only")

    cv = sub.add_parser("convert", help="convert a trace to servesim's schema (.parquet or .csv)")
    cv.add_argument("input", help="trace file")
    cv.add_argument("output", help="output file ending in .parquet or .csv")
    cv.add_argument("--format", default="auto", choices=formats, help="input format (default: detect)")
    cv.add_argument("--sort", action="store_true", help="sort rows whose timestamps go backwards (with a warning)")

    ft = sub.add_parser("fit", help="print a workload YAML block whose lengths and rate follow the trace")
    ft.add_argument("path", help="trace file")
    ft.add_argument("--format", default="auto", choices=formats, help="trace format (default: detect)")
    return ap


def _num(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _duration(s: float) -> str:
    if s >= 3600:
        return f"{s:,.1f} s ({s / 3600:.2f} h)"
    if s >= 60:
        return f"{s:,.1f} s ({s / 60:.1f} min)"
    return f"{s:,.3f} s"


def render_stats(summary: dict, chart: Path | None, console=None) -> None:
    """Print ``summary`` (from :func:`simulator.workload.traces.describe`) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console()
    s = summary
    con.print(f"[bold]{s['path']}[/bold] · format {s['format']}", soft_wrap=True)
    overview = Table(show_header=False, box=None, pad_edge=False)
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("requests", f"{s['requests']:,}")
    overview.add_row("duration", _duration(s["duration_s"]))
    if s.get("origin"):
        overview.add_row("first request", s["origin"])
    overview.add_row("mean rate", f"{_num(s['mean_rate_rps'], 3)} req/s")
    overview.add_row(
        "inter-arrival CV",
        f"{_num(s['interarrival_cv'], 3)}" + (f" ({s['zero_gaps']:,} zero gaps)" if s["zero_gaps"] else ""),
    )
    if s["rows_out_of_order"]:
        overview.add_row(
            "out of order",
            f"{s['rows_out_of_order']:,} rows earlier than the row before (sorted here; replay needs workload.trace.sort=true)",
        )
    con.print(overview)

    lengths = Table(title=None, header_style="bold")
    lengths.add_column("tokens")
    for col in ("mean", "p50", "p90", "p99", "max"):
        lengths.add_column(col, justify="right")
    for key, label in (("prompt_tokens", "prompt"), ("output_tokens", "output")):
        d = s[key]
        lengths.add_row(label, *(_num(d[c], 1 if c == "mean" else 0) for c in ("mean", "p50", "p90", "p99", "max")))
    con.print(lengths)

    p = s.get("prefix")
    if p:
        pt = Table(show_header=False, box=None, pad_edge=False)
        pt.add_column(style="bold")
        pt.add_column()
        pt.add_row(
            "prefix blocks", f"{p['blocks']:,} blocks of {p['block_tokens']} tokens · {p['distinct_blocks']:,} distinct"
        )
        pt.add_row("block reuse", f"{100 * p['block_reuse']:.1f}% of blocks repeat an earlier request's block")
        pt.add_row("token reuse", f"{100 * p['token_reuse']:.1f}% of prompt tokens lie in such blocks")
        con.print(pt)
    if chart is not None:
        con.print(f"chart: {chart}", soft_wrap=True)


def _stats(args) -> int:
    from simulator.workload.traces import describe, read

    trace = read(args.path, args.format)
    summary = describe(trace)
    chart = None
    if not args.no_chart:
        from simulator.report.trace_charts import stats_chart

        name = Path(args.path).name
        for suffix in (".gz", ".csv", ".jsonl", ".json", ".ndjson", ".parquet", ".pq"):
            name = name.removesuffix(suffix)
        chart = stats_chart(trace, Path(args.out) / f"{name}_stats.png", summary)
    render_stats(summary, chart)
    return 0


def _convert(args) -> int:
    from simulator.workload.traces import read, write

    trace = read(args.input, args.format)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write(trace, args.output, sort=args.sort, sort_option="--sort")
    for w in caught:
        print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    extra = " with prefix ids" if trace.prefix_flat is not None else ""
    print(f"wrote {out}: {len(trace):,} requests{extra} ({trace.format} -> servesim)")
    return 0


def fit_yaml(trace, summary: dict) -> str:
    """A workload YAML block fitted to ``trace``: rate, CV and empirical length tables."""
    from simulator.workload.lengths import fit_empirical

    def table(key: str, lengths) -> list[str]:
        t = fit_empirical(lengths)
        d = summary[key]
        return [
            f"{key}:  # trace: mean {d['mean']:.1f}, p50 {d['p50']:.0f}, p90 {d['p90']:.0f}, "
            f"p99 {d['p99']:.0f}, max {d['max']:.0f}",
            "  dist: empirical",
            "  quantiles: [" + ", ".join(f"{q:g}" for q in t["quantiles"]) + "]",
            "  tokens: [" + ", ".join(str(v) for v in t["tokens"]) + "]",
        ]

    cv = summary["interarrival_cv"]
    cv = 1.0 if cv is None or math.isnan(cv) else round(cv, 3)
    arrival = "constant" if cv < 0.05 else "poisson" if abs(cv - 1) < 0.05 else "gamma"
    lines = [
        f"# fitted by servesim-trace fit to {summary['path']} ({summary['requests']:,} requests, format {summary['format']})",
        f"arrival: {arrival}",
        f"rate: {summary['mean_rate_rps']:.4g}  # requests/s, the trace's mean",
        f"cv: {cv if arrival == 'gamma' else 1.0}  # inter-arrival coefficient of variation"
        + ("" if arrival == "gamma" else f" (the trace's: {cv}; read by gamma only)"),
        *table("prompt_tokens", trace.prompt_tokens),
        *table("output_tokens", trace.output_tokens),
    ]
    return "\n".join(lines) + "\n"


def _fit(args) -> int:
    from simulator.workload.traces import describe, read

    trace = read(args.path, args.format)
    print(fit_yaml(trace, describe(trace)), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"stats": _stats, "convert": _convert, "fit": _fit}
    try:
        code = commands[args.command](args)
    except ServesimError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        sys.exit(2)
    return code


if __name__ == "__main__":
    sys.exit(main())
