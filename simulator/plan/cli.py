"""``servesim-plan``: capacity questions answered by simulated runs.

    servesim-plan max-rate [overrides...] --require "ttft_p99_s<=2" [--lo R] [--hi R] [--tol 0.02] [--out DIR]
    servesim-plan cheapest --rate 40 --require "ttft_p99_s<=2" --tp 1,2 \\
        --hardware h100-sxm,h200 --policy continuous,chunked_prefill [overrides...] [--jobs N]

``cheapest`` searches the replica count (1 to --max-replicas) unless
``--replicas N,N,...`` gives a grid of counts to try instead.

One line per probe or configuration as it finishes, then the answer and the
plan directory (every run, plan.parquet/plan.csv, plan.json). See docs/plan.md.
Mistakes are one line, ``servesim-plan: error: ...``, with exit status 2 (no
command at all prints the usage first); ``cheapest`` exits 1 when no
configuration meets the requirements.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from simulator.errors import ServesimError

PROG = "servesim-plan"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like servesim
        _fail(message)


def _fail(message: str):
    message = " ".join(str(message).split())
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", help="hydra overrides of the scenario, e.g. hardware=h200 model=qwen2.5-7b")
    p.add_argument(
        "--require",
        action="append",
        metavar="REQ",
        default=None,
        help='a requirement on a headline figure, e.g. "ttft_p99_s<=2" (repeatable, or several separated by commas; '
        'default ttft_p99_s<=2)',
    )
    p.add_argument("--out", metavar="DIR", default=None, help="plan directory (default plans/<date>/<time>)")
    p.add_argument(
        "--replications",
        type=int,
        default=1,
        metavar="N",
        help="runs per point with seeds seed..seed+N-1; figures are their mean (default 1)",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        metavar="N",
        help="requests per run (default: max(workload.num_requests, --duration x rate))",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds of arrivals each run covers at least (default 600)",
    )
    p.add_argument(
        "--confidence", type=float, default=None, metavar="Q",
        help="a point passes only when this share of its replications meets every requirement on its own (with the "
        "override uncertainty=on: sized to meet them with that confidence; needs --replications)",
    )  # fmt: skip
    p.add_argument(
        "--max-rejection",
        type=float,
        default=None,
        metavar="F",
        help="a run fails when more than this share of requests is rejected (default 0.01)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the answer")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    mr = _Parser(prog=f"{PROG} max-rate", description="The highest workload.rate meeting every requirement.")
    _common(mr)
    mr.add_argument(
        "--lo", type=float, default=None, metavar="R", help="first rate probed (default: the scenario's rate / 4)"
    )
    mr.add_argument("--hi", type=float, default=None, metavar="R", help="second rate probed (default: 2 x lo)")
    mr.add_argument(
        "--tol", type=float, default=0.02, metavar="F", help="relative width of the final bracket (default 0.02)"
    )

    ch = _Parser(
        prog=f"{PROG} cheapest",
        description="The cheapest replicas x TP x GPU x pricing tier x policy meeting every requirement at a rate.",
    )
    _common(ch)
    ch.add_argument("--rate", type=float, default=None, metavar="R", help="the target request rate (req/s)")
    ch.add_argument(
        "--schedule", default=None, metavar="T:R,...",
        help="instead of --rate, a rate schedule: seconds:req/s steps ending with a rate of 0, e.g. 0:10,600:40,1200:10,1800:0",
    )  # fmt: skip
    ch.add_argument(
        "--survive-failures", type=int, default=0, metavar="N",
        help="fail the N busiest replicas at the worst moment (the schedule's peak) in every run (default 0)",
    )  # fmt: skip
    ch.add_argument(
        "--replicas",
        type=_list,
        default=None,
        metavar="N,N,...",
        help="only these replica counts (default: search every count from 1 to --max-replicas)",
    )
    ch.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        metavar="N",
        help="the largest replica count the search tries (default 64; not with --replicas)",
    )
    ch.add_argument("--tp", type=_list, default=["1"], metavar="N,N,...", help="tensor-parallel degrees (default 1)")
    ch.add_argument(
        "--hardware", type=_list, default=["h100-sxm"], metavar="GPU,...", help="GPU types (default h100-sxm)"
    )
    ch.add_argument(
        "--policy", type=_list, default=["continuous"], metavar="P,...", help="scheduler options (default continuous)"
    )
    ch.add_argument(
        "--tier",
        type=_list,
        default=["on_demand"],
        metavar="T,...",
        help="pricing tiers to compare: on_demand, reserved, spot (default on_demand; docs/pricing.md)",
    )
    ch.add_argument("--jobs", type=int, default=1, metavar="N", help="configurations simulated in parallel (default 1)")
    ch.add_argument(
        "--exhaustive",
        action="store_true",
        help="simulate every configuration (with the replica search: find every combination's smallest "
        "passing count), not only up to the cheapest that passes",
    )
    return {"max-rate": mr, "cheapest": ch}


_USAGE = (
    f"usage: {PROG} max-rate [overrides...] --require REQ [--lo R] [--hi R] [--tol F] [--out DIR]\n"
    f"       {PROG} cheapest (--rate R | --schedule T:R,..) --require REQ [--survive-failures N] [--tp N,..] [--hardware GPU,..] "
    "[--policy P,..] [--tier T,..] [overrides...] [--jobs N]\n"
    f"       {PROG} COMMAND --help for every option (docs/plan.md explains the search)"
)


def _search_kwargs(a) -> dict:
    kw = {"replications": a.replications, "requests": a.requests, "out_dir": a.out, "confidence": a.confidence}
    if a.duration is not None:
        kw["min_duration_s"] = a.duration
    if a.max_rejection is not None:
        kw["max_rejection"] = a.max_rejection
    if not a.quiet:
        kw["progress"] = lambda line: print(line, flush=True)
    return kw


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = lambda message, *a, **k: print(f"{PROG}: warning: {message}", file=sys.stderr)
    if not argv:  # no command: the usage, and the status of a usage error
        print(_USAGE, file=sys.stderr)
        _fail("give a command: max-rate or cheapest.")
    if argv[0] in ("-h", "--help"):
        print(_USAGE)
        return
    parsers = _parsers()
    if argv[0] not in parsers:
        _fail(f"unknown command {argv[0]!r}; choose max-rate or cheapest.")
    cmd, parser = argv[0], parsers[argv[0]]
    args = parser.parse_intermixed_args(argv[1:])
    requirements = args.require or ["ttft_p99_s<=2"]

    from simulator import plan

    try:
        if cmd == "max-rate":
            found = plan.max_rate(
                args.overrides, requirements, lo=args.lo, hi=args.hi, rel_tol=args.tol, **_search_kwargs(args)
            )
            print(found.answer)
            print(f"runs: {found.runs_dir} ({len(found.probes)} probes, {found.wall_s:.1f} s)")
            return
        from simulator.plan.headroom import parse_schedule

        res = plan.cheapest(
            args.rate,
            requirements,
            rate_schedule=parse_schedule(args.schedule) if args.schedule else None,
            survive_failures=args.survive_failures,
            replicas=args.replicas,
            max_replicas=args.max_replicas,
            tp=args.tp,
            hardware=args.hardware,
            policy=args.policy,
            tier=args.tier,
            overrides=args.overrides,
            n_jobs=args.jobs,
            exhaustive=args.exhaustive,
            **_search_kwargs(args),
        )
    except ServesimError as exc:
        _fail(str(exc))
    print(res.answer)
    c = res.candidates
    simulated, skipped = int(c["evaluated"].sum()), int((c["status"] == "skipped").sum())
    if res.max_replicas is None:
        what = f"{simulated} of {len(c)} configurations simulated"
    else:
        combos = len(c[["tp", "hardware", "tier", "policy"]].drop_duplicates())
        axes = "hardware x TP x tier x policy" if c["tier"].nunique() > 1 else "hardware x TP x policy"
        what = (
            f"{simulated} configurations simulated, searching 1-{res.max_replicas} replicas for {combos} "
            f"{axes} combination{'s' if combos != 1 else ''}"
        )
    print(f"runs: {res.runs_dir} ({what}, {skipped} skipped; {res.wall_s:.1f} s)")
    for hw, rows in c.groupby("hardware", sort=False):  # a GPU asked for by name and never run: say why
        if (rows["status"] == "skipped").all():
            reasons = "; ".join(dict.fromkeys(str(r) for r in rows["skipped"] if str(r)))
            print(f"skipped: every {hw} configuration ({reasons})")
    if res.best is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
