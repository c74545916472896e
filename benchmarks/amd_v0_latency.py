"""The MI300X's FP8 decode-attention rate from AMD's vLLM 0.9.0.1 latency table.

    python benchmarks/amd_v0_latency.py          # every cell under the catalog as it is
    python benchmarks/amd_v0_latency.py --fit    # and the rate that fits the table's prompt-length differences

AMD's vLLM 0.9.0.1 image (V0 engine) timed Llama-3.1-70B FP8 (FP8 KV cache) on 8 MI300X with
``benchmark_latency.py`` at batch 1-128, with 128- and 2,048-token prompts and 2,048 output tokens:
ROCm/vllm ``docs/dev-docker/README.md`` at commit 68af05584 (2025-06-11, "Updated to ROCm 6.4.1 and
vLLM v0.9.0.1"), the same README whose throughput table gives the suite's four 0.9.0.1 rows. These
cells are not suite cases. At one batch size the two prompt lengths run the same decode steps with
the same CPU work; what separates them is the longer prompts' prefill and every decode step reading
1,920 more cached tokens per sequence. servesim prices the prefill from GEMM and attention factors
measured elsewhere, so the difference of the two latencies at batch 16-128 (below 16 it is within the
table's run-to-run noise: at batch 1 the longer prompts ran faster) measures how fast the decode
kernel reads FP8 entries. ``--fit`` prints the mean |log error| of those four differences over a grid
of ``hardware.attention.decode_kv_rate_g``; scenarios/hardware/mi300x.yaml holds the best.
Each cell is replayed as the suite replays a batch-latency case (built from its 0.10.2 batch-1 case,
on V0 with the release's all-reduce: ``engine_env: {VLLM_USE_V1: 0}``). Not a test: it prints figures
(docs/fidelity.md quotes them).
"""

from __future__ import annotations

import argparse
import math

from simulator.calibration.published import load_cases, run_case

#: (prompt tokens, batch) -> seconds: the table's Llama 3.1 70B (amd/Llama-3.1-70B-Instruct-FP8-KV) rows
LATENCY = {
    (128, 1): 15.566, (128, 2): 16.858, (128, 4): 17.518, (128, 8): 18.898,
    (128, 16): 21.023, (128, 32): 23.896, (128, 64): 30.753, (128, 128): 43.767,
    (2048, 1): 15.496, (2048, 2): 17.380, (2048, 4): 17.983, (2048, 8): 19.771,
    (2048, 16): 22.702, (2048, 32): 27.392, (2048, 64): 36.879, (2048, 128): 57.003,
}
#: batches whose prompt-length difference stands above the table's noise (seconds, not tenths)
DIFFERENCE_BATCHES = (16, 32, 64, 128)
RATES = (2000, 2250, 2500, 2750, 3000, 3250, 3500, 4000, "inf")  # inf: HBM at the GEMMs' share


def replay(extra: list[str]) -> dict[tuple[int, int], float]:
    template = next(c for c in load_cases() if c.id == "vllm-0.10.2-mi300x-llama31-70b-fp8-tp8-latency-bs1-128-2048")
    out = {}
    for (isl, batch), value in LATENCY.items():
        case = template.variant({"input_tokens": isl, "batch_size": batch, "num_requests": batch}, engine_version="0.9.0.1",
                                engine_env={"VLLM_USE_V1": 0}, engine_args={}, value=value,
                                id=f"vllm-0.9.0.1-mi300x-llama31-70b-fp8-tp8-latency-bs{batch}-{isl}-2048")
        out[(isl, batch)] = run_case(case, extra=extra)
    return out


def difference_errors(predicted: dict[tuple[int, int], float]) -> list[float]:
    """log(servesim's / the table's) latency difference between 2,048- and 128-token prompts, per batch."""
    return [math.log((predicted[(2048, b)] - predicted[(128, b)]) / (LATENCY[(2048, b)] - LATENCY[(128, b)]))
            for b in DIFFERENCE_BATCHES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="grid the FP8 entry rate against the prompt-length differences")
    args = ap.parse_args()
    predicted = replay([])
    print(f"{'prompt':>6s} {'batch':>5s} {'measured s':>10s} {'servesim s':>10s} {'error':>7s}")
    for (isl, batch), value in LATENCY.items():
        print(f"{isl:6d} {batch:5d} {value:10.3f} {predicted[(isl, batch)]:10.3f} {predicted[(isl, batch)] / value - 1:+7.1%}")
    errs = difference_errors(predicted)
    print("2,048- less 128-token prompts, batch " + ", ".join(map(str, DIFFERENCE_BATCHES)) + ": "
          + " ".join(f"{math.expm1(e):+.1%}" for e in errs))
    if args.fit:
        print("\nhardware.attention.decode_kv_rate_g (G entries/s): mean |log error| of the differences")
        for rate in RATES:
            key = "latency.attention_decode_kv_rate_g" if rate == "inf" else "hardware.attention.decode_kv_rate_g"
            errs = difference_errors(replay([f"{key}={rate}"]))
            print(f"{rate:>6}: {sum(abs(e) for e in errs) / len(errs):.3f}  (" + " ".join(f"{math.expm1(e):+.1%}" for e in errs) + ")")


if __name__ == "__main__":
    main()
