"""Digests of servesim's outputs over every scenario family: proof that a refactor changed nothing.

    python benchmarks/output_digest.py > before.json      # on the old code
    python benchmarks/output_digest.py --check before.json  # on the new code: exit 1 on any difference

Each scenario (the invariant tests' 34, engine presets, trace replay,
closed-loop clients, tiers, named experiments) runs with its seed and
``workload.num_requests`` capped; the digest is the SHA-256 of the requests
and steps tables (CSV) and of the summary (JSON with sorted keys). Not a test:
it takes about a minute and reports what differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_invariants import SCENARIOS  # noqa: E402

TRACES = ROOT / "traces"

EXTRA = {
    "engine-vllm_v1": ["engine=vllm_v1"],
    "engine-vllm_v0": ["engine=vllm_v0"],
    "engine-sglang": ["engine=sglang"],
    "engine-trtllm": ["engine=trtllm", "scheduler.max_batch_tokens=16384"],
    "closed-loop": ["workload.arrival=closed_loop", "workload.users=16", "workload.think_s=1"],
    "tiers-shedding": ["experiment=tier_shedding"],
    "tiers-spike": ["experiment=tiers_spike"],
    "disaggregation-ratio": ["experiment=disaggregation_ratio"],
    "rate-schedule": ["workload.rate_schedule=[[0,10],[5,30],[10,10]]"],
    "h200-70b-tp4": ["hardware=h200", "model=llama-3.1-70b", "cluster.tp=4", "workload.rate=6"],
    "mi300x-70b-fp8-tp8": ["hardware=mi300x", "model=llama-3.1-70b", "model.weight_dtype=fp8", "cluster.tp=8"],
}


def scenarios() -> dict[str, list[str]]:
    out = {**SCENARIOS, **EXTRA}
    for name in ("sample_azure.csv", "sample_mooncake.jsonl"):  # the mooncake sample has prefix hashes
        out[f"trace-{name}"] = ["workload.arrival=trace", f"workload.trace.path={TRACES / name}", "memory.prefix_caching=true"]
    return out


def digest(overrides: list[str], requests: int) -> dict[str, str]:
    import simulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = simulator.run([*overrides, f"workload.num_requests={requests}", "output.console=false", "output.charts=false"])
    h = lambda b: hashlib.sha256(b).hexdigest()[:16]  # noqa: E731
    return {
        "requests": h(r.requests.to_csv(index=False).encode()),
        "steps": h(r.steps.to_csv(index=False).encode()),
        "summary": h(json.dumps(r.summary, sort_keys=True, default=str).encode()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", metavar="JSON", help="compare with an earlier run's output; exit 1 on a difference")
    ap.add_argument("--requests", type=int, default=300, help="requests per scenario (default 300)")
    args = ap.parse_args(argv)
    got = {}
    for name, overrides in scenarios().items():
        try:
            got[name] = digest(overrides, args.requests)
        except Exception as exc:  # a scenario that cannot run is itself a digest to compare
            got[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    if not args.check:
        print(json.dumps(got, indent=1, sort_keys=True))
        return 0
    want = json.loads(Path(args.check).read_text())
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    for k in diff:
        print(f"differs: {k}: {want.get(k)} -> {got.get(k)}")
    print(f"{len(got) - len(diff)} of {len(got)} scenarios identical")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
