"""How servesim's cost grows: wall time, CPU, peak memory and throughput of whole command-line runs.

    python benchmarks/bench_scale.py                    # the rows of issue 19's table
    python benchmarks/bench_scale.py --big 100000       # the fleet row at 100,000 requests instead of 1,000,000
    python benchmarks/bench_scale.py --rows startup,10k # some rows only
    python benchmarks/bench_scale.py --growth           # also: cost against requests and replicas

Each row is one ``servesim`` run in a fresh process (``python -m simulator.cli``,
charts and console off), measured from outside: wall seconds, user + system CPU
seconds and peak resident memory of that process (``os.wait4``), and from its
``summary.json`` the engine steps and requests, per wall-second. Not a test: it
prints figures. ``benchmarks/compare_commits.py`` runs it for two commits side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation" / "conversation_trace.jsonl"


def rows(big: int) -> dict[str, tuple[str, list[str]]]:
    """name -> (description, overrides)."""
    out = {
        "startup": ("a 10-request run (start-up: imports, hydra, catalogs)", ["workload.num_requests=10"]),
        "startup-warm": ("the same command line again (its composed config cached)", ["workload.num_requests=10"]),
        "10k": ("10,000 requests, 1 replica", ["workload.num_requests=10000"]),
        "fleet": (f"{big:,} requests, 64 replicas", ["cluster.replicas=64", "workload.rate=768", f"workload.num_requests={big}"]),
    }
    if MOONCAKE.is_file():
        trace = ["workload.arrival=trace", f"workload.trace.path={MOONCAKE}", "workload.num_requests=null", "cluster.replicas=8",
                 "scheduler=chunked_prefill"]  # fmt: skip
        out["mooncake"] = ("Mooncake conversation trace, 8 replicas, chunked prefill, prefix caching", [*trace, "memory.prefix_caching=true"])
        out["mooncake-nocache"] = ("the same without prefix caching", trace)
    return out


def measure(overrides: list[str], python: str = sys.executable, cwd: Path = ROOT, env: dict | None = None, warm: bool = False) -> dict:
    """One servesim run in its own process: wall, CPU, peak RSS, steps and requests. Each run
    gets a fresh output directory, which is part of the command line, so its composed config is
    not cached yet; ``warm`` runs the same command line once first, so it is."""
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
        args = [python, "-m", "simulator.cli", *overrides, "output.charts=false", "output.console=false", f"hydra.run.dir={out}"]
        env = {**(os.environ if env is None else env), "SERVESIM_CACHE_DIR": cache}
        if warm:
            subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode() if proc.stderr else ""
        if status != 0:
            raise SystemExit(f"servesim {' '.join(overrides)} failed:\n{err[-2000:]}")
        summary = json.loads((Path(out) / "summary.json").read_text())
    steps, requests = int(summary["engine"]["steps"]), int(summary["requests"]["total"])
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,  # Linux: kB
        "steps": steps,
        "requests": requests,
        "steps_per_s": steps / wall,
        "requests_per_s": requests / wall,
    }


def table(results: dict[str, dict], names: dict[str, str]) -> str:
    head = "| run | wall | CPU | peak memory | engine steps/s | requests/s |\n|---|---:|---:|---:|---:|---:|"
    lines = [head]
    for key, r in results.items():
        rates = "- | -" if key.startswith("startup") else f"{r['steps_per_s']:,.0f} | {r['requests_per_s']:,.0f}"  # (start-up is not a rate)
        lines.append(f"| {names[key]} | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_mb']:,.0f} MB | {rates} |")
    return "\n".join(lines)


def growth() -> str:
    """Cost against requests (1 replica) and replicas (at a proportional rate)."""
    out = [
        "How cost grows: the default workload at 12 req/s per replica (the 10k row above runs 15 req/s on one replica).",
        "",
        "| requests | replicas | engine steps | wall | CPU | peak memory | engine steps/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, reps in ((10_000, 1), (40_000, 1), (40_000, 4), (40_000, 16), (160_000, 16)):
        r = measure([f"workload.num_requests={n}", f"cluster.replicas={reps}", f"workload.rate={12 * reps}"])
        out.append(
            f"| {n:,} | {reps} | {r['steps']:,} | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_mb']:,.0f} MB | {r['steps_per_s']:,.0f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=1_000_000, help="requests of the 64-replica row (default 1,000,000)")
    ap.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    ap.add_argument("--growth", action="store_true", help="also print cost against requests and replicas")
    args = ap.parse_args(argv)
    defined = rows(args.big)
    chosen = [r.strip() for r in args.rows.split(",")] if args.rows else list(defined)
    unknown = [r for r in chosen if r not in defined]
    if unknown:
        ap.error(f"unknown row {', '.join(unknown)}; choose from {', '.join(defined)}")
    print(f"servesim scale benchmark - python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    results = {}
    for key in chosen:
        results[key] = measure(defined[key][1], warm=key == "startup-warm")
        print(f"  {key}: {results[key]['wall_s']:.2f} s wall", file=sys.stderr)
    print(table(results, {k: v[0] for k, v in defined.items()}))
    if args.growth:
        print()
        print(growth())
    return 0


if __name__ == "__main__":
    sys.exit(main())
