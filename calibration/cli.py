"""``servesim-calibrate``: measure -> fit -> validate, and import Vidur profiles.

    servesim-calibrate run --model llama-3.1-8b --device cuda --out h100-llama-3.1-8b-tp1
    servesim-calibrate run --model tiny-llama --threads 1 --statistic p10 --out my-cpu-profile
    servesim-calibrate validate PROFILE_DIR
    servesim-calibrate import-vidur VIDUR_MODEL_DIR --tp 1 --out DIR
    servesim-calibrate show PROFILE_DIR
    servesim-calibrate predict [overrides] --prefill CHUNK:CONTEXT --decode COUNT:CONTEXT [--json]
    servesim-calibrate published [--split holdout] [--out DIR] [--fit-overheads]

``predict`` prices one engine step under a scenario's latency model, operator
by operator; ``published`` runs the published-measurement suite
(calibration/published/) and reports servesim's error against real GPUs.

``run`` times the operators of one transformer layer (``measure``), fits the
per-step overhead on whole decoder-stack steps, then validates the fitted
predictor on other steps and writes validation.{md,json,png} beside the
profile. A profile is then usable with
``servesim latency.model=profile latency.profile.path=DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.errors import ServesimError

from . import profile as fmt

if TYPE_CHECKING:
    from simulator.config.schema import ModelConfig


def _shape(model_name: str) -> tuple[dict, ModelConfig]:
    from simulator.config.catalog import load_model

    m = load_model(model_name, "--model")
    shape = {k: int(getattr(m, k)) for k in fmt.SHAPE_KEYS}
    return shape, m


def _torch_or_exit():
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            'servesim-calibrate: error: measuring needs torch; install it with  pip install -e ".[calibration]"  '
            "(or pip install torch).",
            file=sys.stderr,
        )
        sys.exit(2)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_measure(args, *, validate_after: bool) -> int:
    _torch_or_exit()
    from . import harness
    from .stack import DecoderStack
    from .validate import fit_overhead

    shape, model = _shape(args.model)
    device_kind = "cuda" if str(args.device).startswith("cuda") else "cpu"
    dtype = args.dtype or ("bf16" if device_kind == "cuda" else "fp32")
    layers = args.layers or (model.num_layers if device_kind == "cuda" else min(model.num_layers, 4))
    grid = harness.grid_for(args.device)
    _say(f"measuring {model.name} (TP{args.tp}, {dtype}) on {args.device} ...")
    table = harness.measure(
        shape, tp=args.tp, dtype=dtype, device=args.device, grid=grid, warmup=args.warmup,
        repeats=args.repeats, progress=_say if args.verbose else None, threads=args.threads,
    )
    meta = harness.measure_metadata(
        shape, args.tp, dtype, None, args.device, grid, args.warmup, args.repeats, threads=args.threads
    )
    meta["model"] = {"name": model.name, **shape}
    prof = fmt.Profile(table, meta)
    if args.tp == 1:
        _say(f"fitting the per-step overhead on a {layers}-layer decoder stack ...")
        stack = DecoderStack(shape, layers, dtype=dtype, device=args.device)
        prof.metadata["statistic"] = args.statistic
        a, b = fit_overhead(
            prof, stack, device_kind=device_kind, repeats=args.repeats, threads=args.threads, statistic=args.statistic
        )
        prof.metadata["step_overhead_s"] = a
        prof.metadata["step_overhead_per_token_s"] = b
        prof.metadata["overhead_fit_layers"] = layers
    else:
        prof.metadata["step_overhead_s"] = None  # the stack runs TP1 only
    out = prof.save(args.out)
    _say(f"profile written to {out}")
    if validate_after:
        if args.tp != 1:
            _say("validation runs a single-GPU stack: skipped for TP > 1")
            return 0
        return _validate(out, layers, args)
    return 0


def _validate(directory: Path, layers: int | None, args) -> int:
    _torch_or_exit()
    from .stack import DecoderStack
    from .validate import validate, write_report

    prof = fmt.load(str(directory))
    assert prof.path is not None  # a profile read from disk knows its directory
    meta = prof.metadata
    shape = {k: int(meta["model"][k]) for k in fmt.SHAPE_KEYS}
    device = args.device
    device_kind = "cuda" if str(device).startswith("cuda") else "cpu"
    layers = layers or meta.get("overhead_fit_layers") or 4
    stack = DecoderStack(shape, layers, dtype=meta.get("dtype", "fp32"), device=device)
    _say(f"validating {directory} on {layers}-layer decoder-stack steps ...")
    df, summary = validate(prof, stack, device_kind=device_kind, repeats=args.repeats, threads=args.threads)
    write_report(prof.path, df, summary, meta)
    meta = dict(prof.metadata)
    meta["validation"] = summary
    (prof.path / fmt.METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(
        f"validation: median APE {summary['median_ape']:.1%}, p90 {summary['p90_ape']:.1%}, "
        f"max {summary['max_ape']:.1%} over {summary['steps']} steps -> {prof.path / 'validation.md'}"
    )
    return 0


def cmd_import_vidur(args) -> int:
    from .vidur import import_vidur

    prof = import_vidur(args.directory, tp=args.tp, name=args.name)
    out = prof.save(args.out)
    print(f"imported {len(prof.table)} rows ({', '.join(sorted(prof.ops()))}) -> {out}")
    return 0


def cmd_show(args) -> int:
    prof = fmt.load(args.profile)
    meta = {k: v for k, v in prof.metadata.items() if k != "grid"}
    print(json.dumps(meta, indent=2, sort_keys=True))
    counts = prof.table.groupby("op").agg(points=("time_s", "size"), min_s=("time_s", "min"), max_s=("time_s", "max"))
    print(counts.to_string())
    return 0


def cmd_predict(args) -> int:
    from .predict import predict, render

    out = predict(args.overrides, args.prefill or [], args.decode or [])
    print(json.dumps(out, indent=2) if args.json else render(out))
    return 0


def cmd_published(args) -> int:
    import math

    from .published import (
        MIN_FIT_CASES,
        OVERHEAD_GRID,
        breakdown,
        error_table,
        fit_overheads,
        load_cases,
        preset,
        run_suite,
        sharing,
    )
    from .published_report import chart, markdown, percentages, summary

    cases = load_cases()
    if args.split != "all":
        cases = [c for c in cases if c.split == args.split]
    if args.fit_overheads:
        for name in sorted({preset(c) for c in cases if not c.skip}):
            fit = fit_overheads(cases, name, max_requests=args.max_requests, say=_say)
            keys = ", ".join(f"{k}={v:g}" for k, v in fit["values"].items() if k in OVERHEAD_GRID)
            if math.isnan(fit["loss"]):  # too few fit cases to fit three numbers: the preset keeps its documented values
                print(f"{name}: {keys}  (kept, not fitted: {len(fit['cases'])} fit cases, fewer than {MIN_FIT_CASES})")
            else:
                print(f"{name}: {keys}  (mean |log error| {fit['loss']:.3f} over {len(fit['cases'])} fit cases)")
        return 0

    def progress(i, n, row):
        if args.verbose:
            err = f"{row['error']:+.1%}" if row["skipped"] == "" else f"skipped: {row['skipped']}"
            _say(f"[{i}/{n}] {row['id']}: {err}")

    df = run_suite(cases, max_requests=args.max_requests, extra=args.overrides, progress=progress)
    table = error_table(df)
    if args.split != "all":
        table = table[table["split"] == args.split]
    print(summary(table).to_string(index=False))
    by = breakdown(df)
    if len(by):
        print("\nheld out, by engine and GPU:")
        print(percentages(by).to_string(index=False))
    skipped = int((df["skipped"] != "").sum())
    print(f"{len(df) - skipped} cases run, {skipped} not run" + (" (the report says why)" if args.out else " (--out DIR writes a report saying why)"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out / "published.csv", index=False)
        command = "servesim-calibrate published" + (f" --split {args.split}" if args.split != "all" else "") + "".join(
            f" {o}" for o in args.overrides
        )
        (args.out / "published.md").write_text(markdown(df, table, command, by=by, shared=sharing(df)))
        chart(df, args.out / "published.png")
        print(f"report: {args.out / 'published.md'}, chart: {args.out / 'published.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="servesim-calibrate", description=__doc__.replace("``", ""),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def measuring(p):
        p.add_argument("--model", required=True, help="a model catalog name, e.g. llama-3.1-8b or tiny-llama")
        p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree whose shards are timed")
        p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="default: bf16 on CUDA, fp32 on CPU")
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
        p.add_argument("--layers", type=int, help="decoder-stack depth for overhead fit and validation")
        p.add_argument("--out", required=True, type=Path, help="profile directory to write")
        p.add_argument("--repeats", type=int, default=9, help="timed repeats per point (default: 9)")
        p.add_argument("--warmup", type=int, default=3, help="untimed runs before timing each point (default: 3)")
        p.add_argument("--threads", type=int, help="torch CPU threads (1 gives steadier CPU timings)")
        p.add_argument(
            "--statistic", choices=["median", "p10"], default="median",
            help="timing statistic to fit and validate: median, or p10 (steadier on a busy CPU)",
        )
        p.add_argument("-v", "--verbose", action="store_true", help="one line per measured point")

    measuring(sub.add_parser("run", help="measure, fit and validate"))
    measuring(sub.add_parser("measure", help="measure and fit, without validation"))
    v = sub.add_parser("validate", help="validate a profile on decoder-stack steps")
    v.add_argument("profile", type=Path, help="a profile directory (profile.parquet + metadata.json)")
    v.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    v.add_argument("--layers", type=int, help="decoder-stack depth (default: the profile's fit depth, or 4)")
    v.add_argument("--repeats", type=int, default=9, help="timed repeats per step (default: 9)")
    v.add_argument("--threads", type=int, help="torch CPU threads")
    i = sub.add_parser("import-vidur", help="convert a Vidur compute/<gpu>/<model>/ directory")
    i.add_argument("directory", type=Path, help="a Vidur compute/<gpu>/<model>/ directory holding mlp.csv (and attention.csv)")
    i.add_argument("--tp", type=int, default=1, help="tensor-parallel degree whose rows to import (default: 1)")
    i.add_argument("--name", help="model name to record (default: the directory name)")
    i.add_argument("--out", required=True, type=Path, help="profile directory to write")
    s = sub.add_parser("show", help="print a profile's metadata and coverage")
    s.add_argument("profile", help="a profile directory or the name of a shipped profile")
    p = sub.add_parser("predict", help="one step's time under a scenario's latency model, per operator")
    p.add_argument("overrides", nargs="*", help="scenario overrides, as for servesim (e.g. hardware=h200 model=llama-3.1-70b cluster.tp=4)")
    p.add_argument("--prefill", action="append", metavar="CHUNK:CONTEXT",
                   help="a prefill chunk of CHUNK tokens after CONTEXT cached ones (repeat for several sequences)")
    p.add_argument("--decode", action="append", metavar="COUNT:CONTEXT",
                   help="COUNT sequences decoding one token each over CONTEXT tokens of context (repeatable)")
    p.add_argument("--json", action="store_true", help='print {"step_s": ..., "ops": {operator: seconds}} as JSON')
    g = sub.add_parser(
        "published", help="run the published-measurement suite and report servesim's error",
        description="Replay every case of calibration/published/*.yaml (real engines on real GPUs) under its engine's "
        "preset and report servesim's signed error per case, and median / p90 |error| per split and metric family. "
        "Extra overrides apply to every case (e.g. to compare latency-model factors).",
    )
    g.add_argument("overrides", nargs="*", help="scenario overrides applied to every case, e.g. latency.attention_efficiency=0.5")
    g.add_argument("--split", choices=["all", "holdout", "fit"], default="all", help="which cases to run (default: all)")
    g.add_argument("--max-requests", type=int, default=None, metavar="N",
                   help="cap each case's requests (default: as many as the benchmark sent)")
    g.add_argument("--out", type=Path, help="write published.csv, published.md and published.png here")
    g.add_argument("--fit-overheads", action="store_true",
                   help="fit each engine preset's overheads to the fit split and print them (slow)")
    g.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_measure(args, validate_after=True)
        if args.command == "measure":
            return cmd_measure(args, validate_after=False)
        if args.command == "validate":
            return _validate(args.profile, args.layers, args)
        if args.command == "import-vidur":
            return cmd_import_vidur(args)
        if args.command == "predict":
            return cmd_predict(args)
        if args.command == "published":
            return cmd_published(args)
        return cmd_show(args)
    except (ServesimError, ValueError, FileNotFoundError) as exc:
        print(f"servesim-calibrate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
