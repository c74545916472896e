"""Simulation speed: 10,000 requests of the default workload (15 req/s, about 80% of one H100; the engine is busy throughout).

    python benchmarks/bench_speed.py [--requests N] [--repeat K] [hydra overrides...]

Prints wall time per phase, simulated requests per wall-second and engine
steps per wall-second (best of K repeats). Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import platform
import time

import simulator
from simulator.api import load_config
from simulator.config.validate import check_workload
from simulator.metrics import summarize
from simulator.simulation import simulate
from simulator.workload import generate


def once(overrides: list[str]) -> dict:
    t0 = time.perf_counter()
    cfg = load_config(overrides)
    t1 = time.perf_counter()
    workload = generate(cfg)
    check_workload(cfg, workload)
    t2 = time.perf_counter()
    out = simulate(cfg, workload)
    t3 = time.perf_counter()
    requests = out.recorder.requests_table()
    steps = out.recorder.steps_table()
    summary = summarize(cfg, out, requests, steps)
    t4 = time.perf_counter()
    return {
        "compose": t1 - t0,
        "workload": t2 - t1,
        "simulate": t3 - t2,
        "tables+summary": t4 - t3,
        "total": t4 - t0,
        "steps": out.steps,
        "requests": len(requests),
        "sim_s": out.end_s,
        "busy": summary["engine"]["busy_fraction"],
        "p99_ttft": summary["latency_s"]["ttft"]["p99"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    overrides = [f"workload.num_requests={args.requests}", "output.charts=false", *args.overrides]
    runs = [once(overrides) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["total"])
    print(f"servesim {simulator.__version__} speed benchmark - python {platform.python_version()} on {platform.machine()}")
    print(f"scenario: default (llama-3.1-8b, h100-sxm, continuous, roofline) {' '.join(args.overrides)}")
    print(
        f"{best['requests']:,} requests, {best['steps']:,} engine steps, {best['sim_s']:,.0f} s simulated, "
        f"engine busy {best['busy']:.0%}, p99 TTFT {best['p99_ttft'] * 1e3:.0f} ms"
    )
    print(f"wall time (best of {args.repeat}): " + ", ".join(f"{k} {best[k]:.3f} s" for k in ("compose", "workload", "simulate", "tables+summary", "total")))
    print(f"simulated requests per wall-second: {best['requests'] / best['total']:,.0f} (end to end), "
          f"{best['requests'] / best['simulate']:,.0f} (event loop only)")
    print(f"engine steps per wall-second: {best['steps'] / best['simulate']:,.0f} (event loop only)")
    print(f"simulated seconds per wall-second: {best['sim_s'] / best['total']:,.0f}")


if __name__ == "__main__":
    main()
